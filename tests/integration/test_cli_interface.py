"""One interface across commands: help and defaults on every option, ``--json`` everywhere (JSON lines
for replay's stream, one document otherwise), ``--version``, ``--state`` always the SQLite file (which
read-only commands never create), one ``--endpoint-url`` for every AWS client, full keys in ``--json``
and ``--wide``."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import boto3
import pytest

from pagerduty_bridge.cli.app import build_parser
from pagerduty_bridge.cli.common import given_path
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.store import sqlite as sqlite_store
from tests.builders import T0, alarm_message, cli, cli_json, read_only, sns_event, sns_notification
from tests.conftest import EVENTS, ROOT, ROUTING_KEY

SAMPLE = str(EVENTS / "05-ec2-cpu-alarm.json")
SAMPLE_KEY = "web-prod-cpu-high-CPUUtilization"


def leaf_commands() -> dict[str, argparse.ArgumentParser]:
    """Every command a person can run, by its words (``incidents ack``), with its parser."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            found[" ".join(words)] = parser
        for group in groups:
            for name, sub in group.choices.items():
                walk(sub, (*words, name))

    walk(build_parser(), ())
    return found


COMMANDS = leaf_commands()


def required_alternatives(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for group in parser._mutually_exclusive_groups
        if group.required
        for action in group._group_actions
        for option in action.option_strings
    }


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_and_says_its_default(command: str) -> None:
    parser = COMMANDS[command]
    alternatives = required_alternatives(parser)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{command} {name} has no help text"
        if action.option_strings and not action.required and not set(action.option_strings) & alternatives:
            assert "default" in action.help, f"{command} {name}: the help does not say the default"
        if action.option_strings and (action.required or set(action.option_strings) & alternatives):
            assert "required" in action.help or "--" in action.help, f"{command} {name}: say it is required"


def test_the_top_level_options_have_help() -> None:
    for action in build_parser()._actions:
        if action.option_strings:
            assert action.help, action.option_strings


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_takes_json(command: str) -> None:
    options = {option for action in COMMANDS[command]._actions for option in action.option_strings}
    assert "--json" in options
    run = cli(*command.split(), "--help")
    assert run.code == 0 and "--json" in run.out


def test_version_is_the_installed_distributions() -> None:
    run = cli("--version")
    assert run.code == 0
    assert run.out.strip() == f"pagerduty-bridge {importlib.metadata.version('pagerduty-bridge')}"


def test_publish_test_alarm_and_rules_test_name_the_alarm_state_alarm_state() -> None:
    """``--state`` is always the state file; the state an alarm is in is ``--alarm-state``."""
    for command in ("publish-test-alarm", "rules test"):
        options = {option for action in COMMANDS[command]._actions for option in action.option_strings}
        assert "--alarm-state" in options
    for command, parser in COMMANDS.items():
        for action in parser._actions:
            if "--state" in action.option_strings:
                assert action.type is given_path and action.metavar == "FILE", command


