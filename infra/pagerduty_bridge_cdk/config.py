"""One deployment's settings, validated the same way from CDK context and from construct props.

Every deploy-time choice is a parameter: a keyword prop of :class:`~pagerduty_bridge_cdk.PagerDutyBridge`
(``alert_rules=…``) or, for the standalone app, a context parameter (``cdk deploy -c alertRules=…``, or
``cdk.json``). Both are read by the same readers into one frozen :class:`BridgeConfig`, and a malformed
value is rejected with an error naming the parameter as it was given, before any construct is built.
A ``BridgeConfig`` built directly is validated the same way.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from aws_cdk import Token

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.alert_rules import RulesDocumentError, read_rules_file, rules_document
from pagerduty_bridge_cdk.functions import DEFAULT_PYTHON_VERSION, PYTHON_RUNTIMES
from pagerduty_bridge_cdk.readers import (
    ACCOUNT_ID,
    CONTEXT,
    EMAIL,
    ENVIRONMENT_NAME,
    KMS_KEY_ARN,
    PROPS,
    REGION,
    ROLE_ARN,
    ROUTING_ALIAS,
    SECRET_ARN,
    SNS_TOPIC_ARN,
    STACK_NAME_GLOB,
    Architecture,
    ConfigError,
    ContextSource,
    Naming,
    PropsSource,
    Reader,
    Source,
    arn_region,
    camel_case,
)
from pagerduty_bridge_cdk.timing import MAX_BATCH_SIZE, FunctionTimeout

__all__ = ["CONTEXT_PARAMETERS", "PARAMETERS", "BridgeConfig", "BridgeProps", "ConfigError", "check_context_keys"]

HalfWiredAlarms = Literal["error", "warn"]

PARAMETERS: Final[dict[str, str]] = {
    "environment": "Environment name (lowercase letters, digits, dashes); names the stack "
    "PagerDutyBridge-<environment> and is passed to the function. Default: dev.",
    "alarm_topic_arn": "ARN of an existing SNS topic the alarms already publish to; the function "
    "subscribes to it instead of the stack creating an encrypted topic. Default: none (create one).",
    "integration_key_secret_arn": "ARN of an existing Secrets Manager secret holding the PagerDuty "
    "integration key. Default: none (a placeholder secret is created; put the key into it).",
    "integration_key_secret_kms_key_arn": "ARN of the customer-managed KMS key encrypting that existing "
    "secret, if it is not encrypted with aws/secretsmanager. Default: none.",
    "reserved_concurrency": "Reserved concurrent executions for the function, which also caps the "
    "rate of PagerDuty calls; 'none' leaves the function unreserved (accounts still at the default "
    "quota of 10 cannot reserve any). Default: 5.",
    "log_retention_days": "Retention of the function's log group, in days (a CloudWatch Logs value "
    "such as 7, 14, 30, 90, 365). Default: 30.",
    "health_alarm_email": "E-mail address subscribed to the bridge's own health topic (the address "
    "must confirm the subscription). Default: none.",
    "architecture": "Lambda architecture, arm64 or x86_64; the asset is bundled for it. Default: arm64.",
    "python_version": "Python version of the functions' Lambda runtime, 3.12, 3.13 or 3.14; the asset's "
    "bytecode is compiled for it where that Python (PATH, pyenv) or a Docker engine is at hand. "
    f"Default: {DEFAULT_PYTHON_VERSION}.",
    "retry_budget_seconds": "Seconds one invocation may spend retrying PagerDuty; sizes the function "
    "timeout. Default: 30.",
    "buffered": "true puts an encrypted SQS queue between the topic and the function (batches, "
    "bounded concurrency, redrive to a dead-letter queue). Default: false.",
    "max_receive_count": "Buffered mode: receives before a message moves to the dead-letter queue. Default: 5.",
    "batch_size": "Buffered mode: most messages per invocation; each is given 2 s of the function timeout "
    f"(at most {MAX_BATCH_SIZE} fit Lambda's 900 s). Default: 10.",
    "max_batching_window_seconds": "Buffered mode: longest wait to fill a batch, in seconds. Default: 1.",
    "max_concurrency": "Buffered mode: most concurrent invocations the queue drives (at least 2, "
    "at most reservedConcurrency, and below it while reconcileMinutes or changeEvents also invoke the "
    "function). Default: 2.",
    "reconcile_minutes": "Minutes between scheduled reconciliations, which resolve open incidents whose "
    "alarm is OK in CloudWatch or no longer exists (their OK notification never arrived); 0 turns the "
    "schedule off. Default: 15.",
    "alert_rules": "The alert rules document itself, as JSON (a string with -c, or an object in cdk.json); "
    "validated at synth and given to the function. Default: none (the built-in rules only).",
    "alert_rules_file": "Path to an alert rules file (JSON, or YAML), relative to the directory holding "
    "cdk.json; read and validated at synth, given to the function as JSON. Default: none.",
    "routing_key_secrets": "JSON object of routing-key alias to the ARN of an existing Secrets Manager secret "
    "holding that alias's PagerDuty routing key, one secret per alias. Default: none.",
    "webhooks": "true adds a second function behind a Lambda function URL (auth NONE: PagerDuty's HMAC "
    "signature is the authentication) that records PagerDuty webhooks v3 (acknowledged, resolved, "
    "reassigned) in the incident table. Default: false.",
    "webhook_secret_arn": "With webhooks: ARN of an existing Secrets Manager secret (encrypted with "
    "aws/secretsmanager) holding the webhook subscription's signing secret. Default: none (a placeholder "
    "secret is created; put the signing secret into it).",
    "webhook_service_ids": "With webhooks: the ids of the PagerDuty services the bridge pages (a JSON list or comma-separated "
    "list, e.g. 'PABC123,PDEF456'); webhooks about incidents of any other service are ignored (an "
    "account-wide subscription delivers every service's). Default: none (every service's).",
    "change_events": "true or '*' sends a PagerDuty change event whenever a CloudFormation stack of the "
    "account and region completes or fails an operation; a JSON list or comma-separated list of "
    "stack-name globs (e.g. 'shop-*,payments') limits it to those stacks. Default: none (off).",
    "reconcile_role_arns": "JSON object of AWS account id to the ARN of a role in that account that "
    "reconciliation assumes to read its alarms (the role allows cloudwatch:DescribeAlarms and trusts the "
    "function's role); needs reconcileMinutes above 0. Default: none.",
    "snap_start": "true turns on Lambda SnapStart: a published version and a 'live' alias, which every "
    "trigger invokes instead of $LATEST. Default: false.",
    "half_wired_alarms": "How the synth reports an alarm of the app whose ALARM action is the bridge topic "
    "but whose OK action is not: 'error' or 'warn'. Default: error.",
    "account": "AWS account id for the stack; defaults to the CLI's (CDK_DEFAULT_ACCOUNT).",
    "region": "AWS region for the stack; defaults to the CLI's (CDK_DEFAULT_REGION).",
}
"""Every parameter, by prop name, with the text it is documented by."""

CONTEXT_ONLY: Final = frozenset({"account", "region"})
"""The standalone app's own parameters: where its stack goes. A construct goes where its scope is."""
PROPS_ONLY: Final = frozenset({"half_wired_alarms"})
"""Only an app with alarms of its own (the construct's users) has alarms to report."""

