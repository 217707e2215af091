"""Alarm parsing against real-world message variants and every envelope of one state change."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from pagerduty_bridge.alarms import aws_region, current_value_from_reason, parse_alarm_message
from pagerduty_bridge.envelopes import BadRecord, Notification, parse_event
from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.models import (
    AlarmKind,
    AlarmNotification,
    AlarmState,
    ControlMessage,
    DedupKeyStrategy,
    UnrecognizedMessage,
)
from pagerduty_bridge.rendering import alarm_summary, console_url, dedup_key_for
from tests.builders import alarm_message, eventbridge_event, sns_event_of, sns_notification, sqs_event, sqs_record
from tests.conftest import EVENTS, FIXTURES, load_json

VARIANTS = FIXTURES / "alarm_variants"


def sample(name: str) -> Path:
    """An events/ sample by the name after its number (``13-sqs-sns.json`` is ``sqs-sns.json``)."""
    (path,) = EVENTS.glob(f"[0-9][0-9]-{name}")
    return path


EXPECTED = load_json(VARIANTS / "EXPECTED.json")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_real_world_variant_parses_to_the_expected_fields(name: str) -> None:
    alarm = parse_alarm_message(load_json(VARIANTS / name))
    expected = EXPECTED[name]
    assert alarm.alarm_name == expected["alarm_name"]
    assert alarm.metric_name == expected["metric_name"]
    assert alarm.new_state.value == expected["new_state"]
    assert (alarm.old_state.value if alarm.old_state else None) == expected["old_state"]
    assert alarm.state_change_time == datetime.fromisoformat(expected["state_change_time"])
    assert alarm.region_code == expected["region_code"]
    assert alarm.current_value == expected["current_value"]
    assert alarm.threshold == expected["threshold"]
    assert alarm.kind.value == expected["kind"]


def test_every_variant_file_has_an_expectation() -> None:
    files = {p.name for p in VARIANTS.glob("*.json")} - {"EXPECTED.json"}
    assert files == set(EXPECTED)


@pytest.mark.parametrize(
    ("reason", "value"),
    [
        ("Threshold Crossed: 1 datapoint [85.0 (14/01/25 14:25:00)] was less than the threshold (95.0).", 85.0),
        ("Threshold Crossed: 2 datapoints [3.0 (12/02/19 15:44:00), 2.0 (12/02/19 15:43:00)] were", 3.0),
        ("Threshold Crossed: 1 datapoint [2.841116672E9 (12/02/19 15:44:00)] was greater", 2.841116672e9),
        ("Threshold Crossed: 1 datapoint [-4.5 (12/02/19 15:44:00)] was less", -4.5),
        ("Threshold Crossed: 1 datapoint (10.0) was greater than or equal to the threshold (10.0).", 10.0),
        ("Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint", None),
        ("", None),
    ],
)
def test_current_value_comes_from_the_reason(reason: str, value: float | None) -> None:
    assert current_value_from_reason(reason) == value


def test_old_padded_settings_and_none_unit_are_normalised() -> None:
    message = load_json(VARIANTS / "treat-missing-data-padded-old-form.json")
    alarm = parse_alarm_message(message)
    assert alarm.treat_missing_data == "missing"
    alarm = parse_alarm_message(load_json(VARIANTS / "unit-none-string.json"))
    assert alarm.unit is None


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"NewStateValue": "BROKEN"}, "NewStateValue is 'BROKEN'"),
        ({"StateChangeTime": "yesterday"}, "StateChangeTime is 'yesterday'"),
        ({"StateChangeTime": None}, "StateChangeTime is missing"),
    ],
)
def test_a_malformed_alarm_names_the_field(change: dict[str, object], complaint: str) -> None:
    message = {**load_json(VARIANTS / "threshold-int.json"), **change}
    with pytest.raises(InvalidMessageError, match=complaint):
        parse_alarm_message(message)


def test_partition_and_region_come_from_the_arn() -> None:
    govcloud = parse_alarm_message(load_json(VARIANTS / "govcloud-arn.json"))
    china = parse_alarm_message(load_json(VARIANTS / "china-arn.json"))
    assert (govcloud.partition, govcloud.region_code) == ("aws-us-gov", "us-gov-west-1")
    assert (china.partition, china.region_code) == ("aws-cn", "cn-north-1")


def _only_alarm(path: Path) -> AlarmNotification:
    parsed = parse_event(load_json(path))
    assert len(parsed) == 1
    assert isinstance(parsed[0], Notification)
    content = parsed[0].content
    assert isinstance(content, AlarmNotification), content
    return content


SAME_ALARM_ENVELOPES = [
    "sns-http-notification.json",
    "sqs-sns.json",
    "eventbridge-state-change.json",
    "alarm-lambda-action.json",
    "bare-alarm-message.json",
]


@pytest.mark.parametrize("name", SAME_ALARM_ENVELOPES)
def test_one_state_change_in_every_envelope_gives_one_key_and_summary(name: str) -> None:
    reference = _only_alarm(EVENTS / "05-ec2-cpu-alarm.json")
    alarm = _only_alarm(sample(name))
    for strategy in DedupKeyStrategy:
        assert dedup_key_for(alarm, strategy) == dedup_key_for(reference, strategy)
    assert alarm_summary(alarm, "production") == alarm_summary(reference, "production")
    assert alarm.state_change_time == reference.state_change_time
    assert (alarm.new_state, alarm.current_value, alarm.threshold) == (
        reference.new_state,
        reference.current_value,
        reference.threshold,
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("eventbridge-metric-math.json", AlarmKind.METRIC_MATH),
        ("eventbridge-anomaly.json", AlarmKind.ANOMALY_DETECTION),
        ("eventbridge-composite-suppressor.json", AlarmKind.COMPOSITE),
    ],
)
def test_eventbridge_alarm_kinds(name: str, kind: AlarmKind) -> None:
    alarm = _only_alarm(sample(name))
    assert alarm.kind is kind
    assert alarm.region_code


def test_eventbridge_tags_are_carried() -> None:
    alarm = _only_alarm(sample("eventbridge-state-change.json"))
    assert alarm.tags == {"team": "web-platform", "service": "web-prod", "severity": "critical"}


@pytest.mark.parametrize(
    "tagged",
    [
        {"AlarmTags": {"pagerduty:routing": "payments", "tier": 1}},
        {"Tags": [{"Key": "pagerduty:routing", "Value": "payments"}, {"Key": "tier", "Value": 1}]},
        {"AlarmTags": [{"key": "pagerduty:routing", "value": "payments"}, {"key": "tier", "value": "1"}, {"x": 1}]},
    ],
    ids=["map", "key-value-list", "lower-case-list"],
)
def test_an_sns_alarms_tags_are_carried(tagged: dict[str, object]) -> None:
    """Tags route and grade a page (``pagerduty:routing``, ``pagerduty:severity``): an alarm message
    that carries them, as a map or as AWS's Key/Value list, must keep every one, as text."""
    alarm = parse_alarm_message(alarm_message("tagged", **tagged))
    assert alarm.tags == {"pagerduty:routing": "payments", "tier": "1"}


