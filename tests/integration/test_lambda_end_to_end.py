"""The Lambda, end to end over real sockets: ``lambda_handler`` with complete SNS events from ``events/``,
DynamoDB (and Secrets Manager) served by moto's HTTP server, PagerDuty by the local stand-in.

Nothing is patched inside the package: the handler reads its environment, builds its runtime on the
first invocation and talks to both services through the endpoints the environment names.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import clear_caches

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty, Respond
from pagerduty_bridge.errors import BridgeError, ConcurrentUpdateError
from pagerduty_bridge.models import EventAction, Incident, IncidentStatus, Resolution
from pagerduty_bridge.processing import EventResult, process_event
from pagerduty_bridge.runtime import lambda_runtime
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import assert_no_secret, emf_metrics, lambda_environment, powertools_log_stream
from tests.conftest import EVENTS, ROUTING_KEY, FakeLambdaContext, assert_valid_event, event_files, load_json

REGION = "eu-west-1"
SEED_KEY = "production-hybrid-routing-high-failure-rate-SupportModeSuccessRate"
SEED_ALARM = EVENTS / "01-seed-high-failure-rate-alarm.json"
SEED_OK = EVENTS / "02-seed-high-failure-rate-ok.json"
OUTAGE_ANSWERS = 20
"""More 503s than a retry budget of one second can use up: the delivery must fail."""


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boto_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@dataclass
class Captured:
    """Everything the invocations wrote: Powertools' JSON log lines, log records, stdout and stderr."""

    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture
    log_stream: io.StringIO
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def _drain(self) -> None:
        out, err = self.capsys.readouterr()
        self.out.append(out)
        self.err.append(err)

    def text(self) -> str:
        self._drain()
        records = [f"{r.getMessage()} {vars(r)!r}" for r in self.caplog.records]
        return "\n".join([*self.out, *self.err, self.log_stream.getvalue(), *records])

    def metrics(self) -> Counter[str]:
        """Sums of the EMF metrics Powertools printed, by name."""
        self._drain()
        return emf_metrics("".join(self.out))


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Captured]:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="pagerduty_bridge")
    with powertools_log_stream() as stream:
        yield Captured(capsys, caplog, stream)


@dataclass
class Bridge:
    """The deployed function as a test sees it: invoke it, inspect its table and PagerDuty."""

    fake: FakePagerDuty
    client: Any
    table: str
    captured: Captured

    @property
    def store(self) -> DynamoDBIncidentStore:
        return DynamoDBIncidentStore(self.client, self.table)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler.lambda_handler(event, FakeLambdaContext())
        return result

    def incident(self, dedup_key: str) -> Incident:
        incident = self.store.get(dedup_key)
        assert incident is not None, f"no incident {dedup_key} in the table"
        return incident

    def raw_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.client.scan(TableName=self.table)["Items"]
        return items

    def sent(self) -> list[tuple[str, str]]:
        """(event_action, dedup_key) of every request PagerDuty received, in order."""
        return [(r.body["event_action"], r.body["dedup_key"]) for r in self.fake.requests]


@pytest.fixture
def bridge(
    monkeypatch: pytest.MonkeyPatch,
    moto_url: str,
    boto_session: boto3.session.Session,
    fake_pd: FakePagerDuty,
    captured: Captured,
) -> Bridge:
    table = f"incidents-{uuid.uuid4().hex[:12]}"
    client = boto_session.client("dynamodb", endpoint_url=moto_url)
    create_table(client, table)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
    lambda_environment(monkeypatch, table=table, events_url=fake_pd.url, retry_budget_seconds=1)
    return Bridge(fake_pd, client, table, captured)


def seed_alarm() -> dict[str, Any]:
    event: dict[str, Any] = load_json(SEED_ALARM)
    return event


def assert_key_nowhere(bridge: Bridge, *outputs: object) -> None:
    """The routing key is in no log line, metric, return value, error or table item."""
    everything = "\n".join([bridge.captured.text(), *map(repr, outputs), *map(str, outputs)])
    assert any(r.name.startswith(c.PACKAGE_NAME) for r in bridge.captured.caplog.records), "no log was captured"
    assert_no_secret(ROUTING_KEY, everything, bridge.raw_items(), logs=bridge.captured.caplog.records)


# --- the alarm lifecycle --------------------------------------------------------------------------------


def test_seed_alarm_opens_an_alert_and_a_triggered_incident(bridge: Bridge) -> None:
    response = bridge.invoke(seed_alarm())

    assert response == {"processed": 1, "failed": 0}
    alert = bridge.fake.open_alerts(ROUTING_KEY)[SEED_KEY]
    assert (alert.status, alert.severity) == ("triggered", "critical")
    [body] = bridge.fake.accepted()
    assert_valid_event(body)
    assert body["payload"]["custom_details"]["alarmName"] == "production-hybrid-routing-high-failure-rate"
    incident = bridge.incident(SEED_KEY)
    assert incident.status is IncidentStatus.TRIGGERED
    assert incident.pending_action is None
    assert incident.state_changed_at == datetime(2025, 1, 14, 14, 30, tzinfo=UTC)
    assert [i.dedup_key for i in bridge.store.list_active()] == [SEED_KEY]
    assert bridge.captured.metrics()[c.METRIC_INCIDENT_TRIGGERED] == 1


