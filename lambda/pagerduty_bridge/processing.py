"""One Lambda event → one result per notification: the path the handler, ``replay`` and ``redrive`` share.

Each record is handled on its own: a record that cannot be read is reported and skipped, a failed
delivery is recorded, an unforeseen failure is caught and kept, and the records beside them still go
through. Before each record the invocation's remaining time is checked against what one more record
needs (``Deadline``): a record that cannot be finished is not started, and goes back whole. The caller
decides what a failure means (the handler raises the retryable ones or reports them as SQS batch item
failures; ``replay`` sets its exit code).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pagerduty_bridge import constants as c
from pagerduty_bridge.delivery import INVOCATION_BUDGET, Outcome
from pagerduty_bridge.envelopes import BadRecord, Notification, is_sqs_event, parse_event
from pagerduty_bridge.errors import (
    BridgeError,
    DeadlineError,
    InvalidMessageError,
    StoreError,
    StoreTimeoutError,
    UnexpectedError,
    rate_limited,
)
from pagerduty_bridge.events_api import request_timeouts
from pagerduty_bridge.lifecycle import Reason
from pagerduty_bridge.models import (
    AlarmNotification,
    ControlMessage,
    EventAction,
    StackStatusChange,
    UnrecognizedMessage,
    UnrecognizedMessageAction,
)
from pagerduty_bridge.notifications import CHANGE_EVENT, Notifications
from pagerduty_bridge.pacing import BATCH_PATIENCE_SECONDS, RATE_LIMIT_PATIENCE

logger = logging.getLogger(__name__)

MetricSink = Callable[[str, float, str], None]
"""(metric name, value, unit) — Powertools ``add_metric`` in the Lambda, a counter in tests."""

STORE_ALLOWANCE_SECONDS: Final = 1.0
"""What one record's table work (a read, a claim and a commit) may take beside its PagerDuty call."""
MIN_SEND_BUDGET_SECONDS: Final = 0.5
"""No send is started with less than this to spend."""
BUDGET_SEARCH_STEPS: Final = 40
"""Halvings when searching the largest budget that fits: far below a microsecond for any budget."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """When the invocation must be done with its records (monotonic seconds), or never (the CLI)."""

    end: float | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float | None:
        return None if self.end is None else self.end - self.clock()

    def record_budget(self, configured: float) -> float | None:
        """The retry budget one more record may spend, or ``None`` when it cannot be finished in time.

        A record is started when one whole attempt (connect and read timeouts for its budget) and its
        table work fit. Its budget is then the largest, up to ``configured``, whose longest send (see
        ``send_seconds``) and the table work still fit: retries never run past the deadline.
        """
        remaining = self.remaining()
        if remaining is None:
            return configured
        available = remaining - STORE_ALLOWANCE_SECONDS
        if available < attempt_seconds(min(configured, remaining)) or available < send_seconds(MIN_SEND_BUDGET_SECONDS):
            return None
        low, high = MIN_SEND_BUDGET_SECONDS, max(MIN_SEND_BUDGET_SECONDS, configured)
        if send_seconds(high) <= available:
            return high
        for _ in range(BUDGET_SEARCH_STEPS):  # send_seconds only grows with the budget
            middle = (low + high) / 2
            low, high = (middle, high) if send_seconds(middle) <= available else (low, middle)
        return low


def attempt_seconds(budget: float) -> float:
    """The longest one request can take with ``budget``: the client's own connect and read timeouts."""
    return sum(request_timeouts(budget))


def send_seconds(budget: float) -> float:
    """The longest a send with ``budget`` can take: a retry may start just before the budget is spent,
    and that last attempt may take its whole connect and read timeouts."""
    return budget + attempt_seconds(budget)


UNBOUNDED: Final = Deadline()


@dataclass(frozen=True, slots=True)
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

    @property
    def unreadable(self) -> bool:
        return isinstance(self.error, InvalidMessageError)


@dataclass
class EventResult:
    results: list[RecordResult] = field(default_factory=list)
    sqs: bool = False

    @property
    def retryable_errors(self) -> list[BridgeError]:
        return [r.error for r in self.results if r.error is not None and r.error.retryable]

    def batch_item_failures(self) -> list[dict[str, str]]:
        """SQS partial batch response: the messages to receive again — what a retry can fix, and what
        cannot be read (so it reaches the dead-letter queue alone after its receives). A record to
        receive again that names no message (a malformed event) is an empty identifier, which Lambda
        takes for the failure of the whole batch: everything comes back, nothing is deleted unsent."""
        return [{"itemIdentifier": r.batch_item_id or ""} for r in self.results if r.retryable or r.unreadable]


def _no_metric(name: str, value: float, unit: str) -> None:
    return None


