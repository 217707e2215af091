"""Reconciliation: heal what notifications alone cannot, as carefully as delivery itself.

A scheduled run (and ``pagerduty-bridge reconcile``) does three things:

1. **Resolve** open incidents whose alarm is OK now, or gone (their OK notification never came: an
   alarm without OKActions, a lost delivery). Each alarm is identified by its ARN and read where it
   lives: a CloudWatch client per region, and for another account a read-only role assumed from
   ``RECONCILE_ROLE_ARNS`` — an alarm the run cannot see is left alone with a recorded reason, never
   called "gone". The resolve is conditional on the incident being unchanged since the run read it:
   a newer notification always wins (the run counts a lost race, it is no error).
2. **Confirm** incidents whose delivery had an unknown outcome: once every such request must have
   ended, their state is asserted again (``lifecycle.plan_confirm``). A closed incident whose delivery
   never finished (the run's own resolve that PagerDuty refused: no notification will finish it) is
   sent again once its lease is over, unless its alarm is in ALARM again.
3. **Page** an alarm whose silence is over while it is still in ALARM (or still without data, when
   missing data was the page the silence held).

Incidents that did not come from an alarm (forwarded messages, triggers made by hand) are told apart
by their origin and left alone. The run stops before the invocation's deadline; what is left waits for
the next run.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pagerduty_bridge import constants as c
from pagerduty_bridge import lifecycle
from pagerduty_bridge.delivery import Delivery, Outcome
from pagerduty_bridge.errors import BridgeError, ConcurrentUpdateError, rate_limited
from pagerduty_bridge.events_api import EventPayload, PagerDutyEvent
from pagerduty_bridge.lifecycle import Plan, Reason, lease_running
from pagerduty_bridge.models import EventAction, Incident, InsufficientDataAction, Origin, Resolution
from pagerduty_bridge.pacing import BATCH_PATIENCE_SECONDS, RATE_LIMIT_PATIENCE
from pagerduty_bridge.processing import UNBOUNDED, Deadline
from pagerduty_bridge.redaction import scrub
from pagerduty_bridge.rule_model import Rule
from pagerduty_bridge.runtime import AWS_CONNECT_TIMEOUT_SECONDS, AWS_MAX_ATTEMPTS, AWS_READ_TIMEOUT_SECONDS
from pagerduty_bridge.text import truncate

logger = logging.getLogger(__name__)

DESCRIBE_ALARMS_BATCH: Final = 100
"""``DescribeAlarms`` takes at most 100 alarm names per call."""
MAX_ALARM_NAME_LENGTH: Final = 255
"""CloudWatch's limit: a longer name (a forged notification's) cannot be an alarm."""
MAX_PROBLEM_LENGTH: Final = 1024
"""Why a region or account could not be read, as logged: enough for AWS's message, not a proxy's page."""
PLACE_READ_SECONDS: Final = (AWS_CONNECT_TIMEOUT_SECONDS + AWS_READ_TIMEOUT_SECONDS) * AWS_MAX_ATTEMPTS
"""The longest one place's read takes with the run's CloudWatch clients, when the place hangs (14 s).
A place after the first is read only while this much of the run is left."""
GONE: Final = "GONE"
INVISIBLE: Final = "INVISIBLE"
IN_FLIGHT: Final = "in_flight"
"""Why an incident is kept while another invocation's delivery holds its claim."""
_ALARM_ARN: Final = re.compile(
    r"^arn:(?P<partition>aws[\w-]*):cloudwatch:(?P<region>[\w-]+):(?P<account>\d{12}):alarm:(?P<name>.+)$"
)


