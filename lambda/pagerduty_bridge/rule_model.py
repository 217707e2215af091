"""What one alert rule is: its patterns, its match, what it sets — and the safety checks on each.

Rules are data an operator writes and the bridge runs on every alarm, so nothing in them may hang or
bloat the function: globs are translated by ``fnmatch`` (linear: no nested quantifiers), regular
expressions (``re:…``) run on RE2, which matches in linear time whatever the pattern (a pattern RE2
cannot compile, e.g. one with a backreference, is refused at load and at synth); templates may use only
the documented placeholders, with no attribute or index access, no format width beyond the field's
limit and only formats text takes (every value is text); a ``dedup_key`` template may not depend on
what can differ between ALARM and OK.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pagerduty_bridge import constants as c
from pagerduty_bridge.models import AlarmNotification, AlertSeverity, InsufficientDataAction

TEMPLATE_FIELDS: Final = (
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
"""What summary and dedup-key templates may use (``rendering.template_values`` fills them)."""
STATE_DEPENDENT_FIELDS: Final = frozenset({"state", "current_value", "comparison", "threshold"})
"""Placeholders whose value can differ between an alarm's ALARM and its OK: a dedup key built from them
would make the OK resolve another key than the one its ALARM opened. ``threshold`` changes when the
alarm is retuned while in ALARM, and EventBridge carries it only in reason data, which not every state
change has (then it reads ``?``). The alarm's other settings (period, evaluation periods, statistic,
unit) are no template fields."""
TEMPLATE_LIMITS: Final = {"summary": c.MAX_SUMMARY_LENGTH, "dedup_key": c.MAX_DEDUP_KEY_LENGTH}
"""No width or precision in a template may exceed what PagerDuty keeps of the field."""
_SPEC_NUMBER: Final = re.compile(r"\d+")
_CONVERSIONS: Final = frozenset({"s", "r", "a"})
"""``str.format``'s conversions; any other raises when the template is rendered."""

Matcher = Callable[[str], bool]


def _re2_matcher(expression: str) -> Matcher:
    """A full-match test by RE2 (linear time); ``ValueError`` for a pattern RE2 cannot compile."""
    try:
        import re2
    except ImportError:  # pragma: no cover - google-re2 is a runtime dependency
        raise ValueError("regular expressions need the google-re2 package") from None
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(expression, options)
    except re2.error as exc:
        message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"invalid regular expression {expression!r} (RE2: {message})") from None
    return lambda value: compiled.fullmatch(value) is not None


def glob_matcher(glob: str) -> Matcher:
    """A full-match test by ``fnmatch``'s translation (linear: no nested quantifiers); silences use it too."""
    compiled = re.compile(fnmatch.translate(glob))
    return lambda value: compiled.match(value) is not None


@dataclass(frozen=True, slots=True)
class Pattern:
    """A glob (``checkout-*``) or, prefixed with ``re:``, a regular expression matched in full."""

    text: str
    _matcher: Matcher = field(compare=False, repr=False)

    @classmethod
    def of(cls, text: str) -> Pattern:
        """Compile ``text``; ``ValueError`` naming the pattern when it cannot be used."""
        if text.startswith("re:"):
            return cls(text, _re2_matcher(text[3:]))
        return cls(text, glob_matcher(text))

    def matches(self, value: str | None) -> bool:
        return value is not None and self._matcher(value)


@dataclass(frozen=True, slots=True)
class Match:
    """The conditions of a rule; every condition given must hold."""

    alarm_name: Pattern | None = None
    namespace: Pattern | None = None
    metric_name: Pattern | None = None
    dimensions: dict[str, Pattern] = field(default_factory=dict)
    description_contains: str | None = None
    """A marker in the alarm description, e.g. ``[team:payments]``."""
    tags: dict[str, Pattern] = field(default_factory=dict)
    kind: str | None = None

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
        if self.namespace is not None and not _any_matches(self.namespace, _namespaces(alarm)):
            return False
        if self.metric_name is not None and not _any_matches(self.metric_name, _metric_names(alarm)):
            return False
        if self.dimensions:
            dimensions = all_dimensions(alarm)
            return all(p.matches(dimensions.get(k)) for k, p in self.dimensions.items())
        return True


