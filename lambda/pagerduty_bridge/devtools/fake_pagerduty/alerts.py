"""Alert state as PagerDuty keeps it: per routing key and dedup key, changed by events.

PagerDuty's dedup rules (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): a trigger
opens an alert or updates the open one; acknowledge and resolve act only on an alert that is open under
the same routing key, and are dropped silently otherwise; a trigger after a resolve opens a new alert
under the same key. Also here: the per-routing-key rate limit
(https://developer.pagerduty.com/docs/events-api-v2/rate-limits/: about 120 events a minute per routing
key, counted "over a 60 second window looking back from the current time").

Nothing here locks: the owner (``EventsService``) serialises every call under its own lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Final

from pagerduty_bridge.devtools.fake_pagerduty.records import Alert

RATE_LIMIT_WINDOW_SECONDS: Final = 60.0
"""PagerDuty counts events per routing key "over a 60 second window looking back from the current time"."""


def snapshot(alert: Alert) -> Alert:
    """A copy a caller may keep: later changes to the alert do not show through it."""
    return replace(alert, events=list(alert.events))


class AlertBook:
    """Every alert ever opened, by (routing key, dedup key), and the events PagerDuty dropped."""

    def __init__(self) -> None:
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._dropped: list[dict[str, Any]] = []

    def apply(self, routing_key: str, dedup_key: str, event: dict[str, Any]) -> bool:
        """Apply one valid alert event; False when it changed nothing.

        An acknowledge or resolve without an open alert under this routing key changes nothing and is
        kept in ``dropped``, as PagerDuty drops it.
        """
        key = (routing_key, dedup_key)
        alert = self._alerts.get(key)
        if event["event_action"] == "trigger":
            self._trigger(key, alert, event)
            return True
        if alert is None or not alert.is_open:
            self._dropped.append(event)
            return False
        alert.events.append(event)
        alert.status = "acknowledged" if event["event_action"] == "acknowledge" else "resolved"
        return True

    def _trigger(self, key: tuple[str, str], alert: Alert | None, event: dict[str, Any]) -> None:
        payload = event["payload"]
        if alert is None:
            self._alerts[key] = Alert(key[0], key[1], "triggered", payload["summary"], payload["severity"], [event])
            return
        if not alert.is_open:
            alert.status = "triggered"
            alert.times_opened += 1
        # A trigger on an open alert updates its details (an acknowledged alert stays acknowledged).
        alert.summary, alert.severity = payload["summary"], payload["severity"]
        alert.events.append(event)

    def alerts(self) -> dict[tuple[str, str], Alert]:
        return {key: snapshot(alert) for key, alert in self._alerts.items()}

    def dropped(self) -> list[dict[str, Any]]:
        return list(self._dropped)

    def clear(self) -> None:
        self._alerts.clear()
        self._dropped.clear()


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
