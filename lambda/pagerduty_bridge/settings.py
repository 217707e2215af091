"""Every setting the bridge reads, read once into one validated, frozen object.

Nothing else in the package reads ``os.environ``. A missing or malformed variable is a
``ConfigurationError`` that names the variable. Building ``Settings`` directly (tests, the library)
validates the same way, naming the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlparse

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.models import (
    AlertSeverity,
    DedupKeyStrategy,
    InsufficientDataAction,
    Secret,
    UnrecognizedMessageAction,
)

_ROUTING_KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9]{32}$")
MAX_RETRY_BUDGET_SECONDS: Final = 900.0
"""Lambda's longest invocation: no budget can outlast it."""
MAX_RESOLVED_RETENTION_DAYS: Final = timedelta.max.days
"""The most days a time span holds (999,999,999: resolved incidents are kept as good as forever);
more cannot be counted, and the function could not start."""


@dataclass(frozen=True, slots=True)
class EventDefaults:
    """What the seed's templates fill in: the seed hard-coded its own application's names and links;
    here the component and group keep the seed's names (they say which alarms the templates are for),
    the links are neutral unless configured (``TEMPLATE_*``, ``PAGERDUTY_CLIENT*``)."""

    component: str = "hybrid-routing"
    group: str = "ai-orchestrator"
    client: str = c.SERVICE_NAME
    client_url: str | None = None
    dashboard_url: str | None = None
    dashboard_text: str = "Dashboard"
    region: str | None = None
    """Where the templates' CloudWatch dashboard link points (Lambda's ``AWS_REGION``); none: no link."""


_DEFAULTS_BY_ENV: Final[dict[str, str]] = {
    c.ENV_TEMPLATE_COMPONENT: "component",
    c.ENV_TEMPLATE_GROUP: "group",
    c.ENV_PAGERDUTY_CLIENT: "client",
    c.ENV_PAGERDUTY_CLIENT_URL: "client_url",
    c.ENV_TEMPLATE_DASHBOARD_URL: "dashboard_url",
    c.ENV_TEMPLATE_DASHBOARD_TEXT: "dashboard_text",
    c.ENV_AWS_REGION: "region",
}


def looks_like_routing_key(text: str) -> bool:
    """Whether ``text`` has a routing key's form (32 letters and digits)."""
    return _ROUTING_KEY_PATTERN.fullmatch(text) is not None


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


_LOG_LEVELS: Final = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
    # Lambda's own levels (its advanced logging controls) and logging's other spellings: the nearest.
    "TRACE": "DEBUG",
    "WARN": "WARNING",
    "FATAL": "CRITICAL",
}
DEFAULT_LOG_LEVEL: Final = "INFO"


