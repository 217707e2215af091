"""The audit against moto's CloudWatch and SNS: it flags the wrongly wired alarms, and nothing else.

moto does not implement composite alarms, so composites are added by a small fake in front of moto's
client (:class:`WithComposites`); everything about metric alarms is moto's own.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters
from moto import mock_aws

from pagerduty_bridge.audit import ProblemCode, audit

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def _metric_alarm(cloudwatch: Any, name: str, **actions: Any) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=f"{name}: checkout errors",
        MetricName="Errors",
        Namespace="Shop",
        Statistic="Sum",
        Dimensions=[{"Name": "Service", "Value": name}],
        Period=60,
        EvaluationPeriods=3,
        DatapointsToAlarm=2,
        Threshold=5.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
        **actions,
    )


class WithComposites:
    """Moto's CloudWatch client, with composite alarms it cannot store added to DescribeAlarms."""

    def __init__(self, client: Any, composites: list[dict[str, Any]]) -> None:
        self._client = client
        self.composites = composites
        self.meta = client.meta
        self.calls: list[str] = []

    def describe_alarms(self, **arguments: Any) -> dict[str, Any]:
        self.calls.append("describe_alarms")
        page = self._client.describe_alarms(**arguments)
        return {**page, "CompositeAlarms": [*page.get("CompositeAlarms", []), *self.composites]}

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._client, name)


