"""Numbers and text bound for PagerDuty and for a terminal."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from pagerduty_bridge.text import fmt_number, number, printable, truncate


@given(st.none() | st.floats() | st.integers(min_value=-(10**400), max_value=10**400))
def test_every_number_becomes_json_pagerduty_accepts(value: float | None) -> None:
    shown = number(value)
    json.dumps(shown, allow_nan=False)  # NaN, Infinity or an overflow would raise here
    assert fmt_number(value) == ("?" if shown is None else f"{shown:g}")
    if shown is not None:
        assert shown == value


def test_whole_numbers_are_written_as_the_seed_writes_them() -> None:
    assert (number(95.0), number(0.5), number(float("nan")), number(10**400)) == (95, 0.5, None, None)
    assert (fmt_number(2.84e9), fmt_number(None), fmt_number(float("-inf"))) == ("2.84e+09", "?", "?")


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_truncated_text_fits_its_limit_and_says_it_was_cut(text: str, limit: int) -> None:
    cut = truncate(text, limit)
    assert len(cut) <= limit
    assert cut == text or cut.endswith("…")


@given(st.text())
def test_printable_text_holds_no_control_character(text: str) -> None:
    shown = printable(text)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029" for ch in shown)
