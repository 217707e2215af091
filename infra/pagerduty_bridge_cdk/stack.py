"""The standalone deployment: one stack holding one bridge, configured from CDK context."""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Stack
from constructs import Construct

from pagerduty_bridge_cdk.bridge import PagerDutyBridge
from pagerduty_bridge_cdk.config import BridgeConfig

BRIDGE_ID: Final = "Default"
"""The bridge's construct id in the stack. CDK leaves ``Default`` out of logical ids, so the resources
keep the logical ids they had when they were the stack's own children, and an existing stack updates
in place (its table above all) instead of being replaced."""


class PagerDutyBridgeStack(Stack):
    """A stack that is one :class:`PagerDutyBridge`, nothing else."""

    def __init__(self, scope: Construct, construct_id: str, *, config: BridgeConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            construct_id,
            description="pagerduty-bridge: CloudWatch alarms to PagerDuty Events API v2",
            **kwargs,
        )
        self.config = config
        self.bridge = PagerDutyBridge(self, BRIDGE_ID, **config.as_props())
