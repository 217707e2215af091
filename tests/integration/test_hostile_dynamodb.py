"""The stores at their limits: state files of an older schema, numbers at the edge of what a store
holds, errors DynamoDB answers with. Each test is a defect that was reproduced first, then fixed."""

from __future__ import annotations

import contextlib
import gc
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.models import AlarmState, EventAction, Incident, IncidentStatus
from pagerduty_bridge.store import to_record
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.builders import T0, cli, emf_metrics, read_only, sns_event
from tests.conftest import EVENTS, OTHER_ROUTING_KEY, ROUTING_KEY
from tests.integration.test_webhooks import World, delivery, post, world

__all__ = ["world"]
_FIRST_SCHEMA = """
CREATE TABLE incidents (
    dedup_key    TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    is_open      INTEGER NOT NULL,
    triggered_at TEXT,
    expires_at   INTEGER,
    data         TEXT NOT NULL
);
CREATE INDEX incidents_open ON incidents (is_open, triggered_at);
"""
"""The state file's schema before closed incidents could be watched (no ``watched`` column)."""
KEY = "web-prod-cpu-high-CPUUtilization"
"""The dedup key of the sample CPU alarm (``05-ec2-cpu-alarm.json``)."""
_UNFINISHED = Incident(
    dedup_key="cpu-high",
    alarm_name="cpu-high",
    status=IncidentStatus.RESOLVED,
    updated_at=T0,
    triggered_at=T0,
    resolved_at=T0,
    alarm_state=AlarmState.OK,
    pending_action=EventAction.RESOLVE,
    claim_token="c" * 32,
    version=7,
)
"""A resolve claimed (and maybe sent) before an upgrade, never committed: the scheduled run must see it."""


def _first_schema_file(path: Path, *incidents: Incident) -> None:
    """A state file as the first schema wrote it, holding ``incidents``."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(_FIRST_SCHEMA)
        for incident in incidents:
            db.execute(
                "INSERT INTO incidents (dedup_key, version, is_open, triggered_at, data) VALUES (?, ?, ?, ?, ?)",
                (
                    incident.dedup_key,
                    incident.version,
                    int(incident.is_open),
                    "2026-01-01T00:00:00.000000Z",
                    json.dumps(to_record(incident)),
                ),
            )


def test_a_state_file_of_the_first_schema_keeps_watching_its_unfinished_resolve(tmp_path: Path) -> None:
    """A resolve claimed (and maybe sent) before the upgrade, never committed: the migration added the
    ``watched`` column as 0 for every row, so the scheduled run never looked at it again and the
    incident could stay open at PagerDuty although its alarm cleared."""
    done = Incident(dedup_key="disk-full", alarm_name="disk-full", status=IncidentStatus.RESOLVED, updated_at=T0)
    path = tmp_path / "state.db"
    _first_schema_file(path, _UNFINISHED, done)

    store = SQLiteIncidentStore(path)

    assert [i.dedup_key for i in store.list_watched()] == ["cpu-high"]
    assert [i.dedup_key for i in SQLiteIncidentStore(path).list_watched()] == ["cpu-high"]


def test_an_alias_longer_than_the_stored_limit_still_resolves_on_its_service(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule routing to an alias of more than 64 characters paged on that alias's key, but the incident
    kept the alias cut to 64 characters: the alarm's OK then named an alias no key is configured for,
    its resolve failed on every retry, and the incident stayed open at PagerDuty."""
    alias = "payments-platform-" + "x" * 80
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps({alias: OTHER_ROUTING_KEY}))
    monkeypatch.setenv("ALERT_RULES", json.dumps({"rules": [{"name": "all", "match": {}, "routing_key": alias}]}))
    send = ("--send", "--events-url", fake_pd.url)

    assert cli("replay", *send, str(EVENTS / "05-ec2-cpu-alarm.json")).code == 0
    assert set(fake_pd.open_alerts(routing_key=OTHER_ROUTING_KEY)) == {KEY}

    resolved = cli("replay", "--json", *send, str(EVENTS / "06-ec2-cpu-ok.json"))
    assert resolved.code == 0, resolved.err
    assert resolved.json()["action"] == "resolve"
    assert fake_pd.open_alerts() == {}


