"""One contract for every incident store: SQLite (a file and ``:memory:``) and DynamoDB (through moto).

The integration relies on exactly these guarantees — conditional writes on the version read, a listing
of open incidents in trigger order, round-tripping every field — so every store must give them. The
DynamoDB-only tests check what the stack depends on: the sparse index, the TTL attribute and how
botocore errors are translated.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import StoreError, VersionConflictError
from pagerduty_bridge.models import (
    AlarmState,
    AlertSeverity,
    EventAction,
    Incident,
    IncidentStatus,
    Origin,
    Resolution,
)
from pagerduty_bridge.silences import Silence
from pagerduty_bridge.store import IncidentStore
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.builders import atomic_moto_writes

REGION = "eu-west-1"
TABLE = "incidents"
RETENTION = timedelta(days=7)
T0 = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)
CEST = timezone(timedelta(hours=2), "CEST")
STORE_KINDS = ("sqlite-file", "sqlite-memory", "dynamodb")


# --- fixtures and builders ---------------------------------------------------------------------------


@dataclass
class Dynamo:
    client: Any
    store: DynamoDBIncidentStore

    def raw_item(self, dedup_key: str) -> dict[str, Any]:
        """The item as DynamoDB holds it, attributes the store hides included."""
        response = self.client.get_item(
            TableName=TABLE, Key={c.TABLE_PARTITION_KEY: {"S": dedup_key}}, ConsistentRead=True
        )
        item: dict[str, Any] = response["Item"]
        return item


@pytest.fixture(scope="module")
def boto_session() -> boto3.session.Session:
    """One session for the module: a client from a warm session takes milliseconds, a cold one ~0.2 s."""
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture
def dynamo(boto_session: boto3.session.Session) -> Iterator[Dynamo]:
    with mock_aws():
        client = boto_session.client("dynamodb")
        create_table(client, TABLE)
        yield Dynamo(client, DynamoDBIncidentStore(client, TABLE, retention=RETENTION))


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IncidentStore]:
    kind = request.param
    if kind == "dynamodb":
        yield request.getfixturevalue("dynamo").store
        return
    path = tmp_path / "state" / "incidents.db" if kind == "sqlite-file" else ":memory:"
    sqlite = SQLiteIncidentStore(path, retention=RETENTION)
    yield sqlite
    sqlite.close()


def incident(
    key: str = "disk-full-DiskUsed",
    *,
    status: IncidentStatus = IncidentStatus.TRIGGERED,
    triggered_at: datetime | None = T0,
    version: int = 1,
    **changes: Any,
) -> Incident:
    return Incident(
        dedup_key=key,
        alarm_name=key.split("-", 1)[0],
        status=status,
        triggered_at=triggered_at,
        updated_at=triggered_at or T0,
        version=version,
        **changes,
    )


def resolved(open_incident: Incident, at: datetime) -> Incident:
    """The next version of ``open_incident``, resolved by its alarm at ``at``."""
    return replace(
        open_incident,
        **{
            "status": IncidentStatus.RESOLVED,
            "resolved_at": at,
            "resolution": Resolution.AUTO,
            "updated_at": at,
            "version": open_incident.version + 1,
        },
    )


def keys(incidents: list[Incident]) -> list[str]:
    return [i.dedup_key for i in incidents]


EVERY_FIELD = Incident(
    dedup_key="production-hybrid-routing-high-failure-rate-SupportModeSuccessRate",
    alarm_name="production-hybrid-routing-high-failure-rate",
    status=IncidentStatus.ACKNOWLEDGED,
    severity=AlertSeverity.WARNING,
    summary='🚨 [PRODUCTION] "High" Failure Rate — Zuständig: Team Plattform ⚙️',
    routing_key_alias="payments",
    routing_key_digest="0123456789abcdef0123456789abcdef",
    alarm_state=AlarmState.ALARM,
    state_changed_at=datetime(2025, 1, 14, 14, 30, 0, 6000, tzinfo=UTC),
    triggered_at=datetime(2025, 1, 14, 16, 30, 0, 123456, tzinfo=CEST),
    acknowledged_at=datetime(2025, 1, 14, 14, 41, 7, tzinfo=UTC),
    resolved_at=datetime(2025, 1, 14, 14, 50, 0, 999999, tzinfo=UTC),
    resolution=Resolution.MANUAL,
    resolution_note="Resolved by the on-call: failover to eu-central-1 done",
    pending_action=EventAction.ACKNOWLEDGE,
    claim_token="5f2b0c1e9a7d4c3b8e6f0a1b2c3d4e5f",
    lease_until=datetime(2025, 1, 14, 14, 42, 0, 500000, tzinfo=UTC),
    last_error="PagerDuty API error: 503 - Service Unavailable",
    alarm_arn="arn:aws:cloudwatch:eu-west-1:123456789012:alarm:production-hybrid-routing-high-failure-rate",
    updated_at=datetime(2025, 1, 14, 14, 41, 7, 250000, tzinfo=UTC),
    origin=Origin.MANUAL,
    unconfirmed_until=datetime(2025, 1, 14, 14, 43, 0, 1000, tzinfo=UTC),
    trigger_sent_at=datetime(2025, 1, 14, 14, 30, 2, 345678, tzinfo=UTC),
    last_reason="silenced",
    silence_id="5f2b0c1e9a7d",
    acknowledged_by="On-call Engineer (PLH1HKV)",
    resolved_by="Jane Responder (P0J4NE1)",
    pd_incident_id="PGR0VU2",
    pd_incident_number=42,
    pd_html_url="https://acme.pagerduty.com/incidents/PGR0VU2",
    pd_status="acknowledged",
    pd_updated_at=datetime(2025, 1, 14, 14, 41, 0, tzinfo=UTC),
    pd_details={"priority": "P1", "escalated_to": "Platform"},
    webhook_event_ids=("01DEN2HDZ5NB3KHYRC1A0SW5WQ", "01DEN2HE0Y4OVQPHN1LMVXDAH3"),
    version=7,
)
"""An incident with every field set to something other than its default."""


# --- the contract: every store --------------------------------------------------------------------


def test_every_field_is_set_in_the_round_trip_sample() -> None:
    """Guards the round-trip test below: a new Incident field must be added to the sample too."""
    defaults = Incident(dedup_key="k", alarm_name="a", status=IncidentStatus.TRIGGERED, updated_at=T0)
    unchanged = [f.name for f in fields(Incident) if getattr(EVERY_FIELD, f.name) == getattr(defaults, f.name)]
    assert unchanged == []


def test_get_of_an_unknown_key_is_none(store: IncidentStore) -> None:
    assert store.get("never-seen") is None


def test_put_then_get_round_trips_every_field(store: IncidentStore) -> None:
    store.put(EVERY_FIELD, expected_version=None)

    got = store.get(EVERY_FIELD.dedup_key)

    assert got is not None
    assert got == EVERY_FIELD
    assert asdict(got) == asdict(EVERY_FIELD)
    for name in (
        "state_changed_at",
        "triggered_at",
        "acknowledged_at",
        "resolved_at",
        "lease_until",
        "updated_at",
        "unconfirmed_until",
        "trigger_sent_at",
        "pd_updated_at",
    ):
        value = getattr(got, name)
        assert value.utcoffset() is not None, f"{name} came back naive"
        assert value == getattr(EVERY_FIELD, name), name
    assert type(got.status) is IncidentStatus
    assert type(got.severity) is AlertSeverity
    assert type(got.alarm_state) is AlarmState
    assert type(got.resolution) is Resolution
    assert type(got.pending_action) is EventAction
    assert type(got.version) is int
    assert type(got.origin) is Origin
    assert type(got.webhook_event_ids) is tuple


def test_optional_fields_left_unset_come_back_unset(store: IncidentStore) -> None:
    minimal = Incident(dedup_key="minimal", alarm_name="minimal", status=IncidentStatus.RESOLVED, updated_at=T0)
    store.put(minimal, expected_version=None)

    assert store.get("minimal") == minimal


def test_putting_a_new_incident_twice_is_a_conflict(store: IncidentStore) -> None:
    first = incident(summary="first")
    store.put(first, expected_version=None)

    with pytest.raises(VersionConflictError) as raised:
        store.put(incident(summary="second"), expected_version=None)

    assert raised.value.retryable
    assert store.get(first.dedup_key) == first


def test_put_with_the_version_read_succeeds(store: IncidentStore) -> None:
    v1 = incident()
    store.put(v1, expected_version=None)
    v2 = replace(v1, **{"status": IncidentStatus.ACKNOWLEDGED, "acknowledged_at": T0, "version": 2})

    store.put(v2, expected_version=1)

    assert store.get(v1.dedup_key) == v2


def test_put_with_a_stale_version_is_a_conflict_and_changes_nothing(store: IncidentStore) -> None:
    v1 = incident()
    store.put(v1, expected_version=None)
    v2 = replace(v1, **{"summary": "updated once", "version": 2})
    store.put(v2, expected_version=1)

    with pytest.raises(VersionConflictError):
        store.put(replace(v1, **{"summary": "lost update", "version": 2}), expected_version=1)

    assert store.get(v1.dedup_key) == v2


def test_put_with_an_expected_version_on_a_missing_key_is_a_conflict(store: IncidentStore) -> None:
    with pytest.raises(VersionConflictError):
        store.put(incident(version=2), expected_version=1)

    assert store.get(incident().dedup_key) is None


def test_list_active_holds_open_incidents_in_trigger_order(store: IncidentStore) -> None:
    # Keys in an order that differs from trigger order, so a listing by key would fail.
    store.put(incident("a-late", triggered_at=T0 + timedelta(minutes=2)), expected_version=None)
    store.put(incident("b-first", status=IncidentStatus.ACKNOWLEDGED, triggered_at=T0), expected_version=None)
    store.put(incident("c-middle", triggered_at=T0 + timedelta(minutes=1)), expected_version=None)
    store.put(
        replace(resolved(incident("d-closed", triggered_at=T0 - timedelta(hours=1)), T0), version=1),
        expected_version=None,
    )

    active = store.list_active()

    assert keys(active) == ["b-first", "c-middle", "a-late"]
    assert {i.status for i in active} == {IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED}


def test_list_active_orders_by_instant_whatever_the_utc_offset(store: IncidentStore) -> None:
    # 10:00 CEST is 08:00 UTC: earlier than 09:00 UTC although its text sorts later.
    store.put(incident("utc-nine", triggered_at=datetime(2025, 1, 14, 9, 0, tzinfo=UTC)), expected_version=None)
    store.put(incident("cest-ten", triggered_at=datetime(2025, 1, 14, 10, 0, tzinfo=CEST)), expected_version=None)

    assert keys(store.list_active()) == ["cest-ten", "utc-nine"]


def test_an_open_incident_without_a_trigger_time_is_still_listed(store: IncidentStore) -> None:
    store.put(incident("no-start", status=IncidentStatus.ACKNOWLEDGED, triggered_at=None), expected_version=None)

    assert keys(store.list_active()) == ["no-start"]


def test_list_watched_holds_the_closed_incidents_the_scheduled_run_must_see(store: IncidentStore) -> None:
    """Closed, but not done with: a request whose outcome is unknown, a delivery never finished, a
    silenced alarm still in ALARM. The scheduled run finds them only here."""
    closed = resolved(incident("closed", triggered_at=T0), T0)
    store.put(closed, expected_version=None)
    store.put(incident("open"), expected_version=None)
    store.put(
        replace(closed, dedup_key="unconfirmed", unconfirmed_until=T0 + timedelta(minutes=15)), expected_version=None
    )
    store.put(replace(closed, dedup_key="pending", pending_action=EventAction.RESOLVE), expected_version=None)
    silenced = replace(closed, dedup_key="silenced", last_reason="silenced", alarm_state=AlarmState.ALARM)
    store.put(silenced, expected_version=None)
    store.put(replace(silenced, dedup_key="silenced-then-ok", alarm_state=AlarmState.OK), expected_version=None)

    assert sorted(keys(store.list_watched())) == ["pending", "silenced", "unconfirmed"]

    settled = replace(silenced, alarm_state=AlarmState.OK, last_reason=None, version=silenced.version + 1)
    store.put(settled, expected_version=silenced.version)
    assert sorted(keys(store.list_watched())) == ["pending", "unconfirmed"], "a settled incident is watched no more"


def test_resolving_removes_from_list_active_but_not_from_list_all(store: IncidentStore) -> None:
    first = incident("first", triggered_at=T0)
    second = incident("second", triggered_at=T0 + timedelta(minutes=1))
    store.put(first, expected_version=None)
    store.put(second, expected_version=None)
    assert keys(store.list_active()) == ["first", "second"]

    store.put(resolved(first, T0 + timedelta(minutes=5)), expected_version=first.version)

    assert keys(store.list_active()) == ["second"]
    everything = {i.dedup_key: i for i in store.list_all()}
    assert set(everything) == {"first", "second"}
    assert everything["first"].status is IncidentStatus.RESOLVED
    assert everything["first"].resolved_at == T0 + timedelta(minutes=5)


def test_delete_forgets_one_incident(store: IncidentStore) -> None:
    store.put(incident("kept"), expected_version=None)
    store.put(incident("gone"), expected_version=None)

    store.delete("gone")
    store.delete("never-existed")

    assert store.get("gone") is None
    assert keys(store.list_all()) == ["kept"]
    store.put(incident("gone"), expected_version=None)  # the key is free again
    assert store.get("gone") is not None


def test_clear_forgets_everything(store: IncidentStore) -> None:
    for n in range(3):
        store.put(incident(f"alarm{n}", triggered_at=T0 + timedelta(minutes=n)), expected_version=None)
    first = store.get("alarm0")
    assert first is not None
    store.put(resolved(first, T0 + timedelta(hours=1)), expected_version=1)

    store.clear()

    assert store.list_all() == []
    assert store.list_active() == []
    assert store.get("alarm1") is None


def test_ping_answers_while_the_store_is_there_and_raises_once_it_is_gone(
    store: IncidentStore, request: pytest.FixtureRequest
) -> None:
    store.ping()
    if isinstance(store, SQLiteIncidentStore):
        store.close()
    else:
        request.getfixturevalue("dynamo").client.delete_table(TableName=TABLE)

    with pytest.raises(StoreError):
        store.ping()


def test_a_sqlite_file_whose_folder_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")

    with pytest.raises(StoreError, match=r"cannot open the incident store .*a-file/state.db: cannot create"):
        SQLiteIncidentStore(tmp_path / "a-file" / "state.db")


def test_every_write_to_a_sqlite_file_locked_past_the_busy_timeout_is_a_store_error(tmp_path: Path) -> None:
    """Another process holding the file's write lock longer than the store waits: each write fails with
    a retryable StoreError naming it, never sqlite3's own error; once the lock is gone they succeed."""
    path = tmp_path / "state.db"
    store = SQLiteIncidentStore(path, busy_timeout=timedelta(milliseconds=50))
    store.put(incident("kept"), expected_version=None)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, held
    try:
        writes: dict[str, Callable[[], None]] = {
            "put": lambda: store.put(incident("new"), expected_version=None),
            "delete": lambda: store.delete("kept"),
            "clear": store.clear,
        }
        for name, write in writes.items():
            with pytest.raises(StoreError, match="database is locked") as failed:
                write()
            assert failed.value.retryable, name
        assert keys(store.list_all()) == ["kept"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.clear()
    assert store.list_all() == []
    store.close()


# --- concurrency: exactly one of several racing writers wins ---------------------------------------

WRITERS = 8
RACES = 3


@pytest.fixture(params=["sqlite-file", "moto-in-process", "moto-server"])
def writer_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[IncidentStore]]:
    """One store per writer, each with its own connection or client: like separate Lambda containers.
    moto's conditional writes are made atomic, as DynamoDB's are (``atomic_moto_writes``): the races test
    the store's conditions, not moto's gap (two winners in about one of 200 races of 8 writers without the
    lock, and once in a CI run where the writer that created an item raced the others with an UpdateItem)."""
    kind = request.param
    session: boto3.session.Session = request.getfixturevalue("boto_session")
    if kind == "sqlite-file":
        path = tmp_path / "shared.db"
        sqlite_stores = [SQLiteIncidentStore(path) for _ in range(WRITERS)]
        yield list(sqlite_stores)
        for sqlite in sqlite_stores:
            sqlite.close()
        return
    if kind == "moto-server":
        url = request.getfixturevalue("moto_url")
        table = f"race-{request.node.name.replace('[', '-').replace(']', '')}"[:200]
        clients = [session.client("dynamodb", endpoint_url=url) for _ in range(WRITERS)]
        create_table(clients[0], table)
        with atomic_moto_writes():
            yield [DynamoDBIncidentStore(client, table) for client in clients]
        clients[0].delete_table(TableName=table)
        return
    with mock_aws(), atomic_moto_writes():
        clients = [session.client("dynamodb") for _ in range(WRITERS)]
        create_table(clients[0], TABLE)
        yield [DynamoDBIncidentStore(client, TABLE) for client in clients]


