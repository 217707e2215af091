"""The handler's container-long objects: built once, then kept out of the garbage collector's scans."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerduty_bridge import constants as c
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


NEVER_ON_THE_PAGING_PATH = (
    "pydantic",
    "aws_xray_sdk",
    "requests",
    "pagerduty_bridge.reconcile",
    "pagerduty_bridge.webhook",
    "pagerduty_bridge.webhook_sync",
    "pagerduty_bridge.cli",
    "pagerduty_bridge.rules_schema",
)
"""What the README's "What made the cold page fast" keeps off the paging path (pydantic: without rules)."""

_LOADED = "import sys, pagerduty_bridge.handler as h; h.get_runtime().notifications(); print(*sys.modules)"


def loaded_for_the_first_page(**settings: str) -> list[str]:
    """What of ``NEVER_ON_THE_PAGING_PATH`` a fresh process holds once the handler is imported and its
    notification path built (the Lambda's first page, up to its send)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALERT_RULES", "PAGERDUTY_"))}
    env.update(INCIDENT_TABLE_NAME="incidents", AWS_DEFAULT_REGION="eu-west-1", **settings)
    done = subprocess.run(
        [sys.executable, "-c", _LOADED], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return sorted(
        name
        for name in done.stdout.split()
        if any(name == off or name.startswith(off + ".") for off in NEVER_ON_THE_PAGING_PATH)
    )


def test_nothing_off_the_paging_path_is_imported_for_the_first_page() -> None:
    assert loaded_for_the_first_page(PAGERDUTY_INTEGRATION_KEY="abcdefghijklmnopqrstuvwxyz012345") == []


def test_pydantic_is_imported_only_when_alert_rules_are_configured() -> None:
    rules = {"rules": [{"name": "web", "match": {"alarm_name": "web-*"}, "severity": "warning"}]}
    assert "pydantic" in loaded_for_the_first_page(ALERT_RULES=json.dumps(rules))


def test_a_deployed_handler_logs_and_counts_under_its_own_bridges_service_name() -> None:
    """Two bridges in one account and region (dev and prod) must not share metrics: one's failures
    would hold the other's health alarms in ALARM and mask its own. The stack gives each function
    its service name; both handlers take it."""
    code = (
        "from pagerduty_bridge import handler, webhook;"
        "print(handler.metrics.provider.service, webhook.metrics.provider.service, handler.logger.service)"
    )
    deployed = {**os.environ, c.ENV_POWERTOOLS_SERVICE_NAME: c.deployed_service_name("prod")}
    local = {k: v for k, v in os.environ.items() if k != c.ENV_POWERTOOLS_SERVICE_NAME}
    for environ, expected in ((deployed, "pagerduty-bridge-prod"), (local, c.SERVICE_NAME)):
        shown = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
        assert shown.stdout.split() == [expected] * 3