@dataclass(frozen=True, slots=True)
class Reconciled:
    dedup_key: str
    alarm_name: str
    alarm_state: str | None
    """CloudWatch's current state, ``None`` when the alarm no longer exists or could not be read."""
    action: str
    """``resolved`` · ``kept`` · ``failed`` · ``confirmed`` · ``paged``."""
    reason: str
    resolution_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class AlarmRef:
    """Where an incident's alarm lives: account, region, name (from its ARN, else the run's own)."""

    account: str | None
    region: str | None
    name: str
    located: bool = True
    """The ARN said where the alarm lives. Without one it is only looked for in the run's own account
    and region: finding it there is finding it, not finding it is no proof that it is gone (it may
    live in another account or region, and be firing)."""


def alarm_ref(incident: Incident, own_account: str | None, own_region: str | None) -> AlarmRef:
    match = _ALARM_ARN.match(incident.alarm_arn or "")
    if match:
        return AlarmRef(match.group("account"), match.group("region"), match.group("name"))
    return AlarmRef(own_account, own_region, incident.alarm_name, located=False)


CloudWatchFactory = Callable[[str | None, str | None], Any]
"""(region, role ARN to assume or ``None``) → a CloudWatch client."""


class AlarmReader:
    """Reads alarms' current states, each in its own account and region."""

    def __init__(
        self,
        clients: CloudWatchFactory,
        *,
        own_account: str | None,
        own_region: str | None,
        role_arns: dict[str, str] | None = None,
    ) -> None:
        self._clients = clients
        self.own_account = own_account
        self.own_region = own_region
        self.role_arns = dict(role_arns or {})

    def states(self, refs: Iterable[AlarmRef], *, deadline: Deadline = UNBOUNDED) -> dict[AlarmRef, str]:
        """Each alarm's state (``ALARM``, ``OK``, ``INSUFFICIENT_DATA``), ``GONE`` when it does not
        exist where its ARN says it lives, ``INVISIBLE`` when the run cannot look there: no role for its
        account, its place answered an error (each such place logged once as a warning), it has no
        ARN and is not where the run looked, or a hung read of its place would not fit before ``deadline``
        (after the first place: each run reads one). The run's own place is read first, the others in a
        random order: a place left for lack of time is not the one left every run."""
        by_place: dict[tuple[str | None, str | None], list[AlarmRef]] = defaultdict(list)
        for ref in refs:
            by_place[(ref.account, ref.region)].append(ref)
        found: dict[AlarmRef, str] = {}
        places = _in_reading_order(by_place, self.own_account, self.own_region)
        for index, ((account, region), place_refs) in enumerate(places):
            remaining = deadline.remaining()
            if index > 0 and remaining is not None and remaining < PLACE_READ_SECONDS:
                logger.warning(
                    "alarms not read: no time left in this run",
                    extra={"account": account or self.own_account, "region": region, "incidents": len(place_refs)},
                )
                found.update(dict.fromkeys(place_refs, INVISIBLE))
                continue
            found.update(self._read_place(account, region, place_refs))
        return found

    def _read_place(self, account: str | None, region: str | None, place_refs: list[AlarmRef]) -> dict[AlarmRef, str]:
        role = None if account in (None, self.own_account) else self.role_arns.get(account or "")
        if account not in (None, self.own_account) and role is None:
            return dict.fromkeys(place_refs, INVISIBLE)
        names = [ref.name for ref in place_refs if 0 < len(ref.name) <= MAX_ALARM_NAME_LENGTH]
        where = region or self.own_region
        try:
            current = describe_alarms(self._clients(where, role), names)
        except (ClientError, BotoCoreError) as exc:
            # A region that is down or not enabled, a role not assumable (yet): this place's alarms
            # are unknown, not gone, and the rest of the run must not wait for it.
            problem = truncate(scrub(str(exc)), MAX_PROBLEM_LENGTH)
            logger.warning(
                "alarms unreadable",
                extra={
                    "account": account or self.own_account,
                    "region": where,
                    "role_arn": role,
                    "incidents": len(place_refs),
                    "problem": problem,
                },
            )
            return dict.fromkeys(place_refs, INVISIBLE)
        return {ref: current.get(ref.name, GONE if ref.located else INVISIBLE) for ref in place_refs}