def process_event(
    event: Any,
    notifications: Notifications,
    *,
    deadline: Deadline = UNBOUNDED,
    metric: MetricSink = _no_metric,
    now: datetime | None = None,
) -> EventResult:
    """Handle every notification in ``event``; never raises for one record's trouble.

    ``InvalidMessageError`` is raised only when the event itself is no known envelope.
    """
    result = EventResult(sqs=is_sqs_event(event))
    configured = notifications.settings.retry_budget_seconds
    fitted = INVOCATION_BUDGET.set(None if deadline.end is None else deadline.record_budget)
    try:
        _process_records(event, notifications, result, deadline, metric, now, configured)
    finally:
        INVOCATION_BUDGET.reset(fitted)
    return result


def _process_records(
    event: Any,
    notifications: Notifications,
    result: EventResult,
    deadline: Deadline,
    metric: MetricSink,
    now: datetime | None,
    configured: float,
) -> None:
    """Each record of ``event`` into ``result``, started only while one more fits before ``deadline``
    and the table answers: once a record found it silent (``StoreTimeoutError``, after every attempt of
    its client), each record after it would wait as long, and the invocation would outlast Lambda's
    timeout with no answer for any record; they go back whole instead. A record with others behind it
    waits for its routing key's rate limit only briefly (``BATCH_PATIENCE_SECONDS``): one throttled
    key's waits spent the invocation, and the other services' pages behind it went back unsent. It is
    tried again after them (``_after_the_others``)."""
    table_silent = False
    parsed_records = parse_event(event, now=now or datetime.now(UTC))
    deferred: list[Deferred] = []
    for position, parsed in enumerate(parsed_records):
        metric(c.METRIC_NOTIFICATION_RECEIVED, 1, "Count")
        if isinstance(parsed, BadRecord):
            result.results.append(_unreadable(parsed, metric))
            continue
        budget = deadline.record_budget(configured)
        if budget is None or table_silent:
            result.results.append(_not_started(parsed, "the table did not answer" if table_silent else None))
            continue
        if position + 1 < len(parsed_records):
            held = Deferred(len(result.results), parsed)
            patience = RATE_LIMIT_PATIENCE.set(BATCH_PATIENCE_SECONDS)
            try:
                record = handle_notification(parsed, notifications, budget, held.count)
            finally:
                RATE_LIMIT_PATIENCE.reset(patience)
            if rate_limited(record.error):
                deferred.append(held)
            else:
                held.flush(metric)
        else:
            record = handle_notification(parsed, notifications, budget, metric)
        result.results.append(record)
        table_silent = isinstance(record.error, StoreTimeoutError)
    _after_the_others(deferred, notifications, result, deadline, metric, configured, table_silent=table_silent)


@dataclass
class Deferred:
    """A record its routing key's rate limit held back while others waited behind it: where its result
    is, and the metrics of that first try (counted only if it is not tried again)."""

    index: int
    notification: Notification
    metrics: list[tuple[str, float, str]] = field(default_factory=list)

    def count(self, name: str, value: float, unit: str) -> None:
        self.metrics.append((name, value, unit))

    def flush(self, metric: MetricSink) -> None:
        for name, value, unit in self.metrics:
            metric(name, value, unit)


def _after_the_others(
    deferred: list[Deferred],
    notifications: Notifications,
    result: EventResult,
    deadline: Deadline,
    metric: MetricSink,
    configured: float,
    *,
    table_silent: bool,
) -> None:
    """The records held back by their key's rate limit, tried again in order with what is left of the
    invocation (waiting for the limit as long as their budget allows); a record that no longer fits
    keeps its first try's failure, and goes back for another invocation."""
    for held in deferred:
        budget = deadline.record_budget(configured)
        if budget is None or table_silent:
            held.flush(metric)
            continue
        record = handle_notification(held.notification, notifications, budget, metric)
        result.results[held.index] = record
        table_silent = isinstance(record.error, StoreTimeoutError)


def _unreadable(parsed: BadRecord, metric: MetricSink) -> RecordResult:
    metric(c.METRIC_INVALID_MESSAGE, 1, "Count")
    logger.warning("skipped an unreadable record", extra={"record": parsed.record, "problem": str(parsed.error)})
    return RecordResult(
        parsed.record, error=parsed.error, message_id=parsed.message_id, batch_item_id=parsed.batch_item_id
    )


def _not_started(parsed: Notification, why: str | None = None) -> RecordResult:
    why = why or "too little of the invocation is left"
    error = DeadlineError(f"{parsed.record}: not started, {why}; it goes back whole")
    logger.warning("record left for another invocation", extra={"record": parsed.record})
    return RecordResult(parsed.record, error=error, message_id=parsed.message_id, batch_item_id=parsed.batch_item_id)


