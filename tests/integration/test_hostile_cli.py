"""The command line with hostile or merely odd input: what operators paste and pipe must do what it says."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shlex
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge.cli import main
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.webhook_sync import Verdict, signing_secrets, verify
from tests.builders import cli, cli_json
from tests.conftest import EVENTS, ROOT, ROUTING_KEY
from tests.integration.test_audit_cli import BASE

REGION = "us-east-1"
SAMPLE = EVENTS / "01-seed-high-failure-rate-alarm.json"


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("sns").create_topic(Name="pagerduty-bridge-alarms")["TopicArn"]


def _pasted_fixes(out: str) -> list[list[str]]:
    """The fix commands of human ``audit`` output, split as a POSIX shell splits them when pasted."""
    return [shlex.split(line.split("fix:", 1)[1]) for line in out.splitlines() if line.strip().startswith("fix:")]


def _run_pasted(words: list[str]) -> None:
    """What the AWS CLI does with a pasted ``enable-alarm-actions`` command, through moto."""
    assert words[:3] == ["aws", "cloudwatch", "enable-alarm-actions"], words
    # The AWS CLI takes a word starting with "-" for an option ("Unknown options: -prod-db"), never a value.
    assert not any(word.startswith("-") for word in words[4::2]), words
    if "--cli-input-json" in words:
        names = json.loads(words[words.index("--cli-input-json") + 1])["AlarmNames"]
    else:
        names = [words[words.index("--alarm-names") + 1]]
    boto3.client("cloudwatch").enable_alarm_actions(AlarmNames=names)


class _AsciiTerminal(io.StringIO):
    """A terminal under ``LANG=C``: it holds ASCII only."""

    encoding = "ascii"

    def write(self, text: str) -> int:
        text.encode("ascii")
        return super().write(text)


@pytest.mark.parametrize("terminal", [io.StringIO, _AsciiTerminal], ids=["utf-8", "lang-c"])
@pytest.mark.parametrize(
    "name", ["db\nprimary", "tab\there $(id) 'q'", "caf\u00e9 \u2028 line", "bell\x07\x1b[2J", "-prod-db", "--help"]
)
def test_a_pasted_enable_alarm_actions_fix_enables_exactly_the_alarm_it_names(
    topic: str, name: str, terminal: type[io.StringIO]
) -> None:
    """Human output escapes control characters (a newline shows as ``\\n``): a fix quoting the raw name
    would, pasted, name another alarm, which enable-alarm-actions accepts silently, and the disabled
    alarm kept telling nobody."""
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=name, AlarmActions=[topic], OKActions=[topic], ActionsEnabled=False, **BASE)
    out, err = terminal(), io.StringIO()
    assert main(["audit", "--topic-arn", topic], out=out, err=err) == 1, err.getvalue()
    (fix,) = _pasted_fixes(out.getvalue())

    _run_pasted(fix)

    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert alarm["ActionsEnabled"] is True
    assert cli("audit", "--topic-arn", topic, "--json").code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ("silence", "add", "--match", "alarm_name=payments-*", "--for", "2h", "--comment", "upgrade", "--table", ""),
        ("silence", "add", "--match", "alarm_name=payments-*", "--for", "2h", "--comment", "upgrade", "--table", " "),
        ("trigger", "high-failure-rate", "--current", "85", "--threshold", "95", "--table", ""),
        ("replay", "--record", "--table", "", str(SAMPLE)),
        ("incidents", "list", "--table", ""),
    ],
    ids=["silence-add", "silence-add-blank", "trigger", "replay", "incidents-list"],
)
def test_an_empty_table_name_is_refused_not_taken_for_the_local_state_file(
    argv: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--table "$TABLE"`` with the variable unset: a silence meant for the Lambda's table went to a
    local file the Lambda never reads (exit 0, the maintenance paged), a redrive recorded its pages
    there (so the table never saw them and their OK resolved nothing)."""
    monkeypatch.chdir(tmp_path)
    run = cli(*argv)
    assert run.code == 2, (run.out, run.err)
    assert "--table" in run.err
    assert not (tmp_path / ".pagerduty-bridge").exists()


