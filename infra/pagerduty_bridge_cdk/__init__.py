"""pagerduty-bridge as an AWS CDK construct library: CloudWatch alarms to PagerDuty, in your own app.

::

    from pagerduty_bridge_cdk import PagerDutyBridge, PageOnAlarms

    bridge = PagerDutyBridge(stack, "Pager", environment="prod")
    bridge.page(my_alarm)                              # ALARM and OK actions, each once
    Aspects.of(stack).add(PageOnAlarms(bridge))        # every other alarm of the stack

What is imported from here is the public, versioned surface (semantic versioning, see CHANGELOG.md):
:class:`PagerDutyBridge` and its props (:class:`BridgeProps`, documented in :data:`PARAMETERS`),
:class:`PageOnAlarms`, :class:`ConfigError`, :class:`BridgeConfig` and :class:`PagerDutyBridgeStack`
(the standalone deployment). Modules are one construct per concern; their names may change.
"""

from __future__ import annotations

from pagerduty_bridge_cdk.bridge import PagerDutyBridge
from pagerduty_bridge_cdk.config import PARAMETERS, BridgeConfig, BridgeProps
from pagerduty_bridge_cdk.health import UNSUBSCRIBED_HEALTH_WARNING_ID
from pagerduty_bridge_cdk.readers import ConfigError
from pagerduty_bridge_cdk.stack import PagerDutyBridgeStack
from pagerduty_bridge_cdk.wiring import (
    ACTIONS_DISABLED_WARNING_ID,
    DOUBLE_PAGE_WARNING_ID,
    HALF_WIRED_WARNING_ID,
    SUPPRESSOR_PAGES_WARNING_ID,
    UNRESOLVED_ACTIONS_WARNING_ID,
    AlarmFilter,
    PageOnAlarms,
)

__all__ = [
    "ACTIONS_DISABLED_WARNING_ID",
    "DOUBLE_PAGE_WARNING_ID",
    "HALF_WIRED_WARNING_ID",
    "PARAMETERS",
    "SUPPRESSOR_PAGES_WARNING_ID",
    "UNRESOLVED_ACTIONS_WARNING_ID",
    "UNSUBSCRIBED_HEALTH_WARNING_ID",
    "AlarmFilter",
    "BridgeConfig",
    "BridgeProps",
    "ConfigError",
    "PageOnAlarms",
    "PagerDutyBridge",
    "PagerDutyBridgeStack",
]
