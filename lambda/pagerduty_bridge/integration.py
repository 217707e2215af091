"""``PagerDutyIntegration``: the seed's public API, a facade over the delivery protocol.

The seed (the TypeScript ``PagerDutyIntegration`` this bridge grew from) is the specification of
this API; Python names apply. Every call goes through the same pieces the Lambda uses: a pure
``lifecycle`` plan, the ``delivery`` protocol (claim → send → commit) over an incident store, and the
Events API client. Nothing here reads the environment or the disk: the defaults are an in-memory
store, the Events API at its public URL, and the built-in rules; the Lambda runtime and the CLI build
theirs at the edge and pass them in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pagerduty_bridge import constants as c
from pagerduty_bridge import lifecycle
from pagerduty_bridge.delivery import Delivery, DryRunSender, EventSender, Outcome, not_found
from pagerduty_bridge.errors import IncidentNotFoundError
from pagerduty_bridge.events_api import EventPayload, EventsClient, Image, Link, PagerDutyEvent, bounded_dedup_key
from pagerduty_bridge.keys import KeySource, StaticKeys
from pagerduty_bridge.lifecycle import Reason
from pagerduty_bridge.models import (
    AlarmNotification,
    AlertSeverity,
    EventAction,
    EventResponse,
    Incident,
    Resolution,
    UnrecognizedMessage,
)
from pagerduty_bridge.notifications import Notifications
from pagerduty_bridge.rules import AlertRules
from pagerduty_bridge.safejson import clean
from pagerduty_bridge.seed import templates
from pagerduty_bridge.seed.models import AlertMessage, ServiceConfig
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store import IncidentStore

__all__ = ["DryRunSender", "EventSender", "Outcome", "PagerDutyIntegration"]

DEFAULT_ROUTING_KEY_ALIAS = c.DEFAULT_ROUTING_KEY_ALIAS


def _wire_key(dedup_key: str) -> str:
    """The key PagerDuty knows an incident by, and so the table too: a lone surrogate as U+FFFD, a key
    over 255 characters as its bounded form. A caller may name an incident either way; a table keyed
    otherwise would hold a key that the trigger's answer and PagerDuty's webhooks never name."""
    return bounded_dedup_key(clean(_text("dedup_key", dedup_key)))


_Member = TypeVar("_Member", EventAction, AlertSeverity)


def _text(field: str, value: object) -> str:
    """``value`` when it is text, else a ``TypeError`` naming ``field``: a caller's number or ``None``
    failed deep in the bridge with an error naming nothing (``object of type 'int' has no len()``)."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, not {type(value).__name__}")
    return value


