"""PagerDuty's truth flows back: the webhook receiver under moto, fed by the stand-in's signed webhooks
(through a local function URL) and by hand-made deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler, webhook
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.devtools.function_url import FunctionUrlServer
from pagerduty_bridge.models import Incident, IncidentStatus, Resolution
from pagerduty_bridge.runtime import Runtime, lambda_runtime
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import T0, assert_no_secret, cli, cli_json, dedup_key, emf_metrics, lambda_environment, sns_event
from tests.conftest import ROUTING_KEY, FakeLambdaContext

SECRET = "whsec-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TABLE = "incidents"
NAME = "checkout-api-5xx"
KEY = dedup_key(NAME)


@dataclass
class World:
    """The function and PagerDuty on one timeline: the bridge's clock reads the time of the alarm it is
    handling, ``minutes`` after ``T0``, as do the hand-made webhooks' ``occurred_at``."""

    fake: FakePagerDuty
    store: DynamoDBIncidentStore
    now: datetime = T0

    def alarm(self, state: str = "ALARM", old: str = "OK", minutes: float = 0) -> dict[str, Any]:
        self.now = T0 + timedelta(minutes=minutes)
        event = sns_event(NAME, state, old, self.now)
        return handler.lambda_handler(event, FakeLambdaContext())

    def incident(self) -> Incident:
        found = self.store.get(KEY)
        assert found is not None
        return found


@pytest.fixture
def world(fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, TABLE)
        lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url)
        monkeypatch.setenv(c.ENV_WEBHOOK_SECRET, SECRET)
        monkeypatch.setattr(webhook, "_receiver", None)
        world = World(fake_pd, DynamoDBIncidentStore(client, TABLE))
        monkeypatch.setattr(handler, "lambda_runtime", lambda: _on_clock(lambda_runtime(), lambda: world.now))
        yield world


def _on_clock(runtime: Runtime, clock: Callable[[], datetime]) -> Runtime:
    runtime.clock = clock
    return runtime


def delivery(
    event_type: str,
    *,
    minutes: float,
    key: str = KEY,
    event_id: str | None = None,
    signature: str | None = "good",
    base64_body: bool = False,
    agent: str = "On-call Engineer",
    service: str | None = None,
) -> dict[str, Any]:
    """A function URL event as Lambda delivers PagerDuty's POST (signed with ``SECRET`` unless told);
    ``service``: the id of the PagerDuty service the incident is in (``data.service``), when given."""
    status = {"acknowledged": "acknowledged", "resolved": "resolved"}.get(event_type.split(".")[1], "triggered")
    body = json.dumps(
        {
            "event": {
                "id": event_id or uuid.uuid4().hex,
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "agent": {"id": "PLH1HKV", "type": "user_reference", "summary": agent},
                "client": None,
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "number": 2,
                    "status": status,
                    "incident_key": key,
                    "title": "checkout 5xx",
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                    "urgency": "high",
                    "priority": {"id": "P1ID", "summary": "P1"} if event_type.endswith("priority_updated") else None,
                    **({"service": {"id": service, "type": "service_reference"}} if service else {}),
                },
            }
        }
    ).encode()
    good = "v1=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "user-agent": "PagerDuty-Webhook/V3.0"}
    if signature == "good":
        headers["x-pagerduty-signature"] = good
    elif signature == "rotation":
        headers["x-pagerduty-signature"] = "v1=" + "0" * 64 + "," + good
    elif signature is not None:
        headers["x-pagerduty-signature"] = signature
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
    }


def post(event: dict[str, Any]) -> int:
    answer = webhook.lambda_handler(event, FakeLambdaContext())
    return int(answer["statusCode"])


