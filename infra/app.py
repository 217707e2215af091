"""The CDK app ``cdk.json`` runs: the standalone bridge, one stack per environment.

Everything is in the construct library: ``pagerduty_bridge_cdk.app`` reads the context parameters
(documented in ``cdk.json``) into a validated configuration and builds ``PagerDutyBridgeStack``, a
stack holding one ``PagerDutyBridge`` construct.
"""

from __future__ import annotations

import sys

from pagerduty_bridge_cdk.app import main

if __name__ == "__main__":
    sys.exit(main())
