"""Where incidents are kept: one protocol, two implementations sharing one contract test suite.

- ``DynamoDBIncidentStore`` (the Lambda): conditional writes, a sparse index for active incidents, TTL.
- ``SQLiteIncidentStore`` (the CLI's embedded default, a file; ``":memory:"`` for the library default).

Every write is conditional on the version that was read (``expected_version``; ``None`` means "must
not exist yet"), so two concurrent invocations can never both win; the loser gets
``VersionConflictError`` and decides again on fresh data. Versions count up from a random first one
(``next_version``), so an incident made anew never repeats the versions of one of its key before it.

Every stored text is bounded (``TEXT_LIMITS``): whatever an alarm is called or PagerDuty answers, an
item fits DynamoDB's 400 KB and the page still goes out.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, Final, Protocol

from pagerduty_bridge.constants import MAX_ROUTING_KEY_ALIAS_LENGTH
from pagerduty_bridge.models import (
    AlarmState,
    AlertSeverity,
    EventAction,
    Incident,
    IncidentStatus,
    Origin,
    Resolution,
)
from pagerduty_bridge.safejson import clean
from pagerduty_bridge.silences import Silence
from pagerduty_bridge.text import truncate
from pagerduty_bridge.timeutil import epoch_seconds, shifted, utc

logger = logging.getLogger(__name__)

TEXT_LIMITS: Final[dict[str, int]] = {
    "alarm_name": 1024,
    "summary": 1024,
    "resolution_note": 1024,
    "last_error": 1024,
    "last_reason": 64,
    "alarm_arn": 2048,
    "acknowledged_by": 256,
    "resolved_by": 256,
    "pd_incident_id": 64,
    "pd_html_url": 2048,
    "pd_status": 32,
    "routing_key_alias": MAX_ROUTING_KEY_ALIAS_LENGTH,
    "routing_key_digest": 64,
    "silence_id": 64,
}
"""The most characters kept of each free-text field (a summary is what PagerDuty keeps of one; a real
alarm name is at most 255 characters). With the bounded detail map and event id list below, an
incident item stays under 32 KB, far from DynamoDB's 400 KB."""
MAX_DETAILS: Final = 16
"""PagerDuty-side details kept (reassigned, escalated, priority …), each value at most 256 characters."""
MAX_WEBHOOK_EVENT_IDS: Final = 20
"""The newest webhook event ids kept, to recognise a redelivery."""

FIRST_VERSION_SPAN: Final = (1 << 32, 1 << 52)
"""Where a new incident's first version is drawn: far above 1 (an item written without a version reads as
version 1) and below 2**53 (a version read by JavaScript, in JSON, stays exact)."""


MAX_VERSION: Final = 1 << 53
"""Versions stay below it (``next_version``): exact in JavaScript and JSON, far inside SQLite's integers."""


def next_version(expected: int | None) -> int:
    """The version a write conditional on ``expected`` stores: the next one, or a random first one for an
    incident made anew. Counting from 1 again after ``incidents clear`` (or an expired item) let a warm
    container's remembered incident match the new one's version exactly, and a write planned on the
    old one pass its condition. A version at the top of the span (written by hand or another tool) is
    followed by a random first one too: one more would leave the integers SQLite holds at 2**63, and
    every write of the incident would fail."""
    if expected is not None and expected + 1 < MAX_VERSION:
        return expected + 1
    low, high = FIRST_VERSION_SPAN
    return low + secrets.randbelow(high - low)


_ENUMS: Final[dict[str, type[Enum]]] = {
    "status": IncidentStatus,
    "severity": AlertSeverity,
    "origin": Origin,
    "alarm_state": AlarmState,
    "resolution": Resolution,
    "pending_action": EventAction,
}
_TIMES: Final = frozenset(
    f.name for f in dataclasses.fields(Incident) if "datetime" in str(f.type) and f.name != "dedup_key"
)
_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Incident))


class IncidentStore(Protocol):
    def get(self, dedup_key: str) -> Incident | None: ...

    def put(self, incident: Incident, *, expected_version: int | None) -> None: ...

    def list_active(self) -> list[Incident]: ...

    def list_watched(self) -> list[Incident]:
        """Closed incidents the scheduled run must look at again (``needs_watch``)."""
        ...

    def list_all(self) -> list[Incident]: ...

    def delete(self, dedup_key: str) -> None: ...

    def clear(self) -> None: ...

    def ping(self) -> None: ...

    def list_silences(self) -> list[Silence]:
        """Every silence kept (active, future and recently ended)."""
        ...

    def put_silence(self, silence: Silence) -> None:
        """Add or replace a silence (they change only by hand: last write wins)."""
        ...


