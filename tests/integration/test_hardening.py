"""Hostile input and odd answers: no lost page, no phantom alert, no leaked key.

Each test is one attack that once broke the bridge, run through the real paths: the Lambda handler on
moto's DynamoDB (a new container per test), the PagerDuty stand-in over real HTTP with scripted faults,
and the CLI in-process. Each asserts outcomes: the page where it belongs, the key nowhere else.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import clear_caches
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge.delivery import UNCONFIRMED_WINDOW
from pagerduty_bridge.devtools.fake_pagerduty import Delay, FakePagerDuty, Respond
from pagerduty_bridge.errors import BridgeError
from pagerduty_bridge.models import EventAction, Incident, IncidentStatus
from pagerduty_bridge.runtime import lambda_runtime
from pagerduty_bridge.store import TEXT_LIMITS
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import (
    T0,
    alarm_message,
    assert_no_secret,
    cli,
    dedup_key,
    emf_metrics,
    eventbridge_event,
    lambda_environment,
    powertools_log_stream,
    schedule_event,
    sns_event,
    sns_event_of,
    sns_notification,
    sqs_alarm,
    sqs_event,
    sqs_record,
)
from tests.conftest import FakeLambdaContext, assert_valid_event

TABLE = "incidents"
REGION = "eu-west-1"
DYNAMODB_ITEM_LIMIT = 400 * 1024
"""DynamoDB's item size limit (moto enforces it too)."""
QUICKLY = 2.0
"""A loose bound for what must take milliseconds: machines running these tests are shared."""
BEFORE_YEAR_ONE = "0001-01-01T00:00:00+01:00"
"""Year 1 at a positive offset: an instant before ``datetime.min`` in UTC."""
AFTER_YEAR_9999 = "9999-12-31T23:59:59-01:00"
"""The last second of year 9999 at a negative offset: an instant after ``datetime.max`` in UTC."""
HTML_PAGE = "<html><head><title>Sign in</title></head><body>Proxy authentication required</body></html>"


def fresh_key() -> str:
    """A well-formed routing key no earlier test has loaded (so nothing scrubs it in advance)."""
    return uuid.uuid4().hex


# --- the Lambda, as a test sees it ---------------------------------------------------------------------


@dataclass
class Bridge:
    """The function in a new container: invoke it, read its table, its logs and what PagerDuty holds."""

    fake: FakePagerDuty
    client: Any
    key: str
    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture
    log_stream: io.StringIO
    out: list[str] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler.lambda_handler(event, FakeLambdaContext())
        return result

    def invoke_raising(self, event: dict[str, Any]) -> BridgeError:
        """Invoke, expecting the handler to raise what Lambda retries; the error raised."""
        with pytest.raises(BridgeError) as raised:
            self.invoke(event)
        assert raised.value.retryable, f"the handler raised what a retry cannot fix: {raised.value!r}"
        return raised.value

    @property
    def store(self) -> DynamoDBIncidentStore:
        return DynamoDBIncidentStore(self.client, TABLE)

    def incident(self, name: str) -> Incident | None:
        return self.store.get(dedup_key(name))

    def items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.client.scan(TableName=TABLE)["Items"]
        return items

    def alert(self, name: str) -> str | None:
        """The alert's status in PagerDuty (``triggered``, ``resolved`` …), None when never opened."""
        alert = self.fake.alerts.get((self.key, dedup_key(name)))
        return alert.status if alert is not None else None

    def triggers(self, name: str) -> list[dict[str, Any]]:
        """Triggers for the alarm that PagerDuty itself accepted (not a scripted answer)."""
        return [
            r.body
            for r in self.fake.requests
            if r.status == 202
            and r.fault is None
            and r.body["event_action"] == "trigger"
            and r.body["dedup_key"] == dedup_key(name)
        ]

    def stdout(self) -> str:
        """What the invocations printed so far (Powertools' EMF metrics)."""
        self.out.append(self.capsys.readouterr().out)
        return "".join(self.out)

    def logs(self) -> str:
        """Every log line written: Powertools' JSON lines, and each record as the root logger saw it."""
        records = [f"{r.getMessage()} {vars(r)!r}" for r in self.caplog.records]
        return "\n".join([self.log_stream.getvalue(), self.stdout(), *records])

    def metrics(self) -> Counter[str]:
        """Sums of the EMF metrics Powertools printed, by name."""
        return emf_metrics(self.stdout())


