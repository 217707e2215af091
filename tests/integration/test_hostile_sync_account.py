"""PagerDuty → bridge when the webhook subscription covers the whole account: events of every service
arrive, and another service's incident may carry the same incident key as one of the bridge's (dedup
keys are unique per service only). The receiver under moto, fed hand-made signed deliveries (the
``world`` of ``test_webhooks.py``)."""

from __future__ import annotations

import json

import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import Respond
from pagerduty_bridge.errors import BridgeError
from pagerduty_bridge.models import EventAction
from tests.conftest import OTHER_ROUTING_KEY
from tests.integration.test_webhooks import KEY, World, world

__all__ = ["world"]

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
