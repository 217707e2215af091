"""PagerDuty webhooks v3 in, as data: the signature checked, the delivery read into an ``IncidentWebhook``.

PagerDuty signs each delivery: ``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>``, with
several comma-separated signatures while a subscription's secret is being rotated (any may match).
The comparison is constant-time, on the raw body bytes. Pure: bytes, headers and the secret in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pagerduty_bridge import constants as c
from pagerduty_bridge import safejson
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.timeutil import parse_time

SIGNATURE_HEADER: Final = "x-pagerduty-signature"
MAX_BODY_BYTES: Final = 256 * 1024
"""The largest delivery accepted (413 beyond). PagerDuty's incident events are a few kilobytes."""
MAX_INCIDENT_NUMBER: Final = 2**63 - 1
"""The largest incident number kept: a signed 64-bit integer, far beyond any account's incidents."""
_SIGNATURE: Final = re.compile(r"^v1=([0-9a-f]{64})$")
HANDLED_EVENTS: Final = frozenset(
    {
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.resolved",
        "incident.reopened",
        "incident.reassigned",
        "incident.escalated",
        "incident.delegated",
        "incident.priority_updated",
        "incident.annotated",
    }
)


class Verdict(StrEnum):
    """What a delivery's signature says (before anything reads the body)."""

    VALID = "valid"
    MISSING = "missing"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"


def sign(body: bytes, secret: str) -> str:
    """The ``v1=`` signature of ``body`` with ``secret``."""
    return "v1=" + _digest(body, secret)


def signing_secrets(value: Any) -> list[str]:
    """The signing secrets a secret's value holds: one per line, or a JSON list of them; the stack's
    placeholder is none. A value that is not UTF-8 text is a ``ConfigurationError``."""
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise ConfigurationError(f"the webhook signing secret ({c.ENV_WEBHOOK_SECRET_ARN}) is not text") from None
    candidates: list[Any] = text.splitlines()
    if text.lstrip().startswith("["):
        try:
            listed = safejson.loads(text)
        except ValueError:
            listed = None
        if isinstance(listed, list):
            candidates = listed
    secrets = [item.strip() for item in candidates if isinstance(item, str)]
    return [secret for secret in secrets if secret and secret != c.WEBHOOK_SECRET_PLACEHOLDER]


def _digest(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: Iterable[str]) -> Verdict:
    """Whether any ``v1=`` signature in ``header`` is ``body``'s with any of ``secrets`` (constant time)."""
    if header is None or not header.strip():
        return Verdict.MISSING
    signatures = [_SIGNATURE.match(part.strip()) for part in header.split(",")]
    if not signatures or any(s is None for s in signatures):
        return Verdict.MALFORMED
    valid = False
    for secret in secrets:
        expected = _digest(body, secret)
        for match in signatures:
            assert match is not None
            valid |= hmac.compare_digest(expected, match.group(1))
    return Verdict.VALID if valid else Verdict.MISMATCH


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentWebhook:
    """One incident event from PagerDuty: what happened, when, by whom, to which incident."""

    event_id: str
    event_type: str
    occurred_at: datetime
    agent: str | None = None
    incident_key: str | None = None
    """The dedup key of the alert that opened the incident: the bridge's key for it."""
    incident_id: str | None = None
    incident_number: int | None = None
    html_url: str | None = None
    status: str | None = None
    service_id: str | None = None
    """The id of the PagerDuty service the incident is in (``data.service``), when the event says."""
    merged_into: str | None = None
    """For an incident resolved by a merge (``data.resolve_reason``): the incident it was merged into."""
    details: dict[str, str] = field(default_factory=dict)


class WebhookError(ValueError):
    """A delivery that is not a readable incident event: answered 400, nothing changes."""