def test_the_loop_through_pagerduty_acknowledge_then_resolve(world: World) -> None:
    """Signed webhooks from PagerDuty (the stand-in, through a function URL) record who acknowledged
    and resolved, and when; the alarm's OK then sends a resolve that changes nothing at PagerDuty (the
    resolution reported may have been another service's incident under the same key)."""
    with FunctionUrlServer(webhook.lambda_handler) as receiver:
        world.fake.subscribe_webhooks(receiver.url, SECRET)
        assert world.alarm() == {"processed": 1, "failed": 0}
        triggered = world.incident()
        assert triggered.pd_incident_id and triggered.pd_html_url, "incident.triggered carried PagerDuty's incident"
        assert triggered.pending_action is None, "the webhook beside the delivery did not strand its claim"

        world.fake.acknowledge_alert(KEY, agent="On-call Engineer")
        acked = world.incident()
        assert acked.status is IncidentStatus.ACKNOWLEDGED
        assert acked.acknowledged_by is not None and "On-call Engineer" in acked.acknowledged_by
        assert acked.acknowledged_at is not None

        world.fake.resolve_alert(KEY, agent="Jane Responder")
        resolved = world.incident()
        assert (resolved.status, resolved.resolution) == (IncidentStatus.RESOLVED, Resolution.PAGERDUTY)
        assert resolved.resolved_by is not None and "Jane Responder" in resolved.resolved_by
        assert all(d.status == 200 for d in world.fake.webhook_deliveries)

    before = world.fake.alerts
    world.alarm("OK", "ALARM", minutes=5)
    assert [r.body["event_action"] for r in world.fake.requests][-1] == "resolve"
    assert world.fake.alerts == before, "the resolve changed something at PagerDuty"
    assert world.incident().resolution is Resolution.PAGERDUTY, "who resolved it is kept"


def test_bad_or_missing_signatures_are_refused_and_change_nothing(world: World) -> None:
    world.alarm()
    before = world.incident()
    assert post(delivery("incident.acknowledged", minutes=1, signature=None)) == 400
    assert post(delivery("incident.acknowledged", minutes=1, signature="sha256=abc")) == 400
    assert post(delivery("incident.acknowledged", minutes=1, signature="v1=" + "f" * 64)) == 401
    padded = delivery("incident.acknowledged", minutes=1)
    padded["headers"]["x-pagerduty-signature"] += ",sha256=abc"
    assert post(padded) == 400, "a header is malformed by any part, even beside a good signature"
    other_scheme = delivery("incident.acknowledged", minutes=1)
    other_scheme["headers"]["x-pagerduty-signature"] = other_scheme["headers"]["x-pagerduty-signature"].replace(
        "v1=", "v2="
    )
    assert post(other_scheme) == 400, "only v1= is HMAC-SHA256 of the body"
    assert world.incident() == before


def test_a_rotation_header_with_one_good_signature_is_accepted(world: World) -> None:
    world.alarm()
    assert post(delivery("incident.acknowledged", minutes=1, signature="rotation")) == 200
    assert world.incident().status is IncidentStatus.ACKNOWLEDGED


def signed_with(secret: str, event: dict[str, Any]) -> dict[str, Any]:
    event["headers"]["x-pagerduty-signature"] = (
        "v1=" + hmac.new(secret.encode(), event["body"].encode(), hashlib.sha256).hexdigest()
    )
    return event


def signing_secret_in_secrets_manager(monkeypatch: pytest.MonkeyPatch, value: str | bytes) -> None:
    """The deployed set-up: the receiver reads its signing secret from Secrets Manager."""
    client = boto3.client("secretsmanager")
    name = f"webhook-signing-{uuid.uuid4().hex}"
    kwargs = {"SecretBinary": value} if isinstance(value, bytes) else {"SecretString": value}
    arn = client.create_secret(Name=name, **kwargs)["ARN"]
    monkeypatch.delenv(c.ENV_WEBHOOK_SECRET, raising=False)
    monkeypatch.setenv(c.ENV_WEBHOOK_SECRET_ARN, arn)
    monkeypatch.setattr(webhook, "_receiver", None)


