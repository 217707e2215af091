"""Where incidents are kept: one protocol, two implementations sharing one contract test suite.

- ``DynamoDBIncidentStore`` (the Lambda): conditional writes, a sparse index for active incidents, TTL.
- ``SQLiteIncidentStore`` (the CLI's embedded default, a file; ``":memory:"`` for the library default).

Every write is conditional on the version that was read (``expected_version``; ``None`` means "must
not exist yet"), so two concurrent invocations can never both win; the loser gets
``VersionConflictError`` and decides again on fresh data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pagerduty_bridge.models import Incident


class IncidentStore(Protocol):
    def get(self, dedup_key: str) -> Incident | None: ...

    def put(self, incident: Incident, *, expected_version: int | None) -> None: ...

    def list_active(self) -> list[Incident]: ...

    def list_all(self) -> list[Incident]: ...

    def delete(self, dedup_key: str) -> None: ...

    def clear(self) -> None: ...

    def ping(self) -> None: ...


def format_time(value: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds, ``Z``): string order is time order, in SQL and DynamoDB."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def to_record(incident: Incident) -> dict[str, Any]:
    """The incident as flat JSON-compatible values (times as sortable strings, enums as values)."""
    record: dict[str, Any] = {}
    for key, value in incident.model_dump(mode="python").items():
        if value is None:
            continue
        if isinstance(value, datetime):
            record[key] = format_time(value)
        else:
            record[key] = value.value if hasattr(value, "value") else value
    return record


def from_record(record: dict[str, Any]) -> Incident:
    return Incident.model_validate(record)


def expiry_epoch(incident: Incident, retention: timedelta) -> int | None:
    """When a resolved incident may be forgotten (epoch seconds, the TTL attribute); open ones never."""
    if incident.is_open or incident.pending_action is not None:
        return None
    return int(((incident.resolved_at or incident.updated_at) + retention).timestamp())
