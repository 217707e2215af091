"""What tests build again and again, built once: alarm events in every envelope, a moto server, the CLI,
the Lambda's environment and what the handler writes through Powertools, and the one assertion that a
secret appears nowhere.

Every alarm event is events/05 (an EC2 CPU alarm) for the alarm, state and time asked for, with its
envelope's own time a moment after the state change (as SNS, SQS and EventBridge stamp them).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge.cli import main
from tests.conftest import EVENTS, ROUTING_KEY, load_json

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:production-alarms"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:pagerduty-bridge-buffer"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
METRIC = "CPUUtilization"
T0 = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)

HEALTH_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "AWS Health Event",
    "source": "aws.health",
    "account": ACCOUNT,
    "time": "2025-01-14T14:31:00Z",
    "region": REGION,
    "resources": [],
    "detail": {"service": "EC2", "eventTypeCode": "AWS_EC2_OPERATIONAL_ISSUE", "eventTypeCategory": "issue"},
}
"""An AWS Health event, as EventBridge delivers it: no alarm, published to the alarm topic by a rule."""

_TEMPLATE: dict[str, Any] = load_json(EVENTS / "05-ec2-cpu-alarm.json")


def put_cpu_alarm(cloudwatch: Any, name: str, state: str | None = None) -> None:
    """The EC2 CPU alarm events/05 notifies about, in moto's CloudWatch (``state``, when given, set)."""
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        MetricName=METRIC,
        Namespace="AWS/EC2",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=80,
        ComparisonOperator="GreaterThanThreshold",
    )
    if state is not None:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"set to {state} by the test")


def cloudwatch_time(at: datetime) -> str:
    """CloudWatch's own format: ``2025-01-14T14:30:00.000+0000``."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def iso_z(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def alarm_message(
    name: str,
    state: str = "ALARM",
    old_state: str | None = "OK",
    at: datetime = T0,
    *,
    account: str = ACCOUNT,
    region: str = REGION,
    **changes: Any,
) -> dict[str, Any]:
    """The alarm JSON SNS carries (events/05) for ``name`` in ``state`` at ``at``."""
    message: dict[str, Any] = json.loads(_TEMPLATE["Records"][0]["Sns"]["Message"])
    message.update(
        AlarmName=name,
        AlarmArn=f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
        AWSAccountId=account,
        NewStateValue=state,
        OldStateValue=old_state,
        StateChangeTime=cloudwatch_time(at),
    )
    message.update(changes)
    return message


def sns_notification(
    message: dict[str, Any] | str, *, at: datetime = T0, message_id: str | None = None, http: bool = False
) -> dict[str, Any]:
    """An SNS notification: as the Lambda event's ``Sns``, or (``http``) as SNS posts it over HTTP and
    writes it into SQS, where the URL keys are spelled ``SigningCertURL`` and ``UnsubscribeURL``."""
    sns = dict(_TEMPLATE["Records"][0]["Sns"])
    sns.update(
        MessageId=message_id or str(uuid.uuid4()),
        TopicArn=TOPIC_ARN,
        Message=message if isinstance(message, str) else json.dumps(message),
        Timestamp=iso_z(at + timedelta(milliseconds=100)),
    )
    if http:
        sns.pop("MessageAttributes", None)
        sns["SigningCertURL"] = sns.pop("SigningCertUrl")
        sns["UnsubscribeURL"] = sns.pop("UnsubscribeUrl")
    return sns


def sns_event(
    name: str, state: str = "ALARM", old_state: str | None = "OK", at: datetime = T0, **changes: Any
) -> dict[str, Any]:
    """A Lambda SNS event for one alarm notification."""
    return sns_event_of(alarm_message(name, state, old_state, at, **changes), at=at)


def sns_event_of(message: dict[str, Any] | str, *, at: datetime = T0) -> dict[str, Any]:
    record = dict(_TEMPLATE["Records"][0])
    record["Sns"] = sns_notification(message, at=at)
    return {"Records": [record]}


def sqs_record(body: dict[str, Any] | str, *, sent: datetime = T0, message_id: str | None = None) -> dict[str, Any]:
    """One SQS record (buffered mode: SNS writes the whole notification into the body)."""
    message_id = message_id or str(uuid.uuid4())
    millis = str(int((sent + timedelta(milliseconds=200)).timestamp() * 1000))
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{message_id.replace('-', '')}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": millis,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": millis,
        },
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def sqs_alarm(name: str, state: str = "ALARM", old_state: str | None = "OK", at: datetime = T0) -> dict[str, Any]:
    """An SQS record carrying one alarm's SNS notification."""
    return sqs_record(sns_notification(alarm_message(name, state, old_state, at), at=at, http=True), sent=at)


def eventbridge_event(
    name: str,
    state: str = "ALARM",
    old_state: str = "OK",
    at: datetime = T0,
    *,
    account: str = ACCOUNT,
    region: str = REGION,
) -> dict[str, Any]:
    """EventBridge's "CloudWatch Alarm State Change" for a one-metric alarm."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "Threshold Crossed", "timestamp": cloudwatch_time(at)},
            "previousState": {
                "value": old_state,
                "reason": "before",
                "timestamp": cloudwatch_time(at - timedelta(hours=1)),
            },
            "configuration": {
                "metrics": [
                    {
                        "id": "m1",
                        "returnData": True,
                        "metricStat": {
                            "metric": {"namespace": "AWS/EC2", "name": METRIC, "dimensions": {"InstanceId": "i-0abc"}},
                            "period": 60,
                            "stat": "Average",
                        },
                    }
                ]
            },
        },
    }


def schedule_event(at: datetime = T0) -> dict[str, Any]:
    """The reconciliation schedule's EventBridge event."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/pagerduty-bridge-reconcile"],
        "detail": {},
    }


