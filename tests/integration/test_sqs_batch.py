"""Buffered mode (SNS → SQS → Lambda): a partial batch failure names exactly the records to receive again.

The handler runs on moto's in-process DynamoDB and the local PagerDuty stand-in; the SQS bodies are
SNS notifications as SNS writes them into a queue (``SigningCertURL``, not the Lambda envelope's
``SigningCertUrl``).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import Delay, FakePagerDuty, Respond
from pagerduty_bridge.errors import StoreError, UnexpectedError
from pagerduty_bridge.models import EventAction, Incident, IncidentStatus
from pagerduty_bridge.runtime import lambda_runtime
from pagerduty_bridge.store.dynamodb import (
    ACTIVE_INDEX,
    TABLE_ATTRIBUTES,
    DynamoDBIncidentStore,
    create_table,
)
from tests.builders import (
    HEALTH_EVENT,
    dedup_key,
    lambda_environment,
    sns_event,
    sns_notification,
    sqs_alarm,
    sqs_event,
    sqs_record,
)
from tests.conftest import ROUTING_KEY, FakeLambdaContext, assert_valid_event

TABLE = "incidents"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:pagerduty-bridge-buffer"
CPU_ALARM = "web-prod-cpu-high"
OTHER_ALARM = "api-prod-cpu-high"
OUTAGE_ANSWERS = 20
"""More 503s than any retry budget of one second can use up: the delivery must fail."""


@pytest.fixture
def store(lambda_store: DynamoDBIncidentStore) -> DynamoDBIncidentStore:
    """The Lambda's environment on moto's DynamoDB and the stand-in; a fresh runtime per test."""
    return lambda_store


def test_a_transient_failure_is_reported_as_that_record_only(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty
) -> None:
    delivered = sqs_alarm(CPU_ALARM)
    failing = sqs_alarm(OTHER_ALARM)
    # The first event goes through untouched; every attempt at the second meets an outage.
    fake_pd.script(Delay(0), *[Respond(503)] * OUTAGE_ANSWERS)

    response = handler.lambda_handler(sqs_event(delivered, failing), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": failing["messageId"]}]}
    assert set(fake_pd.open_alerts(ROUTING_KEY)) == {dedup_key(CPU_ALARM)}
    attempts = [r for r in fake_pd.requests if r.body["dedup_key"] == dedup_key(OTHER_ALARM)]
    assert len(attempts) >= 2, "the failing event was not retried within its budget"
    assert {r.status for r in attempts} == {503}
    opened = store.get(dedup_key(CPU_ALARM))
    assert opened is not None
    assert (opened.status, opened.pending_action) == (IncidentStatus.TRIGGERED, None)
    pending = store.get(dedup_key(OTHER_ALARM))
    assert pending is not None
    assert pending.pending_action is EventAction.TRIGGER, "a failed page must stay pending for the retry"


def test_the_record_received_again_is_delivered_and_the_other_is_not_resent(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty
) -> None:
    delivered = sqs_alarm(CPU_ALARM)
    failing = sqs_alarm(OTHER_ALARM)
    fake_pd.script(Delay(0), *[Respond(503)] * OUTAGE_ANSWERS)
    first = handler.lambda_handler(sqs_event(delivered, failing), FakeLambdaContext())
    assert first["batchItemFailures"] == [{"itemIdentifier": failing["messageId"]}]
    fake_pd.reset()  # PagerDuty is back (the unused scripted answers go too)

    # SQS makes the failed message visible again: with its receive count raised, in a batch of its own.
    again = {**failing, "attributes": {**failing["attributes"], "ApproximateReceiveCount": "2"}}
    second = handler.lambda_handler(sqs_event(again), FakeLambdaContext())

    assert second == {"batchItemFailures": []}
    assert [(r.body["event_action"], r.body["dedup_key"]) for r in fake_pd.requests] == [
        ("trigger", dedup_key(OTHER_ALARM))
    ]
    for body in fake_pd.accepted():
        assert_valid_event(body)
    incident = store.get(dedup_key(OTHER_ALARM))
    assert incident is not None
    assert (incident.status, incident.pending_action) == (IncidentStatus.TRIGGERED, None)


def test_an_unreadable_body_goes_to_the_dead_letter_queue_alone(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty
) -> None:
    """A body that cannot be read is reported on its own, so after its receives it lands in the
    dead-letter queue for a person to read; its neighbour is delivered on the first receive."""
    good = sqs_alarm(CPU_ALARM)
    unreadable = sqs_record(json.dumps([1, 2, 3]))  # JSON, but no envelope

    response = handler.lambda_handler(sqs_event(unreadable, good), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": unreadable["messageId"]}]}
    assert set(fake_pd.open_alerts(ROUTING_KEY)) == {dedup_key(CPU_ALARM)}
    assert len(fake_pd.requests) == 1


def test_another_eventbridge_event_on_the_topic_is_forwarded_not_sent_to_the_dead_letter_queue(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty
) -> None:
    """An AWS Health event published to the alarm topic is no alarm: like any other message there, it is
    forwarded as an ``info`` alert on the first receive, not redelivered until it lands in the DLQ."""
    health = HEALTH_EVENT
    notification = sns_notification(json.dumps(health), http=True)
    notification.pop("Subject")

    response = handler.lambda_handler(sqs_event(sqs_record(notification)), FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    (request,) = fake_pd.requests
    assert_valid_event(request.body)
    payload = request.body["payload"]
    assert payload["severity"] == "info"
    assert payload["summary"].endswith("Message on the alarm topic: AWS Health Event")
    assert json.loads(payload["custom_details"]["text"]) == health


@pytest.mark.parametrize("envelope", ["sqs", "sns"])
def test_attack_a_table_the_function_cannot_use_keeps_the_page_for_the_retry(
    monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty, envelope: str
) -> None:
    """A table deleted or renamed, a role or KMS key changed by a deploy: DynamoDB refuses, and the
    notification is fine. It must go back (a batch item failure, or a raise for Lambda's retry and the
    failure destination), to be delivered once the table is right — never answered as handled."""
    lambda_environment(monkeypatch, table="no-such-table", events_url=fake_pd.url, retry_budget_seconds=1)
    with mock_aws():
        record = sqs_alarm(CPU_ALARM)
        if envelope == "sqs":
            response = handler.lambda_handler(sqs_event(record), FakeLambdaContext())
            assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        else:
            with pytest.raises(StoreError) as raised:
                handler.lambda_handler(sns_event(CPU_ALARM), FakeLambdaContext())
            assert raised.value.retryable and "ResourceNotFoundException" in str(raised.value)
        assert fake_pd.requests == []

        create_table(boto3.client("dynamodb", region_name="eu-west-1"), "no-such-table")
        retried = sqs_event(record) if envelope == "sqs" else sns_event(CPU_ALARM)
        assert handler.lambda_handler(retried, FakeLambdaContext()) in (
            {"batchItemFailures": []},
            {"processed": 1, "failed": 0},
        )
        assert set(fake_pd.open_alerts(ROUTING_KEY)) == {dedup_key(CPU_ALARM)}


def test_attack_a_table_that_refuses_the_request_itself_still_keeps_the_page(
    monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty
) -> None:
    """A table that is not the stack's (another key schema): DynamoDB answers ValidationException,
    which no retry of the same request fixes, but the notification is fine: it goes back, to the DLQ."""
    lambda_environment(monkeypatch, table="not-the-stacks", events_url=fake_pd.url, retry_budget_seconds=1)
    with mock_aws():
        boto3.client("dynamodb", region_name="eu-west-1").create_table(
            TableName="not-the-stacks",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, *TABLE_ATTRIBUTES[1:]],
            GlobalSecondaryIndexes=[ACTIVE_INDEX],
            BillingMode="PAY_PER_REQUEST",
        )
        record = sqs_alarm(CPU_ALARM)
        response = handler.lambda_handler(sqs_event(record), FakeLambdaContext())
        assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        assert fake_pd.requests == []


@pytest.mark.parametrize("message_id", [None, ""])
def test_attack_a_failed_record_that_names_no_message_fails_the_whole_batch(
    store: DynamoDBIncidentStore, fake_pd: FakePagerDuty, message_id: str | None
) -> None:
    """Without its id a record cannot be named in the partial batch response; left out, SQS would
    delete it with the batch, unsent. An empty identifier makes Lambda receive the whole batch again
    (what was delivered is then a duplicate and sends nothing)."""
    delivered, failing = sqs_alarm(CPU_ALARM), sqs_alarm(OTHER_ALARM)
    if message_id is None:
        del failing["messageId"]
    else:
        failing["messageId"] = message_id
    fake_pd.script(Delay(0), *[Respond(503)] * OUTAGE_ANSWERS)

    response = handler.lambda_handler(sqs_event(delivered, failing), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": ""}]}


class StoreWithABug:
    """The table, except that writing one alarm's incident fails as nothing foresaw (a bug of the
    bridge's, or of a library it calls): a plain exception, not a ``BridgeError``."""

    def __init__(self, table: DynamoDBIncidentStore, broken_key: str) -> None:
        self.table = table
        self.broken_key = broken_key

    def put(self, incident: Incident, *, expected_version: int | None) -> None:
        if incident.dedup_key == self.broken_key:
            raise RuntimeError("unforeseen")
        self.table.put(incident, expected_version=expected_version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


@pytest.fixture
def buggy_runtime(store: DynamoDBIncidentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = lambda_runtime()
    runtime.store = StoreWithABug(store, dedup_key(OTHER_ALARM))  # type: ignore[assignment]
    monkeypatch.setattr(handler, "_runtime", runtime)


@pytest.mark.usefixtures("buggy_runtime")
def test_a_record_that_meets_a_bug_is_received_again_and_its_neighbour_pages(fake_pd: FakePagerDuty) -> None:
    """A failure nobody foresaw says nothing about whether a retry helps: the record is kept (received
    again, then the dead-letter queue for redrive), never answered as done with its page unsent."""
    delivered = sqs_alarm(CPU_ALARM)
    failing = sqs_alarm(OTHER_ALARM)

    response = handler.lambda_handler(sqs_event(delivered, failing), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": failing["messageId"]}]}
    assert set(fake_pd.open_alerts(ROUTING_KEY)) == {dedup_key(CPU_ALARM)}


@pytest.mark.usefixtures("buggy_runtime")
def test_a_notification_that_meets_a_bug_is_raised_for_lambdas_retry(fake_pd: FakePagerDuty) -> None:
    with pytest.raises(UnexpectedError, match="unexpected RuntimeError; kept for retry"):
        handler.lambda_handler(sns_event(OTHER_ALARM), FakeLambdaContext())
    assert fake_pd.requests == []
