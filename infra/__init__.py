"""The AWS CDK app that deploys pagerduty-bridge: topic, table, function and the alarms watching them.

``app.py`` is the entry point ``cdk.json`` runs; ``stack.py`` composes one construct per concern
(``alarm_topic``, ``incident_table``, ``integration_key``, ``bridge_function``, ``delivery``,
``reconciliation``, ``health``, ``dashboard``), built from ``encrypted_topic`` and ``queues``;
``config.py`` turns CDK context into one validated settings object (``alert_rules.py`` reads and
validates the alert rules it names); ``bundling.py`` builds the Lambda asset without Docker;
``nag.py`` holds the cdk-nag wiring; ``infra.mk`` the make targets; README.md "Deploy" the deploy guide.
Names shared with the Lambda code come from ``pagerduty_bridge.constants`` and are never restated here.
"""
