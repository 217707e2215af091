"""The PagerDuty webhook receiver: its own function behind a Lambda function URL (auth NONE: the
signature is the authentication). PagerDuty's acknowledgements and resolutions flow back into the table.

Answers: 400 for a missing or malformed signature header or an unreadable body; 401 when no signature
matches; 413 for a body over ``MAX_BODY_BYTES`` — all before the table is touched. A signed event is
answered 200 whatever became of it (applied, a redelivery, older than what is recorded, an incident the
bridge did not open): PagerDuty retries only what failed, so a 5xx is kept for when the table could
not be written.
"""

from __future__ import annotations

import os

from pagerduty_bridge.settings import drop_unreadable_powertools_settings

# Powertools reads its own variables as it is imported, and raises for a value it cannot read: the
# function would page nothing. Such values are dropped before anything imports it (named in a warning).
_POWERTOOLS_PROBLEMS = drop_unreadable_powertools_settings(os.environ)

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from pagerduty_bridge import constants as c
from pagerduty_bridge import lifecycle
from pagerduty_bridge.errors import BridgeError, ConfigurationError, VersionConflictError
from pagerduty_bridge.keys import ParameterFetcher
from pagerduty_bridge.lifecycle import Reason
from pagerduty_bridge.models import Incident, IncidentStatus
from pagerduty_bridge.redaction import REDACTOR, RedactingFilter, install_log_redaction
from pagerduty_bridge.settings import Settings, log_level
from pagerduty_bridge.store import IncidentStore, next_version
from pagerduty_bridge.timeutil import believable
from pagerduty_bridge.webhook_sync import (
    HANDLED_EVENTS,
    MAX_BODY_BYTES,
    SIGNATURE_HEADER,
    IncidentWebhook,
    Verdict,
    WebhookError,
    attributed,
    header,
    parse_webhook,
    raw_body,
    signing_secrets,
    verify,
)

MAX_CONFLICT_ATTEMPTS: Final = 5

install_log_redaction()
_level, _level_problem = log_level(os.environ)
logger = Logger(service=c.service_name(os.environ), level=_level)
for _handler in logger.handlers:
    _handler.addFilter(RedactingFilter())
for _problem in [*_POWERTOOLS_PROBLEMS, _level_problem]:
    if _problem:
        logger.warning(_problem)
metrics = Metrics(namespace=c.METRICS_NAMESPACE, service=c.service_name(os.environ))
_receiver: Receiver | None = None


class Receiver:
    """The container's store and signing secret, built on the first delivery."""

    def __init__(self, settings: Settings, store: IncidentStore) -> None:
        self.settings = settings
        self.store = store
        self._fetch = ParameterFetcher()

    def secrets(self) -> list[str]:
        """The signing secret(s): plaintext locally, else from Secrets Manager (cached five minutes).
        A secret holding several lines or a JSON list accepts each (a rotation on the bridge's side).
        Empty while the secret holds nothing but the stack's placeholder."""
        if self.settings.webhook_secret is not None:
            values: Any = self.settings.webhook_secret.get_secret_value()
        elif self.settings.webhook_secret_arn:
            values = self._fetch(self.settings.webhook_secret_arn, c.ENV_WEBHOOK_SECRET_ARN)
        else:
            raise ConfigurationError(f"no webhook signing secret: set {c.ENV_WEBHOOK_SECRET_ARN}")
        secrets = signing_secrets(values)
        REDACTOR.add(secrets)
        return secrets

    def apply(self, event: IncidentWebhook, now: datetime) -> Reason:
        """Record the event on the bridge's incident (conditional on the version read; re-plan on a race).
        An event of a service other than those named in the settings is not the bridge's, nor one whose
        incident key is longer than any key the bridge sends: PagerDuty refuses such a dedup key, and
        DynamoDB refuses a read by a key over 2,048 bytes (a 5xx PagerDuty would retry for days)."""
        ours = attributed(event, self.settings.webhook_service_ids)
        if event.event_type not in HANDLED_EVENTS or ours is False or not _could_be_ours(event.incident_key):
            return Reason.WEBHOOK_NOT_OURS
        for _ in range(MAX_CONFLICT_ATTEMPTS):
            stored = self.store.get(event.incident_key) if event.incident_key else None
            plan = lifecycle.plan_webhook(stored, event, now, attributed=ours is True)
            if plan.target is None or stored is None:
                return plan.reason
            try:
                self.store.put(
                    replace(plan.target, version=next_version(stored.version)), expected_version=stored.version
                )
            except VersionConflictError:
                continue
            _count(stored, plan.target, plan.reason)
            return plan.reason
        raise BridgeError("the incident kept changing while a webhook was recorded", retryable=True)