def test_replaying_the_same_alarm_sends_nothing_new(bridge: Bridge) -> None:
    bridge.invoke(seed_alarm())
    before = bridge.incident(SEED_KEY)

    response = bridge.invoke(seed_alarm())

    assert response == {"processed": 1, "failed": 0}
    assert bridge.sent() == [("trigger", SEED_KEY)]
    assert bridge.incident(SEED_KEY) == before
    metrics = bridge.captured.metrics()
    assert (metrics[c.METRIC_INCIDENT_TRIGGERED], metrics[c.METRIC_DUPLICATE_NOTIFICATION]) == (1, 1)


def test_ok_resolves_the_alert_and_the_incident(bridge: Bridge) -> None:
    bridge.invoke(seed_alarm())

    response = bridge.invoke(load_json(SEED_OK))

    assert response == {"processed": 1, "failed": 0}
    assert bridge.sent() == [("trigger", SEED_KEY), ("resolve", SEED_KEY)]
    assert bridge.fake.alerts[(ROUTING_KEY, SEED_KEY)].status == "resolved"
    incident = bridge.incident(SEED_KEY)
    assert (incident.status, incident.resolution) == (IncidentStatus.RESOLVED, Resolution.AUTO)
    assert incident.resolved_at == datetime(2025, 1, 14, 14, 35, tzinfo=UTC)
    assert bridge.store.list_active() == []
    [item] = bridge.raw_items()
    assert c.TTL_ATTRIBUTE in item, "a resolved incident must expire"
    metrics = bridge.captured.metrics()
    assert (metrics[c.METRIC_INCIDENT_TRIGGERED], metrics[c.METRIC_INCIDENT_RESOLVED]) == (1, 1)
    assert metrics[c.METRIC_RESOLUTION_TIME] == 300


def test_a_garbage_record_does_not_stop_the_records_beside_it(bridge: Bridge) -> None:
    cpu = load_json(EVENTS / "05-ec2-cpu-alarm.json")["Records"][0]
    latency = load_json(EVENTS / "03-high-latency-alarm.json")["Records"][0]
    garbage = {**cpu, "Sns": {**cpu["Sns"], "Message": None}}
    event = {"Records": [cpu, garbage, latency]}

    response = bridge.invoke(event)

    assert response == {"processed": 3, "failed": 1}
    assert len(bridge.fake.open_alerts(ROUTING_KEY)) == 2
    assert [action for action, _ in bridge.sent()] == ["trigger", "trigger"]
    assert len(bridge.store.list_active()) == 2
    assert bridge.captured.metrics()[c.METRIC_INVALID_MESSAGE] == 1


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # control messages count nothing
def test_every_sample_event_goes_through_with_valid_bodies_only(bridge: Bridge) -> None:
    responses = [bridge.invoke(load_json(path)) for path in event_files()]

    for path, response in zip(event_files(), responses, strict=True):
        failures = response["batchItemFailures"] if "batchItemFailures" in response else response["failed"]
        assert not failures, (path.name, response)
    assert bridge.fake.requests, "the samples sent nothing"
    for request in bridge.fake.requests:
        assert request.status == 202, request
        assert_valid_event(request.body)
    assert_key_nowhere(bridge, responses)


# --- failures: what Lambda retries and what it does not --------------------------------------------------


def test_a_pagerduty_outage_raises_and_the_retry_delivers_exactly_once(bridge: Bridge) -> None:
    bridge.fake.script(*[Respond(503)] * OUTAGE_ANSWERS)

    with pytest.raises(BridgeError) as raised:
        bridge.invoke(seed_alarm())

    assert raised.value.retryable
    attempts = bridge.fake.requests
    assert len(attempts) >= 2, "the event was not retried within its budget"
    assert {r.status for r in attempts} == {503}
    assert bridge.fake.accepted() == []
    assert bridge.incident(SEED_KEY).pending_action is EventAction.TRIGGER, "the page must stay pending"
    failures = bridge.captured.metrics()
    assert failures[c.METRIC_DELIVERY_FAILED_TRANSIENT] == 1
    assert_key_nowhere(bridge, raised.value, raised.getrepr())

    bridge.fake.reset()  # PagerDuty is back (the unused scripted answers go too)
    retried = bridge.invoke(seed_alarm())
    replayed = bridge.invoke(seed_alarm())

    assert (retried, replayed) == ({"processed": 1, "failed": 0}, {"processed": 1, "failed": 0})
    assert bridge.sent() == [("trigger", SEED_KEY)]
    assert SEED_KEY in bridge.fake.open_alerts(ROUTING_KEY)
    incident = bridge.incident(SEED_KEY)
    assert (incident.status, incident.pending_action, incident.last_error) == (IncidentStatus.TRIGGERED, None, None)


