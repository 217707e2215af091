"""``pagerduty-bridge audit`` against moto's CloudWatch and SNS: the wrong alarms and nothing else,
with exit codes 1 (findings), 0 (clean) and 2 (error)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.builders import cli

BASE: dict[str, Any] = {
    "MetricName": "CPUUtilization",
    "Namespace": "AWS/EC2",
    "Statistic": "Average",
    "Period": 60,
    "EvaluationPeriods": 1,
    "Threshold": 90.0,
    "ComparisonOperator": "GreaterThanThreshold",
}


@pytest.fixture
def topic() -> Iterator[str]:
    with mock_aws():
        yield boto3.client("sns").create_topic(Name="pagerduty-bridge-alarms")["TopicArn"]


def test_audit_flags_the_wrong_alarms_with_their_fixes(topic: str) -> None:
    cloudwatch = boto3.client("cloudwatch")
    other = boto3.client("sns").create_topic(Name="team-chat")["TopicArn"]
    cloudwatch.put_metric_alarm(AlarmName="good", AlarmActions=[topic], OKActions=[topic], **BASE)
    cloudwatch.put_metric_alarm(AlarmName="missing-ok", AlarmActions=[topic], **BASE)
    cloudwatch.put_metric_alarm(
        AlarmName="disabled", AlarmActions=[topic], OKActions=[topic], ActionsEnabled=False, **BASE
    )
    cloudwatch.put_metric_alarm(AlarmName="unrelated", AlarmActions=[other], **BASE)

    run = cli("audit", "--topic-arn", topic, "--json")

    assert run.code == 1, run.err
    findings = json.loads(run.out)
    by_alarm = {f["alarm_name"]: f for f in findings}
    assert set(by_alarm) == {"missing-ok", "disabled"}
    assert by_alarm["missing-ok"]["problem"]["code"] == "no-ok-action"
    assert "--ok-actions" in by_alarm["missing-ok"]["fix"] or "OKActions" in by_alarm["missing-ok"]["fix"]
    assert by_alarm["disabled"]["fix"].startswith("aws cloudwatch enable-alarm-actions")
    human = cli("audit", "--topic-arn", topic)
    assert human.code == 1 and "missing-ok" in human.out and "fix:" in human.out


def test_a_clean_account_exits_0(topic: str) -> None:
    boto3.client("cloudwatch").put_metric_alarm(AlarmName="good", AlarmActions=[topic], OKActions=[topic], **BASE)
    run = cli("audit", "--topic-arn", topic, "--json")
    assert (run.code, json.loads(run.out)) == (0, [])


def test_insufficient_data_paging_without_a_rule_is_flagged_unless_a_rule_handles_it(
    topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName="heartbeat", AlarmActions=[topic], OKActions=[topic], InsufficientDataActions=[topic], **BASE
    )
    flagged = cli("audit", "--topic-arn", topic, "--json")
    assert [f["problem"]["code"] for f in json.loads(flagged.out)] == ["insufficient-data-unhandled"]
    rules = {"rules": [{"name": "beats", "match": {"alarm_name": "heartbeat"}, "insufficient_data": "resolve"}]}
    monkeypatch.setenv("ALERT_RULES", json.dumps(rules))
    assert cli("audit", "--topic-arn", topic, "--json").code == 0


def test_an_unreachable_aws_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    run = cli(
        "audit", "--topic-arn", "arn:aws:sns:eu-west-1:123456789012:alarms", "--endpoint-url", "http://127.0.0.1:9"
    )
    assert run.code == 2
    assert "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1
