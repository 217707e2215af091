"""Builds the Lambda's dependencies once per container, lazily (never at import).

The integration key comes from Secrets Manager (``PAGERDUTY_INTEGRATION_KEY_SECRET_ARN``, cached by
Powertools Parameters so a rotated key is picked up within ``SECRET_MAX_AGE_SECONDS``), or — for local
use only — from ``PAGERDUTY_INTEGRATION_KEY``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.events_api import EventsClient
from pagerduty_bridge.integration import PagerDutyIntegration
from pagerduty_bridge.models import ServiceConfig
from pagerduty_bridge.settings import Settings, check_routing_key
from pagerduty_bridge.store import IncidentStore

SECRET_MAX_AGE_SECONDS = 300
"""How long a fetched key is reused: one Secrets Manager call per container per five minutes."""
SECRET_KEY_FIELD = c.DEFAULT_ROUTING_KEY_ALIAS
"""In a JSON secret, the routing key of the default service (other fields are aliases)."""


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a log record — message, arguments and ``extra`` fields — with
    ``****``. Attached to the log handler, so every logger that writes through it is covered."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(secret in message for secret in self.secrets):
                record.msg, record.args = self._scrub(message), None
            for name, value in list(vars(record).items()):
                if isinstance(value, str) and any(secret in value for secret in self.secrets):
                    setattr(record, name, self._scrub(value))
        return True


def parse_secret(value: Any, where: str) -> dict[str, SecretStr]:
    """A secret's routing keys by alias: a plain key (alias ``default``) or a JSON object of aliases."""
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} is empty")
    text = value.strip()
    keys: dict[str, str]
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except ValueError:
            raise ConfigurationError(f"{where} looks like JSON but is not valid JSON") from None
        if not isinstance(decoded, dict) or not all(isinstance(v, str) for v in decoded.values()):
            raise ConfigurationError(f"{where} must be a JSON object of alias → routing key strings")
        keys = decoded
    else:
        keys = {SECRET_KEY_FIELD: text}
    return {alias: SecretStr(check_routing_key(key, f"{where} ({alias})")) for alias, key in keys.items()}


def is_ssm_parameter(reference: str) -> bool:
    """An SSM parameter (``arn:…:ssm:…:parameter/…`` or ``/a/name``; GetParameter takes either) rather
    than a Secrets Manager secret."""
    return reference.startswith("/") or ":ssm:" in reference


@dataclass
class Runtime:
    """The container's long-lived objects; ``integration()`` refreshes the key from its cache."""

    settings: Settings
    store: IncidentStore
    redactor: RedactingFilter = field(default_factory=RedactingFilter)
    on_attempt: Callable[[float], None] | None = None
    """Called with each PagerDuty call's duration in seconds (the latency metric)."""
    _integration: PagerDutyIntegration | None = None
    _cloudwatch: Any = None
    _secrets: Any = None
    _parameters: Any = None

    def _secret(self, reference: str, where: str) -> Any:
        """A secret's value through Powertools Parameters, cached ``SECRET_MAX_AGE_SECONDS``.

        ``reference`` is a Secrets Manager secret (ARN or name) or an SSM SecureString parameter (its
        ARN, or a name starting with ``/``), decrypted. The providers get clients from boto3's default
        session (the one the DynamoDB client already loaded): Powertools' default providers would build
        a second session, ~175 ms more cold start.
        """
        import boto3
        from aws_lambda_powertools.utilities import parameters

        try:
            if is_ssm_parameter(reference):
                if self._parameters is None:
                    self._parameters = parameters.SSMProvider(boto3_client=boto3.client("ssm"))
                return self._parameters.get(reference, max_age=SECRET_MAX_AGE_SECONDS, decrypt=True)
            if self._secrets is None:
                self._secrets = parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))
            return self._secrets.get(reference, max_age=SECRET_MAX_AGE_SECONDS)
        except parameters.exceptions.GetParameterError as exc:
            raise ConfigurationError(
                f"{where}: cannot read the secret ({type(exc.__cause__ or exc).__name__})"
            ) from None

    def cloudwatch(self) -> Any:
        """A CloudWatch client for reconciliation, built on first use (only the scheduled run needs it)."""
        if self._cloudwatch is None:
            import boto3

            self._cloudwatch = boto3.client("cloudwatch")
        return self._cloudwatch

    def routing_keys(self) -> dict[str, SecretStr]:
        """Every routing key by alias: ``default`` plus the aliases alert rules route to.

        Sources: the integration-key secret (a plain key, or JSON of aliases), one secret per alias
        (``PAGERDUTY_ROUTING_KEY_SECRETS``), and for local use the plaintext variables.
        """
        keys: dict[str, SecretStr] = dict(self.settings.routing_keys)
        if self.settings.integration_key is not None:
            keys[SECRET_KEY_FIELD] = self.settings.integration_key
        if self.settings.integration_key_secret_arn:
            arn = self.settings.integration_key_secret_arn
            keys.update(
                parse_secret(self._secret(arn, c.ENV_INTEGRATION_KEY_SECRET_ARN), c.ENV_INTEGRATION_KEY_SECRET_ARN)
            )
        for alias, arn in self.settings.routing_key_secrets.items():
            where = f"{c.ENV_ROUTING_KEY_SECRETS} ({alias})"
            (key,) = parse_secret(self._secret(arn, where), where).values()
            keys[alias] = key
        if SECRET_KEY_FIELD not in keys:
            raise ConfigurationError(
                f"no PagerDuty integration key: set {c.ENV_INTEGRATION_KEY_SECRET_ARN} "
                f"(or {c.ENV_INTEGRATION_KEY} locally)"
            )
        return keys

    def integration(self) -> PagerDutyIntegration:
        keys = self.routing_keys()
        self.redactor.secrets.update(k.get_secret_value() for k in keys.values())
        default = keys[SECRET_KEY_FIELD]
        if self._integration is None:
            self._integration = PagerDutyIntegration(
                ServiceConfig(
                    integration_key=default,
                    service_name=self.settings.service_name,
                    escalation_policy_id=self.settings.escalation_policy_id,
                ),
                self.settings.environment,
                store=self.store,
                settings=self.settings,
                routing_keys=keys,
                sender=EventsClient(
                    self.settings.events_url,
                    retry_budget_seconds=self.settings.retry_budget_seconds,
                    on_attempt=self.on_attempt,
                ),
            )
        else:
            self._integration.set_routing_keys(keys)
        return self._integration


def lambda_runtime(settings: Settings | None = None) -> Runtime:
    """The Lambda's runtime: settings from the environment, the DynamoDB table it names."""
    settings = settings or Settings.from_env()
    if not settings.table_name:
        raise ConfigurationError(f"{c.ENV_TABLE_NAME} is not set: the Lambda needs its incident table")
    import boto3

    from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore

    client = boto3.client("dynamodb")
    retention = timedelta(days=settings.resolved_retention_days)
    return Runtime(settings=settings, store=DynamoDBIncidentStore(client, settings.table_name, retention=retention))
