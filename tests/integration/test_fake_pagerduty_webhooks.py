"""The stand-in's webhooks v3, delivered over real loopback HTTP to a function URL served locally.

The subscriber is a toy receiver behind ``FunctionUrlServer`` that checks signatures the way PagerDuty's
documentation prescribes (split the header on commas, HMAC-SHA256 of the raw body, constant-time
comparison), so these tests prove a real receiver can verify what the stand-in sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from pagerduty_bridge.cli import main as cli_main
from pagerduty_bridge.devtools.fake_pagerduty import (
    SIGNATURE_HEADER,
    Alert,
    DeliverOutOfOrder,
    FakePagerDuty,
    Redeliver,
    Respond,
    WrongSecret,
    incident_webhook,
    sign,
)
from pagerduty_bridge.devtools.fake_pagerduty.command import build_parser
from pagerduty_bridge.devtools.function_url import FunctionUrlServer

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY_A = "0123456789abcdef0123456789abcdef"  # made-up 32-character routing keys
KEY_B = "fedcba9876543210fedcba9876543210"
SECRET = "whsec-0123456789abcdefghijklmnopqrstuv"  # made-up signing secrets
OLD_SECRET = "whsec-old-9876543210zyxwvutsrqponmlkji"
TIMEOUT = 5.0
INCIDENT_FIELDS = {
    "id",
    "type",
    "self",
    "html_url",
    "number",
    "status",
    "incident_key",
    "created_at",
    "title",
    "service",
    "assignees",
    "escalation_policy",
    "teams",
    "priority",
    "urgency",
    "conference_bridge",
    "resolve_reason",
}


# --- a subscriber that verifies like PagerDuty's documentation says ----------------------------------


def verified(raw: bytes, header: str, secret: str) -> bool:
    """PagerDuty's documented check: any ``v1`` signature in the header equals HMAC-SHA256(raw, secret)."""
    expected = "v1=" + hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature.strip()) for signature in header.split(","))


@dataclass
class Receiver:
    """A webhook receiver as a Lambda handler: verifies, records, answers ``status`` (401 if unsigned)."""

    secret: str
    status: int = 202
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode("utf-8")
        self.received.append((event["headers"], raw))
        if not verified(raw, event["headers"].get(SIGNATURE_HEADER.lower(), ""), self.secret):
            return {"statusCode": 401, "body": json.dumps({"message": "bad signature"})}
        return {"statusCode": self.status}

    def event_types(self) -> list[str]:
        return [json.loads(raw)["event"]["event_type"] for _, raw in self.received]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(SECRET)


@pytest.fixture
def subscriber(receiver: Receiver) -> Iterator[FunctionUrlServer]:
    with FunctionUrlServer(receiver) as server:
        yield server


@pytest.fixture
def fake(subscriber: FunctionUrlServer) -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as server:
        server.subscribe_webhooks(subscriber.url, SECRET)
        yield server


def event(
    action: str = "trigger", dedup_key: str = "disk-full", routing_key: str = KEY_A, **payload: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}
    if action == "trigger":
        body["payload"] = {"summary": "Disk full on db-1", "source": "db-1", "severity": "critical", **payload}
    return body


def post(http: requests.Session, fake: FakePagerDuty, body: dict[str, Any]) -> int:
    return http.post(fake.url, json=body, timeout=TIMEOUT).status_code


def payloads(fake: FakePagerDuty) -> list[dict[str, Any]]:
    return [delivery.payload["event"] for delivery in fake.webhook_deliveries]


# --- the payload and its signature -------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_the_raw_body_in_hex() -> None:
    body = '{"event": {"title": "Disk full – ☃"}}'.encode()
    signature = sign(body, SECRET)
    assert signature == "v1=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert re.fullmatch(r"v1=[0-9a-f]{64}", signature)
    assert sign(body + b" ", SECRET) != signature  # the raw bytes, not a re-serialisation
    assert sign(body, OLD_SECRET) != signature


