"""Alert state as PagerDuty keeps it: per routing key and dedup key, changed by events and by responders.

PagerDuty's dedup rules (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): a trigger
opens an alert or updates the open one; acknowledge and resolve act only on an alert that is open under
the same routing key, and are dropped silently otherwise; a trigger after a resolve opens a new alert
(and a new incident) under the same key. Responders act on incidents in PagerDuty's web app; each change
of state is announced as a webhook v3 event type (``incident.triggered`` …), returned as a
``Transition`` for the webhook sender. Also here: the per-routing-key rate limit
(https://developer.pagerduty.com/docs/events-api-v2/rate-limits/: about 120 events a minute per routing
key, counted "over a 60 second window looking back from the current time").

Nothing here locks: the owner (``EventsService``) serialises every call under its own lock.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, TypeAlias

from pagerduty_bridge.devtools.fake_pagerduty.records import DEFAULT_ASSIGNEE, Alert, AlertStatus

RATE_LIMIT_WINDOW_SECONDS: Final = 60.0
"""PagerDuty counts events per routing key "over a 60 second window looking back from the current time"."""

ResponderAction: TypeAlias = Literal["acknowledge", "unacknowledge", "resolve", "reassign", "escalate"]
RESPONDER_ACTIONS: Final[tuple[ResponderAction, ...]] = (
    "acknowledge",
    "unacknowledge",
    "resolve",
    "reassign",
    "escalate",
)
INCIDENT_TRIGGERED: Final = "incident.triggered"
INCIDENT_ACKNOWLEDGED: Final = "incident.acknowledged"
INCIDENT_UNACKNOWLEDGED: Final = "incident.unacknowledged"
INCIDENT_RESOLVED: Final = "incident.resolved"
INCIDENT_REASSIGNED: Final = "incident.reassigned"
INCIDENT_ESCALATED: Final = "incident.escalated"


@dataclass(frozen=True)
class Transition:
    """One change of an incident PagerDuty announces: its webhook event type and the alert after it.

    ``agent`` is the responder who acted, or None when the integration did (through the Events API).
    """

    event_type: str
    alert: Alert
    agent: str | None = None


def incident_id(number: int) -> str:
    """A PagerDuty-style incident id ("P" and six characters) for the stand-in's incident ``number``."""
    return f"P{number:06d}"


def snapshot(alert: Alert) -> Alert:
    """A copy a caller may keep: later changes to the alert do not show through it."""
    return replace(alert, events=list(alert.events))


class AlertBook:
    """Every alert ever opened, by (routing key, dedup key), and the events PagerDuty dropped."""

    def __init__(self) -> None:
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._dropped: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)

    def apply(
        self, routing_key: str, dedup_key: str, event: dict[str, Any], now: str
    ) -> tuple[bool, Transition | None]:
        """Apply one valid alert event at ``now`` (ISO 8601): (whether it changed anything, what to announce).

        An acknowledge or resolve without an open alert under this routing key changes nothing and is
        kept in ``dropped``, as PagerDuty drops it.
        """
        key = (routing_key, dedup_key)
        alert = self._alerts.get(key)
        if event["event_action"] == "trigger":
            return True, self._trigger(key, alert, event, now)
        if alert is None or not alert.is_open:
            self._dropped.append(event)
            return False, None
        alert.events.append(event)
        status: AlertStatus = "acknowledged" if event["event_action"] == "acknowledge" else "resolved"
        if alert.status == status:
            return True, None
        alert.status = status
        return True, Transition(f"incident.{status}", snapshot(alert))

    def _trigger(self, key: tuple[str, str], alert: Alert | None, event: dict[str, Any], now: str) -> Transition | None:
        payload = event["payload"]
        if alert is not None and alert.is_open:
            # A trigger on an open alert updates its details (an acknowledged alert stays acknowledged).
            alert.summary, alert.severity = payload["summary"], payload["severity"]
            alert.events.append(event)
            return None
        number = next(self._numbers)
        opened = Alert(
            key[0],
            key[1],
            "triggered",
            payload["summary"],
            payload["severity"],
            [*(alert.events if alert else []), event],
            times_opened=alert.times_opened + 1 if alert else 1,
            number=number,
            incident_id=incident_id(number),
            created_at=now,
        )
        self._alerts[key] = opened
        return Transition(INCIDENT_TRIGGERED, snapshot(opened))

    def act(
        self,
        action: ResponderAction,
        dedup_key: str,
        *,
        routing_key: str | None,
        agent: str,
        assignee: str | None = None,
    ) -> tuple[Alert, Transition | None]:
        """A responder's action on the open incident of ``dedup_key``: the alert after it, what to announce.

        Raises ``LookupError`` when no alert is open under that key (on ``routing_key`` when given), or
        when it is open on several routing keys and none was named.
        """
        alert = self._find_open(dedup_key, routing_key)
        event_type = _ACTIONS[action](alert, assignee)
        after = snapshot(alert)
        return after, None if event_type is None else Transition(event_type, after, agent)

    def _find_open(self, dedup_key: str, routing_key: str | None) -> Alert:
        matches = [
            alert
            for (key, dedup), alert in self._alerts.items()
            if dedup == dedup_key and alert.is_open and routing_key in (None, key)
        ]
        if not matches:
            raise LookupError(f"no open alert with dedup key {dedup_key!r}")
        if len(matches) > 1:
            raise LookupError(f"dedup key {dedup_key!r} is open on {len(matches)} routing keys: name one")
        return matches[0]

    def alerts(self) -> dict[tuple[str, str], Alert]:
        return {key: snapshot(alert) for key, alert in self._alerts.items()}

    def dropped(self) -> list[dict[str, Any]]:
        return list(self._dropped)

    def clear(self) -> None:
        self._alerts.clear()
        self._dropped.clear()
        self._numbers = itertools.count(1)


