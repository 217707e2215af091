"""Realistic alarm messages the bridge can publish or replay to check a deployment end to end."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final

TEST_ALARM_NAME: Final = "pagerduty-bridge-test-alarm"


def test_alarm_message(alarm_name: str, state: str, topic_arn: str, now: datetime) -> dict[str, Any]:
    """A CloudWatch metric alarm message as SNS carries it, for the topic's own account and region."""
    parts = topic_arn.split(":")
    partition, region, account = (parts[1], parts[3], parts[4]) if len(parts) >= 6 else ("aws", "us-east-1", "")
    old = "OK" if state == "ALARM" else "ALARM"
    value = 99.0 if state == "ALARM" else 1.0
    return {
        "AlarmName": alarm_name,
        "AlarmDescription": "Test alarm published by pagerduty-bridge publish-test-alarm to verify a deployment.",
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "NewStateValue": state,
        "NewStateReason": f"Threshold Crossed: 1 datapoint [{value} ({now.strftime('%d/%m/%y %H:%M:%S')})] was "
        f"{'greater' if state == 'ALARM' else 'not greater'} than the threshold (50.0).",
        "StateChangeTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000",
        "Region": region,
        "AlarmArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{alarm_name}",
        "OldStateValue": old,
        "OKActions": [topic_arn],
        "AlarmActions": [topic_arn],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "TestMetric",
            "Namespace": "PagerDutyBridge/Test",
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": None,
            "Dimensions": [{"value": "deployment-check", "name": "Check"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 50.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }


def sample_files() -> list[Path]:
    """The sample events: shipped inside the package, or the repository's ``events/`` beside it."""
    packaged = Path(__file__).resolve().parent / "samples"
    repository = Path(__file__).resolve().parents[2] / "events"
    for folder in (packaged, repository):
        if folder.is_dir():
            return sorted(p for p in folder.glob("*.json") if p.is_file())
    return []
