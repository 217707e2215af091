"""Several PagerDuty services: rules route alarms to aliases, and acknowledge/resolve follow the
routing key the trigger went to (PagerDuty drops them on any other key)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from tests.builders import assert_no_secret, cli
from tests.conftest import EVENTS, FIXTURES, OTHER_ROUTING_KEY, ROUTING_KEY

KEY = "web-prod-cpu-high-CPUUtilization"


def test_ack_and_resolve_reach_the_triggers_routing_key(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps({"web": OTHER_ROUTING_KEY}))
    monkeypatch.setenv("ALERT_RULES_FILE", str(FIXTURES / "rules" / "example.yaml"))
    send = ("--send", "--events-url", fake_pd.url)

    assert cli("replay", *send, str(EVENTS / "05-ec2-cpu-alarm.json")).code == 0
    assert set(fake_pd.open_alerts(routing_key=OTHER_ROUTING_KEY)) == {KEY}
    assert fake_pd.open_alerts(routing_key=ROUTING_KEY) == {}

    assert cli("incidents", "ack", KEY, *send).code == 0
    assert fake_pd.open_alerts(routing_key=OTHER_ROUTING_KEY)[KEY].status == "acknowledged"

    # The rules change (the alarm would now route to the default service): the open incident still
    # resolves where it was opened.
    monkeypatch.setenv("ALERT_RULES", '{"rules": []}')
    resolved = cli("replay", "--json", *send, str(EVENTS / "06-ec2-cpu-ok.json"))
    assert resolved.code == 0, resolved.err
    assert resolved.json()["action"] == "resolve"
    assert fake_pd.open_alerts() == {}
    assert all(r.body["routing_key"] == OTHER_ROUTING_KEY for r in fake_pd.requests)
    assert_no_secret(OTHER_ROUTING_KEY, resolved.out, resolved.err)


def test_an_alias_no_source_names_pages_the_default_service_saying_so(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in a rule's or a tag's alias is found only when an alarm routes by it: the page must still
    wake someone. It goes to the default service, the event and the log say why, and the incident
    remembers the alias it went to, so its resolve reaches the same service."""
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    monkeypatch.setenv("ALERT_RULES_FILE", str(FIXTURES / "rules" / "example.yaml"))
    send = ("--send", "--events-url", fake_pd.url)
    run = cli("replay", "--json", *send, str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert run.code == 0, run.err
    assert run.json()["delivered"] is True
    assert "'web'" in run.json()["event"]["payload"]["custom_details"]["routing"]
    assert any("'web'" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    (trigger,) = fake_pd.requests
    assert trigger.body["routing_key"] == ROUTING_KEY
    assert "'web'" in trigger.body["payload"]["custom_details"]["routing"]
    assert set(fake_pd.open_alerts(routing_key=ROUTING_KEY)) == {KEY}

    resolved = cli("replay", "--json", *send, str(EVENTS / "06-ec2-cpu-ok.json"))
    assert resolved.code == 0, resolved.err
    assert resolved.json()["action"] == "resolve"
    assert fake_pd.requests[-1].body["routing_key"] == ROUTING_KEY
    assert fake_pd.open_alerts() == {}
