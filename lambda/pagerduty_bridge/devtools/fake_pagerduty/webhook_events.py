"""What a PagerDuty webhook v3 says: the incident event payload and its signature.

Pure functions, so a receiver's tests can build and sign a webhook without any server. Sources
(PagerDuty developer docs, webhooks): 01-Overview (payload ``{"event": {id, event_type, resource_type,
occurred_at, agent, client, data}}``, the incident object, the event types) and 04-Signatures
(``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>``, several comma-separated during secret
rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pagerduty_bridge.devtools.fake_pagerduty.alerts import (
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_ESCALATED,
    INCIDENT_REASSIGNED,
    INCIDENT_RESOLVED,
    INCIDENT_TRIGGERED,
    INCIDENT_UNACKNOWLEDGED,
)
from pagerduty_bridge.devtools.fake_pagerduty.records import Alert
from pagerduty_bridge.devtools.fake_pagerduty.wire import iso_timestamp

SIGNATURE_HEADER: Final = "X-PagerDuty-Signature"
SIGNATURE_VERSION: Final = "v1"
"""The only signature version PagerDuty defines: HMAC-SHA256 of the body, hex encoded."""
WEB_APP_URL: Final = "https://fake-pagerduty.invalid"
API_URL: Final = "https://api.fake-pagerduty.invalid"
"""Links in the payloads point here: ``.invalid`` never resolves (RFC 2606), so nothing follows them."""
DEFAULT_SERVICE_NAME: Final = "pagerduty-bridge (stand-in)"
DEFAULT_AGENT: Final = "Stand-in Responder"
"""The user a responder action is made by when a test names nobody."""
HIGH_URGENCY_SEVERITIES: Final = frozenset({"critical", "error"})
"""A service set to "use alert severity" makes critical and error alerts high-urgency, others low."""
INCIDENT_EVENT_TYPES: Final = frozenset(
    {
        INCIDENT_TRIGGERED,
        INCIDENT_ACKNOWLEDGED,
        INCIDENT_UNACKNOWLEDGED,
        INCIDENT_RESOLVED,
        INCIDENT_REASSIGNED,
        INCIDENT_ESCALATED,
        "incident.reopened",
        "incident.delegated",
        "incident.priority_updated",
    }
)
"""The v3 event types whose ``data`` is an incident (the stand-in sends the first six)."""


def sign(body: bytes, secret: str) -> str:
    """``v1=<hex HMAC-SHA256(body, secret)>``: one signature as PagerDuty computes it, on the raw bytes."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signature_header(body: bytes, secrets: tuple[str, ...]) -> str:
    """The ``X-PagerDuty-Signature`` value: one signature per secret, comma-separated (secret rotation)."""
    return ",".join(sign(body, secret) for secret in secrets)


def _reference(kind: str, collection: str, ident: str, summary: str, *, web_path: str | None = None) -> dict[str, Any]:
    return {
        "html_url": f"{WEB_APP_URL}/{web_path or collection}/{ident}",
        "id": ident,
        "self": f"{API_URL}/{collection}/{ident}",
        "summary": summary,
        "type": f"{kind}_reference",
    }


def _stable_id(text: str) -> str:
    """A PagerDuty-style id derived from ``text``; one way, so an id never reveals a routing key."""
    return "P" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:6].upper()


def user_reference(name: str) -> dict[str, Any]:
    """A ``user_reference`` for a responder of that name (its id derived from the name)."""
    return _reference("user", "users", _stable_id(f"user:{name}"), name)


def service_reference(routing_key: str, service_name: str = DEFAULT_SERVICE_NAME) -> dict[str, Any]:
    """The service an integration key belongs to; one service per routing key, never showing the key."""
    return _reference(
        "service", "services", _stable_id(f"service:{routing_key}"), service_name, web_path="service-directory"
    )


def incident_data(alert: Alert, *, service_name: str = DEFAULT_SERVICE_NAME) -> dict[str, Any]:
    """The incident object of webhooks v3 (``event.data`` of incident events) for an alert's current incident."""
    ident = alert.incident_id
    return {
        "id": ident,
        "type": "incident",
        "self": f"{API_URL}/incidents/{ident}",
        "html_url": f"{WEB_APP_URL}/incidents/{ident}",
        "number": alert.number,
        "status": alert.status,
        "incident_key": alert.dedup_key,
        "created_at": alert.created_at,
        "title": alert.summary or alert.dedup_key,
        "service": service_reference(alert.routing_key, service_name),
        "assignees": [] if alert.status == "resolved" else [user_reference(alert.assignee)],
        "escalation_policy": _reference("escalation_policy", "escalation_policies", "PDEFAULT", "Default"),
        "teams": [],
        "priority": None,
        "urgency": "high" if alert.severity in HIGH_URGENCY_SEVERITIES else "low",
        "conference_bridge": None,
        "resolve_reason": None,
    }


def incident_webhook(
    event_type: str,
    alert: Alert,
    *,
    occurred_at: datetime | str,
    agent: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    client: Mapping[str, Any] | None = None,
    service_name: str = DEFAULT_SERVICE_NAME,
) -> dict[str, Any]:
    """One webhook v3 payload: ``{"event": {id, event_type, resource_type, occurred_at, agent, client, data}}``.

    ``occurred_at`` is a datetime (rendered as PagerDuty does, ``…T14:30:00.000Z``) or a ready string;
    ``agent`` is who acted (a ``user_reference``, a ``service_reference``, or None).
    """
    if event_type not in INCIDENT_EVENT_TYPES:
        raise ValueError(f"not an incident event type: {event_type!r}")
    return {
        "event": {
            "id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": occurred_at if isinstance(occurred_at, str) else iso_timestamp(occurred_at),
            "agent": None if agent is None else dict(agent),
            "client": None if client is None else dict(client),
            "data": incident_data(alert, service_name=service_name),
        }
    }
