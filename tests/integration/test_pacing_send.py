"""The client paces its sends per routing key (real HTTP, the stand-in): a 429 holds the key, a held
send within a short budget goes nowhere and fails fast as retryable, and a retry waits for the pacer."""

from __future__ import annotations

from typing import Any

import pytest

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty, Respond
from pagerduty_bridge.errors import PagerDutyApiError, PagerDutyDeliveryError
from pagerduty_bridge.events_api import EventsClient
from pagerduty_bridge.pacing import HOLD_SECONDS, WINDOW_SECONDS, Pacer, key_digest
from tests.builders import assert_no_secret
from tests.conftest import OTHER_ROUTING_KEY, ROUTING_KEY


def trigger(dedup_key: str, routing_key: str = ROUTING_KEY) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": f"{dedup_key} is on fire", "source": "pacing-test", "severity": "critical"},
    }


def enqueued(fake: FakePagerDuty) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.path == "/v2/enqueue"]


def test_a_429_holds_the_key_and_a_send_that_cannot_wait_sends_nothing(fake_pd: FakePagerDuty) -> None:
    client = EventsClient(fake_pd.url, pacer=Pacer())
    fake_pd.script(Respond(429))
    with pytest.raises(PagerDutyApiError) as throttled:
        client.send_body(trigger("first"), budget_seconds=1.0)  # the hold is longer than the budget
    assert throttled.value.status == 429 and throttled.value.retryable
    assert len(enqueued(fake_pd)) == 1
    with pytest.raises(PagerDutyDeliveryError) as held:
        client.send_body(trigger("second"), budget_seconds=1.0)
    assert held.value.retryable and not held.value.ambiguous
    assert "nothing was sent" in str(held.value)
    assert len(enqueued(fake_pd)) == 1, "a held send must not reach PagerDuty"
    assert_no_secret(ROUTING_KEY, held.value, throttled.value, client.pacer)


def test_other_routing_keys_are_not_held(fake_pd: FakePagerDuty) -> None:
    client = EventsClient(fake_pd.url, pacer=Pacer())
    fake_pd.script(Respond(429))
    with pytest.raises(PagerDutyApiError):
        client.send_body(trigger("first"), budget_seconds=1.0)
    response = client.send_body(trigger("other", OTHER_ROUTING_KEY), budget_seconds=1.0)
    assert response.status == "success"
    assert [body["dedup_key"] for body in enqueued(fake_pd)] == ["first", "other"]


def test_a_429_is_retried_once_the_hold_is_over_within_the_budget(fake_pd: FakePagerDuty) -> None:
    window = 0.6  # a tenth of PagerDuty's minute: the hold is a tenth too
    hold = HOLD_SECONDS * window / WINDOW_SECONDS
    pacer = Pacer(window_seconds=window)
    client = EventsClient(fake_pd.url, pacer=pacer)
    fake_pd.script(Respond(429))
    response = client.send_body(trigger("paced"), budget_seconds=5.0)
    assert response.status == "success"
    first, second = fake_pd.requests
    assert (first.status, second.status) == (429, 202)
    assert second.at - first.at >= hold, "the retry went out before the hold was over"
    assert pacer.rate(key_digest(ROUTING_KEY, fake_pd.url)) < pacer.max_rate  # and the rate came down


def test_retry_after_holds_the_key_for_that_long(fake_pd: FakePagerDuty) -> None:
    pacer = Pacer()
    client = EventsClient(fake_pd.url, pacer=pacer)
    fake_pd.script(Respond(429, retry_after=1))
    client.send_body(trigger("told"), budget_seconds=5.0)
    first, second = fake_pd.requests
    assert (first.status, second.status) == (429, 202)
    assert second.at - first.at >= 1.0
    assert pacer.rate(key_digest(ROUTING_KEY, fake_pd.url)) == pacer.max_rate  # told, not guessed


@pytest.mark.parametrize("retry_after", ["86400", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_far_retry_after_holds_the_key_no_longer_than_pagerdutys_window(
    fake_pd: FakePagerDuty, retry_after: str
) -> None:
    client = EventsClient(fake_pd.url, pacer=Pacer())
    fake_pd.script(Respond(429, retry_after=retry_after))
    with pytest.raises(PagerDutyApiError):
        client.send_body(trigger("told-a-day"), budget_seconds=1.0)
    assert client.pacer.delay(key_digest(ROUTING_KEY, fake_pd.url)) <= WINDOW_SECONDS


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    "retry_after",
    # the fourth is UTF-8's "１" as HTTP reads it; the last a date Python cannot hold
    ["-5", "soon", "1.5", "\xef\xbc\x91", "", "Fri, 31 Dec 10000 23:59:59 GMT"],
)
def test_an_unreadable_retry_after_is_as_good_as_none(fake_pd: FakePagerDuty, status: int, retry_after: str) -> None:
    """Neither whole seconds nor an HTTP date (a proxy's, a sloppy load balancer's): the send is retried
    with backoff within its budget as without the header, and a 429 still holds and slows the key."""
    window = 0.6  # a tenth of PagerDuty's minute: the hold is a tenth too
    pacer = Pacer(window_seconds=window)
    client = EventsClient(fake_pd.url, pacer=pacer)
    fake_pd.script(Respond(status, retry_after=retry_after))

    response = client.send_body(trigger("odd-retry-after"), budget_seconds=5.0)

    assert response.status == "success"
    first, second = fake_pd.requests
    assert (first.status, second.status) == (status, 202)
    if status == 429:
        assert second.at - first.at >= HOLD_SECONDS * window / WINDOW_SECONDS, "the retry did not wait for the hold"
        assert pacer.rate(key_digest(ROUTING_KEY, fake_pd.url)) < pacer.max_rate, "the pacer never heard of the 429"


def test_accepted_events_raise_the_rate_again(fake_pd: FakePagerDuty) -> None:
    pacer = Pacer(window_seconds=0.6)
    client = EventsClient(fake_pd.url, pacer=pacer)
    key = key_digest(ROUTING_KEY, fake_pd.url)
    fake_pd.script(Respond(429))
    client.send_body(trigger("a"), budget_seconds=5.0)
    lowered = pacer.rate(key)
    client.send_body(trigger("b"), budget_seconds=5.0)
    assert pacer.rate(key) > lowered
    assert len(fake_pd.accepted()) == 2