def test_a_rejected_event_is_answered_not_raised(bridge: Bridge) -> None:
    bridge.fake.script(Respond(400))

    response = bridge.invoke(seed_alarm())
    replayed = bridge.invoke(seed_alarm())

    assert response == {"processed": 1, "failed": 1}
    assert replayed == {"processed": 1, "failed": 0}, "a rejected event must not be sent again"
    assert [r.status for r in bridge.fake.requests] == [400]
    incident = bridge.incident(SEED_KEY)
    assert incident.pending_action is None
    assert incident.last_error is not None and "400" in incident.last_error
    metrics = bridge.captured.metrics()
    assert metrics[c.METRIC_DELIVERY_FAILED_PERMANENT] == 1
    assert metrics[c.METRIC_INCIDENT_TRIGGERED] == 0
    assert_key_nowhere(bridge, response)


# --- the secret -------------------------------------------------------------------------------------------


@pytest.fixture
def powertools_parameters_cache() -> Iterator[None]:
    """Powertools keeps its Secrets Manager provider (and client) per process: start and end without one."""
    clear_caches()
    yield
    clear_caches()


@pytest.mark.usefixtures("powertools_parameters_cache")
@pytest.mark.parametrize("secret_string", [ROUTING_KEY, json.dumps({"default": ROUTING_KEY})], ids=["plain", "json"])
def test_the_key_from_secrets_manager_delivers_and_is_never_shown(
    bridge: Bridge,
    monkeypatch: pytest.MonkeyPatch,
    moto_url: str,
    boto_session: boto3.session.Session,
    secret_string: str,
) -> None:
    secrets = boto_session.client("secretsmanager", endpoint_url=moto_url)
    arn = secrets.create_secret(Name=f"pagerduty/{uuid.uuid4().hex}", SecretString=secret_string)["ARN"]
    monkeypatch.delenv(c.ENV_INTEGRATION_KEY)
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY_SECRET_ARN, arn)
    # The variable is named after the service id "Secrets Manager": ..._SECRETSMANAGER is ignored.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_url)

    response = bridge.invoke(seed_alarm())
    ok = bridge.invoke(load_json(SEED_OK))

    assert handler.get_runtime().settings.integration_key is None
    assert (response, ok) == ({"processed": 1, "failed": 0}, {"processed": 1, "failed": 0})
    assert [body["routing_key"] for body in bridge.fake.accepted()] == [ROUTING_KEY, ROUTING_KEY]
    assert bridge.fake.alerts[(ROUTING_KEY, SEED_KEY)].status == "resolved"
    assert_key_nowhere(bridge, response, ok, handler.get_runtime(), handler.get_runtime().notifications())


# --- concurrency: two containers, one notification ----------------------------------------------------------

CONTAINERS = 4


def test_concurrent_containers_page_once_for_the_same_notification(bridge: Bridge) -> None:
    """SNS may deliver one notification to several containers at once: the conditional claim lets one
    of them send; the others see a duplicate or back off with a retryable error."""
    event = seed_alarm()
    runtimes = [lambda_runtime() for _ in range(CONTAINERS)]  # each with its own DynamoDB client and session
    integrations = [runtime.notifications() for runtime in runtimes]
    barrier = threading.Barrier(CONTAINERS)
    results: list[EventResult | None] = [None] * CONTAINERS

    def container(index: int) -> None:
        barrier.wait()
        results[index] = process_event(event, integrations[index])

    threads = [threading.Thread(target=container, args=(i,)) for i in range(CONTAINERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert all(r is not None for r in results), "a container hung"
    records = [r.results[0] for r in results if r is not None]
    delivered = [r for r in records if r.outcome is not None and r.outcome.delivered]
    others = [r for r in records if r not in delivered]
    assert len(delivered) == 1
    for record in others:
        assert (record.outcome is not None and record.outcome.reason == "duplicate") or (
            isinstance(record.error, ConcurrentUpdateError) and record.error.retryable
        ), record
    assert bridge.sent() == [("trigger", SEED_KEY)]

    # Lambda retries the containers that backed off: by now the page is done, so they send nothing.
    for index, record in enumerate(records):
        if record.error is not None:
            retried = process_event(event, integrations[index])
            assert retried.results[0].outcome is not None
            assert retried.results[0].outcome.reason == "duplicate"
    assert bridge.sent() == [("trigger", SEED_KEY)]
    assert bridge.incident(SEED_KEY).pending_action is None
