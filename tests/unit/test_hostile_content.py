"""Alarms, rules and seed alerts whose content is hostile or merely odd: what PagerDuty receives stays true.

Each test reproduces one way such content got past the parser, the rules or the renderer, through the
public functions the handler and the seed API use.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.envelopes import Notification, parse_event
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.events_api import (
    MAX_LINK_HREF_LENGTH,
    MAX_LINK_TEXT_LENGTH,
    MAX_LINKS_BYTES,
    EventPayload,
    Link,
    PagerDutyEvent,
    _links_that_fit,
    bounded_links,
)
from pagerduty_bridge.integration import PagerDutyIntegration
from pagerduty_bridge.models import (
    AlarmNotification,
    AlertSeverity,
    DedupKeyStrategy,
    EventAction,
    UnrecognizedMessage,
)
from pagerduty_bridge.rendering import alarm_event, dedup_key_for, unrecognized_event
from pagerduty_bridge.rules import AlertRules, parse_rules
from pagerduty_bridge.seed import templates
from pagerduty_bridge.seed.models import AlertMessage, ServiceConfig
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.text import truncate
from pagerduty_bridge.timeutil import parse_time
from tests.builders import T0, alarm_message, eventbridge_event, sns_event_of, sqs_event, sqs_record
from tests.conftest import ROUTING_KEY as PAGERDUTY_ROUTING_KEY
from tests.conftest import assert_valid_event

ROUTING_KEY = "k" * 32
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What a screen acts on instead of showing: C0/C1 controls, line separators, direction controls."""


def alarm_of(message: dict[str, Any]) -> AlarmNotification:
    (parsed,) = parse_event(sns_event_of(message), now=T0)
    assert isinstance(parsed, Notification), parsed
    assert isinstance(parsed.content, AlarmNotification), parsed.content
    return parsed.content


def page_of(message: dict[str, Any], rules: AlertRules | None = None) -> dict[str, Any]:
    """The trigger PagerDuty receives for ``message``, checked against PagerDuty's schema."""
    alarm = alarm_of(message)
    resolved = (rules or AlertRules()).resolve(alarm, default_severity=AlertSeverity.CRITICAL)
    key = dedup_key_for(alarm, DedupKeyStrategy.ALARM_NAME)
    body = alarm_event(alarm, Settings(), EventAction.TRIGGER, dedup_key=key, resolved=resolved).to_wire(ROUTING_KEY)
    assert_valid_event(body)
    return body


# --- a seed alarm's name cannot rewrite the summary responders read -----------------------------------------


@pytest.mark.parametrize(
    ("control", "shown"),
    [("\u202e", "\\u202e"), ("\u2067", "\\u2067"), ("\x1b[2J", "\\x1b[2J"), ("\r", "\\r"), ("\n\u2028", "\\n\\u2028")],
)
@pytest.mark.parametrize("template", templates.SEED_TEMPLATE_NAMES)
def test_a_control_in_a_seed_alarms_environment_is_shown_not_obeyed(control: str, shown: str, template: str) -> None:
    # "prod\u202e-hybrid-routing-high-failure-rate" uses the seed template, whose summary is built from the
    # environment its name holds: "🚨 [PROD\u202e] High Failure Rate Alert" showed the title backwards.
    name = f"prod{control}-hybrid-routing-{template}"
    body = page_of(alarm_message(name))
    summary = body["payload"]["summary"]
    assert not CONTROLS.search(summary), repr(summary)
    assert f"[PROD{shown}] " in summary
    assert body["payload"]["custom_details"]["alarmName"] == name  # what identifies it stays as it is


def test_a_control_in_a_seed_alerts_name_is_shown_not_obeyed() -> None:
    # The seed API's ``create_incident_from_alert`` summarises ``[ENV] alarm: metric current vs threshold``.
    alert = AlertMessage.model_validate(
        {
            "severity": "critical",
            "alarmName": "orders\u202e-db",
            "metricName": "CPU\x1b[2K",
            "threshold": 80,
            "currentValue": 93,
            "timestamp": T0,
            "environment": "prod\u2066",
        }
    )
    body = templates.alert_event(alert, Settings()).to_wire(ROUTING_KEY)
    assert_valid_event(body)
    assert body["payload"]["summary"] == "[PROD\\u2066] orders\\u202e-db: CPU\\x1b[2K 93 vs 80"