@pytest.fixture
def bridge(
    monkeypatch: pytest.MonkeyPatch,
    fake_pd: FakePagerDuty,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Bridge]:
    """The Lambda's environment on moto (DynamoDB, Secrets Manager, CloudWatch) and the stand-in."""
    key = fresh_key()
    lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url, key=key, retry_budget_seconds=1)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=c.PACKAGE_NAME)
    with powertools_log_stream() as stream, mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, TABLE)
        yield Bridge(fake_pd, client, key, capsys, caplog, stream)


def failures(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


# --- 1. one bad record takes its batch down ------------------------------------------------------------


def poison_eventbridge_time() -> dict[str, Any]:
    """An SNS notification whose message is an EventBridge alarm event stamped before year 1 in UTC."""
    event = eventbridge_event("poison-eventbridge")
    event["time"] = BEFORE_YEAR_ONE
    del event["detail"]["state"]["timestamp"]
    return sqs_record(sns_notification(event))


def poison_sns_timestamp() -> dict[str, Any]:
    """An alarm without StateChangeTime, in an SNS notification stamped before year 1 in UTC."""
    message = alarm_message("poison-sns-timestamp")
    del message["StateChangeTime"]
    notification = sns_notification(message)
    notification["Timestamp"] = BEFORE_YEAR_ONE
    return sqs_record(notification)


def poison_sent_timestamp(sent: str) -> Callable[[], dict[str, Any]]:
    """An alarm without StateChangeTime, in an SQS record whose SentTimestamp is digits ``int()`` refuses."""

    def build() -> dict[str, Any]:
        message = alarm_message("poison-sent-timestamp")
        del message["StateChangeTime"]
        record = sqs_record(message)
        record["attributes"]["SentTimestamp"] = sent
        record["attributes"]["ApproximateFirstReceiveTimestamp"] = sent
        return record

    return build


def poison_end_of_time() -> dict[str, Any]:
    """An SNS notification stamped after year 9999 in UTC, its alarm likewise."""
    notification = sns_notification(alarm_message("poison-end-of-time", StateChangeTime=AFTER_YEAR_9999))
    notification["Timestamp"] = AFTER_YEAR_9999
    return sqs_record(notification)


POISONS: dict[str, Callable[[], dict[str, Any]]] = {
    "eventbridge-time-before-year-1": poison_eventbridge_time,
    "sns-timestamp-before-year-1": poison_sns_timestamp,
    "sent-timestamp-superscript-two": poison_sent_timestamp("\u00b2"),
    "sent-timestamp-fullwidth-digits": poison_sent_timestamp("\uff11\uff12\uff13"),
    "times-after-year-9999": poison_end_of_time,
}


@pytest.mark.parametrize("poison", list(POISONS))
def test_attack_poisoned_record_in_an_sqs_batch_does_not_hold_back_its_neighbours(bridge: Bridge, poison: str) -> None:
    """The good records are delivered on the first receive; at most the poison goes back to the queue."""
    bad = POISONS[poison]()
    batch = sqs_event(sqs_alarm("good-first"), bad, sqs_alarm("good-last"))

    response = bridge.invoke(batch)  # raising would send the whole batch back, again and again

    assert failures(response) <= {bad["messageId"]}
    assert (bridge.alert("good-first"), bridge.alert("good-last")) == ("triggered", "triggered")
    assert (len(bridge.triggers("good-first")), len(bridge.triggers("good-last"))) == (1, 1)
    for name in ("good-first", "good-last"):
        incident = bridge.incident(name)
        assert incident is not None and incident.pending_action is None
    for request in bridge.fake.requests:
        assert request.status == 202
        assert_valid_event(request.body)


def test_attack_poisoned_files_in_a_replay_print_one_line_each_and_the_rest_still_replays(tmp_path: Path) -> None:
    files = []
    for name, build in POISONS.items():
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(sqs_event(build())), encoding="utf-8")
    unreadable = {"not-json.json": "{nope", "no-envelope.json": '{"hello": "world"}', "empty.json": ""}
    for name, text in unreadable.items():
        files.append(tmp_path / name)
        files[-1].write_text(text, encoding="utf-8")
    files.append(tmp_path / "zz-good.json")
    files[-1].write_text(json.dumps(sns_event("good-after-the-poison")), encoding="utf-8")

    run = cli("replay", "--json", "--state", str(tmp_path / "state.db"), *map(str, files))

    assert run.code == 2, "unreadable input is reported by the exit code"
    assert "Traceback" not in run.out + run.err
    complaints = run.err.strip().splitlines()
    assert sorted(line.split(": ")[1].rsplit("/", 1)[-1] for line in complaints) == sorted(unreadable)
    lines = run.json()
    assert lines[-1]["alarm_name"] == "good-after-the-poison"
    assert lines[-1]["action"] == "trigger"
    assert {line["input"].rsplit("/", 1)[-1] for line in lines} == {f.name for f in files} - set(unreadable)


