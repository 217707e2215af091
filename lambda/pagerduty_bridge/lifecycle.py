"""Every decision about an incident, in pure functions: what PagerDuty must hear and what the table keeps.

``plan(alarm, stored, policy, now)`` is the lifecycle table (README, "What it does"):

| new state          | incident open?      | action                                    |
|--------------------|---------------------|-------------------------------------------|
| ALARM              | either              | trigger (an acknowledged one stays acked) |
| OK                 | yes                 | resolve                                   |
| OK                 | no, old state ALARM | resolve (it may predate the table)        |
| OK                 | no, other old state | none                                      |
| INSUFFICIENT_DATA  | either              | per the INSUFFICIENT_DATA policy          |
| any, not newer than the stored state change  | | none (``stale`` / ``duplicate``)         |

(at an equal state-change time an ALARM counts as newer than any other state: ``wins_tie``)

and around it: a trigger the rules suppress, or a silence covers, is recorded and not paged; an OK
for an incident a webhook reported resolved in PagerDuty still sends its resolve (that resolution may
have been another service's incident under the same key); a notification with the same
state-change time as a stored one whose delivery never completed (``pending_action`` still set) is a
redelivery and sends that action again; a newer notification that needs no action of its own finishes
such an unfinished delivery, so overtaking a crashed one never orphans its event.

The other paths — a trigger made by hand, acknowledge, resolve (by a person or by reconciliation), a
forwarded message, confirming a delivery whose outcome was unknown — decide here too. A ``Plan`` says
what to send (``action``) and what the table holds afterwards (``target``; ``None``: unchanged); the
delivery protocol (``delivery.py``) carries it out. Reasons are a ``Reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final, TypeGuard

from pagerduty_bridge import constants as c
from pagerduty_bridge.models import (
    AlarmNotification,
    AlarmState,
    AlertSeverity,
    EventAction,
    Incident,
    IncidentStatus,
    InsufficientDataAction,
    Origin,
    Resolution,
)
from pagerduty_bridge.timeutil import MAX_CLOCK_SKEW, shifted

if TYPE_CHECKING:
    from pagerduty_bridge.webhook_sync import IncidentWebhook


class Reason(StrEnum):
    """Why a plan sends what it sends (or nothing)."""

    ALARM = "alarm"
    ALARM_OK = "alarm_ok"
    ALARM_OK_UNTRACKED = "alarm_ok_untracked"
    NO_OPEN_INCIDENT = "no_open_incident"
    RESOLVED_IN_PAGERDUTY = "resolved_in_pagerduty"
    INSUFFICIENT_DATA_TRIGGERED = "insufficient_data_triggered"
    INSUFFICIENT_DATA_RESOLVED = "insufficient_data_resolved"
    INSUFFICIENT_DATA_RESOLVED_UNTRACKED = "insufficient_data_resolved_untracked"
    INSUFFICIENT_DATA_IGNORED = "insufficient_data_ignored"
    STALE = "stale"
    DUPLICATE = "duplicate"
    REDELIVERY = "redelivery"
    SUPPRESSED = "suppressed"
    SILENCED = "silenced"
    MANUAL_TRIGGER = "manual_trigger"
    MANUAL_ACKNOWLEDGE = "manual_acknowledge"
    MANUAL_RESOLVE = "manual_resolve"
    AUTO_RESOLVE = "auto_resolve"
    RECONCILED_RESOLVE = "reconciled_resolve"
    RECONCILE_RACE_LOST = "reconcile_race_lost"
    CONFIRM = "confirm"
    CONFIRMED = "confirmed"
    UNRECOGNIZED_FORWARDED = "unrecognized_forwarded"
    UNRECOGNIZED_DROPPED = "unrecognized_dropped"
    CONTROL_MESSAGE = "control_message"
    NOT_FOUND = "not_found"
    ALREADY_RESOLVED = "already_resolved"
    PAGERDUTY_UPDATE = "pagerduty_update"
    WEBHOOK_REDELIVERED = "webhook_redelivered"
    WEBHOOK_OUT_OF_ORDER = "webhook_out_of_order"
    WEBHOOK_NOT_OURS = "webhook_not_ours"


NOT_RECORDING: Final = frozenset({Reason.STALE, Reason.DUPLICATE, Reason.INSUFFICIENT_DATA_IGNORED})
"""Reasons whose notification does not move the alarm's remembered state (and so its ordering mark).