def _in_reading_order(
    by_place: dict[tuple[str | None, str | None], list[AlarmRef]], own_account: str | None, own_region: str | None
) -> list[tuple[tuple[str | None, str | None], list[AlarmRef]]]:
    """The run's own place (and alarms known by name only) first, then the others shuffled."""
    places = list(by_place.items())
    random.shuffle(places)
    return sorted(
        places, key=lambda item: item[0][0] not in (None, own_account) or item[0][1] not in (None, own_region)
    )


def describe_alarms(cloudwatch: Any, names: Sequence[str]) -> dict[str, str]:
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


@dataclass
class Held:
    """A send its routing key's rate limit held back while others waited: where its result is, the
    incident's key, and what the send stands for (its result's action and reason)."""

    index: int
    key: str
    done: str = "confirmed"
    reason: str | None = None


class SilenceCheck(Protocol):
    def is_active(self, silence_id: str, now: datetime) -> bool: ...

    def covering(self, known: Mapping[str, str], now: datetime) -> str | None: ...


@dataclass
class Reconciliation:
    """One run's collaborators: the delivery protocol, where alarms are read, the silences, the clock."""

    delivery: Delivery
    alarms: AlarmReader
    clock: Callable[[], datetime]
    silences: SilenceCheck | None = None
    deadline: Deadline = UNBOUNDED
    retry_budget_seconds: float = 30.0
    results: list[Reconciled] = field(default_factory=list)
    insufficient_data_clears: bool = False
    """Missing data resolves every alarm (``insufficient_data_clears``): INSUFFICIENT_DATA counts as OK."""
    states: dict[AlarmRef, str] = field(default_factory=dict)
    """Each alarm's state as the run read it."""
    held: list[Held] = field(default_factory=list)
    """The sends their routing key's rate limit held back on the first pass."""

    def run(self) -> list[Reconciled]:
        """Each job once, each send waiting for its routing key's rate limit only briefly: one throttled
        key's waits spent the run, and the other services' incidents behind it were not even started.
        The sends so held are tried again after the others (``_again``), with what is left."""
        token = RATE_LIMIT_PATIENCE.set(BATCH_PATIENCE_SECONDS)
        try:
            self._first_pass()
        finally:
            RATE_LIMIT_PATIENCE.reset(token)
        self._again()
        return self.results

    def _first_pass(self) -> None:
        store = self.delivery.store
        active = [i for i in store.list_active() if i.origin is Origin.ALARM]
        watched = store.list_watched()
        self.states = self.alarms.states(
            (
                alarm_ref(i, self.alarms.own_account, self.alarms.own_region)
                for i in [*active, *(w for w in watched if w.origin is Origin.ALARM)]
            ),
            deadline=self.deadline,
        )
        state = self._state
        for incident in active:
            self._resolve_if_done(incident, state(incident))
        for incident in [*active, *watched]:
            if _in_flight(incident, self.clock()):
                continue  # its invocation may still be sending: it finishes (or fails) on its own
            if incident.unconfirmed_until is not None:
                self._confirm(incident)
            elif incident.pending_action is not None:
                self._finish(incident, state(incident))
        for incident in watched:
            if incident.last_reason == Reason.SILENCED.value and incident.origin is Origin.ALARM:
                self._page_after_silence(incident, state(incident))

    def _state(self, incident: Incident) -> str:
        return self.states.get(alarm_ref(incident, self.alarms.own_account, self.alarms.own_region), INVISIBLE)

    def _again(self) -> None:
        """The sends the rate limit held back, in order, as a pending delivery is finished (the held
        send left its claim pending): each replaces its first try's result; one that no longer fits
        keeps it, and the next run sends it."""
        held, self.held = self.held, []
        for one in held:
            if self.deadline.record_budget(self.retry_budget_seconds) is None:
                return
            current = self.delivery.store.get(one.key)
            if current is None or current.pending_action is None or _in_flight(current, self.clock()):
                continue
            self._finish(current, self._state(current), done=one.done, reason=one.reason)
            self.results[one.index] = self.results.pop()

    # --- the three jobs --------------------------------------------------------------------------------

    def _resolve_if_done(self, incident: Incident, state: str) -> None:
        if state == INVISIBLE:
            self._keep(incident, None, "alarm_not_visible")
            return
        cleared = state in (GONE, "OK") or (state == "INSUFFICIENT_DATA" and self.insufficient_data_clears)
        if not cleared:
            self._keep(incident, state, "alarm_not_ok")
            return
        if _in_flight(incident, self.clock()):
            # Another invocation is sending for it right now: it finishes on its own, the next run
            # resolves what is still open. Not a failed delivery: no health alarm for a busy incident.
            self._keep(incident, None if state == GONE else state, IN_FLIGHT)
            return
        if incident.last_reason == lifecycle.REOPENED_IN_PAGERDUTY:
            self._keep(incident, state, lifecycle.REOPENED_IN_PAGERDUTY)
            return
        note, reason = _CLEARED[state]
        outcome = self._run(
            incident,
            lambda stored: lifecycle.plan_close(
                stored, incident.dedup_key, Resolution.RECONCILED, self.clock(), note=note, observed=incident
            ),
            _resolve_event,
        )
        shown = None if state == GONE else state
        self._report(incident, shown, outcome, done="resolved", reason=reason)

    def _confirm(self, incident: Incident) -> None:
        outcome = self._run(incident, lambda stored: lifecycle.plan_confirm(stored, self.clock()), _asserting_event)
        self._report(incident, incident.alarm_state.value if incident.alarm_state else None, outcome, done="confirmed")

    def _finish(self, incident: Incident, state: str, *, done: str = "confirmed", reason: str | None = None) -> None:
        """An incident whose delivery never finished (its notification's retries all failed, or the run's
        own resolve did): send it again, a trigger while its alarm may fire, so the page does not wait
        for a redrive. A pending resolve waits while its alarm is in ALARM (the page stays; the newer
        notification decides); a trigger whose alarm is OK or gone was resolved just before."""
        if incident.origin is Origin.ALARM and incident.pending_action is EventAction.RESOLVE and state == "ALARM":
            self._keep(incident, state, "alarm_not_ok")
            return
        outcome = self._run(incident, lambda stored: lifecycle.plan_confirm(stored, self.clock()), _asserting_event)
        self._report(incident, state if state not in (GONE, INVISIBLE) else None, outcome, done=done, reason=reason)

    def _page_after_silence(self, incident: Incident, state: str) -> None:
        silence = incident.silence_id
        if silence is not None and self.silences is not None and self.silences.is_active(silence, self.clock()):
            return
        if state == INVISIBLE:
            # Unknown is not recovered: CloudWatch says ALARM only once, so keep watching until the alarm
            # can be read or speaks again.
            self._keep(incident, None, "alarm_not_visible")
            return
        if not _still_paging(incident, state):
            # The alarm recovered during its silence: nothing to page, nothing more to watch.
            self._run(incident, lambda stored: _plan_unwatch(stored, incident, self.clock()), _asserting_event)
            return
        if self.silences is not None:
            ref = alarm_ref(incident, self.alarms.own_account, self.alarms.own_region)
            other = self.silences.covering(_known_values(incident, ref), self.clock())
            if other is not None:
                # Another silence holds it now (back-to-back windows): it pages when that one is over.
                self._run(
                    incident, lambda stored: _plan_silenced(stored, incident, other, self.clock()), _asserting_event
                )
                self._keep(incident, state, Reason.SILENCED.value)
                return
        outcome = self._run(
            incident, lambda stored: _plan_after_silence(stored, incident, self.clock()), _asserting_event
        )
        self._report(incident, state, outcome, done="paged", reason="silence_over")

    # --- helpers ----------------------------------------------------------------------------------------

    def _run(
        self, incident: Incident, planner: Callable[[Incident | None], Plan], render: Callable[[Plan], PagerDutyEvent]
    ) -> Outcome | BridgeError | None:
        budget = self.deadline.record_budget(self.retry_budget_seconds)
        if budget is None:
            return None
        try:
            outcome: Outcome | BridgeError = self.delivery.run(
                incident.dedup_key, planner, render, budget_seconds=budget
            )
        except BridgeError as exc:
            outcome = exc
        error = outcome if isinstance(outcome, BridgeError) else outcome.error
        if rate_limited(error) and RATE_LIMIT_PATIENCE.get() is not None:
            self.held.append(Held(len(self.results), incident.dedup_key))
        return outcome

    def _keep(self, incident: Incident, state: str | None, reason: str) -> None:
        self.results.append(Reconciled(incident.dedup_key, incident.alarm_name, state, "kept", reason))

    def _report(
        self,
        incident: Incident,
        state: str | None,
        outcome: Outcome | BridgeError | None,
        *,
        done: str,
        reason: str | None = None,
    ) -> None:
        if self.held and self.held[-1].index == len(self.results):  # what its send again stands for
            self.held[-1].done, self.held[-1].reason = done, reason
        if outcome is None:
            self._keep(incident, state, "deferred_no_time")
            return
        error = outcome if isinstance(outcome, BridgeError) else outcome.error
        if isinstance(error, ConcurrentUpdateError):
            # A delivery claimed the incident after the run read it: left to it, as above.
            self._keep(incident, state, IN_FLIGHT)
            return
        if error is not None:
            self.results.append(Reconciled(incident.dedup_key, incident.alarm_name, state, "failed", str(error)))
            return
        assert isinstance(outcome, Outcome)
        if outcome.action is None:
            self._keep(incident, state, outcome.reason)
            return
        seconds = outcome.incident.resolution_seconds if outcome.incident is not None and done == "resolved" else None
        self.results.append(
            Reconciled(incident.dedup_key, incident.alarm_name, state, done, reason or outcome.reason, seconds)
        )


