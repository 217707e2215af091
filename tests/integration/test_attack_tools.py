"""The tools at their edges: the CLI's output when the terminal or the pipe is not what it expects, and
the operator's paths (seed API, silences, reconciliation, redrive, audit) on odd input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge.cli.app import main
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.store.dynamodb import create_table
from tests.builders import REGION, CliRun, cli, dedup_key, lambda_environment, put_cpu_alarm, sns_event
from tests.conftest import EVENTS, ROOT, ROUTING_KEY, FakeLambdaContext

SEED_ALARM = str(EVENTS / "01-seed-high-failure-rate-alarm.json")


def run_with_closed_stdout(*argv: str) -> subprocess.CompletedProcess[str]:
    """``pagerduty-bridge ARGV`` in its own process, its stdout a pipe whose reader is gone (``| head -0``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda"), "PAGERDUTY_INTEGRATION_KEY": ROUTING_KEY}
    read, write = os.pipe()
    os.close(read)  # the reader left before the first line: every write meets EPIPE
    try:
        return subprocess.run(
            [sys.executable, "-m", "pagerduty_bridge", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            check=False,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        os.close(write)


def test_a_reader_gone_from_the_pipe_is_no_error_and_every_page_still_goes(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``replay --send … | head -1``: the pages after the first line are sent all the same, and no
    "unexpected BrokenPipeError (a bug)" line or traceback follows."""
    run = run_with_closed_stdout("replay", "--send", "--events-url", fake_pd.url, "--state", "piped.db", str(EVENTS))
    sent_through_a_closed_pipe = len(fake_pd.accepted())
    fake_pd.reset()
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    whole = ("replay", "--send", "--events-url", fake_pd.url, "--state", "whole.db", str(EVENTS))
    assert main(list(whole), out=io.StringIO(), err=io.StringIO()) == run.returncode == 0, run.stderr
    assert sent_through_a_closed_pipe == len(fake_pd.accepted()) > 1
    assert "BrokenPipe" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert "Exception ignored" not in run.stderr, run.stderr


def test_a_listing_into_a_closed_pipe_ends_quietly() -> None:
    run = run_with_closed_stdout("replay", "--samples")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""


def terminal(encoding: str) -> io.TextIOWrapper:
    """A terminal of another encoding than UTF-8 (``LANG=C``, a Latin-1 console), as Python opens it."""
    return io.TextIOWrapper(io.BytesIO(), encoding=encoding, write_through=True)


def printed(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode(stream.encoding)


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp1252"])
def test_json_output_on_a_terminal_that_is_not_utf8_is_the_same_json(encoding: str) -> None:
    """The seed's summary holds an emoji: a non-UTF-8 terminal ended the command with "unexpected
    UnicodeEncodeError (a bug)", exit 2, and printed nothing."""
    utf8 = io.StringIO()
    assert main(["replay", "--json", SEED_ALARM], out=utf8, err=io.StringIO()) == 0
    out, err = terminal(encoding), terminal(encoding)
    assert main(["replay", "--json", SEED_ALARM], out=out, err=err) == 0, printed(err)
    assert json.loads(printed(out)) == json.loads(utf8.getvalue())
    assert json.loads(printed(out))["event"]["payload"]["summary"] == "🚨 [PRODUCTION] High Failure Rate Alert"


def test_human_output_and_errors_on_an_ascii_terminal_show_what_they_cannot_print_as_escapes() -> None:
    out, err = terminal("ascii"), terminal("ascii")
    assert main(["replay", SEED_ALARM, "nicht-gefunden-ä.json"], out=out, err=err) == 2
    assert "\\ud83d\\udea8 [PRODUCTION] High Failure Rate Alert" in printed(out)
    assert printed(err) == "pagerduty-bridge: nicht-gefunden-\\u00e4.json: no such file\n"


@pytest.mark.parametrize("command", ["reconcile", "silence add", "health", "webhook verify"])
def test_help_on_an_ascii_terminal_is_printed_where_main_prints(command: str) -> None:
    """Help texts hold dashes and ellipses: an ASCII terminal got a traceback instead of the help."""
    out, err = terminal("ascii"), terminal("ascii")
    assert main([*command.split(), "--help"], out=out, err=err) == 0, printed(err)
    assert printed(out).startswith(f"usage: pagerduty-bridge {command}")
    assert main([*command.split(), "--no-such-flag"], out=out, err=err) == 2
    assert "error: " in printed(err).splitlines()[-1]


def test_a_process_whose_terminal_is_ascii_prints_every_sample() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda"), "PYTHONIOENCODING": "ascii"}
    for argv in (("replay", "--samples"), ("reconcile", "--help")):
        run = subprocess.run(
            [sys.executable, "-m", "pagerduty_bridge", *argv], capture_output=True, env=env, check=False, timeout=120
        )
        assert (run.returncode, run.stderr) == (0, b""), run.stderr
        run.stdout.decode("ascii")


def test_an_event_file_saved_with_a_bom_and_crlf_replays_as_the_same_event(tmp_path: Path) -> None:
    """Windows editors and PowerShell save UTF-8 with a byte order mark: such a file was "not JSON"."""
    text = Path(SEED_ALARM).read_text(encoding="utf-8")
    saved = tmp_path / "saved-on-windows.json"
    saved.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    plain, bom = io.StringIO(), io.StringIO()
    assert main(["replay", "--json", SEED_ALARM], out=plain, err=io.StringIO()) == 0
    err = io.StringIO()
    assert main(["replay", "--json", str(saved)], out=bom, err=err) == 0, err.getvalue()
    expected = json.loads(plain.getvalue())
    assert json.loads(bom.getvalue()) == {**expected, "input": str(saved)}


# --- reconciliation ---------------------------------------------------------------------------------------


@dataclass
class Operator:
    """The operator's CLI on a table of moto's server, sending to the PagerDuty stand-in."""

    url: str
    fake: FakePagerDuty
    table: str
    folder: Path

    def run(self, *argv: str) -> CliRun:
        return cli(*argv, "--table", self.table, "--endpoint-url", self.url, "--events-url", self.fake.url, "--send")

    def replay(self, event: dict[str, Any]) -> None:
        path = self.folder / f"{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        run = self.run("replay", str(path))
        assert run.code == 0, run.err

    def put_alarm(self, name: str, state: str) -> None:
        put_cpu_alarm(boto3.client("cloudwatch", region_name=REGION, endpoint_url=self.url), name, state)


@pytest.fixture
def operator(moto_url: str, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Operator:
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY, ROUTING_KEY)
    table = f"incidents-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url), table)
    return Operator(moto_url, fake_pd, table, tmp_path)


def test_an_alarm_known_only_by_name_and_not_found_here_is_kept_not_resolved_as_gone(operator: Operator) -> None:
    """A notification without ``AlarmArn`` (older ones, hand-made ones) of an alarm in another
    account: reading it by name here finds nothing, which says nothing about where it lives. The run
    resolved the incident as "alarm_gone" — in PagerDuty too — while the alarm could be firing."""
    operator.replay(sns_event("remote-cpu", "ALARM", "OK", AlarmArn="", AWSAccountId="111111111111"))
    operator.replay(sns_event("local-cpu", "ALARM", "OK", AlarmArn=""))
    operator.put_alarm("local-cpu", "OK")  # found by name here, and OK: resolved as before

    run = operator.run("reconcile", "--json")

    assert run.code == 0, run.err
    results = {row["dedup_key"]: (row["action"], row["reason"]) for row in run.json()}
    assert results == {
        dedup_key("remote-cpu"): ("kept", "alarm_not_visible"),
        dedup_key("local-cpu"): ("resolved", "alarm_ok"),
    }
    assert set(operator.fake.open_alerts()) == {dedup_key("remote-cpu")}


# --- silences ---------------------------------------------------------------------------------------------


def silence_item(data: str | None, key: str = "silence#handmade") -> dict[str, Any]:
    """A silence item as the stack's table holds it, its ``data`` as given (``None``: no data at all)."""
    item: dict[str, Any] = {
        c.TABLE_PARTITION_KEY: {"S": key},
        c.ACTIVE_INDEX_PARTITION_KEY: {"S": c.SILENCE_MARKER},
        c.ACTIVE_INDEX_SORT_KEY: {"S": "2025-01-14T14:00:00.000Z"},
    }
    if data is not None:
        item["data"] = {"S": data}
    return item


UNREADABLE_SILENCES = {
    "no data": None,
    "not JSON": "{not json",
    "no id": json.dumps({"matchers": {"alarm_name": "*"}, "starts_at": "2025-01-14T14:00:00Z"}),
    "no end": json.dumps({"id": "x", "matchers": {"alarm_name": "*"}, "starts_at": "2025-01-14T14:00:00Z"}),
    "a list": "[]",
    "no matchers": json.dumps({"id": "all", "matchers": {}, "starts_at": "2000-01-01T00:00:00Z",
                               "ends_at": "2999-01-01T00:00:00Z", "created_at": "2000-01-01T00:00:00Z"}),
    "a field no alarm has": json.dumps({"id": "typo", "matchers": {"alarmname": "*"}, "starts_at": "2000-01-01T00:00:00Z",
                                        "ends_at": "2999-01-01T00:00:00Z", "created_at": "2000-01-01T00:00:00Z"}),
}  # fmt: skip


@pytest.mark.parametrize("data", UNREADABLE_SILENCES.values(), ids=UNREADABLE_SILENCES)
def test_a_silence_item_the_bridge_cannot_read_silences_nothing_and_stops_no_page(
    data: str | None, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item edited by hand in the console (or written by another version) among the silences: every
    notification read the silences and failed on it — no alarm paged until someone deleted the item."""
    with mock_aws():
        assert cli("table", "create", "--table", "incidents").code == 0
        lambda_environment(monkeypatch, table="incidents", events_url=fake_pd.url)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.put_item(TableName="incidents", Item=silence_item(data))
        added = cli("silence", "add", "--match", "alarm_name=quiet-*", "--for", "1h", "--comment", "upgrade",
                    "--table", "incidents", "--json")  # fmt: skip
        assert added.code == 0, added.err

        answer = handler.lambda_handler(
            sns_event("web-prod-cpu", "ALARM", "OK", datetime.now(UTC)), FakeLambdaContext()
        )
        handler.lambda_handler(sns_event("quiet-db", "ALARM", "OK", datetime.now(UTC)), FakeLambdaContext())

        assert answer["failed"] == 0, answer
        assert set(fake_pd.open_alerts()) == {dedup_key("web-prod-cpu")}, "the readable silence still holds"
        listed = cli("silence", "list", "--table", "incidents", "--json")
        assert listed.code == 0, listed.err
        assert [s["id"] for s in listed.json()] == [added.json()["id"]]


def test_a_state_file_with_a_silence_it_cannot_read_still_pages_and_lists_the_others(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    added = cli(
        "silence", "add", "--match", "alarm_name=quiet-*", "--for", "1h", "--comment", "c", "--state", str(state)
    )
    assert added.code == 0, added.err
    with contextlib.closing(sqlite3.connect(state)) as db, db:
        db.execute("INSERT INTO silences (id, ends_at, data) VALUES ('bad', '2999-01-01', '{\"id\": 1')")
        db.execute("INSERT INTO silences (id, ends_at, data) VALUES ('all', '2999-01-01', ?)",
                   (UNREADABLE_SILENCES["no matchers"],))  # fmt: skip

    replayed = cli("replay", "--json", SEED_ALARM, "--state", str(state))
    listed = cli("silence", "list", "--json", "--state", str(state))

    assert replayed.code == 0, replayed.err
    assert replayed.json()["action"] == "trigger"
    assert listed.code == 0, listed.err
    assert [s["matchers"] for s in listed.json()] == [{"alarm_name": "quiet-*"}]


# --- the embedded store -----------------------------------------------------------------------------------

UNREADABLE_ROWS = {
    "not JSON": "{junk",
    "a list": "[1, 2]",
    "a string": '"junk"',
}  # fmt: skip


@pytest.mark.parametrize("data", UNREADABLE_ROWS.values(), ids=UNREADABLE_ROWS)
def test_a_row_of_the_state_file_the_bridge_cannot_read_hides_no_other_incident(data: str, tmp_path: Path) -> None:
    """One row written by hand (or by another version) made every listing, ``stats`` and ``reconcile``
    end in "unexpected TypeError (a bug)": the incidents beside it could not be seen. As the DynamoDB
    store does, listings skip it, and reading it by its key is a store error naming it. (A row that is
    an incident with fields missing or unknown is read: ``test_hostile_store``.)"""
    state = tmp_path / "state.db"
    two = (SEED_ALARM, str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert cli("replay", "--record", "--state", str(state), *two).code == 0
    with contextlib.closing(sqlite3.connect(state)) as db, db:
        db.execute(
            "INSERT INTO incidents (dedup_key, version, is_open, triggered_at, data) VALUES ('junk', 1, 1, '0', ?)",
            (data,),
        )

    listed = cli("incidents", "list", "--json", "--state", str(state))
    stats = cli("stats", "--json", "--state", str(state))
    shown = cli("incidents", "show", "junk", "--state", str(state))

    assert listed.code == 0, listed.err
    assert sorted(row["dedup_key"] for row in listed.json()) == [
        "production-hybrid-routing-high-failure-rate-SupportModeSuccessRate",
        "web-prod-cpu-high-CPUUtilization",
    ]
    assert (stats.code, stats.json()["active"]) == (0, 2), stats.err
    assert shown.code == 2
    assert "'junk'" in shown.err and "is not an incident the bridge can read" in shown.err, shown.err
    assert "a bug" not in shown.err


# --- audit --------------------------------------------------------------------------------------------------

QUEUE_DEPTH = {
    "Id": "depth",
    "MetricStat": {
        "Metric": {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": "orders"}],
        },
        "Period": 60,
        "Stat": "Maximum",
    },
    "ReturnData": False,
}
HANDLING_RULES = {
    "kind": {"kind": "metric_math"},
    "namespace": {"namespace": "AWS/SQS"},
    "metric_name": {"metric_name": "ApproximateNumberOfMessagesVisible"},
    "a metric's dimension": {"dimensions": {"QueueName": "orders"}},
}


@pytest.mark.parametrize("match", HANDLING_RULES.values(), ids=HANDLING_RULES)
def test_audit_sees_a_rule_that_handles_a_metric_math_alarms_insufficient_data(
    match: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler matches rules on a metric-math alarm's kind and on its metrics' namespace, name and
    dimensions; the audit judged the alarm as a plain metric alarm without any, so it flagged
    INSUFFICIENT_DATA as unhandled — and its fix removes the action the rule is there for."""
    rules = {"rules": [{"name": "queue-stalled", "match": match, "insufficient_data": "trigger"}]}
    monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps(rules))
    with mock_aws():
        topic = boto3.client("sns").create_topic(Name="pagerduty-bridge-alarms")["TopicArn"]
        boto3.client("cloudwatch").put_metric_alarm(
            AlarmName="orders-backlog",
            AlarmActions=[topic],
            OKActions=[topic],
            InsufficientDataActions=[topic],
            Metrics=[QUEUE_DEPTH, {"Id": "backlog", "Expression": "depth * 2", "ReturnData": True}],
            EvaluationPeriods=1,
            Threshold=100.0,
            ComparisonOperator="GreaterThanThreshold",
        )
        run = cli("audit", "--topic-arn", topic, "--json")
    assert (run.code, run.json()) == (0, []), run.out + run.err


def test_a_silence_that_would_be_over_before_it_is_added_is_refused(tmp_path: Path) -> None:
    """``--starts 2024-…`` for ``--starts 2025-…``: the silence was added (exit 0, an id printed), held
    nothing, and the maintenance it was meant for paged."""
    state = ("--state", str(tmp_path / "state.db"))
    past = cli("silence", "add", "--match", "alarm_name=x-*", "--starts", "2020-03-01T22:00:00Z", "--for", "2h",
               "--comment", "db upgrade", *state)  # fmt: skip
    until = cli("silence", "add", "--match", "alarm_name=x-*", "--until", "2020-03-02T00:00:00Z",
                "--comment", "db upgrade", *state)  # fmt: skip
    assert (past.code, past.out, until.code, until.out) == (2, "", 2, ""), past.out + until.out
    assert "2020-03-02T00:00:00+00:00 is already over" in past.err, past.err
    assert cli("silence", "list", "--all", "--json", *state).json() == []


# --- redrive ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-1", "ten"])
def test_redrive_refuses_a_number_of_messages_that_reads_none(count: str) -> None:
    """``--max-messages 0`` (or -1, taken for "all") read no message and reported "received 0,
    redriven 0, kept 0", exit 0: a dead-letter queue full of pages looked empty."""
    run = cli("redrive", "--queue-url", "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
              "--max-messages", count, "--state", "state.db")  # fmt: skip
    assert run.code == 2
    assert "--max-messages" in run.err and "received" not in run.out, run.out + run.err
