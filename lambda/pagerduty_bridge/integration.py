"""``PagerDutyIntegration``: the seed's API, and every notification's way to PagerDuty and the table.

One delivery protocol serves every path (alarms, the seed's templates, acknowledge, resolve):

1. read the incident; decide (``lifecycle.decide`` for alarms);
2. *claim*: write the target state with ``pending_action`` and a lease, conditional on the version read;
3. send the event to PagerDuty;
4. *commit*: clear ``pending_action``, conditional on the claim.

A crash after 2 leaves a pending record: the retry of the same notification sees it and sends again
(PagerDuty deduplicates by key), so no page is marked done before PagerDuty accepted it. A claim whose
lease is still running belongs to an invocation that may still be sending: a concurrent one backs off
with a retryable ``ConcurrentUpdateError``, so at most one event per alarm is in flight, in order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import SecretStr

from pagerduty_bridge import constants as c
from pagerduty_bridge import rendering
from pagerduty_bridge.errors import (
    BridgeError,
    ConcurrentUpdateError,
    ConfigurationError,
    IncidentNotFoundError,
    VersionConflictError,
)
from pagerduty_bridge.events_api import READ_TIMEOUT_SECONDS, EventsClient, PagerDutyEvent, masked
from pagerduty_bridge.lifecycle import Decision, decide
from pagerduty_bridge.models import (
    AlarmNotification,
    AlertMessage,
    AlertSeverity,
    EventAction,
    EventResponse,
    Incident,
    IncidentStatus,
    Resolution,
    ServiceConfig,
    UnrecognizedMessage,
)
from pagerduty_bridge.rules import AlertRules
from pagerduty_bridge.settings import Settings, check_routing_key
from pagerduty_bridge.store import IncidentStore

logger = logging.getLogger(__name__)

DEFAULT_ROUTING_KEY_ALIAS = c.DEFAULT_ROUTING_KEY_ALIAS
MAX_CONFLICT_ATTEMPTS = 5
"""Re-reads after losing a conditional write; more means a hot key is being hammered: let Lambda retry."""
LEASE_MARGIN_SECONDS = 5.0
"""A claim's lease covers the retry budget, one last request's read timeout, and this margin."""
UNRECOGNIZED_ALARM_NAME = "(message on the alarm topic)"
DRY_RUN_STATUS = "dry-run"


class EventSender(Protocol):
    def send_body(self, body: dict[str, Any], *, budget_seconds: float | None = None) -> EventResponse: ...


class DryRunSender:
    """Sends nothing and answers as PagerDuty would, so a dry run records what a real run would."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_body(self, body: dict[str, Any], *, budget_seconds: float | None = None) -> EventResponse:
        self.sent.append(body)
        return EventResponse(status=DRY_RUN_STATUS, message="Event not sent (dry run)", dedup_key=body.get("dedup_key"))


@dataclass
class Outcome:
    """What happened to one notification: the decision, the exact body, whether PagerDuty took it."""

    action: EventAction | None
    reason: str
    dedup_key: str | None
    alarm_name: str | None = None
    state: str | None = None
    body: dict[str, Any] | None = None
    """The Events API body sent (or that would be), routing key masked."""
    delivered: bool = False
    response: EventResponse | None = None
    error: BridgeError | None = None
    incident: Incident | None = field(default=None, compare=False)


@dataclass(frozen=True)
class _Plan:
    decision: Decision
    event: PagerDutyEvent | None
    target: Incident | None
    """What the table should hold afterwards; ``None``: write nothing."""