def handle_notification(
    notification: Notification, notifications: Notifications, budget: float | None, metric: MetricSink
) -> RecordResult:
    context = {"record": notification.record, "message_id": notification.message_id}
    try:
        outcome = _dispatch(notification, notifications, budget, metric)
    except BridgeError as exc:
        # Raised before anything was sent (configuration, store, a concurrent delivery in flight).
        if isinstance(exc, StoreError) and not exc.retryable:
            # The table refused, not the notification: keep it (bounded retries, then the failure
            # destination or the DLQ, for redrive) rather than answer a page that was never sent.
            exc = StoreError(f"{exc}; kept for retry", retryable=True)
        return _failed(notification, exc, metric, context)
    except Exception as exc:
        logger.exception("unexpected failure", extra=context)
        error = UnexpectedError(f"{notification.record}: unexpected {type(exc).__name__}; kept for retry")
        return _failed(notification, error, metric, context)
    count_outcome(outcome, metric)
    extra = {
        **context,
        "alarm_name": (outcome.alarm_name or "")[:256] or None,
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


def _failed(notification: Notification, exc: BridgeError, metric: MetricSink, context: dict[str, Any]) -> RecordResult:
    count_failure(exc, metric)
    logger.error("notification failed", extra={**context, "error": str(exc), "retryable": exc.retryable})
    return RecordResult(
        notification.record, error=exc, message_id=notification.message_id, batch_item_id=notification.batch_item_id
    )


def _dispatch(
    notification: Notification, notifications: Notifications, budget: float | None, metric: MetricSink
) -> Outcome:
    content = notification.content
    if isinstance(content, AlarmNotification):
        return notifications.handle_alarm(content, budget_seconds=budget)
    if isinstance(content, UnrecognizedMessage):
        return _unrecognized(content, notification, notifications, budget, metric)
    if isinstance(content, StackStatusChange):
        return notifications.handle_stack_change(content, budget_seconds=budget)
    assert isinstance(content, ControlMessage)
    return Outcome(None, Reason.CONTROL_MESSAGE.value, None)


def _unrecognized(
    content: UnrecognizedMessage,
    notification: Notification,
    notifications: Notifications,
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
    if notifications.settings.unrecognized_message_action is UnrecognizedMessageAction.DROP:
        logger.info("dropped a message that is not an alarm", extra={"record": notification.record})
        return Outcome(None, Reason.UNRECOGNIZED_DROPPED.value, None)
    return notifications.handle_unrecognized(content, source=notification.source, budget_seconds=budget)


_REASON_METRICS: Final = {
    Reason.STALE.value: c.METRIC_STALE_NOTIFICATION,
    Reason.DUPLICATE.value: c.METRIC_DUPLICATE_NOTIFICATION,
    Reason.SILENCED.value: c.METRIC_SILENCED_NOTIFICATION,
}
_ACTION_METRICS: Final = {
    EventAction.TRIGGER: c.METRIC_INCIDENT_TRIGGERED,
    EventAction.ACKNOWLEDGE: c.METRIC_INCIDENT_ACKNOWLEDGED,
    EventAction.RESOLVE: c.METRIC_INCIDENT_RESOLVED,
}


def count_outcome(outcome: Outcome, metric: MetricSink) -> None:
    """The metrics an outcome stands for."""
    if outcome.error is not None:
        count_failure(outcome.error, metric)
        return
    if outcome.reason in _REASON_METRICS:
        metric(_REASON_METRICS[outcome.reason], 1, "Count")
    if not outcome.delivered:
        return
    if outcome.reason == CHANGE_EVENT:
        metric(c.METRIC_CHANGE_EVENT_SENT, 1, "Count")
    if outcome.action is not None:
        metric(_ACTION_METRICS[outcome.action], 1, "Count")
    if outcome.action is EventAction.RESOLVE and outcome.incident is not None:
        how = outcome.incident.resolution
        if how is not None:
            metric(c.METRIC_INCIDENT_RESOLVED_BY.format(how=how.value.capitalize()), 1, "Count")
        seconds = outcome.incident.resolution_seconds
        if seconds is not None:
            metric(c.METRIC_RESOLUTION_TIME, seconds, "Seconds")


def count_failure(error: BridgeError, metric: MetricSink) -> None:
    if isinstance(error, InvalidMessageError):
        metric(c.METRIC_INVALID_MESSAGE, 1, "Count")
        return
    metric(c.METRIC_DELIVERY_FAILED, 1, "Count")
    metric(
        c.METRIC_DELIVERY_FAILED_TRANSIENT if error.retryable else c.METRIC_DELIVERY_FAILED_PERMANENT,
        1,
        "Count",
    )