def parse_webhook(body: bytes) -> IncidentWebhook | None:
    """The delivery's incident event; ``None`` for events about other resources (answered, ignored)."""
    try:
        document = safejson.loads(body.decode("utf-8"))
    except ValueError:  # not UTF-8, not JSON, or nested beyond reason
        raise WebhookError("the body is not JSON") from None
    event = document.get("event") if isinstance(document, dict) else None
    if not isinstance(event, dict):
        raise WebhookError("the body has no 'event' object")
    if event.get("resource_type") != "incident":
        return None
    occurred = parse_time(event.get("occurred_at"))
    event_id, event_type = event.get("id"), event.get("event_type")
    if occurred is None or not isinstance(event_id, str) or not isinstance(event_type, str):
        raise WebhookError("an incident event needs id, event_type and occurred_at")
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return IncidentWebhook(
        event_id=event_id[:128],
        event_type=event_type[:64],
        occurred_at=occurred,
        agent=_reference(event.get("agent")),
        incident_key=_text(data.get("incident_key")),
        incident_id=_text(data.get("id")),
        incident_number=_incident_number(data.get("number")),
        html_url=_text(data.get("html_url")),
        status=_text(data.get("status")),
        service_id=_service_id(data.get("service")),
        merged_into=_merged_into(data.get("resolve_reason")),
        details=_details(event_type, data),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _service_id(value: Any) -> str | None:
    """The id of a service reference (``{"id": …, "type": "service_reference"}``)."""
    ident = _text(value.get("id")) if isinstance(value, Mapping) else None
    return ident[:64] if ident else None


def attributed(event: IncidentWebhook, services: frozenset[str]) -> bool | None:
    """Whether ``event`` is about an incident of one of the bridge's ``services``: ``True`` when its
    service is named, ``False`` when it is another one, ``None`` when that cannot be told (no service
    named, or the event carries none). Dedup keys are unique per service only: under an account-wide
    subscription another team's incident may carry one of the bridge's keys."""
    if not services or event.service_id is None:
        return None
    return event.service_id in services


def _merged_into(value: Any) -> str | None:
    """The incident a merge moved this one's alerts into (a ``merge_resolve_reason``), as "summary (id)"
    or "merged" when it names none: the incident is resolved, its alerts live on there."""
    if not isinstance(value, Mapping) or value.get("type") != "merge_resolve_reason":
        return None
    return _reference(value.get("incident")) or "merged"


def _incident_number(value: Any) -> int | None:
    """PagerDuty's incident number: a positive integer; not a boolean, nor one beyond what the stores
    hold (SQLite's 64 bits, DynamoDB's 38 digits), which would fail the webhook's write."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_INCIDENT_NUMBER:
        return value
    return None


def _reference(value: Any) -> str | None:
    """A PagerDuty reference (user, service …) as "summary (id)"."""
    if not isinstance(value, Mapping):
        return None
    summary, ident = _text(value.get("summary")), _text(value.get("id"))
    if summary and ident:
        return f"{summary} ({ident})"
    return summary or ident


def _details(event_type: str, data: Mapping[str, Any]) -> dict[str, str]:
    """What reassignment, escalation and priority changes leave to remember."""
    details: dict[str, str] = {}
    assignees = data.get("assignees")
    if event_type in ("incident.reassigned", "incident.delegated", "incident.escalated") and isinstance(
        assignees, list
    ):
        names = [name for name in (_reference(a) for a in assignees) if name]
        if names:
            details["assignees"] = ", ".join(names)
    policy = _reference(data.get("escalation_policy"))
    if event_type in ("incident.escalated", "incident.delegated") and policy:
        details["escalation_policy"] = policy
    priority = data.get("priority")
    if event_type == "incident.priority_updated":
        details["priority"] = _reference(priority) or "none"
    if event_type in ("incident.reassigned", "incident.escalated", "incident.delegated", "incident.priority_updated"):
        details["last_change"] = event_type.removeprefix("incident.")
    return details


def raw_body(event: Mapping[str, Any]) -> bytes | None:
    """A function URL request's body bytes, exactly as sent (base64-decoded when Lambda encoded them)."""
    body = event.get("body") or ""
    if not isinstance(body, str):
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    return body.encode("utf-8")


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header by its lower-case name (function URLs lower-case them; be lenient anyway)."""
    raw = event.get("headers")
    headers: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    return next((str(v) for k, v in headers.items() if str(k).lower() == name), None)