def _could_be_ours(incident_key: str | None) -> bool:
    """Whether ``incident_key`` may name an incident of the table: one the bridge's triggers could carry."""
    return incident_key is not None and len(incident_key) <= c.MAX_DEDUP_KEY_LENGTH


def _count(before: Incident, after: Incident, reason: Reason) -> None:
    metrics.add_metric(
        name=c.METRIC_WEBHOOK_APPLIED if reason is Reason.PAGERDUTY_UPDATE else c.METRIC_WEBHOOK_IGNORED,
        unit="Count",
        value=1,
    )
    if before.status != after.status and after.status is IncidentStatus.ACKNOWLEDGED:
        metrics.add_metric(name=c.METRIC_INCIDENT_ACKNOWLEDGED, unit="Count", value=1)
    if before.is_open and not after.is_open:
        metrics.add_metric(name=c.METRIC_INCIDENT_RESOLVED, unit="Count", value=1)
        metrics.add_metric(name=c.METRIC_INCIDENT_RESOLVED_BY.format(how="Pagerduty"), unit="Count", value=1)


def get_receiver() -> Receiver:
    global _receiver  # noqa: PLW0603 - one receiver per container, by design
    if _receiver is None:
        settings = Settings.from_env()
        if not settings.table_name:
            raise ConfigurationError(f"{c.ENV_TABLE_NAME} is not set: the webhook receiver needs the incident table")
        import boto3

        from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore

        retention = timedelta(days=settings.resolved_retention_days)
        store = DynamoDBIncidentStore(boto3.client("dynamodb"), settings.table_name, retention=retention)
        _receiver = Receiver(settings, store)
    return _receiver


def answer(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "text/plain"}, "body": message}


def handle(event: dict[str, Any], receiver: Receiver, now: datetime) -> dict[str, Any]:
    """One delivery: check size and signature, read it, record it."""
    metrics.add_metric(name=c.METRIC_WEBHOOK_RECEIVED, unit="Count", value=1)
    body = raw_body(event)
    if body is None:
        return _rejected(400, "the body is not valid base64")
    if len(body) > MAX_BODY_BYTES:
        return _rejected(413, f"the body is over {MAX_BODY_BYTES} bytes")
    secrets = receiver.secrets()
    if not secrets:
        # Not set yet (the stack's placeholder, which anyone can read here): nothing can be verified.
        # 503, so that PagerDuty delivers the event again once the secret is in.
        return _rejected(503, "no signing secret is set: put the subscription's signing secret into the secret")
    verdict = verify(body, header(event, SIGNATURE_HEADER), secrets)
    if verdict is not Verdict.VALID:
        status = 401 if verdict is Verdict.MISMATCH else 400
        return _rejected(status, f"signature {verdict.value}")
    try:
        incident_event = parse_webhook(body)
    except WebhookError as exc:
        return _rejected(400, str(exc))
    if incident_event is None:
        metrics.add_metric(name=c.METRIC_WEBHOOK_IGNORED, unit="Count", value=1)
        return answer(200, "not an incident event: ignored")
    reason = receiver.apply(_believed(incident_event, now), now)
    if reason is Reason.WEBHOOK_NOT_OURS:
        metrics.add_metric(name=c.METRIC_WEBHOOK_IGNORED, unit="Count", value=1)
    logger.info(
        "webhook",
        extra={
            "event_id": incident_event.event_id,
            "event_type": incident_event.event_type,
            "dedup_key": incident_event.incident_key,
            "reason": reason.value,
        },
    )
    return answer(200, reason.value)


def _believed(event: IncidentWebhook, now: datetime) -> IncidentWebhook:
    """``event`` with an ``occurred_at`` more than the allowed skew ahead of its receipt taken as the
    receipt time (and logged): believed, it would become the incident's ordering mark, and every real
    acknowledgement or resolution after it would look older and be dropped."""
    occurred = believable(event.occurred_at, now)
    if occurred == event.occurred_at:
        return event
    logger.warning(
        "webhook time is ahead of its receipt: taken as the receipt time",
        extra={"event_id": event.event_id, "occurred_at": event.occurred_at.isoformat()},
    )
    return replace(event, occurred_at=occurred)


def _rejected(status: int, why: str) -> dict[str, Any]:
    metrics.add_metric(name=c.METRIC_WEBHOOK_REJECTED, unit="Count", value=1)
    logger.warning("webhook refused", extra={"status": status, "problem": why})
    return answer(status, why)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return handle(event, get_receiver(), datetime.now(UTC))
    except BridgeError as exc:
        metrics.add_metric(name=c.METRIC_WEBHOOK_FAILED, unit="Count", value=1)
        logger.error("webhook not recorded", extra={"error": str(exc), "retryable": exc.retryable})
        return answer(503 if exc.retryable else 500, "not recorded; PagerDuty will retry")
