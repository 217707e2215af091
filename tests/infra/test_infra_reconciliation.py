"""Scheduled reconciliation: an EventBridge rule invoking the function, its dead letters, its alarm."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Duration
from aws_cdk import aws_events as events

from pagerduty_bridge_cdk.bridge import RECONCILE_DEAD_LETTERS
from pagerduty_bridge_cdk.config import BridgeConfig
from pagerduty_bridge_cdk.event_targets import TARGET_RETRY_ATTEMPTS
from pagerduty_bridge_cdk.reconciliation import DEAD_LETTERS_ALARM_DESCRIPTION
from tests.infra.conftest import Synthesized, as_list, ref


def _rules(synthesized: Synthesized) -> list[dict[str, Any]]:
    """The schedule rules (change events have a rule of their own, with an event pattern)."""
    return [
        rule["Properties"]
        for rule in synthesized.of_type("AWS::Events::Rule").values()
        if "ScheduleExpression" in rule["Properties"]
    ]


SCHEDULED = pytest.mark.parametrize("variant", ["direct", "routed"], indirect=True)
"""The variants with a schedule (``buffered`` has none: see the test of ``reconcileMinutes=0``)."""


@SCHEDULED
def test_schedule_invokes_the_function_at_the_configured_rate(variant: Synthesized) -> None:
    minutes = variant.bridge.config.reconcile_minutes
    assert minutes == {"direct": BridgeConfig().reconcile_minutes, "routed": 5}[variant.name]
    (rule,) = _rules(variant)
    assert rule["ScheduleExpression"] == events.Schedule.rate(Duration.minutes(minutes)).expression_string
    assert rule["ScheduleExpression"] == f"rate({minutes} minutes)"
    assert rule.get("State", "ENABLED") == "ENABLED"
    assert "EventPattern" not in rule
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [variant.logical_id(variant.bridge.bridge.function), "Arn"]}
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": TARGET_RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": minutes * 60,
    }
    reconciliation = variant.bridge.reconciliation
    assert reconciliation is not None
    assert ref(target["DeadLetterConfig"]["Arn"]) == variant.logical_id(reconciliation.dead_letters)


def test_the_event_the_schedule_sends_is_one_the_handler_reconciles_on(direct: Synthesized) -> None:
    """With no Input on the target, the function gets EventBridge's scheduled event as it stands."""
    from pagerduty_bridge.handler import is_schedule

    (rule,) = _rules(direct)
    (target,) = rule["Targets"]
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)
    scheduled_event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2025-10-08T16:53:06Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/reconcile"],
        "detail": {},
    }
    assert is_schedule(scheduled_event)


def test_reconcile_minutes_zero_builds_no_schedule(buffered: Synthesized) -> None:
    assert buffered.bridge.config.reconcile_minutes == 0
    assert buffered.bridge.reconciliation is None
    assert _rules(buffered) == []
    assert RECONCILE_DEAD_LETTERS not in buffered.bridge.dead_letter_queues
    principals = {p["Properties"]["Principal"] for p in buffered.of_type("AWS::Lambda::Permission").values()}
    assert "events.amazonaws.com" not in principals


@SCHEDULED
def test_only_the_rule_may_write_to_the_schedules_dead_letter_queue(variant: Synthesized) -> None:
    reconciliation = variant.bridge.reconciliation
    assert reconciliation is not None
    queue_id = variant.logical_id(reconciliation.dead_letters)
    rule_id = variant.logical_id(reconciliation.rule)
    statements = [
        statement
        for policy in variant.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert as_list(allow["Action"]) == ["sqs:SendMessage"]
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}


def test_the_schedules_dead_letter_queue_has_an_alarm_that_says_what_it_holds(direct: Synthesized) -> None:
    reconciliation = direct.bridge.reconciliation
    assert reconciliation is not None
    assert direct.bridge.dead_letter_queues[RECONCILE_DEAD_LETTERS] is reconciliation.dead_letters
    queue = {"Ref": direct.logical_id(reconciliation.dead_letters)}
    (alarm,) = [
        a["Properties"]
        for a in direct.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue["Ref"], "QueueName"]}}]
    ]
    assert alarm["AlarmDescription"] == DEAD_LETTERS_ALARM_DESCRIPTION
