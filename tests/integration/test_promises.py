"""README's promises to on-call engineers, each held through the real paths: the Lambda handler on moto's
DynamoDB (a new container per test) or the CLI, and the PagerDuty stand-in over real HTTP.

Grouped by the README section that makes the promise; each test's docstring quotes it. Promises held
elsewhere (``test_hardening.py``, ``test_reconciliation.py``, ``test_webhooks.py`` …) are not repeated.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty, Respond
from pagerduty_bridge.errors import PagerDutyApiError
from pagerduty_bridge.events_api import MAX_LINK_HREF_LENGTH, EventsClient
from pagerduty_bridge.models import Incident, IncidentStatus
from pagerduty_bridge.pacing import Pacer, key_digest
from pagerduty_bridge.silences import TTL_GRACE, SilenceCache
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from pagerduty_bridge.timeutil import parse_time
from tests.builders import (
    T0,
    alarm_message,
    cli,
    cli_json,
    dedup_key,
    emf_metrics,
    lambda_environment,
    powertools_log_stream,
    sns_event,
    sns_event_of,
)
from tests.conftest import EVENTS, OTHER_ROUTING_KEY, ROUTING_KEY, FakeLambdaContext, assert_valid_event

TABLE = "incidents"
REGION = "eu-west-1"


@dataclass
class Bridge:
    """The function in a new container on moto, PagerDuty the stand-in."""

    fake: FakePagerDuty
    client: Any
    log_stream: io.StringIO
    caplog: pytest.LogCaptureFixture

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler.lambda_handler(event, FakeLambdaContext())
        return result

    def incident(self, key: str) -> Incident | None:
        return DynamoDBIncidentStore(self.client, TABLE).get(key)

    def accepted(self, action: str | None = None) -> list[dict[str, Any]]:
        return [body for body in self.fake.accepted() if action is None or body["event_action"] == action]

    def logs(self) -> str:
        records = [f"{r.getMessage()} {vars(r)!r}" for r in self.caplog.records]
        return "\n".join([self.log_stream.getvalue(), *records])


@pytest.fixture
def bridge(
    monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> Iterator[Bridge]:
    lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url, retry_budget_seconds=1)
    caplog.set_level(logging.INFO)
    with powertools_log_stream() as stream, mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, TABLE)
        yield Bridge(fake_pd, client, stream, caplog)


def promised_trigger() -> dict[str, Any]:
    return {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "held",
        "payload": {"summary": "held", "source": "promises", "severity": "critical"},
    }


def replay_sent(fake: FakePagerDuty, event: Path, state: Path) -> dict[str, Any]:
    """``replay --send`` of one sample against the stand-in, on the embedded store ``state``: the body
    PagerDuty accepted."""
    run = cli("replay", "--json", "--send", "--events-url", fake.url, "--state", str(state), str(event))
    assert run.code == 0, run.err
    (body,) = fake.accepted()
    return body


# --- "What it does": the lifecycle table and the dedup key -----------------------------------------------


def test_an_ignored_insufficient_data_does_not_move_the_ordering_mark(bridge: Bridge) -> None:
    """README: "INSUFFICIENT_DATA … ``ignore`` (default) …; an ignored one changes nothing, not even the ordering
    mark": an OK stamped before it but delivered after it (SNS reorders) still resolves the incident."""
    name = "reordered"
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    bridge.invoke(sns_event(name, "INSUFFICIENT_DATA", "OK", T0 + timedelta(minutes=2)))
    opened = bridge.incident(dedup_key(name))
    assert opened is not None and opened.status is IncidentStatus.TRIGGERED
    assert opened.state_changed_at == T0, "an ignored INSUFFICIENT_DATA moved the ordering mark"

    bridge.invoke(sns_event(name, "OK", "ALARM", T0 + timedelta(minutes=1)))  # older, arriving later

    assert [b["event_action"] for b in bridge.accepted()] == ["trigger", "resolve"]
    assert bridge.fake.alerts[(ROUTING_KEY, dedup_key(name))].status == "resolved"


