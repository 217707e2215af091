"""The stores at their limits: state files of an older schema, numbers at the edge of what a store
holds, errors DynamoDB answers with. Each test is a defect that was reproduced first, then fixed."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from pagerduty_bridge.models import AlarmState, EventAction, Incident, IncidentStatus
from pagerduty_bridge.store import to_record
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.builders import T0

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
    unfinished = Incident(
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
    done = Incident(dedup_key="disk-full", alarm_name="disk-full", status=IncidentStatus.RESOLVED, updated_at=T0)
    path = tmp_path / "state.db"
    _first_schema_file(path, unfinished, done)

    store = SQLiteIncidentStore(path)

    assert [i.dedup_key for i in store.list_watched()] == ["cpu-high"]
    assert [i.dedup_key for i in SQLiteIncidentStore(path).list_watched()] == ["cpu-high"]