# --- 2. a far-future StateChangeTime ---------------------------------------------------------------------


def test_attack_far_future_state_change_time_does_not_make_later_notifications_stale(bridge: Bridge) -> None:
    """A forged ALARM stamped 2999 (its SNS envelope now) is believed only up to its receipt time."""
    forged = sns_event("far-future", at=T0, StateChangeTime="2999-01-01T00:00:00.000+0000")
    genuine_alarm = sns_event("far-future", at=T0 + timedelta(minutes=1))
    genuine_ok = sns_event("far-future", "OK", "ALARM", at=T0 + timedelta(minutes=2))

    responses = [bridge.invoke(event) for event in (forged, genuine_alarm, genuine_ok)]

    assert all(response["failed"] == 0 for response in responses)
    assert bridge.alert("far-future") == "resolved"
    incident = bridge.incident("far-future")
    assert incident is not None
    assert (incident.status, incident.pending_action) == (IncidentStatus.RESOLVED, None)
    assert incident.state_changed_at is not None and incident.state_changed_at.year < 2999


@pytest.mark.parametrize(
    "stamp",
    ["9999-12-31T23:59:59.999+0000", AFTER_YEAR_9999, "9999-12-31T23:59:59.999999+00:00"],
    ids=["utc", "past-the-end-in-utc", "last-microsecond"],
)
def test_attack_year_9999_state_change_time_crashes_nothing_and_leaves_nothing_pending(
    bridge: Bridge, stamp: str
) -> None:
    """Within ``datetime``'s range the stamp becomes the receipt time; past it (in UTC) the message is
    no readable alarm and is forwarded as text. Either way something pages, nothing stays pending, and
    the genuine ALARM and OK after it go through."""
    forged = sns_event("end-of-time", at=T0, StateChangeTime=stamp)
    genuine_alarm = sns_event("end-of-time", at=T0 + timedelta(minutes=1))
    genuine_ok = sns_event("end-of-time", "OK", "ALARM", at=T0 + timedelta(minutes=2))

    assert bridge.invoke(forged) == {"processed": 1, "failed": 0}
    assert len(bridge.fake.accepted()) == 1, "the forged notification was lost"
    assert bridge.invoke(genuine_alarm) == {"processed": 1, "failed": 0}
    assert bridge.invoke(genuine_ok) == {"processed": 1, "failed": 0}

    assert bridge.alert("end-of-time") == "resolved"
    assert len(bridge.triggers("end-of-time")) in (1, 2)
    assert not [item for item in bridge.items() if "pending_action" in item], "a record was left pending"


# --- 3. catastrophic regular expressions -------------------------------------------------------------------


CATASTROPHIC = [
    pytest.param("re:(a+)+$", "a" * 29 + "!", False, id="nested-plus-on-30-characters"),
    pytest.param("re:(a+)+$", "a" * 30, True, id="nested-plus-matching"),
    pytest.param(
        "re:([a-z0-9]+-?)+-critical", "paymentsapigateway-latencyp99", False, id="optional-separator-no-match"
    ),
    pytest.param("re:([a-z0-9]+-?)+-critical", "payments-api-gateway-critical", True, id="optional-separator-match"),
]


@pytest.mark.parametrize(("pattern", "name", "matches"), CATASTROPHIC)
def test_attack_catastrophic_regex_in_a_rule_matches_in_linear_time(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, pattern: str, name: str, matches: bool
) -> None:
    rules = {"rules": [{"name": "evil", "match": {"alarm_name": pattern}, "severity": "info"}]}
    monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps(rules))
    event = sns_event(name)

    started = time.monotonic()
    response = bridge.invoke(event)
    took = time.monotonic() - started

    assert response == {"processed": 1, "failed": 0}
    assert took < QUICKLY, f"routing one alarm took {took:.1f} s"
    (trigger,) = bridge.triggers(name)
    assert trigger["payload"]["severity"] == ("info" if matches else "critical")


def test_attack_a_regex_re2_cannot_run_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    rule = {"name": "backreference", "match": {"alarm_name": r"re:(a+)\1"}, "severity": "info"}
    path.write_text(json.dumps({"rules": [rule]}), encoding="utf-8")

    run = cli("rules", "check", str(path))

    assert run.code == 2
    assert "Traceback" not in run.err
    (line,) = run.err.strip().splitlines()
    assert "backreference" in line and "match.alarm_name" in line and "RE2" in line


