"""Every setting the bridge reads, read once into one validated, frozen object.

Nothing else in the package reads ``os.environ``. A missing or malformed variable is a
``ConfigurationError`` that names the variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.models import AlertSeverity

if TYPE_CHECKING:
    from pagerduty_bridge.rules import AlertRules

_ROUTING_KEY_PATTERN = re.compile(r"^[A-Za-z0-9]{32}$")


class InsufficientDataAction(StrEnum):
    IGNORE = "ignore"
    RESOLVE = "resolve"
    TRIGGER = "trigger"


class UnrecognizedMessageAction(StrEnum):
    FORWARD = "forward"
    DROP = "drop"


class DedupKeyStrategy(StrEnum):
    ALARM_NAME = "alarm-name"
    ALARM_ARN = "alarm-arn"


class EventDefaults(BaseModel):
    """Values the seed hard-coded for its own application; the defaults reproduce its payloads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: str = "hybrid-routing"
    group: str = "ai-orchestrator"
    client: str = "matbakh-bedrock-support-manager"
    client_url: str = "https://app.matbakh.app/admin/bedrock-activation"
    dashboard_url: str = "https://app.matbakh.app/admin/bedrock-activation"
    dashboard_text: str = "Hybrid Routing Dashboard"


# Environment variable → field name, for the variables that map one to one.
_FIELDS_BY_ENV: dict[str, str] = {
    c.ENV_INTEGRATION_KEY: "integration_key",
    c.ENV_INTEGRATION_KEY_SECRET_ARN: "integration_key_secret_arn",
    c.ENV_SERVICE_NAME: "service_name",
    c.ENV_ESCALATION_POLICY_ID: "escalation_policy_id",
    c.ENV_EVENTS_URL: "events_url",
    c.ENV_ENVIRONMENT: "environment",
    c.ENV_TABLE_NAME: "table_name",
    c.ENV_INSUFFICIENT_DATA_ACTION: "insufficient_data_action",
    c.ENV_UNRECOGNIZED_MESSAGE_ACTION: "unrecognized_message_action",
    c.ENV_DEDUP_KEY_STRATEGY: "dedup_key_strategy",
    c.ENV_DEFAULT_SEVERITY: "default_severity",
    c.ENV_RETRY_BUDGET_SECONDS: "retry_budget_seconds",
    c.ENV_RESOLVED_RETENTION_DAYS: "resolved_retention_days",
    c.ENV_ALERT_RULES: "alert_rules",
    c.ENV_ALERT_RULES_FILE: "alert_rules_file",
    c.ENV_ROUTING_KEYS: "routing_keys",
    c.ENV_ROUTING_KEY_SECRETS: "routing_key_secrets",
}
_ENV_BY_FIELD = {field: env for env, field in _FIELDS_BY_ENV.items()}


class Settings(BaseModel):
    """The bridge's configuration. Build it with ``Settings.from_env()`` at the edge, pass it inward."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    integration_key: SecretStr | None = None
    integration_key_secret_arn: str | None = None
    service_name: str = c.SERVICE_NAME
    escalation_policy_id: str | None = None
    events_url: str = c.DEFAULT_EVENTS_URL
    environment: str = "production"
    table_name: str | None = None
    insufficient_data_action: InsufficientDataAction = InsufficientDataAction.IGNORE
    unrecognized_message_action: UnrecognizedMessageAction = UnrecognizedMessageAction.FORWARD
    dedup_key_strategy: DedupKeyStrategy = DedupKeyStrategy.ALARM_NAME
    default_severity: AlertSeverity = AlertSeverity.CRITICAL
    retry_budget_seconds: float = Field(default=30.0, gt=0, le=900)
    resolved_retention_days: int = Field(default=90, ge=1)
    event_defaults: EventDefaults = EventDefaults()
    alert_rules: str | None = None
    alert_rules_file: str | None = None
    routing_keys: dict[str, SecretStr] = Field(default_factory=dict)
    routing_key_secrets: dict[str, str] = Field(default_factory=dict)

    @field_validator("routing_keys", "routing_key_secrets", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("must be a JSON object of alias to value") from None
        return value

    @field_validator("routing_keys")
    @classmethod
    def _well_formed_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for alias, key in value.items():
            check_routing_key(key.get_secret_value(), f"{c.ENV_ROUTING_KEYS} ({alias})")
        return value

    def load_rules(self) -> AlertRules:
        """The alert rules (inline wins over the file); none configured means the built-ins only."""
        from pagerduty_bridge.rules import AlertRules, parse_rules

        component = self.event_defaults.component
        if self.alert_rules:
            return parse_rules(self.alert_rules, where=c.ENV_ALERT_RULES, component=component)
        if self.alert_rules_file:
            from pathlib import Path

            try:
                text = Path(self.alert_rules_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"{c.ENV_ALERT_RULES_FILE}: cannot read {self.alert_rules_file} ({exc})"
                ) from None
            return parse_rules(text, where=self.alert_rules_file, component=component)
        return AlertRules(component=component)

    @field_validator("integration_key")
    @classmethod
    def _well_formed_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_routing_key(value.get_secret_value(), c.ENV_INTEGRATION_KEY)
        return value

    @field_validator("events_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("insufficient_data_action", "unrecognized_message_action", "dedup_key_strategy", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the bridge's variables from ``environ`` (default: the process environment).

        Empty variables count as unset. ``overrides`` (field names) win over the environment.
        """
        if environ is None:
            import os

            environ = os.environ
        values: dict[str, Any] = {
            field: environ[env].strip() for env, field in _FIELDS_BY_ENV.items() if environ.get(env, "").strip()
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(describe_validation_error(exc, _ENV_BY_FIELD)) from None


def check_routing_key(key: str, where: str) -> str:
    """Raise ``ConfigurationError`` naming ``where`` unless ``key`` looks like a routing key.

    The message never includes the key itself.
    """
    if not _ROUTING_KEY_PATTERN.fullmatch(key):
        raise ConfigurationError(
            f"{where} is malformed: a PagerDuty routing key is {c.ROUTING_KEY_LENGTH} letters and digits "
            f"(got {len(key)} characters)"
        )
    return key


def describe_validation_error(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """One line per problem, each naming the field (or its environment variable) and what is wrong."""
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "value"
        if names and location in names:
            location = names[location]
        problems.append(f"{location}: {error['msg']}")
    return "invalid settings: " + "; ".join(problems)
