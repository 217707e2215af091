"""PagerDuty → bridge when the webhook subscription covers the whole account: events of every service
arrive, and another service's incident may carry the same incident key as one of the bridge's (dedup
keys are unique per service only). The receiver under moto, fed hand-made signed deliveries (the
``world`` of ``test_webhooks.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler, webhook
from pagerduty_bridge.devtools.fake_pagerduty import Respond
from pagerduty_bridge.errors import BridgeError
from pagerduty_bridge.models import EventAction, IncidentStatus
from tests.builders import REGION, T0, put_cpu_alarm, schedule_event
from tests.conftest import OTHER_ROUTING_KEY, ROUTING_KEY, FakeLambdaContext
from tests.integration.test_webhooks import KEY, NAME, SECRET, World, delivery, post, world

__all__ = ["world"]

OURS = "PSVC0URS"
THEIRS = "PSVC0THR"


def only_our_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver told which PagerDuty service the bridge pages (a new container reads it)."""
    monkeypatch.setenv(c.ENV_WEBHOOK_SERVICE_IDS, OURS)
    monkeypatch.setattr(webhook, "_receiver", None)


def first_trigger_refused(world: World) -> None:
    """The alarm's first trigger never reaches PagerDuty (503 for the whole budget): kept pending."""
    world.fake.script(*[Respond(503)] * 30)
    with pytest.raises(BridgeError):
        world.alarm(minutes=0)
    world.fake.reset()  # the 503s left over
    assert world.incident().pending_action is EventAction.TRIGGER
    assert KEY not in world.fake.open_alerts(ROUTING_KEY)


# --- nothing configured: the safe default -----------------------------------------------------------------


def test_another_services_resolution_does_not_stop_the_alarms_resolve(world: World) -> None:
    """Another team's incident with our key is resolved in PagerDuty; its webhook reaches us (an
    account-wide subscription) and is recorded on our incident. The alarm's OK must still resolve the
    alert the bridge opened, or it stays open in PagerDuty with its alarm long cleared."""
    world.alarm(minutes=0)
    assert KEY in world.fake.open_alerts(ROUTING_KEY)
    assert post(delivery("incident.resolved", minutes=1, service=THEIRS)) == 200

    assert world.alarm("OK", "ALARM", minutes=5) == {"processed": 1, "failed": 0}

    assert KEY not in world.fake.open_alerts(ROUTING_KEY), "our alert was left open after its alarm cleared"
    assert not world.incident().is_open


def test_another_services_resolution_does_not_stop_a_first_page_waiting_to_be_sent(world: World) -> None:
    """The alarm's first trigger is kept for Lambda's retry; meanwhile another service's incident with
    the same key is resolved. Nothing says that resolution is about our page, which never landed: the
    retry must still page."""
    first_trigger_refused(world)
    assert post(delivery("incident.resolved", minutes=1, service=THEIRS)) == 200

    world.alarm(minutes=0)

    assert KEY in world.fake.open_alerts(ROUTING_KEY), "the page was lost"
    assert world.incident().pending_action is None


# --- the bridge's service named: other services' events are not ours -----------------------------------


@pytest.mark.parametrize("event_type", ["incident.acknowledged", "incident.resolved", "incident.reopened"])
def test_with_our_service_named_another_services_events_change_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, event_type: str
) -> None:
    only_our_service(monkeypatch)
    world.alarm(minutes=0)
    if event_type == "incident.reopened":
        world.alarm("OK", "ALARM", minutes=5)
    before = world.incident()

    assert post(delivery(event_type, minutes=6, service=THEIRS)) == 200

    assert world.incident() == before