class Paged:
    """A CloudWatch client whose DescribeAlarms answers in pages of one, as a long account would."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.meta = client.meta
        self.tokens: list[str | None] = []

    def describe_alarms(self, **arguments: Any) -> dict[str, Any]:
        self.tokens.append(arguments.get("NextToken"))
        everything = self._client.describe_alarms(AlarmTypes=arguments["AlarmTypes"])["MetricAlarms"]
        index = int(arguments.get("NextToken") or 0)
        page: dict[str, Any] = {"MetricAlarms": everything[index : index + 1], "CompositeAlarms": []}
        if index + 1 < len(everything):
            page["NextToken"] = str(index + 1)
        return page


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, str, str]]:
    """CloudWatch and SNS clients, the bridge topic and an unrelated topic."""
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="pagerduty-bridge-alarms")["TopicArn"]
        other = sns.create_topic(Name="team-chat")["TopicArn"]
        yield cloudwatch, sns, topic, other


def _codes(findings: list[Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in findings:
        found.setdefault(finding.alarm_name, set()).add(finding.problem.code.value)
    return found


def _fleet(cloudwatch: Any, topic: str, other: str) -> None:
    _metric_alarm(cloudwatch, "well-wired", AlarmActions=[topic], OKActions=[topic])
    _metric_alarm(cloudwatch, "half-wired", AlarmActions=[topic, other], OKActions=[other])
    _metric_alarm(cloudwatch, "disabled", AlarmActions=[topic], OKActions=[topic], ActionsEnabled=False)
    _metric_alarm(cloudwatch, "flapping", AlarmActions=[topic], OKActions=[topic], InsufficientDataActions=[topic])
    _metric_alarm(cloudwatch, "unrelated", AlarmActions=[other])
    _metric_alarm(cloudwatch, "unrelated-half-wired", AlarmActions=[other], InsufficientDataActions=[other])
    _metric_alarm(cloudwatch, "silent")


def test_flags_the_wrong_alarms_and_nothing_else(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, other = aws
    _fleet(cloudwatch, topic, other)
    assert _codes(audit(cloudwatch, topic)) == {
        "half-wired": {"no-ok-action"},
        "disabled": {"actions-disabled"},
        "flapping": {"insufficient-data-unhandled"},
    }


def test_a_well_wired_account_is_clean(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, other = aws
    _metric_alarm(cloudwatch, "well-wired", AlarmActions=[topic], OKActions=[topic])
    _metric_alarm(cloudwatch, "unrelated", AlarmActions=[other])
    assert audit(cloudwatch, topic) == []


def test_an_alert_rule_for_insufficient_data_makes_it_fine(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, other = aws
    _fleet(cloudwatch, topic, other)
    seen: list[str] = []

    def handled(alarm: Mapping[str, Any]) -> bool:
        seen.append(alarm["AlarmName"])
        return alarm["AlarmName"] == "flapping"

    assert "flapping" not in _codes(audit(cloudwatch, topic, insufficient_data_ok=handled))
    assert seen == ["flapping"]


def _run(fix: str, cloudwatch: Any) -> None:
    """Apply a fix command through the client: the command's JSON is exactly the API call's input."""
    words = shlex.split(fix)
    assert words[:2] == ["aws", "cloudwatch"]
    assert words[words.index("--region") + 1] == REGION
    operation = words[2]
    if operation == "enable-alarm-actions":
        cloudwatch.enable_alarm_actions(AlarmNames=[words[words.index("--alarm-names") + 1]])
        return
    assert operation == "put-metric-alarm"
    cloudwatch.put_metric_alarm(**json.loads(words[words.index("--cli-input-json") + 1]))


def test_each_fix_is_one_command_that_fixes_the_alarm_and_keeps_the_rest(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, other = aws
    _fleet(cloudwatch, topic, other)
    before = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    findings = audit(cloudwatch, topic)
    for finding in findings:
        assert "\n" not in finding.fix
        assert finding.replaces_definition == (shlex.split(finding.fix)[2].startswith("put-"))
        _run(finding.fix, cloudwatch)
    assert audit(cloudwatch, topic, insufficient_data_ok=None) == []
    after = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert after["half-wired"]["OKActions"] == [other, topic]
    assert after["half-wired"]["AlarmActions"] == [topic, other]
    assert after["flapping"]["InsufficientDataActions"] == []
    assert after["disabled"]["ActionsEnabled"] is True
    for name in ("half-wired", "flapping"):
        for key in ("AlarmDescription", "Dimensions", "Period", "EvaluationPeriods", "DatapointsToAlarm", "Threshold"):
            assert after[name][key] == before[name][key], (name, key)
        assert after[name]["TreatMissingData"] == before[name]["TreatMissingData"]


def test_findings_serialize_with_a_stable_code_and_the_fix(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, _ = aws
    _metric_alarm(cloudwatch, "half-wired", AlarmActions=[topic])
    (finding,) = audit(cloudwatch, topic)
    data = finding.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["alarm_name"] == "half-wired"
    assert data["alarm_arn"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:half-wired"
    assert data["problem"]["code"] == "no-ok-action"
    assert "OK" in data["problem"]["message"]
    assert data["fix"].startswith("aws cloudwatch put-metric-alarm --region eu-west-1 --cli-input-json ")
    assert data["replaces_definition"] is True


def test_every_page_of_alarms_is_read(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, _ = aws
    for index in range(4):
        _metric_alarm(cloudwatch, f"alarm-{index}", AlarmActions=[topic], OKActions=[topic])
    _metric_alarm(cloudwatch, "zz-last-and-half-wired", AlarmActions=[topic])
    paged = Paged(cloudwatch)
    assert _codes(audit(paged, topic)) == {"zz-last-and-half-wired": {"no-ok-action"}}
    assert paged.tokens == [None, "1", "2", "3", "4"]


def _composite(name: str, rule: str, **actions: Any) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        "AlarmRule": rule,
        "ActionsEnabled": True,
        "AlarmActions": [],
        "OKActions": [],
        "InsufficientDataActions": [],
        "StateValue": "OK",
        **actions,
    }


def test_a_composite_and_its_child_both_paging_is_a_double_page(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, other = aws
    _metric_alarm(cloudwatch, "api-errors", AlarmActions=[topic], OKActions=[topic])
    _metric_alarm(cloudwatch, "api-latency", AlarmActions=[other], OKActions=[other])
    _metric_alarm(cloudwatch, "db-cpu", AlarmActions=[topic], OKActions=[topic])
    composites = [
        _composite(
            "api-down",
            f'ALARM("api-errors") OR ALARM(arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:api-latency)',
            AlarmActions=[topic],
            OKActions=[topic],
        ),
        _composite("db-watch", 'ALARM("db-cpu")', AlarmActions=[other]),
    ]
    client = WithComposites(cloudwatch, composites)
    findings = audit(client, topic)
    assert _codes(findings) == {"api-errors": {"double-page"}}
    (finding,) = findings
    assert "api-down" in finding.problem.message
    definition = json.loads(shlex.split(finding.fix)[-1])
    assert definition["AlarmName"] == "api-errors"
    assert (definition["AlarmActions"], definition["OKActions"]) == ([], [])
    assert set(client.calls) == {"describe_alarms"}  # read-only


def test_a_half_wired_composite_gets_a_complete_put_composite_alarm(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, _, topic, _ = aws
    composite = _composite(
        "shop-down",
        'ALARM("a") AND ALARM("b")',
        AlarmActions=[topic],
        AlarmDescription="Checkout and payments failing together",
        ActionsSuppressor="maintenance",
        ActionsSuppressorWaitPeriod=60,
        ActionsSuppressorExtensionPeriod=120,
    )
    (finding,) = audit(WithComposites(cloudwatch, [composite]), topic)
    assert finding.problem.code is ProblemCode.NO_OK_ACTION
    words = shlex.split(finding.fix)
    assert words[:3] == ["aws", "cloudwatch", "put-composite-alarm"]
    definition = json.loads(words[-1])
    assert definition == {
        "AlarmName": "shop-down",
        "AlarmDescription": "Checkout and payments failing together",
        "ActionsEnabled": True,
        "AlarmRule": 'ALARM("a") AND ALARM("b")',
        "ActionsSuppressor": "maintenance",
        "ActionsSuppressorWaitPeriod": 60,
        "ActionsSuppressorExtensionPeriod": 120,
        "AlarmActions": [topic],
        "OKActions": [topic],
        "InsufficientDataActions": [],
    }
    # botocore accepts it as PutCompositeAlarm's input (moto has no composites to store it in).
    validate_parameters(definition, cloudwatch.meta.service_model.operation_model("PutCompositeAlarm").input_shape)


def test_an_alarm_in_another_region_than_the_topic_is_flagged(aws: tuple[Any, Any, str, str]) -> None:
    _, _, topic, _ = aws
    elsewhere = boto3.client("cloudwatch", region_name="us-east-1")
    _metric_alarm(elsewhere, "virginia", AlarmActions=[topic], OKActions=[topic])
    (finding,) = audit(elsewhere, topic)
    assert finding.problem.code is ProblemCode.OTHER_REGION
    assert "us-east-1" in finding.problem.message and REGION in finding.problem.message
    definition = json.loads(shlex.split(finding.fix)[-1])
    assert definition["AlarmActions"] == definition["OKActions"] == ["<the bridge topic's ARN in us-east-1>"]
    assert "--region us-east-1" in finding.fix


def test_with_sns_a_topic_encrypted_with_the_aws_managed_key_is_flagged(aws: tuple[Any, Any, str, str]) -> None:
    cloudwatch, sns, topic, _ = aws
    _metric_alarm(cloudwatch, "well-wired", AlarmActions=[topic], OKActions=[topic])
    assert audit(cloudwatch, topic, sns=sns) == []
    sns.set_topic_attributes(TopicArn=topic, AttributeName="KmsMasterKeyId", AttributeValue="alias/aws/sns")
    (finding,) = audit(cloudwatch, topic, sns=sns)
    assert finding.alarm_name == ""
    assert finding.problem.code is ProblemCode.TOPIC_AWS_MANAGED_KEY
    assert finding.fix.startswith(f"aws sns set-topic-attributes --region {REGION} --topic-arn {topic} ")
