"""JSON from outside, made safe to work with.

Python's decoder accepts what later breaks the bridge: ``"\\ud800"`` escapes decode to lone surrogates
that cannot be encoded (so nothing holding them can be hashed, stored or sent), ``NaN`` and
``Infinity`` decode to floats PagerDuty rejects, and absurd nesting raises ``RecursionError``. Every
untrusted document goes through here once, so the rest of the code never meets them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""What no UTF-8 can carry: each becomes one U+FFFD (a pair forms one character before it gets here)."""

# A "\\uD800"-style escape (a surrogate) or a non-finite number token: only then is cleaning needed.
_SUSPECT = re.compile(r"\\u[dD][89a-fA-F]|NaN|Infinity")


BYTE_ORDER_MARK = "\ufeff"
"""What a file saved by some editors begins with; JSON parsers may ignore it (RFC 8259, section 8.1),
and Python's refuses it: a hand-published alarm would read as text."""


def loads(text: str) -> Any:
    """``json.loads`` for untrusted text; ``ValueError`` for anything that is not sane JSON."""
    text = text.removeprefix(BYTE_ORDER_MARK)
    try:
        decoded = json.loads(text)
        if text.isascii() and not _SUSPECT.search(text):
            return decoded  # the common case: nothing in it can need cleaning
        return clean(decoded)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def sanitized(value: Any) -> Any:
    """``clean(value)``, skipping the walk when a fast C-level encode shows nothing needs it."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError):
        return clean(value)
    return value


def clean(value: Any) -> Any:
    """Lone surrogates become U+FFFD and non-finite numbers ``None``; ``RecursionError`` for absurd
    nesting. ASCII strings (nearly all of them) are passed through untouched."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        # A key that is no text stays as it is (a tuple made a list would be unhashable): ``not_json`` names it.
        return {(clean(k) if isinstance(k, str) else k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def not_json(value: Any, where: str = "") -> str | None:
    """What in ``value`` JSON cannot carry, named by its path under ``where`` (``details.ratio is NaN,
    not JSON``), or ``None`` when ``json.dumps(value, allow_nan=False)`` would succeed."""
    return _not_json(value, where, set())


def _not_json(value: Any, where: str, within: set[int]) -> str | None:
    if value is None or isinstance(value, str | int | bool):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where or 'the value'} is {_NON_FINITE[repr(value)]}, not JSON"
    if not isinstance(value, dict | list | tuple):
        shown = str(value) if len(str(value)) <= 40 else str(value)[:39] + "…"
        return f"{where or 'the value'} is a {type(value).__name__} ({shown}), not JSON"
    if id(value) in within:
        return f"{where} refers back to what contains it, not JSON"
    within.add(id(value))
    items = value.items() if isinstance(value, dict) else ((f"[{i}]", v) for i, v in enumerate(value))
    for key, item in items:
        if isinstance(value, dict) and not isinstance(key, str | int | float | bool | type(None)):
            return f"{where or 'the value'} has a key that is a {type(key).__name__}, not JSON"
        path = f"{where}{key}" if isinstance(value, list | tuple) else f"{where}.{key}" if where else str(key)
        problem = _not_json(item, path, within)
        if problem is not None:
            return problem
    within.discard(id(value))
    return None