def _member(kind: type[_Member], field: str, value: object) -> _Member:
    """``value`` as a member of ``kind``, text read as severities are everywhere (any case)."""
    if isinstance(value, kind):
        return value
    try:
        return kind(_text(field, value).strip().lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{field} must be one of {allowed}, not {value!r}") from None


def _optional_text(field: str, value: object) -> None:
    if value is not None:
        _text(field, value)


def _check_links_and_client(event: PagerDutyEvent) -> None:
    """A ``TypeError`` naming the first of ``event``'s links, images and client fields that holds what
    its type does not say (``links[0].href``)."""
    for i, link in enumerate(event.links):
        if not isinstance(link, Link):
            raise TypeError(f"links[{i}] must be a Link, not {type(link).__name__}")
        _text(f"links[{i}].href", link.href)
        _optional_text(f"links[{i}].text", link.text)
    for i, image in enumerate(event.images):
        if not isinstance(image, Image):
            raise TypeError(f"images[{i}] must be an Image, not {type(image).__name__}")
        _text(f"images[{i}].src", image.src)
        _optional_text(f"images[{i}].href", image.href)
        _optional_text(f"images[{i}].alt", image.alt)
    _optional_text("client", event.client)
    _optional_text("client_url", event.client_url)


def checked_trigger(event: PagerDutyEvent) -> PagerDutyEvent:
    """``event`` as ``trigger_incident`` sends it, or an error naming its field that holds what its type
    does not say, before anything is stored or sent (a hand-made event's severity given as text failed
    with ``'str' object has no attribute 'value'``). A severity or action given as text is read."""
    if not isinstance(event, PagerDutyEvent):
        raise TypeError(f"trigger_incident needs a PagerDutyEvent, not {type(event).__name__}")
    action = _member(EventAction, "event_action", event.event_action)
    payload = event.payload
    if action is not EventAction.TRIGGER or payload is None:
        raise ValueError("trigger_incident needs a trigger event with a payload")
    if not isinstance(payload, EventPayload):
        raise TypeError(f"payload must be an EventPayload, not {type(payload).__name__}")
    _text("dedup_key", event.dedup_key)
    for name in ("summary", "source", "component", "group", "class_"):
        value = getattr(payload, name)
        if value is not None or name in ("summary", "source"):
            _text(f"payload.{name}", value)
    if payload.timestamp is not None and not isinstance(payload.timestamp, datetime):
        raise TypeError(f"payload.timestamp must be a datetime, not {type(payload.timestamp).__name__}")
    if not isinstance(payload.custom_details, Mapping):
        raise TypeError(f"payload.custom_details must be a mapping, not {type(payload.custom_details).__name__}")
    _check_links_and_client(event)
    severity = _member(AlertSeverity, "payload.severity", payload.severity)
    if action is event.event_action and severity is payload.severity:
        return event
    return replace(event, event_action=action, payload=replace(payload, severity=severity))


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
        routing_keys: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] | None = None,
        rules: AlertRules | None = None,
        keys: KeySource | None = None,
    ) -> None:
        """``keys`` replaces the config's key and ``routing_keys`` (the CLI passes what it loaded)."""
        if not isinstance(config, ServiceConfig):
            # Named by its type alone: what was given may be the key itself.
            raise TypeError(f"config must be a ServiceConfig, not {type(config).__name__}")
        changes: dict[str, Any] = {"environment": environment}
        if events_url:
            changes["events_url"] = events_url
        self.settings = (settings or Settings()).replace(**changes)
        self._config = config
        if store is None:
            from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

            store = SQLiteIncidentStore(":memory:")
        self.store: IncidentStore = store
        self.sender: EventSender = sender or EventsClient(
            self.settings.events_url, retry_budget_seconds=self.settings.retry_budget_seconds
        )
        self._keys = StaticKeys({**(routing_keys or {}), DEFAULT_ROUTING_KEY_ALIAS: config.integration_key})
        key_source: KeySource = keys or self._keys
        self._clock = clock or (lambda: datetime.now(UTC))
        self.rules = rules if rules is not None else AlertRules(component=self.settings.event_defaults.component)
        self.delivery = Delivery(
            self.store, self.sender, key_source, self._clock, retry_budget_seconds=self.settings.retry_budget_seconds
        )
        self.notifications = Notifications(self.settings, self.rules, self.delivery, self._clock)

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
        self._keys.replace(DEFAULT_ROUTING_KEY_ALIAS, self._config.integration_key)
        return self.get_service_config()

    def routing_key(self, alias: str = DEFAULT_ROUTING_KEY_ALIAS) -> str:
        return self._keys.get(alias)

    # --- the seed's templated incidents ---------------------------------------------------------------

    def trigger_high_failure_rate_incident(self, current: float, threshold: float) -> EventResponse:
        return self._response(self.trigger_template(templates.HIGH_FAILURE_RATE, current, threshold))

    def trigger_high_latency_incident(self, current_ms: float, threshold_ms: float) -> EventResponse:
        return self._response(self.trigger_template(templates.HIGH_LATENCY, current_ms, threshold_ms))

    def trigger_cost_threshold_incident(self, current_eur: float, threshold_eur: float) -> EventResponse:
        return self._response(self.trigger_template(templates.COST_THRESHOLD, current_eur, threshold_eur))

    def trigger_template(self, template: templates.SeedTemplate, current: float, threshold: float) -> Outcome:
        """A seed template's trigger, reporting the whole outcome (the CLI prints it)."""
        defaults = self.settings.event_defaults
        event = templates.seed_event(
            template,
            environment=self.settings.environment,
            current=current,
            threshold=threshold,
            timestamp=self._clock(),
            defaults=defaults,
        )
        return self.deliver_trigger(event).about(template.alarm_name(self.settings.environment, defaults), None)

    # --- the seed's incident operations ---------------------------------------------------------------

    def trigger_incident(self, event: PagerDutyEvent) -> EventResponse:
        """Send a ready-made trigger event and track its incident."""
        return self._response(self.deliver_trigger(event))

    def deliver_trigger(self, event: PagerDutyEvent) -> Outcome:
        """``trigger_incident``, reporting the whole outcome instead of raising."""
        event = checked_trigger(event)
        payload = event.payload
        assert payload is not None, "a checked trigger has a payload"
        if not event.dedup_key.strip():
            # PagerDuty would make up a key of its own, and no resolve could ever name the incident.
            raise ValueError("trigger_incident needs a dedup_key that is not blank")
        if _wire_key(event.dedup_key) != event.dedup_key:
            event = replace(event, dedup_key=_wire_key(event.dedup_key))
        alarm_name = str(payload.custom_details.get("alarmName") or payload.source)
        return self.delivery.run(
            event.dedup_key,
            lambda stored: lifecycle.plan_manual_trigger(
                stored, event.dedup_key, alarm_name, payload.severity, payload.summary, self._clock()
            ),
            lambda _plan: event,
        )

    def create_incident_from_alert(self, alert: AlertMessage) -> EventResponse:
        return self.trigger_incident(templates.alert_event(alert, self.settings))

    def auto_resolve_incident(self, alert: AlertMessage) -> EventResponse | None:
        """Resolve the alert's incident when one is open (the alarm cleared); ``None`` when none is."""
        outcome = self.close(templates.alert_event(alert, self.settings).dedup_key, Resolution.AUTO)
        return None if not_found(outcome) else self._response(outcome)

    def acknowledge_incident(self, dedup_key: str) -> EventResponse:
        dedup_key = _wire_key(dedup_key)
        outcome = self.delivery.run(
            dedup_key,
            lambda stored: lifecycle.plan_acknowledge(stored, dedup_key, self._clock()),
            lambda _plan: PagerDutyEvent(event_action=EventAction.ACKNOWLEDGE, dedup_key=dedup_key),
        )
        return self._response(outcome)

    def resolve_incident(
        self,
        dedup_key: str,
        *,
        resolution: Resolution = Resolution.MANUAL,
        note: str | None = None,
        budget_seconds: float | None = None,
    ) -> EventResponse:
        """Resolve an open incident (by a person, or by reconciliation with ``note`` saying why)."""
        return self._response(self.close(dedup_key, resolution, note=note, budget_seconds=budget_seconds))

    def close(
        self,
        dedup_key: str,
        resolution: Resolution,
        *,
        note: str | None = None,
        observed: Incident | None = None,
        budget_seconds: float | None = None,
    ) -> Outcome:
        """Resolve ``dedup_key``, reporting the whole outcome (``observed``: see ``lifecycle.plan_close``)."""
        dedup_key = _wire_key(dedup_key)
        return self.delivery.run(
            dedup_key,
            lambda stored: lifecycle.plan_close(
                stored, dedup_key, resolution, self._clock(), note=note, observed=observed
            ),
            lambda _plan: PagerDutyEvent(event_action=EventAction.RESOLVE, dedup_key=dedup_key),
            budget_seconds=budget_seconds,
        )

    def get_active_incidents(self) -> dict[str, Incident]:
        return {incident.dedup_key: incident for incident in self.store.list_active()}

    def get_incident(self, dedup_key: str) -> Incident | None:
        return self.store.get(_wire_key(dedup_key))

    def clear_active_incidents(self) -> None:
        """Forget every tracked incident (PagerDuty is not told: this only clears the table)."""
        self.store.clear()

    # --- notifications --------------------------------------------------------------------------------

    def handle_alarm(self, alarm: AlarmNotification, *, budget_seconds: float | None = None) -> Outcome:
        """One alarm state change, through its rule and the lifecycle table to PagerDuty and the table."""
        return self.notifications.handle_alarm(alarm, budget_seconds=budget_seconds)

    def handle_unrecognized(
        self, message: UnrecognizedMessage, *, source: str | None = None, budget_seconds: float | None = None
    ) -> Outcome:
        return self.notifications.handle_unrecognized(message, source=source, budget_seconds=budget_seconds)

    def _response(self, outcome: Outcome) -> EventResponse:
        if outcome.error is not None:
            raise outcome.error
        if not_found(outcome):
            stored = outcome.incident  # what the plan found: no second read
            detail = None
            if outcome.reason == Reason.ALREADY_RESOLVED.value and stored is not None:
                when = stored.resolved_at.isoformat() if stored.resolved_at else "earlier"
                detail = f"it was resolved at {when}"
            raise IncidentNotFoundError(outcome.dedup_key or "", detail)
        assert outcome.response is not None
        return outcome.response