def test_alarm_arn_keys_two_alarms_of_one_name_and_metric_in_two_accounts_apart(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: "``alarm-arn`` cannot collide: an ARN names one alarm of one account and region": the OK of one
    account's alarm resolves its own alert, never the other account's."""
    monkeypatch.setenv(c.ENV_DEDUP_KEY_STRATEGY, "alarm-arn")
    bridge.invoke(sns_event("db-cpu", "ALARM", "OK", T0, account="111111111111"))
    bridge.invoke(sns_event("db-cpu", "ALARM", "OK", T0, account="222222222222"))
    bridge.invoke(sns_event("db-cpu", "OK", "ALARM", T0 + timedelta(minutes=1), account="111111111111"))

    first = "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:db-cpu"
    second = "arn:aws:cloudwatch:eu-west-1:222222222222:alarm:db-cpu"
    assert [(b["event_action"], b["dedup_key"]) for b in bridge.accepted()] == [
        ("trigger", first),
        ("trigger", second),
        ("resolve", first),
    ]
    assert bridge.fake.alerts[(ROUTING_KEY, second)].status == "triggered", "one account's OK closed the other's page"


def test_alarm_arn_falls_back_to_the_default_key_for_a_message_without_an_arn(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: "only the oldest SNS messages carry none, and fall back to the default key"."""
    monkeypatch.setenv(c.ENV_DEDUP_KEY_STRATEGY, "alarm-arn")
    message = alarm_message("legacy-cpu")
    del message["AlarmArn"]

    bridge.invoke(sns_event_of(message))

    (trigger,) = bridge.accepted()
    assert trigger["dedup_key"] == dedup_key("legacy-cpu")


# --- Guarantees ------------------------------------------------------------------------------------------


def test_a_400_with_pagerdutys_errors_is_dropped_logged_with_its_errors_and_kept_quiet(
    bridge: Bridge, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: "any other ``400`` with PagerDuty's ``errors[]`` … dropped …: logged with PagerDuty's ``errors[]``,
    counted ``DeliveryFailedPermanent``, the state change recorded so duplicates stay quiet"."""
    why = "'payload.summary' is a forbidden word in this test"
    bridge.fake.script(Respond(400, {"status": "invalid event", "message": "Event object is invalid", "errors": [why]}))
    event = sns_event("refused")

    first = bridge.invoke(event)
    again = bridge.invoke(event)

    assert (first, again) == ({"processed": 1, "failed": 1}, {"processed": 1, "failed": 0})
    assert len(bridge.fake.requests) == 1, "the duplicate was sent again"
    assert why in bridge.logs(), "the log does not say what PagerDuty refused"
    assert emf_metrics(capsys.readouterr().out)[c.METRIC_DELIVERY_FAILED_PERMANENT] == 1
    refused = bridge.incident(dedup_key("refused"))
    assert refused is not None and refused.pending_action is None


def test_links_over_2048_characters_are_dropped_and_the_page_still_goes_out(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: "Events keep PagerDuty's limits (…: long details are cut first, links over 2,048 characters
    dropped)": a rule's too-long link and the console link of a very long alarm name go; the page
    and the links that fit stay."""
    long_href = "https://wiki.example.com/" + "x" * MAX_LINK_HREF_LENGTH
    fits = "https://grafana.example.com/d/web"
    rules = {
        "rules": [
            {
                "name": "links",
                "match": {"alarm_name": "w*"},
                "links": [{"href": long_href, "text": "too long"}, {"href": fits, "text": "Web"}],
            }
        ]
    }
    monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps(rules))
    name = "w" * 3000  # its console link (and the event's client_url) is over 2,048 characters

    assert bridge.invoke(sns_event(name)) == {"processed": 1, "failed": 0}

    (trigger,) = bridge.accepted()
    assert_valid_event(trigger)
    assert [link["href"] for link in trigger["links"]] == [fits]
    assert len(trigger.get("client_url", "")) <= MAX_LINK_HREF_LENGTH


@pytest.mark.parametrize(("retry_after", "hold"), [(None, 10.0), ("30", 30.0), ("86400", 60.0)])
def test_a_429_holds_its_key_as_long_as_the_readme_says_and_halves_its_pace(
    fake_pd: FakePagerDuty, retry_after: str | None, hold: float
) -> None:
    """README: "``429`` … this container holds sends for that key: for ``Retry-After`` when given (up to
    PagerDuty's 60 s window); else for 10 s, and it halves its pace for the key"."""
    pacer = Pacer()
    client = EventsClient(fake_pd.url, pacer=pacer)
    fake_pd.script(Respond(429, retry_after=retry_after))
    key = key_digest(ROUTING_KEY, fake_pd.url)

    with pytest.raises(PagerDutyApiError):
        client.send_body(promised_trigger(), budget_seconds=1.0)  # the hold is longer than the budget

    assert hold - 2 <= pacer.delay(key) <= hold + 1
    told = retry_after is not None
    assert pacer.rate(key) == pytest.approx(pacer.max_rate if told else pacer.max_rate / 2)


def test_a_missing_state_change_time_takes_the_receipt_time(bridge: Bridge) -> None:
    """README: "A missing ``StateChangeTime`` also takes the receipt time": the page goes out, and the
    incident's ordering mark is the SNS ``Timestamp``."""
    message = alarm_message("timeless")
    del message["StateChangeTime"]
    event = sns_event_of(message)

    assert bridge.invoke(event) == {"processed": 1, "failed": 0}

    (trigger,) = bridge.accepted()
    assert trigger["dedup_key"] == dedup_key("timeless")
    opened = bridge.incident(dedup_key("timeless"))
    assert opened is not None
    assert opened.state_changed_at == parse_time(event["Records"][0]["Sns"]["Timestamp"])


# --- Alert rules -----------------------------------------------------------------------------------------


def test_a_field_a_rule_leaves_out_falls_through_to_the_seed_template(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """README: "Precedence, highest first: …; the first matching rule; the built-in rules that reproduce the
    seed's three templates; the defaults … A field a rule leaves out falls through": a rule that only
    routes the seed's high-latency alarm keeps its warning template, on the rule's service."""
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY, ROUTING_KEY)
    sample = EVENTS / "03-high-latency-alarm.json"
    templated = replay_sent(fake_pd, sample, tmp_path / "without-rules.db")
    fake_pd.reset()

    rules = {"rules": [{"name": "production", "match": {"alarm_name": "production-*"}, "routing_key": "prod"}]}
    monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps(rules))
    monkeypatch.setenv(c.ENV_ROUTING_KEYS, json.dumps({"prod": OTHER_ROUTING_KEY}))
    routed = replay_sent(fake_pd, sample, tmp_path / "with-rules.db")

    assert routed["routing_key"] == OTHER_ROUTING_KEY
    assert routed["payload"]["severity"] == "warning"
    assert {**routed, "routing_key": ROUTING_KEY} == templated


def test_a_rule_that_says_how_a_seed_alarm_pages_is_not_overridden_by_the_seed_template(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """README: "the first matching rule" comes before "the built-in rules that reproduce the seed's three
    templates": a rule's own severity and summary for a seed alarm are what PagerDuty receives."""
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY, ROUTING_KEY)
    rule = {"name": "quiet", "match": {"alarm_name": "production-*"}, "severity": "info", "summary": "{alarm_name}"}
    monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps({"rules": [rule]}))

    sent = replay_sent(fake_pd, EVENTS / "03-high-latency-alarm.json", tmp_path / "state.db")

    assert (sent["payload"]["severity"], sent["payload"]["summary"]) == (
        "info",
        "production-hybrid-routing-high-latency",
    )


