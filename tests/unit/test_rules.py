"""Alert rules: matching, precedence, what they change in the event, and errors that name the rule."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from pagerduty_bridge.cli import DRY_RUN_KEY, main
from pagerduty_bridge.envelopes import Notification, parse_event
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.integration import DryRunSender, PagerDutyIntegration
from pagerduty_bridge.models import AlarmNotification, AlertSeverity
from pagerduty_bridge.rules import AlertRules, load_rules, parse_rules
from pagerduty_bridge.runtime import Runtime
from pagerduty_bridge.seed.models import ServiceConfig
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.conftest import EVENTS, FIXTURES, assert_valid_event, load_json

EXAMPLE = FIXTURES / "rules" / "example.yaml"


def alarm_from(sample: str, **changes: object) -> AlarmNotification:
    (parsed, *_) = parse_event(load_json(EVENTS / sample))
    assert isinstance(parsed, Notification) and isinstance(parsed.content, AlarmNotification)
    return replace(parsed.content, **changes)


def rules() -> AlertRules:
    return parse_rules(EXAMPLE.read_text(), where=str(EXAMPLE))


def bridge(rule_text: str | None = None) -> PagerDutyIntegration:
    settings = Settings(alert_rules=rule_text) if rule_text else Settings(alert_rules_file=str(EXAMPLE))
    return PagerDutyIntegration(
        ServiceConfig(integration_key=DRY_RUN_KEY, service_name="svc"),
        settings=settings,
        rules=load_rules(settings),
        sender=DryRunSender(),
        routing_keys={alias: SecretStr(key) for alias, key in (("default", DRY_RUN_KEY), ("web", "w" * 32))},
    )


def test_a_rule_changes_severity_routing_summary_links_and_details() -> None:
    outcome = bridge().handle_alarm(alarm_from("05-ec2-cpu-alarm.json"))
    body = outcome.body
    assert body is not None
    assert body["payload"]["severity"] == "warning"
    assert body["routing_key"].endswith("wwww")
    assert body["payload"]["summary"] == "[production] i-0a1b2c3d4e5f67890: CPU 93.2% > 80%"
    assert {"href": "https://grafana.example.com/d/web", "text": "Web dashboard"} in body["links"]
    details = body["payload"]["custom_details"]
    assert details["team"] == "web-platform" and details["rule"] == "web-cpu"
    assert details["recommendations"][0] == "Check the top processes on the instance"
    assert_valid_event({**body, "routing_key": "k" * 32})
    assert outcome.incident is not None and outcome.incident.routing_key_alias == "web"


def test_suppression_records_but_does_not_page() -> None:
    integration = bridge()
    outcome = integration.handle_alarm(alarm_from("08-anomaly-detection-alarm.json"))
    assert (outcome.action, outcome.reason, outcome.body) == (None, "suppressed", None)


def test_rule_level_insufficient_data_policy() -> None:
    integration = bridge()
    alarm = alarm_from("05-ec2-cpu-alarm.json", alarm_name="orders-worker-heartbeat", dimensions={})
    integration.handle_alarm(alarm)
    stale_data = alarm_from(
        "10-insufficient-data.json", alarm_name="orders-worker-heartbeat", metric_name="CPUUtilization"
    )
    outcome = integration.handle_alarm(stale_data)
    assert (outcome.action.value if outcome.action else None, outcome.reason) == (
        "resolve",
        "insufficient_data_resolved",
    )


def test_first_match_wins_then_builtins_then_defaults() -> None:
    document = json.dumps(
        {
            "rules": [
                {"name": "first", "match": {"alarm_name": "web-*"}, "severity": "info"},
                {"name": "second", "match": {"alarm_name": "web-prod-*"}, "severity": "error"},
            ]
        }
    )
    parsed = parse_rules(document, where="inline")
    cpu = parsed.resolve(
        alarm_from("05-ec2-cpu-alarm.json"), default_severity=AlertSeverity.CRITICAL, default_routing="default"
    )
    assert (cpu.rule, cpu.severity) == ("first", AlertSeverity.INFO)
    seed = parsed.resolve(
        alarm_from("01-seed-high-failure-rate-alarm.json"),
        default_severity=AlertSeverity.CRITICAL,
        default_routing="default",
    )
    assert (seed.rule, seed.template) == ("seed-high-failure-rate", "high-failure-rate")
    other = parsed.resolve(
        alarm_from("10-insufficient-data.json"), default_severity=AlertSeverity.CRITICAL, default_routing="default"
    )
    assert (other.rule, other.severity, other.routing_key) == (None, AlertSeverity.CRITICAL, "default")


def test_the_alarms_own_tags_win_over_rules() -> None:
    alarm = alarm_from("05-ec2-cpu-alarm.json", tags={"pagerduty:severity": "INFO", "pagerduty:routing": "payments"})
    resolved = rules().resolve(alarm, default_severity=AlertSeverity.CRITICAL, default_routing="default")
    assert (resolved.rule, resolved.severity, resolved.routing_key) == ("web-cpu", AlertSeverity.INFO, "payments")


@pytest.mark.parametrize(
    ("tags", "severity", "suppress", "runbook"),
    [
        ({"pagerduty:severity": " warning ", "pagerduty:suppress": " Yes "}, AlertSeverity.WARNING, True, None),
        ({"pagerduty:suppress": "TRUE", "pagerduty:runbook": "https://wiki/cpu"}, None, True, "https://wiki/cpu"),
        ({"pagerduty:suppress": "1"}, None, True, None),
        ({"pagerduty:suppress": "false", "pagerduty:runbook": "see the wiki"}, None, False, None),
        ({"pagerduty:suppress": "no", "pagerduty:severity": "loud"}, None, False, None),
        ({"pagerduty:suppress": "0", "pagerduty:runbook": "javascript:alert(1)"}, None, False, None),
        ({"suppress": "true", "severity": "info"}, None, False, None),
    ],
)
def test_an_alarms_tags_say_what_they_mean_and_nothing_else(
    tags: dict[str, str], severity: AlertSeverity | None, suppress: bool, runbook: str | None
) -> None:
    """A tag is read as a person writes it (any case, stray blanks), and one that does not say yes, or
    is not a web link, is no override: ``pagerduty:suppress=false`` must never silence an alarm's pages."""
    document = json.dumps({"rules": [{"name": "web", "match": {"alarm_name": "web-*"}}]})
    alarm = alarm_from("05-ec2-cpu-alarm.json", tags=tags)
    resolved = parse_rules(document, where="inline").resolve(alarm, default_severity=AlertSeverity.CRITICAL)
    assert resolved.rule == "web"
    assert resolved.severity is (severity or AlertSeverity.CRITICAL)
    assert resolved.suppress is suppress
    assert resolved.runbook_url == runbook


