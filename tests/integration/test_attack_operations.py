"""Operations commands and the local stand-ins, given what users and hostile clients really send."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.devtools.function_url import FunctionUrlServer
from tests.builders import cli, cli_json
from tests.conftest import EVENTS

TIMEOUT = 5.0
"""Every socket read here: a hang fails the test instead of blocking the suite."""


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as server:
        yield server


@pytest.fixture
def function_url() -> Iterator[FunctionUrlServer]:
    with FunctionUrlServer(lambda event, context: {"statusCode": 200, "body": "ok"}) as server:
        yield server


def exchange(url: str, request: bytes) -> tuple[bytes, float]:
    """Send raw bytes, keep the connection open, and read the first answer: (its bytes, seconds waited)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as connection:
        connection.sendall(request)
        started = time.monotonic()
        try:
            answer = connection.recv(4096)
        except TimeoutError:
            answer = b""
        return answer, time.monotonic() - started


# --- the loopback servers' request framing -------------------------------------------------------------

NEGATIVE_CHUNK = b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc"
"""A chunk size below zero: no client sends it; read as a length it would mean "read until the end"."""


@pytest.mark.parametrize("server", ["fake", "function_url"])
def test_a_negative_chunk_size_is_malformed_framing_answered_at_once(
    server: str, request: pytest.FixtureRequest
) -> None:
    stand_in = request.getfixturevalue(server)
    answer, waited = exchange(stand_in.url, NEGATIVE_CHUNK)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert waited < TIMEOUT / 2


# --- what the table keeps ------------------------------------------------------------------------------


def test_a_suppressed_trigger_of_an_alarm_the_table_never_saw_is_recorded_not_paged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: anomaly-record-only\n    match: {kind: anomaly_detection}\n    suppress: true\n"
    )
    monkeypatch.setenv("ALERT_RULES_FILE", str(rules))
    state = str(tmp_path / "state.db")
    replayed = cli("replay", "--record", "--json", "--state", state, str(EVENTS / "08-anomaly-detection-alarm.json"))
    assert replayed.code == 0, replayed.err
    line = replayed.json()
    assert (line["action"], line["reason"]) == ("none", "suppressed")

    shown = cli("incidents", "show", "orders-api-latency-anomaly", "--json", "--state", state)
    assert shown.code == 0, shown.err
    record = shown.json()
    assert (record["status"], record["alarm_state"]) == ("resolved", "ALARM")
    assert cli_json("incidents", "list", "--json", "--state", state) == [], "recorded, never open"


# --- settings errors name what the user set --------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PAGERDUTY_RETRY_BUDGET_SECONDS", "abc"),
        ("PAGERDUTY_EVENTS_URL", "ftp://events.example.com/v2/enqueue"),
        ("PAGERDUTY_RETRY_BUDGET_SECONDS", "-1"),
    ],
)
def test_a_malformed_variable_is_named_by_every_command(
    variable: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    stats = cli("stats", "--state", str(tmp_path / "state.db"))
    assert stats.code == 2
    assert f"{variable}:" in stats.err, stats.err
    health = cli("health", "--json", "--state", str(tmp_path / "state.db"))
    assert health.code == 1
    assert f"{variable}:" in health.json()["checks"][0]["message"]


# --- health: every alias, each on its own ----------------------------------------------------------------

GOOD_KEY = "abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
def secrets(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    return boto3.client("secretsmanager", endpoint_url=moto_url, region_name="eu-west-1")


def health_checks(moto_url: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    state = tmp_path / "state.db"
    cli("replay", "--record", "--state", str(state), str(EVENTS / "01-seed-high-failure-rate-alarm.json"))
    run = cli("health", "--json", "--state", str(state), "--endpoint-url", moto_url)
    return {check["name"]: check for check in run.json()["checks"]}


def test_health_names_a_broken_alias_of_the_integration_key_secret(
    secrets: Any, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README, step 3: one JSON secret can page several services; health checks each of its aliases."""
    value = json.dumps({"default": GOOD_KEY, "payments": "not-a-key", "web": GOOD_KEY})
    arn = secrets.create_secret(Name=f"pd-{uuid.uuid4().hex[:8]}", SecretString=value)["ARN"]
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY_SECRET_ARN", arn)
    checks = health_checks(moto_url, tmp_path)
    assert checks["routing_key default"]["ok"]
    assert checks["routing_key web"]["ok"]
    assert not checks["routing_key payments"]["ok"]
    assert "malformed" in checks["routing_key payments"]["message"]
    assert "not-a-key" not in json.dumps(checks)


def test_a_missing_secret_is_not_mistaken_for_a_missing_table(
    secrets: Any, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pagerduty-gone-AbCdEf"
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY_SECRET_ARN", arn)
    message = health_checks(moto_url, tmp_path)["routing_key default"]["message"]
    assert "table" not in message, message
    assert "secret" in message.removeprefix("PAGERDUTY_INTEGRATION_KEY_SECRET_ARN: cannot read the secret")


# --- human output -----------------------------------------------------------------------------------------


def test_stats_for_people_shows_resolutions_by_how_in_words_not_a_python_dict(tmp_path: Path) -> None:
    state = str(tmp_path / "state.db")
    events = [
        str(EVENTS / name) for name in ("01-seed-high-failure-rate-alarm.json", "02-seed-high-failure-rate-ok.json")
    ]
    assert cli("replay", "--record", "--state", state, *events).code == 0
    shown = cli("stats", "--state", state)
    assert shown.code == 0, shown.err
    line = next(line for line in shown.out.splitlines() if line.startswith("resolved_by"))
    assert line.split(maxsplit=1)[1] == "auto 1, manual 0, reconciled 0, pagerduty 0"


def test_health_for_people_keeps_its_columns_with_long_alias_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", GOOD_KEY)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps({"payments-and-billing": GOOD_KEY}))
    shown = cli("health", "--state", "/nonexistent/state.db")
    checks = cli("health", "--json", "--state", "/nonexistent/state.db").json()["checks"]
    lines = shown.out.splitlines()
    assert len(lines) == len(checks)
    starts = {line.index(check["message"]) for line, check in zip(lines, checks, strict=True)}
    assert len(starts) == 1, shown.out


@pytest.mark.parametrize("given", ["-1", "-10", "ten"])
def test_health_refuses_a_maximum_below_zero_as_a_usage_error(given: str) -> None:
    shown = cli("health", f"--max-active={given}", "--state", "/nonexistent/state.db")
    assert shown.code == 2
    assert "--max-active" in shown.err


def test_health_with_a_maximum_of_zero_warns_on_any_active_incident(tmp_path: Path) -> None:
    state = str(tmp_path / "state.db")
    assert cli("replay", "--record", "--state", state, str(EVENTS / "01-seed-high-failure-rate-alarm.json")).code == 0
    checks = cli("health", "--max-active=0", "--json", "--state", state).json()["checks"]
    assert checks[-1] == {"name": "active_incidents", "ok": False, "message": "1 active incidents (more than 0)"}


# --- webhook verify ---------------------------------------------------------------------------------------


def test_webhook_verify_given_a_raw_body_without_its_signature_says_what_is_missing(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"event": {"id": "01", "event_type": "incident.resolved", "data": {}}}))
    shown = cli("webhook", "verify", "--secret", "s3cret", str(body))
    assert shown.code == 2
    assert "--signature" in shown.err