Not when it is stale or a duplicate, and not when it is an ignored INSUFFICIENT_DATA: that changes
nothing, so an older OK arriving after it must still resolve, exactly as it would have had the two
arrived in order."""
_OPENING: Final = frozenset({Reason.ALARM, Reason.INSUFFICIENT_DATA_TRIGGERED})


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do about one incident: send ``action`` (``None``: nothing), then hold ``target``."""

    reason: Reason
    action: EventAction | None = None
    target: Incident | None = None
    """What the table should hold afterwards; ``None``: write nothing."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How this alarm pages, as its rules and silences say (resolved before planning)."""

    dedup_key: str
    routing_alias: str = c.DEFAULT_ROUTING_KEY_ALIAS
    insufficient_data: InsufficientDataAction = InsufficientDataAction.IGNORE
    suppress: bool = False
    silence_id: str | None = None
    severity: AlertSeverity = AlertSeverity.CRITICAL
    summary: str = ""
    """The trigger's severity and summary, as its event says (kept with the incident)."""


def records_state(reason: Reason) -> bool:
    return reason not in NOT_RECORDING


def may_be_open(stored: Incident | None) -> bool:
    """Open in the table, or an event still on its way (PagerDuty may have the alert open until a
    pending resolve is accepted, or already open from a pending trigger)."""
    if stored is None:
        return False
    return stored.is_open or stored.pending_action is not None


# --- an alarm's state change ------------------------------------------------------------------------


def decide(
    alarm: AlarmNotification,
    stored: Incident | None,
    insufficient_data: InsufficientDataAction = InsufficientDataAction.IGNORE,
) -> tuple[EventAction | None, Reason]:
    """The lifecycle table itself: the action for ``alarm`` given what the table holds for its key."""
    if stored is not None and stored.state_changed_at is not None:
        if alarm.state_change_time < stored.state_changed_at:
            return None, Reason.STALE
        if alarm.state_change_time == stored.state_changed_at and not wins_tie(alarm, stored):
            if stored.pending_action is not None:
                return stored.pending_action, Reason.REDELIVERY
            return None, Reason.DUPLICATE
    if alarm.new_state is AlarmState.ALARM:
        return EventAction.TRIGGER, Reason.ALARM
    if alarm.new_state is AlarmState.OK:
        return _resolve_if_open(alarm, stored, Reason.ALARM_OK, Reason.ALARM_OK_UNTRACKED)
    if insufficient_data is InsufficientDataAction.TRIGGER:
        return EventAction.TRIGGER, Reason.INSUFFICIENT_DATA_TRIGGERED
    if insufficient_data is InsufficientDataAction.RESOLVE:
        return _resolve_if_open(
            alarm, stored, Reason.INSUFFICIENT_DATA_RESOLVED, Reason.INSUFFICIENT_DATA_RESOLVED_UNTRACKED
        )
    return None, Reason.INSUFFICIENT_DATA_IGNORED


def wins_tie(alarm: AlarmNotification, stored: Incident) -> bool:
    """Whether ``alarm``, stamped with the same state-change time as the stored one, is taken as newer.

    Which of two state changes stamped alike came last cannot be told (a sender stamping whole
    seconds, two alarms sharing a dedup key), and SNS delivers them in any order. An ALARM wins over
    any other state, so the end is the same in either order and is never a lost page: an incident
    left open for an alarm that is OK is resolved by the scheduled run, a page never sent by nothing.
    """
    return alarm.new_state is AlarmState.ALARM and stored.alarm_state not in (None, AlarmState.ALARM)


