"""Lambda events and message bodies → notifications, whatever envelope they came in.

Auto-detected envelopes: Lambda SNS events (one or more records), SQS events carrying SNS
notifications (or raw messages), SNS HTTP(S) notification bodies, EventBridge "CloudWatch Alarm State
Change" / "Configuration Change" events, CloudFormation "Stack Status Change" events, the alarm's
direct Lambda action, and bare alarm messages. A message serialised twice (a JSON string holding a JSON
object, as a forwarder that encodes what already was JSON publishes it) is read as the object it holds.

A record that cannot be understood becomes a ``BadRecord`` naming what is wrong and where; the records
beside it are still returned, whatever the bad one holds (no value inside a record can raise out of
here). An alarm or stack event that cannot be read is no bad record: it becomes an
``UnrecognizedMessage`` naming its fault, forwarded like any other message, in every envelope. Only an
event that is no envelope at all raises ``InvalidMessageError``.

Every notification carries when it was received (its envelope's time, or the clock), and an alarm's
state-change time more than ``timeutil.MAX_CLOCK_SKEW`` ahead of that is not believed: it becomes the
receipt time (``timeutil.believable``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from pagerduty_bridge import constants as c
from pagerduty_bridge.alarms import aws_region, is_cloudwatch_alarm, parse_alarm_data, parse_alarm_message
from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.models import (
    AlarmNotification,
    ControlMessage,
    StackStatusChange,
    UnrecognizedMessage,
)
from pagerduty_bridge.safejson import loads, sanitized
from pagerduty_bridge.timeutil import believable, parse_epoch_millis, parse_time, receipt_time

logger = logging.getLogger(__name__)

EVENTBRIDGE_STATE_CHANGE: Final = "CloudWatch Alarm State Change"
EVENTBRIDGE_CONTRIBUTOR_CHANGE: Final = "CloudWatch Alarm Contributor State Change"
"""One time series (contributor) of a multi-time-series Metrics Insights alarm changed state."""
EVENTBRIDGE_CONFIG_CHANGE: Final = "CloudWatch Alarm Configuration Change"
SNS_CONTROL_TYPES: Final = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})

Content = AlarmNotification | UnrecognizedMessage | ControlMessage | StackStatusChange


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class BadRecord:
    record: str
    error: InvalidMessageError
    message_id: str | None = None
    batch_item_id: str | None = None


Parsed = Notification | BadRecord


def is_schedule(event: Any) -> bool:
    """An EventBridge schedule's event: the handler answers it by reconciling."""
    return isinstance(event, Mapping) and event.get("detail-type") == c.RECONCILE_SCHEDULE_DETAIL_TYPE


def is_sqs_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, Mapping) else None
    return bool(records) and isinstance(records, list) and _source(records[0]) == "aws:sqs"


def parse_event(event: Any, *, now: datetime | None = None) -> list[Parsed]:
    """Every notification in a Lambda event or message body, in order (``now``: the receipt clock)."""
    now = now or datetime.now(UTC)
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
        return [_guarded(record, f"Records[{index}]", now) for index, record in enumerate(records)]
    try:
        parsed = _body(event, "event", _Origin(now=now))
    except InvalidMessageError as exc:
        if isinstance(exc, _NotAnEnvelope):
            raise
        return [BadRecord("event", exc)]
    return [parsed]


class _NotAnEnvelope(InvalidMessageError):
    pass


@dataclass(frozen=True, slots=True)
class _Origin:
    """What the envelope around a body says: its time, its source, its SQS message id."""

    now: datetime
    sent: datetime | None = None
    source: str | None = None
    batch_item_id: str | None = None

    @property
    def received(self) -> datetime:
        return receipt_time(self.sent, self.now)

    def within(self, sent: datetime | None) -> _Origin:
        """The same origin, for a body wrapped inside this one (its own time wins when it has one)."""
        return replace(self, sent=sent or self.sent)