# --- Silences --------------------------------------------------------------------------------------------


def test_a_silence_is_removed_by_dynamodbs_ttl_a_week_after_it_ends(moto_url: str) -> None:
    """README: "Silences live in the incident table (their own key space; DynamoDB's TTL removes them a week
    after they end)"."""
    table = f"incidents-{uuid.uuid4().hex[:8]}"
    where = ("--table", table, "--endpoint-url", moto_url)
    assert cli("table", "create", *where).code == 0
    added = cli_json("silence", "add", "--match", "alarm_name=db-*", "--for", "2h", "--comment", "c", "--json", *where)
    (listed,) = [s for s in cli_json("silence", "list", "--json", *where) if s["id"] == added["id"]]
    ends = parse_time(listed["ends_at"])
    assert ends is not None

    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    (item,) = [i for i in client.scan(TableName=table)["Items"] if added["id"] in json.dumps(i)]

    assert timedelta(days=7) == TTL_GRACE
    assert abs(int(item[c.TTL_ATTRIBUTE]["N"]) - (ends + timedelta(days=7)).timestamp()) <= 1


def test_a_silence_added_to_a_warm_containers_table_holds_within_five_seconds(bridge: Bridge) -> None:
    """README: "the function reads them on every notification, cached five seconds, so a silence holds
    within seconds"."""
    clock = [1000.0]
    assert bridge.invoke(sns_event("warm-up", "ALARM", "OK", T0)) == {"processed": 1, "failed": 0}
    runtime = handler.get_runtime()
    runtime.notifications().silences = SilenceCache(runtime.store, monotonic=lambda: clock[0])
    bridge.invoke(sns_event("warm-up", "OK", "ALARM", T0 + timedelta(minutes=1)))  # the container reads silences

    assert (
        cli("silence", "add", "--match", "alarm_name=db-*", "--for", "1h", "--comment", "c", "--table", TABLE).code == 0
    )
    clock[0] += 5.0
    bridge.invoke(sns_event("db-cpu", "ALARM", "OK", T0))

    assert [b["dedup_key"] for b in bridge.accepted("trigger")] == [dedup_key("warm-up")], "the silence did not hold"
    silenced = bridge.incident(dedup_key("db-cpu"))
    assert silenced is not None and silenced.silence_id is not None
