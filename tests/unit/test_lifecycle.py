"""The lifecycle table, row by row, and the ordering rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pagerduty_bridge.lifecycle import decide
from pagerduty_bridge.models import (
    AlarmKind,
    AlarmNotification,
    AlarmState,
    EventAction,
    Incident,
    IncidentStatus,
)
from pagerduty_bridge.settings import InsufficientDataAction

T0 = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)


def alarm(new: AlarmState, old: AlarmState | None = AlarmState.OK, at: datetime = T0) -> AlarmNotification:
    return AlarmNotification(
        kind=AlarmKind.METRIC, alarm_name="a", new_state=new, old_state=old, state_change_time=at, metric_name="m"
    )


def incident(status: IncidentStatus, at: datetime = T0 - timedelta(minutes=5), **extra: object) -> Incident:
    return Incident(
        dedup_key="a-m", alarm_name="a", status=status, state_changed_at=at, updated_at=at, triggered_at=at, **extra
    )


OPEN = incident(IncidentStatus.TRIGGERED)
ACKED = incident(IncidentStatus.ACKNOWLEDGED)
RESOLVED = incident(IncidentStatus.RESOLVED)


@pytest.mark.parametrize(
    ("notification", "stored", "action", "reason"),
    [
        (alarm(AlarmState.ALARM), None, EventAction.TRIGGER, "alarm"),
        (alarm(AlarmState.ALARM), OPEN, EventAction.TRIGGER, "alarm"),
        (alarm(AlarmState.ALARM), ACKED, EventAction.TRIGGER, "alarm"),
        (alarm(AlarmState.OK, AlarmState.ALARM), OPEN, EventAction.RESOLVE, "alarm_ok"),
        (alarm(AlarmState.OK, AlarmState.ALARM), ACKED, EventAction.RESOLVE, "alarm_ok"),
        (alarm(AlarmState.OK, AlarmState.ALARM), None, EventAction.RESOLVE, "alarm_ok_untracked"),
        (alarm(AlarmState.OK, AlarmState.ALARM), RESOLVED, EventAction.RESOLVE, "alarm_ok_untracked"),
        (alarm(AlarmState.OK, AlarmState.INSUFFICIENT_DATA), None, None, "no_open_incident"),
        (alarm(AlarmState.OK, None), RESOLVED, None, "no_open_incident"),
        (alarm(AlarmState.INSUFFICIENT_DATA), OPEN, None, "insufficient_data_ignored"),
        (alarm(AlarmState.INSUFFICIENT_DATA), None, None, "insufficient_data_ignored"),
    ],
)
def test_lifecycle_table(
    notification: AlarmNotification, stored: Incident | None, action: EventAction | None, reason: str
) -> None:
    decision = decide(notification, stored)
    assert (decision.action, decision.reason) == (action, reason)


@pytest.mark.parametrize(
    ("policy", "stored", "action"),
    [
        (InsufficientDataAction.RESOLVE, OPEN, EventAction.RESOLVE),
        (InsufficientDataAction.RESOLVE, None, None),
        (InsufficientDataAction.TRIGGER, None, EventAction.TRIGGER),
        (InsufficientDataAction.IGNORE, OPEN, None),
    ],
)
def test_insufficient_data_policy(
    policy: InsufficientDataAction, stored: Incident | None, action: EventAction | None
) -> None:
    decision = decide(alarm(AlarmState.INSUFFICIENT_DATA), stored, insufficient_data_action=policy)
    assert decision.action == action


def test_older_notifications_are_stale_and_equal_ones_duplicates() -> None:
    stored = incident(IncidentStatus.TRIGGERED, at=T0)
    assert decide(alarm(AlarmState.OK, AlarmState.ALARM, at=T0 - timedelta(seconds=1)), stored).reason == "stale"
    duplicate = decide(alarm(AlarmState.ALARM, at=T0), stored)
    assert (duplicate.action, duplicate.reason) == (None, "duplicate")
    assert not duplicate.records_state


def test_an_unfinished_delivery_is_sent_again_by_its_redelivery() -> None:
    stored = incident(IncidentStatus.RESOLVED, at=T0, pending_action=EventAction.RESOLVE)
    decision = decide(alarm(AlarmState.OK, AlarmState.ALARM, at=T0), stored)
    assert (decision.action, decision.reason) == (EventAction.RESOLVE, "redelivery")


def test_a_pending_trigger_counts_as_open_for_the_next_ok() -> None:
    stored = incident(IncidentStatus.RESOLVED, at=T0, pending_action=EventAction.TRIGGER)
    decision = decide(alarm(AlarmState.OK, AlarmState.INSUFFICIENT_DATA, at=T0 + timedelta(minutes=1)), stored)
    assert decision.action is EventAction.RESOLVE