def test_a_rules_severity_is_read_in_any_case_as_the_seed_wrote_it() -> None:
    document = json.dumps({"rules": [{"name": "web", "match": {"alarm_name": "web-*"}, "severity": "WARNING"}]})
    resolved = parse_rules(document, where="inline").resolve(
        alarm_from("05-ec2-cpu-alarm.json"), default_severity=AlertSeverity.CRITICAL
    )
    assert (resolved.rule, resolved.severity) == ("web", AlertSeverity.WARNING)


def test_the_seed_templates_still_reproduce_the_seed_payload_under_user_rules() -> None:
    outcome = bridge().handle_alarm(alarm_from("01-seed-high-failure-rate-alarm.json"))
    assert outcome.body is not None
    assert outcome.body["payload"]["summary"] == "🚨 [PRODUCTION] High Failure Rate Alert"
    assert outcome.dedup_key == "production-hybrid-routing-high-failure-rate-SupportModeSuccessRate"


def test_a_dedup_key_override_stays_the_same_between_alarm_and_ok() -> None:
    document = json.dumps(
        {"rules": [{"name": "by-resource", "match": {"alarm_name": "web-*"}, "dedup_key": "{resource}-cpu"}]}
    )
    integration = bridge(document)
    opened = integration.handle_alarm(alarm_from("05-ec2-cpu-alarm.json"))
    closed = integration.handle_alarm(alarm_from("06-ec2-cpu-ok.json"))
    assert opened.dedup_key == closed.dedup_key == "i-0a1b2c3d4e5f67890-cpu"
    assert closed.action is not None and closed.action.value == "resolve"


