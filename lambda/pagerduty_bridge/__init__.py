"""pagerduty-bridge: CloudWatch alarm notifications → PagerDuty incidents, tracked in DynamoDB.

The public API is importable from here; names load on first use, so importing the Lambda handler
does not pay for what it does not need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
"""The distribution's version (semantic versioning: see CHANGELOG.md for what the public surface is)."""

if TYPE_CHECKING:
    from pagerduty_bridge.integration import PagerDutyIntegration
    from pagerduty_bridge.models import AlertSeverity, EventResponse, Incident
    from pagerduty_bridge.seed.models import AlertMessage, ServiceConfig

__all__ = ["AlertMessage", "AlertSeverity", "EventResponse", "Incident", "PagerDutyIntegration", "ServiceConfig"]

_HOMES = {
    "PagerDutyIntegration": "pagerduty_bridge.integration",
    "AlertMessage": "pagerduty_bridge.seed.models",
    "AlertSeverity": "pagerduty_bridge.models",
    "EventResponse": "pagerduty_bridge.models",
    "Incident": "pagerduty_bridge.models",
    "ServiceConfig": "pagerduty_bridge.seed.models",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'pagerduty_bridge' has no attribute {name!r}")