CONTEXT_PARAMETERS: Final[dict[str, str]] = {
    camel_case(name): doc for name, doc in PARAMETERS.items() if name not in PROPS_ONLY
}
"""Every context parameter the standalone app reads, with the text ``cdk.json`` documents it by."""

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
ALL_STACKS: Final = "*"
PAGERDUTY_ID: Final = re.compile(r"^[A-Z0-9]{1,64}$")
"""A PagerDuty object id (``PABC123``)."""


class BridgeProps(TypedDict, total=False):
    """The keyword props of :class:`~pagerduty_bridge_cdk.PagerDutyBridge` besides ``environment``.

    Each is documented in :data:`PARAMETERS` (the same text as the standalone app's context parameter
    of the camelCase name); a prop left out takes the default stated there.
    """

    alarm_topic_arn: str | None
    integration_key_secret_arn: str | None
    integration_key_secret_kms_key_arn: str | None
    reserved_concurrency: int | None
    log_retention_days: int
    health_alarm_email: str | None
    architecture: Architecture
    python_version: str
    retry_budget_seconds: int
    buffered: bool
    max_receive_count: int
    batch_size: int
    max_batching_window_seconds: int
    max_concurrency: int
    reconcile_minutes: int
    alert_rules: str | dict[str, Any] | list[Any] | None
    alert_rules_file: str | Path | None
    routing_key_secrets: dict[str, str] | None
    webhooks: bool
    webhook_secret_arn: str | None
    webhook_service_ids: str | list[str] | tuple[str, ...]
    change_events: bool | str | list[str] | tuple[str, ...]
    reconcile_role_arns: dict[str, str] | None
    snap_start: bool
    half_wired_alarms: HalfWiredAlarms


