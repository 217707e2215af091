"""The table, the topics, the health alarms and the dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.dashboard import KEY_FIGURE_PERIOD, METRIC_INCIDENT_RESOLVED_AUTO, PERIOD
from pagerduty_bridge_cdk.encrypted_topic import CLOUDWATCH_KEY_ACTIONS
from pagerduty_bridge_cdk.health import BUFFER_AGE_THRESHOLD, POWERTOOLS_SERVICE_DIMENSION
from tests.infra.conftest import ACCOUNT, EXISTING_TOPIC_ARN, HEALTH_EMAIL, REGION, REPO_ROOT, Synthesized, as_list, ref


def test_table_schema_is_the_stores(direct: Synthesized) -> None:
    direct.assertions.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "KeySchema": [{"AttributeName": constants.TABLE_PARTITION_KEY, "KeyType": "HASH"}],
                "AttributeDefinitions": Match.array_equals(
                    [
                        {"AttributeName": constants.TABLE_PARTITION_KEY, "AttributeType": "S"},
                        {"AttributeName": constants.ACTIVE_INDEX_PARTITION_KEY, "AttributeType": "S"},
                        {"AttributeName": constants.ACTIVE_INDEX_SORT_KEY, "AttributeType": "S"},
                    ]
                ),
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": constants.ACTIVE_INDEX_NAME,
                        "KeySchema": [
                            {"AttributeName": constants.ACTIVE_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                            {"AttributeName": constants.ACTIVE_INDEX_SORT_KEY, "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": constants.TTL_ATTRIBUTE, "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
        },
    )


def _topic_policy_statements(synthesized: Synthesized, topic_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in synthesized.of_type("AWS::SNS::TopicPolicy").values():
        if {"Ref": topic_id} in policy["Properties"]["Topics"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _check_cloudwatch_topic(synthesized: Synthesized, topic_id: str) -> str:
    """Asserts the topic is CMK-encrypted, SSL-only and open to this account's alarms; returns its key."""
    topic = synthesized.resources[topic_id]["Properties"]
    key_id = ref(topic["KmsMasterKeyId"])
    assert key_id is not None
    key = synthesized.resources[key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    (cloudwatch_use,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(as_list(cloudwatch_use["Action"])) == set(CLOUDWATCH_KEY_ACTIONS)
    assert cloudwatch_use["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT

    statements = _topic_policy_statements(synthesized, topic_id)
    (publish,) = [s for s in statements if s["Effect"] == "Allow"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert as_list(publish["Action"]) == ["sns:Publish"]
    assert publish["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    return key_id


def test_alarm_topic_is_encrypted_ssl_only_and_open_to_this_accounts_alarms(direct: Synthesized) -> None:
    _check_cloudwatch_topic(direct, direct.logical_id(direct.bridge.alarm_topic.topic))


def test_existing_alarm_topic_is_subscribed_to_not_created(buffered: Synthesized) -> None:
    assert buffered.bridge.alarm_topic.topic.topic_arn == EXISTING_TOPIC_ARN
    health_topic_id = buffered.logical_id(buffered.bridge.health.topic)
    assert list(buffered.of_type("AWS::SNS::Topic")) == [health_topic_id]


def test_health_topic_is_separate_encrypted_with_its_own_key(direct: Synthesized) -> None:
    alarm_topic_id = direct.logical_id(direct.bridge.alarm_topic.topic)
    health_topic_id = direct.logical_id(direct.bridge.health.topic)
    assert alarm_topic_id != health_topic_id
    assert _check_cloudwatch_topic(direct, health_topic_id) != _check_cloudwatch_topic(direct, alarm_topic_id)


def test_health_email_subscription_only_when_given(variant: Synthesized) -> None:
    emails = [
        s["Properties"]
        for s in variant.of_type("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    ]
    if variant.name != "buffered":
        assert variant.bridge.config.health_alarm_email is None
        assert emails == []
        return
    assert emails == [
        {
            "Protocol": "email",
            "Endpoint": HEALTH_EMAIL,
            "TopicArn": {"Ref": variant.logical_id(variant.bridge.health.topic)},
        }
    ]


def _alarms_on(synthesized: Synthesized, metric_name: str, namespace: str) -> list[dict[str, Any]]:
    return [
        alarm["Properties"]
        for alarm in synthesized.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == metric_name and alarm["Properties"].get("Namespace") == namespace
    ]


def _notifies_health_topic_both_ways(synthesized: Synthesized, alarm: dict[str, Any]) -> None:
    health = {"Ref": synthesized.logical_id(synthesized.bridge.health.topic)}
    assert alarm["AlarmActions"] == [health]
    assert alarm["OKActions"] == [health]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def _of_function(synthesized: Synthesized, metric: str, function: Any) -> list[dict[str, Any]]:
    dimension = {"Name": "FunctionName", "Value": {"Ref": synthesized.logical_id(function)}}
    return [alarm for alarm in _alarms_on(synthesized, metric, "AWS/Lambda") if alarm["Dimensions"] == [dimension]]


def test_function_errors_and_throttles_alarm_to_the_health_topic(variant: Synthesized) -> None:
    for metric in ("Errors", "Throttles"):
        (alarm,) = _of_function(variant, metric, variant.bridge.function)
        assert alarm["Statistic"] == "Sum"
        _notifies_health_topic_both_ways(variant, alarm)


def test_webhook_errors_alarm_to_the_health_topic(variant: Synthesized) -> None:
    webhooks = variant.bridge.webhooks
    errors = _alarms_on(variant, "Errors", "AWS/Lambda")
    if webhooks is None:
        assert len(errors) == 1
        return
    assert len(errors) == 2
    (alarm,) = _of_function(variant, "Errors", webhooks.function)
    assert "webhook" in alarm["AlarmDescription"]
    _notifies_health_topic_both_ways(variant, alarm)


def test_webhooks_the_receiver_could_not_record_alarm_to_the_health_topic(variant: Synthesized) -> None:
    """The receiver answers a failed store or secret with a 5xx and returns normally: no function error."""
    failures = _alarms_on(variant, constants.METRIC_WEBHOOK_FAILED, constants.METRICS_NAMESPACE)
    if variant.bridge.webhooks is None:
        assert failures == []
        return
    (alarm,) = failures
    assert alarm["Statistic"] == "Sum"
    _notifies_health_topic_both_ways(variant, alarm)


def test_invalid_messages_alarm_to_the_health_topic_like_delivery_failures(variant: Synthesized) -> None:
    """Input the bridge cannot read is never retried into success: a person has to see it."""
    (alarm,) = _alarms_on(variant, constants.METRIC_INVALID_MESSAGE, constants.METRICS_NAMESPACE)
    (delivery,) = _alarms_on(variant, constants.METRIC_DELIVERY_FAILED, constants.METRICS_NAMESPACE)
    assert alarm["Dimensions"] == delivery["Dimensions"]
    assert alarm["Dimensions"] == [{"Name": POWERTOOLS_SERVICE_DIMENSION, "Value": service_of(variant)}]
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] == delivery["Period"] == 60
    _notifies_health_topic_both_ways(variant, alarm)


def test_every_dead_letter_queue_has_a_depth_alarm(variant: Synthesized) -> None:
    alarms = _alarms_on(variant, "ApproximateNumberOfMessagesVisible", "AWS/SQS")
    watched = {ref(alarm["Dimensions"][0]["Value"]) for alarm in alarms}
    assert watched == {variant.logical_id(queue) for queue in variant.bridge.dead_letter_queues.values()}
    queue_ids = set(variant.of_type("AWS::SQS::Queue"))
    assert watched <= queue_ids
    for alarm in alarms:
        _notifies_health_topic_both_ways(variant, alarm)


def test_a_buffer_nobody_drains_alarms_within_minutes(variant: Synthesized) -> None:
    """A disabled event source mapping or a lost permission leaves pages waiting in the buffer, unseen by
    every failure alarm: its oldest message's age is what tells."""
    alarms = _alarms_on(variant, "ApproximateAgeOfOldestMessage", "AWS/SQS")
    buffer = variant.bridge.buffer
    if buffer is None:
        assert alarms == []
        return
    (alarm,) = alarms
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [variant.logical_id(buffer), "QueueName"]}}
    ]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Period"] == 60
    assert alarm["Threshold"] == BUFFER_AGE_THRESHOLD.to_seconds() == 300
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    health = {"Ref": variant.logical_id(variant.bridge.health.topic)}
    assert alarm["AlarmActions"] == alarm["OKActions"] == [health]


def test_delivery_failed_metric_alarm_matches_what_powertools_emits(variant: Synthesized) -> None:
    (alarm,) = _alarms_on(variant, constants.METRIC_DELIVERY_FAILED, constants.METRICS_NAMESPACE)
    assert alarm["Dimensions"] == [{"Name": POWERTOOLS_SERVICE_DIMENSION, "Value": service_of(variant)}]
    assert alarm["Statistic"] == "Sum"
    _notifies_health_topic_both_ways(variant, alarm)


def test_no_health_alarm_goes_through_the_alarm_topic(direct: Synthesized) -> None:
    alarm_topic = {"Ref": direct.logical_id(direct.bridge.alarm_topic.topic)}
    for alarm in direct.of_type("AWS::CloudWatch::Alarm").values():
        actions = alarm["Properties"].get("AlarmActions", []) + alarm["Properties"].get("OKActions", [])
        assert alarm_topic not in actions


def _dashboard_widgets(synthesized: Synthesized) -> list[dict[str, Any]]:
    """The dashboard body as JSON, each deploy-time value (region, queue names) as the string "TOKEN"."""
    _, dashboard = synthesized.one("AWS::CloudWatch::Dashboard")
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    widgets: list[dict[str, Any]] = json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))["widgets"]
    return widgets


def service_of(synthesized: Synthesized) -> str:
    """The service dimension of the synthesized bridge's own metrics (one per environment)."""
    return constants.deployed_service_name(synthesized.bridge.config.environment)


def _bridge_metrics(widget: dict[str, Any], service: str) -> list[tuple[str, dict[str, Any]]]:
    """The handler's metrics a widget plots or computes with: (metric name, options) each."""
    found = []
    for entry in widget["properties"].get("metrics", []):
        if entry[0] != constants.METRICS_NAMESPACE:
            continue
        name, dimensions, options = entry[1], entry[2:-1], entry[-1]
        assert dimensions == [POWERTOOLS_SERVICE_DIMENSION, service], entry
        found.append((name, options))
    return found


def _expressions(widget: dict[str, Any]) -> list[str]:
    return [entry[0]["expression"] for entry in widget["properties"].get("metrics", []) if "expression" in entry[0]]


DASHBOARD_DEFAULTS = {"stat": "Average", "period": 300}
"""What a dashboard metric without these options uses (and CDK leaves them out when they are these)."""


def _widgets_with(synthesized: Synthesized, metric: str, stat: str, period: float) -> list[dict[str, Any]]:
    """Widgets plotting ``metric`` with ``stat`` over ``period`` seconds."""
    return [
        widget
        for widget in _dashboard_widgets(synthesized)
        for name, options in _bridge_metrics(widget, service_of(synthesized))
        if name == metric
        and ({**DASHBOARD_DEFAULTS, **options}["stat"], {**DASHBOARD_DEFAULTS, **options}["period"]) == (stat, period)
    ]


def _ratio_widgets(synthesized: Synthesized, numerator: str, denominator: str) -> list[dict[str, Any]]:
    """Widgets computing ``numerator / denominator`` (as percent) from summed handler metrics."""
    matches = []
    for widget in _dashboard_widgets(synthesized):
        metrics = {
            options["id"]: (name, options)
            for name, options in _bridge_metrics(widget, service_of(synthesized))
            if "id" in options
        }
        for expression in _expressions(widget):
            match = re.fullmatch(r"100 \* FILL\((\w+), 0\) / (\w+)", expression)
            if match is None:
                continue
            top, bottom = (metrics.get(match.group(i)) for i in (1, 2))
            if top is None or bottom is None:
                continue
            if (top[0], bottom[0]) == (numerator, denominator) and top[1]["stat"] == bottom[1]["stat"] == "Sum":
                matches.append(widget)
    return matches


def test_dashboard_shows_the_key_figures(variant: Synthesized) -> None:
    hour = KEY_FIGURE_PERIOD.to_seconds()
    # Incident creation rate: triggered incidents summed per hour.
    assert _widgets_with(variant, constants.METRIC_INCIDENT_TRIGGERED, "Sum", hour)
    # Mean resolution time: the average of the resolution times, in seconds, per hour.
    assert _widgets_with(variant, constants.METRIC_RESOLUTION_TIME, "Average", hour)
    # Acknowledgement rate and auto-resolution rate: metric math over summed counts.
    assert _ratio_widgets(variant, constants.METRIC_INCIDENT_ACKNOWLEDGED, constants.METRIC_INCIDENT_TRIGGERED)
    auto = constants.METRIC_INCIDENT_RESOLVED_BY.format(how="Auto")
    assert auto == METRIC_INCIDENT_RESOLVED_AUTO == "IncidentResolvedAuto"
    assert _ratio_widgets(variant, auto, constants.METRIC_INCIDENT_RESOLVED)
    # The same four over the whole time range shown, in one row of numbers.
    (figures,) = [w for w in _dashboard_widgets(variant) if w["properties"]["view"] == "singleValue"]
    assert figures["properties"]["setPeriodToTimeRange"] is True
    names = {name for name, _ in _bridge_metrics(figures, service_of(variant))}
    assert {constants.METRIC_INCIDENT_TRIGGERED, constants.METRIC_RESOLUTION_TIME, auto} <= names
    assert len(_expressions(figures)) == 2


def test_dashboard_shows_delivery_failures_and_pagerduty_latency(variant: Synthesized) -> None:
    period = PERIOD.to_seconds()
    assert _widgets_with(variant, constants.METRIC_DELIVERY_FAILED, "Sum", period)
    for stat in ("p50", "p99", "Maximum"):
        assert _widgets_with(variant, constants.METRIC_PAGERDUTY_LATENCY, stat, period), stat
    for metric in (constants.METRIC_INCIDENT_TRIGGERED, constants.METRIC_INCIDENT_ACKNOWLEDGED):
        assert _widgets_with(variant, metric, "Sum", period), metric


def test_dashboard_shows_every_dead_letter_queue(variant: Synthesized) -> None:
    (widget,) = [w for w in _dashboard_widgets(variant) if w["properties"]["title"] == "Dead-letter queue depth"]
    labels = {entry[-1]["label"] for entry in widget["properties"]["metrics"]}
    assert labels == set(variant.bridge.dead_letter_queues)


def test_who_may_publish_to_the_alarm_topic_is_what_the_readme_says(direct: Synthesized) -> None:
    """README, Deploy: CloudWatch may publish for alarms of this account and region only; no other
    principal is named by the topic's policy (other accounts cannot publish); in this account, IAM
    decides (the key policy delegates to the account), which is how publish-test-alarm works."""
    topic_id = direct.logical_id(direct.bridge.alarm_topic.topic)
    allows = [s for s in _topic_policy_statements(direct, topic_id) if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "cloudwatch.amazonaws.com"}]
    (publish,) = allows
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert publish["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"}
    key_id = ref(direct.resources[topic_id]["Properties"]["KmsMasterKeyId"])
    assert key_id is not None
    principals = [s["Principal"] for s in direct.resources[key_id]["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals
    accounts = [p["AWS"] for p in principals if isinstance(p, dict) and "AWS" in p]
    assert accounts and all(ACCOUNT in json.dumps(a) and ":root" in json.dumps(a) for a in accounts)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "lets CloudWatch publish for alarms of this account and region only" in readme
    assert "no other account can" in readme
