"""The DynamoDB store writes over an item it wrote itself with an UpdateItem of what changed (a commit
after a claim sends a few attributes, not the whole incident), and the table ends up exactly as whole
puts would leave it. Whatever it did not write itself, or cannot update, it replaces whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import VersionConflictError
from pagerduty_bridge.models import AlarmState, EventAction, Incident, IncidentStatus
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import T0

TABLE = "incidents"
KEY = "cpu-high-CPUUtilization"


class Recorded:
    """A boto3 DynamoDB client that records the operations it sends, and can refuse UpdateItem the way
    a role without ``dynamodb:UpdateItem`` does."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.operations: list[str] = []
        self.refuse_updates = False
        client.meta.events.register("before-call.dynamodb", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if self.refuse_updates:
            self.operations.append("UpdateItem (refused)")
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not authorized: dynamodb:UpdateItem"}},
                "UpdateItem",
            )
        return self.client.update_item(**kwargs)


@pytest.fixture
def client() -> Iterator[Recorded]:
    with mock_aws():
        raw = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(raw, TABLE)
        yield Recorded(raw)


def _raw(client: Recorded, key: str = KEY) -> dict[str, Any]:
    item = client.client.get_item(TableName=TABLE, Key={c.TABLE_PARTITION_KEY: {"S": key}}, ConsistentRead=True)
    return dict(item["Item"])


def _claim(version: int = 1) -> Incident:
    return Incident(
        dedup_key=KEY,
        alarm_name="cpu-high",
        status=IncidentStatus.TRIGGERED,
        updated_at=T0,
        triggered_at=T0,
        alarm_state=AlarmState.ALARM,
        summary="CPU above 90%",
        pending_action=EventAction.TRIGGER,
        claim_token="c" * 32,
        lease_until=T0 + timedelta(seconds=30),
        version=version,
    )


def _committed(claim: Incident) -> Incident:
    return replace(claim, pending_action=None, claim_token=None, lease_until=None, version=claim.version + 1)


def test_a_commit_over_its_own_claim_sends_what_changed_and_leaves_what_a_whole_put_would(
    client: Recorded,
) -> None:
    store = DynamoDBIncidentStore(client, TABLE)
    claim = _claim()
    store.put(claim, expected_version=None)
    committed = _committed(claim)
    store.put(committed, expected_version=claim.version)

    assert client.operations == ["PutItem", "UpdateItem"]
    updated = _raw(client)
    assert store.get(KEY) == committed
    for attribute in ("pending_action", "claim_token", "lease_until"):
        assert attribute not in updated, f"{attribute} was cleared"

    # The same writes as whole puts (a store that remembers nothing) leave the very same item.
    fresh = DynamoDBIncidentStore(client, TABLE)
    fresh.put(replace(claim, dedup_key="twin", version=1), expected_version=None)
    DynamoDBIncidentStore(client, TABLE).put(replace(committed, dedup_key="twin"), expected_version=1)
    assert client.operations[-2:] == ["PutItem", "PutItem"]
    twin = _raw(client, "twin")
    assert {k: v for k, v in twin.items() if k not in (c.TABLE_PARTITION_KEY, "dedup_key")} == {
        k: v for k, v in updated.items() if k not in (c.TABLE_PARTITION_KEY, "dedup_key")
    }


def test_an_update_over_an_item_another_writer_changed_fails_on_the_version_and_the_next_write_is_whole(
    client: Recorded,
) -> None:
    ours, theirs = DynamoDBIncidentStore(client, TABLE), DynamoDBIncidentStore(client, TABLE)
    claim = _claim()
    ours.put(claim, expected_version=None)
    taken = replace(claim, claim_token="t" * 32, version=2)
    theirs.put(taken, expected_version=1)

    with pytest.raises(VersionConflictError) as conflict:
        ours.put(_committed(claim), expected_version=1)
    assert conflict.value.current == taken, "the failed write says what the item is now"
    assert client.operations[-1] == "UpdateItem", "version 1 was this store's own write"

    ours.put(replace(taken, claim_token=None, pending_action=None, lease_until=None, version=3), expected_version=2)
    assert client.operations[-1] == "PutItem", "the item at version 2 is another writer's"
    assert ours.get(KEY) == replace(taken, claim_token=None, pending_action=None, lease_until=None, version=3)


def test_an_item_put_back_by_hand_without_a_version_fails_the_update_and_is_replaced_whole_after_a_read(
    client: Recorded,
) -> None:
    """An operator restored an item without ``version`` (it reads as version 1, which a whole put may
    replace): the update's condition is on the number alone, so it fails rather than merge into it."""
    store = DynamoDBIncidentStore(client, TABLE)
    claim = _claim()
    store.put(claim, expected_version=None)
    by_hand = {k: v for k, v in _raw(client).items() if k != "version"}
    by_hand["summary"] = {"S": "put back by hand"}
    client.client.put_item(TableName=TABLE, Item=by_hand)

    with pytest.raises(VersionConflictError):
        store.put(_committed(claim), expected_version=1)
    assert client.operations[-1] == "UpdateItem"

    current = store.get(KEY)
    assert current is not None and current.summary == "put back by hand" and current.version == 1
    store.put(_committed(current), expected_version=1)
    assert client.operations[-1] == "PutItem"
    assert store.get(KEY) == _committed(current)


def test_a_role_without_update_item_gets_whole_puts_and_loses_no_write(client: Recorded) -> None:
    """A stack deployed before UpdateItem was granted: the write is refused, sent again whole at once,
    and every later write is whole."""
    client.refuse_updates = True
    store = DynamoDBIncidentStore(client, TABLE)
    claim = _claim()
    store.put(claim, expected_version=None)
    store.put(_committed(claim), expected_version=1)
    again = replace(_committed(claim), summary="still high", version=3)
    store.put(again, expected_version=2)

    assert client.operations == ["PutItem", "UpdateItem (refused)", "PutItem", "PutItem"]
    assert store.get(KEY) == again


def test_a_write_that_changes_nothing_but_its_version_is_an_update_of_the_version(client: Recorded) -> None:
    store = DynamoDBIncidentStore(client, TABLE)
    claim = _claim()
    store.put(claim, expected_version=None)
    store.put(replace(claim, version=2), expected_version=1)
    assert client.operations == ["PutItem", "UpdateItem"]
    assert _raw(client)["version"] == {"N": "2"}