# --- Responder actions: each changes the alert and names the event to announce (None: nothing changed) ---


def _acknowledge(alert: Alert, assignee: str | None) -> str | None:
    if alert.status != "triggered":
        return None
    alert.status = "acknowledged"
    return INCIDENT_ACKNOWLEDGED


def _unacknowledge(alert: Alert, assignee: str | None) -> str | None:
    if alert.status != "acknowledged":
        return None
    alert.status = "triggered"
    return INCIDENT_UNACKNOWLEDGED


def _resolve(alert: Alert, assignee: str | None) -> str:
    alert.status = "resolved"
    return INCIDENT_RESOLVED


def _reassign(alert: Alert, assignee: str | None) -> str:
    """Reassigning pages the new assignee: the incident is triggered again, as in PagerDuty."""
    alert.assignee = assignee or DEFAULT_ASSIGNEE
    alert.status = "triggered"
    return INCIDENT_REASSIGNED


def _escalate(alert: Alert, assignee: str | None) -> str:
    """Escalating pages the next level of the escalation policy: the incident is triggered again."""
    alert.escalation_level += 1
    alert.assignee = assignee or f"On-call level {alert.escalation_level}"
    alert.status = "triggered"
    return INCIDENT_ESCALATED


_ACTIONS: Final[dict[ResponderAction, Callable[[Alert, str | None], str | None]]] = {
    "acknowledge": _acknowledge,
    "unacknowledge": _unacknowledge,
    "resolve": _resolve,
    "reassign": _reassign,
    "escalate": _escalate,
}


class RateLimiter:
    """PagerDuty's per-routing-key limit over a sliding window; ``limit`` None means no limit.

    ``time_scale`` shortens the window for tests (60 makes a "minute" last one second).
    """

    def __init__(self, limit: int | None, *, time_scale: float = 1.0) -> None:
        if limit is not None and limit < 1:
            raise ValueError("rate_limit must be at least 1 (or None for no limit)")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.limit = limit
        self.window_seconds = RATE_LIMIT_WINDOW_SECONDS / time_scale
        self._windows: dict[str, deque[float]] = {}

    def admit(self, routing_key: str, now: float) -> bool:
        """Count one event for ``routing_key`` at monotonic time ``now``; False (and not counted) when over."""
        if self.limit is None:
            return True
        window = self._windows.setdefault(routing_key, deque())
        horizon = now - self.window_seconds
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= self.limit:
            return False
        window.append(now)
        return True

    def clear(self) -> None:
        self._windows.clear()
