"""Alert rules: how each alarm pages — severity, routing, summary, links, suppression — declared once.

A rules document (JSON, or YAML where PyYAML is installed) holds an ordered list of rules. Each rule
has a ``match`` (every condition given must hold) and what to set. Precedence, highest first:

1. the alarm's own say: its tags ``pagerduty:severity``, ``pagerduty:routing``, ``pagerduty:suppress``,
   ``pagerduty:runbook`` (when CloudWatch propagates tags into the notification);
2. the first rule in the file whose ``match`` holds;
3. the built-in rules reproducing the seed's three templates (high failure rate, high latency, cost);
4. the settings' defaults (``DEFAULT_SEVERITY``, routing alias ``default``).

Fields a rule leaves out fall through to the next level; a seed template, which decides the whole page,
falls through to a user rule only when that rule says nothing about the page itself. An invalid document fails at start with an
error naming the rule and the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Final

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.models import AlarmNotification, AlertSeverity, InsufficientDataAction
from pagerduty_bridge.rule_model import LinkSpec, Match, Pattern, Rule
from pagerduty_bridge.safejson import BYTE_ORDER_MARK
from pagerduty_bridge.seed.templates import SEED_TEMPLATE_NAMES
from pagerduty_bridge.settings import Settings

TAG_PREFIX: Final = "pagerduty:"
_TRUE_WORDS: Final = ("true", "yes", "1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
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
    custom_details: dict[str, Any] = field(default_factory=dict)
    insufficient_data: InsufficientDataAction | None = None
    suppress: bool = False
    dedup_key: str | None = None
    template: str | None = None


_INHERITED: Final = (
    "severity",
    "routing_key",
    "summary",
    "recommendations",
    "runbook_url",
    "component",
    "group",
    "event_class",
    "insufficient_data",
    "suppress",
    "dedup_key",
    "template",
)
"""The fields a matching rule sets when it gives them (links and details always come from it)."""

_PAGE_FIELDS: Final = (
    "severity",
    "summary",
    "recommendations",
    "runbook_url",
    "links",
    "component",
    "group",
    "event_class",
    "custom_details",
)
"""What a rule may say about the page itself. A seed template decides all of these, so it falls through
only to a rule that gives none of them (one that only routes, keys or suppresses an alarm, say)."""


def builtin_rules(component: str) -> tuple[Rule, ...]:
    """The seed's three templates as rules: ``{env}-{component}-{template}`` alarms use them, an
    environment of one character at least (``?*``), as the template reads it from the name: else the
    page would name the configured environment, and another alarm."""
    return tuple(
        Rule(name=f"seed-{name}", match=Match(alarm_name=Pattern.of(f"?*-{component}-{name}")), template=name)
        for name in SEED_TEMPLATE_NAMES
    )


class AlertRules:
    """The ordered rules (user rules, then built-ins) and the precedence that resolves one alarm."""

    def __init__(self, rules: Sequence[Rule] = (), *, component: str = "hybrid-routing") -> None:
        self.rules = tuple(rules)
        self.builtins = builtin_rules(component)
        self.all_rules = self.rules + self.builtins

    def first_match(self, alarm: AlarmNotification) -> Rule | None:
        return next((rule for rule in self.all_rules if rule.match.matches(alarm)), None)

    def resolve(
        self,
        alarm: AlarmNotification,
        *,
        default_severity: AlertSeverity,
        default_routing: str = c.DEFAULT_ROUTING_KEY_ALIAS,
    ) -> Resolved:
        rule = self.first_match(alarm)
        values: dict[str, Any] = {"severity": default_severity, "routing_key": default_routing}
        if rule is not None:
            values["rule"] = rule.name
            values["template"] = self._template_beneath(alarm, rule)
            values.update({name: value for name in _INHERITED if (value := getattr(rule, name)) is not None})
            values["links"] = rule.links
            values["custom_details"] = dict(rule.custom_details)
        values.update(_alarm_overrides(alarm))
        return Resolved(**values)

    def _template_beneath(self, alarm: AlarmNotification, rule: Rule) -> str | None:
        """The seed template of the built-in rule beneath ``rule`` when ``rule`` leaves the page to it:
        a field a rule leaves out falls through, and a seed alarm's template is its built-in rule's."""
        if any(getattr(rule, name) for name in _PAGE_FIELDS):
            return None
        beneath = next((builtin for builtin in self.builtins if builtin.match.matches(alarm)), None)
        return beneath.template if beneath is not None else None

    def routing_aliases(self) -> set[str]:
        """Every routing alias a user rule routes to."""
        return {rule.routing_key for rule in self.rules if rule.routing_key}


def _alarm_overrides(alarm: AlarmNotification) -> dict[str, Any]:
    """What the alarm says about itself through its tags (invalid values are ignored, not fatal)."""
    if not alarm.tags:
        return {}
    tags = {k[len(TAG_PREFIX) :]: v for k, v in alarm.tags.items() if k.startswith(TAG_PREFIX)}
    overrides: dict[str, Any] = {}
    if "severity" in tags:
        with suppress(ValueError):  # AlertSeverity reads any case itself
            overrides["severity"] = AlertSeverity(tags["severity"].strip())
    if tags.get("routing", "").strip():
        overrides["routing_key"] = tags["routing"].strip()
    if tags.get("suppress", "").strip().lower() in _TRUE_WORDS:
        overrides["suppress"] = True
    if tags.get("runbook", "").startswith(("https://", "http://")):
        overrides["runbook_url"] = tags["runbook"]
    return overrides


def parse_rules(text: str, *, where: str, component: str = "hybrid-routing") -> AlertRules:
    """Parse and validate a rules document; errors name the rule (by name or position) and field."""
    from pagerduty_bridge.rules_schema import rules_from_document

    return AlertRules(rules_from_document(decode_document(text, where), where), component=component)


def load_rules(settings: Settings) -> AlertRules:
    """The configured alert rules (inline wins over the file); none configured: the built-ins only."""
    component = settings.event_defaults.component
    if settings.alert_rules:
        return parse_rules(settings.alert_rules, where=c.ENV_ALERT_RULES, component=component)
    if settings.alert_rules_file:
        return read_rules_file(settings.alert_rules_file, component=component, setting=c.ENV_ALERT_RULES_FILE)
    return AlertRules(component=component)


def read_rules_file(path: str | PathLike[str], *, component: str, setting: str | None = None) -> AlertRules:
    """A rules file's rules, validated; errors name the file (and the ``setting`` that gave it)."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{setting + ': ' if setting else ''}cannot read {path} ({exc})") from None
    return parse_rules(text, where=str(path), component=component)


def decode_document(text: str, where: str, *, yaml: bool | None = None) -> Any:
    """The decoded rules document: JSON, or YAML (``yaml`` forces one; by default the first character
    decides). Empty text is an empty document; errors name ``where``."""
    stripped = text.removeprefix(BYTE_ORDER_MARK).strip()
    if not stripped:
        return {"rules": []}
    if not yaml and (yaml is False or stripped[0] in "[{"):
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ConfigurationError(f"{where}: not valid JSON ({exc})") from None
        except RecursionError:
            raise ConfigurationError(f"{where}: nested too deeply to be a rules document") from None
    try:
        import yaml as pyyaml
    except ImportError:
        raise ConfigurationError(f"{where}: YAML rules need PyYAML; write them as JSON instead") from None
    try:
        return pyyaml.safe_load(stripped)
    except (pyyaml.YAMLError, ValueError, TypeError) as exc:
        # PyYAML's constructors raise bare ValueErrors for a value its tag cannot take (``2024-02-30``,
        # ``!!float high``, an integer beyond Python's 4300 digits): still the document's fault.
        raise ConfigurationError(f"{where}: not valid YAML ({exc})") from None
    except RecursionError:
        raise ConfigurationError(f"{where}: nested too deeply to be a rules document") from None
