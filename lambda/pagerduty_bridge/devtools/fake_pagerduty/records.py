"""What the stand-in remembers: each request and how it was answered, and each alert PagerDuty would hold.

Both are plain dataclasses that tests compare and print; their reprs show a routing key by its last
four characters only (``pagerduty_bridge.redaction``), because a test failure's output is a log too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from pagerduty_bridge.devtools.fake_pagerduty.wire import ResponseBody
from pagerduty_bridge.redaction import mask_key, masked_body, scrub

AlertStatus: TypeAlias = Literal["triggered", "acknowledged", "resolved"]
DEFAULT_ASSIGNEE: Final = "On-call Engineer"
"""Who an incident is assigned to when it opens (the first level of a one-person escalation policy)."""


def safe_body(body: Any) -> Any:
    """A request body safe to show: a JSON object's ``routing_key`` masked, anything else as it is."""
    return masked_body(body) if isinstance(body, dict) else body


def scrub_key(text: str, routing_key: object) -> str:
    """``text`` without the routing key, wherever it was pasted (a dedup key, a summary …)."""
    return scrub(text, routing_key) if isinstance(routing_key, str) else scrub(text)


@dataclass
class RecordedRequest:
    """One request as received (body parsed when it is JSON) and how it was answered.

    ``status`` is None while the request is in flight and stays None when the connection was dropped.
    ``fault`` names the scripted fault applied to it, if any. ``ignored`` marks an acknowledge/resolve
    answered 202 that changed nothing, for want of an open alert (PagerDuty drops those silently).
    """

    path: str
    headers: dict[str, str]
    body: Any
    status: int | None
    at: float
    method: str = "POST"
    response_body: ResponseBody = None
    fault: str | None = None
    ignored: bool = False

    def __repr__(self) -> str:
        text = (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, status={self.status!r}, "
            f"fault={self.fault!r}, at={self.at!r}, body={safe_body(self.body)!r})"
        )
        return scrub_key(text, self.body.get("routing_key")) if isinstance(self.body, dict) else text


@dataclass
class Alert:
    """PagerDuty's view of one alert: opened by a trigger, keyed by (routing key, dedup key).

    ``events`` holds every accepted event applied to it, in order; ``times_opened`` counts how often a
    trigger opened it (a trigger after a resolve opens a new alert under the same key). Each opening is a
    new PagerDuty incident: ``number`` and ``incident_id`` name the current one, ``created_at`` (ISO 8601,
    UTC) is when it opened, ``assignee`` and ``escalation_level`` who is paged for it.
    """

    routing_key: str
    dedup_key: str
    status: AlertStatus
    summary: str | None
    severity: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    times_opened: int = 1
    number: int = 0
    incident_id: str = ""
    created_at: str = ""
    assignee: str = DEFAULT_ASSIGNEE
    escalation_level: int = 1

    @property
    def is_open(self) -> bool:
        """Triggered or acknowledged: a trigger updates it, an acknowledge or resolve acts on it."""
        return self.status != "resolved"

    def __repr__(self) -> str:
        return scrub_key(
            f"Alert(routing_key={mask_key(self.routing_key)!r}, dedup_key={self.dedup_key!r}, "
            f"status={self.status!r}, summary={self.summary!r}, severity={self.severity!r}, "
            f"events={len(self.events)}, times_opened={self.times_opened}, number={self.number})",
            self.routing_key,
        )