@dataclass(frozen=True)
class BridgeConfig:
    """What one deployment of the bridge looks like, validated; built by :meth:`from_props` or
    :meth:`from_context` (or directly, validated all the same)."""

    environment: str = "dev"
    alarm_topic_arn: str | None = None
    integration_key_secret_arn: str | None = None
    integration_key_secret_kms_key_arn: str | None = None
    reserved_concurrency: int | None = 5
    log_retention_days: int = 30
    health_alarm_email: str | None = None
    architecture: Architecture = "arm64"
    python_version: str = DEFAULT_PYTHON_VERSION
    retry_budget_seconds: int = 30
    buffered: bool = False
    max_receive_count: int = 5
    batch_size: int = 10
    max_batching_window_seconds: int = 1
    max_concurrency: int = 2
    reconcile_minutes: int = 15
    alert_rules: str | None = None
    """The alert rules document, validated, as compact JSON (from ``alert_rules`` or ``alert_rules_file``)."""
    routing_key_secrets: tuple[tuple[str, str], ...] = ()
    """(alias, secret ARN) pairs, sorted by alias."""
    webhooks: bool = False
    webhook_secret_arn: str | None = None
    webhook_service_ids: tuple[str, ...] = ()
    """PagerDuty service ids whose webhooks the receiver takes; ``()``: every service's."""
    change_events: tuple[str, ...] = ()
    """Stack-name globs whose operations become change events; ``("*",)`` is every stack, ``()`` none."""
    reconcile_role_arns: tuple[tuple[str, str], ...] = ()
    """(account id, role ARN) pairs, sorted by account."""
    snap_start: bool = False
    half_wired_alarms: HalfWiredAlarms = "error"
    account: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        """Validate and normalize every field with the props' readers (a no-op for a read config)."""
        values = _read(_FieldSource(self), PROPS)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_props(cls, **props: Any) -> BridgeConfig:
        """The settings from construct props; an unknown prop is a TypeError, a bad value a ConfigError."""
        unknown = sorted(set(props) - (set(PARAMETERS) - CONTEXT_ONLY))
        if unknown:
            raise TypeError(f"PagerDutyBridge got unexpected prop(s): {', '.join(unknown)}")
        source = PropsSource(props)
        # The standalone app defaults to "dev"; a construct names its environment. An empty value (an
        # unset variable) must not make a second "dev" bridge.
        if "environment" in props and Reader(source, PROPS, PARAMETERS).raw("environment") is None:
            raise ConfigError(
                f"prop environment={props['environment']!r} is required: the deployment's name, a lowercase "
                "letter then lowercase letters, digits and dashes (at most 24)"
            )
        return cls(**_read(source, PROPS))

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> BridgeConfig:
        """The settings from ``node.try_get_context``-style lookups (``get(key)``)."""
        return cls(**_read(ContextSource(get), CONTEXT))

    def as_props(self) -> dict[str, Any]:
        """These settings as keyword props for :class:`~pagerduty_bridge_cdk.PagerDutyBridge`."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in CONTEXT_ONLY
        }

    @property
    def stack_name(self) -> str:
        """The standalone app's CloudFormation stack name: one stack per environment."""
        return f"PagerDutyBridge-{self.environment}"

    @property
    def function_timeout(self) -> FunctionTimeout:
        """The main function's timeout, with what it is made of."""
        return FunctionTimeout(self.retry_budget_seconds, self.batch_size if self.buffered else None)

    @property
    def all_stacks_change_events(self) -> bool:
        return ALL_STACKS in self.change_events