# --- a YAML rules document that cannot be read is a configuration error naming it ---------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2024-02-30", id="impossible-date"),
        pytest.param("2024-13-01 10:00:00", id="impossible-timestamp"),
        pytest.param("1" * 5000, id="integer-beyond-conversion-limit"),
        pytest.param('!!float "high"', id="float-tag-on-a-word"),
        pytest.param('!!int "0x"', id="int-tag-on-nothing"),
    ],
)
def test_a_yaml_value_that_cannot_be_constructed_names_the_document(value: str) -> None:
    # PyYAML raises a bare ValueError for these, not a YAMLError: the CLI called it "a bug", the function
    # failed its start without naming the file.
    document = f"rules:\n- name: orders\n  match: {{alarm_name: 'orders-*'}}\n  custom_details:\n    since: {value}\n"
    with pytest.raises(ConfigurationError, match=r"^rules\.yaml: not valid YAML"):
        parse_rules(document, where="rules.yaml")


# --- whatever a rule links to, the page fits PagerDuty's 512 KB ---------------------------------------------


@pytest.mark.parametrize(
    "links",
    [
        pytest.param([{"href": f"https://wiki.example.com/{'x' * 2000}/{n}"} for n in range(300)], id="many-links"),
        pytest.param([{"href": "https://wiki.example.com/orders", "text": "Orders " * 100_000}], id="long-link-text"),
    ],
)
def test_a_rules_links_never_push_a_page_past_what_pagerduty_takes(links: list[dict[str, str]]) -> None:
    # Only custom details were shrunk: 300 links of 2 KB (or one link whose text is 700 KB) made every page
    # of the rule's alarms larger than 512 KB, and PagerDuty refuses such an event with a 400 — the page lost.
    rules = parse_rules(
        json.dumps([{"name": "orders", "match": {"alarm_name": "orders-*"}, "links": links}]), where="R"
    )
    body = page_of(alarm_message("orders-cpu", AlarmTags={"pagerduty:runbook": "https://wiki.example.com/run"}), rules)
    assert body["payload"]["summary"].startswith("[PRODUCTION] ALARM orders-cpu: CPUUtilization 93.2 > 80")
    assert body["payload"]["custom_details"]["alarmName"] == "orders-cpu"
    # What the alarm itself links to comes first and stays; the rule's own links go as far as they fit.
    assert [link["href"] for link in body["links"][:2]] == [
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/orders-cpu",
        "https://wiki.example.com/run",
    ]
    assert all(len(link.get("text", "")) <= 1024 for link in body["links"])
    assert "_truncated" not in body["payload"]["custom_details"]


_LINK_TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from('"\\\x00\x1f\u2028é😀'), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    links=st.lists(
        st.builds(Link, st.text(max_size=30).map("https://wiki.example.com/".__add__), st.none() | _LINK_TEXT),
        max_size=8,
    ),
    widths=st.lists(st.integers(0, 3), min_size=8, max_size=8),
)
def test_links_kept_unmeasured_are_exactly_those_measuring_keeps(links: list[Link], widths: list[int]) -> None:
    # A page whose links surely fit skips measuring them; the bound must never keep one that measuring drops.
    # Widths near the limit (up to 2048-character hrefs and 1024-character texts of 6-byte escapes) make
    # the sum land on both sides of MAX_LINKS_BYTES.
    sized = tuple(
        Link(link.href + "x" * (width * 680), None if link.text is None else link.text * (width * 9 + 1))
        for link, width in zip(links, widths, strict=False)
    )
    measured = _links_that_fit(
        [
            Link(x.href, None if x.text is None else truncate(x.text, MAX_LINK_TEXT_LENGTH)).wire()
            for x in sized
            if len(x.href) <= MAX_LINK_HREF_LENGTH
        ]
    )
    assert bounded_links(sized) == measured
    assert len(json.dumps(bounded_links(sized), ensure_ascii=False).encode("utf-8", "surrogatepass")) <= (
        MAX_LINKS_BYTES + 2 * len(measured) + 2
    )