@pytest.mark.parametrize(
    ("given", "url"),
    [
        *(("option", url) for url in ("localhost:5000", "", "http://", "http://[::1")),
        *(("environment", url) for url in ("localhost:5000", "http://", "http://[::1")),
    ],
)
def test_a_malformed_aws_endpoint_is_one_line_naming_it_not_a_bug_report(
    url: str, given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--endpoint-url localhost:5000`` (the scheme forgotten, as moto's port is often written) ended in
    "unexpected ValueError … (a bug: run again with --debug and report it)"."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if given == "environment":
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        run = cli("incidents", "list", "--table", "incidents")
    else:
        run = cli("incidents", "list", "--table", "incidents", "--endpoint-url", url)
    assert run.code == 2
    assert "a bug" not in run.err
    assert "--endpoint-url" in run.err and "AWS_ENDPOINT_URL" in run.err
    assert len(run.err.splitlines()) == 1, run.err


def test_a_malformed_region_is_still_named_as_the_region() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "bad region!")
        run = cli("incidents", "list", "--table", "incidents")
    assert run.code == 2
    assert "region" in run.err and "endpoint URL" not in run.err


@pytest.mark.parametrize(
    "argv",
    [("replay", ""), ("replay", "--send", "other.json", ""), ("replay", "--state", "", "event.json")],
    ids=["replay", "replay-send", "replay-state"],
)
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(
    argv: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``replay --send "$EVENT"`` with the variable unset replayed, and with --send paged, every event
    file of the current folder: ``Path("")`` is ``.``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", "abcdefghijklmnopqrstuvwxyz012345")
    monkeypatch.setenv("PAGERDUTY_EVENTS_URL", "http://127.0.0.1:9/v2/enqueue")
    monkeypatch.setenv("PAGERDUTY_RETRY_BUDGET_SECONDS", "1")
    (tmp_path / "event.json").write_bytes(SAMPLE.read_bytes())
    (tmp_path / "other.json").write_bytes(SAMPLE.read_bytes())
    run = cli(*argv)
    assert run.code == 2, run.out
    assert run.out == ""
    assert "empty" in run.err
    assert not (tmp_path / ".pagerduty-bridge").exists()


@pytest.mark.parametrize("environment", ["", "   "])
def test_trigger_refuses_an_empty_environment(environment: str, tmp_path: Path) -> None:
    """``--environment "$ENV"`` with the variable unset paged under the dedup key
    ``-hybrid-routing-…``: not the environment's incident, a second one beside it."""
    run = cli(
        "trigger", "high-failure-rate", "--current", "85", "--threshold", "95",
        "--environment", environment, "--state", str(tmp_path / "state.db"), "--json",
    )  # fmt: skip
    assert run.code == 2, run.out
    assert "--environment" in run.err


def test_trigger_takes_the_environment_as_the_variable_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ENVIRONMENT variable is read stripped: the option names the same incident."""
    argv = ("trigger", "high-failure-rate", "--current", "85", "--threshold", "95", "--json")
    by_option = cli(*argv, "--environment", " staging\n", "--state", str(tmp_path / "a.db"))
    monkeypatch.setenv("ENVIRONMENT", " staging\n")
    by_variable = cli(*argv, "--state", str(tmp_path / "b.db"))
    assert by_option.code == by_variable.code == 0, (by_option.err, by_variable.err)
    assert (
        by_option.json()["dedup_key"]
        == by_variable.json()["dedup_key"]
        == ("staging-hybrid-routing-high-failure-rate-SupportModeSuccessRate")
    )


@pytest.mark.parametrize("matcher", ["dimension.DBInstanceIdentifier=", "tag.team=", "namespace=", "alarm_name=  "])
def test_silence_add_refuses_an_empty_glob(matcher: str, tmp_path: Path) -> None:
    """An absent field is the empty string, so ``--match "dimension.DBInstanceIdentifier=$DB"`` with
    the variable unset silenced every alarm without that dimension: an EC2 alarm went unpaged during
    a database's maintenance."""
    state = str(tmp_path / "state.db")
    run = cli("silence", "add", "--match", matcher, "--for", "2h", "--comment", "db upgrade", "--state", state)
    assert run.code == 2, run.out
    assert "--match" in run.err and "empty" in run.err
    replayed = cli("replay", "--state", state, "--json", str(SAMPLE.with_name("05-ec2-cpu-alarm.json")))
    assert replayed.json()["action"] == "trigger"


def _run_cli_process(*argv: str, stdout: int | None, close_stdout: bool = False) -> subprocess.CompletedProcess[str]:
    """``pagerduty-bridge ARGV`` in its own process: stdout a given descriptor, or closed (``>&-``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda"), "PAGERDUTY_INTEGRATION_KEY": ROUTING_KEY}
    return subprocess.run(
        ["sh", "-c", 'exec "$0" -m pagerduty_bridge "$@" >&-', sys.executable, *argv]
        if close_stdout
        else [sys.executable, "-m", "pagerduty_bridge", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )


def _pages_of_a_whole_run(fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    fake_pd.reset()
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    whole = ["replay", "--send", "--events-url", fake_pd.url, "--state", str(tmp_path / "whole.db"), str(EVENTS)]
    assert main(whole, out=io.StringIO(), err=io.StringIO()) == 0
    return len(fake_pd.accepted())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_output_to_a_full_disk_says_so_in_one_line_and_every_page_still_goes(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``replay --send events/ > log`` on a full disk ended at the first flush with "unexpected OSError
    … (a bug)", the pages after it unsent."""
    argv = ("replay", "--send", "--events-url", fake_pd.url, "--state", str(tmp_path / "full.db"), str(EVENTS))
    with open("/dev/full", "w") as full:
        run = _run_cli_process(*argv, stdout=full.fileno())
    sent = len(fake_pd.accepted())
    assert sent == _pages_of_a_whole_run(fake_pd, monkeypatch, tmp_path) > 1
    assert run.returncode == 2
    (line,) = run.stderr.splitlines()
    assert "output" in line and "No space left on device" in line and "a bug" not in line, line


def test_a_closed_stdout_is_a_reader_gone_and_every_page_still_goes(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run with stdout closed (``>&-``, a daemon's cron job) the first line ended the command with
    "unexpected AttributeError: 'NoneType' object has no attribute 'write' (a bug)", the rest unsent."""
    argv = ("replay", "--send", "--events-url", fake_pd.url, "--state", str(tmp_path / "closed.db"), str(EVENTS))
    run = _run_cli_process(*argv, stdout=None, close_stdout=True)
    sent = len(fake_pd.accepted())
    assert sent == _pages_of_a_whole_run(fake_pd, monkeypatch, tmp_path) > 1
    assert (run.returncode, run.stderr) == (0, "")


@pytest.mark.parametrize(
    "secret_value", ["old-secret\nnew-secret", '["old-secret", "new-secret"]', "new-secret\n", "  new-secret  "]
)
def test_webhook_verify_reads_the_secret_as_the_receiver_does(secret_value: str, tmp_path: Path) -> None:
    """The receiver takes a secret of several lines or a JSON list (a rotation), each stripped: the
    value pasted from the secret, ``webhook verify`` said "mismatch" (exit 1) for a delivery the
    function accepts."""
    body = json.dumps({"event": {"id": "01", "event_type": "incident.acknowledged", "data": {}}}).encode()
    signature = "v1=" + hmac.new(b"new-secret", body, hashlib.sha256).hexdigest()
    assert verify(body, signature, signing_secrets(secret_value)) is Verdict.VALID  # what the function does
    captured = tmp_path / "body.json"
    captured.write_bytes(body)
    run = cli("webhook", "verify", "--secret", secret_value, "--signature", signature, str(captured), "--json")
    assert (run.code, run.json()["verdict"]) == (0, "valid"), run.err
    assert "new-secret" not in run.out + run.err


def test_webhook_verify_refuses_an_empty_secret(tmp_path: Path) -> None:
    """``--secret "$SECRET"`` with the variable unset is no secret to check with, not a "mismatch"."""
    captured = tmp_path / "body.json"
    captured.write_bytes(b"{}")
    run = cli("webhook", "verify", "--secret", "", "--signature", "v1=" + "0" * 64, str(captured))
    assert run.code == 2 and "--secret" in run.err


def test_resolving_by_hand_again_sends_a_resolve_that_did_not_reach_pagerduty(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``incidents resolve KEY --send`` whose resolve did not reach PagerDuty (exit 1, "not resolved") records
    the incident resolved with its resolve still to send; run again, as an operator does, it said
    "nothing to resolve" (exit 2) and the incident stayed open in PagerDuty."""
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    state = str(tmp_path / "state.db")
    alarm = str(SAMPLE.with_name("05-ec2-cpu-alarm.json"))
    key = "web-prod-cpu-high-CPUUtilization"
    assert cli("replay", "--send", "--events-url", fake_pd.url, "--state", state, alarm).code == 0
    down = ("--events-url", "http://127.0.0.1:9/v2/enqueue", "--retry-budget", "1")  # PagerDuty unreachable
    refused = cli("incidents", "resolve", key, "--send", *down, "--state", state)
    assert refused.code == 1 and "not resolved" in refused.err
    assert key in fake_pd.open_alerts()

    again = cli("incidents", "resolve", key, "--send", "--events-url", fake_pd.url, "--state", state, "--json")

    assert again.code == 0, again.err
    assert again.json()["sent"] is True
    assert key not in fake_pd.open_alerts()
    shown = cli_json("incidents", "show", key, "--state", state, "--json")
    assert (shown["status"], shown.get("pending_action")) == ("resolved", None)
    assert cli("incidents", "resolve", key, "--send", "--events-url", fake_pd.url, "--state", state).code == 2


@pytest.mark.parametrize("given", ["pagerduty-bridge-alarms", "", "arn:aws:sns:us-east-1"])
def test_audit_given_no_topic_arn_says_so_in_one_line(topic: str, given: str) -> None:
    """``audit --topic-arn NAME`` (the topic's name, not its ARN) ended in "unexpected ValueError … (a
    bug)"; an empty one in a complaint about a StackName the operator never gave."""
    run = cli("audit", "--topic-arn", given)
    assert run.code == 2
    assert run.err.startswith("pagerduty-bridge: --topic-arn ") and "not an SNS topic ARN" in run.err, run.err
    assert "a bug" not in run.err and "StackName" not in run.err


@pytest.mark.parametrize(
    "argv",
    [
        ("silence", "add", "--match", "alarm_name=x", "--for", "1h", "--comment", "caf\udce9"),
        ("silence", "add", "--match", "alarm_name=caf\udce9*", "--for", "1h", "--comment", "upgrade"),
        ("incidents", "show", "\udcff"),
    ],
    ids=["comment", "match", "incident-key"],
)
def test_an_argument_that_is_not_utf8_is_one_line_not_a_bug_report(argv: tuple[str, ...], tmp_path: Path) -> None:
    """Bytes that are not UTF-8 on the command line (Latin-1 typed into a UTF-8 terminal) reach Python
    as lone surrogates: writing them to the store ended in "unexpected UnicodeEncodeError … (a bug)"."""
    state = tmp_path / "state.db"
    assert cli("silence", "list", "--state", str(state)).code == 2  # read-only: no file yet
    assert (
        cli("silence", "add", "--match", "alarm_name=y", "--for", "1h", "--comment", "c", "--state", str(state)).code
        == 0
    )
    run = cli(*argv, "--state", str(state))
    assert run.code == 2
    (line,) = run.err.splitlines()
    assert "UTF-8" in line and "a bug" not in line, line


def test_a_file_name_that_is_not_utf8_is_still_replayed(tmp_path: Path) -> None:
    """File names are the file system's bytes, not text: one that is not UTF-8 is read all the same."""
    odd = tmp_path / "caf\udce9.json"
    odd.write_bytes(SAMPLE.read_bytes())
    run = cli("replay", "--json", str(odd))
    assert run.code == 0, run.err
    assert run.json()["action"] == "trigger"


def test_the_stand_in_answers_every_one_of_many_clients_at_once(fake_pd: FakePagerDuty) -> None:
    """socketserver's listen backlog of 5 reset about a quarter of 200 clients connecting at once: a
    sender takes a reset for an outcome it cannot know, which PagerDuty never gives it for load."""
    clients = 100
    start = threading.Barrier(clients)
    answers: list[object] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        body = {"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": f"key-{number % 7}",
                "payload": {"summary": "s", "source": "s", "severity": "info"}}  # fmt: skip
        request = urllib.request.Request(fake_pd.url, data=json.dumps(body).encode(), method="POST")
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer: object = response.status
        except OSError as exc:
            answer = repr(exc)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [202] * clients
    assert len(fake_pd.accepted()) == clients