def _resolve_if_open(
    alarm: AlarmNotification, stored: Incident | None, reason: Reason, untracked: Reason
) -> tuple[EventAction | None, Reason]:
    if may_be_open(stored):
        return EventAction.RESOLVE, reason
    if stored is not None and stored.resolution is Resolution.PAGERDUTY:
        # The resolution a webhook reported may be of another service's incident under the same key (an
        # account-wide subscription): resolving changes nothing at PagerDuty if it was the bridge's own.
        return EventAction.RESOLVE, Reason.RESOLVED_IN_PAGERDUTY
    if stored is not None and stored.last_reason == Reason.SILENCED:
        # Its last ALARM was silenced while nothing was open (an earlier incident, if any, is resolved
        # already): the table knows nothing is open in PagerDuty, so there is nothing to resolve.
        return None, Reason.NO_OPEN_INCIDENT
    if alarm.old_state is AlarmState.ALARM:
        # The incident may predate the table (or its record expired): resolving is harmless.
        return EventAction.RESOLVE, untracked
    return None, Reason.NO_OPEN_INCIDENT


def plan(alarm: AlarmNotification, stored: Incident | None, policy: Policy, now: datetime) -> Plan:
    """What one alarm state change does: the lifecycle table, then suppression and silences, then
    finishing an unfinished delivery (see the module's docs)."""
    stored = believed(stored, now)
    action, reason = decide(alarm, stored, policy.insufficient_data)
    if action is EventAction.TRIGGER and reason in _OPENING:
        if policy.silence_id is not None:
            action, reason = None, Reason.SILENCED
        elif policy.suppress:
            action, reason = None, Reason.SUPPRESSED
    if action is None:
        return _no_action(alarm, stored, policy, reason, now)
    if reason is Reason.REDELIVERY:
        assert stored is not None
        return Plan(reason, action, stored)
    if action is EventAction.TRIGGER:
        target = triggered(
            stored, policy.dedup_key, alarm.alarm_name, policy.severity, policy.summary, at=alarm.state_change_time
        )
    else:
        target = resolved(stored, policy.dedup_key, alarm.alarm_name, at=alarm.state_change_time, now=now)
    # A resolve goes where the incident was opened, whatever the rules say now: only its key can close it.
    kept = stored is not None and (stored.is_open or action is EventAction.RESOLVE)
    alias = target.routing_key_alias if kept else policy.routing_alias
    return Plan(reason, action, _with_alarm_state(target, alarm, now, routing_key_alias=alias))


def believed(stored: Incident | None, now: datetime) -> Incident | None:
    """``stored`` without a state-change time implausibly far ahead of ``now`` (``MAX_CLOCK_SKEW``): no
    real state change is stamped there (one written by hand, or before such times were refused on
    receipt), and kept as the ordering mark it made every later notification of its alarm stale."""
    if stored is None or stored.state_changed_at is None or stored.state_changed_at <= shifted(now, MAX_CLOCK_SKEW):
        return stored
    return replace(stored, state_changed_at=None)


MAX_LEASE: Final = timedelta(hours=1)
"""Longer than any lease a delivery takes (Lambda's longest invocation is 15 minutes)."""


def lease_running(lease_until: datetime, now: datetime) -> bool:
    """Whether a claim's lease still runs at ``now``. One ending further ahead than any lease is taken
    (written by hand, or by a clock far ahead) is not believed: it held every notification of its
    alarm back ("in flight") until then, for good."""
    return now < lease_until <= shifted(now, MAX_LEASE)