READ_ONLY = {
    "incidents list": ("incidents", "list"),
    "incidents show": ("incidents", "show", SAMPLE_KEY),
    "incidents ack": ("incidents", "ack", SAMPLE_KEY),
    "incidents resolve": ("incidents", "resolve", SAMPLE_KEY),
    "incidents clear": ("incidents", "clear", "--yes"),
    "stats": ("stats",),
    "silence list": ("silence", "list"),
    "silence expire": ("silence", "expire", "0123456789ab"),
    "reconcile": ("reconcile",),
    "rules test": ("rules", "test"),
}
"""Commands that only read a state file (or, without --send, leave it as it was)."""


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_read_only_commands_refuse_a_missing_state_file_and_create_nothing(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "state.db"
    run = cli(*READ_ONLY[command], "--state", str(missing))
    assert run.code == 2
    assert f"{missing}: no such state file" in run.err
    assert not missing.parent.exists()
    default = cli(*READ_ONLY[command])
    if command != "rules test":  # without --state it routes with no silences: there is no store to read
        assert default.code == 2 and "no such state file" in default.err
    assert not (tmp_path / ".pagerduty-bridge").exists()


def test_health_reports_a_missing_state_file_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "state.db"
    report = cli("health", "--json", "--state", str(missing))
    assert report.code == 1
    checks = {check["name"]: check for check in report.json()["checks"]}
    assert not checks["store"]["ok"] and "no such state file" in checks["store"]["message"]
    assert not missing.parent.exists()


def test_a_state_file_under_a_file_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    state = tmp_path / "a-file" / "state.db"
    run = cli("trigger", "high-latency", "--current", "1", "--threshold", "2", "--state", str(state))
    assert run.code == 2
    (line,) = run.err.splitlines()
    assert line.startswith(f"pagerduty-bridge: cannot open the incident store {state}: cannot create its folder")
    assert "unexpected" not in line


def test_a_dry_run_leaves_no_state_file_where_there_was_none(tmp_path: Path) -> None:
    """A dry run changes no store, and a file that appears where there was none is a change: the next
    command that must find an existing store (``incidents list``) would take a file made by a dry run
    for a real one. A dry run over no file plans on an empty store; ``--record`` and ``--send`` write."""
    state = tmp_path / "state.db"
    dry = cli("replay", "--json", "--state", str(state), SAMPLE)
    assert dry.code == 0, dry.err
    assert [(json.loads(line)["action"], json.loads(line)["delivered"]) for line in dry.out.splitlines()] == [
        ("trigger", False)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    tried = cli("trigger", "high-latency", "--current", "1", "--threshold", "2", "--state", str(state))
    assert tried.code == 0, tried.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert cli("incidents", "list", "--state", str(state)).code == 2

    assert cli("replay", "--record", "--state", str(state), SAMPLE).code == 0
    assert [i["dedup_key"] for i in cli_json("incidents", "list", "--state", str(state), "--json")] == [SAMPLE_KEY]


def test_clearing_a_state_file_another_process_holds_locked_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.db"
    assert cli("replay", "--record", "--state", str(state), str(EVENTS / "05-ec2-cpu-alarm.json")).code == 0
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT", timedelta(milliseconds=50))
    other = sqlite3.connect(state, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, held past the busy timeout
    try:
        run = cli("incidents", "clear", "--yes", "--state", str(state))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert run.code == 2
    (line,) = run.err.splitlines()
    assert line == "pagerduty-bridge: cannot clear the incident store " + str(state) + ": database is locked"
    assert len(cli_json("incidents", "list", "--state", str(state), "--json")) == 1


@pytest.fixture
def read_only_state(tmp_path: Path) -> Iterator[Path]:
    """A state file (one incident, one silence, WAL mode, no -wal or -shm beside it) that nobody can
    write, in a folder nobody can write: mode 0444 in 0555 — and, for root, whom modes do not bind,
    the immutable attribute as well (skipped where neither holds)."""
    made = tmp_path / "made.db"
    assert cli("replay", "--record", "--state", str(made), SAMPLE).code == 0
    assert (
        cli("silence", "add", "--match", "alarm_name=x-*", "--for", "1h", "--comment", "c", "--state", str(made)).code
        == 0
    )
    folder = tmp_path / "read-only"
    folder.mkdir()
    state = folder / "state.db"
    source, copy = sqlite3.connect(made), sqlite3.connect(state)
    source.backup(copy)
    source.close()
    copy.close()
    assert sorted(p.name for p in folder.iterdir()) == ["state.db"]
    with read_only(state) as fixed:
        yield fixed


def test_commands_that_only_read_read_a_read_only_state_file(read_only_state: Path) -> None:
    state = ("--state", str(read_only_state))
    assert [i["dedup_key"] for i in cli_json("incidents", "list", "--json", *state)] == [SAMPLE_KEY]
    assert cli_json("incidents", "show", SAMPLE_KEY, "--json", *state)["dedup_key"] == SAMPLE_KEY
    assert len(cli_json("silence", "list", "--json", *state)) == 1
    assert cli_json("stats", "--json", *state)["incidents"] == 1
    assert cli("incidents", "resolve", SAMPLE_KEY, *state).code == 0  # a dry run writes nothing
    for writes in (
        ("incidents", "clear", "--yes"),
        ("silence", "add", "--match", "alarm_name=y", "--for", "1h", "--comment", "c"),
    ):
        run = cli(*writes, *state)
        assert run.code == 2, writes
        (line,) = run.err.splitlines()
        assert line.startswith("pagerduty-bridge: cannot ") and "readonly database" in line, line
    assert sorted(p.name for p in read_only_state.parent.iterdir()) == ["state.db"]


def test_full_keys_in_json_and_with_wide(tmp_path: Path) -> None:
    long_name = "payments-" + "very-long-alarm-name-" * 5 + "latency"
    event = tmp_path / "long.json"
    event.write_text(json.dumps(sns_event(long_name, at=T0)))
    assert cli("replay", "--record", str(event)).code == 0
    key = f"{long_name}-CPUUtilization"
    (listed,) = cli_json("incidents", "list", "--json")
    assert listed["dedup_key"] == key
    narrow, wide = cli("incidents", "list"), cli("incidents", "list", "--wide")
    assert key not in narrow.out and key[:59] + "…" in narrow.out
    assert key in wide.out


# --- --json: one document per command, JSON lines for replay -------------------------------------------


def one_document(run_out: str) -> Any:
    lines = run_out.strip().splitlines()
    assert len(lines) == 1, run_out
    return json.loads(lines[0])


def test_json_is_one_document_per_command_and_lines_for_replay(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    replayed = cli("replay", "--json", "--record", str(EVENTS / "12-multi-record.json"), SAMPLE)
    assert [json.loads(line)["alarm_name"] for line in replayed.out.splitlines()] == [
        "orders-api-p99-latency",
        "queue-backlog",
        "web-prod-cpu-high",
    ]
    silence = one_document(
        cli("silence", "add", "--match", "alarm_name=x-*", "--for", "1h", "--comment", "c", "--json").out
    )
    body = tmp_path / "body.json"
    body.write_text('{"event": {}}')
    documents = {
        "incidents list": ("incidents", "list"),
        "incidents show": ("incidents", "show", SAMPLE_KEY),
        "incidents ack": ("incidents", "ack", SAMPLE_KEY),
        "incidents resolve": ("incidents", "resolve", SAMPLE_KEY),
        "stats": ("stats",),
        "health": ("health",),
        "rules check": ("rules", "check", str(ROOT / "tests" / "fixtures" / "rules" / "example.yaml")),
        "rules test": ("rules", "test"),
        "silence list": ("silence", "list"),
        "silence expire": ("silence", "expire", silence["id"]),
        "trigger": ("trigger", "high-latency", "--current", "7450", "--threshold", "5000"),
        "webhook verify": ("webhook", "verify", str(body), "--secret", "s", "--signature", "v1=00"),
        "incidents clear": ("incidents", "clear", "--yes"),
    }
    for name, argv in documents.items():
        run = cli(*argv, "--json")
        assert run.code in (0, 1), f"{name}: {run.err}"
        assert one_document(run.out) is not None, name


def test_json_of_the_aws_commands_on_moto(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="json-alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName="json-dead-letters")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(sns_notification(alarm_message("json-lost"))))
    table = one_document(cli("table", "create", "--table", "json-incidents", "--json").out)
    assert table["table"] == "json-incidents" and table["status"] == "ACTIVE"
    published = one_document(cli("publish-test-alarm", "--topic-arn", topic, "--json").out)
    assert published["topic_arn"] == topic and published["message_id"]
    redriven = one_document(cli("redrive", "--queue-url", queue, "--table", "json-incidents", "--json").out)
    assert (redriven["received"], redriven["redriven"]) == (1, 1)
    assert one_document(cli("reconcile", "--table", "json-incidents", "--json").out) == []


@contextlib.contextmanager
def fake_pagerduty_command(*flags: str) -> Iterator[tuple[str, IO[str]]]:
    """``pagerduty-bridge fake-pagerduty --port 0 FLAGS`` running: its first line, and its output to read on."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pagerduty_bridge", "fake-pagerduty", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline(), process.stdout
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


def send_trigger(events_url: str, dedup_key: str) -> None:
    event = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": "s", "source": "test", "severity": "info"},
    }
    request = urllib.request.Request(
        events_url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202


def test_fake_pagerduty_json_lines() -> None:
    with fake_pagerduty_command("--json") as (first, output):
        send_trigger(json.loads(first)["events_url"], "json-lines")
        line = json.loads(output.readline())
    assert (line["event_action"], line["dedup_key"], line["status"]) == ("trigger", "json-lines", 202)
    assert line["routing_key"].endswith(ROUTING_KEY[-4:]) and ROUTING_KEY not in json.dumps(line)


def test_fake_pagerduty_shows_a_hostile_dedup_key_escaped_on_its_own_line() -> None:
    """The stand-in's line per request holds the sender's dedup key: its line breaks and terminal controls
    are shown escaped, so a request cannot forge a line nor drive the terminal."""
    with fake_pagerduty_command() as (first, output):
        send_trigger(first.split("--events-url ", 1)[1].split()[0], "evil\ntrigger     dedup_key=forged\u2028\x1b[31m")
        line = output.readline()
    assert line.startswith("trigger") and line.endswith("-> 202\n")
    assert "dedup_key=evil\\ntrigger     dedup_key=forged\\u2028\\x1b[31m routing_key=" in line


# --- one --endpoint-url for every AWS client ------------------------------------------------------------


@pytest.mark.parametrize("how", ["--endpoint-url", "AWS_ENDPOINT_URL"])
def test_one_endpoint_for_every_aws_client(
    how: str, moto_url: str, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DynamoDB, Secrets Manager (the routing key), SNS, SQS, STS and CloudWatch: all on moto."""
    endpoint: tuple[str, ...] = ("--endpoint-url", moto_url)
    if how == "AWS_ENDPOINT_URL":
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
        endpoint = ()
    aws = {"endpoint_url": moto_url}
    secret = boto3.client("secretsmanager", **aws).create_secret(Name=f"pagerduty-{how}", SecretString=ROUTING_KEY)[
        "ARN"
    ]
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY_SECRET_ARN", secret)
    table = f"endpoint-{how.strip('-').lower().replace('_', '-')}"
    assert cli("table", "create", "--table", table, *endpoint).code == 0
    send = ("--send", "--events-url", fake_pd.url, "--table", table, *endpoint)
    assert cli("replay", *send, SAMPLE).code == 0
    assert fake_pd.open_alerts(ROUTING_KEY).keys() == {SAMPLE_KEY}, "the key came from moto's Secrets Manager"

    topic = boto3.client("sns", **aws).create_topic(Name=f"alarms-{table}")["TopicArn"]
    assert cli("publish-test-alarm", "--topic-arn", topic, *endpoint).code == 0
    queue = boto3.client("sqs", **aws).create_queue(QueueName=f"dlq-{table}")["QueueUrl"]
    assert cli("redrive", "--queue-url", queue, "--table", table, *endpoint).code == 0
    resolved = cli_json("reconcile", "--json", *send)
    assert [(r["dedup_key"], r["action"], r["reason"]) for r in resolved] == [(SAMPLE_KEY, "resolved", "alarm_gone")]


def test_fake_pagerduty_stops_on_ctrl_c_even_when_started_with_sigint_ignored() -> None:
    """A background job of a shell without job control (a CI runner, a script's ``&``) starts with SIGINT
    ignored and hands that on: the stand-in must still stop cleanly on Ctrl-C, as on SIGTERM."""
    started_ignoring = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "runpy.run_module('pagerduty_bridge', run_name='__main__', alter_sys=True)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda")}
    for stop in (signal.SIGINT, signal.SIGTERM):
        process = subprocess.Popen(
            [sys.executable, "-c", started_ignoring, "fake-pagerduty", "--port", "0", "--json"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert process.stdout is not None
            assert "events_url" in process.stdout.readline()
            process.send_signal(stop)
            assert process.wait(timeout=10) == 0, stop
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
