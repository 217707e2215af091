"""The embedded incident store: SQLite, in a file (the CLI's default) or in memory (the library's).

Writes are conditional on the version read, in one statement, so the same guarantees hold as with
DynamoDB's conditional writes — also across processes sharing one file.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from pagerduty_bridge.errors import StoreError, VersionConflictError
from pagerduty_bridge.models import Incident
from pagerduty_bridge.silences import Silence, read_silence
from pagerduty_bridge.store import bounded, expiry_epoch, format_time, from_record, needs_watch, to_record
from pagerduty_bridge.text import truncate

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    dedup_key    TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    is_open      INTEGER NOT NULL,
    triggered_at TEXT,
    expires_at   INTEGER,
    data         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (is_open, triggered_at);
CREATE TABLE IF NOT EXISTS silences (
    id      TEXT PRIMARY KEY,
    ends_at TEXT NOT NULL,
    data    TEXT NOT NULL
);
"""
BUSY_TIMEOUT: Final = timedelta(seconds=30)
"""How long a statement waits for another connection's write lock on the file (a CLI command while
another writes) before failing: sqlite3's ``timeout``."""
_MIGRATIONS = (("watched", "ALTER TABLE incidents ADD COLUMN watched INTEGER NOT NULL DEFAULT 0"),)
"""Columns added since the first schema, added to older state files when they are opened."""


