"""The alert rules document's schema: validated once at load (and at synth), errors naming rule and field.

Only loading a rules document imports this module (and pydantic): a function without alert rules
never pays for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.models import AlertSeverity, InsufficientDataAction
from pagerduty_bridge.rule_model import LinkSpec, Match, Pattern, Rule, check_template
from pagerduty_bridge.safejson import not_json
from pagerduty_bridge.seed.templates import SEED_TEMPLATE_NAMES


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def _pattern(value: Any) -> Pattern:
    if not isinstance(value, str):
        raise ValueError("must be a glob or 're:' regular expression string")
    return Pattern.of(value)


class MatchSpec(_Strict):
    # Patterns are compiled by the validators below (``Pattern.of``): typed ``Any`` so pydantic leaves
    # the compiled matcher alone.
    alarm_name: Any = None
    namespace: Any = None
    metric_name: Any = None
    dimensions: dict[str, Any] = Field(default_factory=dict)
    description_contains: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    kind: Literal["metric", "metric_math", "anomaly_detection", "composite"] | None = None

    @field_validator("alarm_name", "namespace", "metric_name", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return None if value is None else _pattern(value)

    @field_validator("dimensions", "tags", mode="before")
    @classmethod
    def _many(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("must be an object of name to pattern")
        return {str(k): _pattern(v) for k, v in value.items()}

    def build(self) -> Match:
        return Match(
            alarm_name=self.alarm_name,
            namespace=self.namespace,
            metric_name=self.metric_name,
            dimensions=dict(self.dimensions),
            description_contains=self.description_contains,
            tags=dict(self.tags),
            kind=self.kind,
        )


class LinkModel(_Strict):
    href: str = Field(pattern=r"^https?://")
    text: str | None = None


class RuleSpec(_Strict):
    """One rule as written in the document."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    match: MatchSpec = MatchSpec()
    severity: AlertSeverity | None = None
    routing_key: str | None = Field(
        default=None, min_length=1, max_length=c.MAX_ROUTING_KEY_ALIAS_LENGTH, description="routing key alias"
    )
    summary: str | None = None
    recommendations: tuple[str, ...] | None = None
    runbook_url: str | None = Field(default=None, pattern=r"^https?://")
    links: tuple[LinkModel, ...] = ()
    component: str | None = None
    group: str | None = None
    event_class: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] = Field(default_factory=dict)
    insufficient_data: InsufficientDataAction | None = None
    suppress: bool | None = None
    dedup_key: str | None = None
    template: str | None = None

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        if value is not None and value not in SEED_TEMPLATE_NAMES:
            raise ValueError(f"must be one of {', '.join(SEED_TEMPLATE_NAMES)}")
        return value

    @field_validator("custom_details")
    @classmethod
    def _details_are_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        # They go into every event the rule shapes: a YAML date would fail every matching alarm, a NaN
        # would be sent as a body PagerDuty refuses, nesting too deep to encode would fail every send.
        problem = _shape_problem(value) or not_json(value)
        if problem is None and len(json.dumps(value, ensure_ascii=False).encode()) > c.MAX_EVENT_BYTES:
            problem = f"too large: more than the {c.MAX_EVENT_BYTES // 1024} KB PagerDuty takes for a whole event"
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _templates_are_safe(self) -> RuleSpec:
        for field_name in ("summary", "dedup_key"):
            text = getattr(self, field_name)
            if text is not None:
                check_template(field_name, text)
        return self

    def build(self) -> Rule:
        return Rule(
            name=self.name,
            match=self.match.build(),
            severity=self.severity,
            routing_key=self.routing_key,
            summary=self.summary,
            recommendations=self.recommendations,
            runbook_url=self.runbook_url,
            links=tuple(LinkSpec(href=link.href, text=link.text) for link in self.links),
            component=self.component,
            group=self.group,
            event_class=self.event_class,
            custom_details=dict(self.custom_details),
            insufficient_data=self.insufficient_data,
            suppress=self.suppress,
            dedup_key=self.dedup_key,
            template=self.template,
        )


MAX_DETAILS_DEPTH: Final = 32
"""How deep a rule's custom details may nest. Far beyond what a responder reads, and far from Python's
recursion limit, which encoding an event deep inside the Lambda's stack would otherwise reach."""
MAX_DETAILS_VALUES: Final = 10_000
"""How many values a rule's custom details may hold: YAML aliases let a few lines hold millions, which
no event can carry (PagerDuty takes 512 KB) and which take seconds to walk."""


def _shape_problem(value: Any) -> str | None:
    """Too deep or too many values, found without recursion and without walking past the limits. A
    container inside itself (a YAML alias) is not followed: ``not_json`` names it."""
    pending: list[tuple[Any, tuple[int, ...]]] = [(value, ())]
    count = 0
    while pending:
        item, within = pending.pop()
        count += 1
        if count > MAX_DETAILS_VALUES:
            return f"too large: more than {MAX_DETAILS_VALUES} values"
        if isinstance(item, dict | list | tuple) and id(item) not in within:
            if len(within) >= MAX_DETAILS_DEPTH:
                return f"nested deeper than {MAX_DETAILS_DEPTH} levels"
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, (*within, id(item))) for child in children)
    return None


class RulesDocument(_Strict):
    rules: tuple[RuleSpec, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> RulesDocument:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


def rules_from_document(data: Any, where: str) -> tuple[Rule, ...]:
    """The rules of a decoded document (a ``{"rules": [...]}`` object or the list itself)."""
    if isinstance(data, list):
        data = {"rules": data}
    try:
        document = RulesDocument.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: {describe(exc, data)}") from None
    return tuple(spec.build() for spec in document.rules)


def describe(exc: ValidationError, data: Any) -> str:
    """One clause per problem, naming the rule (by name and position) and the field."""
    rules = data.get("rules") if isinstance(data, Mapping) else None
    problems = []
    for error in exc.errors():
        location = list(error["loc"])
        prefix = ""
        if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
            index = location[1]
            entry = rules[index] if isinstance(rules, list) and index < len(rules) else None
            name = entry.get("name") if isinstance(entry, Mapping) else None
            prefix = f"rule {name!r} (#{index + 1})" if name else f"rule #{index + 1}"
            location = location[2:]
        field = ".".join(str(part) for part in location)
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{prefix}{' field ' if prefix and field else ''}{field}: {message}".strip())
    return "; ".join(problems)
