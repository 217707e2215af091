"""Alert rules: how each alarm pages — severity, routing, summary, links, suppression — declared once.

A rules document (JSON, or YAML where PyYAML is installed) holds an ordered list of rules. Each rule
has a ``match`` (every condition given must hold) and what to set. Precedence, highest first:

1. the alarm's own say: its tags ``pagerduty:severity``, ``pagerduty:routing``, ``pagerduty:suppress``,
   ``pagerduty:runbook`` (when CloudWatch propagates tags into the notification);
2. the first rule in the file whose ``match`` holds;
3. the built-in rules reproducing the seed's three templates (high failure rate, high latency, cost);
4. the settings' defaults (``DEFAULT_SEVERITY``, routing alias ``default``).

Fields a rule leaves out fall through to the next level. An invalid document fails at start with an
error naming the rule and the field.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.models import AlarmNotification, AlertSeverity
from pagerduty_bridge.settings import InsufficientDataAction

TAG_PREFIX = "pagerduty:"
_SEVERITY_VALUES = frozenset(s.value for s in AlertSeverity)
SEED_TEMPLATE_NAMES = ("high-failure-rate", "high-latency", "cost-threshold")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Pattern(_Strict):
    """A glob (``checkout-*``) or, prefixed with ``re:``, a regular expression matched in full."""

    text: str

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        if self.text.startswith("re:"):
            return re.compile(self.text[3:])
        return re.compile(fnmatch.translate(self.text))

    def matches(self, value: str | None) -> bool:
        return value is not None and self._regex.fullmatch(value) is not None


def _pattern(value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("re:"):
            try:
                re.compile(value[3:])
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value[3:]!r}: {exc}") from None
        return Pattern(text=value)
    return value


class Match(_Strict):
    alarm_name: Pattern | None = None
    namespace: Pattern | None = None
    metric_name: Pattern | None = None
    dimensions: dict[str, Pattern] = Field(default_factory=dict)
    description_contains: str | None = None
    """A marker in the alarm description, e.g. ``[team:payments]``."""
    tags: dict[str, Pattern] = Field(default_factory=dict)
    kind: Literal["metric", "metric_math", "anomaly_detection", "composite"] | None = None

    @field_validator("alarm_name", "namespace", "metric_name", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return _pattern(value)

    @field_validator("dimensions", "tags", mode="before")
    @classmethod
    def _many(cls, value: Any) -> Any:
        return {k: _pattern(v) for k, v in value.items()} if isinstance(value, Mapping) else value

    def matches(self, alarm: AlarmNotification) -> bool:
        """Every condition given holds; cheapest first, so most rules are rejected by the name alone."""
        if self.alarm_name is not None and not self.alarm_name.matches(alarm.alarm_name):
            return False
        if self.kind is not None and self.kind != alarm.kind.value:
            return False
        if self.description_contains is not None and self.description_contains not in (alarm.description or ""):
            return False
        if any(not p.matches(alarm.tags.get(k)) for k, p in self.tags.items()):
            return False
        if self.namespace is not None:
            namespaces = {alarm.namespace, *(m.namespace for m in alarm.metrics)} - {None}
            if not any(self.namespace.matches(n) for n in namespaces):
                return False
        if self.metric_name is not None:
            metric_names = {alarm.metric_name, *(m.metric_name for m in alarm.metrics)} - {None}
            if not any(self.metric_name.matches(n) for n in metric_names):
                return False
        if self.dimensions:
            dimensions = dict(alarm.dimensions)
            for metric in alarm.metrics:
                for name, value in metric.dimensions.items():
                    dimensions.setdefault(name, value)
            return all(p.matches(dimensions.get(k)) for k, p in self.dimensions.items())
        return True


class LinkSpec(_Strict):
    href: str = Field(pattern=r"^https?://")
    text: str | None = None


class Rule(_Strict):
    """One rule: what to match and what to set. Omitted fields fall through (see module docs)."""

    name: str = Field(min_length=1)
    match: Match = Match()
    severity: AlertSeverity | None = None
    routing_key: str | None = Field(default=None, min_length=1, description="routing key alias")
    summary: str | None = None
    """A template: ``{alarm_name}``, ``{metric_name}``, ``{current_value}``, ``{threshold}``,
    ``{comparison}``, ``{state}``, ``{environment}``, ``{resource}``, ``{region}``, ``{account}``."""
    recommendations: tuple[str, ...] | None = None
    runbook_url: str | None = Field(default=None, pattern=r"^https?://")
    links: tuple[LinkSpec, ...] = ()
    component: str | None = None
    group: str | None = None
    event_class: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] = Field(default_factory=dict)
    insufficient_data: InsufficientDataAction | None = None
    suppress: bool | None = None
    dedup_key: str | None = None
    """A template like ``summary``; the key must stay the same between ALARM and OK."""
    template: Literal["high-failure-rate", "high-latency", "cost-threshold"] | None = None
    """Use one of the seed's payload templates."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("severity", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _templates_are_well_formed(self) -> Rule:
        for field_name in ("summary", "dedup_key"):
            text = getattr(self, field_name)
            if text is not None:
                unknown = set(re.findall(r"{(\w*)[^}]*}", text)) - set(TEMPLATE_FIELDS)
                if unknown:
                    raise ValueError(f"{field_name} uses unknown placeholders: {', '.join(sorted(unknown))}")
        return self


