"""A scratch layer over a store: reads see the store and what was written since, writes stay in memory.

Dry runs plan on it: within one run every decision sees the ones before it (a dry replay of an ALARM
then its OK resolves), and afterwards the real store is exactly as it was, so a later ``--send`` run
behaves as if the dry run never happened. Writes keep the store's guarantees (conditional on the
version read, against the combined view).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

from pagerduty_bridge.errors import VersionConflictError
from pagerduty_bridge.models import Incident
from pagerduty_bridge.silences import Silence
from pagerduty_bridge.store import IncidentStore, bounded, needs_watch, next_version

_DELETED = None


class OverlayStore:
    """``base`` seen through an in-memory layer of this run's writes."""

    def __init__(self, base: IncidentStore) -> None:
        self.base = base
        self._layer: dict[str, Incident | None] = {}
        self._cleared = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OverlayStore({self.base!r})"

    def get(self, dedup_key: str) -> Incident | None:
        with self._lock:
            if dedup_key in self._layer:
                return self._layer[dedup_key]
            if self._cleared:
                return None
        return self.base.get(dedup_key)

    def put(self, incident: Incident, *, expected_version: int | None) -> None:
        current = self.get(incident.dedup_key)
        found = current.version if current is not None else None
        if found != expected_version:
            raise VersionConflictError(
                f"incident {incident.dedup_key} changed since it was read", current=current, known=True
            )
        with self._lock:
            self._layer[incident.dedup_key] = bounded(incident)

    def _merged(self, listed: list[Incident]) -> dict[str, Incident]:
        merged = {} if self._cleared else {incident.dedup_key: incident for incident in listed}
        for key, incident in self._layer.items():
            if incident is None:
                merged.pop(key, None)
            else:
                merged[key] = incident
        return merged

    def list_active(self) -> list[Incident]:
        merged = self._merged(self.base.list_active() if not self._cleared else [])
        return _ordered(i for i in merged.values() if i.is_open)

    def list_watched(self) -> list[Incident]:
        merged = self._merged(self.base.list_watched() if not self._cleared else [])
        return _ordered(i for i in merged.values() if needs_watch(i))

    def list_all(self) -> list[Incident]:
        return _ordered(self._merged(self.base.list_all() if not self._cleared else []).values())

    def delete(self, dedup_key: str) -> None:
        with self._lock:
            self._layer[dedup_key] = _DELETED

    def clear(self) -> None:
        with self._lock:
            self._layer.clear()
            self._cleared = True

    def ping(self) -> None:
        self.base.ping()

    def list_silences(self) -> list[Silence]:
        return self.base.list_silences()

    def put_silence(self, silence: Silence) -> None:
        self.base.put_silence(silence)

    def written(self) -> list[Incident]:
        """What this run wrote (to keep a dry run's state on purpose: ``replay --record``)."""
        return [incident for incident in self._layer.values() if incident is not None]

    def record(self) -> None:
        """Write this run's outcome into the real store, each incident conditional on what it holds."""
        for incident in self.written():
            current = self.base.get(incident.dedup_key)
            expected = current.version if current is not None else None
            self.base.put(replace(incident, version=next_version(expected)), expected_version=expected)


def _ordered(incidents: Iterable[Incident]) -> list[Incident]:
    return sorted(incidents, key=lambda i: (i.triggered_at is None, i.triggered_at or i.updated_at, i.dedup_key))
