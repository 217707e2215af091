"""The handler's container-long objects: built once, then kept out of the garbage collector's scans."""

from __future__ import annotations

import gc

import pytest

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
