"""The Lambda entry point: wires Powertools and the runtime, then hands the event over. Nothing else."""

from __future__ import annotations

import os

from pagerduty_bridge.settings import drop_unreadable_powertools_settings

# Powertools reads its own variables as it is imported, and raises for a value it cannot read: the
# function would page nothing. Such values are dropped before anything imports it (named in a warning).
_POWERTOOLS_PROBLEMS = drop_unreadable_powertools_settings(os.environ)

import gc
import json
import logging
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from pagerduty_bridge import constants as c
from pagerduty_bridge import snapstart
from pagerduty_bridge.envelopes import is_schedule, is_sqs_event
from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.processing import Deadline, EventResult, process_event
from pagerduty_bridge.redaction import RedactingFilter, install_log_redaction
from pagerduty_bridge.runtime import Runtime, lambda_runtime
from pagerduty_bridge.settings import log_level

SAFETY_MARGIN_SECONDS: Final = 5.0
"""Time kept back from the invocation's remaining time to write the outcome and return cleanly."""

_JSON_WORDS: Final = frozenset({"true", "false", "null", "NaN", "Infinity", "-Infinity"})


def log_message_json(message: object) -> Any:
    """Powertools prints a log message that is JSON as JSON, by trying ``json.loads`` on every message.
    For a message that cannot be JSON (every one of ours: words) the attempt is only a raised and
    caught error: it is skipped, with the same result (the text as it is)."""
    if not isinstance(message, str):
        return message
    text = message.strip()
    start = text[:1]
    if start in ("{", "[", '"', "-") or start.isdigit() or text in _JSON_WORDS:
        return json.loads(message)
    return message


# No log line prints the thread or process: their names need not be looked up for every record.
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
install_log_redaction()
_level, _level_problem = log_level(os.environ)
logger = Logger(service=c.service_name(os.environ), level=_level, json_deserializer=log_message_json)
# The package's own module loggers write through the same (JSON, redacting) handler.
copy_config_to_registered_loggers(source_logger=logger, include={c.PACKAGE_NAME})
for _handler in logger.handlers:
    _handler.addFilter(RedactingFilter())
for _problem in [*_POWERTOOLS_PROBLEMS, _level_problem]:
    if _problem:
        logger.warning(_problem)
metrics = Metrics(namespace=c.METRICS_NAMESPACE, service=c.service_name(os.environ))
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on the first invocation (so tests can set up moto first)."""
    global _runtime  # noqa: PLW0603 - one runtime per container, by design
    if _runtime is None:
        _runtime = lambda_runtime()
        _runtime.on_attempt = lambda seconds: _metric(c.METRIC_PAGERDUTY_LATENCY, seconds * 1000, "Milliseconds")
        # boto3 and its client, like the modules below, live as long as the container: keep them out of
        # every later garbage collection (each would scan them all, in vain).
        gc.freeze()
    return _runtime


snapstart.install(get_runtime)


def _metric(name: str, value: float, unit: str) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


def account_of(context: LambdaContext) -> str | None:
    """This function's account, from its ARN (``arn:aws:lambda:region:account:function:name``)."""
    parts = str(getattr(context, "invoked_function_arn", "")).split(":")
    return parts[4] if len(parts) > 4 and parts[4] else None


def reconcile_now(runtime: Runtime, deadline: Deadline, *, own_account: str | None) -> dict[str, int]:
    """The scheduled run: heal incidents whose OK never came, confirm unknown outcomes, page alarms
    whose silence is over, within the invocation's time (what is left over waits for the next run)."""
    from pagerduty_bridge.reconcile import AlarmReader, Reconciliation, count, insufficient_data_clears, summary

    notifications = runtime.notifications()
    reader = AlarmReader(
        runtime.cloudwatch,
        own_account=own_account,
        own_region=None,
        role_arns=runtime.settings.reconcile_role_arns,
    )
    run = Reconciliation(
        notifications.delivery,
        reader,
        runtime.clock,
        silences=notifications.silences,
        deadline=deadline,
        retry_budget_seconds=runtime.settings.retry_budget_seconds,
        insufficient_data_clears=insufficient_data_clears(
            runtime.settings.insufficient_data_action, notifications.rules.all_rules
        ),
    )
    results = run.run()
    count(results, _metric)
    for result in results:
        logger.info(
            "reconciled", extra={"dedup_key": result.dedup_key, "action": result.action, "reason": result.reason}
        )
    return summary(results)


def answer(event: Any, result: EventResult) -> dict[str, Any]:
    """What Lambda is told: SQS gets its partial batch response; otherwise a retryable failure raises
    (Lambda retries the whole event; records already delivered are duplicates then and send nothing)."""
    if result.sqs:
        return {"batchItemFailures": result.batch_item_failures()}
    retryable = result.retryable_errors
    if retryable:
        raise retryable[0]
    return {"processed": len(result.results), "failed": sum(r.failed for r in result.results)}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()
    deadline = Deadline.after(context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS)
    if is_schedule(event):
        return reconcile_now(runtime, deadline, own_account=account_of(context))
    try:
        result = process_event(event, runtime.notifications(), deadline=deadline, metric=_metric)
    except InvalidMessageError as exc:
        # The event is no envelope at all: a retry cannot help. Answer it; the InvalidMessage alarm fires.
        _metric(c.METRIC_INVALID_MESSAGE, 1, "Count")
        logger.error("unreadable event", extra={"problem": str(exc)})
        return {"batchItemFailures": []} if is_sqs_event(event) else {"processed": 0, "failed": 1}
    return answer(event, result)


# Everything made while importing lives as long as the container: the collector need not scan it again.
gc.freeze()