def race(stores: list[IncidentStore], write: Callable[[IncidentStore, int], None]) -> tuple[list[int], list[object]]:
    """Start every writer at once; return who won and what the losers raised."""
    barrier = threading.Barrier(len(stores))
    winners: list[int] = []
    failures: list[object] = [None] * len(stores)
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        try:
            write(stores[index], index)
        except Exception as exc:
            failures[index] = exc
            return
        with lock:
            winners.append(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    return winners, [f for f in failures if f is not None]


def test_concurrent_writers_of_the_same_version_have_exactly_one_winner(writer_stores: list[IncidentStore]) -> None:
    for round_number in range(RACES):
        v1 = incident(f"hot-key-{round_number}")
        writer_stores[0].put(v1, expected_version=None)

        def write(store: IncidentStore, index: int, v1: Incident = v1) -> None:
            store.put(replace(v1, **{"summary": f"writer {index}", "version": 2}), expected_version=1)

        winners, failures = race(writer_stores, write)

        assert len(winners) == 1, f"round {round_number}: winners {winners}"
        assert len(failures) == WRITERS - 1
        assert all(isinstance(f, VersionConflictError) for f in failures), failures
        stored = writer_stores[-1].get(v1.dedup_key)
        assert stored is not None
        assert (stored.version, stored.summary) == (2, f"writer {winners[0]}")


def test_concurrent_creators_of_a_new_incident_have_exactly_one_winner(writer_stores: list[IncidentStore]) -> None:
    def write(store: IncidentStore, index: int) -> None:
        store.put(incident("brand-new", summary=f"writer {index}"), expected_version=None)

    winners, failures = race(writer_stores, write)

    assert len(winners) == 1
    assert all(isinstance(f, VersionConflictError) for f in failures), failures
    stored = writer_stores[-1].get("brand-new")
    assert stored is not None
    assert stored.summary == f"writer {winners[0]}"


# --- DynamoDB: what the stack and the Lambda rely on ------------------------------------------------


def test_list_active_is_one_query_on_the_sparse_index(dynamo: Dynamo) -> None:
    dynamo.store.put(incident("open", triggered_at=T0), expected_version=None)
    closed = incident("closed", triggered_at=T0 - timedelta(hours=1))
    dynamo.store.put(closed, expected_version=None)
    dynamo.store.put(resolved(closed, T0), expected_version=1)
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    dynamo.client.meta.events.register("provide-client-params.dynamodb", record)

    active = dynamo.store.list_active()

    assert keys(active) == ["open"]
    assert [name for name, _ in calls] == ["Query"]
    assert calls[0][1]["IndexName"] == c.ACTIVE_INDEX_NAME
    assert dynamo.raw_item("open")[c.ACTIVE_INDEX_PARTITION_KEY] == {"S": c.ACTIVE_MARKER}
    assert c.ACTIVE_INDEX_SORT_KEY in dynamo.raw_item("open")
    assert c.ACTIVE_INDEX_PARTITION_KEY not in dynamo.raw_item("closed")
    assert c.ACTIVE_INDEX_SORT_KEY not in dynamo.raw_item("closed")


def test_the_table_is_created_with_the_index_and_ttl_the_store_uses(dynamo: Dynamo) -> None:
    table = dynamo.client.describe_table(TableName=TABLE)["Table"]
    ttl = dynamo.client.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]

    assert table["KeySchema"] == [{"AttributeName": c.TABLE_PARTITION_KEY, "KeyType": "HASH"}]
    index = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}[c.ACTIVE_INDEX_NAME]
    assert {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]} == {
        c.ACTIVE_INDEX_PARTITION_KEY: "HASH",
        c.ACTIVE_INDEX_SORT_KEY: "RANGE",
    }
    assert (ttl["AttributeName"], ttl["TimeToLiveStatus"]) == (c.TTL_ATTRIBUTE, "ENABLED")