class PagerDutyIntegration:
    """The seed's ``PagerDutyIntegration``, backed by an incident store and the Events API."""

    def __init__(
        self,
        config: ServiceConfig,
        environment: str = "production",
        *,
        events_url: str | None = None,
        store: IncidentStore | None = None,
        settings: Settings | None = None,
        sender: EventSender | None = None,
        routing_keys: Mapping[str, SecretStr] | None = None,
        clock: Callable[[], datetime] | None = None,
        rules: AlertRules | None = None,
    ) -> None:
        if settings is None:
            settings = Settings.from_env(environment=environment)
        updates: dict[str, Any] = {"environment": environment}
        if events_url:
            updates["events_url"] = events_url
        self.settings = settings.model_copy(update=updates)
        self._config = config
        if store is None:
            from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

            store = SQLiteIncidentStore(":memory:")
        self.store: IncidentStore = store
        self.sender: EventSender = sender or EventsClient(
            self.settings.events_url, retry_budget_seconds=self.settings.retry_budget_seconds
        )
        self._routing_keys: Mapping[str, SecretStr] = routing_keys if routing_keys is not None else {}
        self._clock = clock or (lambda: datetime.now(UTC))
        self.rules: AlertRules = rules if rules is not None else self.settings.load_rules()

    def __repr__(self) -> str:
        return (
            f"PagerDutyIntegration(service={self._config.service_name!r}, "
            f"environment={self.settings.environment!r}, store={self.store!r})"
        )

    # --- configuration (seed API) --------------------------------------------------------------------

    def get_service_config(self) -> ServiceConfig:
        """A copy: changing it changes nothing here."""
        return self._config.model_copy(deep=True)

    def update_service_config(self, **changes: Any) -> ServiceConfig:
        """Change the service config (integration key, service name, escalation policy id)."""
        merged = {**self._config.model_dump(), **changes}
        self._config = ServiceConfig.model_validate(merged)
        return self.get_service_config()

    def set_routing_keys(self, keys: Mapping[str, SecretStr]) -> None:
        """Replace the routing keys by alias (a rotated secret); ``default`` also updates the config."""
        self._routing_keys = dict(keys)
        if DEFAULT_ROUTING_KEY_ALIAS in keys and keys[DEFAULT_ROUTING_KEY_ALIAS] != self._config.integration_key:
            self._config = self._config.model_copy(update={"integration_key": keys[DEFAULT_ROUTING_KEY_ALIAS]})

    def routing_key(self, alias: str = DEFAULT_ROUTING_KEY_ALIAS) -> str:
        try:
            secret = self._config.integration_key if alias == DEFAULT_ROUTING_KEY_ALIAS else self._routing_keys[alias]
        except KeyError:  # a mapping may supply defaults on lookup (dry runs do)
            secret = None
        if secret is None:
            raise ConfigurationError(f"no routing key is configured for alias {alias!r}")
        return check_routing_key(secret.get_secret_value(), f"routing key {alias!r}")

    # --- the seed's templated incidents ---------------------------------------------------------------

    def trigger_high_failure_rate_incident(self, current: float, threshold: float) -> EventResponse:
        return self._trigger_seed(rendering.HIGH_FAILURE_RATE, current, threshold)

    def trigger_high_latency_incident(self, current_ms: float, threshold_ms: float) -> EventResponse:
        return self._trigger_seed(rendering.HIGH_LATENCY, current_ms, threshold_ms)

    def trigger_cost_threshold_incident(self, current_eur: float, threshold_eur: float) -> EventResponse:
        return self._trigger_seed(rendering.COST_THRESHOLD, current_eur, threshold_eur)

    def _trigger_seed(self, template: rendering.SeedTemplate, current: float, threshold: float) -> EventResponse:
        return self._response(self.trigger_template(template, current, threshold))

    def trigger_template(self, template: rendering.SeedTemplate, current: float, threshold: float) -> Outcome:
        """A seed template's trigger, reporting the whole outcome (the CLI prints it)."""
        event = rendering.seed_event(
            template,
            environment=self.settings.environment,
            current=current,
            threshold=threshold,
            timestamp=self._clock(),
            defaults=self.settings.event_defaults,
        )
        outcome = self.deliver_trigger(event)
        return _with_alarm(outcome, template.alarm_name(self.settings.environment, self.settings.event_defaults), None)

    # --- the seed's incident operations ---------------------------------------------------------------

    def trigger_incident(self, event: PagerDutyEvent) -> EventResponse:
        """Send a ready-made trigger event and track its incident."""
        return self._response(self.deliver_trigger(event))

    def deliver_trigger(self, event: PagerDutyEvent) -> Outcome:
        """``trigger_incident``, reporting the whole outcome instead of raising."""
        if event.event_action is not EventAction.TRIGGER or event.payload is None:
            raise ValueError("trigger_incident needs a trigger event with a payload")
        now = self._clock()
        payload = event.payload
        alarm_name = str(payload.custom_details.get("alarmName") or payload.source)

        def plan(stored: Incident | None) -> _Plan:
            target = _triggered(stored, event.dedup_key, alarm_name, payload.severity, payload.summary, now)
            return _Plan(Decision(EventAction.TRIGGER, "manual_trigger"), event, target)

        return self._apply(event.dedup_key, plan)

    def create_incident_from_alert(self, alert: AlertMessage) -> EventResponse:
        return self.trigger_incident(rendering.alert_event(alert, self.settings))

    def auto_resolve_incident(self, alert: AlertMessage) -> EventResponse | None:
        """Resolve the alert's incident when one is open (the alarm cleared); ``None`` when none is."""
        key = rendering.alert_event(alert, self.settings).dedup_key
        incident = self.store.get(key)
        if incident is None or not incident.is_open:
            return None
        return self._close(key, Resolution.AUTO)

    def acknowledge_incident(self, dedup_key: str) -> EventResponse:
        now = self._clock()

        def plan(stored: Incident | None) -> _Plan:
            if stored is None or not stored.is_open:
                raise IncidentNotFoundError(dedup_key)
            target = stored.model_copy(
                update={"status": IncidentStatus.ACKNOWLEDGED, "acknowledged_at": now, "updated_at": now}
            )
            event = PagerDutyEvent(event_action=EventAction.ACKNOWLEDGE, dedup_key=dedup_key)
            return _Plan(Decision(EventAction.ACKNOWLEDGE, "manual_acknowledge"), event, target)

        return self._response(self._apply(dedup_key, plan))

    def resolve_incident(
        self,
        dedup_key: str,
        *,
        resolution: Resolution = Resolution.MANUAL,
        note: str | None = None,
        budget_seconds: float | None = None,
    ) -> EventResponse:
        """Resolve an open incident (by a person, or by reconciliation with ``note`` saying why)."""
        return self._close(dedup_key, resolution, note, budget_seconds)

    def _close(
        self, dedup_key: str, resolution: Resolution, note: str | None = None, budget_seconds: float | None = None
    ) -> EventResponse:
        now = self._clock()

        def plan(stored: Incident | None) -> _Plan:
            if stored is None or not stored.is_open:
                raise IncidentNotFoundError(dedup_key)
            target = stored.model_copy(
                update={
                    "status": IncidentStatus.RESOLVED,
                    "resolved_at": now,
                    "resolution": resolution,
                    "resolution_note": note,
                    "updated_at": now,
                }
            )
            event = PagerDutyEvent(event_action=EventAction.RESOLVE, dedup_key=dedup_key)
            return _Plan(Decision(EventAction.RESOLVE, f"{resolution.value}_resolve"), event, target)

        return self._response(self._apply(dedup_key, plan, budget_seconds=budget_seconds))

    def get_active_incidents(self) -> dict[str, Incident]:
        return {incident.dedup_key: incident for incident in self.store.list_active()}

    def get_incident(self, dedup_key: str) -> Incident | None:
        return self.store.get(dedup_key)

    def clear_active_incidents(self) -> None:
        """Forget every tracked incident (PagerDuty is not told: this only clears the table)."""
        self.store.clear()

    # --- notifications --------------------------------------------------------------------------------

    def handle_alarm(self, alarm: AlarmNotification, *, budget_seconds: float | None = None) -> Outcome:
        """One alarm state change, through its rule and the lifecycle table to PagerDuty and the table."""
        resolved = self.rules.resolve(
            alarm, default_severity=self.settings.default_severity, default_routing=DEFAULT_ROUTING_KEY_ALIAS
        )
        key = rendering.alarm_dedup_key(
            alarm, self.settings.dedup_key_strategy, resolved.dedup_key, self.settings.environment
        )
        insufficient = resolved.insufficient_data or self.settings.insufficient_data_action

        def plan(stored: Incident | None) -> _Plan:
            now = self._clock()
            decision = decide(alarm, stored, insufficient_data_action=insufficient)
            if decision.action is EventAction.TRIGGER and resolved.suppress and decision.reason != "redelivery":
                decision = Decision(None, "suppressed")
            if decision.action is None:
                recorded = stored
                if decision.records_state and stored is not None:
                    recorded = stored.model_copy(
                        update={
                            "state_changed_at": alarm.state_change_time,
                            "alarm_state": alarm.new_state,
                            "updated_at": now,
                        }
                    )
                unfinished = stored.pending_action if stored is not None else None
                if unfinished is not None and decision.reason not in ("stale", "duplicate"):
                    # An earlier delivery never finished (its invocation died or gave up) and this
                    # newer notification needs nothing of its own: finish that one now, or it is lost.
                    assert recorded is not None
                    event = rendering.alarm_event(alarm, self.settings, unfinished, dedup_key=key, resolved=resolved)
                    return _Plan(Decision(unfinished, "redelivery"), event, recorded)
                return _Plan(decision, None, recorded if recorded is not stored else None)
            event = rendering.alarm_event(alarm, self.settings, decision.action, dedup_key=key, resolved=resolved)
            if decision.reason == "redelivery":
                assert stored is not None
                return _Plan(decision, event, stored)
            if decision.action is EventAction.TRIGGER:
                summary = event.payload.summary if event.payload else ""
                severity = event.payload.severity if event.payload else resolved.severity
                target = _triggered(stored, key, alarm.alarm_name, severity, summary, alarm.state_change_time)
            else:
                target = _resolved(stored, key, alarm.alarm_name, alarm.state_change_time, now)
            alias = target.routing_key_alias if stored is not None and stored.is_open else resolved.routing_key
            target = target.model_copy(
                update={
                    "state_changed_at": alarm.state_change_time,
                    "alarm_state": alarm.new_state,
                    "alarm_arn": alarm.alarm_arn,
                    "routing_key_alias": alias,
                    "updated_at": now,
                }
            )
            return _Plan(decision, event, target)

        outcome = self._apply(key, plan, budget_seconds=budget_seconds)
        return _with_alarm(outcome, alarm.alarm_name, alarm.new_state.value)

    def handle_unrecognized(
        self, message: UnrecognizedMessage, *, source: str | None = None, budget_seconds: float | None = None
    ) -> Outcome:
        """Forward a non-alarm message as an ``info`` alert, once (its key is a hash of its text)."""
        event = rendering.unrecognized_event(message, self.settings, source=source)
        key = event.dedup_key

        def plan(stored: Incident | None) -> _Plan:
            if stored is not None and stored.pending_action is not None:
                return _Plan(Decision(EventAction.TRIGGER, "redelivery"), event, stored)
            if stored is not None:
                return _Plan(Decision(None, "duplicate"), None, None)
            summary = event.payload.summary if event.payload else ""
            target = _triggered(None, key, UNRECOGNIZED_ALARM_NAME, AlertSeverity.INFO, summary, message.received_at)
            return _Plan(Decision(EventAction.TRIGGER, "unrecognized_forwarded"), event, target)

        outcome = self._apply(key, plan, budget_seconds=budget_seconds)
        return _with_alarm(outcome, None, None)

    # --- the delivery protocol ------------------------------------------------------------------------

    def _apply(
        self, key: str, plan_for: Callable[[Incident | None], _Plan], *, budget_seconds: float | None = None
    ) -> Outcome:
        for _ in range(MAX_CONFLICT_ATTEMPTS):
            stored = self.store.get(key)
            plan = plan_for(stored)
            expected = stored.version if stored is not None else None
            if plan.event is None:
                if plan.target is not None:
                    try:
                        self.store.put(
                            plan.target.model_copy(update={"version": (expected or 0) + 1}),
                            expected_version=expected,
                        )
                    except VersionConflictError:
                        continue
                return Outcome(plan.decision.action, plan.decision.reason, key, incident=plan.target)
            if plan.target is None:  # pragma: no cover - every plan with an event has a target
                raise AssertionError("a plan that sends must say what to store")
            try:
                return self._deliver(key, stored, plan, budget_seconds)
            except VersionConflictError:
                continue
        raise ConcurrentUpdateError(f"incident {key} kept changing while being updated; retry later")

    def _deliver(self, key: str, stored: Incident | None, plan: _Plan, budget_seconds: float | None) -> Outcome:
        assert plan.event is not None and plan.target is not None
        now = self._clock()
        if (
            stored is not None
            and stored.pending_action is not None
            and stored.lease_until is not None
            and stored.lease_until > now
        ):
            raise ConcurrentUpdateError(
                f"another delivery for {key} is in flight until {stored.lease_until.isoformat()}; retry later"
            )
        budget = budget_seconds if budget_seconds is not None else self.settings.retry_budget_seconds
        expected = stored.version if stored is not None else None
        claim = plan.target.model_copy(
            update={
                "pending_action": plan.decision.action,
                "claim_token": uuid.uuid4().hex,
                "lease_until": now + timedelta(seconds=budget + READ_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS),
                "version": (expected or 0) + 1,
            }
        )
        wire = plan.event.to_wire(self.routing_key(claim.routing_key_alias))
        body = masked(wire)
        self.store.put(claim, expected_version=expected)
        try:
            response = self.sender.send_body(wire, budget_seconds=budget)
        except BridgeError as exc:
            self._after_failure(stored, claim, exc)
            return Outcome(plan.decision.action, plan.decision.reason, key, body=body, error=exc, incident=claim)
        done = claim.model_copy(
            update={
                "pending_action": None,
                "claim_token": None,
                "lease_until": None,
                "last_error": None,
                "version": claim.version + 1,
            }
        )
        try:
            self.store.put(done, expected_version=claim.version)
        except VersionConflictError:
            # Our lease ran out and a newer delivery took over; it owns the record now.
            logger.warning("incident %s was taken over after PagerDuty accepted the event", key)
        return Outcome(
            plan.decision.action,
            plan.decision.reason,
            key,
            body=body,
            delivered=response.status != DRY_RUN_STATUS,
            response=response,
            incident=done,
        )

    def _after_failure(self, stored: Incident | None, claim: Incident, exc: BridgeError) -> None:
        """Leave the record so that a retry does the right thing, then let the caller report ``exc``.

        Retryable: keep the claim pending but end its lease, so the retry resends at once.
        Permanent: PagerDuty will never accept this event; record the state change (so duplicates stay
        quiet) and the error, keeping the incident as it was before.
        """
        if exc.retryable:
            update: dict[str, Any] = {
                "lease_until": None,
                "last_error": str(exc),
                "version": claim.version + 1,
            }
            after = claim.model_copy(update=update)
        else:
            before = stored or claim.model_copy(
                update={"status": IncidentStatus.RESOLVED, "triggered_at": None, "resolved_at": None}
            )
            after = before.model_copy(
                update={
                    "state_changed_at": claim.state_changed_at,
                    "alarm_state": claim.alarm_state,
                    "pending_action": None,
                    "claim_token": None,
                    "lease_until": None,
                    "last_error": str(exc),
                    "updated_at": claim.updated_at,
                    "version": claim.version + 1,
                }
            )
        try:
            self.store.put(after, expected_version=claim.version)
        except BridgeError as store_exc:
            logger.warning("could not record the failed delivery for %s: %s", claim.dedup_key, store_exc)

    @staticmethod
    def _response(outcome: Outcome) -> EventResponse:
        if outcome.error is not None:
            raise outcome.error
        assert outcome.response is not None
        return outcome.response