def _no_action(
    alarm: AlarmNotification, stored: Incident | None, policy: Policy, reason: Reason, now: datetime
) -> Plan:
    recorded = stored
    if records_state(reason):
        if stored is not None:
            recorded = _with_alarm_state(stored, alarm, now)
        elif reason in (Reason.SILENCED, Reason.SUPPRESSED, Reason.NO_OPEN_INCIDENT):
            # Nothing is open, and the table must say so with this state change's time: an older ALARM
            # arriving after it (SNS does not keep order) is then stale, not a page for a recovered alarm.
            # A suppressed or silenced trigger is recorded too: the table shows why nothing was paged.
            recorded = Incident(
                dedup_key=policy.dedup_key,
                alarm_name=alarm.alarm_name,
                status=IncidentStatus.RESOLVED,
                severity=policy.severity,
                summary=policy.summary,
                routing_key_alias=policy.routing_alias,
                updated_at=now,
            )
            recorded = _with_alarm_state(recorded, alarm, now)
        if recorded is not None and reason in (Reason.SILENCED, Reason.SUPPRESSED):
            recorded = replace(recorded, last_reason=reason.value, silence_id=policy.silence_id)
    unfinished = stored.pending_action if stored is not None else None
    if unfinished is not None and reason not in (Reason.STALE, Reason.DUPLICATE):
        # An earlier delivery never finished (its invocation died or gave up) and this newer
        # notification needs nothing of its own: finish that one now, or it is lost.
        return Plan(Reason.REDELIVERY, unfinished, recorded)
    return Plan(reason, None, recorded if recorded is not stored else None)


def _with_alarm_state(
    incident: Incident, alarm: AlarmNotification, now: datetime, *, routing_key_alias: str | None = None
) -> Incident:
    """``incident`` marked with the alarm's newest state (its ordering mark) and where it came from."""
    return replace(
        incident,
        state_changed_at=alarm.state_change_time,
        alarm_state=alarm.new_state,
        alarm_arn=alarm.alarm_arn if alarm.alarm_arn is not None else incident.alarm_arn,
        origin=Origin.ALARM,
        last_reason=None,
        silence_id=None,
        updated_at=now,
        routing_key_alias=routing_key_alias or incident.routing_key_alias,
    )


# --- the incident after an event ---------------------------------------------------------------------


def triggered(
    stored: Incident | None, key: str, alarm_name: str, severity: AlertSeverity, summary: str, *, at: datetime
) -> Incident:
    """The incident after a trigger: an open one keeps its start and acknowledgement."""
    if stored is not None and stored.is_open:
        return replace(stored, severity=severity, summary=summary, updated_at=at)
    return Incident(
        dedup_key=key,
        alarm_name=alarm_name,
        status=IncidentStatus.TRIGGERED,
        severity=severity,
        summary=summary,
        routing_key_alias=stored.routing_key_alias if stored else c.DEFAULT_ROUTING_KEY_ALIAS,
        state_changed_at=stored.state_changed_at if stored else None,
        unconfirmed_until=stored.unconfirmed_until if stored else None,
        triggered_at=at,
        updated_at=at,
        version=stored.version if stored else 1,
    )


def resolved(stored: Incident | None, key: str, alarm_name: str, *, at: datetime, now: datetime) -> Incident:
    """The incident after its alarm's resolve (one never tracked is recorded as resolved)."""
    if stored is not None and not stored.is_open:
        return stored
    if stored is not None:
        return _closed(stored, Resolution.AUTO, at=at)
    return Incident(
        dedup_key=key,
        alarm_name=alarm_name,
        status=IncidentStatus.RESOLVED,
        resolved_at=at,
        resolution=Resolution.AUTO,
        updated_at=now,
    )


def _closed(
    incident: Incident,
    resolution: Resolution,
    *,
    at: datetime,
    note: str | None = None,
    by: str | None = None,
    updated_at: datetime | None = None,
) -> Incident:
    """``incident`` resolved: when, how, why and by whom. Every path that resolves sets all four, so
    nothing of an earlier resolution (a note, a responder) survives a reopening into the next one."""
    return replace(
        incident,
        status=IncidentStatus.RESOLVED,
        resolved_at=at,
        resolution=resolution,
        resolution_note=note,
        resolved_by=by,
        updated_at=incident.updated_at if updated_at is None else updated_at,
    )


# --- the other paths ----------------------------------------------------------------------------------


def plan_manual_trigger(
    stored: Incident | None, key: str, alarm_name: str, severity: AlertSeverity, summary: str, now: datetime
) -> Plan:
    """A trigger made by hand (the seed API, the CLI): always sent; PagerDuty deduplicates by key."""
    target = replace(triggered(stored, key, alarm_name, severity, summary, at=now), origin=Origin.MANUAL)
    return Plan(Reason.MANUAL_TRIGGER, EventAction.TRIGGER, target)