# --- 4. any 2xx counted as accepted ---------------------------------------------------------------------------


NOT_ACCEPTANCE = [
    pytest.param(Respond(200, HTML_PAGE), id="proxy-200-html"),
    pytest.param(Respond(202, {"status": "ok", "note": "queued by a gateway"}), id="202-unexpected-body"),
    pytest.param(Respond(202, "accepted"), id="202-text"),
    pytest.param(Respond(204, ""), id="204-no-content"),
]


def assert_kept_then_delivered_by_the_retry(bridge: Bridge, name: str, event: dict[str, Any]) -> None:
    """After an answer that is not PagerDuty's acceptance: nothing opened, the page still pending; the
    retry of the same event then delivers it, once."""
    assert bridge.alert(name) is None
    pending = bridge.incident(name)
    assert pending is not None and pending.pending_action is EventAction.TRIGGER, "the page must stay pending"
    assert bridge.invoke(event) == {"processed": 1, "failed": 0}  # the retry
    assert bridge.alert(name) == "triggered"
    assert len(bridge.triggers(name)) == 1
    delivered = bridge.incident(name)
    assert delivered is not None and delivered.pending_action is None


@pytest.mark.parametrize("answer", NOT_ACCEPTANCE)
def test_attack_a_2xx_that_is_not_pagerdutys_acceptance_is_not_counted_as_delivered(
    bridge: Bridge, answer: Respond
) -> None:
    bridge.fake.script(answer)
    event = sns_event("proxied")

    bridge.invoke_raising(event)  # Lambda retries an SNS event whose handler raised

    assert_kept_then_delivered_by_the_retry(bridge, "proxied", event)


NOT_PAGERDUTYS_REFUSAL = [
    pytest.param(Respond(400, "<html><h1>400 Bad Request</h1>request blocked</html>"), id="waf-400-html"),
    pytest.param(Respond(400, {"message": "Bad Request"}), id="gateway-400-json-without-errors"),
    pytest.param(Respond(400, ""), id="400-empty"),
    pytest.param(Respond(407, "<html>Proxy Authentication Required</html>"), id="proxy-407"),
    pytest.param(Respond(408, "<html>Request Timeout</html>"), id="load-balancer-408"),
    pytest.param(Respond(405, ""), id="405"),
    pytest.param(Respond(409, {"status": "error", "message": "Conflict"}), id="409-json"),
    pytest.param(Respond(413, "<html>Request Entity Too Large</html>"), id="proxy-413"),
    pytest.param(Respond(451, ""), id="451"),
]


@pytest.mark.parametrize("answer", NOT_PAGERDUTYS_REFUSAL)
def test_attack_a_4xx_that_is_not_pagerdutys_refusal_does_not_drop_the_page(bridge: Bridge, answer: Respond) -> None:
    """PagerDuty's Events API refuses an event with 400 and its ``errors[]`` (429 and 5xx mean later; 401,
    403 and 404 a wrong key or URL). Any other 4xx, or a 400 without PagerDuty's body, came from a proxy,
    a firewall or a load balancer: it says nothing about the event, so the page is kept, not dropped."""
    bridge.fake.script(answer)
    event = sns_event("intercepted")

    error = bridge.invoke_raising(event)

    assert str(answer.status) in str(error)
    assert bridge.metrics()[c.METRIC_DELIVERY_FAILED_PERMANENT] == 0
    assert_kept_then_delivered_by_the_retry(bridge, "intercepted", event)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_attack_a_redirect_takes_neither_the_page_nor_the_key_anywhere(bridge: Bridge, status: int) -> None:
    """A proxy or captive portal answers with a redirect to another host: following it would hand that
    host the routing key (and a 303 would turn the POST into a GET that delivers nothing). PagerDuty's
    Events API never redirects, so the answer is not its acceptance: nothing follows it, the page stays
    pending, and the retry delivers it."""
    with FakePagerDuty() as elsewhere:
        bridge.fake.script(Respond(status, "<html>moved</html>", location=elsewhere.url))
        event = sns_event("redirected")

        error = bridge.invoke_raising(event)

        assert str(status) in str(error)
        assert elsewhere.requests == [], "the body (and its routing key) went to the redirect's host"
    assert_kept_then_delivered_by_the_retry(bridge, "redirected", event)