def test_resolved_incidents_expire_after_the_retention_open_ones_never(dynamo: Dynamo) -> None:
    opened = incident("stays", triggered_at=T0)
    dynamo.store.put(opened, expected_version=None)
    closing = incident("expires", triggered_at=T0)
    dynamo.store.put(closing, expected_version=None)
    resolved_at = T0 + timedelta(minutes=42)

    dynamo.store.put(resolved(closing, resolved_at), expected_version=1)

    expires = int(dynamo.raw_item("expires")[c.TTL_ATTRIBUTE]["N"])
    assert abs(expires - (resolved_at + RETENTION).timestamp()) <= 1
    assert c.TTL_ATTRIBUTE not in dynamo.raw_item("stays")
    assert dynamo.store.get("expires") == resolved(closing, resolved_at)  # the TTL attribute stays internal


def test_a_resolve_still_on_its_way_to_pagerduty_does_not_expire(dynamo: Dynamo) -> None:
    claim = replace(resolved(incident("in-flight"), T0), **{"pending_action": EventAction.RESOLVE})

    dynamo.store.put(claim, expected_version=None)

    assert c.TTL_ATTRIBUTE not in dynamo.raw_item("in-flight")


def test_ping_on_a_missing_table_names_it_and_is_worth_a_retry_once_it_is_there(dynamo: Dynamo) -> None:
    store = DynamoDBIncidentStore(dynamo.client, "no-such-table")

    with pytest.raises(StoreError) as raised:
        store.ping()

    assert raised.value.retryable, "a deployment fixed makes the retry succeed: nothing may be dropped for it"
    assert "no-such-table" in str(raised.value)