def test_with_our_service_named_its_resolution_ends_the_first_trigger_waiting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our own service's resolution is about the key's only incident: as without an account-wide
    subscription, the trigger waiting to be sent again is done (sent, it would page twice)."""
    only_our_service(monkeypatch)
    first_trigger_refused(world)
    assert post(delivery("incident.resolved", minutes=1, service=OURS)) == 200
    sent = len(world.fake.requests)

    world.alarm(minutes=0)

    assert len(world.fake.requests) == sent
    incident = world.incident()
    assert (incident.status, incident.pending_action) == (IncidentStatus.RESOLVED, None)


# --- an incident opened under an alias the rules no longer route to ----------------------------------------


def routed(monkeypatch: pytest.MonkeyPatch, alias: str | None, keys: dict[str, str]) -> None:
    """The alarm routed to ``alias`` (``None``: the default) with ``keys``; a new container reads them."""
    rules = {"rules": [{"name": "route", "match": {"alarm_name": "checkout-*"}, "routing_key": alias}]}
    monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps(rules if alias else {"rules": []}))
    monkeypatch.setenv(c.ENV_ROUTING_KEYS, json.dumps(keys))
    monkeypatch.setattr(handler, "_runtime", None)


def resolve_kept_pending(world: World) -> None:
    """The alarm clears; PagerDuty refuses its resolve with a 403 (kept: a key being rotated): recorded
    resolved, the resolve kept pending for the retry."""
    world.fake.script(Respond(403))
    with pytest.raises(BridgeError):
        world.alarm("OK", "ALARM", minutes=5)
    incident = world.incident()
    assert (incident.is_open, incident.pending_action) == (False, EventAction.RESOLVE)


def test_a_resolve_waiting_goes_with_the_key_its_incident_was_opened_with(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened on the payments service; its resolve is kept for retry; the rules now route the alarm to
    the default service. The alarm's next OK (after INSUFFICIENT_DATA) finishes that resolve: it must
    reach the payments service, where the incident is open, not the default one (which would answer
    202 and leave the payments incident open with the table saying resolved)."""
    routed(monkeypatch, "payments", {"payments": OTHER_ROUTING_KEY})
    world.alarm(minutes=0)
    assert KEY in world.fake.open_alerts(OTHER_ROUTING_KEY)
    resolve_kept_pending(world)
    routed(monkeypatch, None, {"payments": OTHER_ROUTING_KEY})

    assert world.alarm("OK", "INSUFFICIENT_DATA", minutes=7) == {"processed": 1, "failed": 0}

    assert KEY not in world.fake.open_alerts(OTHER_ROUTING_KEY), "the resolve went to another service"
    assert world.incident().pending_action is None


