"""Lambda events and message bodies → notifications, whatever envelope they came in.

Auto-detected envelopes: Lambda SNS events (one or more records), SQS events carrying SNS
notifications (or raw messages), SNS HTTP(S) notification bodies, EventBridge "CloudWatch Alarm State
Change" / "Configuration Change" events, the alarm's direct Lambda action, and bare alarm messages.

A record that cannot be understood becomes a ``BadRecord`` naming what is wrong and where; the records
beside it are still returned. Only an event that is no envelope at all raises ``InvalidMessageError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pagerduty_bridge.alarms import is_cloudwatch_alarm, parse_alarm_data, parse_alarm_message
from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.models import AlarmNotification, ControlMessage, UnrecognizedMessage, utc
from pagerduty_bridge.safejson import loads, sanitized

EVENTBRIDGE_STATE_CHANGE = "CloudWatch Alarm State Change"
EVENTBRIDGE_CONFIG_CHANGE = "CloudWatch Alarm Configuration Change"
SNS_CONTROL_TYPES = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})

Content = AlarmNotification | UnrecognizedMessage | ControlMessage


@dataclass(frozen=True)
class Notification:
    """One message to act on, with where it came from (for logs, output and partial batch failures)."""

    record: str
    """Where in the event: ``Records[0]``, ``body``, ``detail`` …"""
    content: Content
    message_id: str | None = None
    source: str | None = None
    """The topic or event source, when known."""
    batch_item_id: str | None = None
    """The SQS message id, for ``batchItemFailures``."""


@dataclass(frozen=True)
class BadRecord:
    record: str
    error: InvalidMessageError
    message_id: str | None = None
    batch_item_id: str | None = None


Parsed = Notification | BadRecord


def is_sqs_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, Mapping) else None
    return bool(records) and isinstance(records, list) and _source(records[0]) == "aws:sqs"


def parse_event(event: Any) -> list[Parsed]:
    """Every notification in a Lambda event or message body, in order."""
    try:
        event = sanitized(event)
    except RecursionError:
        raise InvalidMessageError("the event is nested too deeply to be a notification") from None
    if not isinstance(event, Mapping):
        raise InvalidMessageError(f"the event is a JSON {type(event).__name__}, not an object")
    records = event.get("Records")
    if isinstance(records, list):
        if not records:
            raise InvalidMessageError("the event's Records list is empty")
        return [_lambda_record(record, f"Records[{index}]") for index, record in enumerate(records)]
    try:
        parsed = _body(event, "event", source=None, fallback_time=None, batch_item_id=None)
    except InvalidMessageError as exc:
        if isinstance(exc, _NotAnEnvelope):
            raise
        return [BadRecord("event", exc)]
    return [parsed]


class _NotAnEnvelope(InvalidMessageError):
    pass


def _source(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None
    value = record.get("EventSource") or record.get("eventSource")
    return str(value) if value else None


def _lambda_record(record: Any, where: str) -> Parsed:
    source = _source(record)
    if not isinstance(record, Mapping):
        return BadRecord(where, InvalidMessageError(f"{where} is not an object"))
    batch_item_id = str(record["messageId"]) if source == "aws:sqs" and record.get("messageId") else None
    try:
        if source == "aws:sns":
            sns = record.get("Sns")
            if not isinstance(sns, Mapping):
                raise InvalidMessageError(f"{where}.Sns is missing or not an object")
            return _sns(sns, f"{where}.Sns", batch_item_id=None)
        if source == "aws:sqs":
            body = record.get("body")
            if not isinstance(body, str):
                raise InvalidMessageError(f"{where}.body is missing or not a string")
            try:
                decoded = loads(body)
            except ValueError:
                return Notification(
                    f"{where}.body",
                    _unrecognized(None, body, _sqs_time(record)),
                    message_id=batch_item_id,
                    source=str(record.get("eventSourceARN") or "") or None,
                    batch_item_id=batch_item_id,
                )
            return _body(
                decoded,
                f"{where}.body",
                source=record.get("eventSourceARN"),
                fallback_time=_sqs_time(record),
                batch_item_id=batch_item_id,
            )
        raise InvalidMessageError(f"{where} has event source {source!r}; expected aws:sns or aws:sqs")
    except InvalidMessageError as exc:
        return BadRecord(where, exc, message_id=_message_id(record), batch_item_id=batch_item_id)


def _message_id(record: Mapping[str, Any]) -> str | None:
    sns = record.get("Sns")
    if isinstance(sns, Mapping) and sns.get("MessageId"):
        return str(sns["MessageId"])
    return str(record["messageId"]) if record.get("messageId") else None


def _sqs_time(record: Mapping[str, Any]) -> datetime | None:
    attributes = record.get("attributes")
    if isinstance(attributes, Mapping):
        sent = attributes.get("SentTimestamp")
        if isinstance(sent, str) and sent.isdigit():
            return datetime.fromtimestamp(int(sent) / 1000, UTC)
    return None


def _body(
    body: Any, where: str, *, source: str | None, fallback_time: datetime | None, batch_item_id: str | None
) -> Notification:
    """A decoded JSON body: SNS HTTP notification, EventBridge event, alarm action or bare alarm."""
    if not isinstance(body, Mapping):
        raise _NotAnEnvelope(f"{where} is a JSON {type(body).__name__}, not a known envelope")
    sns_type = body.get("Type")
    if isinstance(sns_type, str) and "MessageId" in body and "TopicArn" in body:
        if sns_type in SNS_CONTROL_TYPES:
            return Notification(
                where,
                ControlMessage(kind=f"sns_{sns_type}"),
                message_id=str(body["MessageId"]),
                source=str(body["TopicArn"]),
                batch_item_id=batch_item_id,
            )
        return _sns(body, where, batch_item_id=batch_item_id)
    if "detail-type" in body and isinstance(body.get("detail"), Mapping):
        return _eventbridge(body, where, batch_item_id)
    if isinstance(body.get("alarmData"), Mapping):
        alarm = parse_alarm_data(
            body["alarmData"],
            alarm_arn=body.get("alarmArn"),
            account_id=body.get("accountId"),
            region_code=body.get("region"),
            fallback_time=_iso(body.get("time")),
        )
        return Notification(
            f"{where}.alarmData",
            alarm,
            source=str(body.get("source") or "aws.cloudwatch"),
            batch_item_id=batch_item_id,
        )
    if is_cloudwatch_alarm(body):
        return Notification(
            where,
            parse_alarm_message(body, fallback_time=fallback_time),
            source=source,
            batch_item_id=batch_item_id,
        )
    raise _NotAnEnvelope(
        f"{where} is no known envelope: expected a Lambda SNS or SQS event, an SNS notification, an EventBridge "
        "alarm event, an alarm action or a CloudWatch alarm message"
    )


def _sns(sns: Mapping[str, Any], where: str, *, batch_item_id: str | None) -> Notification:
    """An SNS notification: its ``Message`` is an alarm (JSON) or any other text."""
    message_id = str(sns.get("MessageId")) if sns.get("MessageId") else None
    topic = str(sns.get("TopicArn")) if sns.get("TopicArn") else None
    subject = sns.get("Subject") if isinstance(sns.get("Subject"), str) else None
    received = _iso(sns.get("Timestamp"))
    message = sns.get("Message")
    if not isinstance(message, str):
        raise InvalidMessageError(f"{where}.Message is missing or not a string")
    context = {"message_id": message_id, "source": topic, "batch_item_id": batch_item_id}
    try:
        decoded = loads(message)
    except ValueError:
        return Notification(f"{where}.Message", _unrecognized(subject, message, received), **context)
    if isinstance(decoded, Mapping) and is_cloudwatch_alarm(decoded):
        try:
            alarm = parse_alarm_message(decoded, fallback_time=received)
        except InvalidMessageError as exc:
            # Looks like an alarm but is not a valid one: forward its text rather than lose it.
            return Notification(
                f"{where}.Message", _unrecognized(subject, message, received, problem=str(exc)), **context
            )
        return Notification(f"{where}.Message", alarm, **context)
    if isinstance(decoded, Mapping) and "detail-type" in decoded and isinstance(decoded.get("detail"), Mapping):
        inner = _eventbridge(decoded, f"{where}.Message", batch_item_id)
        return Notification(inner.record, inner.content, **context)
    return Notification(f"{where}.Message", _unrecognized(subject, message, received), **context)


def _eventbridge(event: Mapping[str, Any], where: str, batch_item_id: str | None) -> Notification:
    detail_type = event.get("detail-type")
    event_id = str(event.get("id")) if event.get("id") else None
    if detail_type == EVENTBRIDGE_CONFIG_CHANGE:
        return Notification(
            where,
            ControlMessage(kind="alarm_configuration_change"),
            message_id=event_id,
            source=str(event.get("source")),
            batch_item_id=batch_item_id,
        )
    if detail_type != EVENTBRIDGE_STATE_CHANGE:
        raise _NotAnEnvelope(f"{where} is an EventBridge {detail_type!r} event, not a CloudWatch alarm event")
    resources = event.get("resources")
    arn = resources[0] if isinstance(resources, list) and resources and isinstance(resources[0], str) else None
    alarm = parse_alarm_data(
        event["detail"],
        alarm_arn=arn,
        account_id=event.get("account"),
        region_code=event.get("region"),
        fallback_time=_iso(event.get("time")),
    )
    return Notification(
        f"{where}.detail",
        alarm,
        message_id=event_id,
        source=str(event.get("source")),
        batch_item_id=batch_item_id,
    )


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _unrecognized(
    subject: str | None, text: str, received: datetime | None, problem: str | None = None
) -> UnrecognizedMessage:
    return UnrecognizedMessage(
        subject=subject or None,
        text=text,
        received_at=received or datetime(1970, 1, 1, tzinfo=UTC),
        problem=problem,
    )
