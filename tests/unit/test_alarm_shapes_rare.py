"""Rare and new CloudWatch alarm shapes, as CloudWatch sends them: each must name the right alarm and
page, and its OK must resolve exactly what its ALARM opened."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from pagerduty_bridge import rendering
from pagerduty_bridge.envelopes import Notification, parse_event
from pagerduty_bridge.models import AlarmNotification, DedupKeyStrategy
from tests.builders import T0, alarm_message, cloudwatch_time, iso_z, sns_event_of

INSIGHTS_QUERY = 'SELECT AVG(ConsumedWriteCapacityUnits) FROM "AWS/DynamoDB" GROUP BY TableName ORDER BY MAX() DESC'
ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:DynamoDBInsightsAlarm"


def contributor_sns(table: str, contributor: str, state: str, minutes: int = 0) -> dict[str, Any]:
    """A contributor's own notification of a multi-time-series Metrics Insights alarm, as SNS carries it
    (the alarm's fields, plus ``AlarmContributorId`` and ``AlarmContributorAttributes``)."""
    at = T0 + timedelta(minutes=minutes)
    message = alarm_message(
        "DynamoDBInsightsAlarm",
        state,
        "OK" if state == "ALARM" else "ALARM",
        at,
        account="123456789012",
        region="us-east-1",
        NewStateReason="Threshold Crossed: 1 datapoint was less than the threshold (1.0). The most recent "
        "datapoint which crossed the threshold: [0.0 (01/12/25 13:34:00)].",
        AlarmContributorId=contributor,
        AlarmContributorAttributes={"TableName": table},
        Trigger={
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "LessThanThreshold",
            "Threshold": 1.0,
            "TreatMissingData": "",
            "Metrics": [{"Id": "m1", "Expression": INSIGHTS_QUERY, "Period": 60, "ReturnData": True}],
        },
    )
    return sns_event_of(message, at=at)


def contributor_eventbridge(table: str, contributor: str, state: str, minutes: int = 0) -> dict[str, Any]:
    """EventBridge's ``CloudWatch Alarm Contributor State Change`` (no ``previousState``, no reason data)."""
    at = T0 + timedelta(minutes=minutes)
    return {
        "version": "0",
        "id": f"event-{contributor}-{state}",
        "detail-type": "CloudWatch Alarm Contributor State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": iso_z(at),
        "region": "us-east-1",
        "resources": [ARN],
        "detail": {
            "alarmName": "DynamoDBInsightsAlarm",
            "alarmContributor": {"id": contributor, "attributes": {"TableName": table}},
            "state": {
                "value": state,
                "reason": "Threshold Crossed: 1 datapoint was less than the threshold (1.0). The most recent "
                "datapoint which crossed the threshold: [0.0 (01/12/25 13:34:00)].",
                "timestamp": cloudwatch_time(at),
            },
            "configuration": {
                "metrics": [{"id": "m1", "expression": INSIGHTS_QUERY, "returnData": True, "period": 60}],
                "description": "Metrics Insights alarm for DynamoDB ConsumedWriteCapacity per TableName",
            },
        },
    }


def only_alarm(event: dict[str, Any]) -> AlarmNotification:
    (parsed,) = parse_event(event, now=T0 + timedelta(hours=1))
    assert isinstance(parsed, Notification)
    assert isinstance(parsed.content, AlarmNotification), parsed.content
    return parsed.content


def contributor_action(table: str, contributor: str, state: str, minutes: int = 0) -> dict[str, Any]:
    """The alarm's direct Lambda action for one contributor: the same reduced document as ``alarmData``."""
    event = contributor_eventbridge(table, contributor, state, minutes)
    return {
        "source": "aws.cloudwatch",
        "alarmArn": ARN,
        "accountId": "123456789012",
        "time": event["time"],
        "region": "us-east-1",
        "alarmData": event["detail"],
    }


SHAPES = {"sns": contributor_sns, "eventbridge": contributor_eventbridge, "alarm-action": contributor_action}


@pytest.mark.parametrize("strategy", list(DedupKeyStrategy))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_contributors_ok_resolves_its_own_page_not_another_contributors(
    shape: str, strategy: DedupKeyStrategy
) -> None:
    """A Metrics Insights alarm that watches many time series (``GROUP BY``) notifies per contributor:
    table A's ALARM, then table B's ALARM, then table B's OK, all under the one alarm name. Keyed by
    the alarm alone, B's OK resolved the incident A's ALARM opened while A was still breaching, and B's
    ALARM was folded into A's page. Each contributor has its own key, the same for its ALARM and its OK."""
    build = SHAPES[shape]
    a_alarm = only_alarm(build("orders", "6d442278dba546f6", "ALARM"))
    b_alarm = only_alarm(build("payments", "0badc0ffee000001", "ALARM", 1))
    b_ok = only_alarm(build("payments", "0badc0ffee000001", "OK", 2))
    a_ok = only_alarm(build("orders", "6d442278dba546f6", "OK", 3))

    def key(alarm: AlarmNotification) -> str:
        return rendering.alarm_dedup_key(alarm, strategy, None, "prod")

    assert key(a_alarm) != key(b_alarm)
    assert key(b_ok) == key(b_alarm)
    assert key(a_ok) == key(a_alarm)
    assert a_alarm.alarm_name == "DynamoDBInsightsAlarm"
    assert a_alarm.region_code == "us-east-1" and a_alarm.account_id == "123456789012"


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_contributors_page_names_the_time_series_that_crossed(shape: str) -> None:
    """The page of one contributor says which time series crossed (its attributes), not only the alarm."""
    alarm = only_alarm(SHAPES[shape]("orders", "6d442278dba546f6", "ALARM"))

    assert rendering.alarm_summary(alarm, "prod").endswith(" on orders")
    details = rendering.alarm_details(alarm, "prod")
    assert details["contributor"] == {"id": "6d442278dba546f6", "attributes": {"TableName": "orders"}}


def test_an_alarm_level_notification_of_the_same_alarm_keeps_the_alarms_own_key() -> None:
    """The alarm's own notification ("6 out of 6 time series evaluated to ALARM") has no contributor:
    its key is the alarm's, as before, so its OK resolves it."""
    message = alarm_message("DynamoDBInsightsAlarm", NewStateReason="6 out of 6 time series evaluated to ALARM")
    alarm = only_alarm(sns_event_of(message))

    assert rendering.alarm_dedup_key(alarm, DedupKeyStrategy.ALARM_NAME, None, "prod") == (
        rendering.dedup_key_for(alarm, DedupKeyStrategy.ALARM_NAME)
    )
    assert json.dumps(rendering.alarm_details(alarm, "prod")).find("contributor") == -1


# --- a message without an ARN names its region by display name only ------------------------------------------


@pytest.mark.parametrize(
    ("display_name", "code", "console"),
    [
        ("Asia Pacific (Malaysia)", "ap-southeast-5", "https://ap-southeast-5.console.aws.amazon.com/"),
        ("Mexico (Central)", "mx-central-1", "https://mx-central-1.console.aws.amazon.com/"),
        ("Asia Pacific (Thailand)", "ap-southeast-7", "https://ap-southeast-7.console.aws.amazon.com/"),
        ("Asia Pacific (Taipei)", "ap-east-2", "https://ap-east-2.console.aws.amazon.com/"),
        ("EU (Ireland)", "eu-west-1", "https://eu-west-1.console.aws.amazon.com/"),
        ("US - N. Virginia", "us-east-1", "https://us-east-1.console.aws.amazon.com/"),
        ("AWS GovCloud (US-West)", "us-gov-west-1", "https://console.amazonaws-us-gov.com/"),
        ("China (Ningxia)", "cn-northwest-1", "https://console.amazonaws.cn/"),
    ],
)
def test_a_message_without_an_arn_is_placed_by_its_region_display_name(
    display_name: str, code: str, console: str
) -> None:
    """Older SNS messages carry no ``AlarmArn``: the region is only in ``Region``'s display name. Read
    as nothing, the page had no console link and no group, and a silence on the region missed it; the
    display name of every region (the newest too) now gives its code and partition."""
    message = alarm_message("orders-cpu", Region=display_name)
    del message["AlarmArn"]
    alarm = only_alarm(sns_event_of(message))

    assert alarm.region_code == code
    url = rendering.console_url(alarm)
    assert url is not None and url.startswith(console) and f"region={code}#" in url


def test_an_unknown_region_display_name_gives_no_region_and_the_arn_wins() -> None:
    """A display name the bridge does not know stays a name (no made-up link); an ARN always wins."""
    message = alarm_message("orders-cpu", Region="Moon (Base One)")
    del message["AlarmArn"]
    assert only_alarm(sns_event_of(message)).region_code is None
    assert only_alarm(sns_event_of(alarm_message("orders-cpu", Region="Asia Pacific (Malaysia)"))).region_code == (
        "eu-west-1"
    )