def test_incident_webhook_has_pagerdutys_shape() -> None:
    alert = Alert(KEY_A, "disk-full", "acknowledged", "Disk full on db-1", "warning", number=7, incident_id="P000007")
    agent = {"id": "PUSER01", "type": "user_reference", "summary": "Ada"}
    webhook = incident_webhook(
        "incident.acknowledged",
        alert,
        occurred_at=datetime(2025, 1, 14, 14, 30, 5, 123456, tzinfo=UTC),
        agent=agent,
        event_id="01HZX",
    )
    event_ = webhook["event"]
    assert set(webhook) == {"event"}
    assert set(event_) == {"id", "event_type", "resource_type", "occurred_at", "agent", "client", "data"}
    assert (event_["id"], event_["event_type"], event_["resource_type"]) == (
        "01HZX",
        "incident.acknowledged",
        "incident",
    )
    assert event_["occurred_at"] == "2025-01-14T14:30:05.123Z"
    assert event_["agent"] == agent
    data = event_["data"]
    assert set(data) == INCIDENT_FIELDS
    assert (data["id"], data["type"], data["number"], data["status"]) == ("P000007", "incident", 7, "acknowledged")
    assert data["incident_key"] == "disk-full"  # the dedup key of the alert that opened it
    assert data["title"] == "Disk full on db-1"
    assert data["urgency"] == "low"  # warning and info are low urgency, critical and error high
    assert data["service"]["type"] == "service_reference"
    assert data["html_url"].endswith("/incidents/P000007")
    assert KEY_A not in json.dumps(webhook)
    assert incident_webhook("incident.triggered", alert, occurred_at="2025-01-14T14:30:00Z")["event"]["agent"] is None
    with pytest.raises(ValueError, match="not an incident event type"):
        incident_webhook("service.updated", alert, occurred_at="2025-01-14T14:30:00Z")


# --- what is announced -------------------------------------------------------------------------------


def test_events_api_trigger_ack_and_resolve_are_announced_before_the_answer(
    fake: FakePagerDuty, http: requests.Session, receiver: Receiver
) -> None:
    assert post(http, fake, event()) == 202
    assert receiver.event_types() == ["incident.triggered"]  # delivered before the 202 came back
    assert post(http, fake, event(summary="Disk still full")) == 202  # deduplicated: no new incident
    assert post(http, fake, event("acknowledge")) == 202
    assert post(http, fake, event("acknowledge")) == 202  # no change of state, nothing to announce
    assert post(http, fake, event("resolve")) == 202
    assert post(http, fake, event("resolve")) == 202  # dropped by PagerDuty: nothing to announce
    assert post(http, fake, event()) == 202  # a trigger after a resolve opens a new incident
    assert receiver.event_types() == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
        "incident.triggered",
    ]
    first, acknowledged, resolved, second = payloads(fake)
    assert {e["data"]["incident_key"] for e in payloads(fake)} == {"disk-full"}
    assert first["data"]["id"] == acknowledged["data"]["id"] == resolved["data"]["id"] != second["data"]["id"]
    assert (first["data"]["number"], second["data"]["number"]) == (1, 2)
    assert acknowledged["data"]["title"] == "Disk still full"
    assert resolved["data"]["status"] == "resolved"
    assert first["agent"]["type"] == "service_reference"  # the integration acted, not a person
    assert all(delivery.status == 202 for delivery in fake.webhook_deliveries)


def test_signature_and_headers_verify_as_pagerduty_documents(
    fake: FakePagerDuty, http: requests.Session, receiver: Receiver
) -> None:
    post(http, fake, event(summary="Disk full – ünïcödé ☃"))
    (delivery,) = fake.webhook_deliveries
    headers, raw = receiver.received[0]
    assert raw == delivery.body  # the subscriber got exactly the recorded bytes
    assert headers["x-pagerduty-signature"] == sign(raw, SECRET)
    assert verified(raw, headers["x-pagerduty-signature"], SECRET)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "PagerDuty-Webhook/V3.0"
    assert headers["x-webhook-id"] == delivery.webhook_id
    assert headers["x-webhook-subscription"]
    assert delivery.headers[SIGNATURE_HEADER] == sign(delivery.body, SECRET)
    assert json.loads(raw)["event"]["data"]["title"] == "Disk full – ünïcödé ☃"


