"""Alarms and rules at the edges of what CloudWatch and operators write: what responders read must be true.

Each test reproduces one way an alarm (or a rules document) was misread, through the public parsing,
rule and rendering functions.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from pagerduty_bridge.alarms import comparison_from_reason, parse_alarm_message
from pagerduty_bridge.envelopes import Notification, parse_event
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.models import (
    AlarmNotification,
    AlertSeverity,
    DedupKeyStrategy,
    EventAction,
    UnrecognizedMessage,
)
from pagerduty_bridge.rendering import alarm_event, alarm_summary, dedup_key_for, unrecognized_event
from pagerduty_bridge.rules import AlertRules, decode_document, parse_rules
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.text import printable
from tests.builders import T0, alarm_message, eventbridge_event, sns_event_of, sns_notification, sqs_event, sqs_record
from tests.conftest import EVENTS, FIXTURES, assert_valid_event, load_json

VARIANTS = FIXTURES / "alarm_variants"
QUICKLY = 2.0
"""A loose bound for what must take milliseconds: machines running these tests are shared."""


def band_alarm(reason: str) -> dict[str, Any]:
    """An anomaly-detection alarm on both sides of its band (``LessThanLowerOrGreaterThanUpperThreshold``)
    in ALARM, with ``reason`` as CloudWatch words it."""
    message: dict[str, Any] = load_json(VARIANTS / "anomaly-detection-lower-or-upper-band-old-form.json")
    message.update(NewStateValue="ALARM", OldStateValue="OK", NewStateReason=reason)
    return message


def alarm_of(event: dict[str, Any]) -> AlarmNotification:
    (parsed,) = parse_event(event, now=T0)
    assert isinstance(parsed, Notification), parsed
    assert isinstance(parsed.content, AlarmNotification), parsed.content
    return parsed.content


# --- an alarm on both sides of its band says which side it crossed ----------------------------------------

BAND_REASON = (
    "Thresholds Crossed: 1 out of the last 4 datapoints [{value} (14/11/25 18:39:00)] was less than the lower "
    "thresholds [193.33593366980995] or greater than the upper thresholds [531.4406901351432] (minimum 1 "
    "datapoint for OK -> ALARM transition)."
)


@pytest.mark.parametrize(
    ("value", "comparison", "shown"),
    [
        ("537.0", "greater than", "537 above the band"),
        ("12.5", "less than", "12.5 below the band"),
    ],
)
def test_a_band_alarm_says_which_side_of_the_band_its_value_is_on(value: str, comparison: str, shown: str) -> None:
    alarm = parse_alarm_message(band_alarm(BAND_REASON.format(value=value)))
    assert alarm.comparison == comparison
    assert f"anomaly detection {shown} on" in alarm_summary(alarm, "production")


def test_several_datapoints_against_a_band_are_read_by_the_newest() -> None:
    reason = (
        "Thresholds Crossed: 2 out of the last 2 datapoints [28.244242980188464 (22/11/19 00:57:00), "
        "27.035814838199848 (22/11/19 00:52:00)] were less than the lower thresholds [31.723549397187316, "
        "31.317673764600034] or greater than the upper thresholds [33.09242087209403, 32.68864166862828] "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert comparison_from_reason(reason) == "less than"


def test_a_band_reason_without_a_readable_value_reads_outside_the_band() -> None:
    reason = BAND_REASON.replace("[{value} (14/11/25 18:39:00)] ", "")
    alarm = parse_alarm_message(band_alarm(reason))
    assert alarm.comparison is None
    assert "anomaly detection outside the band on" in alarm_summary(alarm, "production")


# --- a rules document too deep or too large is refused at load, by name ------------------------------------


def details_rules(details: str) -> str:
    return '{"rules": [{"name": "deep", "custom_details": {"x": ' + details + "}}]}"


@pytest.mark.parametrize(
    "text",
    [
        details_rules("[" * 100_000 + "]" * 100_000),
        "rules:\n- name: deep\n  custom_details:\n    x: " + "[" * 3_000 + "]" * 3_000,
    ],
    ids=["json", "yaml"],
)
def test_a_rules_document_nested_beyond_the_parser_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"RULES: .*nested too deeply"):
        parse_rules(text, where="RULES")


def test_custom_details_deeper_than_an_event_can_be_sent_are_refused_at_load() -> None:
    # json.dumps of the event at send time, deep inside the Lambda's stack, would overflow: every alarm
    # the rule matches would fail to page, after a load and a synth that both passed.
    with pytest.raises(ConfigurationError, match=r"rule 'deep' \(#1\) field custom_details: .*nested deeper than"):
        parse_rules(details_rules("[" * 900 + "]" * 900), where="RULES")


def test_custom_details_that_cannot_fit_an_event_are_refused_at_load() -> None:
    # YAML aliases make a small file hold millions of values: every event would carry them, and take
    # seconds to cut down to PagerDuty's 512 KB.
    lines = ["rules:", "- name: bomb", "  custom_details:", "    a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 7):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"    {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    started = time.perf_counter()
    with pytest.raises(ConfigurationError, match=r"rule 'bomb' \(#1\) field custom_details: .*too large"):
        parse_rules("\n".join(lines), where="RULES")
    assert time.perf_counter() - started < QUICKLY


def test_ordinary_custom_details_still_load() -> None:
    rules = parse_rules(details_rules('{"team": "payments", "tiers": [[1, 2], {"a": {"b": [null, true]}}]}'), where="R")
    assert rules.rules[0].custom_details["x"]["tiers"][1] == {"a": {"b": [None, True]}}


# --- JSON that begins with a byte order mark is still JSON -------------------------------------------------


@pytest.mark.parametrize(
    "wrap",
    [
        sns_event_of,
        lambda text: sqs_event(sqs_record(text)),
        lambda text: sqs_event(sqs_record(json.dumps(sns_notification(text, http=True)))),
        lambda text: sqs_event(sqs_record("\ufeff" + json.dumps(sns_notification(text[1:], http=True)))),
    ],
    ids=["sns-message", "sqs-raw-body", "sqs-sns-message", "sqs-body"],
)
def test_an_alarm_written_with_a_byte_order_mark_pages_and_resolves_as_itself(wrap: Any) -> None:
    # A file saved by a Windows editor and published by hand (``aws sns publish --message file://…``)
    # starts with U+FEFF. Read as text, its ALARM became an info message, and its OK another one.
    for state in ("ALARM", "OK"):
        alarm = alarm_of(wrap("\ufeff" + json.dumps(alarm_message("orders-cpu", state))))
        assert (alarm.alarm_name, alarm.new_state.value) == ("orders-cpu", state)
        assert dedup_key_for(alarm, DedupKeyStrategy.ALARM_NAME) == "orders-cpu-CPUUtilization"


def test_a_json_rules_document_with_a_byte_order_mark_is_read_as_json() -> None:
    # The function's asset has no YAML parser: read as YAML, such a file failed every cold start.
    text = "\ufeff" + json.dumps({"rules": [{"name": "web", "severity": "warning"}]})
    assert decode_document(text, "RULES", yaml=False) == decode_document(text, "RULES") == json.loads(text[1:])


# --- a name cannot rewrite what responders read around it --------------------------------------------------

DIRECTION_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
"""Embeddings, overrides and isolates: each reorders the text after it on every screen that shows it."""


def page_of(message: dict[str, Any], rules: AlertRules | None = None) -> dict[str, Any]:
    alarm = alarm_of(sns_event_of(message))
    resolved = (rules or AlertRules()).resolve(alarm, default_severity=AlertSeverity.CRITICAL)
    key = dedup_key_for(alarm, DedupKeyStrategy.ALARM_NAME)
    event = alarm_event(alarm, Settings(), EventAction.TRIGGER, dedup_key=key, resolved=resolved)
    body = event.to_wire("k" * 32)
    assert_valid_event(body)
    return body


@pytest.mark.parametrize("control", ["\u202e", "\u202b", "\u2067", "\x1b[2K", "\r", "\n"])
def test_a_control_in_an_alarm_name_is_shown_not_obeyed_in_the_summary(control: str) -> None:
    # "orders-db\u202e" made every screen show the rest of the summary backwards: "…0a-i no 08 < 2.39 …".
    name = f"orders-db{control}"
    body = page_of(alarm_message(name))
    summary = body["payload"]["summary"]
    assert not DIRECTION_CONTROLS.search(summary)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in summary)
    shown = control.encode("unicode_escape").decode("ascii")
    assert f"ALARM orders-db{shown}: CPUUtilization 93.2 > 80 on i-0a1b2c3d4e5f67890" in summary
    # What identifies the alarm is its name as CloudWatch holds it: the key and the details keep it.
    assert body["dedup_key"] == f"{name}-CPUUtilization"
    assert body["payload"]["custom_details"]["alarmName"] == name


def test_a_rule_summary_shows_the_controls_its_values_hold() -> None:
    rules = parse_rules(json.dumps([{"name": "r", "summary": "{alarm_name} on {resource}"}]), where="R")
    message = alarm_message("orders-db\u202e")
    message["Trigger"]["Dimensions"] = [{"name": "InstanceId", "value": "i-1\u2066"}]
    assert page_of(message, rules)["payload"]["summary"] == "orders-db\\u202e on i-1\\u2066"


def test_printed_text_shows_direction_controls() -> None:
    assert printable("a\u202eb\u2066c") == "a\\u202eb\\u2066c"


# --- an alarm event on the topic that cannot be read is forwarded, whichever shape it has -------------------


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        (lambda: alarm_message("orders-cpu", "ALARMING"), "NewStateValue is 'ALARMING'"),
        (lambda: _eventbridge_with_state("ALARMING"), "state.value is 'ALARMING'"),
        (lambda: _eventbridge_with_state(None), "state.value is None"),
    ],
    ids=["sns-alarm", "eventbridge-alarm", "eventbridge-no-state-value"],
)
def test_an_unreadable_alarm_on_the_topic_is_forwarded_naming_its_fault(shape: Any, problem: str) -> None:
    # An EventBridge rule that targets the alarm topic sends the EventBridge shape: one it could not
    # read was dropped with a log line, where the same fault in CloudWatch's own shape was forwarded.
    (parsed,) = parse_event(sns_event_of(json.dumps(shape())), now=T0)
    assert isinstance(parsed, Notification), parsed
    assert isinstance(parsed.content, UnrecognizedMessage)
    assert parsed.content.problem is not None and problem in parsed.content.problem
    assert parsed.record == "Records[0].Sns.Message"
    body = unrecognized_event(parsed.content, Settings(), source=parsed.source).to_wire("k" * 32)
    assert_valid_event(body)
    assert "orders-cpu" in body["payload"]["custom_details"]["text"]


def _broken_state(sample: str) -> dict[str, Any]:
    event = load_json(EVENTS / sample)
    if "alarmData" in event:
        event["alarmData"]["state"]["value"] = "ALARMING"
    elif "detail" in event:
        event["detail"]["state"]["value"] = "ALARMING"
    else:
        event["NewStateValue"] = "ALARMING"
    return event


@pytest.mark.parametrize(
    ("event", "record"),
    [
        (lambda: sqs_event(sqs_record(alarm_message("orders-cpu", "ALARMING"))), "Records[0].body"),
        (lambda: sqs_event(sqs_record(_eventbridge_with_state("ALARMING"))), "Records[0].body"),
        (lambda: _broken_state("15-eventbridge-state-change.json"), "event"),
        (lambda: _broken_state("16-alarm-lambda-action.json"), "event"),
        (lambda: _broken_state("17-bare-alarm-message.json"), "event"),
    ],
    ids=["sqs-raw-alarm", "sqs-raw-eventbridge", "eventbridge-target", "alarm-lambda-action", "bare-alarm-invoke"],
)
def test_an_unreadable_alarm_is_forwarded_in_every_envelope(event: Any, record: str) -> None:
    # The same fault that pages from the topic was dead-lettered from a raw-delivery queue (held until
    # someone redrove it) and, invoked directly (an alarm's Lambda action, an EventBridge target),
    # answered with a log line and lost: nothing retries an invocation that answered.
    (parsed,) = parse_event(event(), now=T0)
    assert isinstance(parsed, Notification), parsed
    assert isinstance(parsed.content, UnrecognizedMessage)
    assert parsed.content.problem is not None and "ALARMING" in parsed.content.problem
    assert parsed.record == record
    body = unrecognized_event(parsed.content, Settings(), source=parsed.source).to_wire("k" * 32)
    assert_valid_event(body)
    assert "ALARMING" in body["payload"]["custom_details"]["text"]


def _eventbridge_with_state(value: str | None) -> dict[str, Any]:
    event = eventbridge_event("orders-cpu")
    event["detail"]["state"]["value"] = value
    return event


@pytest.mark.parametrize("blank", ["", " ", "\u3000", "\t"])
def test_a_blank_dimension_value_never_ends_the_summary_with_on_and_nothing(blank: str) -> None:
    # "… CPUUtilization 93.2 > 80 on " read as a page cut short; the next dimension that names something is
    # the resource, and with none the summary ends at the comparison.
    dimensions = [{"name": "InstanceId", "value": blank}, {"name": "AutoScalingGroupName", "value": "web-asg"}]
    trigger = {**alarm_message("x")["Trigger"], "Dimensions": dimensions}
    body = page_of(alarm_message("web-cpu", Trigger=trigger))
    assert body["payload"]["summary"].endswith("> 80 on web-asg")
    assert body["payload"]["source"] == "web-asg"
    alone = page_of(alarm_message("web-cpu", Trigger={**trigger, "Dimensions": dimensions[:1]}))
    assert alone["payload"]["summary"].endswith("> 80"), alone["payload"]["summary"]