_CLEARED: Final = {
    "OK": ("alarm is OK in CloudWatch", "alarm_ok"),
    GONE: ("alarm no longer exists", "alarm_gone"),
    "INSUFFICIENT_DATA": ("alarm has insufficient data (INSUFFICIENT_DATA_ACTION=resolve)", "alarm_insufficient_data"),
}
"""Each state that clears an alarm: the resolution's note, the result's reason."""


def insufficient_data_clears(default: InsufficientDataAction, rules: Iterable[Rule]) -> bool:
    """Missing data resolves every alarm: the default says so and no rule says otherwise. The run cannot
    tell which rule an alarm falls under (the table keeps no dimensions or tags), so one rule that may
    ignore or page missing data makes it keep every such incident, as before."""
    return default is InsufficientDataAction.RESOLVE and all(
        rule.insufficient_data in (None, InsufficientDataAction.RESOLVE) for rule in rules
    )


def _still_paging(incident: Incident, state: str) -> bool:
    """The alarm is still in the state whose page the silence held: ALARM, or INSUFFICIENT_DATA when
    missing data was what paged (``INSUFFICIENT_DATA_ACTION=trigger``: a host that stopped reporting
    has not recovered because its silence ended)."""
    silenced = incident.alarm_state.value if incident.alarm_state is not None else None
    return state == "ALARM" or (state == "INSUFFICIENT_DATA" and silenced == state)