def test_rotation_signs_with_both_secrets(subscriber: FunctionUrlServer, http: requests.Session) -> None:
    """During a rotation the header holds two signatures: a receiver knowing either secret accepts."""
    with FakePagerDuty() as fake:
        fake.subscribe_webhooks(subscriber.url, SECRET, rotation_secret=OLD_SECRET)
        post(http, fake, event())
    (delivery,) = fake.webhook_deliveries
    header = delivery.headers[SIGNATURE_HEADER]
    assert header == f"{sign(delivery.body, SECRET)},{sign(delivery.body, OLD_SECRET)}"
    assert verified(delivery.body, header, SECRET)
    assert verified(delivery.body, header, OLD_SECRET)
    assert not verified(delivery.body, header, "some-other-secret")
    assert delivery.status == 202


def test_responder_actions_are_announced_with_the_responder_as_agent(
    fake: FakePagerDuty, http: requests.Session, receiver: Receiver
) -> None:
    post(http, fake, event())
    acknowledged = fake.acknowledge_alert("disk-full", agent="Ada Lovelace")
    assert acknowledged.status == "acknowledged"
    assert fake.acknowledge_alert("disk-full").status == "acknowledged"  # no change, no webhook
    assert fake.unacknowledge_alert("disk-full").status == "triggered"
    assert fake.reassign_alert("disk-full", assignee="Grace Hopper").assignee == "Grace Hopper"
    escalated = fake.escalate_alert("disk-full")
    assert (escalated.escalation_level, escalated.status) == (2, "triggered")
    assert fake.resolve_alert("disk-full", agent="Ada Lovelace").status == "resolved"
    assert receiver.event_types() == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.reassigned",
        "incident.escalated",
        "incident.resolved",
    ]
    events = payloads(fake)
    assert events[1]["agent"]["summary"] == "Ada Lovelace"
    assert events[1]["agent"]["type"] == "user_reference"
    assert events[1]["client"] == {"name": "PagerDuty"}
    assert [a["summary"] for a in events[3]["data"]["assignees"]] == ["Grace Hopper"]
    assert events[5]["data"]["assignees"] == []
    assert fake.alerts[(KEY_A, "disk-full")].status == "resolved"
    assert fake.open_alerts() == {}
    # The Events API sees the responder's resolve: a later resolve is dropped, a trigger opens anew.
    assert post(http, fake, event("resolve")) == 202
    assert fake.dropped() == [event("resolve")]


def test_responder_actions_need_an_open_alert_on_the_named_routing_key(
    fake: FakePagerDuty, http: requests.Session
) -> None:
    with pytest.raises(LookupError, match="no open alert"):
        fake.acknowledge_alert("never-triggered")
    post(http, fake, event(routing_key=KEY_A))
    with pytest.raises(LookupError, match="no open alert"):
        fake.acknowledge_alert("disk-full", routing_key=KEY_B)
    post(http, fake, event(routing_key=KEY_B))
    with pytest.raises(LookupError, match="2 routing keys") as error:
        fake.resolve_alert("disk-full")
    assert KEY_A not in str(error.value) and KEY_B not in str(error.value)
    fake.resolve_alert("disk-full", routing_key=KEY_B)
    assert fake.alerts[(KEY_A, "disk-full")].status == "triggered"
    assert fake.alerts[(KEY_B, "disk-full")].status == "resolved"
    with pytest.raises(LookupError):
        fake.resolve_alert("disk-full", routing_key=KEY_B)  # resolved: nothing open to act on


def test_no_subscription_no_webhooks(http: requests.Session, subscriber: FunctionUrlServer, receiver: Receiver) -> None:
    with FakePagerDuty() as fake:
        post(http, fake, event())
        fake.acknowledge_alert("disk-full")
        assert fake.webhook_deliveries == []
        fake.subscribe_webhooks(subscriber.url, SECRET)
        fake.resolve_alert("disk-full")
        fake.unsubscribe_webhooks()
        post(http, fake, event())
    assert receiver.event_types() == ["incident.resolved"]


def test_the_routing_key_is_in_no_webhook(fake: FakePagerDuty, http: requests.Session, receiver: Receiver) -> None:
    post(http, fake, event(routing_key=KEY_A))
    post(http, fake, event(routing_key=KEY_B))
    fake.escalate_alert("disk-full", routing_key=KEY_B)
    fake.resolve_alert("disk-full", routing_key=KEY_A)
    assert len(receiver.received) == 4
    for headers, raw in receiver.received:
        text = raw.decode() + json.dumps(headers)
        assert KEY_A not in text and KEY_B not in text
    services = {json.loads(raw)["event"]["data"]["service"]["id"] for _, raw in receiver.received}
    assert len(services) == 2  # one service per routing key, told apart without showing either