def _any_matches(pattern: Pattern, values: set[str]) -> bool:
    return any(pattern.matches(value) for value in values)


def _namespaces(alarm: AlarmNotification) -> set[str]:
    return {n for n in (alarm.namespace, *(m.namespace for m in alarm.metrics)) if n is not None}


def _metric_names(alarm: AlarmNotification) -> set[str]:
    return {n for n in (alarm.metric_name, *(m.metric_name for m in alarm.metrics)) if n is not None}


def all_dimensions(alarm: AlarmNotification) -> dict[str, str]:
    """The alarm's dimensions, and those of its metric queries (the alarm's own win)."""
    dimensions = dict(alarm.dimensions)
    for metric in alarm.metrics:
        for name, value in metric.dimensions.items():
            dimensions.setdefault(name, value)
    return dimensions


@dataclass(frozen=True, slots=True)
class LinkSpec:
    href: str
    text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One rule: what to match and what to set. Omitted fields fall through to the next level."""

    name: str
    match: Match = field(default_factory=Match)
    severity: AlertSeverity | None = None
    routing_key: str | None = None
    """A routing-key alias."""
    summary: str | None = None
    recommendations: tuple[str, ...] | None = None
    runbook_url: str | None = None
    links: tuple[LinkSpec, ...] = ()
    component: str | None = None
    group: str | None = None
    event_class: str | None = None
    custom_details: dict[str, Any] = field(default_factory=dict)
    insufficient_data: InsufficientDataAction | None = None
    suppress: bool | None = None
    dedup_key: str | None = None
    template: str | None = None
    """One of the seed's payload templates."""


def check_template(field_name: str, text: str) -> str:
    """``text`` when it is a safe template for ``field_name`` (``summary`` or ``dedup_key``), else a
    ``ValueError`` saying what is wrong."""
    limit = TEMPLATE_LIMITS[field_name]
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{field_name} is not a valid template ({exc})") from None
    used: set[str] = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        _check_placeholder(field_name, name, spec or "", conversion, limit)
        used.add(name)
    if field_name == "dedup_key" and used & STATE_DEPENDENT_FIELDS:
        changing = ", ".join(sorted(used & STATE_DEPENDENT_FIELDS))
        raise ValueError(
            f"dedup_key may not use {changing}: it can differ between an alarm's ALARM and its OK, so the OK "
            "would resolve another key than the one its ALARM opened"
        )
    return text


def _check_placeholder(field_name: str, name: str, spec: str, conversion: str | None, limit: int) -> None:
    if name not in TEMPLATE_FIELDS:
        if not name or any(mark in name for mark in ".["):
            raise ValueError(f"{field_name} placeholder {{{name}}} must be a plain field name")
        raise ValueError(f"{field_name} uses unknown placeholders: {name}")
    if conversion is not None and conversion not in _CONVERSIONS:
        raise ValueError(f"{field_name} placeholder {{{name}!{conversion}}} has an unknown conversion (!s, !r or !a)")
    if "{" in spec:
        raise ValueError(f"{field_name} placeholder {{{name}}} may not nest placeholders in its format")
    widest = max((int(n) if len(n) <= len(str(limit)) else limit + 1 for n in _SPEC_NUMBER.findall(spec)), default=0)
    if widest > limit:
        raise ValueError(
            f"{field_name} placeholder {{{name}:{spec}}} asks for more than {limit} characters, the most "
            f"PagerDuty keeps of {field_name}"
        )
    try:
        # Every value a template gets is text (``rendering.template_values``): a format only numbers
        # take (``d``, ``,``, ``=`` alignment) would fail on every alarm the rule matches.
        format("", spec)
    except ValueError as exc:
        raise ValueError(f"{field_name} placeholder {{{name}:{spec}}} cannot format text ({exc})") from None