@pytest.mark.parametrize(
    "name",
    ["sns-subscription-confirmation.json", "sns-unsubscribe-confirmation.json", "eventbridge-config-change.json"],
)
def test_control_messages_need_no_action(name: str) -> None:
    parsed = parse_event(load_json(sample(name)))
    assert len(parsed) == 1
    assert isinstance(parsed[0], Notification)
    assert isinstance(parsed[0].content, ControlMessage)


@pytest.mark.parametrize("name", ["autoscaling-notification.json", "sns-test-message.json"])
def test_messages_that_only_mention_alarms_are_not_alarms(name: str) -> None:
    parsed = parse_event(load_json(sample(name)))
    assert isinstance(parsed[0], Notification)
    assert isinstance(parsed[0].content, UnrecognizedMessage)


# EventBridge events that are not alarms, as a rule targeting the alarm topic publishes them.
OTHER_EVENTBRIDGE_EVENTS = {
    "health": {
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "detail": {"service": "EC2", "eventTypeCode": "AWS_EC2_OPERATIONAL_ISSUE", "eventTypeCategory": "issue"},
    },
    "guardduty": {
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "detail": {"type": "Recon:EC2/PortProbeUnprotectedPort", "severity": 2, "title": "Unprotected port"},
    },
    "ec2-state": {
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "detail": {"instance-id": "i-0abc", "state": "stopped"},
    },
}