def log_level(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The log level ``POWERTOOLS_LOG_LEVEL`` (else ``LOG_LEVEL``) asks for, as logging spells it, and
    what was wrong with the value (``None``: nothing). Powertools reads the variables itself and raises
    while the function is imported for a level logging does not know (``TRACE``, ``verbose``): every
    invocation would then fail. A level of Lambda's means its nearest; any other is ``INFO``, with the
    problem naming the variable. ``(None, None)`` when neither is set."""
    for variable in (c.ENV_POWERTOOLS_LOG_LEVEL, c.ENV_LOG_LEVEL):
        value = environ.get(variable, "").strip()
        if value:
            level = _LOG_LEVELS.get(value.upper())
            if level is None:
                allowed = ", ".join(_LOG_LEVELS)
                return (
                    DEFAULT_LOG_LEVEL,
                    f"{variable} is not a log level (one of {allowed}): {DEFAULT_LOG_LEVEL} is used",
                )
            return level, None
    return None, None


POWERTOOLS_FLAGS: Final = (
    "POWERTOOLS_DEV",
    "POWERTOOLS_DEBUG",
    "POWERTOOLS_LOGGER_LOG_EVENT",
    "POWERTOOLS_LOG_DEDUPLICATION_DISABLED",
    "POWERTOOLS_METRICS_DISABLED",
    "POWERTOOLS_PARAMETERS_SSM_DECRYPT",
    "POWERTOOLS_TRACE_DISABLED",
)
"""Powertools' switches the functions may meet, each read with its ``strtobool``."""
POWERTOOLS_SAMPLE_RATE: Final = "POWERTOOLS_LOGGER_SAMPLE_RATE"
_TRUTH_VALUES: Final = frozenset({"1", "y", "yes", "t", "true", "on", "0", "n", "no", "f", "false", "off"})
"""What Powertools' ``strtobool`` reads (lower-cased, not stripped); anything else raises."""


def drop_unreadable_powertools_settings(environ: MutableMapping[str, str]) -> list[str]:
    """Remove from ``environ`` each Powertools variable Powertools itself could not read, and say which.

    Powertools reads its variables as it is imported, as a logger is built, or at every metrics flush,
    and raises for a value it cannot read (``POWERTOOLS_DEV=sure``: ``invalid truth value``; a sampling
    rate of ``10%``): the function would then page nothing, and no error would name the variable. A
    value removed is Powertools' default; each problem names its variable, for a warning. Call it
    before Powertools is imported."""
    problems: list[str] = []
    for name in POWERTOOLS_FLAGS:
        value = environ.get(name)
        if value is not None and value.lower() not in _TRUTH_VALUES:
            del environ[name]
            problems.append(f"{name}={value[:64]!r} is not true or false (1/0, yes/no, on/off): ignored")
    rate = environ.get(POWERTOOLS_SAMPLE_RATE)
    if rate is not None:
        try:
            float(rate)
        except ValueError:
            del environ[POWERTOOLS_SAMPLE_RATE]
            problems.append(f"{POWERTOOLS_SAMPLE_RATE}={rate[:64]!r} is not a number from 0 to 1: ignored")
    return problems


# --- parsers: a raw value (a string from the environment, or a typed value) → the field's value --------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _secret(value: Any) -> Secret | None:
    if value is None:
        return None
    secret = Secret.of(value)
    check_routing_key(secret.get_secret_value(), "the key")
    return secret


def _plain_secret(value: Any) -> Secret | None:
    return None if value is None else Secret.of(value)


def _id_list(value: Any) -> frozenset[str]:
    """Ids, comma-separated in a string (the environment) or as any collection of strings."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise ValueError("must be ids separated by commas")
    return frozenset(item.strip() for item in items if item.strip())


def _http_url(value: Any) -> str:
    parsed = urlparse(_text(value))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    return str(value)


def _optional_http_url(value: Any) -> str | None:
    return None if value is None else _http_url(value)


def _choice(kind: type[Any]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        text = _text(value).strip().lower()
        try:
            return kind(text)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise ValueError(f"must be one of {allowed}") from None

    return parse


def _number(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if not math.isfinite(number) or not low < number <= high:
            raise ValueError(f"must be more than {low:g} and at most {high:g}")
        return number

    return parse


def _whole(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError("must be a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be at least {low} and at most {high}")
        return number

    return parse


def _json_map(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("must be a JSON object of alias to value") from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be a JSON object of alias to value")
    return dict(value)


def _string_map(value: Any) -> dict[str, str]:
    mapping = _json_map(value)
    if not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError("every value must be a string")
    return mapping


def _routing_keys(value: Any) -> dict[str, Secret]:
    keys: dict[str, Secret] = {}
    for alias, key in _json_map(value).items():
        secret = Secret.of(key)
        check_routing_key(secret.get_secret_value(), f"{c.ENV_ROUTING_KEYS} ({alias})")
        keys[alias] = secret
    return keys


def _defaults(value: Any) -> EventDefaults:
    if not isinstance(value, EventDefaults):
        raise ValueError("must be EventDefaults")
    for name in ("client_url", "dashboard_url"):
        url = getattr(value, name)
        if url is not None:
            _http_url(url)
    return value


_PARSERS: Final[dict[str, Callable[[Any], Any]]] = {
    "integration_key": _secret,
    "integration_key_secret_arn": _optional_text,
    "service_name": _text,
    "escalation_policy_id": _optional_text,
    "events_url": _http_url,
    "change_events_url": _optional_http_url,
    "environment": _text,
    "table_name": _optional_text,
    "insufficient_data_action": _choice(InsufficientDataAction),
    "unrecognized_message_action": _choice(UnrecognizedMessageAction),
    "dedup_key_strategy": _choice(DedupKeyStrategy),
    "default_severity": _choice(AlertSeverity),
    "retry_budget_seconds": _number(0, MAX_RETRY_BUDGET_SECONDS),
    "resolved_retention_days": _whole(1, MAX_RESOLVED_RETENTION_DAYS),
    "event_defaults": _defaults,
    "alert_rules": _optional_text,
    "alert_rules_file": _optional_text,
    "routing_keys": _routing_keys,
    "routing_key_secrets": _string_map,
    "webhook_secret": _plain_secret,
    "webhook_secret_arn": _optional_text,
    "webhook_service_ids": _id_list,
    "reconcile_role_arns": _string_map,
}

# Environment variable → field name.
_FIELDS_BY_ENV: Final[dict[str, str]] = {
    c.ENV_INTEGRATION_KEY: "integration_key",
    c.ENV_INTEGRATION_KEY_SECRET_ARN: "integration_key_secret_arn",
    c.ENV_SERVICE_NAME: "service_name",
    c.ENV_ESCALATION_POLICY_ID: "escalation_policy_id",
    c.ENV_EVENTS_URL: "events_url",
    c.ENV_CHANGE_EVENTS_URL: "change_events_url",
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
    c.ENV_WEBHOOK_SECRET: "webhook_secret",
    c.ENV_WEBHOOK_SECRET_ARN: "webhook_secret_arn",
    c.ENV_WEBHOOK_SERVICE_IDS: "webhook_service_ids",
    c.ENV_RECONCILE_ROLE_ARNS: "reconcile_role_arns",
}
_ENV_BY_FIELD: Final = {name: env for env, name in _FIELDS_BY_ENV.items()}


@dataclass(frozen=True, slots=True)
class Settings:
    """The bridge's configuration. Build it with ``Settings.from_env()`` at the edge, pass it inward."""

    integration_key: Secret | None = None
    integration_key_secret_arn: str | None = None
    service_name: str = c.SERVICE_NAME
    escalation_policy_id: str | None = None
    events_url: str = c.DEFAULT_EVENTS_URL
    change_events_url: str | None = None
    environment: str = "production"
    table_name: str | None = None
    insufficient_data_action: InsufficientDataAction = InsufficientDataAction.IGNORE
    unrecognized_message_action: UnrecognizedMessageAction = UnrecognizedMessageAction.FORWARD
    dedup_key_strategy: DedupKeyStrategy = DedupKeyStrategy.ALARM_NAME
    default_severity: AlertSeverity = AlertSeverity.CRITICAL
    retry_budget_seconds: float = 30.0
    resolved_retention_days: int = 90
    event_defaults: EventDefaults = field(default_factory=EventDefaults)
    alert_rules: str | None = None
    alert_rules_file: str | None = None
    routing_keys: dict[str, Secret] = field(default_factory=dict)
    routing_key_secrets: dict[str, str] = field(default_factory=dict)
    webhook_secret: Secret | None = None
    webhook_secret_arn: str | None = None
    webhook_service_ids: frozenset[str] = frozenset()
    reconcile_role_arns: dict[str, str] = field(default_factory=dict)

    @property
    def change_url(self) -> str:
        """Where Change Events go: ``change_events_url``, else ``/v2/change/enqueue`` on the Events URL's
        origin (PagerDuty's own layout)."""
        if self.change_events_url:
            return self.change_events_url
        parsed = urlparse(self.events_url)
        return f"{parsed.scheme}://{parsed.netloc}/v2/change/enqueue"

    def __post_init__(self) -> None:
        problems = []
        for spec in fields(self):
            try:
                value = _PARSERS[spec.name](getattr(self, spec.name))
            except (ValueError, TypeError, ConfigurationError) as exc:
                problems.append(f"{spec.name}: {exc}")
                continue
            object.__setattr__(self, spec.name, value)
        if problems:
            raise ConfigurationError("invalid settings: " + "; ".join(problems))

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (field names), validated like any other."""
        values = {spec.name: getattr(self, spec.name) for spec in fields(self)}
        values.update(changes)
        return Settings(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the bridge's variables from ``environ`` (default: the process environment).

        Empty variables count as unset. ``overrides`` (field names; ``None`` ignored) win over the
        environment. A malformed value is an error naming its variable.
        """
        if environ is None:
            import os

            environ = os.environ
        values: dict[str, Any] = {
            name: environ[env].strip() for env, name in _FIELDS_BY_ENV.items() if environ.get(env, "").strip()
        }
        defaults = {
            name: environ[env].strip() for env, name in _DEFAULTS_BY_ENV.items() if environ.get(env, "").strip()
        }
        if defaults:
            values["event_defaults"] = EventDefaults(**defaults)
        values.update({k: v for k, v in overrides.items() if v is not None})
        problems = []
        for name, value in values.items():
            try:
                _PARSERS[name](value)
            except (ValueError, TypeError, ConfigurationError) as exc:
                given = overrides.get(name) is not None  # an override of None left the variable's value
                problems.append(f"{name if given else _ENV_BY_FIELD.get(name, name)}: {exc}")
        if problems:
            raise ConfigurationError("invalid settings: " + "; ".join(problems))
        return cls(**values)
