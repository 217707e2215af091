"""PagerDuty → bridge under odd timing and odd answers: webhooks that arrive late, from a clock far ahead,
or beside the bridge's own deliveries. The receiver under moto, fed hand-made signed deliveries (the
``world`` of ``test_webhooks.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler, webhook
from pagerduty_bridge.devtools.fake_pagerduty import Delay, Drop, Respond
from pagerduty_bridge.errors import PagerDutyDeliveryError
from pagerduty_bridge.models import AlarmState, EventAction, IncidentStatus, Resolution
from tests.conftest import ROUTING_KEY
from tests.integration.test_webhooks import KEY, SECRET, World, delivery, post, world

__all__ = ["world"]

OUR_SERVICE = "PSVC0URS"


def our_service_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver told which PagerDuty service the bridge pages (a new container reads it)."""
    monkeypatch.setenv(c.ENV_WEBHOOK_SERVICE_IDS, OUR_SERVICE)
    monkeypatch.setattr(webhook, "_receiver", None)


def occurring_at(event: dict[str, Any], occurred_at: str) -> dict[str, Any]:
    """``event`` with its body's ``occurred_at`` replaced, signed again (PagerDuty's own delivery)."""
    document = json.loads(event["body"])
    document["event"]["occurred_at"] = occurred_at
    body = json.dumps(document).encode()
    event["body"] = body.decode()
    event["headers"]["x-pagerduty-signature"] = "v1=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return event


# --- a reopening made before the incident's last resolution ---------------------------------------------


def test_a_late_reopening_does_not_reopen_what_the_alarms_ok_resolved_after_it(world: World) -> None:
    """A responder resolves and reopens in PagerDuty; both webhooks are held up (PagerDuty redelivers a
    failed delivery for hours). Meanwhile the alarm clears and the bridge resolves the incident, after
    the reopening: PagerDuty's incident is resolved. The reopening, delivered at last, must not leave
    the table holding an incident open that PagerDuty closed and whose alarm is OK (reconciliation
    keeps a reopened incident open for good)."""
    world.alarm(minutes=0)
    world.alarm("OK", "ALARM", minutes=5)
    assert world.incident().resolution is Resolution.AUTO

    assert post(delivery("incident.resolved", minutes=1, event_id="ev-resolve")) == 200
    assert post(delivery("incident.reopened", minutes=2, event_id="ev-reopen")) == 200

    incident = world.incident()
    assert incident.status is IncidentStatus.RESOLVED, "a reopening from before the alarm's OK reopened it"
    assert incident.resolution is Resolution.AUTO
    assert "ev-reopen" in incident.webhook_event_ids, "remembered, so its redelivery is recognised"


def test_a_redelivered_reopening_stays_closed_once_its_id_is_no_longer_remembered(world: World) -> None:
    """Only the 20 newest event ids are kept: after a burst of other events of the same moment, a
    redelivery of the reopening is no longer recognised by its id, and must still not reopen what the
    alarm's OK resolved after it."""
    world.alarm(minutes=0)
    reopened = delivery("incident.reopened", minutes=2, event_id="ev-reopen")
    assert post(delivery("incident.resolved", minutes=1)) == 200
    assert post(reopened) == 200
    world.alarm("OK", "ALARM", minutes=5)
    for _ in range(20):
        assert post(delivery("incident.annotated", minutes=2)) == 200
    assert "ev-reopen" not in world.incident().webhook_event_ids

    assert post(reopened) == 200

    assert world.incident().status is IncidentStatus.RESOLVED


def test_a_reopening_after_the_resolution_still_reopens(world: World) -> None:
    world.alarm(minutes=0)
    world.alarm("OK", "ALARM", minutes=5)
    assert post(delivery("incident.reopened", minutes=6)) == 200
    assert world.incident().status is IncidentStatus.TRIGGERED


# --- a clock far ahead ------------------------------------------------------------------------------------


def test_a_webhook_stamped_far_in_the_future_does_not_make_every_later_one_stale(world: World) -> None:
    """A PagerDuty-side time far ahead of its receipt (a clock gone wrong, or a forged stamp) must not
    become the incident's ordering mark: every real acknowledgement and resolution after it would be
    taken as older and dropped, the incident shown open for good. It is taken as the receipt time."""
    world.alarm(minutes=0)
    ahead = occurring_at(delivery("incident.acknowledged", minutes=1), "9999-12-31T23:59:59Z")
    received = datetime.now(UTC)

    assert post(ahead) == 200

    acknowledged = world.incident()
    assert acknowledged.status is IncidentStatus.ACKNOWLEDGED
    assert acknowledged.pd_updated_at is not None and acknowledged.pd_updated_at < received + timedelta(minutes=5)
    assert acknowledged.acknowledged_at is not None and acknowledged.acknowledged_at.year < 9999
    later = occurring_at(
        delivery("incident.resolved", minutes=2), (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    )
    assert post(later) == 200
    assert world.incident().resolution is Resolution.PAGERDUTY, "the real resolution after it was dropped"


def test_a_webhook_a_little_ahead_keeps_its_own_time(world: World) -> None:
    """Clocks disagree by seconds: a time within the allowed skew is PagerDuty's and kept as it is."""
    world.alarm(minutes=0)
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)
    assert post(occurring_at(delivery("incident.acknowledged", minutes=1), ahead.isoformat())) == 200
    assert world.incident().acknowledged_at == ahead


# --- a reopening while the bridge's resolve waits to be sent again ---------------------------------------