def test_many_long_links_are_measured_and_cut_where_they_stop_fitting() -> None:
    # Eight links of 2 KB hrefs and 1,024 control characters (6 bytes each escaped): 65.5 KB, one too many.
    links = tuple(Link("https://wiki.example.com/" + "x" * 2000, "\x01" * 1024) for _ in range(8))
    kept = bounded_links(links)
    assert len(kept) == len(links) - 1
    assert kept == _links_that_fit([link.wire() for link in links])


# --- the seed API keeps an incident under the key PagerDuty knows it by --------------------------------------


def test_an_incident_triggered_with_a_key_over_255_characters_is_tracked_under_the_key_pagerduty_has(
    fake_pd: FakePagerDuty,
) -> None:
    # PagerDuty got the bounded key (a prefix and a hash) but the table kept the long one: the key the
    # trigger answered with was "not found" for acknowledge and resolve, as it is for PagerDuty's webhooks.
    config = ServiceConfig(integration_key=SecretStr(PAGERDUTY_ROUTING_KEY), service_name="checkout")
    bridge = PagerDutyIntegration(config, events_url=fake_pd.url, settings=Settings(retry_budget_seconds=2.0))
    long_key = "checkout-" + "é" * 300
    event = PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=long_key,
        payload=EventPayload(summary="checkout down", source="checkout", severity=AlertSeverity.CRITICAL),
    )
    answered = bridge.trigger_incident(event).dedup_key
    assert answered is not None and len(answered) == 255
    assert list(bridge.get_active_incidents()) == [answered] == list(fake_pd.open_alerts())
    acknowledged = bridge.acknowledge_incident(answered)
    assert acknowledged.dedup_key == answered
    incident = bridge.get_incident(long_key)
    assert incident is not None and incident.status.value == "acknowledged"
    bridge.resolve_incident(long_key)  # the key as the caller wrote it names the same incident
    assert fake_pd.open_alerts() == {} and bridge.get_active_incidents() == {}


# --- a forwarded message names a source PagerDuty accepts ----------------------------------------------------


@pytest.mark.parametrize("topic", ["   ", "\t", "\u3000"])
def test_a_message_from_a_topic_named_only_blanks_is_forwarded_with_a_source(topic: str) -> None:
    # An SNS notification written into a queue by hand names its topic itself: "TopicArn": " " became the
    # forwarded alert's source, and PagerDuty refuses a blank source with a 400 — the message lost.
    body = {"Type": "Notification", "MessageId": "m-1", "TopicArn": topic, "Message": "Budget exceeded"}
    (parsed,) = parse_event(sqs_event(sqs_record(body)), now=T0)
    assert isinstance(parsed, Notification) and isinstance(parsed.content, UnrecognizedMessage)
    sent = unrecognized_event(parsed.content, Settings(), source=parsed.source).to_wire(ROUTING_KEY)
    assert_valid_event(sent)
    assert sent["payload"]["source"] == "aws.sns"


