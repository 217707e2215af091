"""``processing.Deadline``: what one more record may spend, so that the invocation ends within its time.

A send with a retry budget ``b`` may start its last attempt just before ``b`` is spent, and that attempt
may then take its whole connect and read timeouts (``attempt_seconds(b)``); the record's table work
comes on top. Whatever ``record_budget`` hands out, that worst case must fit in what remains, and a
record that cannot be finished is not started. The clock is a fake: nothing here waits.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerduty_bridge.events_api import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS
from pagerduty_bridge.processing import (
    MIN_SEND_BUDGET_SECONDS,
    STORE_ALLOWANCE_SECONDS,
    UNBOUNDED,
    Deadline,
    attempt_seconds,
)

TOLERANCE = 1e-6
"""Budgets are found to about a microsecond: comparisons allow that much."""


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def deadline_in(seconds: float) -> tuple[Deadline, FakeClock]:
    clock = FakeClock()
    return Deadline.after(seconds, clock), clock


def longest_record(budget: float) -> float:
    """The longest one record can take with ``budget``: retries until it is spent, then one last whole
    attempt, then the table work."""
    return budget + attempt_seconds(budget) + STORE_ALLOWANCE_SECONDS


def test_an_attempt_is_bounded_by_the_clients_own_timeouts() -> None:
    assert attempt_seconds(2) == 2 + 2
    assert attempt_seconds(30) == CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS
    assert attempt_seconds(0.1) == 2 * MIN_SEND_BUDGET_SECONDS


def test_without_a_deadline_the_configured_budget_is_given() -> None:
    assert UNBOUNDED.remaining() is None
    assert UNBOUNDED.record_budget(30) == 30


@pytest.mark.parametrize(
    ("configured", "remaining", "expected"),
    [
        (2, 12, 2),  # 12 s left: the whole budget and its last attempt fit
        (2, 7, 2),  # exactly: 2 s of retries, a 4 s attempt, 1 s of table work
        (2, 6, 5 / 3),  # less: the budget shrinks (and its timeouts with it) so the worst case still fits
        (2, 5, 4 / 3),  # one whole attempt at the configured timeouts and the table work: still started
        (2, 4.9, None),  # not even that: not started
        (30, 40, 40 - 1 - CONNECT_TIMEOUT_SECONDS - READ_TIMEOUT_SECONDS),
        (30, 20, (20 - 1 - CONNECT_TIMEOUT_SECONDS) / 2),
        (30, 14, None),
        (0.5, 10, 0.5),
        (0.5, 2.2, None),  # one attempt would fit, but not the smallest send with its last attempt
    ],
)
def test_the_budget_for_one_more_record(configured: float, remaining: float, expected: float | None) -> None:
    deadline, _ = deadline_in(remaining)
    budget = deadline.record_budget(configured)
    if expected is None:
        assert budget is None
    else:
        assert budget == pytest.approx(expected, abs=TOLERANCE)


@given(
    configured=st.floats(min_value=MIN_SEND_BUDGET_SECONDS, max_value=900),
    remaining=st.floats(min_value=-10, max_value=1000),
)
def test_the_retry_budget_never_exceeds_what_remains(configured: float, remaining: float) -> None:
    """Whatever is handed out, its worst case (retries, one last whole attempt, the table work) fits."""
    deadline, _ = deadline_in(remaining)
    budget = deadline.record_budget(configured)
    if budget is None:
        # Not started only when one whole attempt at the configured timeouts and the table work, or the
        # smallest send there is, would not fit.
        whole_attempt = attempt_seconds(min(configured, remaining)) + STORE_ALLOWANCE_SECONDS
        assert max(whole_attempt, longest_record(MIN_SEND_BUDGET_SECONDS)) > remaining - TOLERANCE
        return
    assert MIN_SEND_BUDGET_SECONDS <= budget <= configured
    assert longest_record(budget) <= remaining + TOLERANCE
    if budget < configured - TOLERANCE:
        # And not needlessly small: a little more would no longer fit.
        assert longest_record(budget + 10 * TOLERANCE) > remaining - TOLERANCE


def test_budgets_shrink_as_the_invocation_runs_out_and_then_stop() -> None:
    deadline, clock = deadline_in(12)
    budgets: list[float] = []
    while (budget := deadline.record_budget(2)) is not None:
        budgets.append(budget)
        remaining = deadline.remaining()
        assert remaining is not None and longest_record(budget) <= remaining + TOLERANCE
        clock.now += 0.8  # one record answered in 0.8 s
    assert budgets == sorted(budgets, reverse=True)
    assert len(budgets) == 9  # 12 s → 4.8 s left: the tenth is not started
    remaining = deadline.remaining()
    assert remaining is not None and remaining < attempt_seconds(2) + STORE_ALLOWANCE_SECONDS
