"""Time values from outside, read by one function that never raises, and time arithmetic that cannot
overflow.

CloudWatch writes ``2019-02-12T15:45:24.006+0000``; hand-made events use ``Z``; EventBridge, SNS and
SQS each stamp their envelope their own way (SQS in epoch milliseconds). A hostile or broken sender can
write anything: year 1 with a positive offset (which has no UTC equivalent), year 9999, Unicode digits
that ``str.isdigit()`` accepts and ``int()`` does not. ``parse_time`` turns every such value into a
datetime in UTC or ``None``; nothing here raises on a value it was given.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far ahead of its receipt a state-change time may be and still be believed. CloudWatch stamps a
state change before it publishes it, so a real one is never later than its envelope; five minutes
allows for clocks that disagree. A later time is replaced by the receipt time (see ``believable``)."""
EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
LATEST: Final = datetime.max.replace(tzinfo=UTC)
_MAX_EPOCH_MILLIS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z in epoch milliseconds: the last instant ``datetime`` can hold."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LEAP_SECOND: Final = re.compile(r"(?<=[Tt ])(?P<minute>[0-9]{2}:[0-9]{2}):60(?:[.,][0-9]+)?(?=[^0-9]|$)")
"""The time of day of a leap second, its fraction included (which the last instant of the minute replaces)."""


def utc(value: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are taken to be UTC already. ``OverflowError`` when the
    instant has no UTC equivalent (year 1 with a positive offset): use ``parse_time`` for outside values."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time (any offset, ``Z`` or ``z``, ``+0000``, a leap second) in UTC, or ``None`` for
    anything else.

    Never raises: not a string, not ISO 8601, out of ``datetime``'s range once in UTC, non-ASCII digits.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or not text.isascii():
        return None
    if text.endswith("z") and len(text) > 1:  # RFC 3339 allows a lower-case "z" (and "t", which Python takes)
        text = text[:-1] + "Z"
    try:
        return utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        return _leap_second(text)


def _leap_second(text: str) -> datetime | None:
    """A leap second (``23:59:60``, which RFC 3339 allows and ``datetime`` cannot hold) as the last
    instant of its minute: after every earlier time, before the next minute. ``None`` for anything else."""
    leap = _LEAP_SECOND.search(text)
    if leap is None:
        return None
    try:
        minute = datetime.fromisoformat(text[: leap.start()] + leap.group("minute") + ":59" + text[leap.end() :])
        return utc(minute.replace(microsecond=999_999))
    except (ValueError, OverflowError):
        return None


def parse_epoch_millis(value: object) -> datetime | None:
    """Epoch milliseconds (SQS's ``SentTimestamp``, a string of ASCII digits) in UTC, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        millis = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        millis = int(value)
    else:
        return None
    if not 0 <= millis <= _MAX_EPOCH_MILLIS:
        return None
    return _EPOCH + timedelta(milliseconds=millis)  # exact: a float of seconds loses microseconds


def shifted(value: datetime, delta: timedelta) -> datetime:
    """``value + delta``, saturating at ``datetime``'s range instead of raising ``OverflowError``."""
    try:
        return value + delta
    except OverflowError:
        return LATEST if delta > timedelta(0) else EARLIEST


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since the epoch (a DynamoDB TTL value), saturating at the representable range; a
    naive ``value`` is UTC, as everywhere here (``datetime.timestamp`` would take it as local time)."""
    try:
        return int(utc(value).timestamp())
    except (OverflowError, ValueError, OSError):
        return int(LATEST.timestamp()) if value.year > 1970 else 0


def receipt_time(envelope_time: datetime | None, now: datetime) -> datetime:
    """When the bridge may take a notification to have been sent: its envelope's time, unless that is
    itself implausibly far ahead of this clock (then the clock)."""
    if envelope_time is None or envelope_time > shifted(now, MAX_CLOCK_SKEW):
        return now
    return envelope_time


def believable(state_change_time: datetime, received: datetime) -> datetime:
    """A state-change time more than ``MAX_CLOCK_SKEW`` ahead of its receipt is not believed: it
    becomes the receipt time, so a forged far-future stamp cannot make every later notification stale."""
    if state_change_time > shifted(received, MAX_CLOCK_SKEW):
        return received
    return state_change_time