def _refused(stored: Incident | None) -> Plan:
    """Why acknowledging or resolving ``stored`` sends nothing (it is not open)."""
    return Plan(Reason.NOT_FOUND if stored is None else Reason.ALREADY_RESOLVED)


def plan_acknowledge(stored: Incident | None, key: str, now: datetime) -> Plan:
    """Acknowledge an open incident; an unknown or resolved one is not found (nothing sent)."""
    if stored is None or not stored.is_open:
        return _refused(stored)
    target = replace(stored, status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=now, updated_at=now)
    return Plan(Reason.MANUAL_ACKNOWLEDGE, EventAction.ACKNOWLEDGE, target)


_CLOSING_REASONS: Final = {
    Resolution.MANUAL: Reason.MANUAL_RESOLVE,
    Resolution.AUTO: Reason.AUTO_RESOLVE,
    Resolution.RECONCILED: Reason.RECONCILED_RESOLVE,
}


def unchanged(stored: Incident | None, observed: Incident) -> TypeGuard[Incident]:
    """Whether the incident is still as a reconciliation run read it (``observed``): when it is not (a
    newer notification, another run wrote since), the run's view is out of date and the newer state wins
    (``Reason.RECONCILE_RACE_LOST``)."""
    return stored is not None and stored.version == observed.version


def plan_close(
    stored: Incident | None,
    key: str,
    resolution: Resolution,
    now: datetime,
    *,
    note: str | None = None,
    observed: Incident | None = None,
) -> Plan:
    """Resolve an open incident (by a person, or by reconciliation with ``note`` saying why).

    ``observed`` is the incident as a reconciliation run read it: when it has changed since (a newer
    notification, another run), the run's view is out of date and the newer state wins.
    """
    if observed is not None and not unchanged(stored, observed):
        return Plan(Reason.RECONCILE_RACE_LOST)
    if stored is not None and not stored.is_open and stored.pending_action is EventAction.RESOLVE:
        # Recorded resolved, its resolve never delivered (PagerDuty unreachable): resolving it again is
        # sending that resolve, not "nothing to resolve" while PagerDuty's incident stays open.
        return Plan(Reason.REDELIVERY, EventAction.RESOLVE, stored)
    if stored is None or not stored.is_open:
        return _refused(stored)
    target = _closed(stored, resolution, at=now, note=note, updated_at=now)
    return Plan(_CLOSING_REASONS.get(resolution, Reason.MANUAL_RESOLVE), EventAction.RESOLVE, target)


def plan_forward(stored: Incident | None, key: str, severity: AlertSeverity, summary: str, received: datetime) -> Plan:
    """Forward a message that is not an alarm, once: its key is a hash of its text."""
    if stored is not None and stored.pending_action is not None:
        return Plan(Reason.REDELIVERY, EventAction.TRIGGER, stored)
    if stored is not None:
        return Plan(Reason.DUPLICATE)
    target = replace(
        triggered(None, key, UNRECOGNIZED_ALARM_NAME, severity, summary, at=received), origin=Origin.MESSAGE
    )
    return Plan(Reason.UNRECOGNIZED_FORWARDED, EventAction.TRIGGER, target)


UNRECOGNIZED_ALARM_NAME: Final = "(message on the alarm topic)"
"""The alarm name a forwarded message's incident is recorded under."""
REOPENED_IN_PAGERDUTY: Final = "reopened_in_pagerduty"
"""A responder reopened the incident: reconciliation leaves it open until its alarm says otherwise."""


def plan_confirm(stored: Incident | None, now: datetime) -> Plan:
    """Assert an incident's state again once every request whose outcome was unknown must have ended:
    a late-landing trigger cannot keep a resolved alert open, nor a late resolve close an open one.

    An unfinished delivery is sent again first (the delivery protocol waits out a running lease): the
    scheduled run's own resolve that PagerDuty refused has no notification to finish it.
    """
    if stored is not None and stored.pending_action is not None:
        return Plan(Reason.REDELIVERY, stored.pending_action, stored)
    if stored is None or stored.unconfirmed_until is None:
        return Plan(Reason.CONFIRMED)
    action = EventAction.TRIGGER if stored.is_open else EventAction.RESOLVE
    settled = stored.unconfirmed_until <= now
    target = replace(stored, unconfirmed_until=None if settled else stored.unconfirmed_until, updated_at=now)
    return Plan(Reason.CONFIRM, action, target)