def test_attack_a_webhook_signed_with_the_stacks_public_placeholder_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Until someone puts PagerDuty's signing secret in, the created secret holds a text anyone can read
    in this repository: a resolution signed with it must not close the incident."""
    signing_secret_in_secrets_manager(monkeypatch, c.WEBHOOK_SECRET_PLACEHOLDER)
    world.alarm()
    forged = signed_with(c.WEBHOOK_SECRET_PLACEHOLDER, delivery("incident.resolved", minutes=1, agent="attacker"))
    assert post(forged) == 503, "refused, and PagerDuty's own deliveries come again once the secret is in"
    assert world.incident().status is IncidentStatus.TRIGGERED
    assert any("no signing secret is set" in str(getattr(r, "problem", "")) for r in caplog.records)
    assert f'"{c.METRIC_WEBHOOK_REJECTED}"' in capsys.readouterr().out
    signing_secret_in_secrets_manager(monkeypatch, c.WEBHOOK_SECRET_PLACEHOLDER + "\n" + SECRET)
    assert post(forged) == 401, "beside a real secret the placeholder still proves nothing"
    assert post(delivery("incident.acknowledged", minutes=2)) == 200


@pytest.mark.parametrize(
    "stored",
    [
        f'["{SECRET}", "whsec-the-previous-one"]',
        f'[\n  "whsec-the-previous-one",\n  "{SECRET}"\n]',
        f"whsec-the-previous-one\n{SECRET}\n",
        f"  {SECRET}  ",
    ],
    ids=["json-list", "json-list-on-lines", "lines", "spaces"],
)
def test_a_signing_secret_as_a_json_list_or_lines_accepts_each(
    world: World, monkeypatch: pytest.MonkeyPatch, stored: str
) -> None:
    signing_secret_in_secrets_manager(monkeypatch, stored)
    world.alarm()
    assert post(delivery("incident.acknowledged", minutes=1)) == 200
    assert world.incident().status is IncidentStatus.ACKNOWLEDGED


def test_a_signing_secret_holding_a_comma_is_one_secret(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "whsec-with,a-comma"
    signing_secret_in_secrets_manager(monkeypatch, secret)
    world.alarm()
    assert post(signed_with(secret, delivery("incident.acknowledged", minutes=1))) == 200
    assert post(signed_with("whsec-with", delivery("incident.acknowledged", minutes=2))) == 401


def test_a_signing_secret_that_is_not_text_is_a_configuration_error_not_a_crash(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    signing_secret_in_secrets_manager(monkeypatch, b"\xff\xfe\x00binary")
    world.alarm()
    assert post(delivery("incident.acknowledged", minutes=1)) == 503
    errors = [str(getattr(r, "error", "")) for r in caplog.records]
    assert any("is not text" in e and c.ENV_WEBHOOK_SECRET_ARN in e for e in errors), errors


@pytest.mark.parametrize(
    "body",
    [
        '{"event": ' + "[" * 100_000 + "]" * 100_000 + "}",
        json.dumps({"event": {"id": "e1", "event_type": "incident.acknowledged", "resource_type": "incident"}})[:-2]
        + ', "occurred_at": "2025-01-14T14:31:00Z", "agent": {"summary": "\\ud800"}, '
        + f'"data": {{"incident_key": "{KEY}"}}}}}}',
        "\udcff not UTF-8",
    ],
    ids=["nested-beyond-reason", "lone-surrogate", "not-utf-8"],
)
def test_attack_a_signed_body_the_receiver_cannot_use_is_answered_never_raised(world: World, body: str) -> None:
    """Signed, so it passed the signature check (PagerDuty's bug, or a leaked secret): still a clear
    answer, never a crashed function (whose 502 PagerDuty would deliver again and again)."""
    world.alarm()
    event = delivery("incident.acknowledged", minutes=1)
    raw = body.encode("utf-8", "surrogateescape")
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    event["headers"]["x-pagerduty-signature"] = "v1=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    status = post(event)
    incident = world.incident()
    if status == 200:  # readable once cleaned: recorded, with the unreadable text replaced
        assert incident.acknowledged_by is not None and "\ufffd" in incident.acknowledged_by
    else:
        assert status == 400 and incident.status is IncidentStatus.TRIGGERED


def test_a_base64_body_is_verified_on_its_bytes(world: World) -> None:
    world.alarm()
    assert post(delivery("incident.acknowledged", minutes=1, base64_body=True)) == 200
    assert world.incident().status is IncidentStatus.ACKNOWLEDGED


def test_an_oversized_body_is_refused_before_anything_is_read(world: World) -> None:
    world.alarm()
    huge = delivery("incident.acknowledged", minutes=1)
    huge["body"] = "x" * (webhook.MAX_BODY_BYTES + 1)
    assert post(huge) == 413
    assert world.incident().status is IncidentStatus.TRIGGERED


def test_redelivered_and_out_of_order_events_never_move_an_incident_backwards(world: World) -> None:
    world.alarm()
    ack = delivery("incident.acknowledged", minutes=1, event_id="ev-ack")
    resolve = delivery("incident.resolved", minutes=3, event_id="ev-resolve")
    assert post(ack) == 200
    assert post(resolve) == 200
    resolved = world.incident()
    assert post(ack) == 200, "a redelivery is answered"
    assert post(delivery("incident.unacknowledged", minutes=2)) == 200, "an older event is answered"
    after = world.incident()
    assert (after.status, after.resolved_at, after.pd_updated_at) == (
        resolved.status,
        resolved.resolved_at,
        resolved.pd_updated_at,
    )


def test_a_redelivered_reopening_does_not_reopen_what_the_alarms_ok_closed_since(world: World) -> None:
    """PagerDuty delivers a webhook again when it missed the answer (for hours). A redelivery of the
    newest event it sent is no older than what the table holds: only its id tells it apart, and applied
    again, a redelivered ``incident.reopened`` would reopen an incident the alarm's OK has closed."""
    world.alarm()
    reopened = delivery("incident.reopened", minutes=2, event_id="ev-reopen")
    assert post(delivery("incident.resolved", minutes=1, event_id="ev-resolve")) == 200
    assert post(reopened) == 200
    assert world.incident().status is IncidentStatus.TRIGGERED
    world.alarm("OK", "ALARM", minutes=5)
    closed = world.incident()
    assert closed.status is IncidentStatus.RESOLVED

    answer = webhook.lambda_handler(reopened, FakeLambdaContext())

    assert (answer["statusCode"], answer["body"]) == (200, "webhook_redelivered")
    assert world.incident() == closed, "a redelivery must change nothing"


def test_a_webhook_never_reopens_an_incident_whose_alarm_is_ok_unless_pagerduty_says_reopened(world: World) -> None:
    world.alarm()
    world.alarm("OK", "ALARM", minutes=5)
    assert post(delivery("incident.triggered", minutes=6)) == 200
    assert world.incident().status is IncidentStatus.RESOLVED
    assert post(delivery("incident.reopened", minutes=7)) == 200
    assert world.incident().status is IncidentStatus.TRIGGERED


def test_the_triggered_webhook_of_a_keys_next_incident_is_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a resolution, the bridge's next trigger opens a new PagerDuty incident under the same key.
    PagerDuty's ``incident.triggered`` for it occurs while the trigger is on its way: after the alarm
    changed state, before the bridge saw the 202. Recorded, it gives the table the new incident's status
    and link; taken for the earlier incident's (older than the acceptance), it was dropped, and the table
    knew nothing of the new incident until someone acknowledged it."""

    def ticking() -> datetime:  # the bridge's clock moves on a second at every reading
        world.now += timedelta(seconds=1)
        return world.now

    monkeypatch.setattr(handler, "lambda_runtime", lambda: _on_clock(lambda_runtime(), ticking))
    world.alarm()
    assert post(delivery("incident.resolved", minutes=2)) == 200
    world.alarm("OK", "ALARM", minutes=5)
    world.alarm("ALARM", "OK", minutes=10)
    accepted = world.incident()
    assert accepted.is_open and accepted.pd_status is None, "nothing known yet of PagerDuty's new incident"
    assert accepted.trigger_sent_at is not None and accepted.trigger_sent_at > T0 + timedelta(minutes=10, seconds=1)

    assert post(delivery("incident.triggered", minutes=10 + 1 / 60, event_id="ev-next")) == 200
    recorded = world.incident()
    assert recorded.pd_status == "triggered"
    assert recorded.pd_updated_at == T0 + timedelta(minutes=10, seconds=1)

    late = delivery("incident.triggered", minutes=0, event_id="ev-first")  # the earlier incident's, redelivered late
    assert post(late) == 200
    assert world.incident().pd_updated_at == recorded.pd_updated_at, "an earlier incident's event changes nothing"


def test_an_alarm_after_a_resolution_in_pagerduty_opens_a_new_alert(world: World) -> None:
    world.alarm()
    assert post(delivery("incident.resolved", minutes=1)) == 200
    world.fake.resolve_alert(KEY)
    world.alarm("OK", "ALARM", minutes=5)
    world.alarm("ALARM", "OK", minutes=10)
    assert world.incident().status is IncidentStatus.TRIGGERED
    assert KEY in world.fake.open_alerts(ROUTING_KEY)


def assert_the_alarms_ok_resolves_pagerdutys_alert(world: World, *, minutes: float) -> None:
    incident = world.incident()
    assert incident.is_open, f"the late webhook closed the incident PagerDuty holds open ({incident.resolution})"
    assert KEY in world.fake.open_alerts(ROUTING_KEY)
    world.alarm("OK", "ALARM", minutes=minutes)
    assert KEY not in world.fake.open_alerts(ROUTING_KEY), "PagerDuty's alert stayed open after its alarm cleared"
    assert world.incident().status is IncidentStatus.RESOLVED


def test_the_first_incident_of_a_key_takes_every_webhook_whatever_the_clocks_say(world: World) -> None:
    """Nothing came before a key's first incident, so no webhook about it can be stale, even one whose
    time reads earlier than the bridge's (PagerDuty's clock behind, a handler run late)."""
    world.alarm(minutes=5)
    assert post(delivery("incident.acknowledged", minutes=4)) == 200
    assert world.incident().status is IncidentStatus.ACKNOWLEDGED
    assert post(delivery("incident.resolved", minutes=4.5)) == 200
    assert world.incident().resolution is Resolution.PAGERDUTY


def test_attack_a_late_resolution_of_the_previous_incident_does_not_close_the_new_one(world: World) -> None:
    """The alarm clears, fires again (PagerDuty opens a new alert for the key), and only then arrives
    the webhook of the first incident's resolution (PagerDuty retries a delivery for hours)."""
    world.alarm(minutes=0)
    world.alarm("OK", "ALARM", minutes=5)
    world.alarm("ALARM", "OK", minutes=10)
    late = delivery("incident.resolved", minutes=5, agent="Jane Responder")
    late_ack = delivery("incident.acknowledged", minutes=2)
    assert post(late) == 200 and post(late_ack) == 200
    incident = world.incident()
    assert incident.status is IncidentStatus.TRIGGERED, "nor does the first incident's acknowledgement count"
    assert incident.webhook_event_ids[-2:] == (
        json.loads(late["body"])["event"]["id"],
        json.loads(late_ack["body"])["event"]["id"],
    ), "both are remembered, so their redeliveries are recognised"
    assert_the_alarms_ok_resolves_pagerdutys_alert(world, minutes=15)