def test_a_rule_whose_templates_render_blank_falls_back_to_the_defaults_pagerduty_accepts() -> None:
    """``{resource}`` of a dimension value " " and a namespace " ": PagerDuty refuses a blank summary or
    dedup key (400)."""
    document = json.dumps(
        {
            "rules": [
                {
                    "name": "by-resource",
                    "match": {"alarm_name": "web-*"},
                    "summary": "{resource}",
                    "dedup_key": "{resource}",
                }
            ]
        }
    )
    integration = bridge(document)
    blank = {"dimensions": {"InstanceId": " "}, "namespace": " "}
    opened = integration.handle_alarm(alarm_from("05-ec2-cpu-alarm.json", **blank))
    closed = integration.handle_alarm(alarm_from("06-ec2-cpu-ok.json", **blank))
    assert opened.body is not None
    assert_valid_event({**opened.body, "routing_key": "k" * 32})
    assert opened.body["payload"]["summary"].startswith("[PRODUCTION] ALARM web-prod-cpu-high")
    assert opened.body["payload"]["source"] == "web-prod-cpu-high"
    assert opened.dedup_key == closed.dedup_key == "web-prod-cpu-high-CPUUtilization"
    assert closed.action is not None and closed.action.value == "resolve"


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"rules": [{"name": "loud", "severity": "urgent"}]}, "rule 'loud' (#1) field severity"),
        ({"rules": [{"name": "a"}, {"name": "typo", "sevrity": "info"}]}, "rule 'typo' (#2) field sevrity"),
        (
            {"rules": [{"name": "bad-re", "match": {"alarm_name": "re:(["}}]},
            "rule 'bad-re' (#1) field match.alarm_name",
        ),
        ({"rules": [{"name": "tpl", "summary": "{nope}"}]}, "unknown placeholders: nope"),
        ({"rules": [{"name": "same"}, {"name": "same"}]}, "used twice"),
        ({"rules": [{"severity": "info"}]}, "rule #1 field name"),
        ({"rules": [{"name": "link", "runbook_url": "wiki/page"}]}, "rule 'link' (#1) field runbook_url"),
        (
            {"rules": [{"name": "tuned", "dedup_key": "{alarm_name}-{threshold}"}]},
            "rule 'tuned' (#1): dedup_key may not use threshold",
        ),
    ],
)
def test_invalid_rules_name_the_rule_and_field(document: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=r"rules\.json") as caught:
        parse_rules(json.dumps(document), where="rules.json")
    assert complaint in str(caught.value)


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        pytest.param(
            "rules:\n  - name: web\n    custom_details: {reviewed: 2024-06-01}\n",
            "rule 'web' (#1) field custom_details: reviewed is a date (2024-06-01), not JSON",
            id="yaml-date",
        ),
        pytest.param(
            '{"rules": [{"name": "web", "custom_details": {"ratio": NaN}}]}',
            "rule 'web' (#1) field custom_details: ratio is NaN, not JSON",
            id="json-nan",
        ),
        pytest.param(
            '{"rules": [{"name": "a"}, {"name": "web", "custom_details": {"limits": [1, -Infinity]}}]}',
            "rule 'web' (#2) field custom_details: limits[1] is -Infinity, not JSON",
            id="json-infinity-in-a-list",
        ),
        pytest.param(
            "rules:\n  - name: web\n    custom_details: {owners: !!set {alice: null}}\n",
            "rule 'web' (#1) field custom_details: owners is a set",
            id="yaml-set",
        ),
        pytest.param(
            "rules:\n  - name: web\n    custom_details: {loop: &a [*a]}\n",
            "rule 'web' (#1) field custom_details: loop[0] refers back to what contains it",
            id="yaml-self-reference",
        ),
    ],
)
def test_custom_details_that_are_not_json_are_refused_at_load(document: str, complaint: str) -> None:
    """Else every matching alarm would fail to render (a date) or be sent as a body PagerDuty refuses (NaN)."""
    with pytest.raises(ConfigurationError, match=r"rules\.yaml") as caught:
        parse_rules(document, where="rules.yaml")
    assert complaint in str(caught.value)