def test_an_alias_no_incident_can_keep_pages_the_default_service_and_resolves_there(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An alarm's ``pagerduty:routing`` tag naming a configured alias longer than an incident keeps: the
    page goes to the default service, saying why, and the incident keeps ``default``, so its OK resolves
    it there (sent on the long alias, the resolve went to the cut one and failed for good)."""
    alias = "a" * 300
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps({alias: OTHER_ROUTING_KEY}))
    tags = {"AlarmTags": {"pagerduty:routing": alias}}
    send = ("--send", "--events-url", fake_pd.url, "--state", str(tmp_path / "state.db"))
    for state, old in (("ALARM", "OK"), ("OK", "ALARM")):
        event = tmp_path / f"{state}.json"
        event.write_text(json.dumps(sns_event("long-alias", state, old, T0 + timedelta(minutes=len(old)), **tags)))
        run = cli("replay", *send, str(event))
        assert run.code == 0, run.err

    trigger, resolve = fake_pd.requests
    assert trigger.body["routing_key"] == ROUTING_KEY == resolve.body["routing_key"]
    assert "is too long to keep" in trigger.body["payload"]["custom_details"]["routing"]
    assert fake_pd.open_alerts() == {}


def test_a_rule_naming_an_alias_no_incident_can_keep_is_refused_at_load(tmp_path: Path) -> None:
    """Refused where it is written (``rules check``, the start, the synth), not found at the first page."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"name": "long", "match": {}, "routing_key": "a" * 257}]}))
    run = cli("rules", "check", str(rules))
    assert run.code == 2
    assert "routing_key" in run.err and "256" in run.err, run.err


def test_an_incident_at_the_largest_version_sqlite_holds_still_resolves(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A row whose version is the largest SQLite integer (edited by hand, or written by another tool):
    the next version did not fit, the write raised ``OverflowError`` on every notification, and the
    incident could never be resolved."""
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    state = tmp_path / "state.db"
    send = ("--send", "--events-url", fake_pd.url, "--state", str(state))
    alarm, ok = tmp_path / "alarm.json", tmp_path / "ok.json"
    alarm.write_text(json.dumps(sns_event("at-the-top", "ALARM", "OK", T0)))
    ok.write_text(json.dumps(sns_event("at-the-top", "OK", "ALARM", T0 + timedelta(minutes=5))))
    assert cli("replay", *send, str(alarm)).code == 0
    with contextlib.closing(sqlite3.connect(state)) as db, db:
        db.execute("UPDATE incidents SET version = ?", (2**63 - 1,))

    run = cli("replay", "--json", *send, str(ok))

    assert run.code == 0, run.err
    assert run.json()["action"] == "resolve"
    assert fake_pd.open_alerts() == {}
    (incident,) = SQLiteIncidentStore(state).list_all()
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.version < 2**53


def test_a_row_whose_data_is_nested_past_reason_is_a_store_error_naming_it(tmp_path: Path) -> None:
    """A row whose data is JSON nested past Python's recursion limit (edited by hand, or by another tool):
    reading it raised ``RecursionError``, an "unexpected" failure, and a listing of the state file failed
    on it. It is an unreadable row like any other now: listings skip it, reading it names it."""
    state = tmp_path / "state.db"
    assert cli("replay", "--record", "--state", str(state), str(EVENTS / "05-ec2-cpu-alarm.json")).code == 0
    with contextlib.closing(sqlite3.connect(state)) as db, db:
        db.execute(
            "INSERT INTO incidents (dedup_key, version, is_open, triggered_at, data) VALUES ('deep', 1, 1, '0', ?)",
            ("[" * 100_000 + "]" * 100_000,),
        )

    listed = cli("incidents", "list", "--json", "--state", str(state))
    shown = cli("incidents", "show", "deep", "--state", str(state))

    assert listed.code == 0, listed.err
    assert [row["dedup_key"] for row in listed.json()] == [KEY]
    assert shown.code == 2
    assert "'deep'" in shown.err and "is not an incident the bridge can read" in shown.err, shown.err


@pytest.fixture
def read_only_first_schema(tmp_path: Path) -> Iterator[Path]:
    """A state file of the first schema (no ``watched`` column, no silences) holding an unfinished
    resolve, that nobody can write (as ``test_cli_interface.read_only_state``)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    state = folder / "state.db"
    _first_schema_file(state, _UNFINISHED)
    with read_only(state) as fixed:
        yield fixed


def test_a_read_only_state_file_of_the_first_schema_is_read_as_it_is(read_only_first_schema: Path) -> None:
    """Opened for reading only, an old state file is not migrated: listing the closed incidents to watch
    failed on the missing ``watched`` column, and listing silences on the missing table."""
    store = SQLiteIncidentStore(read_only_first_schema)
    assert store.read_only

    assert [i.dedup_key for i in store.list_watched()] == [_UNFINISHED.dedup_key]
    assert store.list_silences() == []
    assert [s["id"] for s in cli("silence", "list", "--json", "--state", str(read_only_first_schema)).json()] == []


def test_a_state_file_being_written_in_rollback_mode_is_waited_for_not_refused(tmp_path: Path) -> None:
    """Another connection writing the file before it is in WAL mode (a second command starting on a new
    state file, or one made by the ``sqlite3`` shell): switching to WAL answered "database is locked" at
    once, without the busy timeout, so one of two commands started together failed."""
    path = tmp_path / "state.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE scratch (x)")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO scratch VALUES (1)")
    release = threading.Timer(0.3, writer.execute, ("COMMIT",))
    release.start()
    try:
        store = SQLiteIncidentStore(path, busy_timeout=timedelta(seconds=10))
    finally:
        release.join()
        writer.close()
    store.put(_UNFINISHED, expected_version=None)
    assert store.list_watched() == [_UNFINISHED]


def test_two_processes_opening_a_state_file_of_the_first_schema_add_its_column_once(tmp_path: Path) -> None:
    """Another process adds the ``watched`` column while this one opens the file: both had seen it
    missing, and the second ``ALTER TABLE`` failed with "duplicate column name", so the command failed."""
    path = tmp_path / "state.db"
    _first_schema_file(path, _UNFINISHED)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE silences (id TEXT PRIMARY KEY, ends_at TEXT NOT NULL, data TEXT NOT NULL)")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ALTER TABLE incidents ADD COLUMN watched INTEGER NOT NULL DEFAULT 0")
    other.execute("UPDATE incidents SET watched = 1")
    release = threading.Timer(0.3, other.execute, ("COMMIT",))
    release.start()
    try:
        store = SQLiteIncidentStore(path, busy_timeout=timedelta(seconds=10))
    finally:
        release.join()
        other.close()
    assert store.list_watched() == [_UNFINISHED]