# --- 5. 401/403/404 lose the notification ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404])
def test_attack_a_revoked_key_keeps_an_sns_notification_for_its_redelivery(bridge: Bridge, status: int) -> None:
    bridge.fake.script(Respond(status))
    event = sns_event("revoked")

    error = bridge.invoke_raising(event)

    assert str(status) in str(error)
    assert_kept_then_delivered_by_the_retry(bridge, "revoked", event)  # redelivered once the key is fixed


@pytest.mark.parametrize("status", [401, 403, 404])
def test_attack_a_revoked_key_keeps_an_sqs_message_for_its_redelivery(bridge: Bridge, status: int) -> None:
    bridge.fake.script(Respond(status))
    record = sqs_alarm("revoked")

    first = bridge.invoke(sqs_event(record))

    assert failures(first) == {record["messageId"]}
    assert bridge.alert("revoked") is None
    again = {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": "2"}}
    assert bridge.invoke(sqs_event(again)) == {"batchItemFailures": []}
    assert bridge.alert("revoked") == "triggered"
    assert len(bridge.triggers("revoked")) == 1


# --- 6. PagerDuty echoing the key ---------------------------------------------------------------------------------


def echoing(status: int, key: str) -> Respond:
    """An answer whose ``errors[]`` repeats the routing key the request carried."""
    return Respond(
        status,
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": [f"routing_key {key} is not a valid integration key", f"'{key}' rejected"],
        },
    )


def test_attack_pagerduty_echoing_the_key_leaks_it_nowhere(bridge: Bridge, tmp_path: Path) -> None:
    """PagerDuty (or a proxy) repeats the routing key in ``errors[]``: the table, the logs, the raised
    error and the CLI's output show it masked, never as it is."""
    key = bridge.key
    bridge.fake.script(echoing(400, key), echoing(401, key))

    answered = bridge.invoke(sns_event("echo-rejected"))  # 400: answered, never retried
    raised = bridge.invoke_raising(sns_event("echo-revoked"))  # 401: raised for Lambda to retry

    assert answered == {"processed": 1, "failed": 1}
    rejected = bridge.incident("echo-rejected")
    assert rejected is not None and rejected.last_error is not None
    assert "is not a valid integration key" in rejected.last_error, "the echo did not reach the bridge"
    assert "is not a valid integration key" in str(raised)

    # The same answers to the CLI: replay --send, then the incidents it recorded.
    path = tmp_path / "echo.json"
    path.write_text(json.dumps(sns_event("echo-cli")), encoding="utf-8")
    state = str(tmp_path / "state.db")
    bridge.fake.script(echoing(400, key))
    sent = cli("replay", "--send", "--events-url", bridge.fake.url, "--state", state, str(path))
    sent_json = cli("replay", "--json", "--send", "--events-url", bridge.fake.url, "--state", state, str(path))
    listed = cli("incidents", "list", "--state", state)
    listed_json = cli("incidents", "list", "--json", "--state", state)
    assert "is not a valid integration key" in sent.out + sent.err

    assert_no_secret(
        key,
        answered,
        raised,
        bridge.items(),
        [bridge.store.get(dedup_key(n)) for n in ("echo-rejected", "echo-revoked")],
        *(run.out + run.err for run in (sent, sent_json, listed, listed_json)),
        bridge.logs(),
        logs=bridge.caplog.records,
    )


# --- 7. a slow PagerDuty leaves a phantom ---------------------------------------------------------------------------


