"""The Lambda entry point: wires Powertools and the runtime, then hands the event over. Nothing else."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from pagerduty_bridge import constants as c
from pagerduty_bridge.envelopes import is_sqs_event
from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.processing import process_event
from pagerduty_bridge.runtime import Runtime, lambda_runtime

SAFETY_MARGIN_SECONDS = 5.0
"""Time kept back from the invocation's remaining time to write the outcome and return cleanly."""

logger = Logger(service=c.SERVICE_NAME)
metrics = Metrics(namespace=c.METRICS_NAMESPACE, service=c.SERVICE_NAME)
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on the first invocation (so tests can set up moto first)."""
    global _runtime  # noqa: PLW0603 - one runtime per container, by design
    if _runtime is None:
        _runtime = lambda_runtime()
        logger.addFilter(_runtime.redactor)
    return _runtime


def _metric(name: str, value: float, unit: str) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()

    def budget() -> float:
        remaining = context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
        return max(1.0, min(runtime.settings.retry_budget_seconds, remaining))

    try:
        result = process_event(event, runtime.integration(), budget_seconds=budget, metric=_metric)
    except InvalidMessageError as exc:
        # The event is no envelope at all: a retry cannot help. Answer it; the metric raises the alarm.
        _metric(c.METRIC_INVALID_MESSAGE, 1, "Count")
        logger.error("unreadable event", extra={"problem": str(exc)})
        return {"batchItemFailures": []} if is_sqs_event(event) else {"processed": 0, "failed": 1}
    if result.sqs:
        return {"batchItemFailures": result.batch_item_failures()}
    retryable = result.retryable_errors
    if retryable:
        # Lambda retries the whole event; records already delivered are duplicates then and send nothing.
        raise retryable[0]
    return {"processed": len(result.results), "failed": sum(r.failed for r in result.results)}