def dedup_key(name: str) -> str:
    return f"{name}-{METRIC}"


# --- the CLI ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The output as one JSON document (or JSON lines as a list)."""
        text = self.out.strip()
        try:
            return json.loads(text)
        except ValueError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]


def cli(*argv: str) -> CliRun:
    """``pagerduty-bridge ARGV`` in-process, its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return CliRun(code, out.getvalue(), err.getvalue())


def cli_json(*argv: str) -> Any:
    run = cli(*argv)
    assert run.code == 0, run.err
    return run.json()


# --- moto's HTTP server -------------------------------------------------------------------------------


def moto_server() -> Iterator[str]:
    """moto's HTTP server on a free port (a generator for a fixture): yields its URL."""
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@contextlib.contextmanager
def atomic_moto_writes() -> Iterator[None]:
    """moto's DynamoDB with every conditional write atomic, as DynamoDB's are (in-process and its HTTP
    server alike: both run this backend). moto's ``Table.put_item`` and ``DynamoDBBackend.update_item``
    read the item, check the condition and write it without a lock, so two racing threads can both pass
    one condition. A store writes over an item it wrote itself as an UpdateItem, so a race on one version
    mixes both kinds: one re-entrant lock (an update that creates its item puts it) guards them together."""
    import threading

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    lock = threading.RLock()
    put_item, update_item = Table.put_item, DynamoDBBackend.update_item

    def locked_put_item(self: Table, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return put_item(self, *args, **kwargs)

    def locked_update_item(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return update_item(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Table, "put_item", locked_put_item)
        patch.setattr(DynamoDBBackend, "update_item", locked_update_item)
        yield


# --- the Lambda -----------------------------------------------------------------------------------------


def lambda_environment(
    monkeypatch: pytest.MonkeyPatch,
    *,
    table: str,
    events_url: str,
    key: str = ROUTING_KEY,
    retry_budget_seconds: int = 2,
) -> None:
    """The function's environment (its table, its routing key, PagerDuty at ``events_url``) in a new
    container: the handler builds its runtime on the next invocation."""
    from pagerduty_bridge import handler

    monkeypatch.setenv(c.ENV_TABLE_NAME, table)
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY, key)
    monkeypatch.setenv(c.ENV_EVENTS_URL, events_url)
    monkeypatch.setenv(c.ENV_RETRY_BUDGET_SECONDS, str(retry_budget_seconds))
    monkeypatch.setattr(handler, "_runtime", None)


@contextlib.contextmanager
def powertools_log_stream() -> Iterator[io.StringIO]:
    """The handler's Powertools JSON log lines, written into the yielded buffer while the block runs."""
    from pagerduty_bridge import handler

    stream = io.StringIO()
    powertools_handler = handler.logger.registered_handler
    assert isinstance(powertools_handler, logging.StreamHandler)
    previous = powertools_handler.setStream(stream)
    try:
        yield stream
    finally:
        powertools_handler.setStream(previous)


def emf_metrics(printed: str) -> Counter[str]:
    """Sums of the EMF metrics Powertools printed (its JSON lines on stdout), by name."""
    sums: Counter[str] = Counter()
    for line in printed.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                sums[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return sums


# --- secrets ------------------------------------------------------------------------------------------


def assert_no_secret(secrets: str | Iterable[str], *places: object, logs: Iterable[logging.LogRecord] = ()) -> None:
    """No ``secret`` appears in any of ``places`` (text, output, exceptions, table items, objects: each
    searched as ``str``, ``repr`` and JSON) nor in any log record (message, arguments, extras)."""
    wanted = [secrets] if isinstance(secrets, str) else list(secrets)
    texts: list[str] = []
    for place in places:
        texts.extend((str(place), repr(place)))
        with contextlib.suppress(TypeError, ValueError):
            texts.append(json.dumps(place, default=str))
    for record in logs:
        texts.append(record.getMessage())
        texts.extend(str(value) for value in vars(record).values())
    everything = "\n".join(texts)
    for secret in wanted:
        assert secret not in everything, "a secret leaked"


@contextlib.contextmanager
def read_only(state: Path) -> Iterator[Path]:
    """``state`` and its folder made so nobody can write them: mode 0444 in 0555 — and, for root, whom
    modes do not bind, the immutable attribute as well (the test is skipped where neither holds)."""
    folder = state.parent
    state.chmod(0o444)
    folder.chmod(0o555)
    immutable = False
    if os.access(state, os.W_OK) and shutil.which("chattr"):  # root: the immutable attribute binds root too
        chattr = subprocess.run(["chattr", "+i", str(state), str(folder)], check=False, capture_output=True)
        immutable = chattr.returncode == 0
    try:
        if os.access(state, os.W_OK) or os.access(folder, os.W_OK):
            pytest.skip("no way to make a file read-only for this user here")
        yield state
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(state), str(folder)], check=True)
        folder.chmod(0o755)