def _without_subject(notification: dict[str, object]) -> dict[str, object]:
    """An SNS notification as EventBridge's rule target publishes it: with no subject."""
    notification.pop("Subject", None)
    return notification


SNS_ENVELOPES = {
    "lambda-sns": lambda message: {
        "Records": [{**sns_event_of(message)["Records"][0], "Sns": _without_subject(sns_notification(message))}]
    },
    "sqs-sns": lambda message: sqs_event(sqs_record(_without_subject(sns_notification(message, http=True)))),
    "sns-http": lambda message: _without_subject(sns_notification(message, http=True)),
}


@pytest.mark.parametrize("envelope", sorted(SNS_ENVELOPES))
@pytest.mark.parametrize("kind", sorted(OTHER_EVENTBRIDGE_EVENTS))
def test_another_eventbridge_event_on_the_topic_is_forwarded_whole_not_lost(envelope: str, kind: str) -> None:
    event = {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "account": "123456789012",
        "time": "2025-01-14T14:31:00Z",
        "region": "eu-west-1",
        "resources": [],
        **OTHER_EVENTBRIDGE_EVENTS[kind],
    }
    message = json.dumps(event)
    (parsed,) = parse_event(SNS_ENVELOPES[envelope](message))
    assert isinstance(parsed, Notification), parsed
    content = parsed.content
    assert isinstance(content, UnrecognizedMessage)
    assert content.text == message
    assert content.subject == event["detail-type"]
    assert content.problem is None


def test_a_bad_record_is_reported_and_the_others_still_parse() -> None:
    event = load_json(EVENTS / "12-multi-record.json")
    event["Records"].insert(1, {"EventSource": "aws:sns", "Sns": {"Message": 42}})
    event["Records"].append("not a record")
    parsed = parse_event(event)
    assert [type(p).__name__ for p in parsed] == ["Notification", "BadRecord", "Notification", "BadRecord"]
    bad = parsed[1]
    assert isinstance(bad, BadRecord)
    assert "Records[1].Sns.Message" in str(bad.error)


def test_an_alarm_like_message_that_cannot_be_read_is_forwarded_not_lost() -> None:
    event = load_json(EVENTS / "05-ec2-cpu-alarm.json")
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["NewStateValue"] = "EXPLODED"
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    parsed = parse_event(event)
    assert isinstance(parsed[0], Notification)
    content = parsed[0].content
    assert isinstance(content, UnrecognizedMessage)
    assert content.problem is not None and "NewStateValue" in content.problem


@pytest.mark.parametrize("event", [[], "text", 3, {"hello": "world"}, {"Records": []}])
def test_no_envelope_at_all_raises_a_clear_error(event: object) -> None:
    with pytest.raises(InvalidMessageError):
        parse_event(event)


def test_insufficient_data_sample_is_parsed() -> None:
    alarm = _only_alarm(EVENTS / "10-insufficient-data.json")
    assert alarm.new_state is AlarmState.INSUFFICIENT_DATA
    assert alarm.current_value is None


@pytest.mark.parametrize(
    ("variant", "url"),
    [
        (
            "govcloud-arn.json",
            "https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1#alarmsV2:alarm/",
        ),
        ("china-arn.json", "https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#alarmsV2:alarm/"),
        ("threshold-int.json", "https://"),
    ],
)
def test_console_links_follow_the_alarms_partition_and_region(variant: str, url: str) -> None:
    alarm = parse_alarm_message(load_json(VARIANTS / variant))
    link = console_url(alarm)
    assert link is not None and link.startswith(url)
    assert link.endswith(quote(alarm.alarm_name, safe=""))
    if alarm.partition == "aws":
        assert link.startswith(f"https://{alarm.region_code}.console.aws.amazon.com/")


def test_console_link_encodes_the_alarm_name() -> None:
    alarm = replace(
        parse_alarm_message(load_json(VARIANTS / "threshold-int.json")), **{"alarm_name": "api 5xx / prod #1 ü"}
    )
    link = console_url(alarm)
    assert link is not None and link.endswith("alarm/api%205xx%20%2F%20prod%20%231%20%C3%BC")


