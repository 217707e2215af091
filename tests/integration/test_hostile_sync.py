"""PagerDuty → bridge under odd timing and odd answers: webhooks that arrive late, from a clock far ahead,
or beside the bridge's own deliveries. The receiver under moto, fed hand-made signed deliveries (the
``world`` of ``test_webhooks.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pagerduty_bridge.models import IncidentStatus, Resolution
from tests.integration.test_webhooks import SECRET, World, delivery, post, world

__all__ = ["world"]


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
