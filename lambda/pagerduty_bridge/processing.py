"""One Lambda event → one result per notification: the path the handler and ``replay`` share.

Each record is handled on its own: a bad record is reported and skipped, a failed delivery is
recorded, and the records beside them still go through. The caller decides what a failure means
(the handler raises the retryable ones or reports them as SQS batch item failures; ``replay`` sets its
exit code).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pagerduty_bridge import constants as c
from pagerduty_bridge.envelopes import BadRecord, Notification, is_sqs_event, parse_event
from pagerduty_bridge.errors import BridgeError, InvalidMessageError
from pagerduty_bridge.integration import Outcome, PagerDutyIntegration
from pagerduty_bridge.models import AlarmNotification, ControlMessage, EventAction, UnrecognizedMessage
from pagerduty_bridge.settings import UnrecognizedMessageAction

logger = logging.getLogger(__name__)

MetricSink = Callable[[str, float, str], None]
"""(metric name, value, unit) — Powertools ``add_metric`` in the Lambda, a counter in tests."""


@dataclass(frozen=True)
class RecordResult:
    record: str
    outcome: Outcome | None = None
    error: BridgeError | None = None
    message_id: str | None = None
    batch_item_id: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def retryable(self) -> bool:
        return self.error is not None and self.error.retryable


@dataclass
class EventResult:
    results: list[RecordResult] = field(default_factory=list)
    sqs: bool = False

    @property
    def retryable_errors(self) -> list[BridgeError]:
        return [r.error for r in self.results if r.error is not None and r.error.retryable]

    def batch_item_failures(self) -> list[dict[str, str]]:
        """SQS partial batch response: the messages to receive again (only what a retry can fix)."""
        return [{"itemIdentifier": r.batch_item_id} for r in self.results if r.retryable and r.batch_item_id]


def _no_metric(name: str, value: float, unit: str) -> None:
    return None


def process_event(
    event: Any,
    integration: PagerDutyIntegration,
    *,
    budget_seconds: Callable[[], float | None] = lambda: None,
    metric: MetricSink = _no_metric,
) -> EventResult:
    """Handle every notification in ``event``; never raises for one record's trouble.

    ``InvalidMessageError`` is raised only when the event itself is no known envelope.
    """
    result = EventResult(sqs=is_sqs_event(event))
    for parsed in parse_event(event):
        metric(c.METRIC_NOTIFICATION_RECEIVED, 1, "Count")
        if isinstance(parsed, BadRecord):
            metric(c.METRIC_INVALID_MESSAGE, 1, "Count")
            logger.warning(
                "skipped an unreadable record", extra={"record": parsed.record, "problem": str(parsed.error)}
            )
            result.results.append(
                RecordResult(
                    parsed.record,
                    error=parsed.error,
                    message_id=parsed.message_id,
                    batch_item_id=parsed.batch_item_id,
                )
            )
            continue
        result.results.append(handle_notification(parsed, integration, budget_seconds(), metric))
    return result


def handle_notification(
    notification: Notification, integration: PagerDutyIntegration, budget: float | None, metric: MetricSink
) -> RecordResult:
    content = notification.content
    context = {"record": notification.record, "message_id": notification.message_id}
    try:
        if isinstance(content, ControlMessage):
            outcome = Outcome(None, "control_message", None)
        elif isinstance(content, AlarmNotification):
            outcome = integration.handle_alarm(content, budget_seconds=budget)
        else:
            outcome = _unrecognized(content, notification, integration, budget, metric)
    except BridgeError as exc:
        # Raised before anything was sent (configuration, store, a concurrent delivery in flight).
        _count_failure(exc, metric)
        logger.error("notification failed", extra={**context, "error": str(exc), "retryable": exc.retryable})
        return RecordResult(
            notification.record,
            error=exc,
            message_id=notification.message_id,
            batch_item_id=notification.batch_item_id,
        )
    _count(outcome, metric)
    extra = {
        **context,
        "alarm_name": outcome.alarm_name,
        "dedup_key": outcome.dedup_key,
        "action": outcome.action.value if outcome.action else "none",
        "reason": outcome.reason,
    }
    if outcome.error is not None:
        logger.error(
            "delivery to PagerDuty failed",
            extra={**extra, "error": str(outcome.error), "retryable": outcome.error.retryable},
        )
    else:
        logger.info("notification handled", extra={**extra, "delivered": outcome.delivered})
    return RecordResult(
        notification.record,
        outcome=outcome,
        error=outcome.error,
        message_id=notification.message_id,
        batch_item_id=notification.batch_item_id,
    )


def _unrecognized(
    content: UnrecognizedMessage,
    notification: Notification,
    integration: PagerDutyIntegration,
    budget: float | None,
    metric: MetricSink,
) -> Outcome:
    metric(c.METRIC_UNRECOGNIZED_MESSAGE, 1, "Count")
    if content.problem:
        metric(c.METRIC_INVALID_MESSAGE, 1, "Count")
        logger.warning(
            "an alarm-like message could not be read",
            extra={"record": notification.record, "problem": content.problem},
        )
    if integration.settings.unrecognized_message_action is UnrecognizedMessageAction.DROP:
        logger.info("dropped a message that is not an alarm", extra={"record": notification.record})
        return Outcome(None, "unrecognized_dropped", None)
    return integration.handle_unrecognized(content, source=notification.source, budget_seconds=budget)


def _count(outcome: Outcome, metric: MetricSink) -> None:
    if outcome.error is not None:
        _count_failure(outcome.error, metric)
        return
    if outcome.reason == "stale":
        metric(c.METRIC_STALE_NOTIFICATION, 1, "Count")
    elif outcome.reason == "duplicate":
        metric(c.METRIC_DUPLICATE_NOTIFICATION, 1, "Count")
    if not outcome.delivered:
        return
    if outcome.action is EventAction.TRIGGER:
        metric(c.METRIC_INCIDENT_TRIGGERED, 1, "Count")
    elif outcome.action is EventAction.ACKNOWLEDGE:
        metric(c.METRIC_INCIDENT_ACKNOWLEDGED, 1, "Count")
    elif outcome.action is EventAction.RESOLVE:
        metric(c.METRIC_INCIDENT_RESOLVED, 1, "Count")
        how = outcome.incident.resolution if outcome.incident else None
        if how is not None:
            metric(c.METRIC_INCIDENT_RESOLVED_BY.format(how=how.value.capitalize()), 1, "Count")
        seconds = outcome.incident.resolution_seconds if outcome.incident else None
        if seconds is not None:
            metric(c.METRIC_RESOLUTION_TIME, seconds, "Seconds")


def _count_failure(error: BridgeError, metric: MetricSink) -> None:
    if isinstance(error, InvalidMessageError):
        metric(c.METRIC_INVALID_MESSAGE, 1, "Count")
        return
    metric(c.METRIC_DELIVERY_FAILED, 1, "Count")
    metric(
        c.METRIC_DELIVERY_FAILED_TRANSIENT if error.retryable else c.METRIC_DELIVERY_FAILED_PERMANENT,
        1,
        "Count",
    )
