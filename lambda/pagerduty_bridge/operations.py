"""Operating the bridge: the seed's key metrics and its health check.

Pure: figures are computed from incidents (times are the alarms' own state-change times, so a replayed
history gives the same figures as the live one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from pagerduty_bridge.models import Incident, Resolution
from pagerduty_bridge.timeutil import EARLIEST

DEFAULT_MAX_ACTIVE_INCIDENTS = 10
"""The seed's health check warns above ten active incidents."""
_DURATION = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])\s*$", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` (ASCII digits) → a timedelta; anything else, or a span
    beyond ``timedelta``'s range, is a ``ValueError``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h or 7d")
    try:
        return timedelta(seconds=float(match.group("amount")) * _UNIT_SECONDS[match.group("unit")])
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any time a clock can hold ({timedelta.max.days} days)") from None


@dataclass(frozen=True)
class Stats:
    incidents: int
    acknowledged: int
    resolved: int
    auto_resolved: int
    active: int
    window_hours: float
    incidents_per_hour: float
    mean_resolution_seconds: float | None
    acknowledgement_rate: float | None
    auto_resolution_rate: float | None
    mean_acknowledgement_seconds: float | None
    """Mean time to acknowledge, from the acknowledgements recorded (PagerDuty's, by webhook)."""
    resolved_by: dict[str, int]
    """How resolved incidents were resolved: alarm OK (auto), by hand (manual), reconciliation,
    a responder in PagerDuty."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_stats(incidents: Iterable[Incident], *, since: timedelta | None = None, now: datetime) -> Stats:
    """The seed's key metrics over incidents triggered in the window.

    The window is ``since`` back from ``now`` when given; otherwise from the first trigger to the last
    state change seen, at least one hour (so a single incident reads "1 per hour", not "12 per hour").
    A ``since`` of no time is a ``ValueError``: it holds no rate per hour.
    """
    if since is not None and since <= timedelta(0):
        raise ValueError("a window must be longer than zero")
    counted = [i for i in incidents if i.triggered_at is not None]
    if since is not None:
        start = now - since if since < now - EARLIEST else EARLIEST  # a window longer than time: all of it
        counted = [i for i in counted if i.triggered_at is not None and i.triggered_at >= start]
        window = since
    elif counted:
        start = min(i.triggered_at for i in counted if i.triggered_at is not None)
        end = max((i.resolved_at or i.state_changed_at or i.triggered_at or start) for i in counted)
        window = max(end - start, timedelta(hours=1))
    else:
        window = timedelta(hours=1)
    resolved = [i for i in counted if i.resolved_at is not None and not i.is_open]
    # Resolutions and acknowledgements may be stamped by PagerDuty's clock (a webhook's occurred_at) and
    # triggers by CloudWatch's: one stamped before its trigger is a skew, not a negative duration.
    durations = [d for d in (i.resolution_seconds for i in resolved) if d is not None and d >= 0]
    acknowledged = [i for i in counted if i.acknowledged_at is not None]
    to_acknowledge = [s for s in (i.acknowledgement_seconds for i in acknowledged) if s is not None and s >= 0]
    auto = [i for i in resolved if i.resolution is Resolution.AUTO]
    hours = window.total_seconds() / 3600
    return Stats(
        incidents=len(counted),
        acknowledged=len(acknowledged),
        resolved=len(resolved),
        auto_resolved=len(auto),
        active=sum(1 for i in counted if i.is_open),
        window_hours=round(hours, 3),
        incidents_per_hour=round(len(counted) / hours, 3),
        mean_resolution_seconds=_mean(durations),
        acknowledgement_rate=round(len(acknowledged) / len(counted), 3) if counted else None,
        auto_resolution_rate=round(len(auto) / len(resolved), 3) if resolved else None,
        mean_acknowledgement_seconds=_mean(to_acknowledge),
        resolved_by={how.value: sum(i.resolution is how for i in resolved) for how in Resolution},
    )


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


def active_incident_check(active: int, maximum: int = DEFAULT_MAX_ACTIVE_INCIDENTS) -> Check:
    if active > maximum:
        return Check("active_incidents", False, f"{active} active incidents (more than {maximum})")
    return Check("active_incidents", True, f"{active} active incidents (at most {maximum})")
