"""Alarms that an alert rule pages (or resolves) on INSUFFICIENT_DATA, wired without that state.

``insufficient_data: trigger`` in a rule means "a host that stops reporting must page"; but
``bridge.page(alarm)`` and ``PageOnAlarms`` wire ALARM and OK only unless told, and CloudWatch tells the
bridge nothing of a state the alarm has no action for: the silent host pages nobody. The synth knows
the rules and the alarms, so it reports each alarm a rule acting on INSUFFICIENT_DATA certainly matches
(its name and the other fields the rule matches on are literals of the app) and that is wired without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jsii
from aws_cdk import Annotations, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from constructs import IConstruct, IValidation

from pagerduty_bridge.models import InsufficientDataAction
from pagerduty_bridge.rule_model import Match, Pattern, Rule
from pagerduty_bridge.rules import AlertRules
from pagerduty_bridge_cdk.wiring import HALF_WIRED_WARNING_ID, AnyAlarm, actions_of, alarms_in, is_within

Known = bool | None
"""Whether a condition holds: True, False, or None when the app does not say (a token, a tag)."""


@dataclass(frozen=True)
class AlarmFacts:
    """What the app says of an alarm, as a rule matches it; None where only deploy knows."""

    name: str | None
    kind: str | None
    namespace: str | None
    metric_name: str | None
    description: str | None
    description_known: bool
    dimensions: dict[str, str] | None


def _literal(value: Any) -> str | None:
    return value if isinstance(value, str) and not Token.is_unresolved(value) else None


def _field(dimension: Any, name: str) -> Any:
    """A field of a dimension: a ``DimensionProperty``, or the plain object an L2 alarm renders."""
    return dimension.get(name) if isinstance(dimension, dict) else getattr(dimension, name, None)


def _dimensions(resource: cloudwatch.CfnAlarm) -> dict[str, str] | None:
    value = resource._cfn_properties.get("dimensions")
    if value is None:
        return {}
    if Token.is_unresolved(value) or not isinstance(value, list):
        return None
    pairs = [(_literal(_field(d, "name")), _literal(_field(d, "value"))) for d in value]
    return None if any(k is None or v is None for k, v in pairs) else {str(k): str(v) for k, v in pairs}


def facts_of(alarm: AnyAlarm) -> AlarmFacts | None:
    """The facts of ``alarm`` from its CloudFormation resource, or None when it has none."""
    resource = alarm.node.default_child if isinstance(alarm, cloudwatch.AlarmBase) else alarm
    description = getattr(resource, "alarm_description", None)
    name, text = _literal(getattr(resource, "alarm_name", None)), _literal(description)
    known = description is None or text is not None
    if isinstance(resource, cloudwatch.CfnCompositeAlarm):
        return AlarmFacts(name, "composite", None, None, text, known, {})
    if not isinstance(resource, cloudwatch.CfnAlarm):
        return None
    metric_name = _literal(resource.metric_name)
    kind = "metric" if metric_name is not None else None
    dimensions = _dimensions(resource) if metric_name is not None else None
    return AlarmFacts(name, kind, _literal(resource.namespace), metric_name, text, known, dimensions)


def _holds(pattern: Pattern | None, value: str | None, *, known: bool) -> Known:
    if pattern is None:
        return True
    return pattern.matches(value) if known else None


def _all(conditions: list[Known]) -> Known:
    return False if False in conditions else (None if None in conditions else True)


def matches(match: Match, facts: AlarmFacts) -> Known:
    """Whether ``match`` holds for the alarm: True, False, or None when the app cannot tell."""
    composite = facts.kind == "composite"
    conditions: list[Known] = [
        _holds(match.alarm_name, facts.name, known=facts.name is not None),
        True if match.kind is None else (None if facts.kind is None else match.kind == facts.kind),
        True
        if match.description_contains is None
        else (match.description_contains in (facts.description or "") if facts.description_known else None),
        True if not match.tags else None,
        _holds(match.namespace, facts.namespace, known=composite or facts.namespace is not None),
        _holds(match.metric_name, facts.metric_name, known=composite or facts.metric_name is not None),
    ]
    if match.dimensions:
        dims = facts.dimensions
        conditions += [None] if dims is None else [p.matches(dims.get(k)) for k, p in match.dimensions.items()]
    return _all(conditions)


def rule_for(rules: AlertRules, facts: AlarmFacts) -> Rule | None:
    """The rule that certainly resolves the alarm (the first that matches), or None if none does or the
    app cannot tell which."""
    for rule in rules.all_rules:
        held = matches(rule.match, facts)
        if held is None:
            return None
        if held:
            return rule
    return None


ACTING: dict[InsufficientDataAction, str] = {
    InsufficientDataAction.TRIGGER: "pages on INSUFFICIENT_DATA, so missing data pages nobody",
    InsufficientDataAction.RESOLVE: "resolves on INSUFFICIENT_DATA, so its incidents stay open until reconciled",
}


def unheard_missing_data(
    root: IConstruct, topic: sns.ITopic, rules: AlertRules, *, skip: IConstruct
) -> list[tuple[AnyAlarm, Rule]]:
    """(alarm, rule) for each alarm under ``root`` (but not ``skip``) paging through ``topic`` whose rule
    acts on INSUFFICIENT_DATA while the alarm does not send it to ``topic``."""
    found: list[tuple[AnyAlarm, Rule]] = []
    for alarm in alarms_in(root):
        alarm_actions, missing = actions_of(alarm, "alarm"), actions_of(alarm, "insufficient_data")
        if is_within(alarm, skip) or alarm_actions is None or missing is None:
            continue
        if topic.topic_arn not in alarm_actions or topic.topic_arn in missing:
            continue
        facts = facts_of(alarm)
        rule = None if facts is None else rule_for(rules, facts)
        if rule is not None and rule.insufficient_data in ACTING:
            found.append((alarm, rule))
    return found


@jsii.implements(IValidation)
class MissingDataCheck:
    """A validation of the bridge: reports each alarm of the app whose alert rule acts on
    INSUFFICIENT_DATA but that does not tell the bridge INSUFFICIENT_DATA, as a half-wired alarm is
    reported (an error, or a warning with ``half_wired_alarms="warn"``)."""

    def __init__(
        self, bridge: IConstruct, topic: sns.ITopic, rules: AlertRules, *, severity: Literal["error", "warn"]
    ) -> None:
        self._bridge = bridge
        self._topic = topic
        self._rules = rules
        self._severity = severity

    def validate(self) -> list[str]:
        """Annotate the alarms; the annotations are the report."""
        for alarm, rule in unheard_missing_data(self._bridge.node.root, self._topic, self._rules, skip=self._bridge):
            action = rule.insufficient_data
            message = (
                f"alarm {alarm.node.path} is matched by the alert rule {rule.name!r}, which "
                f"{ACTING[action] if action is not None else ''}: the alarm does not tell "
                f"{self._bridge.node.path} INSUFFICIENT_DATA. Wire it with bridge.page(alarm, "
                "insufficient_data=True) or PageOnAlarms(bridge, insufficient_data=True), or add the bridge "
                "topic to its InsufficientDataActions."
            )
            if self._severity == "warn":
                Annotations.of(alarm).add_warning_v2(HALF_WIRED_WARNING_ID, message)
            else:
                Annotations.of(alarm).add_error(message)
        return []
