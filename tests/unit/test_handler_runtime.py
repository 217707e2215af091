"""The handler's container-long objects: built once, then kept out of the garbage collector's scans."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerduty_bridge import handler


def tracked(*objects: object) -> list[bool]:
    """Whether each object is in one of the collector's generations (frozen ones are not)."""
    ids = {id(o) for o in gc.get_objects()}
    return [id(o) in ids for o in objects]


def test_what_import_built_is_kept_out_of_collections() -> None:
    assert tracked(handler.logger, handler.metrics, handler.lambda_handler) == [False, False, False]


def test_the_runtime_is_built_once_and_kept_out_of_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENT_TABLE_NAME", "incidents")
    monkeypatch.setattr(handler, "_runtime", None)
    runtime = handler.get_runtime()
    assert handler.get_runtime() is runtime
    assert tracked(runtime, runtime.store, runtime.settings) == [False, False, False]
    assert tracked(object.__new__(type("Fresh", (), {}))) == [True], "objects made later are collected as usual"


def powertools_default(message: str) -> Any:
    """What Powertools does with a log message by default: JSON if it parses, else the text."""
    try:
        return json.loads(message)
    except ValueError:
        return message


@given(st.one_of(st.text(), st.from_regex(r"\s*(-?\d+(\.\d+)?|true|false|null|NaN|-?Infinity|\"[a-z]*\")\s*")))
def test_log_messages_read_as_json_exactly_as_powertools_would(message: str) -> None:
    expected, got = powertools_default(message), _lenient(message)
    assert got == expected or (got != got and expected != expected)  # NaN is NaN


def _lenient(message: str) -> Any:
    """``log_message_json`` as Powertools calls it."""
    try:
        return handler.log_message_json(message)
    except ValueError:
        return message  # Powertools catches the error and keeps the text


@pytest.mark.parametrize(
    ("message", "printed"),
    [
        ("notification handled", "notification handled"),
        ('{"alarm": "cpu"}', {"alarm": "cpu"}),
        (" [1, 2] ", [1, 2]),
        ("null", None),
        ("nullish words", "nullish words"),
        ("12 alarms", "12 alarms"),
    ],
)
def test_our_messages_stay_text_and_json_messages_stay_json(message: str, printed: Any) -> None:
    assert _lenient(message) == printed
