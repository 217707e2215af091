"""Times from outside: read by functions that never raise, and believed only as far as their receipt.

Every envelope carries times a hostile or broken sender can write as it likes: year 1 at a positive
offset (no UTC equivalent), year 9999 at a negative one, Unicode digits that ``str.isdigit()`` accepts
and ``int()`` or ``fromisoformat`` treat their own way, text that is no time at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerduty_bridge.store import format_time
from pagerduty_bridge.timeutil import (
    EARLIEST,
    LATEST,
    MAX_CLOCK_SKEW,
    believable,
    epoch_seconds,
    parse_epoch_millis,
    parse_time,
    receipt_time,
    shifted,
)

NOW = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
ANY_DATETIME = st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=st.one_of(st.none(), OFFSETS))
"""Every ``datetime`` there is, naive or at any offset, including those with no UTC equivalent."""


def assert_utc_or_none(value: datetime | None) -> None:
    assert value is None or value.utcoffset() == timedelta(0)


# --- parse_time ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-02-12T15:45:24.006+0000", datetime(2019, 2, 12, 15, 45, 24, 6000, tzinfo=UTC)),
        ("2025-01-14T14:30:00Z", NOW),
        ("2025-01-14T14:30:00.000Z", NOW),
        ("2025-01-14T15:30:00+01:00", NOW),
        ("2025-01-14T14:30:00", NOW),
        (" 2025-01-14T14:30:00Z ", NOW),
        ("9999-12-31T23:59:59.999999+00:00", LATEST),
        ("0001-01-01T00:00:00-00:00", EARLIEST),
        ("0001-01-01T00:00:00-01:00", datetime(1, 1, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_times_in_every_form_senders_use_are_read_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # before datetime.min once in UTC
        "9999-12-31T23:59:59-01:00",  # after datetime.max once in UTC
        "9999-12-31T23:59:59.999-2359",
        "10000-01-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-01-14T24:00:01Z",
        "\u00b2",
        "\uff12\uff10\uff12\uff15-01-14T14:30:00Z",  # fullwidth digits: fromisoformat would take them
        "\u0662\u0660\u0662\u0665-01-14T14:30:00Z",  # Arabic-Indic digits
        "2025-01-14T14:30:00\u2212\u0030\u0031:00",
        "",
        "   ",
        "yesterday",
        "1736867400100",
        "2025-01-14T14:30:00+25:00",
        None,
        1736867400,
        1.5,
        True,
        [],
        {},
        b"2025-01-14T14:30:00Z",
    ],
)
def test_what_is_no_time_in_range_is_none(value: object) -> None:
    assert parse_time(value) is None


@given(st.text())
def test_parse_time_never_raises_on_any_text(text: str) -> None:
    assert_utc_or_none(parse_time(text))


@given(st.from_regex(r"\A[0-9\uff10-\uff19\u00b2]{1,5}-[0-9]{1,2}-[0-9]{1,2}T[0-9:.]{0,15}([+-][0-9:]{0,6}|Z)?\Z"))
def test_parse_time_never_raises_on_text_that_looks_like_a_time(text: str) -> None:
    assert_utc_or_none(parse_time(text))


@given(ANY_DATETIME)
def test_every_datetime_written_out_is_read_back_as_its_instant_or_none(value: datetime) -> None:
    parsed = parse_time(value.isoformat())
    if value.tzinfo is None:
        assert parsed == value.replace(tzinfo=UTC)
        return
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        assert parsed is None  # no UTC equivalent: no time at all, never an exception
    else:
        assert parsed == instant


# --- parse_epoch_millis ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1736865000000", NOW),
        (1736865000000, NOW),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("253402300799999", datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_epoch_millis_are_read_in_utc(value: object, expected: datetime) -> None:
    assert parse_epoch_millis(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",
        "\uff11\uff12\uff13",
        "\u0661\u0662\u0663",
        "253402300800000",
        "9" * 400,
        "-1",
        -1,
        "1.5",
        "1e3",
        "",
        " 1",
        True,
        None,
        1.0,
        [],
    ],
)
def test_what_is_no_epoch_millis_in_range_is_none(value: object) -> None:
    assert parse_epoch_millis(value) is None


@given(st.text() | st.integers() | st.floats() | st.none() | st.booleans())
def test_parse_epoch_millis_never_raises(value: object) -> None:
    assert_utc_or_none(parse_epoch_millis(value))


# --- arithmetic that cannot overflow ------------------------------------------------------------------------


@given(
    st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta.min, max_value=timedelta.max),
)
def test_shifted_saturates_at_the_ends_of_time(value: datetime, delta: timedelta) -> None:
    result = shifted(value, delta)
    assert EARLIEST <= result <= LATEST
    assert result >= value if delta >= timedelta(0) else result <= value


@given(st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=st.just(UTC)))
def test_epoch_seconds_never_raises(value: datetime) -> None:
    seconds = epoch_seconds(value)
    assert seconds >= 0 or value.year < 1970


def test_epoch_seconds_at_the_ends_of_time() -> None:
    assert epoch_seconds(LATEST) == int(LATEST.timestamp())
    assert epoch_seconds(EARLIEST) < 0 or epoch_seconds(EARLIEST) == 0


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set far from UTC (Lambda's is UTC; a laptop's seldom is)."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_not_utc")
def test_a_naive_time_is_written_as_utc_whatever_the_local_time_zone() -> None:
    naive = NOW.replace(tzinfo=None)
    assert format_time(naive) == format_time(NOW) == "2025-01-14T14:30:00.000000Z"
    assert epoch_seconds(naive) == epoch_seconds(NOW) == int((NOW - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())


# --- believing a state-change time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stated", "believed"),
    [
        (NOW - timedelta(days=365), NOW - timedelta(days=365)),
        (NOW, NOW),
        (NOW + MAX_CLOCK_SKEW, NOW + MAX_CLOCK_SKEW),
        (NOW + MAX_CLOCK_SKEW + timedelta(microseconds=1), NOW),
        (datetime(2999, 1, 1, tzinfo=UTC), NOW),
        (LATEST, NOW),
    ],
    ids=["a-year-ago", "at-receipt", "at-the-skew", "past-the-skew", "year-2999", "end-of-time"],
)
def test_a_state_change_time_is_believed_up_to_the_clock_skew_past_its_receipt(
    stated: datetime, believed: datetime
) -> None:
    assert believable(stated, NOW) == believed


def test_believable_near_the_end_of_time_cannot_overflow() -> None:
    assert believable(LATEST, LATEST) == LATEST
    assert believable(LATEST, LATEST - timedelta(minutes=1)) == LATEST


@given(
    st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=st.just(UTC)),
    st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=st.just(UTC)),
)
def test_a_believed_time_is_never_later_than_its_receipt_allows(stated: datetime, received: datetime) -> None:
    believed = believable(stated, received)
    assert believed <= max(received, min(stated, shifted(received, MAX_CLOCK_SKEW)))
    assert believed in (stated, received)


@pytest.mark.parametrize(
    ("envelope", "received"),
    [
        (None, NOW),
        (NOW - timedelta(seconds=1), NOW - timedelta(seconds=1)),
        (NOW + MAX_CLOCK_SKEW, NOW + MAX_CLOCK_SKEW),
        (NOW + MAX_CLOCK_SKEW + timedelta(seconds=1), NOW),
        (LATEST, NOW),
    ],
    ids=["no-envelope-time", "a-moment-ago", "at-the-skew", "past-the-skew", "end-of-time"],
)
def test_an_envelope_time_ahead_of_the_clock_is_not_the_receipt_time(
    envelope: datetime | None, received: datetime
) -> None:
    assert receipt_time(envelope, NOW) == received


FAR_ZONES = [None, UTC, timezone(timedelta(hours=5, minutes=45)), timezone(timedelta(hours=-8))]


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(FAR_ZONES))
)
def test_a_stored_time_is_fixed_width_utc_and_sorts_as_the_instants_do(value: datetime) -> None:
    text = format_time(value)
    instant = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    assert len(text) == 27 and text.endswith("Z")
    assert datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC) == instant
    assert (text < format_time(NOW)) == (instant < NOW)