class MovableClock:
    """The runtime's clock: the real time, moved on when a test says so."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


HELD_SECONDS = 2.5
"""How long the stand-in holds the first trigger: past the read timeout (the 1 s budget's), and until
after the OK was resolved."""


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_attack_a_slow_pagerduty_leaves_no_phantom_alert(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trigger held past the client's timeout, re-sent and accepted; the OK resolves it; then the held
    request lands and reopens the alert. The scheduled run asserts the state again: resolved."""
    clock = MovableClock()
    runtime = lambda_runtime()
    runtime.clock = clock
    monkeypatch.setattr(handler, "_runtime", runtime)
    bridge.fake.script(Delay(HELD_SECONDS))
    alarm = sns_event("slow")
    ok = sns_event("slow", "OK", "ALARM", at=T0 + timedelta(minutes=1))

    bridge.invoke_raising(alarm)  # no answer within the read timeout: the outcome is unknown
    assert bridge.invoke(alarm) == {"processed": 1, "failed": 0}  # Lambda's retry: accepted
    assert bridge.invoke(ok) == {"processed": 1, "failed": 0}
    assert bridge.alert("slow") == "resolved"

    deadline = time.monotonic() + HELD_SECONDS + 5
    while bridge.fake.requests[0].status is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bridge.fake.requests[0].status == 202, "the held trigger never landed"
    assert bridge.alert("slow") == "triggered", "the held trigger did not reopen the alert: nothing was tested"
    watched = bridge.incident("slow")
    assert watched is not None and watched.unconfirmed_until is not None

    clock.advance(UNCONFIRMED_WINDOW + timedelta(minutes=1))
    bridge.invoke(schedule_event())

    assert bridge.alert("slow") == "resolved"
    settled = bridge.incident("slow")
    assert settled is not None
    assert (settled.status, settled.pending_action, settled.unconfirmed_until) == (IncidentStatus.RESOLVED, None, None)
    bridge.invoke(schedule_event())  # nothing left to watch: nothing more is sent
    assert [r.body["event_action"] for r in bridge.fake.requests] == ["trigger", "trigger", "resolve", "resolve"]


# --- 8. an alarm name past any real one ------------------------------------------------------------------------------


HUGE_NAME = "z" * 210_000


@pytest.mark.parametrize(
    "summary",
    [None, "{alarm_name:>1024} in {environment}"],
    ids=["default-summary", "widest-summary-a-rule-may-ask-for"],
)
def test_attack_an_alarm_name_past_any_real_one_still_pages_and_fits_the_table(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, summary: str | None
) -> None:
    if summary is not None:
        rules = {"rules": [{"name": "wide", "match": {"alarm_name": "z*"}, "summary": summary}]}
        monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps(rules))

    opened = bridge.invoke(sns_event(HUGE_NAME))
    resolved = bridge.invoke(sns_event(HUGE_NAME, "OK", "ALARM", at=T0 + timedelta(minutes=1)))

    assert (opened, resolved) == ({"processed": 1, "failed": 0}, {"processed": 1, "failed": 0})
    (trigger, resolve) = bridge.fake.accepted()
    assert_valid_event(trigger)
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert bridge.fake.alerts[(bridge.key, trigger["dedup_key"])].status == "resolved"
    (item,) = bridge.items()
    assert len(json.dumps(item)) < DYNAMODB_ITEM_LIMIT // 10, "stored texts are not bounded"
    assert len(item["alarm_name"]["S"]) <= TEXT_LIMITS["alarm_name"]


def _composite(name: str, state: str, old_state: str, at: datetime) -> dict[str, Any]:
    message = alarm_message(name, state, old_state, at, AlarmRule="ALARM(child-a)")
    message.pop("Trigger")
    return message


def _metric_on_blank_instance(name: str, state: str, old_state: str, at: datetime) -> dict[str, Any]:
    message = alarm_message(name, state, old_state, at)
    message["Trigger"]["Dimensions"] = [{"name": "InstanceId", "value": " "}]
    return message


def _metric_math(name: str, state: str, old_state: str, at: datetime) -> dict[str, Any]:
    event = eventbridge_event(name, state, old_state, at)
    stat = {"metric": {"namespace": "AWS/EC2", "name": "CPUUtilization"}, "period": 60, "stat": "Average"}
    event["detail"]["configuration"]["metrics"] = [
        {"id": "e1", "expression": "m1*2", "returnData": True},
        {"id": "m1", "returnData": False, "metricStat": stat},
    ]
    return event


BLANK_ALARMS = [
    pytest.param(
        lambda at, state, old: sns_event_of(_composite(" ", state, old, at), at=at), id="composite-named-a-space"
    ),
    pytest.param(
        lambda at, state, old: sns_event_of(_composite("", state, old, at), at=at), id="composite-named-nothing"
    ),
    pytest.param(
        lambda at, state, old: sns_event_of(_metric_on_blank_instance("cpu", state, old, at), at=at),
        id="dimension-value-a-space",
    ),
    pytest.param(lambda at, state, old: _metric_math(" \t", state, old, at), id="metric-math-named-blanks"),
]


@pytest.mark.parametrize("alarm", BLANK_ALARMS)
def test_attack_blank_names_and_values_still_page_and_resolve(
    bridge: Bridge, alarm: Callable[[datetime, str, str], dict[str, Any]]
) -> None:
    """CloudWatch allows names and dimension values of blanks: PagerDuty refuses a blank source or dedup
    key with a 400, which would drop the page. The ALARM is accepted and its OK resolves it."""
    opened = bridge.invoke(alarm(T0, "ALARM", "OK"))
    resolved = bridge.invoke(alarm(T0 + timedelta(minutes=1), "OK", "ALARM"))

    assert (opened, resolved) == ({"processed": 1, "failed": 0}, {"processed": 1, "failed": 0})
    assert [r.status for r in bridge.fake.requests] == [202, 202]
    (trigger, resolve) = bridge.fake.accepted()
    assert_valid_event(trigger)
    assert_valid_event(resolve)
    assert trigger["payload"]["source"].strip() and trigger["dedup_key"].strip()
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert bridge.fake.alerts[(bridge.key, trigger["dedup_key"])].status == "resolved"