# --- PagerDuty's side, reported back by webhook ----------------------------------------------------------


def plan_webhook(stored: Incident | None, event: IncidentWebhook, now: datetime, *, attributed: bool = False) -> Plan:
    """What a PagerDuty incident event changes in the table (nothing is sent back).

    A redelivered event changes nothing; an event older than the incident's last PagerDuty-side change
    never moves it backwards, nor does one older than the bridge's last trigger (PagerDuty opened a new
    incident for that trigger if the one the event is about was resolved by then: a late resolution of
    the old one must not close the new one); a webhook never reopens an incident whose alarm is OK
    unless PagerDuty says ``reopened``, and a reopening older than the incident's resolution does not
    (delivered late, or again once its id is forgotten: that resolution reached PagerDuty after it).
    Acknowledgements and resolutions made in PagerDuty are recorded with who and when.

    Only an event ``attributed`` to the bridge's own service ends a delivery waiting to be sent again:
    one that may be about another service's incident under the same key (an account-wide subscription)
    must not stop the bridge's page, nor its resolve.
    """
    if stored is None:
        return Plan(Reason.WEBHOOK_NOT_OURS)
    if event.event_id in stored.webhook_event_ids:
        return Plan(Reason.WEBHOOK_REDELIVERED)
    if event.event_type in DETAIL_EVENTS:
        return _plan_detail(stored, event, now)
    marks = [stored.pd_updated_at, _trigger_mark(stored, event)]
    if event.event_type == "incident.reopened" and not stored.is_open:
        marks.append(stored.resolved_at)
    if any(mark is not None and event.occurred_at < mark for mark in marks):
        return Plan(Reason.WEBHOOK_OUT_OF_ORDER, None, _remember(stored, event, now, newest=False))
    applied = _apply_webhook(_remember(stored, event, now, newest=True), event, now if attributed else None)
    return Plan(Reason.PAGERDUTY_UPDATE, None, applied)


def _trigger_mark(stored: Incident, event: IncidentWebhook) -> datetime | None:
    """Before when a PagerDuty-side change is about an earlier incident of the key: the acceptance of the
    bridge's last trigger (``trigger_sent_at``). An ``incident.triggered`` is PagerDuty opening an
    incident, and the one the last trigger opened occurs while that trigger is on its way, before its
    acceptance: for it the mark is the alarm's change to ALARM (``triggered_at``), which every trigger
    follows and which the earlier incident's opening preceded (its alarm went OK in between)."""
    mark = stored.trigger_sent_at
    if mark is None or event.event_type != "incident.triggered" or stored.triggered_at is None:
        return mark
    return min(mark, stored.triggered_at)


DETAIL_EVENTS: Final = frozenset(
    {
        "incident.reassigned",
        "incident.escalated",
        "incident.delegated",
        "incident.priority_updated",
        "incident.annotated",
    }
)
"""Events that change no state of the incident: recorded (``pd_details``), never its ordering mark."""


def _plan_detail(stored: Incident, event: IncidentWebhook, now: datetime) -> Plan:
    """A reassignment, escalation or priority change: its details kept, the state and its ordering mark
    left alone. Made after a resolution and delivered before it (PagerDuty does not keep its webhooks
    in order), it would otherwise have that resolution dropped as older, the incident shown open."""
    remembered = _remember(stored, event, now, newest=False)
    if stored.trigger_sent_at is not None and event.occurred_at < stored.trigger_sent_at:
        return Plan(Reason.WEBHOOK_OUT_OF_ORDER, None, remembered)  # about an earlier incident of the key
    return Plan(Reason.PAGERDUTY_UPDATE, None, replace(remembered, pd_details={**stored.pd_details, **event.details}))