# --- deliveries and their faults ---------------------------------------------------------------------


def test_deliveries_record_what_the_subscriber_answered(
    fake: FakePagerDuty, http: requests.Session, receiver: Receiver
) -> None:
    receiver.status = 500
    post(http, fake, event())
    receiver.status = 204
    fake.acknowledge_alert("disk-full")
    (failed, accepted) = fake.webhook_deliveries
    assert (failed.status, failed.error, failed.event_type) == (500, None, "incident.triggered")
    assert (accepted.status, accepted.event_type) == (204, "incident.acknowledged")
    assert failed.url == accepted.url
    assert failed.payload["event"]["event_type"] == "incident.triggered"


def test_an_unreachable_subscriber_is_recorded_not_raised(http: requests.Session) -> None:
    with FunctionUrlServer(Receiver(SECRET)) as gone:
        url = gone.url
    with FakePagerDuty() as fake:
        fake.subscribe_webhooks(url, SECRET)
        assert post(http, fake, event()) == 202  # the Events API answers whatever the subscriber does
    (delivery,) = fake.webhook_deliveries
    assert delivery.status is None
    assert delivery.error and "Connection" in delivery.error


def test_redelivery_repeats_the_same_webhook_byte_for_byte(
    fake: FakePagerDuty, http: requests.Session, receiver: Receiver
) -> None:
    fake.script_webhooks(Redeliver())
    post(http, fake, event())
    fake.acknowledge_alert("disk-full")
    again = fake.redeliver_webhook(-1)
    first, second, ack, ack_again = fake.webhook_deliveries
    assert (first.body, first.webhook_id) == (second.body, second.webhook_id)
    assert first.headers == second.headers
    assert (first.fault, second.fault) == ("Redeliver(1)", "Redeliver(1)")
    assert (ack_again.body, ack_again.headers, ack_again.fault) == (ack.body, ack.headers, "redelivered")
    assert again.status == 202
    assert receiver.event_types() == ["incident.triggered"] * 2 + ["incident.acknowledged"] * 2
    ids = [json.loads(raw)["event"]["id"] for _, raw in receiver.received]
    assert ids[0] == ids[1] != ids[2] == ids[3]  # a receiver deduplicates on event.id (or X-Webhook-Id)


def test_out_of_order_delivery(fake: FakePagerDuty, http: requests.Session, receiver: Receiver) -> None:
    fake.script_webhooks(DeliverOutOfOrder())
    post(http, fake, event())
    assert receiver.received == []  # held back
    fake.acknowledge_alert("disk-full")
    assert receiver.event_types() == ["incident.acknowledged", "incident.triggered"]
    late = json.loads(receiver.received[1][1])["event"]
    early = json.loads(receiver.received[0][1])["event"]
    assert late["occurred_at"] <= early["occurred_at"]  # the older event arrives last
    assert fake.webhook_deliveries[1].fault == "DeliverOutOfOrder"
    fake.script_webhooks(DeliverOutOfOrder())
    fake.resolve_alert("disk-full")
    assert len(receiver.received) == 2
    fake.flush_webhooks()  # nothing followed it: flushing delivers it
    assert receiver.event_types()[-1] == "incident.resolved"


def test_wrong_secret_is_rejected_by_a_verifying_receiver(
    fake: FakePagerDuty, http: requests.Session, receiver: Receiver
) -> None:
    fake.script_webhooks(WrongSecret())
    post(http, fake, event())
    fake.acknowledge_alert("disk-full")
    forged, genuine = fake.webhook_deliveries
    assert not verified(forged.body, forged.headers[SIGNATURE_HEADER], SECRET)
    assert (forged.status, forged.fault) == (401, "WrongSecret")
    assert genuine.status == 202


def test_webhook_faults_are_checked(fake: FakePagerDuty) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fake.script_webhooks(Redeliver(0))
    with pytest.raises(TypeError):
        fake.script_webhooks(Respond(500))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        fake.subscribe_webhooks("ftp://example.com/hook", SECRET)


