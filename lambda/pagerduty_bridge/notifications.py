"""One notification's way to PagerDuty: route it (rules, dedup key, silences), plan it, deliver it.

``Notifications`` is what the Lambda handler, ``replay``, ``redrive`` and the seed API's
``handle_alarm`` share. ``route`` answers "where would this alarm page?" with the very code a real
notification goes through (``pagerduty-bridge rules test`` prints it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pagerduty_bridge import constants as c
from pagerduty_bridge import lifecycle, rendering
from pagerduty_bridge.delivery import DRY_RUN_STATUS, Delivery, Outcome, shown_alias
from pagerduty_bridge.errors import BridgeError
from pagerduty_bridge.events_api import PagerDutyEvent
from pagerduty_bridge.lifecycle import Plan, Policy
from pagerduty_bridge.models import (
    AlarmNotification,
    AlarmState,
    AlertSeverity,
    EventAction,
    InsufficientDataAction,
    StackStatusChange,
    UnrecognizedMessage,
)
from pagerduty_bridge.redaction import masked_body
from pagerduty_bridge.rules import AlertRules, Resolved
from pagerduty_bridge.settings import Settings


class SilenceLookup(Protocol):
    def matching(self, alarm: AlarmNotification, route: Route, now: datetime) -> str | None:
        """The id of a silence covering this alarm now, if any."""
        ...

    def is_active(self, silence_id: str, now: datetime) -> bool: ...

    def covering(self, known: Mapping[str, str], now: datetime) -> str | None:
        """The id of a silence covering an alarm of which only ``known`` is known (the scheduled run's view)."""
        ...


@dataclass(frozen=True, slots=True)
class Route:
    """Where one alarm pages: its rule, dedup key, severity, routing alias, summary, suppression."""

    resolved: Resolved
    dedup_key: str
    insufficient_data: InsufficientDataAction
    trigger: PagerDutyEvent | None
    """The trigger event this alarm would send (rendered once, when its state can trigger)."""
    silence_id: str | None = None

    @property
    def severity(self) -> AlertSeverity:
        payload = self.trigger.payload if self.trigger is not None else None
        return payload.severity if payload is not None else self.resolved.severity

    @property
    def summary(self) -> str:
        payload = self.trigger.payload if self.trigger is not None else None
        return payload.summary if payload is not None else ""

    def policy(self) -> Policy:
        return Policy(
            dedup_key=self.dedup_key,
            # A routing key written where its alias belongs is known by its masked form only: never
            # stored or logged as it is (it names no alias, so its page goes to the default service).
            routing_alias=shown_alias(self.resolved.routing_key),
            insufficient_data=self.insufficient_data,
            suppress=self.resolved.suppress,
            silence_id=self.silence_id,
            severity=self.severity,
            summary=self.summary,
        )


class Notifications:
    """Handles notifications of every kind through the delivery protocol."""

    def __init__(
        self,
        settings: Settings,
        rules: AlertRules,
        delivery: Delivery,
        clock: Callable[[], datetime],
        *,
        silences: SilenceLookup | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.delivery = delivery
        self.clock = clock
        self.silences = silences

    def route(self, alarm: AlarmNotification, *, now: datetime | None = None) -> Route:
        """The alarm's rule, dedup key, trigger event and any silence covering it now."""
        settings = self.settings
        resolved = self.rules.resolve(alarm, default_severity=settings.default_severity)
        key = rendering.alarm_dedup_key(alarm, settings.dedup_key_strategy, resolved.dedup_key, settings.environment)
        insufficient = resolved.insufficient_data or settings.insufficient_data_action
        can_trigger = alarm.new_state is AlarmState.ALARM or (
            alarm.new_state is AlarmState.INSUFFICIENT_DATA and insufficient is InsufficientDataAction.TRIGGER
        )
        trigger = (
            rendering.alarm_event(alarm, settings, EventAction.TRIGGER, dedup_key=key, resolved=resolved)
            if can_trigger
            else None
        )
        route = Route(resolved, key, insufficient, trigger)
        if self.silences is not None and can_trigger:
            silence = self.silences.matching(alarm, route, now or self.clock())
            if silence is not None:
                route = Route(resolved, key, insufficient, trigger, silence)
        return route

    def handle_alarm(self, alarm: AlarmNotification, *, budget_seconds: float | None = None) -> Outcome:
        """One alarm state change, through its route and the lifecycle table to PagerDuty and the table."""
        route = self.route(alarm)
        policy = route.policy()

        def render(plan: Plan) -> PagerDutyEvent:
            if plan.action is not EventAction.TRIGGER:
                return PagerDutyEvent(event_action=plan.action or EventAction.RESOLVE, dedup_key=route.dedup_key)
            if route.trigger is not None:
                return route.trigger
            # Finishing an unfinished trigger on a notification that would not trigger itself.
            return rendering.alarm_event(
                alarm, self.settings, EventAction.TRIGGER, dedup_key=route.dedup_key, resolved=route.resolved
            )

        outcome = self.delivery.run(
            route.dedup_key,
            lambda stored: lifecycle.plan(alarm, stored, policy, self.clock()),
            render,
            budget_seconds=budget_seconds,
        )
        return outcome.about(alarm.alarm_name, alarm.new_state.value)

    def handle_unrecognized(
        self, message: UnrecognizedMessage, *, source: str | None = None, budget_seconds: float | None = None
    ) -> Outcome:
        """Forward a non-alarm message as an ``info`` alert, once (its key is a hash of its text)."""
        event = rendering.unrecognized_event(message, self.settings, source=source)
        payload = event.payload
        assert payload is not None
        outcome = self.delivery.run(
            event.dedup_key,
            lambda stored: lifecycle.plan_forward(
                stored, event.dedup_key, AlertSeverity.INFO, payload.summary, message.received_at
            ),
            lambda _plan: event,
            budget_seconds=budget_seconds,
        )
        return outcome.about(None, None)

    def handle_stack_change(self, change: StackStatusChange, *, budget_seconds: float | None = None) -> Outcome:
        """A completed stack operation becomes one PagerDuty Change Event; in-progress ones send nothing.

        Same retry and acceptance rules as alerts; there is no incident to record (Change Events never
        open one)."""
        if not rendering.is_completed(change):
            return Outcome(None, STACK_IN_PROGRESS, None).about(change.stack_name, change.status)
        wire = rendering.change_event(change, self.settings).to_wire(
            self.delivery.keys.get(c.DEFAULT_ROUTING_KEY_ALIAS)
        )
        outcome = Outcome(None, CHANGE_EVENT, None, body=masked_body(wire)).about(change.stack_name, change.status)
        try:
            response = self.delivery.sender.send_body(wire, budget_seconds=budget_seconds, url=self.settings.change_url)
        except BridgeError as exc:
            outcome.error = exc
            return outcome
        outcome.response = response
        outcome.delivered = response.status != DRY_RUN_STATUS
        return outcome


STACK_IN_PROGRESS = "stack_in_progress"
CHANGE_EVENT = "change_event"
