"""The lifecycle table, decided in one place: what PagerDuty must hear about one alarm state change.

| new state          | incident open?      | action                                   |
|--------------------|---------------------|------------------------------------------|
| ALARM              | either              | trigger (an acknowledged one stays acked) |
| OK                 | yes                 | resolve                                  |
| OK                 | no, old state ALARM | resolve (it may predate the table)       |
| OK                 | no, other old state | none                                     |
| INSUFFICIENT_DATA  | either              | per ``INSUFFICIENT_DATA_ACTION``         |
| any, not newer than the stored state change  | | none (``stale`` / ``duplicate``)        |

A notification with the same state change time as a stored one whose delivery never completed
(``pending_action`` still set) is a redelivery: the same action is sent again, so a crash between
"PagerDuty accepted" and "table written" — or before either — is healed by the retry. A newer
notification that needs no action of its own finishes such an unfinished delivery too (see
``integration.PagerDutyIntegration.handle_alarm``), so overtaking a crashed one never orphans its event.
"""

from __future__ import annotations

from dataclasses import dataclass

from pagerduty_bridge.models import AlarmNotification, AlarmState, EventAction, Incident
from pagerduty_bridge.settings import InsufficientDataAction


@dataclass(frozen=True)
class Decision:
    action: EventAction | None
    reason: str
    """A short snake_case word: why this action (or none)."""

    @property
    def records_state(self) -> bool:
        """Whether the notification moves the alarm's remembered state (and so the ordering mark).

        Not when it is stale or a duplicate, and not when it is an ignored INSUFFICIENT_DATA: that
        changes nothing, so an older OK arriving after it must still resolve, exactly as it would have
        had the two arrived in order.
        """
        return self.reason not in ("stale", "duplicate", "insufficient_data_ignored")


def incident_may_be_open(stored: Incident | None) -> bool:
    """Open in the table, or an event still on its way (PagerDuty may have the alert open until a
    pending resolve is accepted, or already open from a pending trigger)."""
    if stored is None:
        return False
    return stored.is_open or stored.pending_action is not None


def decide(
    alarm: AlarmNotification,
    stored: Incident | None,
    *,
    insufficient_data_action: InsufficientDataAction = InsufficientDataAction.IGNORE,
) -> Decision:
    """The action for ``alarm`` given what the table holds for its dedup key."""
    if stored is not None and stored.state_changed_at is not None:
        if alarm.state_change_time < stored.state_changed_at:
            return Decision(None, "stale")
        if alarm.state_change_time == stored.state_changed_at:
            if stored.pending_action is not None:
                return Decision(stored.pending_action, "redelivery")
            return Decision(None, "duplicate")

    if alarm.new_state is AlarmState.ALARM:
        return Decision(EventAction.TRIGGER, "alarm")
    if alarm.new_state is AlarmState.OK:
        return _resolve_if_open(alarm, stored, "alarm_ok")
    if insufficient_data_action is InsufficientDataAction.TRIGGER:
        return Decision(EventAction.TRIGGER, "insufficient_data_triggered")
    if insufficient_data_action is InsufficientDataAction.RESOLVE:
        return _resolve_if_open(alarm, stored, "insufficient_data_resolved")
    return Decision(None, "insufficient_data_ignored")


def _resolve_if_open(alarm: AlarmNotification, stored: Incident | None, reason: str) -> Decision:
    if incident_may_be_open(stored):
        return Decision(EventAction.RESOLVE, reason)
    if alarm.old_state is AlarmState.ALARM:
        # The incident may predate the table (or its record expired): resolving is harmless.
        return Decision(EventAction.RESOLVE, f"{reason}_untracked")
    return Decision(None, "no_open_incident")
