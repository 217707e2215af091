"""A minimal standard-library bridge: the yardstick that ``replay``'s speed is measured against.

It does, for CloudWatch metric alarms delivered by SNS, what ``pagerduty-bridge replay --json`` does in
a dry run, and nothing more:

1. read the Lambda event file and decode each record's alarm message;
2. decide, against the stored state change of the alarm's dedup key: a notification not newer than the
   stored one changes nothing; ALARM → ``trigger``; OK → ``resolve`` when the incident is open (or the
   old state was ALARM);
3. build the same Events API v2 body (summary, source, severity, timestamp, custom details, console
   link; routing key masked);
4. upsert the incident in SQLite: one conditional statement, in its own transaction (WAL, as the
   embedded store does);
5. print the same JSON line as ``replay --json``.

No validation models, no claim-and-commit delivery protocol, no retries, no logging, no metrics: what a
hand-written script would do. ``tests/benchmarks/bench.py`` runs it side by side with ``replay`` on the same
generated alarms and checks that both print the same lines, so the ratio compares equal work.

Usage::

    .venv/bin/python tests/benchmarks/reference_bridge.py [--state FILE] PATH...

PATH is an event file or a folder of ``*.json`` files (read in name order). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

DRY_RUN_KEY = "dryrun0000000000000000000000key0"
ENVIRONMENT = "production"
SERVICE_NAME = "pagerduty-bridge"
SEVERITY = "critical"

_DATAPOINT = re.compile(r"\[\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\(")
_REASON_COMPARISON = re.compile(
    r"(?:was|were) (greater than or equal to|less than or equal to|greater than|less than) the threshold"
)
_ARN = re.compile(r"^arn:(aws[\w-]*):cloudwatch:([\w-]+):([^:]*):alarm:")
_SYMBOLS = {
    "greater than or equal to": "≥",
    "greater than": ">",
    "less than": "<",
    "less than or equal to": "≤",
    "GreaterThanOrEqualToThreshold": "≥",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "≤",
}
_RESOURCE_DIMENSIONS = ("InstanceId", "FunctionName", "DBInstanceIdentifier", "TableName", "QueueName")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    dedup_key        TEXT PRIMARY KEY,
    state_changed_at TEXT NOT NULL,
    is_open          INTEGER NOT NULL,
    data             TEXT NOT NULL
);
"""
_UPSERT = """
INSERT INTO incidents (dedup_key, state_changed_at, is_open, data) VALUES (?, ?, ?, ?)
ON CONFLICT (dedup_key) DO UPDATE SET
    state_changed_at = excluded.state_changed_at, is_open = excluded.is_open, data = excluded.data
WHERE excluded.state_changed_at > incidents.state_changed_at
"""