# --- every RFC 3339 time is a time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "instant"),
    [
        pytest.param("2025-01-14T14:30:00.000z", datetime(2025, 1, 14, 14, 30, tzinfo=UTC), id="lower-case-z"),
        pytest.param("2025-01-14t14:30:00z", datetime(2025, 1, 14, 14, 30, tzinfo=UTC), id="lower-case-t-and-z"),
        pytest.param(
            "2016-12-31T23:59:60.000+0000", datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), id="leap-second"
        ),
        pytest.param(
            "2017-01-01T00:59:60.5+01:00", datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), id="leap-offset"
        ),
        pytest.param("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), id="leap-z"),
    ],
)
def test_an_alarm_stamped_in_any_rfc_3339_form_pages_as_an_alarm(stamp: str, instant: datetime) -> None:
    # RFC 3339 allows a lower-case "z" (and "t") and a leap second ("23:59:60"); either made the state change
    # "no time": the ALARM went out as an info message on the topic, and its OK resolved nothing.
    alarm = alarm_of(alarm_message("orders-cpu", StateChangeTime=stamp))
    assert alarm.state_change_time == instant
    assert parse_time(stamp) == instant
    # A leap second is the last instant of its minute: before the next one, after the one it follows.
    times = [parse_time(text) for text in ("2016-12-31T23:59:59.999Z", "2016-12-31T23:59:60Z", "2017-01-01T00:00Z")]
    assert None not in times and times == sorted(t for t in times if t is not None) and len(set(times)) == 3


@pytest.mark.parametrize("value", ["2016-12-31T23:59:61Z", "2016-12-31T23:60:00Z", "2016-12-31T24:59:60Z", "z", "Z"])
def test_what_only_resembles_a_leap_second_or_a_zone_is_still_no_time(value: str) -> None:
    assert parse_time(value) is None


# --- a field written as blanks is a field left out ------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_an_alarm_whose_optional_fields_are_blanks_pages_as_one_that_leaves_them_out(blank: str) -> None:
    # An empty StateChangeTime or OldStateValue was read as missing (the receipt time, no old state), but
    # one of blanks made the whole alarm unreadable: its ALARM went out as an info message on the topic.
    alarm = alarm_of(alarm_message("orders-cpu", StateChangeTime=blank, OldStateValue=blank))
    sent = T0 + timedelta(milliseconds=100)  # the SNS Timestamp: the receipt time
    assert (alarm.new_state.value, alarm.old_state, alarm.state_change_time) == ("ALARM", None, sent)
    body = page_of(alarm_message("orders-cpu", StateChangeTime=blank, OldStateValue=blank))
    assert body["payload"]["severity"] == "critical"


def test_an_eventbridge_alarm_whose_previous_state_is_blanks_pages_as_one_without_it() -> None:
    event = eventbridge_event("orders-cpu")
    event["detail"]["previousState"]["value"] = "  "
    (parsed,) = parse_event(event, now=T0)
    assert isinstance(parsed, Notification) and isinstance(parsed.content, AlarmNotification), parsed
    assert (parsed.content.new_state.value, parsed.content.old_state) == ("ALARM", None)


@pytest.mark.parametrize("template", templates.SEED_TEMPLATE_NAMES)
def test_an_alarm_named_for_a_seed_template_without_an_environment_is_paged_as_itself(template: str) -> None:
    # "-hybrid-routing-high-failure-rate" matched the built-in rule's glob ("*" takes nothing) but named no
    # environment, so the page took the configured one: its details and source named another alarm,
    # "production-hybrid-routing-high-failure-rate".
    name = f"-hybrid-routing-{template}"
    body = page_of(alarm_message(name))
    assert body["payload"]["custom_details"]["alarmName"] == name
    assert "production-hybrid-routing" not in json.dumps(body)


# --- a page names the alarm it is for ------------------------------------------------------------------------


@pytest.mark.parametrize("template", templates.SEED_TEMPLATE_NAMES)
def test_an_alarm_a_rule_pages_with_a_seed_template_is_named_in_its_page(template: str) -> None:
    # A rule may page any alarm with a seed template; the details then named the template's own alarm and
    # metric ("production-hybrid-routing-high-latency", "SupportModeLatency"), so nothing on the page
    # said which alarm had fired.
    rules = parse_rules(
        json.dumps([{"name": "api", "match": {"alarm_name": "api-*"}, "template": template}]), where="R"
    )
    body = page_of(alarm_message("api-latency-eu"), rules)
    details = body["payload"]["custom_details"]
    assert (details["alarmName"], details["metricName"]) == ("api-latency-eu", "CPUUtilization")
    assert body["payload"]["summary"].endswith(f"[PRODUCTION] {templates.SEED_TEMPLATES_BY_NAME[template].title}")
