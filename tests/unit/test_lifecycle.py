"""The lifecycle table, row by row, as a pure function: no store, no network.

One row per line of the README's table, then the rules around it: ordering (stale, duplicate),
the INSUFFICIENT_DATA policy, suppression, silences (ALARM during, OK during, ALARM after), a
resolution made in PagerDuty, and recovery of an unfinished delivery. Each row states what is sent
and what the table holds afterwards.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pagerduty_bridge.lifecycle import (
    Plan,
    Policy,
    Reason,
    plan,
    plan_acknowledge,
    plan_close,
    plan_confirm,
    plan_forward,
    plan_manual_trigger,
    plan_webhook,
    records_state,
)
from pagerduty_bridge.models import (
    AlarmKind,
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
from pagerduty_bridge.webhook_sync import IncidentWebhook, parse_webhook

T0 = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)
NOW = T0 + timedelta(seconds=5)
KEY = "a-m"
POLICY = Policy(dedup_key=KEY, routing_alias="web", severity=AlertSeverity.WARNING, summary="CPU high")


def alarm(new: AlarmState, old: AlarmState | None = AlarmState.OK, at: datetime = T0) -> AlarmNotification:
    return AlarmNotification(
        kind=AlarmKind.METRIC,
        alarm_name="a",
        new_state=new,
        old_state=old,
        state_change_time=at,
        metric_name="m",
        alarm_arn="arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a",
    )


def incident(status: IncidentStatus, at: datetime = T0 - timedelta(minutes=5), **extra: object) -> Incident:
    return Incident(
        dedup_key=KEY,
        alarm_name="a",
        status=status,
        state_changed_at=at,
        updated_at=at,
        triggered_at=at,
        routing_key_alias="payments",
        version=3,
        **extra,  # type: ignore[arg-type]
    )


OPEN = incident(IncidentStatus.TRIGGERED)
ACKED = incident(IncidentStatus.ACKNOWLEDGED, acknowledged_at=T0 - timedelta(minutes=4))
RESOLVED = incident(IncidentStatus.RESOLVED, resolved_at=T0 - timedelta(minutes=4), resolution=Resolution.AUTO)

ALARM = alarm(AlarmState.ALARM)
OK_FROM_ALARM = alarm(AlarmState.OK, AlarmState.ALARM)
OK_FROM_INSUFFICIENT = alarm(AlarmState.OK, AlarmState.INSUFFICIENT_DATA)
INSUFFICIENT = alarm(AlarmState.INSUFFICIENT_DATA)


# --- the README's table -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "notification", "stored", "action", "reason"),
    [
        ("ALARM, no incident", ALARM, None, EventAction.TRIGGER, Reason.ALARM),
        ("ALARM, open", ALARM, OPEN, EventAction.TRIGGER, Reason.ALARM),
        ("ALARM, acknowledged", ALARM, ACKED, EventAction.TRIGGER, Reason.ALARM),
        ("ALARM, resolved", ALARM, RESOLVED, EventAction.TRIGGER, Reason.ALARM),
        ("OK, open", OK_FROM_ALARM, OPEN, EventAction.RESOLVE, Reason.ALARM_OK),
        ("OK, acknowledged", OK_FROM_ALARM, ACKED, EventAction.RESOLVE, Reason.ALARM_OK),
        ("OK from ALARM, no incident", OK_FROM_ALARM, None, EventAction.RESOLVE, Reason.ALARM_OK_UNTRACKED),
        ("OK from ALARM, resolved", OK_FROM_ALARM, RESOLVED, EventAction.RESOLVE, Reason.ALARM_OK_UNTRACKED),
        ("OK from other, no incident", OK_FROM_INSUFFICIENT, None, None, Reason.NO_OPEN_INCIDENT),
        ("OK from nothing, resolved", alarm(AlarmState.OK, None), RESOLVED, None, Reason.NO_OPEN_INCIDENT),
        ("INSUFFICIENT_DATA ignored, open", INSUFFICIENT, OPEN, None, Reason.INSUFFICIENT_DATA_IGNORED),
        ("INSUFFICIENT_DATA ignored, none", INSUFFICIENT, None, None, Reason.INSUFFICIENT_DATA_IGNORED),
        (
            "older than stored",
            alarm(AlarmState.OK, AlarmState.ALARM, T0 - timedelta(hours=1)),
            OPEN,
            None,
            Reason.STALE,
        ),
        ("same as stored", alarm(AlarmState.ALARM, at=OPEN.state_changed_at or T0), OPEN, None, Reason.DUPLICATE),
    ],
)
def test_the_lifecycle_table(
    row: str,
    notification: AlarmNotification,
    stored: Incident | None,
    action: EventAction | None,
    reason: Reason,
) -> None:
    decided = plan(notification, stored, POLICY, NOW)
    assert (decided.action, decided.reason) == (action, reason), row


def test_a_trigger_opens_the_incident_on_the_rules_alias_with_the_events_summary() -> None:
    decided = plan(ALARM, None, POLICY, NOW)
    target = decided.target
    assert target is not None
    assert (target.status, target.severity, target.summary) == (
        IncidentStatus.TRIGGERED,
        AlertSeverity.WARNING,
        "CPU high",
    )
    assert (target.routing_key_alias, target.origin, target.triggered_at) == ("web", Origin.ALARM, T0)
    assert (target.state_changed_at, target.alarm_state, target.updated_at) == (T0, AlarmState.ALARM, NOW)
    assert target.alarm_arn == ALARM.alarm_arn


def test_an_open_incident_keeps_its_start_acknowledgement_and_alias() -> None:
    target = plan(ALARM, ACKED, POLICY, NOW).target
    assert target is not None
    assert (target.status, target.triggered_at, target.acknowledged_at) == (
        IncidentStatus.ACKNOWLEDGED,
        ACKED.triggered_at,
        ACKED.acknowledged_at,
    )
    assert target.routing_key_alias == "payments", "ack and resolve must reach the trigger's service"


def test_a_resolve_records_when_and_how() -> None:
    target = plan(OK_FROM_ALARM, OPEN, POLICY, NOW).target
    assert target is not None
    assert (target.status, target.resolved_at, target.resolution) == (IncidentStatus.RESOLVED, T0, Resolution.AUTO)


# --- ordering -----------------------------------------------------------------------------------------


def test_stale_and_duplicate_notifications_write_nothing() -> None:
    assert plan(alarm(AlarmState.OK, AlarmState.ALARM, T0 - timedelta(hours=1)), OPEN, POLICY, NOW).target is None
    duplicate = plan(alarm(AlarmState.ALARM, at=OPEN.state_changed_at or T0), OPEN, POLICY, NOW)
    assert duplicate.target is None
    assert not records_state(Reason.DUPLICATE) and not records_state(Reason.STALE)


def test_an_ignored_insufficient_data_moves_no_ordering_mark() -> None:
    """An older OK arriving after it must still resolve, as it would have in order."""
    assert plan(INSUFFICIENT, OPEN, POLICY, NOW) == Plan(Reason.INSUFFICIENT_DATA_IGNORED)
    late_ok = alarm(AlarmState.OK, AlarmState.ALARM, T0 - timedelta(seconds=1))
    assert plan(late_ok, OPEN, POLICY, NOW).action is EventAction.RESOLVE


# --- the INSUFFICIENT_DATA policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "stored", "action", "reason"),
    [
        (InsufficientDataAction.RESOLVE, OPEN, EventAction.RESOLVE, Reason.INSUFFICIENT_DATA_RESOLVED),
        (InsufficientDataAction.RESOLVE, None, None, Reason.NO_OPEN_INCIDENT),
        (InsufficientDataAction.TRIGGER, None, EventAction.TRIGGER, Reason.INSUFFICIENT_DATA_TRIGGERED),
        (InsufficientDataAction.IGNORE, OPEN, None, Reason.INSUFFICIENT_DATA_IGNORED),
    ],
)
def test_the_insufficient_data_policy(
    policy: InsufficientDataAction, stored: Incident | None, action: EventAction | None, reason: Reason
) -> None:
    decided = plan(INSUFFICIENT, stored, replace(POLICY, insufficient_data=policy), NOW)
    assert (decided.action, decided.reason) == (action, reason)


# --- suppression and silences -------------------------------------------------------------------------


def test_a_suppressed_alarm_is_recorded_not_paged() -> None:
    decided = plan(ALARM, RESOLVED, replace(POLICY, suppress=True), NOW)
    assert (decided.action, decided.reason) == (None, Reason.SUPPRESSED)
    assert decided.target is not None and decided.target.state_changed_at == T0


def test_a_silenced_alarm_during_after_and_its_ok() -> None:
    silenced = replace(POLICY, silence_id="s-1")
    during = plan(ALARM, None, silenced, NOW)
    assert (during.action, during.reason) == (None, Reason.SILENCED)
    record = during.target
    assert record is not None and not record.is_open
    assert (record.last_reason, record.silence_id, record.alarm_state) == ("silenced", "s-1", AlarmState.ALARM)

    ok_during = plan(alarm(AlarmState.OK, AlarmState.ALARM, T0 + timedelta(minutes=1)), record, silenced, NOW)
    assert ok_during.action is None, "an OK resolves nothing that was never opened"

    after = plan(alarm(AlarmState.ALARM, at=T0 + timedelta(minutes=2)), record, POLICY, NOW)
    assert (after.action, after.reason) == (EventAction.TRIGGER, Reason.ALARM)
    assert after.target is not None and after.target.last_reason is None and after.target.silence_id is None


@pytest.mark.parametrize("later", [timedelta(0), timedelta(minutes=1)], ids=["redelivered", "newer"])
@pytest.mark.parametrize(
    ("policy", "held_back"),
    [(replace(POLICY, silence_id="s-1"), Reason.SILENCED), (replace(POLICY, suppress=True), Reason.SUPPRESSED)],
    ids=["silenced", "suppressed"],
)
def test_a_silence_does_not_hold_back_an_unfinished_delivery(
    policy: Policy, held_back: Reason, later: timedelta
) -> None:
    """The trigger was claimed before the silence (or rule) began and never finished: the same
    notification again, or a newer ALARM that is itself held back, sends it, or it is lost."""
    pending = incident(IncidentStatus.TRIGGERED, at=T0, pending_action=EventAction.TRIGGER)
    decided = plan(alarm(AlarmState.ALARM, at=T0 + later), pending, policy, NOW)
    assert (decided.action, decided.reason) == (EventAction.TRIGGER, Reason.REDELIVERY)
    assert decided.target is not None and decided.target.state_changed_at == T0 + later
    if later:
        assert decided.target.last_reason == held_back.value, "the table must say why the newer one paged nothing"


# --- PagerDuty's side -----------------------------------------------------------------------------------


def test_an_ok_after_a_resolution_in_pagerduty_still_resolves_on_the_incidents_alias() -> None:
    """The resolution may have been another service's incident under the same key: the resolve goes
    out anyway, on the alias the incident was opened with (the rules may route elsewhere now)."""
    by_responder = replace(RESOLVED, resolution=Resolution.PAGERDUTY)
    assert plan(OK_FROM_ALARM, by_responder, replace(POLICY, routing_alias="elsewhere"), NOW) == Plan(
        Reason.RESOLVED_IN_PAGERDUTY,
        EventAction.RESOLVE,
        replace(
            by_responder, state_changed_at=T0, alarm_state=AlarmState.OK, updated_at=NOW, alarm_arn=ALARM.alarm_arn
        ),
    )


def test_an_alarm_after_a_resolution_in_pagerduty_opens_a_new_incident() -> None:
    target = plan(ALARM, replace(RESOLVED, resolution=Resolution.PAGERDUTY), POLICY, NOW).target
    assert target is not None and target.status is IncidentStatus.TRIGGERED and target.triggered_at == T0


def webhook(event_type: str, at: datetime, agent: str | None = None) -> IncidentWebhook:
    return IncidentWebhook(
        event_id=f"{event_type}-{at.isoformat()}", event_type=event_type, occurred_at=at, agent=agent
    )


def test_nothing_of_an_earlier_resolution_outlives_a_reopening() -> None:
    by_hand = plan_close(OPEN, KEY, Resolution.MANUAL, NOW, note="by hand").target
    assert by_hand is not None and by_hand.resolution_note == "by hand"
    reopened = plan_webhook(by_hand, webhook("incident.reopened", NOW), NOW).target
    assert reopened is not None and reopened.is_open
    assert (reopened.resolution, reopened.resolution_note, reopened.resolved_by) == (None, None, None)

    by_alarm = plan(alarm(AlarmState.OK, AlarmState.ALARM, NOW), reopened, POLICY, NOW).target
    assert by_alarm is not None
    assert (by_alarm.resolution, by_alarm.resolution_note, by_alarm.resolved_by) == (Resolution.AUTO, None, None)

    in_pagerduty = plan_webhook(reopened, webhook("incident.resolved", NOW, agent="Ada (P1)"), NOW).target
    assert in_pagerduty is not None
    assert (in_pagerduty.resolution, in_pagerduty.resolution_note, in_pagerduty.resolved_by) == (
        Resolution.PAGERDUTY,
        None,
        "Ada (P1)",
    )


@pytest.mark.parametrize(
    ("number", "kept"),
    [(7, 7), (True, None), (0, None), (-3, None), (2**63, None), (10**40 + 1, None), ("7", None), (7.0, None)],
)
def test_only_a_positive_integer_is_taken_as_pagerdutys_incident_number(number: object, kept: int | None) -> None:
    event = {
        "id": "E1",
        "event_type": "incident.acknowledged",
        "resource_type": "incident",
        "occurred_at": NOW.isoformat(),
        "data": {"id": "P1", "number": number},
    }
    parsed = parse_webhook(json.dumps({"event": event}).encode())
    assert parsed is not None and parsed.incident_number == kept
    target = plan_webhook(OPEN, parsed, NOW).target
    assert target is not None and target.pd_incident_number == kept


# --- recovery of an unfinished delivery -------------------------------------------------------------------


def test_an_unfinished_delivery_is_sent_again_by_its_redelivery() -> None:
    stored = incident(IncidentStatus.RESOLVED, at=T0, pending_action=EventAction.RESOLVE)
    decided = plan(alarm(AlarmState.OK, AlarmState.ALARM, at=T0), stored, POLICY, NOW)
    assert (decided.action, decided.reason, decided.target) == (EventAction.RESOLVE, Reason.REDELIVERY, stored)


def test_a_newer_notification_needing_nothing_finishes_an_unfinished_one() -> None:
    stored = incident(IncidentStatus.TRIGGERED, at=T0, pending_action=EventAction.TRIGGER)
    decided = plan(alarm(AlarmState.INSUFFICIENT_DATA, at=T0 + timedelta(minutes=1)), stored, POLICY, NOW)
    assert (decided.action, decided.reason) == (EventAction.TRIGGER, Reason.REDELIVERY)


def test_a_pending_trigger_counts_as_open_for_the_next_ok() -> None:
    stored = incident(IncidentStatus.RESOLVED, at=T0, pending_action=EventAction.TRIGGER)
    decided = plan(
        alarm(AlarmState.OK, AlarmState.INSUFFICIENT_DATA, at=T0 + timedelta(minutes=1)), stored, POLICY, NOW
    )
    assert decided.action is EventAction.RESOLVE


# --- the other paths ----------------------------------------------------------------------------------


def test_acknowledge_and_close_need_an_open_incident() -> None:
    assert plan_acknowledge(None, KEY, NOW) == Plan(Reason.NOT_FOUND)
    assert plan_acknowledge(RESOLVED, KEY, NOW) == Plan(Reason.ALREADY_RESOLVED)
    acked = plan_acknowledge(OPEN, KEY, NOW)
    assert acked.action is EventAction.ACKNOWLEDGE and acked.target is not None
    assert acked.target.acknowledged_at == NOW
    closed = plan_close(OPEN, KEY, Resolution.MANUAL, NOW, note="by hand")
    assert (closed.action, closed.reason) == (EventAction.RESOLVE, Reason.MANUAL_RESOLVE)
    assert closed.target is not None and closed.target.resolution_note == "by hand"


def test_a_reconciliation_that_read_an_older_version_loses_the_race() -> None:
    newer = replace(OPEN, version=OPEN.version + 1, state_changed_at=T0)
    assert plan_close(newer, KEY, Resolution.RECONCILED, NOW, observed=OPEN) == Plan(Reason.RECONCILE_RACE_LOST)
    assert plan_close(OPEN, KEY, Resolution.RECONCILED, NOW, observed=OPEN).action is EventAction.RESOLVE


def test_a_forwarded_message_is_sent_once() -> None:
    first = plan_forward(None, "m", AlertSeverity.INFO, "budget", T0)
    assert first.action is EventAction.TRIGGER and first.target is not None and first.target.origin is Origin.MESSAGE
    assert plan_forward(first.target, "m", AlertSeverity.INFO, "budget", T0) == Plan(Reason.DUPLICATE)


def test_a_manual_trigger_is_recorded_as_manual() -> None:
    target = plan_manual_trigger(None, KEY, "a", AlertSeverity.CRITICAL, "s", NOW).target
    assert target is not None and target.origin is Origin.MANUAL


def test_confirming_asserts_the_state_again_until_the_window_is_over() -> None:
    unsure = replace(RESOLVED, unconfirmed_until=NOW + timedelta(minutes=1))
    within = plan_confirm(unsure, NOW)
    assert within.action is EventAction.RESOLVE and within.target is not None
    assert within.target.unconfirmed_until == unsure.unconfirmed_until, "asserted again at the next run"
    after = plan_confirm(unsure, NOW + timedelta(minutes=2))
    assert after.action is EventAction.RESOLVE and after.target is not None and after.target.unconfirmed_until is None
    reopened = plan_confirm(replace(OPEN, unconfirmed_until=NOW), NOW)
    assert reopened.action is EventAction.TRIGGER
    assert plan_confirm(OPEN, NOW) == Plan(Reason.CONFIRMED)


def test_confirming_sends_an_unfinished_delivery_again() -> None:
    refused = replace(RESOLVED, pending_action=EventAction.RESOLVE)
    again = plan_confirm(refused, NOW)
    assert again.reason is Reason.REDELIVERY and again.action is EventAction.RESOLVE and again.target == refused
    unsure_and_unfinished = replace(refused, unconfirmed_until=NOW + timedelta(minutes=1))
    assert plan_confirm(unsure_and_unfinished, NOW).reason is Reason.REDELIVERY, "finish first, confirm later"
    assert plan_confirm(replace(RESOLVED, pending_action=None), NOW) == Plan(Reason.CONFIRMED)


@pytest.mark.parametrize(
    ("row", "notification", "stored_state", "action", "reason"),
    [
        ("ALARM over OK", alarm(AlarmState.ALARM, AlarmState.OK), AlarmState.OK, EventAction.TRIGGER, Reason.ALARM),
        (
            "ALARM over INSUFFICIENT_DATA",
            alarm(AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA),
            AlarmState.INSUFFICIENT_DATA,
            EventAction.TRIGGER,
            Reason.ALARM,
        ),
        ("OK under ALARM", OK_FROM_ALARM, AlarmState.ALARM, None, Reason.DUPLICATE),
        ("ALARM again", ALARM, AlarmState.ALARM, None, Reason.DUPLICATE),
        ("OK again", OK_FROM_ALARM, AlarmState.OK, None, Reason.DUPLICATE),
    ],
)
def test_a_tie_in_state_change_time_goes_to_the_alarm(
    row: str, notification: AlarmNotification, stored_state: AlarmState, action: EventAction | None, reason: Reason
) -> None:
    """Two state changes stamped alike: which came last cannot be told; an ALARM wins, in either order."""
    stored = replace(RESOLVED, state_changed_at=T0, alarm_state=stored_state)
    decided = plan(notification, stored, POLICY, NOW)
    assert (decided.action, decided.reason) == (action, reason), row
