"""README.md's commands as a team adopting the bridge runs them, against moto and the stand-in.

Each test is one command the README shows, run as written, where it once failed or disagreed with the
README.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.builders import cli
from tests.integration.test_audit_cli import BASE

TOPIC_OUTPUT_DESCRIPTION = "Put this ARN in your alarms' AlarmActions AND OKActions"


def stack_with_topic_output(name: str, output_key: str) -> str:
    """A deployed stack holding the alarm topic and its output under ``output_key``; returns the topic ARN."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"{name}-alarms"}}},
        "Outputs": {output_key: {"Value": {"Ref": "Topic"}, "Description": TOPIC_OUTPUT_DESCRIPTION}},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    return str(boto3.client("sns").list_topics()["Topics"][-1]["TopicArn"])


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.mark.parametrize(
    ("stack", "output_key"),
    [
        ("PagerDutyBridge-prod", "AlarmTopicArnF6DB96D2"),  # the standalone stack
        ("ShopMonitoring", "PagerAlarmTopicArnB4209AB4"),  # the construct with id "Pager" in the README's app
    ],
)
def test_audit_stack_finds_the_topic_of_the_standalone_stack_and_of_the_construct(
    aws: None, stack: str, output_key: str
) -> None:
    """`audit --stack NAME` reads the topic from the stack's outputs: the construct's output key carries
    the construct's id before ``AlarmTopicArn``, so a prefix match refused every app using the construct."""
    topic = stack_with_topic_output(stack, output_key)
    boto3.client("cloudwatch").put_metric_alarm(AlarmName="missing-ok", AlarmActions=[topic], **BASE)

    run = cli("audit", "--stack", stack, "--json")

    assert run.code == 1, run.err
    assert [f["alarm_name"] for f in json.loads(run.out)] == ["missing-ok"]


def test_rules_test_expectations_take_the_values_it_prints(tmp_path: Any) -> None:
    """`rules test --expect FIELD=VALUE` is a CI check: the value as the command prints it (``False``,
    ``-`` for none) must hold, as its lower-case and empty spellings do."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"name": "db", "match": {"alarm_name": "db-*"}, "suppress": True}]}))
    base = ("rules", "test", "--rules", str(rules))
    shown = cli(*base, "--alarm-name", "web")
    assert "suppress           False" in shown.out and "silence            -" in shown.out, shown.out

    printed = cli(*base, "--alarm-name", "web", "--expect", "suppress=False", "--expect", "silence=-")
    spelled = cli(*base, "--alarm-name", "web", "--expect", "suppress=false", "--expect", "silence=")
    suppressed = cli(*base, "--alarm-name", "db-1", "--expect", "suppress=True", "--expect", "template=-")
    wrong = cli(*base, "--alarm-name", "db-1", "--expect", "suppress=False")
    named = cli(*base, "--alarm-name", "web", "--expect", "rule=-")

    assert (printed.code, spelled.code, suppressed.code) == (0, 0, 0), (printed.err, spelled.err, suppressed.err)
    assert wrong.code == 1 and "expectation failed: suppress" in wrong.err
    assert named.code == 1, "a rule that is shown by name is no '-'"
