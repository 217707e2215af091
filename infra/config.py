"""The stack's settings, read once from CDK context and validated.

Every deploy-time choice is a context parameter (``cdk deploy -c key=value`` or ``cdk.json``), so one
template serves every environment. Values arriving from the command line are strings; this module
parses them into one frozen object and rejects a malformed value with an error that names the key,
before any construct is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from infra.alert_rules import RulesDocumentError, read_rules_file, rules_document
from pagerduty_bridge.constants import DEFAULT_ROUTING_KEY_ALIAS as SECRET_KEY_FIELD

Architecture = Literal["arm64", "x86_64"]

CONTEXT_PARAMETERS: Final[dict[str, str]] = {
    "environment": "Environment name (lowercase letters, digits, dashes); names the stack "
    "PagerDutyBridge-<environment> and is passed to the function. Default: dev.",
    "alarmTopicArn": "ARN of an existing SNS topic the alarms already publish to; the function "
    "subscribes to it instead of the stack creating an encrypted topic. Default: none (create one).",
    "integrationKeySecretArn": "ARN of an existing Secrets Manager secret holding the PagerDuty "
    "integration key. Default: none (a placeholder secret is created; put the key into it).",
    "integrationKeySecretKmsKeyArn": "ARN of the customer-managed KMS key encrypting that existing "
    "secret, if it is not encrypted with aws/secretsmanager. Default: none.",
    "reservedConcurrency": "Reserved concurrent executions for the function, which also caps the "
    "rate of PagerDuty calls; 'none' leaves the function unreserved (accounts still at the default "
    "quota of 10 cannot reserve any). Default: 5.",
    "logRetentionDays": "Retention of the function's log group, in days (a CloudWatch Logs value "
    "such as 7, 14, 30, 90, 365). Default: 30.",
    "healthAlarmEmail": "E-mail address subscribed to the bridge's own health topic (the address "
    "must confirm the subscription). Default: none.",
    "architecture": "Lambda architecture, arm64 or x86_64; the asset is bundled for it. Default: arm64.",
    "retryBudgetSeconds": "Seconds one invocation may spend retrying PagerDuty; sizes the function "
    "timeout. Default: 30.",
    "buffered": "true puts an encrypted SQS queue between the topic and the function (batches, "
    "bounded concurrency, redrive to a dead-letter queue). Default: false.",
    "maxReceiveCount": "Buffered mode: receives before a message moves to the dead-letter queue. Default: 5.",
    "batchSize": "Buffered mode: most messages per invocation. Default: 10.",
    "maxBatchingWindowSeconds": "Buffered mode: longest wait to fill a batch, in seconds. Default: 1.",
    "maxConcurrency": "Buffered mode: most concurrent invocations the queue drives (at least 2, "
    "at most reservedConcurrency). Default: 2.",
    "reconcileMinutes": "Minutes between scheduled reconciliations, which resolve open incidents whose "
    "alarm is OK in CloudWatch or no longer exists (their OK notification never arrived); 0 turns the "
    "schedule off. Default: 15.",
    "alertRules": "The alert rules document itself, as JSON (a string with -c, or an object in cdk.json); "
    "validated at synth and given to the function. Default: none (the built-in rules only).",
    "alertRulesFile": "Path to an alert rules file (JSON, or YAML), relative to the directory holding "
    "cdk.json; read and validated at synth, given to the function as JSON. Default: none.",
    "routingKeySecrets": "JSON object of routing-key alias to the ARN of an existing Secrets Manager secret "
    "holding that alias's PagerDuty routing key, one secret per alias. Default: none.",
    "account": "AWS account id for the stack; defaults to the CLI's (CDK_DEFAULT_ACCOUNT).",
    "region": "AWS region for the stack; defaults to the CLI's (CDK_DEFAULT_REGION).",
}
"""Every context parameter the app reads, with the text ``cdk.json`` documents it by."""

_ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[a-f0-9-]{36}$")
_ROUTING_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

LOG_RETENTION_DAYS: Final = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)
"""The retention periods CloudWatch Logs accepts (up to five years), in days."""

_MIN_SQS_MAX_CONCURRENCY: Final = 2
"""Lambda's floor for an SQS event source's maximum concurrency."""
_MAX_SQS_MAX_CONCURRENCY: Final = 1000
_MAX_SQS_BATCH_SIZE_WITHOUT_WINDOW: Final = 10
"""An SQS event source takes batches above 10 only with a batching window."""
_MAX_SQS_BATCH_SIZE: Final = 10_000
_MAX_BATCHING_WINDOW_SECONDS: Final = 300
_MAX_RETRY_BUDGET_SECONDS: Final = 600
"""Keeps the function timeout (budget plus headroom) far below Lambda's 900 s ceiling."""
MAX_RECONCILE_MINUTES: Final = 1440
"""A day. A scheduled event is worth delivering only until the next one is due, so the schedule's
target gives up after one period; EventBridge accepts a maximum event age of at most 24 hours."""


