"""A minimal reference bridge: the yardstick ``make bench`` measures pagerduty-bridge against.

What any stateful alarm-to-PagerDuty Lambda must do, and nothing more, with the standard library and
boto3 only: decode the SNS alarm, claim it with one conditional ``PutItem``, ``POST`` the event with
urllib, and commit with one ``UpdateItem``. No envelopes but SNS, no rules, no retries, no pacing, no
logging, no metrics, no secrets: what a hand-written script would do. Its DynamoDB client is made at
import, as such a script makes it.

Settings (environment): ``REFERENCE_TABLE`` (partition key ``pk``), ``PAGERDUTY_EVENTS_URL``,
``PAGERDUTY_INTEGRATION_KEY``; boto3 takes its endpoint and region from the environment as usual.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import boto3

HASH_KEY = "pk"
TABLE = os.environ.get("REFERENCE_TABLE", "reference")
EVENTS_URL = os.environ.get("PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue")
ROUTING_KEY = os.environ.get("PAGERDUTY_INTEGRATION_KEY", "")

_dynamodb = boto3.client("dynamodb")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    for record in event["Records"]:
        alarm = json.loads(record["Sns"]["Message"])
        dedup_key = f"{alarm['AlarmName']}-{alarm.get('Trigger', {}).get('MetricName', '')}"[:255]
        action = "trigger" if alarm["NewStateValue"] == "ALARM" else "resolve"
        when = alarm["StateChangeTime"]
        _dynamodb.put_item(
            TableName=TABLE,
            Item={HASH_KEY: {"S": dedup_key}, "state_changed_at": {"S": when}, "pending": {"S": action}},
            ConditionExpression="attribute_not_exists(#k) OR state_changed_at < :t",
            ExpressionAttributeNames={"#k": HASH_KEY},
            ExpressionAttributeValues={":t": {"S": when}},
        )
        body = {
            "routing_key": ROUTING_KEY,
            "event_action": action,
            "dedup_key": dedup_key,
            "payload": {
                "summary": f"ALARM: {alarm['AlarmName']}: {alarm['NewStateReason']}"[:1024],
                "source": alarm["AlarmArn"],
                "severity": "critical",
                "timestamp": when,
                "custom_details": alarm,
            },
        }
        request = urllib.request.Request(
            EVENTS_URL, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 202:
                raise RuntimeError(f"PagerDuty answered {response.status}")
        _dynamodb.update_item(TableName=TABLE, Key={HASH_KEY: {"S": dedup_key}}, UpdateExpression="REMOVE pending")
    return {"processed": len(event["Records"])}