def check_context_keys(keys: Iterable[str]) -> None:
    """Refuse a context key that is a parameter spelled another way (``reserved_concurrency``,
    ``ReconcileMinutes``) or a prop only the construct takes: the app would ignore it without a word.

    Every other key is left alone: context also holds CDK's feature flags and whatever else an app keeps
    there."""
    known = {_spelling_free(key): key for key in CONTEXT_PARAMETERS}
    props_only = {_spelling_free(camel_case(name)): camel_case(name) for name in PROPS_ONLY}
    for key in keys:
        if key in CONTEXT_PARAMETERS:
            continue
        meant = known.get(_spelling_free(key))
        if meant is not None:
            raise ConfigError(
                f"context parameter {key} is not one of the bridge's: did you mean {meant}? Context parameters "
                "are spelled in camelCase (props in snake_case)."
            )
        if _spelling_free(key) in props_only:
            raise ConfigError(
                f"context parameter {key} is a prop of the construct only (PagerDutyBridge("
                f"{_snake_case(props_only[_spelling_free(key)])}=...)): the standalone app holds no alarms of yours"
            )


def _spelling_free(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _snake_case(key: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in key)


class _FieldSource:
    """A config's own fields as props: every field is given."""

    def __init__(self, config: BridgeConfig) -> None:
        self._config = config

    def value(self, name: str) -> Any:
        return getattr(self._config, name, None)

    def given(self, name: str) -> bool:
        return name in BridgeConfig.__dataclass_fields__


def _defaults() -> dict[str, Any]:
    return {field.name: field.default for field in dataclasses.fields(BridgeConfig)}


def _read(source: Source, naming: Naming) -> dict[str, Any]:
    """Every field, read and validated from ``source``, then checked together."""
    reader = Reader(source, naming, PARAMETERS)
    values = _read_deployment(reader, _defaults()) | _read_features(reader, _defaults())
    _check_combinations(values, naming)
    return values


def _read_deployment(r: Reader, d: dict[str, Any]) -> dict[str, Any]:
    """Where the bridge runs and how it is sized."""
    return {
        "environment": r.matching("environment", ENVIRONMENT_NAME, d["environment"]),
        "alarm_topic_arn": r.optional_matching("alarm_topic_arn", SNS_TOPIC_ARN, token=True),
        "integration_key_secret_arn": r.optional_matching("integration_key_secret_arn", SECRET_ARN, token=True),
        "integration_key_secret_kms_key_arn": r.optional_matching(
            "integration_key_secret_kms_key_arn", KMS_KEY_ARN, token=True
        ),
        "reserved_concurrency": r.optional_integer(
            "reserved_concurrency", d["reserved_concurrency"], minimum=1, maximum=1000
        ),
        "log_retention_days": r.one_of("log_retention_days", LOG_RETENTION_DAYS, d["log_retention_days"]),
        "health_alarm_email": r.optional_matching("health_alarm_email", EMAIL),
        "architecture": r.architecture("architecture", d["architecture"]),
        "python_version": _python_version(r, d["python_version"]),
        "retry_budget_seconds": r.integer(
            "retry_budget_seconds", d["retry_budget_seconds"], minimum=1, maximum=_MAX_RETRY_BUDGET_SECONDS
        ),
        "buffered": r.boolean("buffered", d["buffered"]),
        "max_receive_count": r.integer("max_receive_count", d["max_receive_count"], minimum=1, maximum=1000),
        "batch_size": r.integer("batch_size", d["batch_size"], minimum=1, maximum=_MAX_SQS_BATCH_SIZE),
        "max_batching_window_seconds": r.integer(
            "max_batching_window_seconds",
            d["max_batching_window_seconds"],
            minimum=0,
            maximum=_MAX_BATCHING_WINDOW_SECONDS,
        ),
        "max_concurrency": r.integer(
            "max_concurrency", d["max_concurrency"], minimum=_MIN_SQS_MAX_CONCURRENCY, maximum=_MAX_SQS_MAX_CONCURRENCY
        ),
        "snap_start": r.boolean("snap_start", d["snap_start"]),
        "account": r.optional_matching("account", ACCOUNT_ID),
        "region": r.optional_matching("region", REGION),
    }


def _read_features(r: Reader, d: dict[str, Any]) -> dict[str, Any]:
    """What the bridge does besides paging: rules, routing, reconciliation, webhooks, change events."""
    return {
        "reconcile_minutes": r.integer(
            "reconcile_minutes", d["reconcile_minutes"], minimum=0, maximum=MAX_RECONCILE_MINUTES
        ),
        "alert_rules": _alert_rules(r),
        "routing_key_secrets": _routing_key_secrets(r),
        "webhooks": r.boolean("webhooks", d["webhooks"]),
        "webhook_secret_arn": r.optional_matching("webhook_secret_arn", SECRET_ARN, token=True),
        "webhook_service_ids": _webhook_service_ids(r),
        "change_events": _change_events(r),
        "reconcile_role_arns": _reconcile_role_arns(r),
        "half_wired_alarms": r.choice("half_wired_alarms", ("error", "warn"), d["half_wired_alarms"]),
    }


def _python_version(r: Reader, default: str) -> str:
    """``3.13`` (text, or a number in ``cdk.json``; ``python3.13`` too): one of the runtimes offered."""
    value = r.raw("python_version")
    if value is None:
        return default
    text = str(value).strip().removeprefix("python")
    if text not in PYTHON_RUNTIMES:
        raise r.fail("python_version", value, f"must be one of {', '.join(PYTHON_RUNTIMES)}")
    return text


def _alert_rules(r: Reader) -> str | None:
    """The rules document from either parameter (not both), validated by the package, as compact JSON."""
    inline, path = r.raw("alert_rules"), r.raw("alert_rules_file")
    if inline is not None and path is not None:
        raise ConfigError(
            f"{r.label('alert_rules')} and {r.naming.key('alert_rules_file')} exclude each other: give one"
        )
    try:
        if inline is not None:
            return rules_document(inline, where=r.label("alert_rules"))
        if path is not None:
            if not isinstance(path, str | Path):
                raise r.fail("alert_rules_file", path, "must be a path")
            where = f"{r.label('alert_rules_file')} ({path})"
            return rules_document(read_rules_file(Path(path).expanduser(), where=where), where=where)
    except RulesDocumentError as exc:
        raise ConfigError(str(exc)) from None
    return None


def _routing_key_secrets(r: Reader) -> tuple[tuple[str, str], ...]:
    """Alias → secret ARN pairs; the default alias is the integration key's and is not named here."""
    value = r.json_object("routing_key_secrets", "alias to secret ARN") or {}
    label = r.label("routing_key_secrets")
    for alias, arn in value.items():
        if not isinstance(alias, str) or not ROUTING_ALIAS.match(alias):
            raise ConfigError(f"{label}: alias {alias!r} must be 1 to 64 letters, digits, '.', '_' or '-'")
        if alias == constants.DEFAULT_ROUTING_KEY_ALIAS:
            raise ConfigError(
                f"{label}: the {alias!r} routing key is the integration key "
                f"({r.naming.key('integration_key_secret_arn')}); name only the other aliases here"
            )
        if isinstance(arn, str) and Token.is_unresolved(arn):
            continue  # a secret of the same app: CloudFormation fills its ARN in at deploy
        if not isinstance(arn, str) or not SECRET_ARN.match(arn):
            raise ConfigError(f"{label}: {alias}={arn!r} is not a Secrets Manager secret ARN")
    return tuple(sorted(value.items()))


def _reconcile_role_arns(r: Reader) -> tuple[tuple[str, str], ...]:
    """Account id → role ARN pairs; each role must be in the account it is given for."""
    value = r.json_object("reconcile_role_arns", "account id to role ARN") or {}
    label = r.label("reconcile_role_arns")
    for account, arn in value.items():
        if not isinstance(account, str) or not ACCOUNT_ID.match(account):
            raise ConfigError(f"{label}: {account!r} is not a 12-digit AWS account id")
        match = ROLE_ARN.match(arn) if isinstance(arn, str) else None
        if match is None:
            raise ConfigError(f"{label}: {account}={arn!r} is not an IAM role ARN")
        if match.group("account") != account:
            raise ConfigError(f"{label}: the role {arn} is not in account {account}")
    return tuple(sorted(value.items()))


def _change_events(r: Reader) -> tuple[str, ...]:
    """``true``/``"*"`` → every stack; a list or comma-separated text → those stack-name globs."""
    value = r.raw("change_events")
    if value is None or value is False or (isinstance(value, str) and value.lower() == "false"):
        return ()
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return (ALL_STACKS,)
    if isinstance(value, str):
        value = _json_list(r, value) if value.startswith("[") else value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise r.fail("change_events", value, "must be true, '*', or a list of stack-name globs")
    globs = tuple(dict.fromkeys(item.strip() for item in value if item.strip()))
    for glob in globs:
        if not STACK_NAME_GLOB.match(glob):
            raise r.fail("change_events", glob, "is not a stack-name glob (letters, digits, '-' and '*')")
    return (ALL_STACKS,) if ALL_STACKS in globs else globs


def _webhook_service_ids(r: Reader) -> tuple[str, ...]:
    """A list, or comma-separated text, of PagerDuty service ids (letters and digits), sorted."""
    value = r.raw("webhook_service_ids")
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.startswith("[") else value.split(",")
        except ValueError:
            raise r.fail("webhook_service_ids", value, "is not a JSON list of PagerDuty service ids") from None
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise r.fail("webhook_service_ids", value, "must be a list of PagerDuty service ids")
    ids = tuple(sorted({item.strip() for item in value if item.strip()}))
    for ident in ids:
        if not PAGERDUTY_ID.match(ident):
            raise r.fail("webhook_service_ids", ident, "is not a PagerDuty service id (letters and digits)")
    return ids


def _json_list(r: Reader, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise r.fail("change_events", text, "is not a JSON list of stack-name globs") from None


def _check_combinations(values: dict[str, Any], naming: Naming) -> None:
    """Reject combinations that would only fail at deploy or run time."""
    key = naming.key
    if values["integration_key_secret_kms_key_arn"] and not values["integration_key_secret_arn"]:
        raise ConfigError(
            f"{key('integration_key_secret_kms_key_arn')} is only meaningful with {key('integration_key_secret_arn')}"
        )
    secret_region = arn_region(values["integration_key_secret_arn"])
    key_region = arn_region(values["integration_key_secret_kms_key_arn"])
    if secret_region and key_region and secret_region != key_region:
        raise ConfigError(
            f"{naming.label('integration_key_secret_kms_key_arn')}={values['integration_key_secret_kms_key_arn']!r} "
            f"is in {key_region}, the secret in {secret_region}: Secrets Manager encrypts a secret with a key of "
            "the secret's own region"
        )
    if values["webhook_secret_arn"] and not values["webhooks"]:
        raise ConfigError(f"{key('webhook_secret_arn')} is only meaningful with {key('webhooks')}")
    if values["webhook_service_ids"] and not values["webhooks"]:
        raise ConfigError(f"{key('webhook_service_ids')} is only meaningful with {key('webhooks')}")
    if values["reconcile_role_arns"] and not values["reconcile_minutes"]:
        raise ConfigError(
            f"{key('reconcile_role_arns')} needs scheduled reconciliation: {key('reconcile_minutes')} is 0"
        )
    if values["batch_size"] > _MAX_SQS_BATCH_SIZE_WITHOUT_WINDOW and values["max_batching_window_seconds"] == 0:
        raise ConfigError(f"{key('batch_size')} above 10 needs {key('max_batching_window_seconds')} of at least 1")
    if values["buffered"]:
        _check_buffered(values, naming)


def _check_buffered(values: dict[str, Any], naming: Naming) -> None:
    key = naming.key
    reserved = values["reserved_concurrency"]
    maximum = values["max_concurrency"]
    if reserved is not None and reserved < maximum:
        raise ConfigError(
            f"{key('max_concurrency')} ({maximum}) must not exceed {key('reserved_concurrency')} "
            f"({reserved}): the queue would be throttled by its own function"
        )
    # The schedule and change events invoke the same function out of the same reserved pool.
    sharing = [key(name) for name in ("reconcile_minutes", "change_events") if values[name]]
    if reserved is not None and reserved == maximum and sharing:
        raise ConfigError(
            f"{key('max_concurrency')} ({maximum}) must be below {key('reserved_concurrency')} ({reserved}) "
            f"while {' and '.join(sharing)} also invoke the function: they share its reserved concurrency, and "
            "the queue's batches would be throttled whenever they run"
        )
    timeout = FunctionTimeout(values["retry_budget_seconds"], values["batch_size"])
    if not timeout.fits:
        raise ConfigError(
            f"{naming.label('batch_size')}={values['batch_size']} cannot be processed within Lambda's limit: "
            f"{timeout.explain()}; use a {key('batch_size')} of at most {MAX_BATCH_SIZE}"
        )