class ConfigError(ValueError):
    """A context parameter is missing a valid value; the message names the parameter."""


@dataclass(frozen=True)
class BridgeConfig:
    """What one deployment of the bridge looks like; built by :meth:`from_context`."""

    environment: str = "dev"
    alarm_topic_arn: str | None = None
    integration_key_secret_arn: str | None = None
    integration_key_secret_kms_key_arn: str | None = None
    reserved_concurrency: int | None = 5
    log_retention_days: int = 30
    health_alarm_email: str | None = None
    architecture: Architecture = "arm64"
    retry_budget_seconds: int = 30
    buffered: bool = False
    max_receive_count: int = 5
    batch_size: int = 10
    max_batching_window_seconds: int = 1
    max_concurrency: int = 2
    reconcile_minutes: int = 15
    alert_rules: str | None = None
    """The alert rules document, validated, as compact JSON (from ``alertRules`` or ``alertRulesFile``)."""
    routing_key_secrets: tuple[tuple[str, str], ...] = ()
    """(alias, secret ARN) pairs, sorted by alias."""
    account: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        """Reject combinations that would only fail at deploy time."""
        if self.integration_key_secret_kms_key_arn and not self.integration_key_secret_arn:
            raise ConfigError("integrationKeySecretKmsKeyArn is only meaningful with integrationKeySecretArn")
        reserved = self.reserved_concurrency
        if self.buffered and reserved is not None and reserved < self.max_concurrency:
            raise ConfigError(
                f"maxConcurrency ({self.max_concurrency}) must not exceed reservedConcurrency "
                f"({reserved}): the queue would be throttled by its own function"
            )
        if self.batch_size > _MAX_SQS_BATCH_SIZE_WITHOUT_WINDOW and self.max_batching_window_seconds == 0:
            raise ConfigError("batchSize above 10 needs maxBatchingWindowSeconds of at least 1")

    @property
    def stack_name(self) -> str:
        """The CloudFormation stack name: one stack per environment."""
        return f"PagerDutyBridge-{self.environment}"

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> BridgeConfig:
        """Build the settings from ``node.try_get_context``-style lookups, validating each value."""
        reader = _ContextReader(get)
        defaults = cls()
        return cls(
            environment=reader.matching("environment", _ENVIRONMENT_NAME, defaults.environment),
            alarm_topic_arn=reader.optional_matching("alarmTopicArn", _SNS_TOPIC_ARN),
            integration_key_secret_arn=reader.optional_matching("integrationKeySecretArn", _SECRET_ARN),
            integration_key_secret_kms_key_arn=reader.optional_matching("integrationKeySecretKmsKeyArn", _KMS_KEY_ARN),
            reserved_concurrency=reader.optional_integer(
                "reservedConcurrency", defaults.reserved_concurrency, minimum=1, maximum=1000
            ),
            log_retention_days=reader.one_of("logRetentionDays", LOG_RETENTION_DAYS, defaults.log_retention_days),
            health_alarm_email=reader.optional_matching("healthAlarmEmail", _EMAIL),
            architecture=reader.architecture("architecture", defaults.architecture),
            retry_budget_seconds=reader.integer(
                "retryBudgetSeconds", defaults.retry_budget_seconds, minimum=1, maximum=_MAX_RETRY_BUDGET_SECONDS
            ),
            buffered=reader.boolean("buffered", defaults.buffered),
            max_receive_count=reader.integer("maxReceiveCount", defaults.max_receive_count, minimum=1, maximum=1000),
            batch_size=reader.integer("batchSize", defaults.batch_size, minimum=1, maximum=_MAX_SQS_BATCH_SIZE),
            max_batching_window_seconds=reader.integer(
                "maxBatchingWindowSeconds",
                defaults.max_batching_window_seconds,
                minimum=0,
                maximum=_MAX_BATCHING_WINDOW_SECONDS,
            ),
            max_concurrency=reader.integer(
                "maxConcurrency",
                defaults.max_concurrency,
                minimum=_MIN_SQS_MAX_CONCURRENCY,
                maximum=_MAX_SQS_MAX_CONCURRENCY,
            ),
            reconcile_minutes=reader.integer(
                "reconcileMinutes", defaults.reconcile_minutes, minimum=0, maximum=MAX_RECONCILE_MINUTES
            ),
            alert_rules=reader.alert_rules("alertRules", "alertRulesFile"),
            routing_key_secrets=reader.routing_key_secrets("routingKeySecrets"),
            account=reader.optional_matching("account", _ACCOUNT_ID),
            region=reader.optional_matching("region", _REGION),
        )


