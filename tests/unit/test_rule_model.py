"""Patterns and templates in alert rules: what an operator may write, and what is refused at load.

Rules run on every alarm, so a pattern must match in linear time (``re:`` runs on RE2; a pattern RE2
cannot compile is refused) and a template must render for every alarm, within what PagerDuty keeps.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagerduty_bridge import constants as c
from pagerduty_bridge.rule_model import STATE_DEPENDENT_FIELDS, TEMPLATE_FIELDS, Pattern, check_template

QUICKLY = 2.0
"""A loose bound for what takes microseconds: machines running these tests are shared."""

# --- Pattern.of: globs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "value", "matches"),
    [
        ("checkout-*", "checkout-api-latency", True),
        ("checkout-*", "checkout-", True),
        ("checkout-*", "web-checkout-api", False),
        ("*-critical", "payments-critical", True),
        ("*-critical", "payments-critical-2", False),
        ("db-?", "db-1", True),
        ("db-?", "db-12", False),
        ("db-[ab]", "db-b", True),
        ("db-[!ab]", "db-b", False),
        ("*", "", True),
        ("exact", "exact", True),
        ("exact", "Exact", False),
        ("a.b", "axb", False),
        ("(a+)+$", "(a+)+$", True),
        ("(a+)+$", "aaaa", False),
    ],
)
def test_a_glob_matches_the_whole_value_literally_but_for_its_wildcards(glob: str, value: str, matches: bool) -> None:
    assert Pattern.of(glob).matches(value) is matches


def test_nothing_matches_a_missing_value() -> None:
    assert not Pattern.of("*").matches(None)
    assert not Pattern.of("re:.*").matches(None)


def test_a_glob_with_many_stars_on_a_long_name_is_quick() -> None:
    pattern = Pattern.of("*a*a*a*a*a*a*a*a*a*a*a*a*b")
    started = time.monotonic()
    assert not pattern.matches("a" * 5_000)
    assert time.monotonic() - started < QUICKLY


# --- Pattern.of: regular expressions on RE2 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value", "matches"),
    [
        ("re:payments-.*", "payments-api-latency", True),
        ("re:payments-.*", "web-payments-api", False),
        ("re:abc", "abcd", False),
        ("re:(?i)CPU.*", "cpu-high", True),
        ("re:[a-z]+-\\d{2,3}", "web-101", True),
        ("re:[a-z]+-\\d{2,3}", "web-1", False),
        ("re:(a+)+$", "a" * 30, True),
        ("re:(a+)+$", "a" * 29 + "!", False),
        ("re:([a-z0-9]+-?)+-critical", "paymentsapigateway-latencyp99", False),
        ("re:([a-z0-9]+-?)+-critical", "payments-api-gateway-critical", True),
    ],
)
def test_a_regular_expression_matches_the_whole_value(expression: str, value: str, matches: bool) -> None:
    assert Pattern.of(expression).matches(value) is matches


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("re:(a+)+$", "a" * 29 + "!"),
        ("re:(a|a)*b", "a" * 40),
        ("re:(.*a){20}", "a" * 19 + "b" * 50),
        ("re:([a-z0-9]+-?)+-critical", "paymentsapigateway-latencyp99"),
        ("re:(x+x+)+y", "x" * 5_000),
        ("re:(a+)+$", "a" * 210_000 + "!"),
    ],
    ids=["nested-plus", "alternation", "repeated-group", "optional-separator", "nested-plus-5000", "nested-plus-210k"],
)
def test_a_catastrophic_regular_expression_runs_in_linear_time(expression: str, value: str) -> None:
    pattern = Pattern.of(expression)
    started = time.monotonic()
    assert not pattern.matches(value)
    assert time.monotonic() - started < QUICKLY


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("re:(a+)\\1", "invalid escape sequence"),
        ("re:(?P<x>a)(?P=x)", "invalid perl operator"),
        ("re:a(?=b)", "invalid perl operator"),
        ("re:(?<!a)b", "invalid perl operator"),
        ("re:a++", "bad repetition operator"),
        ("re:(unclosed", "missing )"),
        ("re:[z-a]", "invalid character class range"),
    ],
    ids=["backreference", "named-backreference", "lookahead", "lookbehind", "possessive", "unclosed", "bad-range"],
)
def test_a_pattern_re2_cannot_compile_is_refused_naming_it(expression: str, complaint: str) -> None:
    with pytest.raises(ValueError, match="invalid regular expression") as refused:
        Pattern.of(expression)
    message = str(refused.value)
    assert repr(expression[3:]) in message
    assert "RE2" in message
    assert complaint in message


def test_a_pattern_too_large_for_re2_is_refused() -> None:
    with pytest.raises(ValueError, match="RE2"):
        Pattern.of("re:((a{1000}){1000}){1000}")


# --- check_template ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_name", "template"),
    [
        ("summary", "{alarm_name}"),
        ("summary", "[{environment}] {alarm_name}: {metric_name} {comparison} {threshold} (now {current_value})"),
        ("summary", "{alarm_name:>1024}"),
        ("summary", "{alarm_name:.80}…"),
        ("summary", "{alarm_name!r:^40}"),
        ("summary", "no placeholders at all"),
        ("summary", "braces {{escaped}} {state}"),
        ("dedup_key", "{alarm_name}"),
        ("dedup_key", "{account}/{region}/{alarm_name}:{metric_name}"),
        ("dedup_key", "{alarm_name:.200}"),
        ("dedup_key", "{alarm_name:>255}"),
    ],
)
def test_a_safe_template_is_accepted_as_written(field_name: str, template: str) -> None:
    assert check_template(field_name, template) == template


@pytest.mark.parametrize(
    ("field_name", "template", "complaint"),
    [
        ("summary", "{alarm_name:>100000000}", "asks for more than 1024 characters"),
        ("summary", "{alarm_name:>1025}", "asks for more than 1024 characters"),
        ("summary", "{alarm_name:.99999999999999999999999}", "asks for more than 1024 characters"),
        ("dedup_key", "{alarm_name:>256}", "asks for more than 255 characters"),
        ("summary", "{alarm_name:{threshold}}", "may not nest placeholders"),
        ("summary", "{alarm_name.__class__}", "must be a plain field name"),
        ("summary", "{alarm_name.__class__.__init__.__globals__}", "must be a plain field name"),
        ("summary", "{alarm_name[0]}", "must be a plain field name"),
        ("summary", "{}", "must be a plain field name"),
        ("summary", "{0}", "unknown placeholders: 0"),
        ("summary", "{secret}", "unknown placeholders: secret"),
        ("summary", "{alarm_name", "not a valid template"),
        ("summary", "alarm}", "not a valid template"),
        ("summary", "{alarm_name!x}", "unknown conversion"),
        ("summary", "{alarm_name:d}", "cannot format text"),
        ("summary", "{threshold:.2f}", "cannot format text"),
        ("summary", "{current_value:,}", "cannot format text"),
        ("summary", "{alarm_name:=20}", "cannot format text"),
        ("dedup_key", "{alarm_name}-{state}", "dedup_key may not use state"),
        ("dedup_key", "{alarm_name}-{current_value}", "dedup_key may not use current_value"),
        ("dedup_key", "{alarm_name} {comparison} {threshold}", "dedup_key may not use comparison"),
        ("dedup_key", "{alarm_name}-{threshold}", "dedup_key may not use threshold"),
        ("dedup_key", "{alarm_name}-{threshold:>10}", "dedup_key may not use threshold"),
    ],
)
def test_an_unsafe_template_is_refused_saying_why(field_name: str, template: str, complaint: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_template(field_name, template)
    assert complaint in str(refused.value)
    assert field_name in str(refused.value)
    assert "\n" not in str(refused.value)


def test_every_state_dependent_field_is_a_template_field() -> None:
    assert set(TEMPLATE_FIELDS) >= STATE_DEPENDENT_FIELDS


_SPECS = st.from_regex(r"\A(![sraxd])?(:[x=]?[<>^=]?[+ -]?#?0?[0-9]{0,6}[,_]?(\.[0-9]{0,6})?[sdfx%]?)?\Z")
_PLACEHOLDERS = st.builds(lambda name, spec: "{" + name + spec + "}", st.sampled_from(TEMPLATE_FIELDS), _SPECS)


@settings(max_examples=300)
@given(
    template=st.lists(_PLACEHOLDERS | st.text(alphabet="ab -:/", max_size=5), max_size=5).map("".join),
    values=st.lists(st.text(max_size=300), min_size=len(TEMPLATE_FIELDS), max_size=len(TEMPLATE_FIELDS)),
)
def test_an_accepted_summary_renders_for_any_alarm_within_what_pagerduty_keeps(
    template: str, values: list[str]
) -> None:
    """Whatever format specs a template holds: what ``check_template`` accepts renders with any text
    for its fields (``rendering.template_values`` gives only text), and no placeholder makes more than
    PagerDuty keeps (beyond the value itself)."""
    try:
        check_template("summary", template)
    except ValueError:
        return
    rendered = template.format_map(dict(zip(TEMPLATE_FIELDS, values, strict=True)))
    placeholders = template.count("{")
    assert len(rendered) <= len(template) + placeholders * (c.MAX_SUMMARY_LENGTH + 2 * 300 + 2)
