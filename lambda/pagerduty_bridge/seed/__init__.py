"""The seed: the TypeScript ``PagerDutyIntegration`` quick reference this bridge grew from.

Its behaviour is the specification of the public API (``pagerduty_bridge.integration``), its three
templated incidents (high failure rate, high latency, cost threshold) are reproduced field for field by
``templates``, and its validated input models are in ``models``.
"""
