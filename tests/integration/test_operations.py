"""Operating the bridge from the command line: incidents, stats, health, trigger, reconcile, redrive,
publish-test-alarm — on the embedded store, and against moto's CloudWatch, SNS and SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.envelopes import Notification, parse_event
from pagerduty_bridge.models import AlarmNotification, AlarmState
from tests import builders
from tests.builders import cli_json, lambda_environment, put_cpu_alarm
from tests.conftest import EVENTS, ROUTING_KEY, FakeLambdaContext, load_json

SEED_KEY = "production-hybrid-routing-high-failure-rate-SupportModeSuccessRate"


def cli(*argv: str) -> tuple[int, str, str]:
    """The shared runner's exit code, stdout and stderr, as a tuple for unpacking."""
    run = builders.cli(*argv)
    return run.code, run.out, run.err


def test_the_incident_lifecycle_from_the_command_line(fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    send = ("--send", "--events-url", fake_pd.url)
    assert cli("replay", *send, str(EVENTS / "01-seed-high-failure-rate-alarm.json"))[0] == 0
    (listed,) = cli_json("incidents", "list", "--json")
    assert (listed["dedup_key"], listed["status"], listed["severity"]) == (SEED_KEY, "triggered", "critical")
    assert listed["summary"] and listed["triggered_at"] == "2025-01-14T14:30:00.000000Z"
    assert listed["resolved_at"] is None

    code, out, _ = cli("incidents", "ack", SEED_KEY)
    assert code == 0 and "dry run" in out
    assert cli_json("incidents", "show", SEED_KEY, "--json")["status"] == "triggered", "a dry run changes nothing"
    code, out, _ = cli("incidents", "ack", SEED_KEY, *send)
    assert code == 0 and "acknowledged" in out
    assert cli_json("incidents", "show", SEED_KEY, "--json")["status"] == "acknowledged"
    assert fake_pd.alerts[(ROUTING_KEY, SEED_KEY)].status == "acknowledged"

    assert cli("replay", *send, str(EVENTS / "02-seed-high-failure-rate-ok.json"))[0] == 0
    assert cli_json("incidents", "list", "--json") == []
    (everything,) = cli_json("incidents", "list", "--all", "--json")
    assert everything["status"] == "resolved"
    assert everything["resolved_at"] == "2025-01-14T14:35:00.000000Z"

    stats = cli_json("stats", "--json")
    assert stats["mean_resolution_seconds"] == 300
    assert (stats["acknowledgement_rate"], stats["auto_resolution_rate"]) == (1.0, 1.0)
    assert stats["incidents_per_hour"] == 1.0


def test_unknown_keys_exit_non_zero_naming_the_key() -> None:
    assert cli("replay", "--record", str(EVENTS / "05-ec2-cpu-alarm.json"))[0] == 0
    for argv in (("incidents", "show", "nope"), ("incidents", "ack", "nope"), ("incidents", "resolve", "nope")):
        code, _, err = cli(*argv)
        assert code != 0
        assert "Incident not found: nope" in err


def test_a_resolved_incident_is_explained_not_just_missing() -> None:
    assert cli("replay", "--record", str(EVENTS / "05-ec2-cpu-alarm.json"), str(EVENTS / "06-ec2-cpu-ok.json"))[0] == 0
    code, _, err = cli("incidents", "ack", "web-prod-cpu-high-CPUUtilization")
    assert code == 2
    assert "Incident not found: web-prod-cpu-high-CPUUtilization (it was resolved at 2025-01-14T15:25" in err


def test_resolve_and_clear(fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    cli("replay", "--record", str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert cli("incidents", "resolve", "web-prod-cpu-high-CPUUtilization")[0] == 0
    (incident,) = cli_json("incidents", "list", "--all", "--json")
    assert incident["status"] == "triggered", "a dry resolve leaves the store as it was"
    assert (
        cli("incidents", "resolve", "web-prod-cpu-high-CPUUtilization", "--send", "--events-url", fake_pd.url)[0] == 0
    )
    (incident,) = cli_json("incidents", "list", "--all", "--json")
    assert (incident["status"], incident["resolution"]) == ("resolved", "manual")
    code, _, err = cli("incidents", "clear")
    assert code == 2 and "--yes" in err
    assert cli("incidents", "clear", "--yes")[0] == 0
    assert cli_json("incidents", "list", "--all", "--json") == []


@pytest.mark.parametrize("since", ["0s", "0.0000001s", "0m"])
def test_stats_over_no_time_is_one_clear_line(since: str) -> None:
    assert cli("replay", "--record", str(EVENTS / "05-ec2-cpu-alarm.json"))[0] == 0
    code, out, err = cli("stats", "--since", since)
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [f"pagerduty-bridge: --since {since}: a window must be longer than zero"]


def test_readable_tables_for_people() -> None:
    cli("replay", "--record", str(EVENTS))
    code, out, _ = cli("incidents", "list")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["DEDUP_KEY", "STATUS", "SEVERITY"]
    assert "web-prod-5xx" in out


def test_trigger_prints_the_seeds_dedup_key() -> None:
    line = cli_json("trigger", "high-failure-rate", "--current", "85", "--threshold", "95", "--json")
    assert line["dedup_key"] == SEED_KEY
    assert line["event"]["payload"]["custom_details"]["currentValue"] == 85
    staging = cli_json(
        "trigger", "high-latency", "--current", "7450", "--threshold", "5000", "--environment", "staging", "--json"
    )
    assert staging["dedup_key"].startswith("staging-hybrid-routing-high-latency-")


def test_health_names_the_missing_key_then_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("replay", "--record", str(EVENTS / "06-ec2-cpu-ok.json"))[0] == 0
    code, out, _ = cli("health")
    assert code == 1
    assert "PAGERDUTY_INTEGRATION_KEY" in out
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    report = cli_json("health", "--json")
    assert report["healthy"] is True
    assert ROUTING_KEY not in json.dumps(report)


def _many_alarms(folder: Path, count: int) -> None:
    template = load_json(EVENTS / "05-ec2-cpu-alarm.json")
    for index in range(count):
        message = json.loads(template["Records"][0]["Sns"]["Message"])
        message["AlarmName"] = f"fleet-cpu-{index:02d}"
        event = json.loads(json.dumps(template))
        event["Records"][0]["Sns"]["Message"] = json.dumps(message)
        (folder / f"{index:02d}.json").write_text(json.dumps(event))


def test_health_warns_with_the_count_above_ten_active(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    folder = tmp_path / "fleet"
    folder.mkdir()
    _many_alarms(folder, 10)
    assert cli("replay", "--record", str(folder))[0] == 0
    assert cli("health")[0] == 0
    _many_alarms(folder, 11)
    cli("replay", "--record", str(folder))
    code, out, _ = cli("health")
    assert code == 1
    assert "11 active incidents" in out


def test_health_ping_reaches_pagerduty_without_an_alert(
    monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty
) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    report = json.loads(cli("health", "--json", "--ping", "--events-url", fake_pd.url)[1])
    assert {c["name"]: c["ok"] for c in report["checks"]}["pagerduty"] is True
    assert fake_pd.alerts == {}


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_reconcile_resolves_incidents_whose_alarm_is_ok_or_gone(
    aws: None, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    cloudwatch = boto3.client("cloudwatch")
    for name in ("web-prod-cpu-high", "web-prod-5xx"):
        put_cpu_alarm(cloudwatch, name)
    cloudwatch.set_alarm_state(AlarmName="web-prod-cpu-high", StateValue="OK", StateReason="recovered")
    cloudwatch.set_alarm_state(AlarmName="web-prod-5xx", StateValue="ALARM", StateReason="still broken")
    send = ("--send", "--events-url", fake_pd.url)
    for sample in ("05-ec2-cpu-alarm.json", "07-metric-math-alarm.json", "08-anomaly-detection-alarm.json"):
        assert cli("replay", *send, str(EVENTS / sample))[0] == 0
    results = {r["alarm_name"]: r for r in cli_json("reconcile", "--json", *send)}
    assert (results["web-prod-cpu-high"]["action"], results["web-prod-cpu-high"]["reason"]) == ("resolved", "alarm_ok")
    assert results["web-prod-5xx"]["action"] == "kept"
    assert (results["orders-api-latency-anomaly"]["action"], results["orders-api-latency-anomaly"]["reason"]) == (
        "resolved",
        "alarm_gone",
    )
    assert set(fake_pd.open_alerts()) == {"web-prod-5xx"}
    resolved = {i["dedup_key"]: i for i in cli_json("incidents", "list", "--all", "--json")}
    assert resolved["web-prod-cpu-high-CPUUtilization"]["resolution"] == "reconciled"
    assert resolved["web-prod-cpu-high-CPUUtilization"]["resolution_note"] == "alarm is OK in CloudWatch"


def test_publish_test_alarm_sends_a_real_alarm_message(aws: None) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName="watch")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    for state in ("ALARM", "OK"):
        code, out, _ = cli("publish-test-alarm", "--topic-arn", topic, "--alarm-state", state)
        assert code == 0 and "published" in out
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    states = []
    for message in messages:
        (parsed,) = parse_event(json.loads(message["Body"]))
        assert isinstance(parsed, Notification)
        assert isinstance(parsed.content, AlarmNotification)
        assert parsed.content.alarm_name == "pagerduty-bridge-test-alarm"
        assert parsed.content.region_code == "eu-west-1"
        states.append(parsed.content.new_state)
    assert sorted(states) == [AlarmState.ALARM, AlarmState.OK]


def test_redrive_both_dead_letter_shapes_idempotently(
    aws: None, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    alarm_event = load_json(EVENTS / "05-ec2-cpu-alarm.json")
    sns_notification = {**alarm_event["Records"][0]["Sns"], "SigningCertURL": "https://sns.example/cert.pem"}
    destination_record = {
        "version": "1.0",
        "timestamp": "2025-01-14T15:30:00.000Z",
        "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": load_json(EVENTS / "07-metric-math-alarm.json"),
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "Failed to send PagerDuty event: timeout"},
    }
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(sns_notification))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(destination_record))
    sqs.send_message(QueueUrl=queue, MessageBody="not json at all")

    code, out, err = cli("redrive", "--queue-url", queue, "--send", "--events-url", fake_pd.url)
    assert code == 1, "the unreadable message is kept and reported"
    assert "redriven 2, kept 1" in out
    assert "not JSON" in err
    assert set(fake_pd.open_alerts()) == {"web-prod-cpu-high-CPUUtilization", "web-prod-5xx"}
    requests_before = len(fake_pd.requests)

    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(sns_notification))
    code, out, _ = cli("redrive", "--queue-url", queue, "--send", "--events-url", fake_pd.url)
    assert "redriven 1" in out
    assert len(fake_pd.requests) == requests_before, "a redriven duplicate sends nothing"


SCHEDULE_EVENT = {
    "version": "0",
    "id": "5b1f6f0a-0000-0000-0000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2025-01-14T16:00:00Z",
    "region": "eu-west-1",
    "resources": ["arn:aws:events:eu-west-1:123456789012:rule/pagerduty-bridge-reconcile"],
    "detail": {},
}


@pytest.mark.parametrize(("remaining_ms", "resolved"), [(60_000, True), (3_000, False)])
def test_the_scheduled_run_reconciles_within_the_invocations_time(
    aws: None,
    fake_pd: FakePagerDuty,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    remaining_ms: int,
    resolved: bool,
) -> None:
    from pagerduty_bridge import handler
    from pagerduty_bridge.store.dynamodb import create_table

    create_table(boto3.client("dynamodb"), "incidents")
    lambda_environment(monkeypatch, table="incidents", events_url=fake_pd.url)
    handler.lambda_handler(load_json(EVENTS / "05-ec2-cpu-alarm.json"), FakeLambdaContext(remaining_millis=60_000))
    assert set(fake_pd.open_alerts()) == {"web-prod-cpu-high-CPUUtilization"}
    # The OK notification never came (no OKActions); CloudWatch says OK now.
    cloudwatch = boto3.client("cloudwatch")
    put_cpu_alarm(cloudwatch, "web-prod-cpu-high")
    cloudwatch.set_alarm_state(AlarmName="web-prod-cpu-high", StateValue="OK", StateReason="recovered")
    capsys.readouterr()

    result = handler.lambda_handler(SCHEDULE_EVENT, FakeLambdaContext(remaining_millis=remaining_ms))

    assert result["reconciled"] == 1
    assert result["resolved"] == (1 if resolved else 0)
    assert (fake_pd.open_alerts() == {}) is resolved
    output = capsys.readouterr().out
    assert ('"IncidentResolvedReconciled"' in output) is resolved
    assert ROUTING_KEY not in output


def test_reconcile_says_how_far_it_is_on_stderr(
    aws: None, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pagerduty_bridge.cli import aws as aws_commands

    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    monkeypatch.setattr(aws_commands, "PROGRESS_EVERY", 2)
    folder = tmp_path / "fleet"
    folder.mkdir()
    _many_alarms(folder, 5)
    assert cli("replay", "--record", str(folder))[0] == 0
    code, out, err = cli("reconcile", "--json")
    assert code == 0
    assert len(json.loads(out)) == 5, "stdout stays the result"
    assert err.splitlines() == ["… 2 incidents reconciled (0 failed)", "… 4 incidents reconciled (0 failed)"]


def test_redrive_says_how_far_it_is_on_stderr(
    aws: None, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pagerduty_bridge.cli import aws as aws_commands

    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    monkeypatch.setattr(aws_commands, "PROGRESS_EVERY", 10)
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="many-dead-letters")["QueueUrl"]
    for index in range(25):
        body = builders.sns_notification(builders.alarm_message(f"lost-{index:02d}"))
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    code, out, err = cli("redrive", "--queue-url", queue, "--send", "--events-url", fake_pd.url, "--json")
    assert code == 0, err
    assert json.loads(out)["redriven"] == 25
    assert err.splitlines() == ["… 10 received, 10 redriven, 0 kept", "… 20 received, 20 redriven, 0 kept"]
    assert len(fake_pd.open_alerts()) == 25