def _in_flight(incident: Incident, now: datetime) -> bool:
    """A delivery holds the incident's claim and its lease is running."""
    return (
        incident.pending_action is not None
        and incident.lease_until is not None
        and lease_running(incident.lease_until, now)
    )


def _resolve_event(plan: Plan) -> PagerDutyEvent:
    assert plan.target is not None
    return PagerDutyEvent(event_action=EventAction.RESOLVE, dedup_key=plan.target.dedup_key)


def _asserting_event(plan: Plan) -> PagerDutyEvent:
    """The event that asserts an incident's state from what the table keeps of it."""
    target = plan.target
    assert target is not None and plan.action is not None
    if plan.action is not EventAction.TRIGGER:
        return PagerDutyEvent(event_action=plan.action, dedup_key=target.dedup_key)
    return PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=target.dedup_key,
        payload=EventPayload(
            summary=target.summary or f"{target.alarm_name} is in ALARM",
            source=target.alarm_arn or target.alarm_name,
            severity=target.severity,
            timestamp=target.state_changed_at,
            custom_details={"alarmName": target.alarm_name, "note": f"sent by reconciliation ({plan.reason.value})"},
        ),
    )


def _plan_after_silence(stored: Incident | None, observed: Incident, now: datetime) -> Plan:
    """The silence is over and the alarm is still in ALARM: open the incident it would have opened."""
    if not lifecycle.unchanged(stored, observed):
        return Plan(Reason.RECONCILE_RACE_LOST)
    target = lifecycle.triggered(stored, stored.dedup_key, stored.alarm_name, stored.severity, stored.summary, at=now)
    target = replace(
        target,
        last_reason=None,
        silence_id=None,
        state_changed_at=stored.state_changed_at,
        alarm_state=stored.alarm_state,
        alarm_arn=stored.alarm_arn,
        updated_at=now,
    )
    return Plan(Reason.ALARM, EventAction.TRIGGER, target)