def resolve_unanswered(world: World) -> None:
    """The alarm clears; its resolve reaches PagerDuty but no answer comes back before the budget ends
    (the stand-in holds the request past the read timeout, then drops it; PagerDuty's side of it is
    played by resolving the alert), so the resolve is kept pending, to be sent again by Lambda's retry."""
    world.fake.script(Drop(delay=3.0))
    with pytest.raises(PagerDutyDeliveryError):
        world.alarm("OK", "ALARM", minutes=5)
    world.fake.resolve_alert(KEY)
    pending = world.incident()
    assert pending.pending_action is EventAction.RESOLVE and pending.lease_until is None


def test_a_resolve_sent_again_does_not_close_what_a_responder_reopened_meanwhile(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A responder reopens the incident in PagerDuty after the bridge's unanswered resolve (there was a
    resolved incident to reopen: the resolve, or someone, closed it). Sending that resolve again on
    Lambda's retry would close the responder's incident behind their back and leave the table saying
    it is open: the reopening is the newer decision, and the pending resolve is done (the receiver
    knows the bridge's service: the reopening is of its incident, not another service's)."""
    our_service_named(monkeypatch)
    world.alarm(minutes=0)
    resolve_unanswered(world)
    assert post(delivery("incident.reopened", minutes=6, service=OUR_SERVICE)) == 200
    sent = len(world.fake.requests)

    assert world.alarm("OK", "ALARM", minutes=5) == {"processed": 1, "failed": 0}

    assert len(world.fake.requests) == sent, "the resolve was sent again over the responder's reopening"
    incident = world.incident()
    assert incident.is_open and incident.pending_action is None


def test_a_reopening_never_ends_a_resolve_still_on_its_way(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the resolve is in flight (its lease running) the reopening may be older than its landing:
    the delivery finishes on its own, and its claim stays."""
    world.alarm(minutes=0)
    sender = handler.get_runtime().notifications().delivery.sender
    send = sender.send_body
    claims: list[Any] = []

    def on_the_worlds_clock(event: dict[str, Any]) -> int:
        return int(webhook.handle(event, webhook.get_receiver(), world.now)["statusCode"])

    def reopened_in_flight(body: dict[str, Any], **kwargs: Any) -> Any:
        assert on_the_worlds_clock(delivery("incident.resolved", minutes=5.5)) == 200
        assert on_the_worlds_clock(delivery("incident.reopened", minutes=6)) == 200
        claims.append(world.incident().pending_action)
        return send(body, **kwargs)

    monkeypatch.setattr(sender, "send_body", reopened_in_flight)
    assert world.alarm("OK", "ALARM", minutes=5) == {"processed": 1, "failed": 0}
    assert claims == [EventAction.RESOLVE]
    assert world.incident().pending_action is None


# --- a webhook beside a delivery that PagerDuty refuses -----------------------------------------------------


def test_a_resolution_recorded_while_a_refused_trigger_was_sent_is_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alarm fires again (after INSUFFICIENT_DATA) and the bridge sends a trigger, which PagerDuty
    refuses as invalid (a 400 with its errors: dropped, the incident kept as it was before the claim).
    A responder's resolution recorded while it was on its way must survive that undoing: PagerDuty
    holds the incident resolved, and the table must not say open, nor forget who resolved it."""
    world.alarm(minutes=0)
    world.alarm("INSUFFICIENT_DATA", "ALARM", minutes=2)
    sender = handler.get_runtime().notifications().delivery.sender
    send = sender.send_body

    def resolved_meanwhile(body: dict[str, Any], **kwargs: Any) -> Any:
        assert post(delivery("incident.resolved", minutes=3.5, event_id="ev-resolve", agent="Jane Responder")) == 200
        return send(body, **kwargs)

    monkeypatch.setattr(sender, "send_body", resolved_meanwhile)
    world.fake.script(Respond(400))
    world.alarm("ALARM", "INSUFFICIENT_DATA", minutes=3)

    incident = world.incident()
    assert incident.pending_action is None and incident.last_error is not None, "the refusal was recorded"
    assert (incident.status, incident.resolution) == (IncidentStatus.RESOLVED, Resolution.PAGERDUTY)
    assert incident.resolved_by is not None and "Jane Responder" in incident.resolved_by
    assert "ev-resolve" in incident.webhook_event_ids
    assert incident.alarm_state is AlarmState.ALARM, "the state change itself is recorded"


# --- a resolution in PagerDuty while the bridge's first trigger waits to be sent again ------------------


def test_a_resolution_in_pagerduty_ends_the_first_trigger_that_waits_to_be_sent_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alarm's first trigger reaches PagerDuty, but its answer does not come back in time: the
    trigger is kept pending for Lambda's retry. The responder, paged, resolves the incident in
    PagerDuty. That resolution is about the key's only incident, so the trigger landed: sending it
    again on the retry would page the responder a second time for the same state change (the receiver
    knows the bridge's service: the resolution is of its incident, not another service's)."""
    our_service_named(monkeypatch)
    world.fake.script(Delay(3.0))
    with pytest.raises(PagerDutyDeliveryError):
        world.alarm(minutes=0)
    deadline = time.monotonic() + 10
    while KEY not in world.fake.open_alerts(ROUTING_KEY) and time.monotonic() < deadline:
        time.sleep(0.05)
    world.fake.resolve_alert(KEY, agent="Jane Responder")
    assert world.incident().pending_action is EventAction.TRIGGER
    assert post(delivery("incident.resolved", minutes=1, agent="Jane Responder", service=OUR_SERVICE)) == 200
    sent = len(world.fake.requests)

    world.alarm(minutes=0)

    assert len(world.fake.requests) == sent, "the trigger was sent again: the responder is paged twice"
    assert KEY not in world.fake.open_alerts(ROUTING_KEY)
    incident = world.incident()
    assert (incident.resolution, incident.pending_action) == (Resolution.PAGERDUTY, None)