# --- 9. terminal injection ------------------------------------------------------------------------------------------------


def test_attack_terminal_injection_in_an_alarm_name_is_shown_escaped(tmp_path: Path) -> None:
    name = "hostile-\x1b[31mRED\x1b[0m\rOVERWRITE\x07\x9b2J"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(sns_event(name)), encoding="utf-8")
    state = str(tmp_path / "state.db")

    replayed = cli("replay", "--record", "--state", state, str(path))
    listed = cli("incidents", "list", "--wide", "--state", state)

    for run in (replayed, listed):
        assert run.code == 0, run.err
        shown = run.out + run.err
        for control in ("\x1b", "\r", "\x07", "\x9b"):
            assert control not in shown
    assert "hostile-\\x1b[31mRED\\x1b[0m\\rOVERWRITE" in replayed.out
    assert "\\x1b[31mRED" in listed.out


def test_attack_line_breaks_in_an_alarm_name_forge_no_line_of_output(tmp_path: Path) -> None:
    """Every line break a terminal or ``splitlines`` honours (``\\n``, ``\\r``, U+2028, U+0085) is shown
    escaped wherever the stored name is printed: it cannot add a line, such as a forged ``status`` above
    the real one in ``incidents show``, and the body ``replay`` prints is the body it sent."""
    name = "evil\nstatus             resolved\u2028X\x85Y\r\nZ"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(sns_event(name)), encoding="utf-8")
    state = str(tmp_path / "state.db")

    sent = cli("replay", "--json", "--state", str(tmp_path / "scratch.db"), str(path)).json()["event"]
    replayed = cli("replay", "--record", "--state", state, str(path))
    key = cli("incidents", "list", "--state", state, "--json").json()[0]["dedup_key"]
    runs = {
        "replay": replayed,
        "incidents show": cli("incidents", "show", key, "--state", state),
        "incidents list": cli("incidents", "list", "--wide", "--state", state),
        "rules test": cli("rules", "test", "--event", str(path)),
    }

    for command, run in runs.items():
        assert run.code == 0, run.err
        shown = run.out + run.err
        for line_break in ("\r", "\u2028", "\x85", "\x0b", "\x0c"):
            assert line_break not in shown, command
        starts = [line for line in shown.split("\n") if line.startswith(("status ", "X", "Y", "Z"))]
        assert starts == (["status             triggered"] if command == "incidents show" else []), command
    assert "evil\\nstatus             resolved\\u2028X\\x85Y\\r\\nZ" in runs["incidents show"].out
    block = replayed.out.split("PagerDuty receives (dry run, not sent):\n", 1)[1].split("\n\n", 1)[0]
    assert json.loads(block) == sent


# --- 10. unsafe rules --------------------------------------------------------------------------------------------------------


UNSAFE_RULES = [
    pytest.param({"summary": "{alarm_name:>100000000}"}, "100000000", id="huge-format-width"),
    pytest.param({"summary": "{alarm_name:.99999999999999999999}"}, "summary", id="huge-precision"),
    pytest.param({"dedup_key": "{alarm_name}-{state}"}, "state", id="dedup-key-changing-with-the-state"),
    pytest.param({"summary": "{alarm_name.__class__}"}, "plain field name", id="attribute-access"),
    pytest.param({"summary": "{alarm_name[0]}"}, "plain field name", id="index-access"),
    pytest.param({"summary": "{alarm_name:{threshold}}"}, "nest", id="nested-placeholder"),
    pytest.param({"summary": "{alarm_name:d}"}, "alarm_name:d", id="format-code-for-numbers"),
    pytest.param({"summary": "{alarm_name!x}"}, "!x", id="unknown-conversion"),
    pytest.param({"dedup_key": "{alarm_name:=20}"}, "alarm_name:=20", id="sign-aware-padding-on-text"),
]


@pytest.mark.parametrize(("unsafe", "named"), UNSAFE_RULES)
def test_attack_unsafe_rules_are_refused_with_one_clear_line(
    tmp_path: Path, unsafe: dict[str, str], named: str
) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [{"name": "unsafe", "match": {"alarm_name": "*"}, **unsafe}]}))

    run = cli("rules", "check", str(path))

    assert run.code != 0
    assert "Traceback" not in run.out + run.err
    (line,) = run.err.strip().splitlines()
    assert "'unsafe'" in line and named in line


