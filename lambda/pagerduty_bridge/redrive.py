"""Dead letters are not the end: re-process what landed in a dead-letter or on-failure queue.

Two message shapes arrive there: an SNS notification (the subscription's DLQ, or the buffered
queue's redrive DLQ) and a Lambda on-failure destination record (``requestPayload`` holds the original
event). Both go through the handler's own path; a message is deleted only when every notification in
it was handled, so redriving is idempotent (what was already delivered is a duplicate and sends nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.processing import process_event
from pagerduty_bridge.safejson import loads

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from pagerduty_bridge.integration import PagerDutyIntegration

RECEIVE_BATCH = 10
"""SQS returns at most ten messages per ReceiveMessage call."""
VISIBILITY_SECONDS = 120
"""Long enough for ten notifications with their retries; a message not deleted reappears after it."""


@dataclass
class RedriveReport:
    received: int = 0
    redriven: int = 0
    kept: list[tuple[str, str]] = field(default_factory=list)
    """(message id, why) for each message left in the queue."""


def original_event(body: str) -> Any:
    """The event a dead letter stands for: a destination record's ``requestPayload``, else the body."""
    decoded = loads(body)
    if isinstance(decoded, dict) and isinstance(decoded.get("requestPayload"), dict):
        return decoded["requestPayload"]
    return decoded


def redrive(
    sqs: BaseClient, queue_url: str, integration: PagerDutyIntegration, *, max_messages: int = 1000, delete: bool = True
) -> RedriveReport:
    """Process up to ``max_messages``; delete each fully handled one (unless ``delete`` is off: a dry run)."""
    report = RedriveReport()
    while report.received < max_messages:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(RECEIVE_BATCH, max_messages - report.received),
            WaitTimeSeconds=0,
            VisibilityTimeout=VISIBILITY_SECONDS,
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        for message in messages:
            report.received += 1
            why = _process(message.get("Body", ""), integration)
            if why is None:
                if delete:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                report.redriven += 1
            else:
                report.kept.append((str(message.get("MessageId")), why))
    return report


def _process(body: str, integration: PagerDutyIntegration) -> str | None:
    """``None`` when every notification in the message was handled, else why not."""
    try:
        result = process_event(original_event(body), integration)
    except ValueError as exc:
        return f"not JSON ({exc})"
    except InvalidMessageError as exc:
        return str(exc)
    problems = [f"{r.record}: {r.error}" for r in result.results if r.error is not None]
    return "; ".join(problems) or None