def _known_values(incident: Incident, ref: AlarmRef) -> dict[str, str]:
    """What a silence can be judged on from the table alone (``silences.alarm_values`` has the rest)."""
    known = {"alarm_name": incident.alarm_name, "dedup_key": incident.dedup_key, "severity": incident.severity.value}
    if ref.located:
        known.update(account=ref.account or "", region=ref.region or "")
    return known


def _plan_silenced(stored: Incident | None, observed: Incident, silence_id: str, now: datetime) -> Plan:
    """Another silence covers the alarm now: record it, so the run pages when that one is over."""
    if not lifecycle.unchanged(stored, observed):
        return Plan(Reason.RECONCILE_RACE_LOST)
    return Plan(Reason.SILENCED, None, replace(stored, silence_id=silence_id, updated_at=now))


def _plan_unwatch(stored: Incident | None, observed: Incident, now: datetime) -> Plan:
    if not lifecycle.unchanged(stored, observed):
        return Plan(Reason.RECONCILE_RACE_LOST)
    return Plan(Reason.SILENCED, None, replace(stored, last_reason=None, silence_id=None, updated_at=now))


def summary(results: Sequence[Reconciled]) -> dict[str, int]:
    """How many incidents each action touched."""
    counts = {"reconciled": len(results)}
    for action in ("resolved", "kept", "failed", "confirmed", "paged"):
        counts[action] = sum(r.action == action for r in results)
    counts["race_lost"] = sum(r.reason == Reason.RECONCILE_RACE_LOST.value for r in results)
    return counts


def count(results: Sequence[Reconciled], metric: Callable[[str, float, str], None]) -> None:
    """The metrics a run stands for: resolutions (with their time), failures, races lost."""
    for result in results:
        if result.action == "resolved":
            metric(c.METRIC_INCIDENT_RESOLVED, 1, "Count")
            metric(c.METRIC_INCIDENT_RESOLVED_BY.format(how="Reconciled"), 1, "Count")
            if result.resolution_seconds is not None:
                metric(c.METRIC_RESOLUTION_TIME, result.resolution_seconds, "Seconds")
        elif result.action == "paged":
            metric(c.METRIC_INCIDENT_TRIGGERED, 1, "Count")
        elif result.action == "failed":
            metric(c.METRIC_DELIVERY_FAILED, 1, "Count")
        elif result.reason == Reason.RECONCILE_RACE_LOST.value:
            metric(c.METRIC_RECONCILE_RACE_LOST, 1, "Count")
