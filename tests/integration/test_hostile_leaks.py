"""Attacks on the promise that a routing key or a secret never leaves the process, and on the seed API
used as a library: every path a key could escape by (errors, reprs, logs, output), hostile inputs."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from pydantic import SecretStr, ValidationError

from pagerduty_bridge import PagerDutyIntegration, ServiceConfig
from pagerduty_bridge.delivery import DryRunSender
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.errors import InvalidEventError, PagerDutyDeliveryError
from pagerduty_bridge.events_api import EventPayload, EventsClient, Image, Link, PagerDutyEvent
from pagerduty_bridge.keys import RoutingKeys
from pagerduty_bridge.models import AlertSeverity, EventAction
from pagerduty_bridge.redaction import install_log_redaction, scrub
from pagerduty_bridge.runtime import cloudwatch_client
from pagerduty_bridge.seed.templates import HIGH_LATENCY
from pagerduty_bridge.settings import Settings
from tests.builders import assert_no_secret, cli
from tests.conftest import EVENTS, OTHER_ROUTING_KEY, ROUTING_KEY, assert_valid_event


def integration(url: str) -> PagerDutyIntegration:
    config = ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="checkout")
    return PagerDutyIntegration(config, "production", events_url=url, settings=Settings(retry_budget_seconds=2.0))


# --- the seed API's service config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"integrationKey": ROUTING_KEY, "service_name": "checkout"}, "integrationKey"),  # the seed's spelling
        ({"integration_key": [ROUTING_KEY], "service_name": "checkout"}, "integration_key"),
        ({"integration_key": {"default": ROUTING_KEY}, "service_name": "checkout"}, "integration_key"),
        ({"integration_key": ROUTING_KEY, "service_name": "checkout", "key": ROUTING_KEY}, "key"),
    ],
)
def test_attack_a_service_config_refused_does_not_print_its_key(fields: dict[str, Any], named: str) -> None:
    """A config pydantic refuses (the seed's camelCase ``integrationKey``, a key in a list): the error
    names the field, and never repeats the key it was given (pydantic's ``input_value=``)."""
    with pytest.raises(ValidationError) as caught:
        ServiceConfig(**fields)
    assert named in str(caught.value)
    assert_no_secret(ROUTING_KEY, caught.value, caught.value.errors(), caught.value.json())


def test_attack_an_update_of_the_service_config_refused_does_not_print_the_key(fake_pd: FakePagerDuty) -> None:
    """``update_service_config(integrationKey=…)`` (the seed's spelling) is refused naming the field, the
    key given in no part of the error, and the config as it was."""
    bridge = integration(fake_pd.url)
    new_key = "N3wRoutingKey0000000000000000042"
    with pytest.raises(ValidationError, match="integrationKey") as caught:
        bridge.update_service_config(integrationKey=new_key)
    assert_no_secret([ROUTING_KEY, new_key], caught.value, caught.value.errors(), caught.value.json())
    bridge.trigger_high_latency_incident(7450, 5000)
    (body,) = fake_pd.accepted()
    assert body["routing_key"] == ROUTING_KEY
    assert_valid_event(body)


# --- the seed API fed what its types do not say -------------------------------------------------------------


@pytest.mark.parametrize("dedup_key", [123, None, b"checkout-latency", ["checkout-latency"]])
@pytest.mark.parametrize("call", ["acknowledge_incident", "resolve_incident", "get_incident"])
def test_attack_a_dedup_key_that_is_not_text_is_refused_naming_it(
    fake_pd: FakePagerDuty, call: str, dedup_key: object
) -> None:
    """A caller's number, ``None`` or bytes for a dedup key: a ``TypeError`` that names ``dedup_key``
    and what it was given, not ``object of type 'int' has no len()`` from deep in the bridge."""
    bridge = integration(fake_pd.url)
    with pytest.raises(TypeError, match=r"^dedup_key must be a string, not "):
        getattr(bridge, call)(dedup_key)
    assert fake_pd.requests == []


_EVENT_FIELDS = frozenset({"event_action", "dedup_key", "links", "images", "client", "client_url"})


def nested(depth: int) -> dict[str, Any]:
    """A dict ``depth`` dicts deep (built without recursion)."""
    top: dict[str, Any] = {}
    inner = top
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    return top


def hand_made(**changes: Any) -> PagerDutyEvent:
    """A caller's own trigger event, with ``changes`` to it or to its payload."""
    event: dict[str, Any] = {"event_action": EventAction.TRIGGER, "dedup_key": "checkout-latency"}
    payload: dict[str, Any] = {
        "summary": "Checkout latency high",
        "source": "checkout",
        "severity": AlertSeverity.ERROR,
    }
    for name, value in changes.items():
        (event if name in _EVENT_FIELDS else payload)[name] = value
    return PagerDutyEvent(**event, payload=EventPayload(**payload))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"dedup_key": 7}, "dedup_key"),
        ({"summary": 5}, "payload.summary"),
        ({"source": None}, "payload.source"),
        ({"component": ["web"]}, "payload.component"),
        ({"custom_details": "not a mapping"}, "payload.custom_details"),
        ({"timestamp": "2025-01-14T14:30:00Z"}, "payload.timestamp"),
        ({"severity": "urgent"}, "payload.severity"),
        ({"event_action": "page"}, "event_action"),
        ({"links": (Link(href=5),)}, "links[0].href"),  # type: ignore[arg-type]
        ({"links": ("https://grafana.example.com",)}, "links[0]"),
        ({"links": (Link("https://grafana.example.com", text=7),)}, "links[0].text"),  # type: ignore[arg-type]
        ({"images": (Image(src=5),)}, "images[0].src"),  # type: ignore[arg-type]
        ({"client": 5}, "client"),
        ({"client_url": 5}, "client_url"),
        ({"custom_details": {(1, 2): "a tuple for a key"}}, "the event cannot be sent: payload.custom_details"),
        ({"custom_details": nested(5000)}, "the event cannot be sent: payload.custom_details"),
    ],
)
def test_attack_a_hand_made_trigger_of_the_wrong_types_is_refused_naming_the_field(
    fake_pd: FakePagerDuty, changes: dict[str, Any], named: str
) -> None:
    """A hand-made event whose field holds what its type does not say failed with an ``AttributeError``
    or a ``TypeError`` naming nothing (``'str' object has no attribute 'value'``): it is refused before
    anything is stored or sent, the error naming the field."""
    bridge = integration(fake_pd.url)
    with pytest.raises((TypeError, ValueError, InvalidEventError), match=rf"^{re.escape(named)} "):
        bridge.trigger_incident(hand_made(**changes))
    assert fake_pd.requests == []
    assert bridge.get_active_incidents() == {}


