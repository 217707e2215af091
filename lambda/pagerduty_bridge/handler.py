"""The Lambda entry point: wires Powertools and the runtime, then hands the event over. Nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from pagerduty_bridge import constants as c
from pagerduty_bridge.envelopes import is_sqs_event
from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.processing import process_event
from pagerduty_bridge.runtime import Runtime, lambda_runtime

SAFETY_MARGIN_SECONDS = 5.0
"""Time kept back from the invocation's remaining time to write the outcome and return cleanly."""

logger = Logger(service=c.SERVICE_NAME)
# The package's own module loggers write through the same (JSON, redacting) handler.
copy_config_to_registered_loggers(source_logger=logger, include={c.PACKAGE_NAME})
metrics = Metrics(namespace=c.METRICS_NAMESPACE, service=c.SERVICE_NAME)
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on the first invocation (so tests can set up moto first)."""
    global _runtime  # noqa: PLW0603 - one runtime per container, by design
    if _runtime is None:
        _runtime = lambda_runtime()
        _runtime.on_attempt = lambda seconds: _metric(c.METRIC_PAGERDUTY_LATENCY, seconds * 1000, "Milliseconds")
        for handler in logger.handlers:
            handler.addFilter(_runtime.redactor)
    return _runtime


def _metric(name: str, value: float, unit: str) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


def is_schedule(event: Any) -> bool:
    return isinstance(event, dict) and event.get("detail-type") == c.RECONCILE_SCHEDULE_DETAIL_TYPE


def reconcile_now(runtime: Runtime, remaining_seconds: Callable[[], float]) -> dict[str, Any]:
    """The scheduled run: resolve open incidents whose alarm is OK or gone (their OK never came),
    within the invocation's time (what is left over waits for the next run)."""
    from pagerduty_bridge.operations import reconcile

    integration = runtime.integration()
    budget = integration.settings.retry_budget_seconds
    results = reconcile(integration, runtime.cloudwatch(), remaining_seconds=lambda: min(budget, remaining_seconds()))
    for result in results:
        if result.action == "resolved":
            _metric(c.METRIC_INCIDENT_RESOLVED, 1, "Count")
            _metric(c.METRIC_INCIDENT_RESOLVED_BY.format(how="Reconciled"), 1, "Count")
            if result.resolution_seconds is not None:
                _metric(c.METRIC_RESOLUTION_TIME, result.resolution_seconds, "Seconds")
        logger.info(
            "reconciled", extra={"dedup_key": result.dedup_key, "action": result.action, "reason": result.reason}
        )
    failed = [r for r in results if r.action == "failed"]
    if failed:
        _metric(c.METRIC_DELIVERY_FAILED, len(failed), "Count")
    return {"reconciled": len(results), "resolved": sum(r.action == "resolved" for r in results), "failed": len(failed)}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()

    def budget() -> float:
        remaining = context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
        return max(1.0, min(runtime.settings.retry_budget_seconds, remaining))

    if is_schedule(event):
        return reconcile_now(runtime, lambda: context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS)
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