class _ContextReader:
    """Typed accessors over raw context values, which are JSON from cdk.json or strings from ``-c``."""

    def __init__(self, get: Callable[[str], Any]) -> None:
        self._get = get

    def _raw(self, key: str) -> Any:
        if key not in CONTEXT_PARAMETERS:
            raise KeyError(f"{key} is not a documented context parameter")
        value = self._get(key)
        if isinstance(value, str):
            value = value.strip()
            if value.lower() in ("", "none", "null"):
                return None
        return value

    def matching(self, key: str, pattern: re.Pattern[str], default: str) -> str:
        value = self.optional_matching(key, pattern)
        return default if value is None else value

    def optional_matching(self, key: str, pattern: re.Pattern[str]) -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.match(value):
            raise ConfigError(f"context parameter {key}={value!r} is malformed: {CONTEXT_PARAMETERS[key]}")
        return value

    def optional_integer(self, key: str, default: int | None, *, minimum: int, maximum: int) -> int | None:
        value = self._raw(key)
        if value is None:
            # An explicit "none" clears the default; an absent key keeps it.
            return None if self._get(key) is not None else default
        return self._bounded(key, value, minimum, maximum)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._raw(key)
        return default if value is None else self._bounded(key, value, minimum, maximum)

    def one_of(self, key: str, allowed: tuple[int, ...], default: int) -> int:
        value = self.integer(key, default, minimum=min(allowed), maximum=max(allowed))
        if value not in allowed:
            raise ConfigError(f"context parameter {key}={value} must be one of {', '.join(map(str, allowed))}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"context parameter {key}={value!r} must be true or false")

    def architecture(self, key: str, default: Architecture) -> Architecture:
        value = self._raw(key)
        if value is None:
            return default
        if value == "arm64":
            return "arm64"
        if value in ("x86_64", "x86-64", "amd64"):
            return "x86_64"
        raise ConfigError(f"context parameter {key}={value!r} must be arm64 or x86_64")

    def alert_rules(self, inline_key: str, file_key: str) -> str | None:
        """The rules document from either key (not both), validated by the package, as compact JSON."""
        inline, path = self._raw(inline_key), self._raw(file_key)
        if inline is not None and path is not None:
            raise ConfigError(f"context parameters {inline_key} and {file_key} exclude each other: give one")
        try:
            if inline is not None:
                return rules_document(inline, where=f"context parameter {inline_key}")
            if path is not None:
                if not isinstance(path, str):
                    raise ConfigError(f"context parameter {file_key}={path!r} must be a path")
                where = f"context parameter {file_key} ({path})"
                return rules_document(read_rules_file(Path(path).expanduser(), where=where), where=where)
        except RulesDocumentError as exc:
            raise ConfigError(str(exc)) from None
        return None

    def routing_key_secrets(self, key: str) -> tuple[tuple[str, str], ...]:
        """Alias → secret ARN pairs from a JSON object; the ``default`` alias is the integration key's."""
        value = self._raw(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(
                    f"context parameter {key}={value!r} is not JSON: it must be an object of alias to secret ARN "
                    f"""(quote it for the shell: -c '{key}={{"alias": "arn:…"}}')"""
                ) from None
        if value is None:
            return ()
        if not isinstance(value, dict):
            raise ConfigError(f"context parameter {key}={value!r} must be a JSON object of alias to secret ARN")
        pairs: list[tuple[str, str]] = []
        for alias, arn in sorted(value.items()):
            if not isinstance(alias, str) or not _ROUTING_ALIAS.match(alias):
                raise ConfigError(
                    f"context parameter {key}: alias {alias!r} must be 1 to 64 letters, digits, '.', '_' or '-'"
                )
            if alias == SECRET_KEY_FIELD:
                raise ConfigError(
                    f"context parameter {key}: the {alias!r} routing key is the integration key "
                    "(integrationKeySecretArn); name only the other aliases here"
                )
            if not isinstance(arn, str) or not _SECRET_ARN.match(arn):
                raise ConfigError(f"context parameter {key}: {alias}={arn!r} is not a Secrets Manager secret ARN")
            pairs.append((alias, arn))
        return tuple(pairs)

    def _bounded(self, key: str, value: Any, minimum: int, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"context parameter {key}={value!r} must be an integer")
        try:
            number = int(value)
        except ValueError as exc:
            raise ConfigError(f"context parameter {key}={value!r} must be an integer") from exc
        if not minimum <= number <= maximum:
            raise ConfigError(f"context parameter {key}={number} must be between {minimum} and {maximum}")
        return number