def _source(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None
    value = record.get("EventSource") or record.get("eventSource")
    return str(value) if value else None


def _guarded(record: Any, where: str, now: datetime) -> Parsed:
    """One record, whatever it holds: a parse failure of any kind becomes its ``BadRecord``."""
    batch_item_id = _batch_item_id(record)
    try:
        return _lambda_record(record, where, now, batch_item_id)
    except InvalidMessageError as exc:
        return BadRecord(where, exc, message_id=_message_id(record), batch_item_id=batch_item_id)
    except Exception as exc:
        logger.exception("unexpected failure reading %s", where)
        problem = InvalidMessageError(f"{where} could not be read ({type(exc).__name__})")
        return BadRecord(where, problem, message_id=_message_id(record), batch_item_id=batch_item_id)


def _batch_item_id(record: Any) -> str | None:
    if isinstance(record, Mapping) and _source(record) == "aws:sqs" and record.get("messageId"):
        return str(record["messageId"])
    return None


def _lambda_record(record: Any, where: str, now: datetime, batch_item_id: str | None) -> Parsed:
    source = _source(record)
    if not isinstance(record, Mapping):
        raise InvalidMessageError(f"{where} is not an object")
    if source == "aws:sns":
        sns = record.get("Sns")
        if not isinstance(sns, Mapping):
            raise InvalidMessageError(f"{where}.Sns is missing or not an object")
        return _sns(sns, f"{where}.Sns", _Origin(now=now))
    if source == "aws:sqs":
        return _sqs(record, where, now, batch_item_id)
    raise InvalidMessageError(f"{where} has event source {source!r}; expected aws:sns or aws:sqs")


def _sqs(record: Mapping[str, Any], where: str, now: datetime, batch_item_id: str | None) -> Notification:
    body = record.get("body")
    if not isinstance(body, str):
        raise InvalidMessageError(f"{where}.body is missing or not a string")
    origin = _Origin(
        now=now,
        sent=_sqs_sent(record),
        source=str(record.get("eventSourceARN") or "") or None,
        batch_item_id=batch_item_id,
    )
    try:
        decoded = _decoded(body)
    except ValueError:
        return _raw_message(f"{where}.body", None, body, origin)
    try:
        return _body(decoded, f"{where}.body", origin, body)
    except _NotAnEnvelope:
        if not isinstance(decoded, Mapping):
            raise
        # Raw message delivery: the body is the message published on the topic. A JSON one that is no
        # alarm (an AWS Health event, an Auto Scaling notification) is forwarded, as inside an envelope.
        detail_type = decoded.get("detail-type")
        return _raw_message(f"{where}.body", detail_type if isinstance(detail_type, str) else None, body, origin)


def _raw_message(where: str, title: str | None, body: str, origin: _Origin) -> Notification:
    """An SQS body that is a message of its own, not an alarm: forwarded whole, like any on the topic."""
    return Notification(
        where,
        _unrecognized(title, body, origin.received),
        message_id=origin.batch_item_id,
        source=origin.source,
        batch_item_id=origin.batch_item_id,
    )


def _message_id(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None
    sns = record.get("Sns")
    if isinstance(sns, Mapping) and sns.get("MessageId"):
        return str(sns["MessageId"])
    return str(record["messageId"]) if record.get("messageId") else None


def _decoded(text: str) -> Any:
    """``loads(text)``, read once more when it is a JSON string holding a JSON object: a message
    serialised twice (a forwarder's ``json.dumps`` of a message that already was JSON) is still itself."""
    decoded = loads(text)
    if isinstance(decoded, str) and decoded.lstrip().startswith(("{", "\ufeff")):
        try:
            inner = loads(decoded)
        except ValueError:
            return decoded
        return inner if isinstance(inner, Mapping) else decoded
    return decoded


def _sqs_sent(record: Mapping[str, Any]) -> datetime | None:
    attributes = record.get("attributes")
    return parse_epoch_millis(attributes.get("SentTimestamp")) if isinstance(attributes, Mapping) else None


def _body(body: Any, where: str, origin: _Origin, text: str | None = None) -> Notification:
    """A decoded JSON body (``text``: as it came, when it came as text): SNS HTTP notification,
    EventBridge event, alarm action or bare alarm. An alarm or stack event that cannot be read is
    forwarded whole with its fault named, as it is from the topic: a retry cannot mend it, and an
    answered invocation or a dead letter would keep it from the responders."""
    try:
        return _envelope(body, where, origin)
    except _NotAnEnvelope:
        raise
    except InvalidMessageError as exc:
        if not isinstance(body, Mapping) or _is_sns_notification(body):
            raise  # a broken SNS envelope: nothing in it is known to be a message
        detail_type = body.get("detail-type")
        title = detail_type if isinstance(detail_type, str) else None
        forwarded = _unrecognized(
            title, text or json.dumps(body, ensure_ascii=False), origin.received, problem=str(exc)
        )
        return Notification(where, forwarded, source=origin.source, batch_item_id=origin.batch_item_id)


def _envelope(body: Any, where: str, origin: _Origin) -> Notification:
    if not isinstance(body, Mapping):
        raise _NotAnEnvelope(f"{where} is a JSON {type(body).__name__}, not a known envelope")
    if _is_sns_notification(body):
        if body["Type"] in SNS_CONTROL_TYPES:
            return Notification(
                where,
                ControlMessage(kind=f"sns_{body['Type']}"),
                message_id=str(body["MessageId"]),
                source=str(body["TopicArn"]),
                batch_item_id=origin.batch_item_id,
            )
        return _sns(body, where, origin)
    if "detail-type" in body and isinstance(body.get("detail"), Mapping):
        return _eventbridge(body, where, origin)
    if isinstance(body.get("alarmData"), Mapping):
        return _alarm_action(body, where, origin)
    if is_cloudwatch_alarm(body):
        received = origin.received
        alarm = parse_alarm_message(body, fallback_time=received)
        return Notification(where, _believed(alarm, received), source=origin.source, batch_item_id=origin.batch_item_id)
    raise _NotAnEnvelope(
        f"{where} is no known envelope: expected a Lambda SNS or SQS event, an SNS notification, an EventBridge "
        "alarm event, an alarm action or a CloudWatch alarm message"
    )


def _is_sns_notification(body: Mapping[str, Any]) -> bool:
    return isinstance(body.get("Type"), str) and "MessageId" in body and "TopicArn" in body


def _alarm_action(body: Mapping[str, Any], where: str, origin: _Origin) -> Notification:
    received = origin.within(parse_time(body.get("time"))).received
    alarm = parse_alarm_data(
        body["alarmData"],
        alarm_arn=body.get("alarmArn"),
        account_id=body.get("accountId"),
        region_code=body.get("region"),
        fallback_time=received,
    )
    return Notification(
        f"{where}.alarmData",
        _believed(alarm, received),
        source=str(body.get("source") or "aws.cloudwatch"),
        batch_item_id=origin.batch_item_id,
    )


def _sns(sns: Mapping[str, Any], where: str, origin: _Origin) -> Notification:
    """An SNS notification: its ``Message`` is an alarm (JSON) or any other text."""
    message_id = str(sns.get("MessageId")) if sns.get("MessageId") else None
    topic = str(sns.get("TopicArn")) if sns.get("TopicArn") else None
    subject = sns.get("Subject") if isinstance(sns.get("Subject"), str) else None
    inner = origin.within(parse_time(sns.get("Timestamp")))
    received = inner.received
    message = sns.get("Message")
    if not isinstance(message, str):
        raise InvalidMessageError(f"{where}.Message is missing or not a string")
    context = {"message_id": message_id, "source": topic, "batch_item_id": origin.batch_item_id}
    try:
        decoded = _decoded(message)
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
        return Notification(f"{where}.Message", _believed(alarm, received), **context)
    if isinstance(decoded, Mapping) and "detail-type" in decoded and isinstance(decoded.get("detail"), Mapping):
        detail_type = decoded["detail-type"]
        title = subject or (detail_type if isinstance(detail_type, str) else None)
        try:
            wrapped = _eventbridge(decoded, f"{where}.Message", inner)
        except _NotAnEnvelope:
            # Another kind of EventBridge event (AWS Health, GuardDuty, EC2 …) sent to the topic: not an
            # alarm, so forwarded whole like any other message, titled by its detail-type.
            return Notification(f"{where}.Message", _unrecognized(title, message, received), **context)
        except InvalidMessageError as exc:
            # An alarm (or stack) event that is not a valid one: forwarded, as an alarm message is.
            return Notification(
                f"{where}.Message", _unrecognized(title, message, received, problem=str(exc)), **context
            )
        return Notification(wrapped.record, wrapped.content, **context)
    return Notification(f"{where}.Message", _unrecognized(subject, message, received), **context)


def _eventbridge(event: Mapping[str, Any], where: str, origin: _Origin) -> Notification:
    detail_type = event.get("detail-type")
    event_id = str(event.get("id")) if event.get("id") else None
    context = {"message_id": event_id, "source": str(event.get("source")), "batch_item_id": origin.batch_item_id}
    if detail_type == EVENTBRIDGE_CONFIG_CHANGE:
        return Notification(where, ControlMessage(kind="alarm_configuration_change"), **context)
    inner = origin.within(parse_time(event.get("time")))
    if detail_type == c.STACK_STATUS_CHANGE_DETAIL_TYPE and event.get("source") == c.CLOUDFORMATION_SOURCE:
        return Notification(f"{where}.detail", _stack_status(event, inner), **context)
    if detail_type not in (EVENTBRIDGE_STATE_CHANGE, EVENTBRIDGE_CONTRIBUTOR_CHANGE):
        raise _NotAnEnvelope(f"{where} is an EventBridge {detail_type!r} event, not a CloudWatch alarm event")
    resources = event.get("resources")
    arn = resources[0] if isinstance(resources, list) and resources and isinstance(resources[0], str) else None
    received = inner.received
    alarm = parse_alarm_data(
        event["detail"],
        alarm_arn=arn,
        account_id=event.get("account"),
        region_code=event.get("region"),
        fallback_time=received,
    )
    return Notification(f"{where}.detail", _believed(alarm, received), **context)


def _stack_status(event: Mapping[str, Any], origin: _Origin) -> StackStatusChange:
    detail = event["detail"]
    stack_id = detail.get("stack-id")
    status_details = detail.get("status-details")
    status = status_details.get("status") if isinstance(status_details, Mapping) else None
    if not isinstance(stack_id, str) or not isinstance(status, str):
        raise InvalidMessageError("a stack status change needs detail.stack-id and detail.status-details.status")
    parts = stack_id.split(":")
    name = stack_id.split(":stack/", 1)[1].split("/", 1)[0] if ":stack/" in stack_id else stack_id
    reason = status_details.get("status-reason") if isinstance(status_details, Mapping) else None
    return StackStatusChange(
        stack_id=stack_id,
        stack_name=name,
        status=status,
        status_reason=reason if isinstance(reason, str) else "",
        account_id=str(event.get("account") or (parts[4] if len(parts) > 4 else "")) or None,
        region_code=aws_region(event.get("region")) or aws_region(parts[3] if len(parts) > 3 else None),
        partition=parts[1] if len(parts) > 1 and parts[1].startswith("aws") else "aws",
        time=origin.received,
        event_id=str(event.get("id")) if event.get("id") else None,
    )


def _believed(alarm: AlarmNotification, received: datetime) -> AlarmNotification:
    """The alarm with a state-change time no later than its receipt allows (see module docs)."""
    believed = believable(alarm.state_change_time, received)
    if believed == alarm.state_change_time:
        return alarm
    logger.warning(
        "state change time is ahead of its receipt; the receipt time is used instead",
        extra={"alarm_name": alarm.alarm_name[:256], "stated": alarm.state_change_time.isoformat()},
    )
    return replace(alarm, state_change_time=believed)


def _unrecognized(
    subject: str | None, text: str, received: datetime, problem: str | None = None
) -> UnrecognizedMessage:
    return UnrecognizedMessage(subject=subject or None, text=text, received_at=received, problem=problem)