class FailingDynamoDB:
    """A DynamoDB client whose every call fails as botocore reports ``code`` (or a network error)."""

    def __init__(self, code: str | None) -> None:
        self.code = code
        self.calls: list[str] = []

    def _fail(self, operation: str) -> None:
        self.calls.append(operation)
        if self.code is None:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com/")
        raise ClientError(
            {
                "Error": {"Code": self.code, "Message": f"{self.code} (simulated)"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            operation,
        )

    def get_item(self, **_: Any) -> None:
        self._fail("GetItem")

    def put_item(self, **_: Any) -> None:
        self._fail("PutItem")

    def delete_item(self, **_: Any) -> None:
        self._fail("DeleteItem")

    def describe_table(self, **_: Any) -> None:
        self._fail("DescribeTable")

    def get_paginator(self, operation: str) -> FailingPaginator:
        return FailingPaginator(self, operation)


@dataclass
class FailingPaginator:
    client: FailingDynamoDB
    operation: str

    def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
        self.client._fail(self.operation.title())
        yield {}


STORE_CALLS: dict[str, Callable[[DynamoDBIncidentStore], object]] = {
    "get": lambda s: s.get("k"),
    "put": lambda s: s.put(incident("k"), expected_version=None),
    "list_active": lambda s: s.list_active(),
    "list_all": lambda s: s.list_all(),
    "delete": lambda s: s.delete("k"),
    "clear": lambda s: s.clear(),
    "ping": lambda s: s.ping(),
}


@pytest.mark.parametrize("call", sorted(STORE_CALLS))
@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError", None]
)
def test_throttling_and_outages_become_retryable_store_errors(call: str, code: str | None) -> None:
    client = FailingDynamoDB(code)

    with pytest.raises(StoreError) as raised:
        STORE_CALLS[call](DynamoDBIncidentStore(client, TABLE))

    assert raised.value.retryable
    assert not isinstance(raised.value, VersionConflictError)
    assert isinstance(raised.value.__cause__, ClientError | EndpointConnectionError)
    assert len(client.calls) == 1


def test_a_failed_condition_becomes_a_version_conflict() -> None:
    with pytest.raises(VersionConflictError) as raised:
        DynamoDBIncidentStore(FailingDynamoDB("ConditionalCheckFailedException"), TABLE).put(
            incident(), expected_version=3
        )

    assert raised.value.retryable
    assert isinstance(raised.value.__cause__, ClientError)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("ValidationException", False),
        ("SerializationException", False),
        ("ResourceNotFoundException", True),
        ("AccessDeniedException", True),
        ("KMSDisabledException", True),
        ("UnrecognizedClientException", True),
        ("ExpiredTokenException", True),
    ],
)
def test_only_a_request_dynamodb_refuses_as_malformed_is_a_permanent_store_error(code: str, retryable: bool) -> None:
    """A table deleted or renamed, a role or KMS key a deploy got wrong: a retry after the fix
    succeeds, as after a ConfigurationError. Only a malformed request never will."""
    with pytest.raises(StoreError) as raised:
        DynamoDBIncidentStore(FailingDynamoDB(code), TABLE).get("k")

    assert raised.value.retryable is retryable
    assert not isinstance(raised.value, VersionConflictError)
    assert code in str(raised.value)