@pytest.mark.parametrize(("severity", "action"), [("error", "trigger"), ("WARNING", EventAction.TRIGGER)])
def test_a_hand_made_trigger_with_its_severity_or_action_as_text_is_sent(
    fake_pd: FakePagerDuty, severity: str, action: Any
) -> None:
    """Severities are read in any case wherever one is read, the seed API included: a hand-made event's
    severity or action given as text (``"error"``) is sent as that severity, not an ``AttributeError``."""
    bridge = integration(fake_pd.url)
    response = bridge.trigger_incident(hand_made(severity=severity, event_action=action))
    assert response.dedup_key == "checkout-latency"
    (body,) = fake_pd.accepted()
    assert body["payload"]["severity"] == severity.lower()
    assert_valid_event(body)


# --- a routing key where an alias belongs ----------------------------------------------------------------------


def test_attack_a_routing_key_written_where_its_alias_belongs_is_not_shown_on_the_page(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule's ``routing_key:`` given the web service's key itself instead of its alias (the field's
    name invites it): no alias has that name, so the page goes to the default service with a custom
    detail saying which alias was missing. That detail showed the key in full, to every responder of
    the default service: it names it masked, and the page still goes out."""
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps({"web": OTHER_ROUTING_KEY}))
    rule = {"name": "web", "match": {"namespace": "AWS/EC2"}, "routing_key": OTHER_ROUTING_KEY}
    monkeypatch.setenv("ALERT_RULES", json.dumps({"rules": [rule]}))

    sent = cli("replay", "--json", "--send", "--events-url", fake_pd.url, str(EVENTS / "05-ec2-cpu-alarm.json"))

    assert sent.code == 0, sent.err
    (body,) = fake_pd.accepted()
    assert body["routing_key"] == ROUTING_KEY, "the page went to the default service"
    note = body["payload"]["custom_details"]["routing"]
    assert "has no routing key configured" in note and OTHER_ROUTING_KEY[-4:] in note
    assert_no_secret(OTHER_ROUTING_KEY, body, sent.out, sent.err)
    assert_valid_event(body)


def test_attack_rules_check_in_ci_does_not_print_a_routing_key_written_as_an_alias(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``rules check`` / ``rules test`` (checks for CI, whose logs many can read) printed a rule's
    ``routing_key:`` holding a key, in full, in the warning and in every sample's row. It is shown by
    its last four characters, and the warning says what is wrong: a key where its alias belongs."""
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEYS", json.dumps({"web": OTHER_ROUTING_KEY}))
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"rules:\n  - name: web\n    match: {{namespace: AWS/EC2}}\n    routing_key: {OTHER_ROUTING_KEY}\n",
        encoding="utf-8",
    )

    checked = cli("rules", "check", str(rules))
    checked_json = cli("rules", "check", "--json", str(rules))
    tested = cli("rules", "test", "--rules", str(rules), "--alarm-name", "web-cpu", "--namespace", "AWS/EC2")
    expected = cli(
        "rules", "test", "--rules", str(rules), "--alarm-name", "web-cpu", "--namespace", "AWS/EC2",
        "--expect", f"routing_key={OTHER_ROUTING_KEY}",
    )  # fmt: skip

    assert (checked.code, checked_json.code, tested.code, expected.code) == (0, 0, 0, 0), expected.err
    assert "looks like a routing key" in checked.err
    assert OTHER_ROUTING_KEY[-4:] in checked.out and OTHER_ROUTING_KEY[-4:] in tested.out
    assert_no_secret(OTHER_ROUTING_KEY, *(run.out + run.err for run in (checked, checked_json, tested, expected)))


