"""Operating the bridge: the seed's key metrics, its health check, and reconciliation with CloudWatch.

Pure where it can be: figures are computed from incidents (times are the alarms' own state-change
times, so a replayed history gives the same figures as the live one); reconciliation takes an injected
CloudWatch client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pagerduty_bridge.errors import BridgeError, IncidentNotFoundError
from pagerduty_bridge.models import Incident, Resolution

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from pagerduty_bridge.integration import PagerDutyIntegration

DEFAULT_MAX_ACTIVE_INCIDENTS = 10
"""The seed's health check warns above ten active incidents."""
MIN_RESOLVE_SECONDS = 2.0
"""Below this much time left in the invocation, reconciliation stops resolving and leaves the rest."""
DESCRIBE_ALARMS_BATCH = 100
"""``DescribeAlarms`` takes at most 100 alarm names per call."""
_DURATION = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` → a timedelta; anything else is a ``ValueError``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return timedelta(seconds=float(match.group("amount")) * _UNIT_SECONDS[match.group("unit")])


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_stats(incidents: Iterable[Incident], *, since: timedelta | None = None, now: datetime) -> Stats:
    """The seed's key metrics over incidents triggered in the window.

    The window is ``since`` back from ``now`` when given; otherwise from the first trigger to the last
    state change seen, at least one hour (so a single incident reads "1 per hour", not "12 per hour").
    """
    counted = [i for i in incidents if i.triggered_at is not None]
    if since is not None:
        counted = [i for i in counted if i.triggered_at is not None and i.triggered_at >= now - since]
        window = since
    elif counted:
        start = min(i.triggered_at for i in counted if i.triggered_at is not None)
        end = max((i.resolved_at or i.state_changed_at or i.triggered_at or start) for i in counted)
        window = max(end - start, timedelta(hours=1))
    else:
        window = timedelta(hours=1)
    resolved = [i for i in counted if i.resolved_at is not None and not i.is_open]
    durations = [d for d in (i.resolution_seconds for i in resolved) if d is not None]
    acknowledged = [i for i in counted if i.acknowledged_at is not None]
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
        mean_resolution_seconds=round(sum(durations) / len(durations), 3) if durations else None,
        acknowledgement_rate=round(len(acknowledged) / len(counted), 3) if counted else None,
        auto_resolution_rate=round(len(auto) / len(resolved), 3) if resolved else None,
    )


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


def active_incident_check(active: int, maximum: int = DEFAULT_MAX_ACTIVE_INCIDENTS) -> Check:
    if active > maximum:
        return Check("active_incidents", False, f"{active} active incidents (more than {maximum})")
    return Check("active_incidents", True, f"{active} active incidents (at most {maximum})")


@dataclass(frozen=True)
class Reconciled:
    dedup_key: str
    alarm_name: str
    alarm_state: str | None
    """CloudWatch's current state, or ``None`` when the alarm no longer exists."""
    action: str
    """``resolved`` · ``kept`` · ``failed``."""
    reason: str
    resolution_seconds: float | None = None


def alarm_states(cloudwatch: BaseClient, names: Sequence[str]) -> dict[str, str]:
    """Current state of each named alarm (metric and composite), batched; missing alarms are absent."""
    states: dict[str, str] = {}
    unique = sorted(set(names))
    for start in range(0, len(unique), DESCRIBE_ALARMS_BATCH):
        batch = unique[start : start + DESCRIBE_ALARMS_BATCH]
        paginator = cloudwatch.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNames=batch, AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = alarm["StateValue"]
    return states


def reconcile(
    integration: PagerDutyIntegration,
    cloudwatch: BaseClient,
    *,
    remaining_seconds: Callable[[], float] | None = None,
) -> list[Reconciled]:
    """Resolve open incidents whose alarm is OK now, or gone; keep the rest.

    Heals incidents whose OK notification never came (an alarm without an OKActions entry, a lost
    delivery). Incidents that did not come from an alarm (forwarded messages, templated triggers of
    alarms that do not exist in this account) are only kept when their alarm is still there.
    """
    active = [i for i in integration.store.list_active() if not i.alarm_name.startswith("(")]
    states = alarm_states(cloudwatch, [i.alarm_name for i in active])
    results: list[Reconciled] = []
    for incident in active:
        state = states.get(incident.alarm_name)
        if state not in (None, "OK"):
            results.append(Reconciled(incident.dedup_key, incident.alarm_name, state, "kept", "alarm_not_ok"))
            continue
        reason = "alarm_ok" if state == "OK" else "alarm_gone"
        budget = remaining_seconds() if remaining_seconds is not None else None
        if budget is not None and budget < MIN_RESOLVE_SECONDS:
            # Out of time: the next run picks it up; running over would lose the work done so far.
            results.append(Reconciled(incident.dedup_key, incident.alarm_name, state, "kept", "deferred_no_time"))
            continue
        try:
            note = "alarm is OK in CloudWatch" if state == "OK" else "alarm no longer exists"
            integration.resolve_incident(
                incident.dedup_key, resolution=Resolution.RECONCILED, note=note, budget_seconds=budget
            )
        except IncidentNotFoundError:
            results.append(Reconciled(incident.dedup_key, incident.alarm_name, state, "kept", "already_resolved"))
        except BridgeError as exc:
            results.append(Reconciled(incident.dedup_key, incident.alarm_name, state, "failed", str(exc)))
        else:
            resolved = integration.get_incident(incident.dedup_key)
            seconds = resolved.resolution_seconds if resolved is not None else None
            results.append(Reconciled(incident.dedup_key, incident.alarm_name, state, "resolved", reason, seconds))
    return results