def number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def timestamp(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def build_event(alarm: dict[str, Any], action: str, dedup_key: str, when: datetime) -> dict[str, Any]:
    """The Events API v2 body, routing key masked, as ``replay --json`` prints it."""
    masked_key = "*" * 28 + DRY_RUN_KEY[-4:]
    body: dict[str, Any] = {"routing_key": masked_key, "event_action": action, "dedup_key": dedup_key}
    if action != "trigger":
        return body
    name = alarm["AlarmName"]
    trigger = alarm.get("Trigger") or {}
    reason = alarm.get("NewStateReason") or ""
    match = _ARN.match(alarm.get("AlarmArn") or "")
    region = match.group(2) if match else None
    found = _DATAPOINT.search(reason)
    current = float(found.group(1)) if found else None
    threshold = trigger.get("Threshold")
    threshold = float(threshold) if threshold is not None else None
    dimensions = {d["name"]: d["value"] for d in trigger.get("Dimensions") or []}
    resource = next((dimensions[d] for d in _RESOURCE_DIMENSIONS if d in dimensions), None)
    comparison = _REASON_COMPARISON.search(reason)
    symbol = _SYMBOLS.get(comparison.group(1) if comparison else "") or _SYMBOLS.get(
        trigger.get("ComparisonOperator") or ""
    )
    metric = trigger.get("MetricName")
    parts = [metric]
    if current is not None:
        parts.append(f"{current:g}")
    if threshold is not None:
        parts.append(f"{symbol or 'vs'} {threshold:g}")
    summary = f"[{ENVIRONMENT.upper()}] {alarm['NewStateValue']} {name}: {' '.join(parts)}"
    if resource:
        summary += f" on {resource}"
    url = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:alarm/{quote(name, safe='')}"
        if region
        else None
    )
    old_state = alarm.get("OldStateValue")
    unit = trigger.get("Unit")
    treat_missing = trigger.get("TreatMissingData")
    details = {
        "alarmName": name,
        "alarmArn": alarm.get("AlarmArn"),
        "alarmKind": "metric",
        "environment": ENVIRONMENT,
        "description": alarm.get("AlarmDescription"),
        "accountId": alarm.get("AWSAccountId"),
        "region": region or alarm.get("Region"),
        "newState": alarm["NewStateValue"],
        "oldState": old_state or None,
        "stateChangeTime": timestamp(when),
        "reason": reason,
        "currentValue": number(current),
        "namespace": trigger.get("Namespace"),
        "metricName": metric,
        "dimensions": dimensions or None,
        "statistic": trigger.get("Statistic"),
        "period": trigger.get("Period"),
        "evaluationPeriods": trigger.get("EvaluationPeriods"),
        "threshold": number(threshold),
        "comparisonOperator": trigger.get("ComparisonOperator"),
        "unit": None if unit in (None, "None") else unit,
        "treatMissingData": treat_missing or None,
    }
    body["payload"] = {
        "summary": summary[:1024],
        "source": resource or trigger.get("Namespace") or name,
        "severity": SEVERITY,
        "timestamp": timestamp(when),
        "component": trigger.get("Namespace"),
        "group": region,
        "class": metric,
        "custom_details": {k: v for k, v in details.items() if v not in (None, "", [], {})},
    }
    if url:
        body["links"] = [{"href": url, "text": "CloudWatch alarm"}]
    body["client"] = SERVICE_NAME
    if url:
        body["client_url"] = url
    return body


def decide(alarm: dict[str, Any], stored: tuple[str, int] | None, when: str) -> tuple[str | None, str]:
    """(action, reason) from the alarm and the stored (state change time, open) of its dedup key."""
    if stored is not None:
        if when < stored[0]:
            return None, "stale"
        if when == stored[0]:
            return None, "duplicate"
    state = alarm["NewStateValue"]
    if state == "ALARM":
        return "trigger", "alarm"
    if state == "OK":
        if stored is not None and stored[1]:
            return "resolve", "alarm_ok"
        if alarm.get("OldStateValue") == "ALARM":
            return "resolve", "alarm_ok_untracked"
        return None, "no_open_incident"
    return None, "insufficient_data_ignored"


def handle(db: sqlite3.Connection, path: Path, out: TextIO) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    for index, record in enumerate(event["Records"]):
        alarm = json.loads(record["Sns"]["Message"])
        name = alarm["AlarmName"]
        metric = (alarm.get("Trigger") or {}).get("MetricName")
        dedup_key = f"{name}-{metric}" if metric else name
        when = datetime.fromisoformat(alarm["StateChangeTime"])
        when_text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        stored = db.execute(
            "SELECT state_changed_at, is_open FROM incidents WHERE dedup_key = ?", (dedup_key,)
        ).fetchone()
        action, reason = decide(alarm, stored, when_text)
        body = build_event(alarm, action, dedup_key, when) if action else None
        if action is not None or stored is None:
            is_open = action == "trigger" or (action is None and bool(stored and stored[1]))
            data = json.dumps(
                {"dedup_key": dedup_key, "alarm_name": name, "alarm_state": alarm["NewStateValue"], "is_open": is_open},
                ensure_ascii=False,
            )
            db.execute(_UPSERT, (dedup_key, when_text, int(is_open), data))
        line = {
            "input": str(path),
            "record": f"Records[{index}].Sns.Message",
            "alarm_name": name,
            "state": alarm["NewStateValue"],
            "action": action or "none",
            "reason": reason,
            "dedup_key": dedup_key,
            "event": body,
            "delivered": False,
        }
        print(json.dumps(line, ensure_ascii=False), file=out)


def open_store(path: str | Path) -> sqlite3.Connection:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    return db


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(description="Minimal standard-library alarm-to-PagerDuty bridge (dry run).")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--state", type=Path, default=Path(".pagerduty-bridge") / "reference.db")
    args = parser.parse_args(argv)
    files: list[Path] = []
    for path in args.paths:
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    db = open_store(args.state)
    try:
        for path in files:
            handle(db, path, out or sys.stdout)
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