@pytest.mark.parametrize("where", ["rule", "tag"])
def test_attack_a_routing_key_written_as_an_alias_is_not_stored(
    fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    """A page that sends nothing (its rule suppresses it) is still recorded, with its routing alias:
    a key written as that alias (in a rule, or a ``pagerduty:routing`` tag) was stored as it is, in
    the table and in what ``incidents show`` prints. It is kept masked, as every printed key."""
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    rule: dict[str, Any] = {"name": "web", "match": {"namespace": "AWS/EC2"}, "suppress": True}
    event = json.loads((EVENTS / "05-ec2-cpu-alarm.json").read_text(encoding="utf-8"))
    if where == "rule":
        rule["routing_key"] = OTHER_ROUTING_KEY
    else:
        message = json.loads(event["Records"][0]["Sns"]["Message"])
        message["Tags"] = {"pagerduty:routing": OTHER_ROUTING_KEY}
        event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    monkeypatch.setenv("ALERT_RULES", json.dumps({"rules": [rule]}))
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    state = tmp_path / "state.db"

    sent = cli("replay", "--send", "--events-url", fake_pd.url, "--state", str(state), str(path))
    shown = cli("incidents", "show", "web-prod-cpu-high-CPUUtilization", "--json", "--state", str(state))

    assert (sent.code, shown.code) == (0, 0), sent.err + shown.err
    assert "suppressed" in sent.out and fake_pd.requests == [], "the rule did not apply"
    assert shown.json()["routing_key_alias"].endswith(OTHER_ROUTING_KEY[-4:])
    assert_no_secret(OTHER_ROUTING_KEY, sent.out, shown.out, state.read_bytes().decode("utf-8", "replace"))


# --- what the redactor scrubs ----------------------------------------------------------------------------------


def test_attack_a_word_beside_the_keys_of_a_json_secret_is_not_scrubbed_from_every_page_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A JSON secret of aliases may carry a note beside its keys (``"environment": "production"``): every
    value it held was taken for a key and scrubbed from then on, so every log line and every line of
    output naming that word (``production-db-cpu``, the environment of every seed incident) lost it to
    ``****``. A value too short to be a key is no key; the keys, and a broken one, are still scrubbed."""
    install_log_redaction()  # as the Lambda does
    word = f"prod{uuid.uuid4().hex[:6]}"  # unique: the redactor is the process's
    broken = uuid.uuid4().hex[:20]  # a key cut short when pasted: scrubbed all the same
    secret = json.dumps({"default": ROUTING_KEY, "environment": word, "payments": broken, "web": {"note": word}})
    keys = RoutingKeys(Settings(integration_key_secret_arn="s"), fetch=lambda reference, where: secret)

    assert keys.get("default") == ROUTING_KEY
    with caplog.at_level(logging.WARNING):
        logging.getLogger("pagerduty_bridge.test").warning("alarm %s-db-cpu is in ALARM", word)

    assert scrub(f"{word}-db-cpu") == f"{word}-db-cpu"
    assert f"{word}-db-cpu" in caplog.text
    assert scrub(f"sent with {ROUTING_KEY} and {broken}") == "sent with **** and ****"


# --- the seed API with a sender of the caller's own -----------------------------------------------------------


class FailingOnce:
    """A caller's own sender (the seed API takes any ``EventSender``): the real client, whose first
    send fails in a way the bridge does not know (a bug, a library's own error)."""

    def __init__(self, url: str) -> None:
        self.client = EventsClient(url, retry_budget_seconds=2.0)
        self.calls = 0

    def send_body(self, body: dict[str, Any], *, budget_seconds: float | None = None, url: str | None = None) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError(f"the caller's sender broke while sending {body['routing_key']}")
        return self.client.send_body(body, budget_seconds=budget_seconds, url=url)


def test_attack_a_sender_of_the_callers_own_failing_does_not_hold_the_incident_for_its_lease(
    fake_pd: FakePagerDuty,
) -> None:
    """A sender raising what the bridge does not know left the claim's lease running: every retry was
    refused as "another delivery is in flight" until the lease ran out, though none was. The failure
    is kept for retry as any failed send (its outcome unknown), the retry sends at once, and the
    error names what failed without the key it may carry."""
    config = ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="checkout")
    sender = FailingOnce(fake_pd.url)
    bridge = PagerDutyIntegration(config, sender=sender, settings=Settings(retry_budget_seconds=2.0))

    with pytest.raises(PagerDutyDeliveryError, match="RuntimeError") as caught:
        bridge.trigger_high_latency_incident(7450, 5000)
    assert caught.value.retryable
    assert_no_secret(ROUTING_KEY, caught.value, bridge.get_active_incidents())

    response = bridge.trigger_high_latency_incident(7450, 5000)

    assert response.status == "success" and sender.calls == 2
    (body,) = fake_pd.accepted()
    assert_valid_event(body)
    (incident,) = bridge.get_active_incidents().values()
    assert incident.pending_action is None


# --- AWS credentials in botocore's DEBUG log -------------------------------------------------------------------


def test_attack_debug_logging_does_not_leak_the_credentials_of_the_assumed_reconcile_role(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``LOG_LEVEL=DEBUG`` and a reconciliation role in another account, botocore logs STS's
    AssumeRole answer (XML: the temporary ``SecretAccessKey`` and ``SessionToken``) and every signed
    request's ``X-Amz-Security-Token`` header: a working set of credentials of that account, in the
    function's logs for anyone who reads them. Both are blanked, the rest of each line kept."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    install_log_redaction()  # as the Lambda does
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with mock_aws():
            client = cloudwatch_client("eu-west-1", "arn:aws:iam::210987654321:role/reconcile")
            client.describe_alarms()
            assumed = client._request_signer._credentials.get_frozen_credentials()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    printed = written.getvalue()
    assert "<AssumeRoleResponse" in printed and "X-Amz-Security-Token" in printed, "botocore logged nothing"
    assert assumed.access_key in printed, "what is no secret is kept"
    assert assumed.secret_key not in printed, "the assumed role's secret access key reached the log"
    assert assumed.token not in printed, "the assumed role's session token reached the log"


def test_a_dry_run_sender_keeps_what_it_would_have_sent_without_the_key() -> None:
    """The seed API's ``DryRunSender`` (public, for dry runs with the configured keys) kept every body it
    was given with its routing key in full, for anyone printing ``sent``; it keeps them as ``Outcome``
    does, the key masked to its last four characters."""
    sender = DryRunSender()
    config = ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="checkout")
    bridge = PagerDutyIntegration(config, sender=sender)

    outcome = bridge.trigger_template(HIGH_LATENCY, 7450, 5000)

    (body,) = sender.sent
    assert body == outcome.body and body["routing_key"].endswith(ROUTING_KEY[-4:])
    assert_no_secret(ROUTING_KEY, sender.sent, sender)


@pytest.mark.parametrize("config", [None, {"integrationKey": ROUTING_KEY, "serviceName": "checkout"}, ROUTING_KEY])
def test_attack_a_service_config_that_is_no_service_config_is_refused_naming_it(config: object) -> None:
    """A caller's ``None``, the seed's config as a plain dict, or the key itself where the config
    belongs failed with ``AttributeError: 'dict' object has no attribute 'integration_key'``: a
    ``TypeError`` naming ``config``, never repeating the key it may hold."""
    with pytest.raises(TypeError, match=r"^config must be a ServiceConfig") as caught:
        PagerDutyIntegration(config)  # type: ignore[arg-type]
    assert_no_secret(ROUTING_KEY, caught.value)