def _remember(stored: Incident, event: IncidentWebhook, now: datetime, *, newest: bool) -> Incident:
    """The incident with the event's id kept (redeliveries are recognised) and, when it is the newest
    PagerDuty-side change, PagerDuty's view of the incident."""
    remembered = replace(stored, webhook_event_ids=(*stored.webhook_event_ids, event.event_id), updated_at=now)
    if not newest:
        return remembered
    return replace(
        remembered,
        pd_incident_id=event.incident_id or stored.pd_incident_id,
        pd_incident_number=event.incident_number or stored.pd_incident_number,
        pd_html_url=event.html_url or stored.pd_html_url,
        pd_status=event.status or stored.pd_status,
        pd_updated_at=event.occurred_at,
        pd_details={**stored.pd_details, **event.details},
    )


def _apply_webhook(incident: Incident, event: IncidentWebhook, now: datetime | None) -> Incident:
    """``incident`` as the event leaves it; a waiting delivery is ended only with ``now`` (``_done``)."""
    kind = event.event_type.removeprefix("incident.")
    if kind == "acknowledged" and incident.is_open:
        return replace(
            incident,
            status=IncidentStatus.ACKNOWLEDGED,
            acknowledged_at=incident.acknowledged_at or event.occurred_at,
            acknowledged_by=event.agent or incident.acknowledged_by,
        )
    if kind == "unacknowledged" and incident.status is IncidentStatus.ACKNOWLEDGED:
        return replace(incident, status=IncidentStatus.TRIGGERED)
    if kind == "resolved" and event.merged_into is not None:
        # Merged into another incident: the bridge's alert lives on there, open, until its alarm clears.
        return replace(incident, pd_details={**incident.pd_details, "merged_into": event.merged_into})
    if kind == "resolved" and incident.is_open:
        closed = _closed(incident, Resolution.PAGERDUTY, at=event.occurred_at, by=event.agent)
        # A key's first incident: the only trigger ever sent for it landed, or there was nothing to resolve.
        return _done(closed, EventAction.TRIGGER, now) if incident.trigger_sent_at is None else closed
    if kind == "reopened" and not incident.is_open:
        return _done(_reopened(incident, last_reason=REOPENED_IN_PAGERDUTY), EventAction.RESOLVE, now)
    return incident


def _done(incident: Incident, action: EventAction, now: datetime | None) -> Incident:
    """``incident`` without a pending ``action`` that waits to be sent again, once what PagerDuty reports
    shows it landed and was overtaken by a responder: sent again, a trigger resolved in PagerDuty would
    page the responder a second time, a resolve would close an incident they reopened (leaving the table
    saying open). One still in flight (its lease running) is left to finish: the change may predate it."""
    if now is None or incident.pending_action is not action:
        return incident
    if incident.lease_until is not None and lease_running(incident.lease_until, now):
        return incident
    return replace(incident, pending_action=None, claim_token=None, lease_until=None, last_error=None)


def _reopened(incident: Incident, *, last_reason: str | None) -> Incident:
    return replace(
        incident,
        status=IncidentStatus.TRIGGERED,
        resolved_at=None,
        resolution=None,
        resolution_note=None,
        resolved_by=None,
        last_reason=last_reason,
    )


def trigger_accepted(current: Incident, at: datetime) -> Incident:
    """The incident once PagerDuty accepted the bridge's trigger (at ``at``, by the bridge's clock).

    For a key that had an incident before (``trigger_sent_at`` set at the claim): a resolution in
    PagerDuty recorded while the trigger was on its way cannot be told from one of the earlier incident
    made just before it landed, which left the trigger's new PagerDuty incident open, so the incident
    stays open and the alarm's OK (or reconciliation) resolves it. Resolving an incident PagerDuty
    already resolved changes nothing; leaving one open that PagerDuty holds open would. A key's first
    incident has no earlier one: whatever PagerDuty reports is about it.
    """
    if current.trigger_sent_at is None:
        return current
    accepted = replace(current, trigger_sent_at=at)
    if not current.is_open and current.resolution is Resolution.PAGERDUTY:
        return _reopened(accepted, last_reason=current.last_reason)
    return accepted