def test_a_webhook_the_table_refuses_is_counted_for_the_health_alarm(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table gone (deleted, or the role narrowed): the receiver answered 503, so PagerDuty retries,
    but returned normally: no function error, no metric, and the health alarm meant for "the webhook
    receiver failed a request" never went off while PagerDuty's acknowledgements were being lost."""
    world.alarm()
    world.store._client.delete_table(TableName=world.store.table_name)
    capsys.readouterr()

    assert post(delivery("incident.acknowledged", minutes=1)) == 503

    counted = emf_metrics(capsys.readouterr().out)
    assert counted[c.METRIC_WEBHOOK_FAILED] == 1, counted


@pytest.mark.parametrize("journal", ["WAL", "DELETE"])
def test_a_dry_run_over_a_state_file_of_the_first_schema_leaves_it_as_it_was(tmp_path: Path, journal: str) -> None:
    """A dry run changes no store, not even its schema: it migrated an old state file (a ``watched``
    column and a silences table added, a file in rollback mode switched to WAL), so the older release
    that wrote it no longer read it as it had. It plans on the file as it is, read only, and leaves no
    file of SQLite's beside it."""
    path = tmp_path / "state.db"
    _first_schema_file(path, _UNFINISHED)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA journal_mode={journal}")
    before = path.read_bytes()
    dry = cli("replay", "--json", "--state", str(path), str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert dry.code == 0, dry.err
    assert [json.loads(line)["action"] for line in dry.out.splitlines()] == ["trigger"]
    gc.collect()  # what the command's process ending does: its store (in a reference cycle) is closed
    assert path.read_bytes() == before, "the dry run changed the state file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]
    recorded = cli("replay", "--record", "--state", str(path), str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert recorded.code == 0, recorded.err
    gc.collect()
    with contextlib.closing(sqlite3.connect(path)) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(incidents)")}
        keys = {row[0] for row in db.execute("SELECT dedup_key FROM incidents")}
    assert "watched" in columns and KEY in keys, "--record opens the file to write: migrated, and the page kept"