TEMPLATE_FIELDS = (
    "alarm_name",
    "metric_name",
    "current_value",
    "threshold",
    "comparison",
    "state",
    "environment",
    "resource",
    "region",
    "account",
    "namespace",
)


class RulesDocument(_Strict):
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> RulesDocument:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


class Resolved(_Strict):
    """What applies to one alarm after precedence: the matched rule's name and every setting."""

    rule: str | None = None
    severity: AlertSeverity
    routing_key: str
    summary: str | None = None
    recommendations: tuple[str, ...] = ()
    runbook_url: str | None = None
    links: tuple[LinkSpec, ...] = ()
    component: str | None = None
    group: str | None = None
    event_class: str | None = None
    custom_details: dict[str, Any] = Field(default_factory=dict)
    insufficient_data: InsufficientDataAction | None = None
    suppress: bool = False
    dedup_key: str | None = None
    template: str | None = None


def builtin_rules(component: str) -> tuple[Rule, ...]:
    """The seed's three templates as rules: ``{env}-{component}-{template}`` alarms use them."""
    return tuple(
        Rule(name=f"seed-{name}", match=Match(alarm_name=Pattern(text=f"*-{component}-{name}")), template=name)
        for name in SEED_TEMPLATE_NAMES
    )


class AlertRules:
    """The ordered rules (user rules, then built-ins) and the precedence that resolves one alarm."""

    def __init__(self, rules: Sequence[Rule] = (), *, component: str = "hybrid-routing") -> None:
        self.rules = tuple(rules)
        self.all_rules = self.rules + builtin_rules(component)

    def first_match(self, alarm: AlarmNotification) -> Rule | None:
        return next((rule for rule in self.all_rules if rule.match.matches(alarm)), None)

    def resolve(self, alarm: AlarmNotification, *, default_severity: AlertSeverity, default_routing: str) -> Resolved:
        rule = self.first_match(alarm)
        values: dict[str, Any] = {"severity": default_severity, "routing_key": default_routing}
        if rule is not None:
            values["rule"] = rule.name
            for name in Resolved.model_fields:
                value = getattr(rule, name, None)
                if name in ("rule", "links", "custom_details") or value is None:
                    continue
                values[name] = value
            values["links"] = rule.links
            values["custom_details"] = dict(rule.custom_details)
        values.update(_alarm_overrides(alarm))
        return Resolved(**values)


def _alarm_overrides(alarm: AlarmNotification) -> dict[str, Any]:
    """What the alarm says about itself through its tags (invalid values are ignored, not fatal)."""
    tags = {k[len(TAG_PREFIX) :]: v for k, v in alarm.tags.items() if k.startswith(TAG_PREFIX)}
    overrides: dict[str, Any] = {}
    severity = tags.get("severity", "").strip().lower()
    if severity in _SEVERITY_VALUES:
        overrides["severity"] = AlertSeverity(severity)
    if tags.get("routing", "").strip():
        overrides["routing_key"] = tags["routing"].strip()
    if tags.get("suppress", "").strip().lower() in ("true", "yes", "1"):
        overrides["suppress"] = True
    if tags.get("runbook", "").startswith(("https://", "http://")):
        overrides["runbook_url"] = tags["runbook"]
    return overrides


def parse_rules(text: str, *, where: str, component: str = "hybrid-routing") -> AlertRules:
    """Parse and validate a rules document; errors name the rule (by name or position) and field."""
    data = decode_document(text, where)
    if isinstance(data, list):
        data = {"rules": data}
    try:
        document = RulesDocument.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: {_describe(exc, data)}") from None
    return AlertRules(document.rules, component=component)


def decode_document(text: str, where: str, *, yaml: bool | None = None) -> Any:
    """The decoded rules document: JSON, or YAML (``yaml`` forces one; by default the first character
    decides). Empty text is an empty document; errors name ``where``."""
    stripped = text.strip()
    if not stripped:
        return {"rules": []}
    if not yaml and (yaml is False or stripped[0] in "[{"):
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ConfigurationError(f"{where}: not valid JSON ({exc})") from None
    try:
        import yaml as pyyaml
    except ImportError:
        raise ConfigurationError(f"{where}: YAML rules need PyYAML; write them as JSON instead") from None
    try:
        return pyyaml.safe_load(stripped)
    except pyyaml.YAMLError as exc:
        raise ConfigurationError(f"{where}: not valid YAML ({exc})") from None


def _describe(exc: ValidationError, data: Any) -> str:
    rules = data.get("rules") if isinstance(data, Mapping) else None
    problems = []
    for error in exc.errors():
        location = list(error["loc"])
        prefix = ""
        if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
            index = location[1]
            name = rules[index].get("name") if isinstance(rules, list) and isinstance(rules[index], Mapping) else None
            prefix = f"rule {name!r} (#{index + 1})" if name else f"rule #{index + 1}"
            location = location[2:]
        field = ".".join(str(part) for part in location)
        problems.append(f"{prefix}{' field ' if prefix and field else ''}{field}: {error['msg']}".strip())
    return "; ".join(problems)
