"""Text from outside, bounded for storage and made safe for a terminal."""

from __future__ import annotations

import math
import re
from typing import Final

TRUNCATION_MARK: Final = "…"

# C0 and C1 control characters (ESC, CR, BEL, CSI …), DEL, the Unicode line and paragraph separators,
# and the bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069, which reorder
# the text after them): a terminal or a page acts on them, so human output shows them escaped instead.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``…`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATION_MARK))] + TRUNCATION_MARK


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\r``, ``\\u202e`` …), so
    showing a hostile alarm name cannot move the cursor, recolour the terminal, overwrite a line or
    reverse the text that follows it."""
    pattern = _CONTROL if keep_newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def number(value: float | None) -> float | int | None:
    """Whole numbers as ``int`` (the seed shows ``"threshold": 95``), others unchanged; ``None`` when
    unknown or not finite: ``NaN`` and ``Infinity`` are not JSON, and PagerDuty refuses an event holding
    them (a ``--current nan`` given by hand, say)."""
    try:
        finite = value is not None and math.isfinite(value)
    except OverflowError:  # an integer beyond any float: no number PagerDuty would show either
        return None
    if not finite or value is None:
        return None
    return int(value) if float(value).is_integer() else value


def fmt_number(value: float | None) -> str:
    """A number as people write it (``95``, ``0.5``, ``2.84e+09``); ``?`` when unknown or not finite."""
    shown = number(value)
    return "?" if shown is None else f"{shown:g}"
