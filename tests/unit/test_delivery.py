"""The delivery protocol on its own: an in-memory store that counts its calls, a sender that records,
keys and a clock — no network. What a notification costs in store calls, and that a wrong guess never
leads to a wrong action."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pagerduty_bridge.delivery import Delivery, DryRunSender
from pagerduty_bridge.errors import ConcurrentUpdateError, PagerDutyApiError, UnknownAliasError
from pagerduty_bridge.events_api import PagerDutyEvent
from pagerduty_bridge.keys import StaticKeys
from pagerduty_bridge.lifecycle import Plan, Policy, Reason, plan, plan_confirm
from pagerduty_bridge.models import (
    AlarmKind,
    AlarmNotification,
    AlarmState,
    EventAction,
    EventResponse,
    Incident,
    IncidentStatus,
)
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

T0 = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)
KEY = "checkout-5xx-HTTPCode_Target_5XX_Count"
ROUTING_KEY = "R0ut1ngKey0000000000000000000042"


@dataclass
class CountingStore:
    """The SQLite store, counting reads and writes (and able to be changed behind the bridge's back)."""

    inner: SQLiteIncidentStore = field(default_factory=SQLiteIncidentStore)
    reads: int = 0
    writes: int = 0
    on_write: Callable[[int], None] | None = None
    """Called with each write's number once it is written (a slow answer, something happening beside)."""

    def get(self, dedup_key: str) -> Incident | None:
        self.reads += 1
        return self.inner.get(dedup_key)

    def put(self, incident: Incident, *, expected_version: int | None) -> None:
        self.writes += 1
        self.inner.put(incident, expected_version=expected_version)
        if self.on_write is not None:
            self.on_write(self.writes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FailingSender(DryRunSender):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def send_body(
        self, body: dict[str, Any], *, budget_seconds: float | None = None, url: str | None = None
    ) -> EventResponse:
        self.sent.append(body)
        raise self.error


def alarm(state: AlarmState, minutes: int) -> AlarmNotification:
    return AlarmNotification(
        kind=AlarmKind.METRIC,
        alarm_name="checkout-5xx",
        new_state=state,
        old_state=AlarmState.OK if state is AlarmState.ALARM else AlarmState.ALARM,
        state_change_time=T0 + timedelta(minutes=minutes),
        metric_name="HTTPCode_Target_5XX_Count",
    )


def deliver(delivery: Delivery, notification: AlarmNotification) -> Any:
    policy = Policy(dedup_key=KEY, summary="5xx")
    return delivery.run(
        KEY,
        lambda stored: plan(notification, stored, policy, T0 + timedelta(hours=1)),
        lambda p: PagerDutyEvent(event_action=p.action or EventAction.RESOLVE, dedup_key=KEY),
    )


def delivery_with(store: CountingStore, sender: DryRunSender | None = None) -> Delivery:
    return Delivery(
        store, sender or DryRunSender(), StaticKeys({"default": ROUTING_KEY}), lambda: T0 + timedelta(hours=1)
    )  # type: ignore[arg-type]


def test_a_new_alarms_page_takes_two_writes_and_no_read() -> None:
    store = CountingStore()
    outcome = deliver(delivery_with(store), alarm(AlarmState.ALARM, 0))
    assert outcome.action is EventAction.TRIGGER and outcome.error is None
    assert (store.reads, store.writes) == (0, 2), "claim and commit, nothing more"


def test_the_next_notification_of_an_alarm_this_process_wrote_needs_no_read() -> None:
    store = CountingStore()
    bridge = delivery_with(store)
    deliver(bridge, alarm(AlarmState.ALARM, 0))
    store.reads = store.writes = 0
    outcome = deliver(bridge, alarm(AlarmState.OK, 5))
    assert outcome.action is EventAction.RESOLVE
    assert (store.reads, store.writes) == (0, 2)


def test_a_wrong_guess_costs_one_failed_write_never_a_wrong_action() -> None:
    store = CountingStore()
    first = delivery_with(store)
    deliver(first, alarm(AlarmState.ALARM, 10))  # another container: the alarm is at minute 10 already
    second = delivery_with(store)
    sender = second.sender
    assert isinstance(sender, DryRunSender)
    store.reads = store.writes = 0
    outcome = deliver(second, alarm(AlarmState.OK, 5))  # older than what is stored: stale
    assert (outcome.action, outcome.reason) == (None, "stale")
    assert sender.sent == [], "the stale OK was never sent"
    assert store.writes == 1, "one failed conditional write told the truth"


def test_an_incident_made_again_after_a_clear_is_not_taken_for_the_one_remembered() -> None:
    # After `incidents clear`, the next writer made the incident anew. Its versions restarted at 1, so
    # after as many writes as the old one had, a warm container's remembered (old) incident matched its
    # version exactly: a write conditional on it passed, and a stale ALARM paged an alarm that is OK.
    store = CountingStore()
    remembering = delivery_with(store)
    deliver(remembering, alarm(AlarmState.ALARM, 0))
    deliver(remembering, alarm(AlarmState.OK, 5))
    store.inner.clear()
    other = delivery_with(store)
    deliver(other, alarm(AlarmState.ALARM, 10))
    deliver(other, alarm(AlarmState.OK, 20))
    sender = DryRunSender()
    remembering.sender = sender
    outcome = deliver(remembering, alarm(AlarmState.ALARM, 15))  # delayed: older than the OK at minute 20
    assert (outcome.action, outcome.reason) == (None, "stale")
    assert sender.sent == [], "the stale ALARM was sent on a guess the store could not tell apart"
    stored = store.inner.get(KEY)
    assert stored is not None and stored.status is IncidentStatus.RESOLVED


def test_a_plan_that_writes_nothing_is_checked_against_the_store() -> None:
    store = CountingStore()
    deliver(delivery_with(store), alarm(AlarmState.ALARM, 0))
    fresh = delivery_with(store)  # a new container knows nothing
    store.reads = store.writes = 0
    outcome = deliver(fresh, alarm(AlarmState.ALARM, 0))  # a duplicate: nothing to write
    assert outcome.reason == "duplicate"
    assert (store.reads, store.writes) == (0, 1), "the guess's failed claim returned the stored incident"


def test_a_guessed_claim_is_read_before_its_lease_decides() -> None:
    store = CountingStore()
    bridge = delivery_with(store, FailingSender(PagerDutyApiError(503, "Service Unavailable")))
    outcome = deliver(bridge, alarm(AlarmState.ALARM, 0))
    assert outcome.error is not None and outcome.error.retryable
    stored = store.inner.get(KEY)
    assert stored is not None and stored.pending_action is EventAction.TRIGGER and stored.lease_until is None
    # Someone else finished it meanwhile; this process still remembers the pending claim.
    store.inner.put(
        replace(stored, pending_action=None, claim_token=None, version=stored.version + 1),
        expected_version=stored.version,
    )
    bridge.sender = DryRunSender()
    retried = deliver(bridge, alarm(AlarmState.ALARM, 0))
    assert retried.reason == "duplicate", "the remembered claim was not trusted"


def test_a_live_lease_makes_a_concurrent_delivery_back_off() -> None:
    store = CountingStore()
    stored = Incident(
        dedup_key=KEY,
        alarm_name="checkout-5xx",
        status=IncidentStatus.TRIGGERED,
        updated_at=T0,
        state_changed_at=T0,
        pending_action=EventAction.TRIGGER,
        claim_token="someone",
        lease_until=T0 + timedelta(hours=1, minutes=10),  # the clock is at T0 + 1 h
    )
    store.inner.put(stored, expected_version=None)
    with pytest.raises(ConcurrentUpdateError):
        deliver(delivery_with(store), alarm(AlarmState.ALARM, 5))


def test_a_plan_without_an_action_writes_its_target_conditionally() -> None:
    store = CountingStore()
    bridge = delivery_with(store)
    outcome = bridge.run(
        KEY,
        lambda stored: Plan(Reason.SUPPRESSED),
        lambda p: PagerDutyEvent(event_action=EventAction.TRIGGER, dedup_key=KEY),
    )
    assert (outcome.action, outcome.reason) == (None, "suppressed")
    assert (store.reads, store.writes) == (1, 0), "a plan writing nothing is made on the stored incident"


@dataclass
class ManualClock:
    now: datetime = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingSender(DryRunSender):
    """Answers as PagerDuty does when it accepts (202), after ``during_send``; records each budget."""

    def __init__(self, during_send: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.budgets: list[float | None] = []
        self.during_send = during_send

    def send_body(
        self, body: dict[str, Any], *, budget_seconds: float | None = None, url: str | None = None
    ) -> EventResponse:
        self.sent.append(body)
        self.budgets.append(budget_seconds)
        self.during_send()
        return EventResponse(status="success", message="Event processed", dedup_key=body.get("dedup_key"))


def on_clock(store: CountingStore, sender: DryRunSender, clock: ManualClock) -> Delivery:
    return Delivery(store, sender, StaticKeys({"default": ROUTING_KEY}), clock, retry_budget_seconds=30)  # type: ignore[arg-type]


@pytest.mark.parametrize(("claim_seconds", "sent_budget"), [(0, 30), (12, 18), (29, 1), (30, None), (400, None)])
def test_attack_a_slow_claim_write_leaves_the_send_only_what_its_lease_still_covers(
    claim_seconds: float, sent_budget: float | None
) -> None:
    """The claim's lease is stamped before its write, the send's budget counted after it: a claim
    whose answer is slow (throttling retries, a slow network) must not leave a send running past the
    lease, when another container may take over and send a newer event that this one then overtakes."""
    clock = ManualClock()
    store = CountingStore(on_write=lambda n: clock.advance(claim_seconds) if n == 1 else None)
    sender = RecordingSender()
    outcome = deliver(on_clock(store, sender, clock), alarm(AlarmState.ALARM, 0))
    stored = store.inner.get(KEY)
    assert stored is not None
    if sent_budget is None:
        assert sender.sent == [], "nothing is sent once the lease cannot cover a request"
        assert outcome.error is not None and outcome.error.retryable
        assert stored.pending_action is EventAction.TRIGGER and stored.lease_until is None, "retried at once"
    else:
        assert sender.budgets == [pytest.approx(sent_budget)]
        assert outcome.error is None and stored.pending_action is None


def test_attack_a_send_accepted_after_another_container_took_over_leaves_the_incident_to_confirm() -> None:
    """However the lease ran out (a frozen container, a send slower than its timeouts), an event
    PagerDuty accepted after a newer delivery took over may have undone that one's: the incident is
    marked unconfirmed, so the scheduled run asserts its state again."""
    clock = ManualClock()
    store = CountingStore()
    newer = on_clock(store, DryRunSender(), clock)

    def overtaken() -> None:
        clock.advance(3600)  # this container froze; its lease is long over
        taken = deliver(newer, alarm(AlarmState.OK, 1))
        assert (taken.action, taken.error) == (EventAction.RESOLVE, None)

    outcome = deliver(on_clock(store, RecordingSender(during_send=overtaken), clock), alarm(AlarmState.ALARM, 0))
    assert outcome.action is EventAction.TRIGGER
    stored = store.inner.get(KEY)
    assert stored is not None and stored.status is IncidentStatus.RESOLVED and stored.pending_action is None
    assert stored.unconfirmed_until is not None and stored.unconfirmed_until > clock.now
    confirm = plan_confirm(stored, stored.unconfirmed_until)
    assert (confirm.reason, confirm.action) == (Reason.CONFIRM, EventAction.RESOLVE), "the resolve is sent again"


def test_a_resolve_for_an_alias_no_longer_configured_is_kept_not_sent_to_the_default_service() -> None:
    """Only a trigger falls back to the default alias: an incident open on another service can only be
    closed with that service's key, and a resolve sent to the default one would close nothing there
    while the table recorded the incident closed."""
    store = CountingStore()
    opened = Incident(
        dedup_key=KEY,
        alarm_name="checkout-5xx",
        status=IncidentStatus.TRIGGERED,
        routing_key_alias="web",
        state_changed_at=T0,
        alarm_state=AlarmState.ALARM,
        triggered_at=T0,
        updated_at=T0,
    )
    store.inner.put(opened, expected_version=None)
    sender = DryRunSender()

    with pytest.raises(UnknownAliasError, match="'web'"):
        deliver(delivery_with(store, sender), alarm(AlarmState.OK, 5))

    assert sender.sent == []
    assert store.inner.get(KEY) == opened, "nothing was sent, so nothing may be recorded"
