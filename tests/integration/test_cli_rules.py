"""``rules test`` and ``rules check`` answer "where would this alarm page?" with the handler's own
routing: they agree with what ``replay`` sends for every sample, check expectations like a routing test,
and warn about routing aliases that have no key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.builders import cli, cli_json
from tests.conftest import EVENTS, FIXTURES, event_files, load_json

RULES = FIXTURES / "rules" / "example.yaml"
KEYS = {
    "default": "DefaultRoutingKey000000000000d3f",
    "payments": "PaymentsRoutingKey00000000000p4y",
    "web": "WebRoutingKey0000000000000000w3b",
}
"""A key per alias of the example rules; the last four characters, all replay prints, tell them apart."""
ALIAS_BY_TAIL = {key[-4:]: alias for alias, key in KEYS.items()}
NOT_ALARMS = {"11", "21", "22", "23", "24", "25"}
"""Samples holding no alarm state change: a budget text, a configuration change, SNS control messages,
an Auto Scaling notification, an SNS test message."""


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example rules and a key for each alias they route to, as the Lambda's environment has them."""
    monkeypatch.setenv("ALERT_RULES_FILE", str(RULES))
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps(KEYS))


def single_records(sample: Path, folder: Path) -> list[Path]:
    """The sample as one event file per record (``rules test --event`` routes a file's first alarm)."""
    event = load_json(sample)
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or len(records) < 2:
        return [sample]
    files = []
    for index, record in enumerate(records):
        single = copy.deepcopy(event)
        single["Records"] = [record]
        path = folder / f"{sample.stem}-record-{index}.json"
        path.write_text(json.dumps(single))
        files.append(path)
    return files


def replayed(path: Path, state: Path) -> list[dict[str, Any]]:
    run = cli("replay", "--json", "--state", str(state), str(path))
    assert run.code == 0, run.err
    lines: list[dict[str, Any]] = run.json() if run.out.count("\n") > 1 else [run.json()]
    return lines


def alarm_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["alarm_name"] and line["dedup_key"] and line["state"]]


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("sample", event_files(), ids=lambda p: p.stem)
def test_rules_test_agrees_with_replay_for_every_sample(sample: Path, tmp_path: Path) -> None:
    alarms = 0
    for index, single in enumerate(single_records(sample, tmp_path)):
        route_run = cli("rules", "test", "--event", str(single), "--json")
        lines = alarm_lines(replayed(single, tmp_path / f"{index}.db"))
        if route_run.code == 2:
            assert "holds no CloudWatch alarm" in route_run.err and lines == [], "replay found an alarm"
            continue
        (line,) = lines
        route = route_run.json()
        alarms += 1
        assert (route["alarm_name"], route["state"]) == (line["alarm_name"], line["state"])
        assert route["dedup_key"] == line["dedup_key"]
        if line["action"] == "trigger":
            payload = line["event"]["payload"]
            assert route["severity"] == payload["severity"]
            assert route["summary"] == payload["summary"]
            assert route["routing_key"] == ALIAS_BY_TAIL[line["event"]["routing_key"][-4:]]
        else:
            assert route["state"] != "ALARM" or route["suppress"], "an ALARM the rules do not suppress triggers"
            assert line["action"] in ("resolve", "none")
    assert (alarms > 0) is (sample.stem[:2] not in NOT_ALARMS), "every alarm sample is compared, and only those"


@pytest.mark.usefixtures("configured")
def test_rules_check_shows_the_severity_replay_sends(tmp_path: Path) -> None:
    checked = cli_json("rules", "check", "--json")
    assert checked["warnings"] == []
    sent = {}
    for index, sample in enumerate(event_files()):
        for line in replayed(sample, tmp_path / f"{index}.db"):
            if line["action"] == "trigger" and line["alarm_name"]:
                sent[(sample.name, line["alarm_name"])] = line["event"]["payload"]["severity"]
    shown = {(row["sample"], row["alarm_name"]): row["severity"] for row in checked["samples"]}
    for place, severity in sent.items():
        assert shown[place] == severity, place
    silent = [row for row in checked["samples"] if row["state"] == "OK"]
    assert silent and all(row["severity"] is None for row in silent), "an OK sends no severity"


