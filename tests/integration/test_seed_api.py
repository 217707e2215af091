"""The seed's API end to end against the local PagerDuty stand-in (real HTTP on loopback)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

from pagerduty_bridge import AlertMessage, AlertSeverity, PagerDutyIntegration, ServiceConfig
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty, Respond
from pagerduty_bridge.errors import IncidentNotFoundError, PagerDutyApiError, PagerDutyDeliveryError
from pagerduty_bridge.events_api import EventPayload, PagerDutyEvent
from pagerduty_bridge.models import EventAction, IncidentStatus
from pagerduty_bridge.settings import Settings
from tests.builders import assert_no_secret
from tests.conftest import ROUTING_KEY, assert_valid_event

SEED_KEY = "production-hybrid-routing-high-failure-rate-SupportModeSuccessRate"
NOW = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)


def integration(url: str, budget: float = 2.0) -> PagerDutyIntegration:
    config = ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="checkout")
    settings = Settings(retry_budget_seconds=budget)
    return PagerDutyIntegration(config, "production", events_url=url, settings=settings, clock=lambda: NOW)


def test_trigger_list_acknowledge_resolve(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    response = bridge.trigger_high_failure_rate_incident(85, 95)
    assert (response.status, response.dedup_key) == ("success", SEED_KEY)
    active = bridge.get_active_incidents()
    assert list(active) == [SEED_KEY]
    assert active[SEED_KEY].status is IncidentStatus.TRIGGERED
    assert fake_pd.open_alerts()[SEED_KEY].status == "triggered"

    bridge.acknowledge_incident(SEED_KEY)
    assert bridge.get_incident(SEED_KEY).status is IncidentStatus.ACKNOWLEDGED  # type: ignore[union-attr]
    assert fake_pd.open_alerts()[SEED_KEY].status == "acknowledged"

    bridge.resolve_incident(SEED_KEY)
    assert bridge.get_active_incidents() == {}
    assert fake_pd.open_alerts() == {}
    for body in fake_pd.accepted():
        assert_valid_event(body)


def test_the_seed_payload_reaches_pagerduty_exactly(fake_pd: FakePagerDuty) -> None:
    integration(fake_pd.url).trigger_high_failure_rate_incident(85, 95)
    (body,) = fake_pd.accepted()
    assert body["dedup_key"] == SEED_KEY
    assert body["payload"]["summary"] == "🚨 [PRODUCTION] High Failure Rate Alert"
    assert body["payload"]["timestamp"] == "2025-01-14T14:30:00.000Z"
    assert body["payload"]["custom_details"]["currentValue"] == 85
    assert body["routing_key"] == ROUTING_KEY


def test_latency_and_cost_templates_are_warnings(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    latency = bridge.trigger_high_latency_incident(7450, 5000)
    cost = bridge.trigger_cost_threshold_incident(142.5, 100)
    assert latency.dedup_key and latency.dedup_key.startswith("production-hybrid-routing-high-latency-")
    assert cost.dedup_key and cost.dedup_key.startswith("production-hybrid-routing-cost-threshold-")
    assert [b["payload"]["severity"] for b in fake_pd.accepted()] == ["warning", "warning"]


def test_alert_message_in_seed_camel_case_and_auto_resolve(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    alert = AlertMessage.model_validate(
        {
            "severity": "WARNING",
            "alarmName": "checkout-queue-depth",
            "metricName": "ApproximateNumberOfMessagesVisible",
            "threshold": 100,
            "currentValue": 250,
            "timestamp": "2025-01-14T14:30:00Z",
            "environment": "staging",
        }
    )
    assert alert.severity is AlertSeverity.WARNING
    response = bridge.create_incident_from_alert(alert)
    assert response.dedup_key == "checkout-queue-depth-ApproximateNumberOfMessagesVisible"
    assert fake_pd.accepted()[0]["payload"]["severity"] == "warning"
    assert bridge.auto_resolve_incident(alert) is not None
    assert bridge.get_active_incidents() == {}
    assert fake_pd.open_alerts() == {}
    assert bridge.auto_resolve_incident(alert) is None


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_timestamp_with_no_utc_equivalent_is_a_validation_error(timestamp: str) -> None:
    """Year 1 just after midnight at a positive offset (or year 9999 at a negative one) is no instant a
    UTC datetime can hold: the model refuses it as any other bad field, naming it."""
    fields = {"severity": "info", "alarm_name": "x", "environment": "staging"}
    with pytest.raises(ValidationError, match=r"timestamp\n.*no UTC equivalent"):
        AlertMessage(**fields, timestamp=timestamp)


def test_unknown_keys_are_not_found(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    with pytest.raises(IncidentNotFoundError, match=r"^Incident not found: nope$"):
        bridge.acknowledge_incident("nope")
    with pytest.raises(IncidentNotFoundError, match=r"^Incident not found: nope$"):
        bridge.resolve_incident("nope")
    assert fake_pd.requests == []


def test_401_is_reported_as_the_seed_does_not_retried_at_once_but_kept(fake_pd: FakePagerDuty) -> None:
    """A revoked key: sending again at once cannot help, but after the key is fixed a retry can, so the
    trigger stays pending (for Lambda's retries and the failure destination) instead of done."""
    fake_pd.script(Respond(401, body="Unauthorized"))
    bridge = integration(fake_pd.url)
    with pytest.raises(PagerDutyApiError, match=r"^PagerDuty API error: 401 - Unauthorized$") as caught:
        bridge.trigger_high_failure_rate_incident(85, 95)
    assert caught.value.retryable is True
    assert len(fake_pd.requests) == 1
    assert_no_secret(ROUTING_KEY, caught.value)
    incident = bridge.get_incident(SEED_KEY)
    assert incident is not None and incident.pending_action is not None


def test_network_failure_is_reported_as_the_seed_does() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bridge = integration(f"http://127.0.0.1:{port}/v2/enqueue", budget=0.5)
    with pytest.raises(PagerDutyDeliveryError, match=r"^Failed to send PagerDuty event: ") as caught:
        bridge.trigger_high_failure_rate_incident(85, 95)
    assert caught.value.retryable
    incident = bridge.get_incident(SEED_KEY)
    assert incident is not None and incident.pending_action is not None, "not marked done before accepted"


def test_service_config_get_returns_a_copy_and_update_changes_it(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    config = bridge.get_service_config()
    assert config.service_name == "checkout"
    assert_no_secret(ROUTING_KEY, config, bridge)
    updated = bridge.update_service_config(service_name="payments", escalation_policy_id="P123")
    assert (updated.service_name, updated.escalation_policy_id) == ("payments", "P123")
    assert config.service_name == "checkout"
    assert bridge.get_service_config().service_name == "payments"


def test_clear_active_incidents(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    bridge.trigger_high_latency_incident(7450, 5000)
    (key,) = bridge.get_active_incidents()
    assert key.startswith("production-hybrid-routing-high-latency-"), "an incident existed before clearing"
    bridge.clear_active_incidents()
    assert bridge.get_active_incidents() == {}
    assert bridge.get_incident(key) is None
    assert set(fake_pd.open_alerts(ROUTING_KEY)) == {key}, "clearing the table tells PagerDuty nothing"


def test_a_repeated_trigger_keeps_an_acknowledged_incident_acknowledged(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    bridge.trigger_high_failure_rate_incident(85, 95)
    bridge.acknowledge_incident(SEED_KEY)
    bridge.trigger_high_failure_rate_incident(80, 95)
    assert bridge.get_incident(SEED_KEY).status is IncidentStatus.ACKNOWLEDGED  # type: ignore[union-attr]
    assert fake_pd.open_alerts()[SEED_KEY].status == "acknowledged"


@pytest.mark.parametrize("name", ["   ", "\t", "\u3000"])
def test_attack_an_alert_named_only_blanks_is_triggered_and_resolved(fake_pd: FakePagerDuty, name: str) -> None:
    """PagerDuty refuses a blank dedup key on a resolve (and makes one up on a trigger): the key is
    spelled out, so the alert that opened is the one its resolve closes."""
    bridge = integration(fake_pd.url)
    alert = AlertMessage.model_validate(
        {"severity": "critical", "alarmName": name, "timestamp": NOW, "environment": "production"}
    )
    triggered = bridge.create_incident_from_alert(alert)
    assert triggered.dedup_key is not None and triggered.dedup_key.startswith("blank-alarm-name-")
    assert list(fake_pd.open_alerts()) == [triggered.dedup_key]
    assert bridge.auto_resolve_incident(alert) is not None
    assert fake_pd.open_alerts() == {}
    for body in fake_pd.accepted():
        assert_valid_event(body)


def test_a_trigger_with_a_blank_dedup_key_is_refused_before_anything_is_sent(fake_pd: FakePagerDuty) -> None:
    bridge = integration(fake_pd.url)
    event = PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=" ",
        payload=EventPayload(summary="db down", source="db", severity=AlertSeverity.CRITICAL),
    )
    with pytest.raises(ValueError, match="dedup_key that is not blank"):
        bridge.trigger_incident(event)
    assert fake_pd.requests == []


def test_attack_a_lone_surrogate_in_a_trigger_is_sent_and_kept_as_a_replacement_character(
    fake_pd: FakePagerDuty,
) -> None:
    """No UTF-8 can carry it: the body and the stored incident get U+FFFD, and no error (whose arguments
    would hold the whole body, routing key included) comes out."""
    bridge = integration(fake_pd.url)
    event = PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key="db-\ud83d",
        payload=EventPayload(summary="db \udc00 down", source="db\ud800", severity=AlertSeverity.CRITICAL),
    )
    response = bridge.trigger_incident(event)
    assert response.dedup_key == "db-\ufffd"
    (body,) = fake_pd.accepted()
    assert (body["dedup_key"], body["payload"]["summary"]) == ("db-\ufffd", "db \ufffd down")
    stored = bridge.get_incident("db-\ufffd")
    assert stored is not None and stored.summary == "db \ufffd down"
    bridge.resolve_incident("db-\ufffd")
    assert fake_pd.open_alerts() == {}