def test_no_console_link_without_a_region() -> None:
    alarm = parse_alarm_message(load_json(VARIANTS / "no-alarm-arn-older-message.json"))
    assert alarm.region_code is None
    assert console_url(alarm) is None


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1",
        "eu-central-2",
        "ap-southeast-5",
        "il-central-1",
        "us-gov-west-1",
        "cn-northwest-1",
        "eusc-de-east-1",
        "us-isob-east-1",
    ],
)
def test_every_kind_of_aws_region_is_a_region(region: str) -> None:
    assert aws_region(region) == region


@pytest.mark.parametrize(
    "text", ["eu-west-1\n", "EU-WEST-1", "eu-west-123", "eu_west_1", "eu-west-١", "e-west-1", None, 1]
)
def test_nothing_else_is_a_region(text: object) -> None:
    assert aws_region(text) is None


FORGED_REGIONS = ["evil.example.net/phish?x=", "evil.example.net#", "eu-west-1.evil.example.net", "", "EU (Ireland)"]


def _lambda_action(region: str) -> dict[str, object]:
    """The alarm's direct Lambda action (events/16), claiming ``region``."""
    event: dict[str, object] = load_json(sample("alarm-lambda-action.json"))
    event.pop("alarmArn")
    event["region"] = region
    return event


def _eventbridge_without_arn(region: str) -> dict[str, object]:
    event = eventbridge_event("cpu", region=region)
    event["resources"] = []  # no alarm ARN to take the region from
    return event


ENVELOPES_WITH_A_REGION = {
    "eventbridge": _eventbridge_without_arn,
    "eventbridge-in-sns": lambda region: sns_event_of(json.dumps(_eventbridge_without_arn(region))),
    "alarm-action": _lambda_action,
    "alarm-arn-in-sns": lambda region: sns_event_of(
        alarm_message("cpu", AlarmArn=f"arn:aws:cloudwatch:{region}:1:alarm:cpu")
    ),
}


@pytest.mark.parametrize("region", FORGED_REGIONS)
@pytest.mark.parametrize("envelope", sorted(ENVELOPES_WITH_A_REGION))
def test_a_region_that_is_no_aws_region_gives_no_region_and_no_console_link(envelope: str, region: str) -> None:
    """Whoever can publish to the topic cannot make the "CloudWatch alarm" link point at their own host."""
    (parsed,) = parse_event(ENVELOPES_WITH_A_REGION[envelope](region))
    assert isinstance(parsed, Notification), parsed
    alarm = parsed.content
    assert isinstance(alarm, AlarmNotification)
    assert alarm.region_code is None
    assert console_url(alarm) is None
    assert console_url(replace(alarm, region_code=region)) is None


@pytest.mark.parametrize("envelope", sorted(ENVELOPES_WITH_A_REGION))
def test_a_real_region_in_every_envelope_gives_its_console_link(envelope: str) -> None:
    (parsed,) = parse_event(ENVELOPES_WITH_A_REGION[envelope]("ap-southeast-5"))
    assert isinstance(parsed, Notification)
    alarm = parsed.content
    assert isinstance(alarm, AlarmNotification)
    link = console_url(alarm)
    assert link is not None and link.startswith("https://ap-southeast-5.console.aws.amazon.com/cloudwatch/")


@pytest.mark.parametrize(
    ("threshold", "read"),
    [(10**400, None), (True, None), ("80.5", 80.5), ("NaN", None), (80, 80.0)],
)
def test_an_eventbridge_threshold_is_read_as_every_other_number(threshold: object, read: float | None) -> None:
    event = load_json(sample("eventbridge-state-change.json"))
    reason_data = json.loads(event["detail"]["state"]["reasonData"])
    reason_data["threshold"] = threshold
    event["detail"]["state"]["reasonData"] = json.dumps(reason_data)
    parsed = parse_event(event)
    assert len(parsed) == 1 and isinstance(parsed[0], Notification)
    alarm = parsed[0].content
    assert isinstance(alarm, AlarmNotification)
    assert alarm.threshold == read
