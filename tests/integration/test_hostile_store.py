"""Stored incidents the bridge cannot fully read: written by a newer version before a rollback, by hand
or by another tool. None of them may hold back its alarm's pages or resolves. Each test is a defect that
was reproduced first, then fixed."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import StoreError
from pagerduty_bridge.models import EventAction, IncidentStatus
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.builders import T0, alarm_message, dedup_key, sns_event, sns_event_of
from tests.integration.test_attack_protocol import Container, container
from tests.integration.test_store_contract import SILENCE

TABLE = "incidents"
REGION = "eu-west-1"
__all__ = ["container"]
NAME = "odd-item"
EARLIER = "2025-01-01T00:00:00.000000Z"


def odd_item(**changes: dict[str, Any] | None) -> dict[str, Any]:
    """An open incident item of ``NAME``, its attributes changed (``None`` leaves one out)."""
    item: dict[str, Any] = {
        "dedup_key": {"S": dedup_key(NAME)},
        "alarm_name": {"S": NAME},
        "status": {"S": "triggered"},
        "updated_at": {"S": EARLIER},
        "triggered_at": {"S": EARLIER},
        "state_changed_at": {"S": EARLIER},
        "alarm_state": {"S": "ALARM"},
        "version": {"N": "7"},
        "active": {"S": "open"},
        "active_since": {"S": EARLIER},
    }
    item.update(changes)
    return {name: value for name, value in item.items() if value is not None}


ODD_ITEMS = {
    "status-merged": odd_item(status={"S": "merged"}),
    "status-resolved-merged": odd_item(status={"S": "merged"}, active=None, active_since=None),
    "status-missing": odd_item(status=None),
    "pending-snooze": odd_item(pending_action={"S": "snooze"}, claim_token={"S": "x"}),
    "severity-unknown": odd_item(severity={"S": "catastrophic"}),
    "resolution-unknown": odd_item(resolution={"S": "merged"}),
    "origin-unknown": odd_item(origin={"S": "terraform"}),
    "alarm-state-unknown": odd_item(alarm_state={"S": "PENDING"}),
    "lease-no-time": odd_item(lease_until={"S": "soon"}, pending_action={"S": "trigger"}),
    "updated-no-time": odd_item(updated_at={"S": "yesterday"}),
    "updated-missing": odd_item(updated_at=None),
    "triggered-a-number": odd_item(triggered_at={"N": "1735689600"}),
    "number-as-text": odd_item(pd_incident_number={"S": "forty-two"}),
    "summary-a-number": odd_item(summary={"N": "5"}),
    "alarm-name-missing": odd_item(alarm_name=None),
    "details-a-string": odd_item(pd_details={"S": "reassigned"}),
    "event-ids-a-string": odd_item(webhook_event_ids={"S": "abc"}),
    "version-text": odd_item(version={"S": "seven"}),
    "version-bool": odd_item(version={"BOOL": True}),
    "version-fraction": odd_item(version={"N": "7.5"}),
    "version-at-the-limit": odd_item(version={"N": "9" * 38}),
    "state-changed-in-year-2999": odd_item(state_changed_at={"S": "2999-01-01T00:00:00.000000Z"}),
    "ttl-a-string": odd_item(expires_at={"S": "tomorrow"}),
    "ttl-in-the-past": odd_item(expires_at={"N": "1"}),
    "lease-until-year-2999": odd_item(
        pending_action={"S": "trigger"}, claim_token={"S": "x"}, lease_until={"S": "2999-01-01T00:00:00.000000Z"}
    ),
}


@pytest.mark.parametrize("item", ODD_ITEMS.values(), ids=ODD_ITEMS.keys())
def test_an_item_the_bridge_cannot_fully_read_does_not_block_its_alarm(container: Container, item: Any) -> None:
    """An item with a value this version does not know (``status: "merged"`` from a newer version before
    a rollback, a time that is no time, a number holding text) made every notification of its alarm fail
    for good: retried until the failure destination, nobody paged, the OK never resolving. What can be
    read is read, the rest as absent; the page goes out, the OK resolves, and the item is readable after."""
    container.client.put_item(TableName=TABLE, Item=item)

    assert container.invoke(sns_event(NAME, at=T0)) == {"processed": 1, "failed": 0}
    assert container.alert(NAME) == "triggered"
    incident = container.incident(NAME)
    assert incident is not None and incident.status is IncidentStatus.TRIGGERED and incident.pending_action is None

    assert container.invoke(sns_event(NAME, "OK", "ALARM", at=T0 + timedelta(minutes=5))) == {
        "processed": 1,
        "failed": 0,
    }
    assert container.alert(NAME) == "resolved"
    incident = container.incident(NAME)
    assert incident is not None and incident.status is IncidentStatus.RESOLVED and incident.pending_action is None


def test_an_unreadable_status_still_keeps_the_order_of_notifications(container: Container) -> None:
    """Where the status cannot be read but the state change's time can, an older notification is stale."""
    container.client.put_item(TableName=TABLE, Item=odd_item(status={"S": "merged"}))

    assert container.invoke(sns_event(NAME, "OK", "ALARM", at=T0 - timedelta(days=3650))) == {
        "processed": 1,
        "failed": 0,
    }

    assert container.fake.requests == []
    incident = container.incident(NAME)
    assert incident is not None and incident.is_open