def test_attack_a_resolution_made_before_a_new_trigger_does_not_close_what_the_trigger_opened(world: World) -> None:
    """A responder resolves in PagerDuty (its webhook is slow); meanwhile the alarm passes through
    INSUFFICIENT_DATA and fires again, so the bridge sends a trigger, and PagerDuty opens a new alert."""
    world.alarm(minutes=0)
    world.fake.resolve_alert(KEY, agent="Jane Responder")
    world.alarm("INSUFFICIENT_DATA", "ALARM", minutes=2)
    world.alarm("ALARM", "INSUFFICIENT_DATA", minutes=3)
    assert post(delivery("incident.resolved", minutes=1, agent="Jane Responder")) == 200
    assert_the_alarms_ok_resolves_pagerdutys_alert(world, minutes=10)


def test_attack_a_resolution_recorded_while_a_trigger_is_on_its_way_leaves_the_incident_open(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resolution's webhook lands while the trigger is being sent: it may have been made just
    before the trigger reached PagerDuty (a new alert opens) or just after (the alert is resolved);
    the table cannot tell, so it keeps the incident open, and the alarm's OK resolves what is open."""
    world.alarm(minutes=0)
    world.fake.resolve_alert(KEY, agent="Jane Responder")
    world.alarm("INSUFFICIENT_DATA", "ALARM", minutes=4)
    sender = handler.get_runtime().notifications().delivery.sender
    send = sender.send_body
    answers: list[int] = []

    def resolution_lands_first(body: dict[str, Any], **kwargs: Any) -> Any:
        answers.append(post(delivery("incident.resolved", minutes=5, agent="Jane Responder")))
        return send(body, **kwargs)

    monkeypatch.setattr(sender, "send_body", resolution_lands_first)
    world.alarm("ALARM", "INSUFFICIENT_DATA", minutes=5)
    assert answers == [200]
    assert world.incident().pending_action is None
    assert_the_alarms_ok_resolves_pagerdutys_alert(world, minutes=10)


def test_reassignment_escalation_and_priority_are_recorded_as_details(world: World) -> None:
    world.alarm()
    assert post(delivery("incident.priority_updated", minutes=1)) == 200
    assert world.incident().pd_details["priority"].startswith("P1")


def test_webhooks_for_incidents_the_bridge_did_not_open_are_answered_and_ignored(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post(delivery("incident.acknowledged", minutes=1, key="someone-elses-incident")) == 200
    assert world.store.get("someone-elses-incident") is None
    assert f'"{c.METRIC_WEBHOOK_IGNORED}"' in capsys.readouterr().out


def test_stats_count_acknowledgements_made_in_pagerduty(world: World) -> None:
    world.alarm()
    assert post(delivery("incident.acknowledged", minutes=4)) == 200
    assert post(delivery("incident.resolved", minutes=10)) == 200
    stats = cli_json("stats", "--json", "--table", TABLE)
    assert stats["acknowledgement_rate"] == 1.0
    assert stats["mean_acknowledgement_seconds"] == 240
    assert stats["mean_resolution_seconds"] == 600
    assert stats["resolved_by"]["pagerduty"] == 1
    shown = cli("incidents", "show", KEY, "--table", TABLE)
    assert shown.code == 0 and "acknowledged_by" in shown.out and "PGR0VU2" in shown.out


def test_webhook_verify_checks_a_captured_delivery_offline(tmp_path: Path) -> None:
    captured = tmp_path / "delivery.json"
    captured.write_text(json.dumps(delivery("incident.acknowledged", minutes=1)))
    good = cli("webhook", "verify", "--secret", SECRET, str(captured), "--json")
    assert good.code == 0 and good.json()["verdict"] == "valid" and good.json()["incident_key"] == KEY
    wrong = cli("webhook", "verify", "--secret", "not-the-secret", str(captured))
    assert wrong.code == 1 and "mismatch" in wrong.out
    assert SECRET not in good.out + wrong.out


def test_the_webhook_answers_refer_to_no_secret(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.alarm()
    post(delivery("incident.acknowledged", minutes=1, signature="v1=" + "a" * 64))
    post(delivery("incident.acknowledged", minutes=1))
    output = capsys.readouterr()
    assert_no_secret([SECRET, ROUTING_KEY], output.out, output.err)


def test_the_time_an_incident_was_acknowledged_is_the_first_acknowledgement(world: World) -> None:
    world.alarm()
    post(delivery("incident.acknowledged", minutes=2))
    post(delivery("incident.unacknowledged", minutes=3))
    post(delivery("incident.acknowledged", minutes=4))
    assert world.incident().acknowledged_at == datetime(2025, 1, 14, 14, 32, tzinfo=UTC)


def test_an_event_about_an_incident_already_resolved_counts_no_second_resolution(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The resolutions on the dashboard are incidents closed: a later event about one already closed (a
    priority change, an acknowledgement arriving late) is recorded, not counted as closing it again."""
    world.alarm()
    assert post(delivery("incident.resolved", minutes=1)) == 200
    capsys.readouterr()
    assert post(delivery("incident.priority_updated", minutes=2)) == 200
    assert post(delivery("incident.acknowledged", minutes=3)) == 200
    counted = emf_metrics(capsys.readouterr().out)
    assert counted[c.METRIC_WEBHOOK_APPLIED] == 2, "both events were recorded: nothing was tested"
    assert counted[c.METRIC_INCIDENT_RESOLVED] == 0
    assert world.incident().status is IncidentStatus.RESOLVED