def format_time(value: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds, ``Z``): string order is time order, in SQL and DynamoDB."""
    if value.tzinfo is not UTC:  # every time the bridge makes is in UTC already
        value = utc(value)
    return _format_utc(value)


@lru_cache(maxsize=64)
def _format_utc(value: datetime) -> str:
    """A write formats the same few instants again and again (an incident's times, in each of its writes);
    two UTC times are equal exactly when they are the same instant, so a cached text is that instant's."""
    return value.isoformat(timespec="microseconds")[:26] + "Z"  # without the "+00:00"


def parse_stored_time(value: str) -> datetime:
    """A stored time; one written with an offset (by hand) is that instant, one without is UTC."""
    parsed = datetime.fromisoformat(value.removesuffix("Z"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def bounded(incident: Incident) -> Incident:
    """``incident`` with every text field cut to its limit (``TEXT_LIMITS``), and a lone surrogate in one
    (from a library caller: no UTF-8 can carry it, so no store can keep it) made U+FFFD."""
    changes: dict[str, Any] = {
        name: truncate(clean(value), limit)
        for name, limit in TEXT_LIMITS.items()
        if isinstance(value := getattr(incident, name), str) and (len(value) > limit or not value.isascii())
    }
    if len(incident.pd_details) > MAX_DETAILS or any(len(v) > 256 for v in incident.pd_details.values()):
        items = list(incident.pd_details.items())[-MAX_DETAILS:]
        changes["pd_details"] = {k[:64]: truncate(v, 256) for k, v in items}
    if len(incident.webhook_event_ids) > MAX_WEBHOOK_EVENT_IDS:
        changes["webhook_event_ids"] = incident.webhook_event_ids[-MAX_WEBHOOK_EVENT_IDS:]
    return dataclasses.replace(incident, **changes) if changes else incident


def to_record(incident: Incident, *, compact: bool = False) -> dict[str, Any]:
    """The incident as flat JSON-compatible values (times as sortable strings, enums as values).

    ``compact`` leaves out every field at its default (``from_record`` restores it): what the stores
    keep, so an item carries only what it says — fewer attributes to send, validate and store.
    """
    record: dict[str, Any] = {}
    for name, default, droppable, convert in _SHAPE:
        value = getattr(incident, name)
        if value is None or (compact and droppable and value == default):
            continue
        if convert is not None:
            value = convert(value)
            if value is _EMPTY:
                continue
        record[name] = value
    return record


def _default_of(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return dataclasses.MISSING


_EMPTY: Final = object()
"""What an empty collection converts to: it is left out of a record (``from_record`` restores it)."""


def _enum_value(value: Enum) -> Any:
    return value.value


def _list_or_empty(value: tuple[str, ...]) -> Any:
    return list(value) if value else _EMPTY


def _dict_or_empty(value: dict[str, str]) -> Any:
    return value or _EMPTY


def _converter(name: str) -> Callable[[Any], Any] | None:
    """How a field's value is stored, decided once from its declared kind (not probed on every write)."""
    if name in _TIMES:
        return format_time
    if name in _ENUMS:
        return _enum_value
    if name == "webhook_event_ids":
        return _list_or_empty
    if name == "pd_details":
        return _dict_or_empty
    return None


_ALWAYS_KEPT: Final = frozenset({"dedup_key", "alarm_name", "status", "updated_at", "version"})
_SHAPE: Final = tuple(
    (spec.name, _default_of(spec), spec.name not in _ALWAYS_KEPT, _converter(spec.name))
    for spec in dataclasses.fields(Incident)
)
"""Each field's name, default, whether a compact record may leave it out at its default, and how its
value is stored."""


def from_record(record: dict[str, Any]) -> Incident:
    """An incident from its stored record (unknown attributes ignored, old records defaulted).

    A value that cannot be read (an enum value of a newer version, written before a rollback or by
    hand; a time that is no time; a number holding text) reads as absent, with a warning naming the
    item and the field: refusing the whole item made every notification of its alarm fail for good.
    An origin that cannot be read reads as a page made by hand (left alone by reconciliation, which
    would resolve it for want of an alarm of its name). A status that cannot be read reads as open
    (``UNKNOWN_STATUS``): the notification's own action is sent, which is harmless whatever PagerDuty
    holds, and the next write replaces the item, conditional on its version. Only an item without a
    readable dedup key is refused (``ValueError``).
    """
    key = record.get("dedup_key")
    if not isinstance(key, str) or not key:
        raise ValueError("the item has no dedup_key string")
    values: dict[str, Any] = {}
    for name, value in record.items():
        if name not in _FIELDS or value is None:
            continue
        try:
            values[name] = _read_field(name, value)
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            if name == "origin":  # not an alarm's (the default): reconciliation must not resolve it as gone
                values[name] = Origin.MANUAL
            logger.warning(
                "incident %r: its %s %s cannot be read (%s): read as %s",
                truncate(key, 256),
                name,
                truncate(repr(value), 64),
                truncate(str(exc), 128),
                values.get(name, "absent"),
            )
    if "origin" not in values and values.get("alarm_name") == "(message on the alarm topic)":
        values["origin"] = Origin.MESSAGE  # records written before origins were kept
    return Incident(**_completed(key, values))


UNKNOWN_STATUS: Final = IncidentStatus.TRIGGERED
"""What a status that cannot be read reads as: open, so an OK resolves it and an ALARM pages (a trigger
of an alert PagerDuty holds open only adds to it; a resolve of a resolved one changes nothing)."""
_STRINGS: Final = frozenset(
    f.name for f in dataclasses.fields(Incident) if str(f.type).startswith("str") and f.name != "dedup_key"
) | {"dedup_key"}


def _read_field(name: str, value: Any) -> Any:
    """One stored value as its field's kind; raises when it is not one."""
    if name in _TIMES:
        return _time(value)
    if name in _ENUMS:
        return _ENUMS[name](value)
    if name in _STRINGS:
        return _string(value)
    reader = _READERS.get(name)
    return value if reader is None else reader(value)


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__}, not a time string")
    return parse_stored_time(value)


def _string(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"a {type(value).__name__}, not a string")
    return str(value)


def _event_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple | set | frozenset):
        raise TypeError(f"a {type(value).__name__}, not a list")
    return tuple(str(v) for v in value)


def _details(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"a {type(value).__name__}, not a map")
    return {str(k): str(v) for k, v in value.items()}


def _integer(value: Any) -> int:
    """A stored whole number (a DynamoDB number reads as ``Decimal``); text, booleans and fractions are none."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"a {type(value).__name__}, not a number")
    number = Decimal(value)
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{value} is not a whole number")
    if not 0 <= number < 1 << 63:  # one more would not fit a DynamoDB number's 38 digits, nor SQLite's
        raise ValueError(f"{value} is out of range")
    return int(number)


_READERS: Final[dict[str, Callable[[Any], Any]]] = {
    "webhook_event_ids": _event_ids,
    "pd_details": _details,
    "version": _integer,
    "pd_incident_number": _integer,
}


def _completed(key: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with what an incident cannot be without, where it could not be read."""
    if "status" not in values:
        logger.warning("incident %r: no status could be read: read as %s", truncate(key, 256), UNKNOWN_STATUS.value)
        values["status"] = UNKNOWN_STATUS
    values.setdefault("alarm_name", key)
    if "updated_at" not in values:
        known = [values[name] for name in ("state_changed_at", "triggered_at", "resolved_at") if name in values]
        values["updated_at"] = max(known) if known else datetime(1970, 1, 1, tzinfo=UTC)
    return values


def needs_watch(incident: Incident) -> bool:
    """A closed incident the scheduled run must see: a request whose outcome is unknown may still
    land, a delivery never finished (the run's own resolve that PagerDuty refused has no notification
    to finish it), or a silenced alarm is still in ALARM (it pages once its silence is over) — or in
    INSUFFICIENT_DATA: a silence held only a page, so missing data was set to page then."""
    if incident.is_open:
        return False
    if incident.unconfirmed_until is not None or incident.pending_action is not None:
        return True
    return incident.last_reason == "silenced" and incident.alarm_state in (
        AlarmState.ALARM,
        AlarmState.INSUFFICIENT_DATA,
    )


def expiry_epoch(incident: Incident, retention: timedelta) -> int | None:
    """When a resolved incident may be forgotten (epoch seconds, the TTL attribute); open, pending or
    watched ones never."""
    if incident.is_open or incident.pending_action is not None or needs_watch(incident):
        return None
    return epoch_seconds(shifted(incident.resolved_at or incident.updated_at, retention))