class SQLiteIncidentStore:
    """Incidents in SQLite. ``path`` is a file (its folder is created) or ``":memory:"``; a write waits
    ``busy_timeout`` (default ``BUSY_TIMEOUT``) for another connection's lock. ``read_only`` opens an
    existing file for reading only, as it is (no WAL switch, no schema script, no migration): what a dry
    run plans on."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        retention: timedelta = timedelta(days=90),
        busy_timeout: timedelta | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = str(path)
        self.retention = retention
        timeout = (BUSY_TIMEOUT if busy_timeout is None else busy_timeout).total_seconds()
        if self.path != ":memory:":
            folder = Path(self.path).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot open the incident store {self.path}: cannot create its folder {folder}: "
                    f"{exc.strerror or exc}"
                ) from exc
        cannot_write = self.path != ":memory:" and _read_only(Path(self.path))
        as_it_is = read_only and self.path != ":memory:" and Path(self.path).exists()
        self.read_only = cannot_write or as_it_is
        """A file opened read only, or one this process cannot write, is only read: every write fails
        with a StoreError."""
        try:
            if cannot_write:
                self._db = _connect_read_only(Path(self.path), timeout)
            elif as_it_is:
                self._db = _connect_as_it_is(self.path, timeout)
            else:
                self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
                _journal(self._db, "MEMORY" if self.path == ":memory:" else "WAL", timeout)
                self._db.executescript(_SCHEMA)
                _migrate(self._db)
            # What a read-only file of the first schema (never migrated) lacks: ``list_watched`` and
            # ``list_silences`` answer without it.
            self._watched = "watched" in _columns(self._db)
            self._silenced = bool(
                self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'silences'").fetchone()
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the incident store {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteIncidentStore({self.path!r})"

    def get(self, dedup_key: str) -> Incident | None:
        row = self._query_one("SELECT data, version FROM incidents WHERE dedup_key = ?", (dedup_key,))
        if not row:
            return None
        incident = self._incident(dedup_key, row[0])
        # Writes are conditional on the version column: a version the data holds unreadably (or
        # otherwise than the column) must not make every write conflict. A column that is no whole
        # number (edited by hand) reads as version 1, which a write conditional on 1 replaces.
        column = row[1]
        version = column if isinstance(column, int) and not isinstance(column, bool) else 1
        return incident if version == incident.version else replace(incident, version=version)

    def put(self, incident: Incident, *, expected_version: int | None) -> None:
        incident = bounded(incident)
        data = json.dumps(to_record(incident, compact=True), ensure_ascii=False)
        values = (
            int(incident.version),
            int(incident.is_open),
            int(needs_watch(incident)),
            format_time(incident.triggered_at or incident.updated_at),
            expiry_epoch(incident, self.retention),
            data,
        )
        with self._lock:
            try:
                if expected_version is None:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO incidents"
                        " (version, is_open, watched, triggered_at, expires_at, data, dedup_key)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*values, incident.dedup_key),
                    )
                else:
                    cursor = self._db.execute(
                        "UPDATE incidents SET version = ?, is_open = ?, watched = ?, triggered_at = ?, expires_at = ?,"
                        " data = ? WHERE dedup_key = ? AND (version = ? OR (? = 1 AND typeof(version) != 'integer'))",
                        (*values, incident.dedup_key, expected_version, expected_version),
                    )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write incident {incident.dedup_key}: {exc}", retryable=True) from exc
        if cursor.rowcount != 1:
            raise VersionConflictError(
                f"incident {incident.dedup_key} changed since it was read",
                current=self.get(incident.dedup_key),
                known=True,
            )

    def list_active(self) -> list[Incident]:
        return self._incidents(
            self._query_all("SELECT dedup_key, data FROM incidents WHERE is_open = 1 ORDER BY triggered_at, dedup_key")
        )

    def list_watched(self) -> list[Incident]:
        if not self._watched:  # a read-only file of the first schema: each closed incident says it itself
            closed = self._query_all(
                "SELECT dedup_key, data FROM incidents WHERE is_open = 0 ORDER BY triggered_at, dedup_key"
            )
            return [incident for incident in self._incidents(closed) if needs_watch(incident)]
        return self._incidents(
            self._query_all("SELECT dedup_key, data FROM incidents WHERE watched = 1 ORDER BY triggered_at, dedup_key")
        )

    def list_silences(self) -> list[Silence]:
        if not self._silenced:  # a read-only file of the first schema, which kept none
            return []
        rows = self._query_all("SELECT id, data FROM silences ORDER BY ends_at, id")
        found = (read_silence(data, f"silence {key!r} in {self.path}") for key, data in rows)
        return [silence for silence in found if silence is not None]

    def put_silence(self, silence: Silence) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO silences (id, ends_at, data) VALUES (?, ?, ?)",
                    (silence.id, format_time(silence.ends_at), json.dumps(silence.as_dict(), ensure_ascii=False)),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write silence {silence.id}: {exc}", retryable=True) from exc

    def list_all(self) -> list[Incident]:
        return self._incidents(
            self._query_all("SELECT dedup_key, data FROM incidents ORDER BY triggered_at, dedup_key")
        )

    def delete(self, dedup_key: str) -> None:
        with self._lock:
            try:
                self._db.execute("DELETE FROM incidents WHERE dedup_key = ?", (dedup_key,))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot delete incident {dedup_key}: {exc}", retryable=True) from exc

    def clear(self) -> None:
        with self._lock:
            try:
                self._db.execute("DELETE FROM incidents")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot clear the incident store {self.path}: {exc}", retryable=True) from exc

    def ping(self) -> None:
        self._query_one("SELECT count(*) FROM incidents", ())

    def close(self) -> None:
        self._db.close()

    def _incident(self, dedup_key: str, data: str) -> Incident:
        try:
            record = json.loads(data)
            if not isinstance(record, dict):
                raise TypeError(f"a JSON {type(record).__name__}, not an object")
            # The row's key is its column: data without it, or naming another, must not hide the row
            # (or send its writes to another key, where none matches).
            return from_record({**record, "dedup_key": dedup_key})
        except (TypeError, ValueError, KeyError, RecursionError) as exc:  # written by hand, or by something else
            raise StoreError(
                f"the row {dedup_key[:256]!r} in {self.path} is not an incident the bridge can read "
                f"({type(exc).__name__}: {truncate(str(exc), 256)})",
                retryable=True,
            ) from None

    def _incidents(self, rows: list[tuple[str, ...]]) -> list[Incident]:
        """The incidents the rows hold; a row that holds none is skipped with a warning (one foreign row
        must not hide every incident from a listing, a reconciliation or ``stats``)."""
        incidents: list[Incident] = []
        for dedup_key, data in rows:
            try:
                incidents.append(self._incident(dedup_key, data))
            except StoreError as exc:
                logger.warning("skipped: %s", exc)
        return incidents

    def _query_one(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            try:
                row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the incident store {self.path}: {exc}", retryable=True) from exc
        return row

    def _query_all(self, sql: str) -> list[tuple[str, ...]]:
        with self._lock:
            try:
                rows: list[tuple[str, ...]] = self._db.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the incident store {self.path}: {exc}", retryable=True) from exc
        return rows


def _journal(db: sqlite3.Connection, mode: str, timeout: float) -> None:
    """Set the journal mode, waiting up to ``timeout`` seconds for another connection's lock. SQLite answers
    a mode change that meets another writer "database is locked" at once, without its busy handler (to
    break a deadlock): of two commands started together on a new file, one failed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute(f"PRAGMA journal_mode={mode}")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(incidents)")}


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns an older state file lacks (``_MIGRATIONS``) and fill them from each row's data.

    In one write transaction, the columns looked at again inside it: two processes opening the same old
    file must not both add a column. A column added as its default alone said "not watched" of every
    closed incident with an unfinished delivery, which the scheduled run then never finished."""
    if all(column in _columns(db) for column, _ in _MIGRATIONS):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        present = _columns(db)
        for column, statement in _MIGRATIONS:
            if column not in present:
                db.execute(statement)
        if "watched" not in present:
            _fill_watched(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _fill_watched(db: sqlite3.Connection) -> None:
    """Mark the closed incidents the scheduled run must see (``needs_watch``); a row that cannot be read
    is left as it is (reading it warns later, where it is used)."""
    for dedup_key, data in db.execute("SELECT dedup_key, data FROM incidents WHERE is_open = 0").fetchall():
        try:
            incident = from_record({**json.loads(data), "dedup_key": dedup_key})
        except (TypeError, ValueError, KeyError, RecursionError):
            continue
        if needs_watch(incident):
            db.execute("UPDATE incidents SET watched = 1 WHERE dedup_key = ?", (dedup_key,))


def _read_only(path: Path) -> bool:
    """An existing file this process cannot write, or whose folder cannot take the ``-wal`` and ``-shm``
    files SQLite keeps beside it: switching it to WAL or running the schema script would fail."""
    return path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _connect_as_it_is(path: str, timeout: float) -> sqlite3.Connection:
    """A file this process could write, opened to be read only: no WAL switch, no schema script, no
    migration, and SQLite refuses every write (``query_only``). Unlike a read-only connection, it leaves
    no ``-wal`` and ``-shm`` files behind when it closes."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA query_only = ON")
    return db


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """``path`` opened for reading only, its schema as it is (no WAL switch, no schema script, no
    migration). A file in WAL mode needs a ``-shm`` index beside it: when there is none and its folder
    cannot take one, no writer can be at work either (a writer needs it), so it is read as immutable."""
    uri = path.resolve().as_uri() + "?mode=ro"

    def connect(address: str) -> sqlite3.Connection:
        return sqlite3.connect(address, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)

    db = connect(uri)
    try:
        db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.OperationalError:
        db.close()
        db = connect(uri + "&immutable=1")
    return db