def _triggered(
    stored: Incident | None, key: str, alarm_name: str, severity: AlertSeverity, summary: str, at: datetime
) -> Incident:
    """The incident after a trigger: an open one keeps its start and acknowledgement."""
    if stored is not None and stored.is_open:
        return stored.model_copy(update={"severity": severity, "summary": summary, "updated_at": at})
    return Incident(
        dedup_key=key,
        alarm_name=alarm_name,
        status=IncidentStatus.TRIGGERED,
        severity=severity,
        summary=summary,
        routing_key_alias=stored.routing_key_alias if stored else DEFAULT_ROUTING_KEY_ALIAS,
        state_changed_at=stored.state_changed_at if stored else None,
        triggered_at=at,
        updated_at=at,
        version=stored.version if stored else 1,
    )


def _resolved(stored: Incident | None, key: str, alarm_name: str, at: datetime, now: datetime) -> Incident:
    if stored is not None and not stored.is_open:
        return stored
    if stored is not None:
        return stored.model_copy(
            update={"status": IncidentStatus.RESOLVED, "resolved_at": at, "resolution": Resolution.AUTO}
        )
    return Incident(
        dedup_key=key,
        alarm_name=alarm_name,
        status=IncidentStatus.RESOLVED,
        resolved_at=at,
        resolution=Resolution.AUTO,
        updated_at=now,
    )


def _with_alarm(outcome: Outcome, alarm_name: str | None, state: str | None) -> Outcome:
    """Label a fresh outcome with the alarm it is about."""
    outcome.alarm_name, outcome.state = alarm_name, state
    return outcome