def test_rules_check_warns_about_aliases_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps({"web": KEYS["web"]}))
    run = cli("rules", "check", str(RULES))
    assert run.code == 0
    assert "routing alias 'payments' has no key configured" in run.err
    assert "'web'" not in run.err
    assert "4 rules, valid" in run.out
    checked = cli_json("rules", "check", str(RULES), "--json")
    assert len(checked["warnings"]) == 1 and "payments" in checked["warnings"][0]
    assert KEYS["web"] not in run.out + run.err + json.dumps(checked)


BASE = ("rules", "test", "--rules", str(RULES))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ("--alarm-name", "payments-api-latency", "--namespace", "AWS/ApiGateway", "--metric", "Latency"),
            {"rule": "payments-critical", "severity": "critical", "routing_key": "payments", "suppress": False},
        ),
        (
            ("--alarm-name", "web-1", "--namespace", "AWS/EC2", "--metric", "CPUUtilization"),
            {"rule": "(defaults)", "routing_key": "default"},
        ),
        (
            (
                "--alarm-name",
                "web-1",
                "--namespace",
                "AWS/EC2",
                "--metric",
                "CPUUtilization",
                "--dimension",
                "InstanceId=i-0abc",
            ),
            {"rule": "web-cpu", "severity": "warning", "routing_key": "web", "dedup_key": "web-1-CPUUtilization"},
        ),
        (
            ("--alarm-name", "orders-latency", "--kind", "anomaly_detection"),
            {"rule": "anomaly-record-only", "suppress": True},
        ),
        (
            ("--alarm-name", "worker-heartbeat", "--alarm-state", "INSUFFICIENT_DATA"),
            {"rule": "heartbeats-resolve-on-missing-data", "insufficient_data": "resolve"},
        ),
    ],
)
def test_rules_test_names_the_route(options: tuple[str, ...], expected: dict[str, Any]) -> None:
    route = cli_json(*BASE, *options, "--json")
    assert {name: route[name] for name in expected} == expected
    assert route["expectations_failed"] == []


def test_expectations_decide_the_exit_code() -> None:
    options = (*BASE, "--alarm-name", "payments-api-latency")
    holds = cli(
        *options, "--expect", "severity=critical", "--expect", "routing_key=payments", "--expect", "suppress=false"
    )
    assert holds.code == 0, holds.err
    fails = cli(*options, "--expect", "severity=critical", "--expect", "routing_key=web")
    assert fails.code == 1
    assert "expectation failed: routing_key: expected 'web', got 'payments'" in fails.err
    shown = cli(*options, "--expect", "severity=info", "--json")
    assert shown.code == 1 and shown.json()["expectations_failed"] == ["severity: expected 'info', got 'critical'"]
    unknown = cli(*options, "--expect", "colour=red")
    assert unknown.code == 2 and "--expect colour" in unknown.err
    malformed = cli(*options, "--expect", "severity")
    assert malformed.code == 2 and "expected KEY=VALUE" in malformed.err
    twice = cli(*options, "--expect", "routing_key=web", "--expect", "routing_key=payments")
    assert twice.code == 2 and "--expect routing_key given twice" in twice.err


def test_rules_test_reads_an_event_file_and_refuses_one_without_an_alarm(tmp_path: Path) -> None:
    route = cli_json("rules", "test", "--rules", str(RULES), "--event", str(EVENTS / "05-ec2-cpu-alarm.json"), "--json")
    assert (route["alarm_name"], route["rule"], route["routing_key"]) == ("web-prod-cpu-high", "web-cpu", "web")
    budget = cli("rules", "test", "--event", str(EVENTS / "11-budget-plain-text.json"))
    assert budget.code == 2 and "holds no CloudWatch alarm" in budget.err


def test_rules_test_shows_the_silence_covering_the_alarm_now(tmp_path: Path) -> None:
    state = tmp_path / "silences.db"
    added = cli_json(
        "silence",
        "add",
        "--match",
        "alarm_name=payments-*",
        "--for",
        "1h",
        "--comment",
        "deploy",
        "--state",
        str(state),
        "--json",
    )
    silenced = cli_json(*BASE, "--alarm-name", "payments-api", "--state", str(state), "--json")
    assert silenced["silence"] == added["id"]
    assert (
        cli(*BASE, "--alarm-name", "payments-api", "--state", str(state), "--expect", f"silence={added['id']}").code
        == 0
    )
    other = cli_json(*BASE, "--alarm-name", "web-api", "--state", str(state), "--json")
    assert other["silence"] is None
    assert cli(*BASE, "--alarm-name", "payments-api", "--state", str(tmp_path / "typo.db")).code == 2
