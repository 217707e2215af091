"""The delivery protocol under the table's and the network's odd answers: every page goes out at once.

Each test runs the Lambda handler in a new container on moto's DynamoDB (in-process, through botocore's
own request and retry machinery) against the PagerDuty stand-in over real HTTP, and asserts what
PagerDuty holds and what the table keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.models import Incident
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import T0, dedup_key, lambda_environment, sns_event
from tests.conftest import FakeLambdaContext

TABLE = "incidents"
REGION = "eu-west-1"


@dataclass
class Container:
    """A new Lambda container on moto's table, talking to the PagerDuty stand-in."""

    fake: FakePagerDuty
    client: Any

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler.lambda_handler(event, FakeLambdaContext())
        return result

    def incident(self, name: str) -> Incident | None:
        return DynamoDBIncidentStore(self.client, TABLE).get(dedup_key(name))

    def alert(self, name: str) -> str | None:
        alert = self.fake.alerts.get((self.fake_key, dedup_key(name)))
        return alert.status if alert is not None else None

    @property
    def fake_key(self) -> str:
        return str(handler.get_runtime().settings.integration_key.get_secret_value())

    def the_functions_table_client(self) -> Any:
        """The boto3 client the function's own store writes through (built on first use, as in Lambda)."""
        store = handler.get_runtime().store
        assert isinstance(store, DynamoDBIncidentStore)
        return store._client


@pytest.fixture
def container(
    monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> Iterator[Container]:
    lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url, retry_budget_seconds=1)
    caplog.set_level(logging.INFO)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, TABLE)
        yield Container(fake_pd, client)


# --- a table write whose answer was lost ------------------------------------------------------------------


def lose_the_answer_to(client: Any, put: int) -> list[int]:
    """Make the ``put``-th write's answer (PutItem or UpdateItem) get lost after DynamoDB applied it (a dropped connection, a
    read timeout): botocore then sends the same request again, as it does for any such failure. The
    list returned counts the requests that were sent again."""
    resent: list[int] = []
    puts = [0]

    def needs_retry(attempts: int, response: Any, **_: Any) -> float | None:
        if attempts == 1:
            puts[0] += 1
        if attempts == 1 and puts[0] == put and response is not None and response[0].status_code == 200:
            resent.append(put)
            return 0.0  # retry at once; the write it answered is in the table already
        return None

    client.meta.events.register("needs-retry.dynamodb.PutItem", needs_retry)
    client.meta.events.register("needs-retry.dynamodb.UpdateItem", needs_retry)
    return resent


@pytest.mark.parametrize("put", [1, 2], ids=["claim", "commit"])
def test_attack_a_table_write_whose_answer_was_lost_still_pages_at_once(container: Container, put: int) -> None:
    """The claim (or the commit) reached the table but its answer did not, and botocore sent it again:
    the second request finds the item already as it writes it. That is this very write, not another
    delivery's: the page goes out now (not a minute later, after backing off from its own claim), and
    the incident is settled, with nothing left to confirm."""
    container.invoke(sns_event("lost-answer", "OK", "ALARM"))  # the container is built, and its client
    resent = lose_the_answer_to(container.the_functions_table_client(), put)

    answer = container.invoke(sns_event("lost-answer-2"))

    assert resent == [put], "the answer to the write was lost and the write sent again"
    assert answer == {"processed": 1, "failed": 0}
    assert container.alert("lost-answer-2") == "triggered"
    incident = container.incident("lost-answer-2")
    assert incident is not None
    assert incident.pending_action is None and incident.claim_token is None
    assert incident.unconfirmed_until is None, "nothing was in doubt: the trigger was accepted once"


# --- two state changes stamped with the same time -------------------------------------------------------


@pytest.mark.parametrize("first", ["ALARM", "OK"])
def test_attack_an_alarm_and_an_ok_stamped_alike_page_whichever_arrives_first(container: Container, first: str) -> None:
    """Two notifications of one key carry the same ``StateChangeTime`` (a sender stamping whole seconds,
    two alarms sharing a dedup key): which came last cannot be told, and SNS delivers in any order. The
    end must not depend on the order, and may not be a lost page: the ALARM wins the tie (an open
    incident whose alarm is OK is resolved by the scheduled run; a page never sent, by nothing)."""
    states = {"ALARM": ("ALARM", "OK"), "OK": ("OK", "ALARM")}
    second = "OK" if first == "ALARM" else "ALARM"
    for state in (first, second, first):  # the first one again: SNS and Lambda deliver twice
        container.invoke(sns_event("tie", *states[state], at=T0))

    assert container.alert("tie") == "triggered"
    triggers = [r for r in container.fake.requests if r.status == 202 and r.body["event_action"] == "trigger"]
    assert len(triggers) == 1, "paged once, not again for a notification already handled"
    incident = container.incident("tie")
    assert incident is not None and incident.is_open and incident.pending_action is None


# --- an item the bridge did not write -------------------------------------------------------------------


def test_attack_an_item_written_without_a_version_does_not_hold_back_its_alarms_pages(container: Container) -> None:
    """An item put in by hand or by another tool carries no ``version``. It reads as version 1, and a
    write conditional on version 1 never matched it: every page of its alarm failed ("kept changing")
    and went to the dead-letter queue, where a redrive fails the same way. The bridge pages over it."""
    container.client.put_item(
        TableName=TABLE,
        Item={
            "dedup_key": {"S": dedup_key("hand-made")},
            "alarm_name": {"S": "hand-made"},
            "status": {"S": "resolved"},
            "updated_at": {"S": "2025-01-01T00:00:00.000000Z"},
        },
    )

    answer = container.invoke(sns_event("hand-made"))

    assert answer == {"processed": 1, "failed": 0}
    assert container.alert("hand-made") == "triggered"
    incident = container.incident("hand-made")
    assert incident is not None and incident.is_open and incident.pending_action is None
    assert container.invoke(sns_event("hand-made", "OK", "ALARM", at=T0 + timedelta(minutes=5)))["failed"] == 0
    assert container.alert("hand-made") == "resolved"