def test_an_invalid_rules_file_fails_at_start() -> None:
    settings = Settings(alert_rules='{"rules": [{"name": 3}]}')
    with pytest.raises(ConfigurationError, match="ALERT_RULES"):
        load_rules(settings)
    runtime = Runtime(settings=settings, store=SQLiteIncidentStore())
    with pytest.raises(ConfigurationError, match="ALERT_RULES"):
        runtime.notifications()


def test_rules_check_shows_what_each_sample_matches(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["rules", "check", str(EXAMPLE), "--events", str(EVENTS)], out=out, err=err)
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "4 rules, valid" in text
    rows = {line.split()[1]: line.split() for line in text.splitlines()[2:]}
    assert rows["web-prod-cpu-high"][2] == "web-cpu"
    assert rows["production-hybrid-routing-high-failure-rate"][2] == "seed-high-failure-rate"
    assert rows["orders-api-latency-anomaly"][2] == "anomaly-record-only"

    broken = tmp_path / "broken.json"
    broken.write_text('{"rules": [{"name": "x", "severity": "loud"}]}')
    code = main(["rules", "check", str(broken)], out=io.StringIO(), err=(err := io.StringIO()))
    assert code == 2 and "rule 'x' (#1) field severity" in err.getvalue()


def test_an_unreadable_rules_file_is_named_by_the_command_and_by_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    for argv in (["rules", "check", str(missing)], ["rules", "test", "--rules", str(missing)]):
        err = io.StringIO()
        assert main(argv, out=io.StringIO(), err=err) == 2
        (line,) = err.getvalue().splitlines()
        assert f"cannot read {missing}" in line and "Traceback" not in line
    with pytest.raises(ConfigurationError, match=f"ALERT_RULES_FILE: cannot read {missing}"):
        load_rules(Settings(alert_rules_file=str(missing)))


def test_template_component_says_which_alarm_names_use_the_seed_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPLATE_COMPONENT", "checkout")
    settings = Settings.from_env()
    loaded = load_rules(settings)
    ours = alarm_from("03-high-latency-alarm.json", alarm_name="production-checkout-high-latency")
    seeds = alarm_from("03-high-latency-alarm.json")
    assert seeds.alarm_name == "production-hybrid-routing-high-latency"
    resolved = loaded.resolve(ours, default_severity=AlertSeverity.CRITICAL)
    assert (resolved.rule, resolved.template) == ("seed-high-latency", "high-latency")
    assert loaded.resolve(seeds, default_severity=AlertSeverity.CRITICAL).template is None


def test_inline_rules_win_over_a_rules_file(tmp_path: Path) -> None:
    """Both set (a file baked into the asset, rules overridden at deploy time): the inline rules are
    the ones in force, and the file is not even read."""
    inline = json.dumps({"rules": [{"name": "inline", "match": {"alarm_name": "web-*"}}]})
    for settings in (
        Settings(alert_rules=inline, alert_rules_file=str(EXAMPLE)),
        Settings(alert_rules=inline, alert_rules_file=str(tmp_path / "missing.json")),
    ):
        resolved = load_rules(settings).resolve(
            alarm_from("05-ec2-cpu-alarm.json"), default_severity=AlertSeverity.CRITICAL
        )
        assert resolved.rule == "inline"
