"""The pacer, on an injected clock: bursts, the rate, holds learned from 429s, budgets never overrun."""

from __future__ import annotations

import pytest

from pagerduty_bridge.pacing import (
    BURST,
    HOLD_SECONDS,
    LIMIT_PER_WINDOW,
    MIN_SHARE,
    RECOVERY_SECONDS,
    WINDOW_SECONDS,
    Pacer,
    key_digest,
)
from tests.builders import assert_no_secret
from tests.conftest import OTHER_ROUTING_KEY, ROUTING_KEY

FULL_RATE = LIMIT_PER_WINDOW / WINDOW_SECONDS
KEY = key_digest(ROUTING_KEY)
OTHER = key_digest(OTHER_ROUTING_KEY)


class Clock:
    """Monotonic seconds that move only when the pacer sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the pacer never sleeps for nothing"
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pacer_on(clock: Clock, **options: float) -> Pacer:
    return Pacer(clock=clock, sleep=clock.sleep, **options)  # type: ignore[arg-type]


def test_a_quiet_key_sends_its_burst_at_once_then_at_the_limit(clock: Clock) -> None:
    pacer = pacer_on(clock)
    for _ in range(BURST):
        assert pacer.acquire(KEY)
    assert clock.slept == []
    assert pacer.acquire(KEY)
    assert clock.slept == [pytest.approx(1 / FULL_RATE)]


def test_a_wait_past_the_deadline_is_refused_at_once_and_takes_nothing(clock: Clock) -> None:
    pacer = pacer_on(clock)
    for _ in range(BURST):
        pacer.acquire(KEY)
    assert not pacer.acquire(KEY, deadline=clock.now + 0.1)
    assert clock.slept == []
    assert pacer.delay(KEY) == pytest.approx(1 / FULL_RATE)  # the refused call took no token
    assert pacer.acquire(KEY, deadline=clock.now + 1 / FULL_RATE)
    assert clock.now == pytest.approx(1000.0 + 1 / FULL_RATE)


def test_a_429_without_retry_after_holds_the_key_and_halves_the_rate(clock: Clock) -> None:
    pacer = pacer_on(clock)
    pacer.acquire(KEY)
    pacer.throttled(KEY)
    assert pacer.rate(KEY) == pytest.approx(FULL_RATE / 2)
    # Held for the hold, then one token at the halved rate (the burst is spent).
    assert pacer.delay(KEY) == pytest.approx(HOLD_SECONDS + 2 / FULL_RATE)
    assert not pacer.acquire(KEY, deadline=clock.now + HOLD_SECONDS)
    assert pacer.acquire(KEY, deadline=clock.now + HOLD_SECONDS + 2 / FULL_RATE)
    assert sum(clock.slept) == pytest.approx(HOLD_SECONDS + 2 / FULL_RATE)


def test_a_429_holds_only_its_own_key(clock: Clock) -> None:
    pacer = pacer_on(clock)
    pacer.throttled(KEY)
    assert pacer.delay(OTHER) == 0
    assert pacer.acquire(OTHER, deadline=clock.now)
    assert pacer.rate(OTHER) == pytest.approx(FULL_RATE)


def test_retry_after_sets_the_hold_and_keeps_the_burst_and_the_rate(clock: Clock) -> None:
    pacer = pacer_on(clock)
    pacer.acquire(KEY)
    pacer.throttled(KEY, retry_after=2.5)
    assert pacer.delay(KEY) == pytest.approx(2.5)
    assert pacer.rate(KEY) == pytest.approx(FULL_RATE)
    pacer.throttled(KEY, retry_after=0.0)  # a shorter answer never shortens a hold already running
    assert pacer.delay(KEY) == pytest.approx(2.5)
    assert pacer.acquire(KEY)
    assert clock.slept == [pytest.approx(2.5)]


@pytest.mark.parametrize("retry_after", [61.0, 86_400.0, 1e300, float("inf")])
def test_a_retry_after_beyond_pagerdutys_window_holds_the_key_for_one_window_at_most(
    clock: Clock, retry_after: float
) -> None:
    """PagerDuty counts its limit over 60 s: a longer Retry-After (a proxy's, a far-future HTTP date)
    would hold every page for the key in this container for that long."""
    pacer = pacer_on(clock)
    pacer.throttled(KEY, retry_after=retry_after)
    assert pacer.delay(KEY) == pytest.approx(WINDOW_SECONDS)
    assert pacer.acquire(KEY, deadline=clock.now + WINDOW_SECONDS)


def test_accepted_events_win_the_rate_back_up_to_the_limit(clock: Clock) -> None:
    pacer = pacer_on(clock)
    pacer.throttled(KEY)
    halved = pacer.rate(KEY)
    pacer.accepted(KEY)
    assert halved < pacer.rate(KEY) < FULL_RATE
    for _ in range(200):
        pacer.accepted(KEY)
    assert pacer.rate(KEY) == pytest.approx(FULL_RATE)


def test_the_rate_has_a_floor(clock: Clock) -> None:
    pacer = pacer_on(clock)
    for _ in range(50):
        pacer.throttled(KEY)
    assert pacer.rate(KEY) == pytest.approx(FULL_RATE * MIN_SHARE)


def test_a_key_quiet_for_the_recovery_time_is_back_at_the_limit(clock: Clock) -> None:
    pacer = pacer_on(clock)
    pacer.throttled(KEY)
    clock.now += RECOVERY_SECONDS - 1
    assert pacer.rate(KEY) < FULL_RATE
    pacer.delay(KEY)
    assert pacer.rate(KEY) < FULL_RATE
    clock.now += 1
    pacer.delay(KEY)
    assert pacer.rate(KEY) == pytest.approx(FULL_RATE)


def test_nothing_accrues_while_a_key_is_held(clock: Clock) -> None:
    pacer = pacer_on(clock)
    for _ in range(BURST):
        pacer.acquire(KEY)
    pacer.throttled(KEY)
    clock.now += HOLD_SECONDS  # the hold is over: no tokens were earned during it
    assert pacer.delay(KEY) == pytest.approx(2 / FULL_RATE)


def test_a_shorter_window_scales_the_rate_and_the_hold(clock: Clock) -> None:
    pacer = pacer_on(clock, window_seconds=3.0)
    assert pacer.max_rate == pytest.approx(LIMIT_PER_WINDOW / 3.0)
    pacer.throttled(KEY)
    assert pacer.delay(KEY) == pytest.approx(HOLD_SECONDS * 3.0 / WINDOW_SECONDS + 2 / pacer.max_rate)


@pytest.mark.parametrize("options", [{"limit": 0}, {"window_seconds": 0.0}, {"burst": 0}])
def test_nonsense_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Pacer(**options)  # type: ignore[arg-type]


def test_the_pacer_never_holds_a_routing_key(clock: Clock) -> None:
    pacer = pacer_on(clock)
    pacer.acquire(key_digest(ROUTING_KEY, "https://events.pagerduty.com/v2/enqueue"))
    pacer.throttled(key_digest(ROUTING_KEY, "https://events.pagerduty.com/v2/change/enqueue"))
    assert_no_secret(ROUTING_KEY, pacer, vars(pacer), list(vars(pacer)["_buckets"]))
    assert key_digest(ROUTING_KEY, "a") != key_digest(ROUTING_KEY, "b")
    assert key_digest(ROUTING_KEY) == KEY
