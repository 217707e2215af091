"""Every delivery shape, end to end: what the handler answers Lambda (a partial batch response, a raise
or a clean return) and what PagerDuty hears, on moto's DynamoDB and the local PagerDuty stand-in.

The same notification must page (or resolve) exactly once whatever envelope it came in; what no retry
can help is answered, not sent back again and again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore
from tests.builders import (
    HEALTH_EVENT,
    T0,
    alarm_message,
    cli,
    dedup_key,
    sns_event_of,
    sns_notification,
    sqs_event,
    sqs_record,
)
from tests.conftest import EVENTS, ROUTING_KEY, FakeLambdaContext, assert_valid_event, load_json

TABLE = "incidents"


@pytest.fixture
def store(lambda_store: DynamoDBIncidentStore) -> DynamoDBIncidentStore:
    """The Lambda's environment on moto's DynamoDB and the stand-in; a fresh runtime per test."""
    return lambda_store


def invoke(event: dict[str, Any]) -> Any:
    return handler.lambda_handler(event, FakeLambdaContext())


# --- a message encoded twice ------------------------------------------------------------------------------

TWICE: dict[str, Callable[[str], dict[str, Any]]] = {
    "sns-message": sns_event_of,
    "sqs-sns-message": lambda text: sqs_event(sqs_record(sns_notification(text, http=True))),
    "sqs-raw-body": lambda text: sqs_event(sqs_record(text)),
}


@pytest.mark.parametrize("wrap", list(TWICE))
def test_attack_an_alarm_encoded_twice_pages_and_resolves_as_itself(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty, wrap: str
) -> None:
    """A forwarder that serialises a message that is already JSON (``json.dumps(sns["Message"])``)
    publishes the alarm as a JSON string holding the alarm's JSON. Read as text, its ALARM became an
    ``info`` message and its OK another one: the incident was never paged as critical, nor resolved."""
    for state, old_state, at in (("ALARM", "OK", T0), ("OK", "ALARM", T0 + timedelta(minutes=5))):
        text = json.dumps(json.dumps(alarm_message("orders-cpu", state, old_state, at)))
        response = invoke(TWICE[wrap](text))
        assert response in ({"processed": 1, "failed": 0}, {"batchItemFailures": []})

    assert [(r.body["event_action"], r.body["dedup_key"]) for r in fake_pd.requests] == [
        ("trigger", dedup_key("orders-cpu")),
        ("resolve", dedup_key("orders-cpu")),
    ]
    assert fake_pd.requests[0].body["payload"]["severity"] == "critical"
    for request in fake_pd.requests:
        assert_valid_event(request.body)
    assert fake_pd.open_alerts(ROUTING_KEY) == {}


# --- raw message delivery: the body is the message -----------------------------------------------------------


def autoscaling_message() -> str:
    message: str = load_json(EVENTS / "24-autoscaling-notification.json")["Records"][0]["Sns"]["Message"]
    return message


@pytest.mark.parametrize(
    ("body", "title"),
    [(json.dumps(HEALTH_EVENT), "AWS Health Event"), (autoscaling_message(), None)],
    ids=["aws-health-event", "autoscaling-notification"],
)
def test_attack_a_raw_delivered_message_that_is_no_alarm_is_forwarded_not_sent_to_the_dead_letter_queue(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty, body: str, title: str | None
) -> None:
    """With raw message delivery on the queue's subscription, the SQS body is the message published on
    the topic. A JSON message that is no alarm (an AWS Health event, an Auto Scaling notification) is
    forwarded as an ``info`` alert on the first receive, as it is inside an SNS envelope — not reported
    as unreadable until, after every receive, it lands in the dead-letter queue unsent."""
    record = sqs_record(body)

    assert invoke(sqs_event(record)) == {"batchItemFailures": []}

    (request,) = fake_pd.requests
    assert_valid_event(request.body)
    payload = request.body["payload"]
    assert payload["severity"] == "info"
    assert json.loads(payload["custom_details"]["text"]) == json.loads(body)
    if title is not None:
        assert payload["summary"].endswith(f"Message on the alarm topic: {title}")
    assert invoke(sqs_event(record)) == {"batchItemFailures": []}
    assert len(fake_pd.requests) == 1, "received again, it is a duplicate"


# --- redrive: what the buffer's dead-letter queue holds is read as the function reads the buffer -------------


def test_attack_redrive_reads_a_dead_letter_as_the_function_reads_the_queue(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With raw message delivery, the buffer's messages (and so its dead letters) are the messages
    themselves. What the function forwards or pages from the queue — an AWS Health event, an Auto
    Scaling notification, an alarm serialised twice — ``redrive`` must too, not keep for ever as an
    event of no known envelope."""
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    bodies = [
        json.dumps(HEALTH_EVENT),
        autoscaling_message(),
        json.dumps(json.dumps(alarm_message("orders-cpu"))),
    ]
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        queue = sqs.create_queue(QueueName="buffer-dead-letters")["QueueUrl"]
        for body in bodies:
            sqs.send_message(QueueUrl=queue, MessageBody=body)

        run = cli("redrive", "--queue-url", queue, "--send", "--events-url", fake_pd.url, "--json")

        assert run.code == 0, run.out + run.err
        assert run.json() == {"received": 3, "redriven": 3, "schedules": 0, "kept": []}
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    severities = sorted(r.body["payload"]["severity"] for r in fake_pd.requests)
    assert severities == ["critical", "info", "info"]
    assert dedup_key("orders-cpu") in fake_pd.open_alerts(ROUTING_KEY)
    for request in fake_pd.requests:
        assert_valid_event(request.body)


# --- one time series of a multi-time-series Metrics Insights alarm -------------------------------------------


def test_attack_one_contributors_ok_leaves_another_contributors_page_open(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty
) -> None:
    """A ``GROUP BY`` Metrics Insights alarm notifies per time series under one alarm name: table A's
    ALARM, table B's ALARM, then table B's OK. Keyed by the alarm alone, B's OK resolved the page A's
    ALARM opened while A was still breaching; now A's page stays open until A's own OK."""
    from tests.unit.test_alarm_shapes_rare import contributor_sns

    for table, contributor, state, minutes in (
        ("orders", "6d442278dba546f6", "ALARM", 0),
        ("payments", "0badc0ffee000001", "ALARM", 1),
        ("payments", "0badc0ffee000001", "OK", 2),
    ):
        assert invoke(contributor_sns(table, contributor, state, minutes)) == {"processed": 1, "failed": 0}

    for request in fake_pd.requests:
        assert_valid_event(request.body)
    assert [r.body["event_action"] for r in fake_pd.requests] == ["trigger", "trigger", "resolve"]
    (still_open,) = fake_pd.open_alerts(ROUTING_KEY).values()
    assert (still_open.summary or "").endswith(" on orders")
