"""Dead letters are not the end: re-process what landed in a dead-letter or on-failure queue.

Three kinds of message arrive there: an SNS notification (the subscription's DLQ, or the buffered
queue's redrive DLQ), a Lambda on-failure destination record whose ``requestPayload`` is the original
event — a notification, a CloudFormation stack change, or a scheduled reconciliation run that failed —
and anything else, read as the function reads the buffer's messages (with raw message delivery, the
message published on the topic). Notifications go through the handler's own path; a scheduled run is
run once more (``run_schedule``, once however many failed runs the queue holds), which is what the next
one would do anyway. A message is deleted only when everything in it was handled, so redriving is
idempotent (what was already delivered is a duplicate and sends nothing); what cannot be handled stays,
with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from pagerduty_bridge.envelopes import is_schedule
from pagerduty_bridge.errors import BridgeError, InvalidMessageError
from pagerduty_bridge.processing import process_event
from pagerduty_bridge.safejson import loads

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from pagerduty_bridge.notifications import Notifications

RECEIVE_BATCH: Final = 10
"""SQS returns at most ten messages per ReceiveMessage call."""
VISIBILITY_SECONDS: Final = 120
"""Long enough for ten notifications with their retries; a message not deleted reappears after it."""
CONFIRM_EMPTY_WAIT_SECONDS: Final = 1
"""A long poll's wait, asked when a short poll answers empty. A short poll (``WaitTimeSeconds=0``) asks
only some of SQS's servers and may answer empty while a few messages are there (the usual dead-letter
queue); a long poll asks them all, so only its empty answer says the queue is drained."""
MAX_IDLE_RECEIVES: Final = 5
"""Receives in a row that bring only messages this run already handled before it stops (they could not be
hidden again): the queue holds nothing new it can reach."""


@dataclass
class RedriveReport:
    received: int = 0
    redriven: int = 0
    kept: list[tuple[str, str]] = field(default_factory=list)
    """(message id, why) for each message left in the queue."""
    schedules: int = 0
    """Scheduled reconciliation runs found (and run once more)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "redriven": self.redriven,
            "schedules": self.schedules,
            "kept": [{"message_id": message_id, "reason": why} for message_id, why in self.kept],
        }


ScheduleRunner = Callable[[], str | None]
"""Runs one reconciliation; ``None`` when it went through, else why not."""


def original_event(body: str, message_id: str = "") -> Any:
    """The event a dead letter stands for: a destination record's ``requestPayload``; a Lambda event
    or a scheduled run's event as it is; else an SQS event of the message, so that it is read exactly as
    the function reads the buffer's messages (an SNS notification, or with raw message delivery the
    message itself: an alarm, or anything else published on the topic, forwarded)."""
    decoded = loads(body)
    if isinstance(decoded, dict) and isinstance(decoded.get("requestPayload"), dict):
        return decoded["requestPayload"]
    if isinstance(decoded, dict) and ("Records" in decoded or is_schedule(decoded)):
        return decoded
    return {"Records": [{"eventSource": "aws:sqs", "messageId": message_id, "body": body}]}


def redrive(
    sqs: BaseClient,
    queue_url: str,
    notifications: Notifications,
    *,
    run_schedule: ScheduleRunner,
    max_messages: int = 1000,
    delete: bool = True,
    progress: Callable[[RedriveReport], None] | None = None,
) -> RedriveReport:
    """Process up to ``max_messages``; delete each fully handled one (unless ``delete`` is off: a dry run)."""
    report = RedriveReport()
    run_schedule = once(run_schedule)
    seen: set[str] = set()
    idle = 0
    wait = 0
    while report.received < max_messages and idle < MAX_IDLE_RECEIVES:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(RECEIVE_BATCH, max_messages - report.received),
            WaitTimeSeconds=wait,
            VisibilityTimeout=VISIBILITY_SECONDS,
        )
        received = response.get("Messages", [])
        if not received:
            if wait:
                break
            wait = CONFIRM_EMPTY_WAIT_SECONDS  # a short poll's empty answer is confirmed by a long poll
            continue
        wait = 0
        # A message kept earlier in this run comes back once its visibility ends (handling the rest
        # took longer): it was handled, and is not handled, sent or reported again. It is hidden again,
        # so that the messages behind it are read: only an empty answer says the queue is drained.
        messages = [m for m in received if str(m.get("MessageId")) not in seen]
        hide_again(sqs, queue_url, [m for m in received if str(m.get("MessageId")) in seen])
        idle = 0 if messages else idle + 1
        for message in messages:
            seen.add(str(message.get("MessageId")))
            report.received += 1
            why = _process(message, notifications, run_schedule, report)
            if why is None and delete:
                why = delete_handled(sqs, queue_url, message)
            if why is None:
                report.redriven += 1
            else:
                report.kept.append((str(message.get("MessageId")), why))
        if progress is not None:
            progress(report)
    return report


def once(run_schedule: ScheduleRunner) -> ScheduleRunner:
    """``run_schedule`` run at the first failed scheduled run found, its outcome reused for the others:
    each stands for "the next run", and one run now is all of them (a queue of hundreds would otherwise
    re-read every alarm and resend every failing incident hundreds of times)."""
    outcome: list[str | None] = []

    def run() -> str | None:
        if not outcome:
            outcome.append(run_schedule())
        return outcome[0]

    return run


def delete_handled(sqs: BaseClient, queue_url: str, message: dict[str, Any]) -> str | None:
    """Delete a message this run handled; why not, when the queue refuses (someone else deleted it, or
    purged the queue, meanwhile). The run goes on: what it handled is a duplicate if it is redriven again."""
    try:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    except ClientError as exc:
        return f"handled, but not deleted ({exc}): redriven again it is a duplicate"
    return None


def hide_again(sqs: BaseClient, queue_url: str, messages: list[dict[str, Any]]) -> None:
    """Hide messages this run already handled for another ``VISIBILITY_SECONDS``; one deleted or taken
    by someone else meanwhile (its receipt handle no longer valid) is simply not there to hide."""
    for message in messages:
        try:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=VISIBILITY_SECONDS
            )
        except ClientError:
            continue


def _process(
    message: dict[str, Any], notifications: Notifications, run_schedule: ScheduleRunner, report: RedriveReport
) -> str | None:
    """``None`` when everything in the message was handled, else why not."""
    try:
        event = original_event(message.get("Body", ""), str(message.get("MessageId") or ""))
    except ValueError as exc:
        return f"not JSON ({exc})"
    if is_schedule(event):
        report.schedules += 1
        return run_schedule()
    try:
        result = process_event(event, notifications)
    except InvalidMessageError as exc:
        return str(exc)
    except BridgeError as exc:
        return str(exc)
    problems = [f"{r.record}: {r.error}" for r in result.results if r.error is not None]
    return "; ".join(problems) or None