SILENCE = Silence(
    id="0a1b2c3d4e5f",
    matchers={"alarm_name": "nightly-*"},
    starts_at=T0,
    ends_at=T0 + timedelta(days=3650),
    comment="batch window",
    created_by="test",
    created_at=T0,
)


def test_an_incident_whose_key_looks_like_a_silences_is_listed_like_any_other(dynamo: Dynamo) -> None:
    """An alarm may be named anything, "silence#nightly-batch" too: it is an incident, listed, reconciled
    and cleared like any other, and the silences are still the silences."""
    dynamo.store.put(incident("silence#nightly-batch"), expected_version=None)
    dynamo.store.put_silence(SILENCE)

    assert [i.dedup_key for i in dynamo.store.list_active()] == ["silence#nightly-batch"]
    assert [i.dedup_key for i in dynamo.store.list_all()] == ["silence#nightly-batch"]
    assert [s.id for s in dynamo.store.list_silences()] == [SILENCE.id]
    with pytest.raises(StoreError, match="holds an incident"):
        dynamo.store.put_silence(replace(SILENCE, id="nightly-batch"))  # its key is the incident's
    assert dynamo.store.get("silence#nightly-batch") == incident("silence#nightly-batch")
    dynamo.store.clear()
    assert dynamo.store.get("silence#nightly-batch") is None
    assert [s.id for s in dynamo.store.list_silences()] == [SILENCE.id]


def test_an_item_written_by_something_else_is_read_as_an_incident_of_unknown_state(
    dynamo: Dynamo, caplog: pytest.LogCaptureFixture
) -> None:
    """Written by hand or by something else: it must not hide every incident from a listing,
    reconciliation or stats, nor block its key's alarm. What it lacks is named in a warning; its
    status, unknown, reads as open (an OK resolves it, an ALARM pages)."""
    dynamo.store.put(incident("disk-full-DiskUsed"), expected_version=None)
    dynamo.client.put_item(TableName=TABLE, Item={c.TABLE_PARTITION_KEY: {"S": "legacy"}, "foo": {"N": "1"}})

    assert sorted(i.dedup_key for i in dynamo.store.list_all()) == ["disk-full-DiskUsed", "legacy"]
    assert "'legacy'" in caplog.text and "status" in caplog.text
    legacy = dynamo.store.get("legacy")
    assert legacy is not None and legacy.is_open and legacy.alarm_name == "legacy"