def test_a_plain_summary_template_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    rule = {"name": "plain", "match": {"alarm_name": "*"}, "summary": "{alarm_name}", "dedup_key": "{alarm_name}"}
    path.write_text(json.dumps({"rules": [rule]}))

    run = cli("rules", "check", str(path))

    assert run.code == 0, run.err
    assert "1 rules, valid" in run.out


# --- 11. nobody hears about unreadable input ------------------------------------------------------------------------------


def test_attack_unreadable_input_is_counted_as_invalid_message(bridge: Bridge) -> None:
    unreadable = sqs_record("[1, 2, 3]")
    batch = bridge.invoke(sqs_event(unreadable, sqs_alarm("beside-the-unreadable")))
    assert failures(batch) == {unreadable["messageId"]}
    assert bridge.metrics()[c.METRIC_INVALID_MESSAGE] == 1

    assert bridge.invoke({"hello": "world"}) == {"processed": 0, "failed": 1}
    assert bridge.metrics()[c.METRIC_INVALID_MESSAGE] == 2
    assert bridge.alert("beside-the-unreadable") == "triggered"


# --- 12. DEBUG logging leaks the secret --------------------------------------------------------------------------------------


@contextlib.contextmanager
def everything_logged_at_debug() -> Iterator[io.StringIO]:
    """Every logger's DEBUG lines, written into the yielded buffer (the root logger at DEBUG, as
    ``logging.basicConfig(level=DEBUG)`` or Lambda's log level makes it); caches cleared after."""
    root = logging.getLogger()
    buffer = io.StringIO()
    written = logging.StreamHandler(buffer)
    written.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    previous_level = root.level
    root.addHandler(written)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(written)
        root.setLevel(previous_level)
        clear_caches()


def test_attack_debug_logging_does_not_leak_the_secret(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    """The root logger at DEBUG (as ``logging.basicConfig(level=DEBUG)`` or Lambda's log level makes
    it): botocore logs Secrets Manager's answer, the key in it, before the bridge knows the key."""
    clear_caches()  # Powertools keeps its Secrets Manager provider per process
    key = fresh_key()
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(Name="pagerduty", SecretString=key)["ARN"]
    monkeypatch.delenv(c.ENV_INTEGRATION_KEY)
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY_SECRET_ARN, arn)
    bridge.key = key
    with everything_logged_at_debug() as buffer:
        response = bridge.invoke(sns_event("debug-logging"))
        ok = bridge.invoke(sns_event("debug-logging", "OK", "ALARM", at=T0 + timedelta(minutes=1)))

    assert (response, ok) == ({"processed": 1, "failed": 0}, {"processed": 1, "failed": 0})
    assert bridge.alert("debug-logging") == "resolved", "the key from Secrets Manager did not deliver"
    written_out = buffer.getvalue()
    assert "GetSecretValue" in written_out and "Response body" in written_out, "botocore logged nothing at DEBUG"
    assert_no_secret(key, written_out, bridge.logs(), bridge.items(), logs=bridge.caplog.records)


@pytest.mark.parametrize("store", ["secretsmanager", "ssm"])
def test_attack_debug_logging_does_not_leak_any_alias_of_a_json_secret(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    """The same with a JSON secret of aliases, in Secrets Manager or an SSM SecureString: the answer
    botocore logs holds every alias's key, its quotes escaped (``\\\\"`` in the body's repr), and only
    one alias is used."""
    clear_caches()
    key, other = fresh_key(), fresh_key()
    value = json.dumps({"default": key, "payments": other})
    if store == "ssm":
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(Name="/pagerduty/keys", Value=value, Type="SecureString")
        reference = "/pagerduty/keys"
    else:
        reference = boto3.client("secretsmanager", region_name=REGION).create_secret(Name="keys", SecretString=value)[
            "ARN"
        ]
    monkeypatch.delenv(c.ENV_INTEGRATION_KEY)
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY_SECRET_ARN, reference)
    bridge.key = key
    with everything_logged_at_debug() as buffer:
        response = bridge.invoke(sns_event("debug-logging-aliases"))

    assert response == {"processed": 1, "failed": 0}
    assert bridge.alert("debug-logging-aliases") == "triggered", "the key from the secret did not deliver"
    written_out = buffer.getvalue()
    assert "Response body" in written_out and ("SecretString" in written_out or "Parameter" in written_out)
    assert_no_secret([key, other], written_out, bridge.logs(), bridge.items(), logs=bridge.caplog.records)