def test_asynchronous_delivery_keeps_order(
    subscriber: FunctionUrlServer, receiver: Receiver, http: requests.Session
) -> None:
    with FakePagerDuty() as fake:
        fake.subscribe_webhooks(subscriber.url, SECRET, synchronous=False)
        for index in range(5):
            post(http, fake, event(dedup_key=f"alarm-{index}"))
        fake.acknowledge_alert("alarm-0")
        fake.flush_webhooks()
        keys = [json.loads(raw)["event"]["data"]["incident_key"] for _, raw in receiver.received]
    assert keys == [f"alarm-{i}" for i in range(5)] + ["alarm-0"]
    assert receiver.event_types()[-1] == "incident.acknowledged"


def test_reset_forgets_deliveries_but_keeps_the_subscription(
    fake: FakePagerDuty, http: requests.Session, receiver: Receiver
) -> None:
    fake.script_webhooks(WrongSecret(), WrongSecret())
    post(http, fake, event())
    fake.reset()
    assert fake.webhook_deliveries == []
    post(http, fake, event())
    (delivery,) = fake.webhook_deliveries
    assert delivery.status == 202  # the second scripted fault is gone too
    assert delivery.payload["event"]["data"]["number"] == 1  # incident numbers start again


def test_control_endpoints_act_and_list_webhooks(fake: FakePagerDuty, http: requests.Session) -> None:
    control = fake.base_url + "/_fake/"
    post(http, fake, event())
    acted = http.post(
        control + "act", json={"action": "acknowledge", "dedup_key": "disk-full", "agent": "Ada"}, timeout=TIMEOUT
    )
    assert acted.status_code == 200
    assert acted.json()["alert"]["status"] == "acknowledged"
    listed = http.get(control + "webhooks", timeout=TIMEOUT).json()["webhooks"]
    assert [(w["event_type"], w["status"]) for w in listed] == [
        ("incident.triggered", 202),
        ("incident.acknowledged", 202),
    ]
    assert listed[1]["payload"]["event"]["agent"]["summary"] == "Ada"
    unknown = http.post(control + "act", json={"action": "acknowledge", "dedup_key": "nope"}, timeout=TIMEOUT)
    assert (unknown.status_code, "no open alert" in unknown.json()["message"]) == (400, True)
    bad = http.post(control + "act", json={"action": "snooze", "dedup_key": "disk-full"}, timeout=TIMEOUT)
    assert bad.status_code == 400
    assert "'action'" in bad.json()["message"]


# --- the command -------------------------------------------------------------------------------------


def test_both_command_lines_spell_the_options_the_same_way(capsys: pytest.CaptureFixture[str]) -> None:
    module_parser = build_parser()
    module_options = {a.option_strings[-1] for a in module_parser._actions if a.option_strings} - {"--help"}
    assert module_options == {"--host", "--port", "--rate-limit", "--webhook-url", "--webhook-secret"}
    assert cli_main(["fake-pagerduty", "--help"]) == 0
    cli_help = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    module_help = " ".join(module_parser.format_help().split())
    # pagerduty-bridge adds --json, as every one of its commands has.
    for help_text, options in ((cli_help, module_options | {"--json"}), (module_help, module_options)):
        for option in options:
            assert f"{option} " in help_text
        assert help_text.count("(default: ") == len(options)  # every option says its default
    assert "port; 0 picks a free one (default: 8787)" in cli_help
    assert "--rate-limit-per-minute" not in cli_help + module_help


def test_the_cli_refuses_a_url_without_its_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["fake-pagerduty", "--port", "0", "--webhook-url", "http://127.0.0.1:9/"]) == 2
    assert "--webhook-secret" in capsys.readouterr().err


def test_the_command_sends_signed_webhooks_and_prints_no_secret(
    subscriber: FunctionUrlServer, receiver: Receiver
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "lambda"), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "pagerduty_bridge.devtools.fake_pagerduty", "--port", "0"]
    command += ["--webhook-url", subscriber.url, "--webhook-secret", SECRET]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        banner = lines.get(timeout=10)
        match = re.search(r"--events-url (http://127\.0\.0\.1:\d+/v2/enqueue)", banner)
        assert match, banner
        assert requests.post(match.group(1), json=event(), timeout=TIMEOUT).status_code == 202
        printed = [lines.get(timeout=5) for _ in range(3)]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = banner + "".join(printed) + process.stderr.read()
    assert receiver.event_types() == ["incident.triggered"]
    assert any("webhook" in line and "incident.triggered" in line and "-> 202" in line for line in printed)
    assert SECRET not in output
    assert KEY_A not in output
