"""PagerDuty → bridge under odd timing and odd answers: webhooks that arrive late, from a clock far ahead,
or beside the bridge's own deliveries. The receiver under moto, fed hand-made signed deliveries (the
``world`` of ``test_webhooks.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
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