def test_a_resolve_waiting_whose_key_was_removed_fails_loudly_and_is_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, and the payments key is removed from the secret too: no key can close that incident.
    The resolve must fail (counted, kept for retry and reconciliation), never go out on another key
    and be recorded done."""
    routed(monkeypatch, "payments", {"payments": OTHER_ROUTING_KEY})
    world.alarm(minutes=0)
    resolve_kept_pending(world)
    routed(monkeypatch, None, {})
    sent = len(world.fake.requests)

    with pytest.raises(BridgeError):
        world.alarm("OK", "INSUFFICIENT_DATA", minutes=7)

    assert len(world.fake.requests) == sent, "the resolve went out on another key"
    incident = world.incident()
    assert (incident.pending_action, incident.routing_key_alias) == (EventAction.RESOLVE, "payments")


# --- events that change no state, delivered before one that does -------------------------------------------


@pytest.mark.parametrize(
    "detail", ["incident.priority_updated", "incident.reassigned", "incident.escalated", "incident.annotated"]
)
def test_a_detail_made_after_a_resolution_and_delivered_first_does_not_drop_it(world: World, detail: str) -> None:
    """A responder resolves, then sets the incident's priority (or reassigns it) for the review.
    PagerDuty does not keep its webhooks in order: the later change arrives first. It changes no
    state, so it must not become the mark the resolution is judged older than: the table would keep
    the incident open, PagerDuty resolved."""
    world.alarm(minutes=0)
    assert post(delivery(detail, minutes=3)) == 200

    assert post(delivery("incident.resolved", minutes=2, agent="Jane Responder")) == 200

    incident = world.incident()
    assert incident.status is IncidentStatus.RESOLVED, "the resolution was dropped as older than the detail"
    assert incident.resolved_by is not None and "Jane Responder" in incident.resolved_by


def test_a_detail_still_records_what_it_says(world: World) -> None:
    world.alarm(minutes=0)
    assert post(delivery("incident.resolved", minutes=2)) == 200

    assert post(delivery("incident.priority_updated", minutes=3)) == 200

    incident = world.incident()
    assert incident.pd_details.get("priority") == "P1 (P1ID)"
    assert incident.status is IncidentStatus.RESOLVED


# --- an incident merged into another ---------------------------------------------------------------------


def with_data(event: dict[str, Any], **data: Any) -> dict[str, Any]:
    """``event`` with fields of its incident (``event.data``) set, signed again (PagerDuty's own)."""
    document = json.loads(event["body"])
    document["event"]["data"].update(data)
    body = json.dumps(document).encode()
    event["body"] = body.decode()
    event["headers"]["x-pagerduty-signature"] = "v1=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return event


MERGED = {"type": "merge_resolve_reason", "incident": {"id": "PMERGED", "type": "incident_reference"}}


def test_a_merged_incident_is_still_resolved_when_its_alarm_clears_unheard(world: World) -> None:
    """A responder merges the bridge's incident into another: PagerDuty resolves the merged incident
    (``resolve_reason``: merge), but the bridge's alert lives on, open, in the incident it was merged
    into. The alarm then clears and its OK notification is lost (no OK action): the scheduled run
    must still find the incident open and resolve the alert, not leave it open for good."""
    world.alarm(minutes=0)
    merged = with_data(delivery("incident.resolved", minutes=1), resolve_reason=MERGED)
    assert post(merged) == 200
    kept = world.incident()
    assert kept.is_open and kept.pd_details["merged_into"] == "PMERGED"
    put_cpu_alarm(boto3.client("cloudwatch", region_name=REGION), NAME, "OK")
    world.now = T0 + timedelta(minutes=10)

    handler.lambda_handler(schedule_event(world.now), FakeLambdaContext())

    assert KEY not in world.fake.open_alerts(ROUTING_KEY), "the merged alert was left open after its alarm cleared"
    assert not world.incident().is_open


def test_a_resolve_never_goes_out_on_a_key_other_than_the_one_its_incident_was_opened_with(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payments alias's key is replaced in its secret while the incident it opened is open (a new
    integration: PagerDuty resolves an alert only through the key that opened it). The alarm's OK
    must not send its resolve with the new key, which PagerDuty accepts (202) and applies to nothing,
    recording the incident resolved while it stays open: it fails, and the incident is kept."""
    routed(monkeypatch, "payments", {"payments": OTHER_ROUTING_KEY})
    world.alarm(minutes=0)
    routed(monkeypatch, "payments", {"payments": ROUTING_KEY})

    with pytest.raises(BridgeError):
        world.alarm("OK", "ALARM", minutes=5)

    assert KEY in world.fake.open_alerts(OTHER_ROUTING_KEY)
    assert world.incident().is_open, "recorded resolved while its alert is open"
    assert not [r for r in world.fake.requests if r.body.get("event_action") == "resolve"], "sent on another key"


@pytest.mark.parametrize(
    "keys",
    [
        {"pay": OTHER_ROUTING_KEY},  # the alias renamed
        {"payments": ROUTING_KEY, "payments-old": OTHER_ROUTING_KEY},  # a new key, the old one kept aside
    ],
    ids=["renamed", "kept-aside"],
)
def test_a_resolve_finds_the_key_its_incident_was_opened_with_under_another_alias(
    world: World, monkeypatch: pytest.MonkeyPatch, keys: dict[str, str]
) -> None:
    """The key that opened the incident is still configured, under another alias: the resolve reaches
    the alert through it instead of failing, and the incident records the alias it went with."""
    routed(monkeypatch, "payments", {"payments": OTHER_ROUTING_KEY})
    world.alarm(minutes=0)
    routed(monkeypatch, "payments", keys)

    assert world.alarm("OK", "ALARM", minutes=5) == {"processed": 1, "failed": 0}

    assert KEY not in world.fake.open_alerts(OTHER_ROUTING_KEY)
    incident = world.incident()
    assert not incident.is_open and incident.routing_key_alias in ("pay", "payments-old")
