"""One error path: every command that talks to AWS, when AWS cannot be reached or no region is set,
ends in one line on stderr naming what failed and what to check, and exits 2 — a traceback only with
``--debug``. The endpoint is a closed port on this machine (``127.0.0.1:9``) and botocore tries once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import TOPIC_ARN, cli
from tests.conftest import EVENTS, ROOT, ROUTING_KEY

DEAD = "http://127.0.0.1:9"
SAMPLE = str(EVENTS / "05-ec2-cpu-alarm.json")
TABLE = ("--table", "incidents")

AWS_COMMANDS: dict[str, tuple[str, ...]] = {
    "replay": ("replay", *TABLE, SAMPLE),
    "replay --send": ("replay", "--send", *TABLE, SAMPLE),
    "incidents list": ("incidents", "list", *TABLE),
    "incidents show": ("incidents", "show", "web-prod-cpu-high-CPUUtilization", *TABLE),
    "incidents ack": ("incidents", "ack", "web-prod-cpu-high-CPUUtilization", *TABLE),
    "incidents resolve": ("incidents", "resolve", "web-prod-cpu-high-CPUUtilization", *TABLE),
    "incidents clear": ("incidents", "clear", "--yes", *TABLE),
    "trigger": ("trigger", "high-latency", "--current", "7450", "--threshold", "5000", *TABLE),
    "stats": ("stats", *TABLE),
    "rules test": ("rules", "test", "--alarm-name", "payments-api", *TABLE),
    "silence add": ("silence", "add", "--match", "alarm_name=x-*", "--for", "1h", "--comment", "maintenance", *TABLE),
    "silence list": ("silence", "list", *TABLE),
    "silence expire": ("silence", "expire", "0123456789ab", *TABLE),
    "reconcile": ("reconcile", *TABLE),
    "reconcile --state": ("reconcile", "--state", "state.db"),
    "redrive": ("redrive", "--queue-url", f"{DEAD}/123456789012/dead-letters", *TABLE),
    "publish-test-alarm": ("publish-test-alarm", "--topic-arn", TOPIC_ARN),
    "table create": ("table", "create", *TABLE),
    "audit": ("audit", "--topic-arn", TOPIC_ARN),
    "audit --stack": ("audit", "--stack", "pagerduty-bridge"),
}
"""Every command that calls AWS, by what it is called in the test ids."""


@pytest.fixture(autouse=True)
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    """A state file holding one open incident (``reconcile --state`` reads alarms from CloudWatch)."""
    path = tmp_path / "state.db"
    assert cli("replay", "--record", "--state", str(path), SAMPLE).code == 0
    return path


def assert_one_clean_line(run_err: str, code: int, *, mentions: str) -> None:
    lines = [line for line in run_err.splitlines() if line.strip()]
    assert code == 2, run_err
    assert len(lines) == 1, run_err
    assert lines[0].startswith("pagerduty-bridge: ")
    assert "Traceback" not in run_err and "usage:" not in run_err
    assert mentions in lines[0]
    assert "(check " in lines[0] or "(set " in lines[0], "the line says what to check"


@pytest.mark.parametrize("how", ["--endpoint-url", "AWS_ENDPOINT_URL"])
@pytest.mark.parametrize("command", list(AWS_COMMANDS))
def test_an_unreachable_endpoint_is_one_line_and_exit_2(
    command: str, how: str, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = AWS_COMMANDS[command]
    if how == "--endpoint-url":
        argv = (*argv, "--endpoint-url", DEAD)
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD)
    run = cli(*argv)
    assert_one_clean_line(run.err, run.code, mentions="127.0.0.1:9")
    assert "--endpoint-url" in run.err


@pytest.mark.parametrize(
    "command",
    ["incidents list", "silence list", "reconcile", "reconcile --state", "redrive", "table create", "audit --stack"],
)
def test_a_missing_region_is_one_line_and_exit_2(
    command: str, state_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    run = cli(*AWS_COMMANDS[command])
    assert_one_clean_line(run.err, run.code, mentions="region")
    assert "AWS_REGION" in run.err


def test_debug_adds_the_traceback_and_still_ends_in_the_line() -> None:
    run = cli("--debug", "incidents", "list", *TABLE, "--endpoint-url", DEAD)
    assert run.code == 2
    assert "Traceback" in run.err
    assert "EndpointConnectionError" in run.err
    assert run.err.strip().splitlines()[-1].startswith("pagerduty-bridge: query on incidents failed")


def command_line(*argv: str) -> subprocess.CompletedProcess[str]:
    """``pagerduty-bridge ARGV`` in a process of its own: logging as a person's shell sets it up."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda")}
    return subprocess.run(
        [sys.executable, "-m", "pagerduty_bridge", *argv],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_debug_shows_the_library_log_lines_that_are_otherwise_kept_quiet() -> None:
    argv = ("replay", "--send", *TABLE, SAMPLE, "--endpoint-url", DEAD)
    quiet, loud = command_line(*argv), command_line("--debug", *argv)
    assert quiet.returncode == loud.returncode == 2
    assert len(quiet.stderr.strip().splitlines()) == 1, quiet.stderr
    assert "pagerduty-bridge: ERROR pagerduty_bridge.processing: notification failed" in loud.stderr
    assert "Traceback" in loud.stderr
    assert ROUTING_KEY not in quiet.stderr + loud.stderr + quiet.stdout + loud.stdout


def test_an_unreadable_routing_key_secret_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY")
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pagerduty-AbCdEf"
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY_SECRET_ARN", secret)
    run = cli("replay", "--send", "--state", "state.db", SAMPLE, "--endpoint-url", DEAD)
    assert_one_clean_line(run.err, run.code, mentions="PAGERDUTY_INTEGRATION_KEY_SECRET_ARN: cannot read the secret")
    assert "--endpoint-url" in run.err


def test_a_missing_table_says_how_to_make_one(moto_url: str) -> None:
    run = cli("incidents", "list", "--table", "no-such-table", "--endpoint-url", moto_url)
    assert_one_clean_line(run.err, run.code, mentions="no-such-table")
    assert "ResourceNotFoundException" in run.err and "table create" in run.err


def test_a_missing_queue_says_to_check_the_queue_url(moto_url: str, state_file: Path) -> None:
    queue = f"{moto_url}/123456789012/no-such-queue"
    run = cli("redrive", "--queue-url", queue, "--state", str(state_file), "--endpoint-url", moto_url)
    assert_one_clean_line(run.err, run.code, mentions="ReceiveMessage")
    assert "--queue-url" in run.err


def test_health_reports_an_unreachable_table_as_a_failed_check_with_what_to_check() -> None:
    """``health`` is the one command whose job is to report trouble: exit 1 and the failed check."""
    run = cli("health", *TABLE, "--endpoint-url", DEAD)
    assert run.code == 1
    assert "Traceback" not in run.out + run.err
    (store_line,) = [line for line in run.out.splitlines() if " store " in line]
    assert store_line.startswith("WARN") and "127.0.0.1:9" in store_line and "--endpoint-url" in store_line