def test_an_unreadable_item_is_listed_and_names_what_it_could_not_read(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    """``incidents list``, ``stats`` and the reconciliation left such an item out: an open incident the
    scheduled run never resolves. It is listed, with a warning naming the item and the field."""
    container.client.put_item(TableName=TABLE, Item=odd_item(status={"S": "merged"}, pending_action={"S": "snooze"}))
    store = DynamoDBIncidentStore(container.client, TABLE)

    listed = store.list_active()

    assert [i.dedup_key for i in listed] == [dedup_key(NAME)]
    assert listed[0].is_open and listed[0].pending_action is None
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert dedup_key(NAME) in warned and "status" in warned and "pending_action" in warned and "snooze" in warned


def test_two_writers_over_an_item_with_an_unreadable_version_cannot_both_win(container: Container) -> None:
    """The item is replaced by a readable one with a write conditional on what was read: once one writer
    replaced it, the other's write, planned on the unreadable item, fails as a conflict."""
    container.client.put_item(TableName=TABLE, Item=odd_item(version={"S": "seven"}))
    store = DynamoDBIncidentStore(container.client, TABLE)
    first, second = store.get(dedup_key(NAME)), store.get(dedup_key(NAME))
    assert first is not None and second is not None

    from dataclasses import replace

    from pagerduty_bridge.errors import VersionConflictError
    from pagerduty_bridge.store import next_version

    store.put(replace(first, summary="one", version=next_version(first.version)), expected_version=first.version)
    with pytest.raises(VersionConflictError):
        store.put(replace(second, summary="two", version=next_version(second.version)), expected_version=second.version)
    stored = store.get(dedup_key(NAME))
    assert stored is not None and stored.summary == "one"


def test_a_row_with_an_unreadable_version_in_its_data_still_pages(tmp_path: Path) -> None:
    """The embedded store read the version from the row's data, but its writes are conditional on the row's
    version column: a data version it cannot read (read as 1) never matched, and every write conflicted."""
    path = tmp_path / "state.db"
    store = SQLiteIncidentStore(path)
    data = {"dedup_key": "k", "alarm_name": "k", "status": "merged", "updated_at": EARLIER, "version": "seven"}
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO incidents (dedup_key, version, is_open, triggered_at, data) VALUES ('k', 9, 1, ?, ?)",
            (EARLIER, json.dumps(data)),
        )
    read = store.get("k")
    assert read is not None and read.is_open

    from dataclasses import replace

    from pagerduty_bridge.store import next_version

    store.put(
        replace(read, pending_action=EventAction.RESOLVE, version=next_version(read.version)),
        expected_version=read.version,
    )
    after = store.get("k")
    assert after is not None and after.pending_action is EventAction.RESOLVE


def test_an_alarm_whose_key_is_a_silences_item_key_does_not_destroy_the_silence(container: Container) -> None:
    """An alarm may be named like a silence's item ("silence#<id>"). Read as an incident of unknown state,
    the silence's item was replaced by the alarm's incident: the silence was gone, and what it held paged."""
    silence = SILENCE
    store = DynamoDBIncidentStore(container.client, TABLE)
    store.put_silence(silence)
    key = c.SILENCE_KEY_PREFIX + silence.id

    with pytest.raises(StoreError, match="silence"):
        store.get(key)
    with contextlib.suppress(StoreError):  # the notification fails, to be redriven: a silence is no incident
        container.invoke(sns_event_of(alarm_message(key, AlarmRule="ALARM(a)", Trigger=None)))
    assert [s.id for s in store.list_silences()] == [silence.id]


def test_a_row_whose_version_column_is_text_still_pages(tmp_path: Path) -> None:
    """A row edited by hand with a version column that is not a number: no write conditional on the version
    read (from the data, the column being unreadable) matched it, and every write conflicted."""
    path = tmp_path / "state.db"
    store = SQLiteIncidentStore(path)
    data = {"dedup_key": "k", "alarm_name": "k", "status": "triggered", "updated_at": EARLIER, "version": 9}
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO incidents (dedup_key, version, is_open, triggered_at, data) VALUES ('k', 'nine', 1, ?, ?)",
            (EARLIER, json.dumps(data)),
        )
    read = store.get("k")
    assert read is not None

    from dataclasses import replace

    from pagerduty_bridge.store import next_version

    store.put(replace(read, summary="new", version=next_version(read.version)), expected_version=read.version)
    after = store.get("k")
    assert after is not None and after.summary == "new"


@pytest.mark.parametrize("key_in_data", [None, "another-key"], ids=["missing", "another"])
def test_a_row_whose_data_names_no_or_another_dedup_key_still_pages(tmp_path: Path, key_in_data: str | None) -> None:
    """The row's key is its ``dedup_key`` column. Its data without one made the row unreadable (every
    notification of its alarm failed); with another one, every write went to that other key and conflicted."""
    path = tmp_path / "state.db"
    store = SQLiteIncidentStore(path)
    data: dict[str, Any] = {"alarm_name": "k", "status": "triggered", "updated_at": EARLIER}
    if key_in_data is not None:
        data["dedup_key"] = key_in_data
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO incidents (dedup_key, version, is_open, triggered_at, data) VALUES ('k', 3, 1, ?, ?)",
            (EARLIER, json.dumps(data)),
        )
    read = store.get("k")
    assert read is not None and read.dedup_key == "k"

    from dataclasses import replace

    from pagerduty_bridge.store import next_version

    store.put(replace(read, summary="new", version=next_version(read.version)), expected_version=read.version)
    after = store.get("k")
    assert after is not None and after.summary == "new"
