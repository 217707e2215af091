"""Silences: planned maintenance without a deploy — matching alarms are recorded, not paged.

A silence matches alarms by field globs (``alarm_name=payments-*``, ``namespace=AWS/RDS``,
``dimension.DBInstanceIdentifier=orders-*``, ``tag.team=payments`` …), holds from ``starts_at`` until
``ends_at`` (or until expired early), and says who made it and why. Silences live in the incident
store, so the Lambda sees a new one within ``CACHE_SECONDS`` with no deploy; DynamoDB's TTL removes
them a while after they end. A silenced ALARM is recorded (reason ``silenced``, the silence's id) and
not paged; its OK resolves nothing that was never opened; when the silence is over while the alarm is
still in ALARM, the next notification — or the next scheduled reconciliation — pages.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, Protocol

from pagerduty_bridge.errors import BridgeError
from pagerduty_bridge.models import AlarmNotification
from pagerduty_bridge.rule_model import all_dimensions, glob_matcher
from pagerduty_bridge.timeutil import parse_time

if TYPE_CHECKING:
    from pagerduty_bridge.notifications import Route

logger = logging.getLogger(__name__)

CACHE_SECONDS: Final = 5.0
"""How long a container reuses the silences it read: a new silence holds within five seconds."""
TTL_GRACE: Final = timedelta(days=7)
"""How long an ended silence stays readable (``silence list --all``) before DynamoDB's TTL removes it."""
FIELDS: Final = (
    "alarm_name",
    "namespace",
    "metric_name",
    "dedup_key",
    "kind",
    "region",
    "account",
    "routing_key",
    "severity",
    "rule",
)
"""What a silence may match on, besides ``dimension.NAME`` and ``tag.KEY``."""
_PREFIXED: Final = re.compile(r"^(dimension|tag)\.[^=\s]{1,255}$")
MAX_MATCHERS: Final = 16
MAX_COMMENT_LENGTH: Final = 1024
_glob: Final = lru_cache(maxsize=256)(glob_matcher)
"""Each matcher's glob compiled once, as an alert rule's (the Lambda asks on every alarm)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    id: str
    matchers: dict[str, str]
    """Field → glob; every one must match."""
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        """``active``, ``coming`` (it starts later) or ``ended`` (over, or expired early)."""
        if self.expired_at is not None or now >= self.ends_at:
            return "ended"
        return "active" if self.starts_at <= now else "coming"

    def matches(self, values: Mapping[str, str]) -> bool:
        return all(_glob(pattern)(values.get(name) or "") for name, pattern in self.matchers.items())

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": dict(self.matchers),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expired_at": self.expired_at.isoformat() if self.expired_at else None,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Silence:
        def time_of(name: str) -> datetime:
            value = parse_time(record.get(name))
            if value is None:
                raise ValueError(f"silence {record.get('id')!r}: {name} is not a time")
            return value

        return cls(
            id=str(record["id"]),
            matchers={str(k): str(v) for k, v in dict(record.get("matchers") or {}).items()},
            starts_at=time_of("starts_at"),
            ends_at=time_of("ends_at"),
            comment=str(record.get("comment") or ""),
            created_by=str(record.get("created_by") or ""),
            created_at=time_of("created_at"),
            expired_at=parse_time(record.get("expired_at")),
        )


def read_silence(data: object, where: str) -> Silence | None:
    """The silence a stored record holds (its JSON text, or the decoded object); ``None``, with a
    warning naming ``where``, when it holds none the bridge can use. Every notification reads the
    silences: an item edited by hand or written by another version must not fail them all, and one
    without matchers (or with a field no silence matches on) must not silence every alarm."""
    try:
        record = json.loads(data) if isinstance(data, str) else data
        if not isinstance(record, Mapping):
            raise ValueError("not a JSON object")
        silence = Silence.from_dict(record)
        check_matchers(silence.matchers)
    except (TypeError, ValueError, KeyError) as exc:
        logger.warning(
            "silence skipped: %s is not a silence the bridge can use (%s: %s)", where, type(exc).__name__, exc
        )
        return None
    return silence


def check_matchers(matchers: Mapping[str, str]) -> dict[str, str]:
    """The matchers when every field is one a silence may match on; else a ``ValueError`` naming it."""
    if not matchers:
        raise ValueError("a silence needs at least one --match FIELD=GLOB")
    if len(matchers) > MAX_MATCHERS:
        raise ValueError(f"a silence takes at most {MAX_MATCHERS} matchers")
    for name in matchers:
        if name not in FIELDS and not _PREFIXED.match(name):
            raise ValueError(f"cannot match on {name!r}: use one of {', '.join(FIELDS)}, dimension.NAME or tag.KEY")
    return dict(matchers)


def new_silence(
    matchers: Mapping[str, str], *, starts_at: datetime, ends_at: datetime, comment: str, created_by: str, now: datetime
) -> Silence:
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    if ends_at <= now:
        # A mistyped date: added, it would hold nothing, and the maintenance it was meant for would page.
        raise ValueError(f"a silence ending at {ends_at.isoformat()} is already over: check --starts, --for or --until")
    if not comment.strip():
        raise ValueError("a silence needs a --comment saying why")
    return Silence(
        id=uuid.uuid4().hex[:12],
        matchers=check_matchers(matchers),
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment[:MAX_COMMENT_LENGTH],
        created_by=created_by[:256],
        created_at=now,
    )


def expired(silence: Silence, now: datetime) -> Silence:
    return replace(silence, expired_at=now, ends_at=min(silence.ends_at, now))


def alarm_values(alarm: AlarmNotification, route: Route) -> dict[str, str]:
    """What a silence can match on for one alarm, after its rules (routing, severity, rule) applied."""
    values = {
        "alarm_name": alarm.alarm_name,
        "namespace": alarm.namespace or "",
        "metric_name": alarm.metric_name or "",
        "dedup_key": route.dedup_key,
        "kind": alarm.kind.value,
        "region": alarm.region_code or "",
        "account": alarm.account_id or "",
        "routing_key": route.resolved.routing_key,
        "severity": route.severity.value,
        "rule": route.resolved.rule or "",
    }
    values.update({f"dimension.{name}": value for name, value in all_dimensions(alarm).items()})
    values.update({f"tag.{key}": value for key, value in alarm.tags.items()})
    return values


class SilenceStore(Protocol):
    def list_silences(self) -> list[Silence]: ...


@dataclass
class SilenceCache:
    """The store's silences, read at most every ``CACHE_SECONDS`` (the Lambda asks on every alarm)."""

    store: SilenceStore
    max_age: float = CACHE_SECONDS
    monotonic: Callable[[], float] = time.monotonic
    _silences: list[Silence] = field(default_factory=list)
    _read_at: float | None = None

    def current(self) -> list[Silence]:
        """The silences, read again once ``max_age`` is over. A refresh that fails (the table throttling
        their Query) keeps the list last read, with a warning, and asks again at the next call: failing
        every alarm for it would hold back every page while the incidents' own writes go through."""
        now = self.monotonic()
        if self._read_at is None or now - self._read_at >= self.max_age:
            try:
                self._silences = self.store.list_silences()
            except BridgeError as exc:
                if self._read_at is None:
                    raise  # never read: nothing to stand in for them
                logger.warning("silences could not be read again; the ones read last hold: %s", exc)
                return self._silences
            self._read_at = now
        return self._silences

    def matching(self, alarm: AlarmNotification, route: Route, now: datetime) -> str | None:
        silences = [s for s in self.current() if s.active(now)]
        if not silences:
            return None
        values = alarm_values(alarm, route)
        # The one that holds longest: the scheduled run pages when the recorded silence is over, and it
        # cannot match the others again (it keeps no dimensions or tags), so a shorter one would page
        # while a longer one still covers the alarm.
        covering = [s for s in silences if s.matches(values)]
        return max(covering, key=lambda s: s.ends_at).id if covering else None

    def is_active(self, silence_id: str, now: datetime) -> bool:
        return any(s.id == silence_id and s.active(now) for s in self.current())

    def covering(self, known: Mapping[str, str], now: datetime) -> str | None:
        """The active silence ending last that covers an alarm of which only ``known`` is known: every
        matcher on a known field, and matching. One on any other field cannot be judged: it covers
        nothing here, so a page is never held back on a guess."""
        held = [s for s in self.current() if s.active(now) and set(s.matchers) <= set(known) and s.matches(known)]
        return max(held, key=lambda s: s.ends_at).id if held else None
