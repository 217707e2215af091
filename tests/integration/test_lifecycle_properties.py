"""Random alarm histories, delivered the way SNS and Lambda deliver them, under faults: the end state holds.

Each example draws the state changes of a few alarms (ALARM / OK / INSUFFICIENT_DATA, increasing
``StateChangeTime``), delivers every notification one to three times, shuffled within a small window,
and injects faults into each delivery attempt:

- PagerDuty (the stand-in, over real HTTP): 500, 503, 429 with ``Retry-After: 0``, a dropped
  connection, and a response slower than the client's read timeout (the event is still applied, late,
  as PagerDuty applies an event whose answer got lost);
- DynamoDB (moto in-process, behind a client wrapper): ``ProvisionedThroughputExceededException``
  before or after a ``get_item`` or a write (``put_item`` / ``update_item``) really happens, and a crash (an exception that is no
  ``BridgeError``, as when the Lambda dies) before or after a write — after the claim, after PagerDuty
  accepted, before or after the commit.

A failed delivery is retried as Lambda retries it: later, after zero to three other deliveries, with
the injected clock moved past the claim's lease (the failed invocation has ended by then).

Invariants, on the stand-in's alerts once everything is delivered: an alarm whose newest state is
ALARM has an open alert under our routing key; one whose newest state is OK has none; one whose newest
state is INSUFFICIENT_DATA is as its newest other state left it (the default policy ignores it). And
once a notification was handled successfully (accepted by PagerDuty and committed, or decided to need
nothing), delivering it again sends nothing at all.

The last property adds scheduled reconciliation runs at any point of a history (see its section).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import SecretStr

from pagerduty_bridge.delivery import UNCONFIRMED_WINDOW
from pagerduty_bridge.devtools.fake_pagerduty import Delay, Drop, FakePagerDuty, Fault, Respond
from pagerduty_bridge.integration import PagerDutyIntegration
from pagerduty_bridge.keys import RoutingKeys
from pagerduty_bridge.processing import process_event
from pagerduty_bridge.reconcile import AlarmReader, Reconciled, Reconciliation
from pagerduty_bridge.rules import load_rules
from pagerduty_bridge.runtime import Runtime
from pagerduty_bridge.seed.models import ServiceConfig
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import put_cpu_alarm
from tests.conftest import EVENTS, OTHER_ROUTING_KEY, ROOT, ROUTING_KEY, assert_valid_event, load_json

MAX_EXAMPLES = 30
"""Examples per property test: about 25 s each on two cores, mostly moto calls, HTTP and slow answers."""
RETRY_BUDGET_SECONDS = 0.5
"""The Events API client's budget per invocation: one immediate retry fits, a second backoff does not."""
SLOW_RESPONSE_SECONDS = 0.7
"""Longer than the client's read timeout at this budget (0.5 s, the client's floor)."""
LAMBDA_RETRY_DELAY = timedelta(minutes=1)
"""Lambda retries a failed asynchronous invocation after about a minute: past any claim's lease."""
MAX_ATTEMPTS = 40
"""Attempts per delivery before the test calls the notification lost (the faults run out long before)."""
SETTLE_TIMEOUT_SECONDS = 10.0
TABLE = "incidents"
REGION = "eu-west-1"
METRIC = "CPUUtilization"
T0 = datetime(2025, 1, 14, 15, 0, tzinfo=UTC)

State = Literal["ALARM", "OK", "INSUFFICIENT_DATA"]
PagerDutyFault = Literal["500", "503", "429", "drop"]
StoreOperation = Literal["get_item", "write"]
"""A read, or a write (``put_item`` or ``update_item``: which one the store sends is its own choice)."""
StoreFaultMode = Literal["throttle_before", "throttle_after", "crash_before", "crash_after"]


# --- the scenario ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One state change of one alarm, as CloudWatch publishes it."""

    state: State
    old_state: State
    at: datetime


@dataclass(frozen=True)
class StoreFault:
    """Fail the ``call``-th ``operation`` of one attempt (counting from 1), in the given way."""

    operation: StoreOperation
    call: int
    mode: StoreFaultMode


@dataclass(frozen=True)
class Attempt:
    """The faults met by one attempt at a delivery, and when Lambda retries it if it fails."""

    pagerduty: tuple[PagerDutyFault, ...] = ()
    store: StoreFault | None = None
    retry_after_deliveries: int = 0
    """How many other deliveries run before the retry (Lambda retries later, not at once)."""


@dataclass(frozen=True)
class Delivery:
    """One delivery of notification ``change`` of alarm ``alarm``; attempts past the list meet no fault."""

    alarm: int
    change: int
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Scenario:
    histories: tuple[tuple[Change, ...], ...]
    deliveries: tuple[Delivery, ...]
    slow_response: int | None = None
    """Which PagerDuty fault, counting in the order they are scripted, is a slow answer instead.

    One per example at most: each costs its full delay in wall time.
    """


def history(*changes: tuple[State, State, int]) -> tuple[Change, ...]:
    """(state, old state, minutes after T0) triples: for hand-written scenarios."""
    return tuple(Change(state, old, T0 + timedelta(minutes=minutes)) for state, old, minutes in changes)


@st.composite
def histories(draw: st.DrawFn, states: tuple[State, ...]) -> tuple[tuple[Change, ...], ...]:
    """2-4 alarms, each with 1-4 state changes; CloudWatch only publishes a change of state."""
    alarms = []
    for _ in range(draw(st.integers(2, 4))):
        old = draw(st.sampled_from(states))
        at = T0 + timedelta(seconds=draw(st.integers(0, 300)))
        changes = []
        for _ in range(draw(st.integers(1, 4))):
            state = draw(st.sampled_from([s for s in states if s != old]))
            at += timedelta(seconds=draw(st.integers(1, 600)), milliseconds=draw(st.integers(0, 999)))
            changes.append(Change(state, old, at))
            old = state
        alarms.append(tuple(changes))
    return tuple(alarms)


store_faults = st.builds(
    StoreFault,
    operation=st.sampled_from(("write", "get_item")),
    call=st.integers(1, 3),
    mode=st.sampled_from(("throttle_before", "throttle_after", "crash_before", "crash_after")),
)
attempts = st.builds(
    Attempt,
    pagerduty=st.lists(st.sampled_from(("500", "503", "429", "drop")), max_size=2).map(tuple),
    store=st.none() | store_faults,
    retry_after_deliveries=st.integers(0, 3),
)


@st.composite
def scenarios(draw: st.DrawFn, states: tuple[State, ...]) -> Scenario:
    """Histories, each notification delivered 1-3 times, shuffled within a window of three."""
    alarms = draw(histories(states))
    notifications = sorted(
        ((alarm, index) for alarm, changes in enumerate(alarms) for index in range(len(changes))),
        key=lambda n: alarms[n[0]][n[1]].at,
    )
    keyed: list[tuple[int, int, Delivery]] = []
    for natural, (alarm, index) in enumerate(notifications):
        for _ in range(draw(st.integers(1, 3))):
            jitter = draw(st.integers(0, 3))
            faults = tuple(draw(st.lists(attempts, max_size=2)))
            keyed.append((natural + jitter, len(keyed), Delivery(alarm, index, faults)))
    deliveries = tuple(delivery for *_, delivery in sorted(keyed, key=lambda k: k[:2]))
    return Scenario(alarms, deliveries, draw(st.none() | st.integers(0, 5)))


# --- DynamoDB faults ---------------------------------------------------------------------------------


class SimulatedCrash(Exception):
    """The Lambda dies mid-invocation: not a ``BridgeError``, so nothing in the bridge catches it."""


def throttled(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class FaultyDynamoDBClient:
    """A boto3 DynamoDB client that fails one armed call, before or after the real call happens."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._fault: StoreFault | None = None
        self._calls: dict[str, int] = {}
        self._after: tuple[str, int, Callable[[], None]] | None = None

    @property
    def raw(self) -> Any:
        """The client without faults: for another container, which meets none of this one's."""
        return self._client

    def arm(self, fault: StoreFault | None, after: tuple[str, int, Callable[[], None]] | None = None) -> None:
        """Fail one call as ``fault`` says; call ``after``'s callback once its call really happened."""
        self._fault, self._calls, self._after = fault, {}, after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_item(self, **kwargs: Any) -> Any:
        return self._call("get_item", kwargs)

    def put_item(self, **kwargs: Any) -> Any:
        return self._call("write", kwargs, "put_item")

    def update_item(self, **kwargs: Any) -> Any:
        return self._call("write", kwargs, "update_item")

    def _call(self, operation: str, kwargs: dict[str, Any], method: str | None = None) -> Any:
        self._calls[operation] = self._calls.get(operation, 0) + 1
        call = getattr(self._client, method or operation)
        fault = self._fault
        hit = fault is not None and fault.operation == operation and fault.call == self._calls[operation]
        if not hit or fault is None:
            answer = call(**kwargs)
            after = self._after
            if after is not None and after[:2] == (operation, self._calls[operation]):
                self._after = None
                after[2]()
            return answer
        self._fault = None
        if fault.mode == "throttle_before":
            raise throttled(operation)
        if fault.mode == "crash_before":
            raise SimulatedCrash(f"crash before {operation}")
        call(**kwargs)  # it happened; the caller just never hears so
        if fault.mode == "throttle_after":
            raise throttled(operation)
        raise SimulatedCrash(f"crash after {operation}")


# --- the world and the run ---------------------------------------------------------------------------


@dataclass
class World:
    fake: FakePagerDuty
    client: FaultyDynamoDBClient
    store: DynamoDBIncidentStore


@pytest.fixture
def world(fake_pd: FakePagerDuty) -> Iterator[World]:
    """moto's DynamoDB in-process (one table for every example: alarm names are unique per example)."""
    with mock_aws():
        raw = boto3.client("dynamodb", region_name=REGION)
        create_table(raw, TABLE)
        client = FaultyDynamoDBClient(raw)
        yield World(fake_pd, client, DynamoDBIncidentStore(client, TABLE))


_TEMPLATE: dict[str, Any] = load_json(EVENTS / "05-ec2-cpu-alarm.json")


def sns_event(
    alarm_name: str, change: Change, *, account: str = "123456789012", region: str = REGION
) -> dict[str, Any]:
    """events/05 as SNS delivers it to the Lambda, for ``alarm_name`` in ``change``'s state."""
    record = json.loads(json.dumps(_TEMPLATE["Records"][0]))
    message = json.loads(record["Sns"]["Message"])
    message.update(
        AlarmName=alarm_name,
        AlarmArn=f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_name}",
        AWSAccountId=account,
        NewStateValue=change.state,
        OldStateValue=change.old_state,
        StateChangeTime=change.at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{change.at.microsecond // 1000:03d}+0000",
        NewStateReason=f"Threshold Crossed: 1 datapoint [85.0 (14/01/25 15:00:00)] ({change.state})",
    )
    published = change.at + timedelta(milliseconds=100)  # SNS stamps a notification as it publishes it
    record["Sns"].update(
        MessageId=str(uuid.uuid4()),
        Subject=f'{change.state}: "{alarm_name}" in EU (Ireland)',
        Message=json.dumps(message),
        Timestamp=published.strftime("%Y-%m-%dT%H:%M:%S.") + f"{published.microsecond // 1000:03d}Z",
    )
    return {"Records": [record]}


def expected_open(changes: tuple[Change, ...]) -> bool:
    """Whether the alarm's newest state calls for an open alert (INSUFFICIENT_DATA: as before it)."""
    for change in sorted(changes, key=lambda c: c.at, reverse=True):
        if change.state != "INSUFFICIENT_DATA":
            return change.state == "ALARM"
    return False


@dataclass
class Run:
    """One scenario played against the world; what the invariants need to know."""

    world: World
    scenario: Scenario
    names: list[str]
    now: datetime = T0 + timedelta(hours=1)
    scripted: int = 0
    """PagerDuty faults scripted so far."""
    handled: set[tuple[int, int]] = field(default_factory=set)
    """Notifications handled successfully at least once."""
    resends: list[str] = field(default_factory=list)
    """Deliveries of an already handled notification that still reached PagerDuty (must stay empty)."""
    seen: set[str] = field(default_factory=set)
    """Decisions and failures met on the way, for the statistics (``--hypothesis-show-statistics``)."""
    requests_beside: int = 0
    """Requests made during the current attempt by something else than its delivery (a reconciliation)."""
    left_pending: set[str] = field(default_factory=set)
    """Dedup keys something else left with an unfinished delivery during the current attempt."""

    @property
    def store(self) -> DynamoDBIncidentStore:
        return self.world.store

    def key(self, alarm: int) -> str:
        return f"{self.names[alarm]}-{METRIC}"

    def notification(self, delivery: Delivery) -> dict[str, Any]:
        return sns_event(self.names[delivery.alarm], self.scenario.histories[delivery.alarm][delivery.change])

    def arm(self, delivery: Delivery, number: int, fault: StoreFault | None) -> None:
        """Arm the store's faults for one attempt (and whatever else happens during it)."""
        self.world.client.arm(fault)

    def integration(self) -> PagerDutyIntegration:
        settings = Settings(
            integration_key=SecretStr(ROUTING_KEY),
            events_url=self.world.fake.url,
            retry_budget_seconds=RETRY_BUDGET_SECONDS,
        )
        return PagerDutyIntegration(
            ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="property"),
            store=self.store,
            settings=settings,
            clock=lambda: self.now,
        )

    def faults(self, names: tuple[PagerDutyFault, ...]) -> list[Fault]:
        faults: list[Fault] = []
        for name in names:
            if self.scripted == self.scenario.slow_response:
                faults.append(Delay(SLOW_RESPONSE_SECONDS))
            elif name == "drop":
                faults.append(Drop())
            elif name == "429":
                faults.append(Respond(429, retry_after=0))
            else:
                faults.append(Respond(int(name)))
            self.scripted += 1
        return faults

    def settle(self) -> None:
        """Wait until every slow request was answered: PagerDuty applied it, whether or not we heard."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        while any(r.fault and r.fault.startswith("Delay") and r.status is None for r in self.world.fake.requests):
            assert time.monotonic() < deadline, "a slow request never completed"
            time.sleep(0.02)

    def attempt(self, integration: PagerDutyIntegration, delivery: Delivery, number: int) -> bool:
        """One invocation for ``delivery``; True when it succeeded."""
        plan = delivery.attempts[number] if number < len(delivery.attempts) else Attempt()
        fake, client = self.world.fake, self.world.client
        change = self.scenario.histories[delivery.alarm][delivery.change]
        before = len(fake.requests)
        stored = self.store.get(self.key(delivery.alarm))  # before any fault is armed
        unfinished = stored is not None and stored.pending_action is not None
        self.requests_beside, self.left_pending = 0, set()
        fake.script(*self.faults(plan.pagerduty))
        self.arm(delivery, number, plan.store)
        notification_event = self.notification(delivery)
        succeeded = False
        try:
            result = process_event(notification_event, integration.notifications)
            (record,) = result.results
            if record.error is not None:
                assert record.error.retryable, f"a permanent failure would lose this page: {record.error}"
                self.seen.add(f"failed: {type(record.error).__name__}")
            if record.outcome is not None:
                self.seen.add(f"decision: {record.outcome.reason}")
            succeeded = record.error is None
        except SimulatedCrash:
            self.seen.add("failed: crash")  # the invocation died: Lambda retries the event
        finally:
            client.arm(None)
        self.settle()
        notification = (delivery.alarm, delivery.change)
        sent = len(fake.requests) - before - self.requests_beside
        unfinished = unfinished or self.key(delivery.alarm) in self.left_pending
        # A pending delivery (its commit failed after PagerDuty accepted, or its send failed) is finished by
        # the next notification of its alarm, whichever that is: that request is the unfinished one's.
        if notification in self.handled and sent and not unfinished:
            self.resends.append(f"{self.names[delivery.alarm]} {change.state} at {change.at}: {sent} request(s)")
        if succeeded:
            self.handled.add(notification)
        return succeeded

    def before_attempt(self, delivery: Delivery, number: int) -> None:
        """Whatever happens in the world before an attempt (nothing, here)."""

    def play(self) -> None:
        integration = self.integration()
        queue: list[tuple[Delivery, int]] = [(delivery, 0) for delivery in self.scenario.deliveries]
        while queue:
            delivery, number = queue.pop(0)
            self.now += timedelta(seconds=1)
            self.before_attempt(delivery, number)
            if self.attempt(integration, delivery, number):
                continue
            assert number + 1 < MAX_ATTEMPTS, f"notification never delivered: {delivery}"
            self.now += LAMBDA_RETRY_DELAY
            plan = delivery.attempts[number] if number < len(delivery.attempts) else Attempt()
            queue.insert(min(plan.retry_after_deliveries, len(queue)), (delivery, number + 1))


def play(world: World, scenario: Scenario) -> Run:
    """Play ``scenario`` on a clean stand-in and check every invariant."""
    world.fake.reset()
    prefix = uuid.uuid4().hex[:8]
    run = Run(world, scenario, [f"prop-{prefix}-{index}" for index in range(len(scenario.histories))])
    run.play()

    assert run.resends == [], "a notification already handled reached PagerDuty again"
    requests = world.fake.requests
    for request in requests:
        assert_valid_event(request.body)
        assert request.body["routing_key"] == ROUTING_KEY
    open_alerts = set(world.fake.open_alerts(ROUTING_KEY))
    for name, changes in zip(run.names, scenario.histories, strict=True):
        newest = max(changes, key=lambda c: c.at)
        key = f"{name}-{METRIC}"
        if expected_open(changes):
            assert key in open_alerts, f"{name} is {newest.state} (history {changes}) but has no open alert"
        else:
            assert key not in open_alerts, f"{name} is {newest.state} (history {changes}) but its alert is open"
    assert open_alerts <= {f"{name}-{METRIC}" for name in run.names}
    return run


PROPERTY_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the properties ----------------------------------------------------------------------------------


def label(run: Run) -> None:
    for seen in sorted(run.seen):
        event(seen)


@PROPERTY_SETTINGS
@given(scenario=scenarios(("ALARM", "OK")))
def test_alarm_and_ok_histories_end_right_under_faults_and_retries(world: World, scenario: Scenario) -> None:
    label(play(world, scenario))


# Hand-written scenarios, each a minimal reproduction of a defect the property finds.
OK_MADE_STALE_BY_IGNORED_INSUFFICIENT_DATA = Scenario(
    (history(("ALARM", "OK", 1), ("OK", "ALARM", 2), ("INSUFFICIENT_DATA", "OK", 3)),),
    (Delivery(0, 0), Delivery(0, 2), Delivery(0, 1)),
)
"""ALARM at 1 min is paged; INSUFFICIENT_DATA (3 min) overtakes OK (2 min): OK is then 'stale'."""
TRIGGER_ORPHANED_BY_INSUFFICIENT_DATA = Scenario(
    (history(("ALARM", "OK", 1), ("INSUFFICIENT_DATA", "ALARM", 2)),),
    (
        Delivery(0, 0, (Attempt(store=StoreFault("write", 1, "crash_after"), retry_after_deliveries=1),)),
        Delivery(0, 1),
    ),
)
"""ALARM's invocation dies after its claim; INSUFFICIENT_DATA comes before Lambda's retry of ALARM."""
RESOLVE_ORPHANED_BY_OK_AFTER_INSUFFICIENT_DATA = Scenario(
    (history(("ALARM", "OK", 0), ("OK", "ALARM", 1), ("INSUFFICIENT_DATA", "OK", 2), ("OK", "INSUFFICIENT_DATA", 3)),),
    (
        Delivery(0, 0),
        Delivery(0, 1, (Attempt(store=StoreFault("write", 1, "crash_after"), retry_after_deliveries=2),)),
        Delivery(0, 2),
        Delivery(0, 3),
    ),
)
"""OK's invocation dies after its claim; INSUFFICIENT_DATA and OK again come before the retry of OK."""
ALARM_OVERTAKEN_BY_ITS_OK_AFTER_INSUFFICIENT_DATA = Scenario(
    (history(("ALARM", "OK", 1), ("INSUFFICIENT_DATA", "ALARM", 2), ("OK", "INSUFFICIENT_DATA", 3)),),
    (Delivery(0, 1), Delivery(0, 2), Delivery(0, 0)),
)
"""INSUFFICIENT_DATA (ignored) and the OK after it arrive before the ALARM they followed: nothing was ever
open, and the late ALARM must not page an alarm that is OK by then."""


@PROPERTY_SETTINGS
@example(scenario=OK_MADE_STALE_BY_IGNORED_INSUFFICIENT_DATA)
@example(scenario=TRIGGER_ORPHANED_BY_INSUFFICIENT_DATA)
@example(scenario=RESOLVE_ORPHANED_BY_OK_AFTER_INSUFFICIENT_DATA)
@example(scenario=ALARM_OVERTAKEN_BY_ITS_OK_AFTER_INSUFFICIENT_DATA)
@given(scenario=scenarios(("ALARM", "OK", "INSUFFICIENT_DATA")))
def test_histories_with_insufficient_data_end_right_under_faults_and_retries(world: World, scenario: Scenario) -> None:
    label(play(world, scenario))


def test_ok_overtaken_by_insufficient_data_still_resolves(world: World) -> None:
    """An ignored INSUFFICIENT_DATA does not move the ordering mark: the older OK still resolves."""
    play(world, OK_MADE_STALE_BY_IGNORED_INSUFFICIENT_DATA)


def test_trigger_pending_when_insufficient_data_arrives_is_still_sent(world: World) -> None:
    play(world, TRIGGER_ORPHANED_BY_INSUFFICIENT_DATA)


def test_resolve_pending_when_a_newer_ok_arrives_is_still_sent(world: World) -> None:
    play(world, RESOLVE_ORPHANED_BY_OK_AFTER_INSUFFICIENT_DATA)


def test_an_alarm_overtaken_by_its_ok_pages_nothing(world: World) -> None:
    play(world, ALARM_OVERTAKEN_BY_ITS_OK_AFTER_INSUFFICIENT_DATA)
    assert world.fake.requests == []


def test_a_crash_after_pagerduty_accepted_is_healed_by_the_retry_without_a_second_page(world: World) -> None:
    """The commit write never happens; the retry resends (PagerDuty deduplicates) and commits."""
    scenario = Scenario(
        (history(("ALARM", "OK", 1)), history(("OK", "ALARM", 1))),
        (
            Delivery(0, 0, (Attempt(store=StoreFault("write", 2, "crash_before")),)),
            Delivery(0, 0),
            Delivery(1, 0),
        ),
    )
    run = play(world, scenario)
    accepted = world.fake.accepted()
    assert [body["event_action"] for body in accepted] == ["trigger", "trigger", "resolve"]
    assert len(world.fake.alerts) == 1
    assert run.handled == {(0, 0), (1, 0)}


def test_a_lost_commit_answer_needs_no_resend(world: World) -> None:
    """The commit was written but its answer was throttled: the retry finds it done and sends nothing."""
    scenario = Scenario(
        (history(("ALARM", "OK", 1)),),
        (Delivery(0, 0, (Attempt(store=StoreFault("write", 2, "throttle_after")),)), Delivery(0, 0)),
    )
    play(world, scenario)
    assert len(world.fake.requests) == 1


# --- scheduled reconciliation runs, interleaved -----------------------------------------------------------
#
# The same histories, with scheduled runs at any point: between two deliveries, or inside one (after its
# read, after its claim: another container reconciles while this one delivers). CloudWatch (moto) holds
# each alarm's state as the history says at that point: every change up to the newest one delivered so
# far has happened, whether or not its own notification has arrived yet. Alarms live in two regions and
# two accounts (the other one read through an assumed role), each shadowed by a same-named alarm in the
# opposite state where it does not live; some OK notifications are never delivered at all; some alarms
# page a second service whose secret holds a placeholder for a while.
#
# Invariants: a run resolves only incidents whose alarm is OK; it never closes an open incident whose
# alarm is in ALARM; it never raises. After the last delivery, once the secret is fixed, the scheduled
# runs heal every OK that never came: the end state is as the histories say, on each service's key.

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "111111111111"
OTHER_REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:role/pagerduty-bridge-reconcile"
PAYMENTS = "payments"
PAYMENTS_RULES = json.dumps(
    {"rules": [{"name": PAYMENTS, "match": {"alarm_name": f"{PAYMENTS}-*"}, "routing_key": PAYMENTS}]}
)
PLACEHOLDER = "REPLACE-ME"
"""What someone wrote into the payments service's secret for a while."""
MAX_FINAL_RUNS = 5
"""Scheduled runs after the last delivery until one fails nothing (PagerDuty faults scripted for
attempts that never got to send are still queued at the stand-in, and meet whoever sends next)."""

Place = Literal["home", "other-region", "other-account"]
PLACES: dict[str, tuple[str, str]] = {
    "home": (ACCOUNT, REGION),
    "other-region": (ACCOUNT, OTHER_REGION),
    "other-account": (OTHER_ACCOUNT, REGION),
}
DECOYS: dict[str, str] = {"home": "other-region", "other-region": "home", "other-account": "home"}
"""Where each alarm's same-named shadow stands, in the opposite state: reading it would be wrong."""
RunPoint = Literal["between", "after_read", "after_claim"]
INSIDE: dict[str, tuple[str, int]] = {"after_read": ("get_item", 1), "after_claim": ("write", 1)}


@dataclass(frozen=True)
class Interleaving:
    scenario: Scenario
    places: tuple[Place, ...]
    payments: tuple[bool, ...]
    """Which alarms page the payments service (an alias with a secret of its own)."""
    runs: tuple[RunPoint | None, ...]
    """For each delivery, a scheduled run before its first attempt or inside it, or none."""
    lost: frozenset[tuple[int, int]]
    """(alarm, change) of the OK notifications that never arrive."""
    broken: tuple[int, int] | None
    """Attempts [start, end) during which the payments secret holds a placeholder."""


@st.composite
def interleavings(draw: st.DrawFn) -> Interleaving:
    scenario = draw(scenarios(("ALARM", "OK")))
    alarms = range(len(scenario.histories))
    oks = [(a, i) for a in alarms for i, change in enumerate(scenario.histories[a]) if change.state == "OK"]
    lost = frozenset(draw(st.sets(st.sampled_from(oks)))) if oks else frozenset()
    deliveries = tuple(d for d in scenario.deliveries if (d.alarm, d.change) not in lost)
    runs = tuple(draw(st.sampled_from((None, None, "between", "after_read", "after_claim"))) for _ in deliveries)
    start, length = draw(st.integers(0, len(deliveries))), draw(st.integers(1, 6))
    return Interleaving(
        Scenario(scenario.histories, deliveries, scenario.slow_response),
        tuple(draw(st.sampled_from(tuple(PLACES))) for _ in alarms),  # type: ignore[misc]
        tuple(draw(st.booleans()) for _ in alarms),
        runs,
        lost,
        draw(st.none() | st.just((start, start + length))),
    )


def opposite(state: str) -> str:
    return "OK" if state == "ALARM" else "ALARM"


@dataclass(kw_only=True)
class ReconcilingRun(Run):
    """A scenario played with scheduled runs interleaved, CloudWatch kept as the histories say."""

    interleaving: Interleaving
    table: str
    secret_arn: str
    step: int = 0
    """Attempts so far."""
    published: int = -1
    """The newest change (in the order of all changes) that has happened in CloudWatch."""
    states: dict[int, str] = field(default_factory=dict)
    """Each alarm's state in CloudWatch now."""
    runs: int = 0
    _order: dict[tuple[int, int], int] = field(default_factory=dict)
    _index: dict[int, int] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)
    _keys: RoutingKeys | None = None
    _reconciler: Runtime | None = None

    def __post_init__(self) -> None:
        histories = self.scenario.histories
        changes = sorted(
            ((a, i) for a, h in enumerate(histories) for i in range(len(h))), key=lambda n: histories[n[0]][n[1]].at
        )
        self._order = {change: order for order, change in enumerate(changes)}
        self._index = {id(delivery): index for index, delivery in enumerate(self.scenario.deliveries)}

    # --- the world ---------------------------------------------------------------------------------

    @property
    def store(self) -> DynamoDBIncidentStore:
        return DynamoDBIncidentStore(self.world.client, self.table)

    @property
    def reconciler_store(self) -> DynamoDBIncidentStore:
        return DynamoDBIncidentStore(self.world.client.raw, self.table)

    def settings(self) -> Settings:
        return Settings(
            integration_key=SecretStr(ROUTING_KEY),
            events_url=self.world.fake.url,
            retry_budget_seconds=RETRY_BUDGET_SECONDS,
            alert_rules=PAYMENTS_RULES,
            routing_key_secrets={PAYMENTS: self.secret_arn},
            reconcile_role_arns={OTHER_ACCOUNT: ROLE_ARN},
        )

    def routing_key(self, alarm: int) -> str:
        return OTHER_ROUTING_KEY if self.interleaving.payments[alarm] else ROUTING_KEY

    def notification(self, delivery: Delivery) -> dict[str, Any]:
        account, region = PLACES[self.interleaving.places[delivery.alarm]]
        change = self.scenario.histories[delivery.alarm][delivery.change]
        return sns_event(self.names[delivery.alarm], change, account=account, region=region)

    def integration(self) -> PagerDutyIntegration:
        settings = self.settings()
        self._keys = RoutingKeys(settings)
        return PagerDutyIntegration(
            ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="property"),
            store=self.store,
            settings=settings,
            clock=lambda: self.now,
            rules=load_rules(settings),
            keys=self._keys,
        )

    def cloudwatch(self, place: str) -> Any:
        if place not in self._clients:
            account, region = PLACES[place]
            credentials: dict[str, str] = {}
            if account != ACCOUNT:
                assumed = boto3.client("sts", region_name=REGION).assume_role(
                    RoleArn=ROLE_ARN, RoleSessionName="property-setup"
                )["Credentials"]
                credentials = {
                    "aws_access_key_id": assumed["AccessKeyId"],
                    "aws_secret_access_key": assumed["SecretAccessKey"],
                    "aws_session_token": assumed["SessionToken"],
                }
            self._clients[place] = boto3.client("cloudwatch", region_name=region, **credentials)
        return self._clients[place]

    def set_state(self, alarm: int, state: str, *, create: bool = False) -> None:
        """The alarm in ``state`` where it lives, its shadow in the opposite state where it does not."""
        place = self.interleaving.places[alarm]
        for where, value in ((place, state), (DECOYS[place], opposite(state))):
            client = self.cloudwatch(where)
            if create:
                put_cpu_alarm(client, self.names[alarm])
            client.set_alarm_state(AlarmName=self.names[alarm], StateValue=value, StateReason="as the history says")
        self.states[alarm] = state

    def publish(self, upto: int) -> None:
        """Every change up to ``upto`` (in the order of all changes) has happened in CloudWatch."""
        if upto <= self.published:
            return
        self.published = upto
        for alarm, changes in enumerate(self.scenario.histories):
            happened = [change for index, change in enumerate(changes) if self._order[(alarm, index)] <= upto]
            if happened and happened[-1].state != self.states[alarm]:
                self.set_state(alarm, happened[-1].state)

    def write_secret(self, value: str) -> None:
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=self.secret_arn, SecretString=value
        )
        for keys in (self._keys, self._reconciler.keys if self._reconciler else None):
            if keys is not None:
                keys.clear_cache()  # a new container, or the cache's five minutes are over

    # --- the interleaving --------------------------------------------------------------------------

    def before_attempt(self, delivery: Delivery, number: int) -> None:
        broken = self.interleaving.broken
        if broken is not None and self.step in broken:
            self.write_secret(PLACEHOLDER if self.step == broken[0] else OTHER_ROUTING_KEY)
            self.seen.add(f"secret {'broken' if self.step == broken[0] else 'fixed'}")
        self.step += 1
        self.publish(self._order[(delivery.alarm, delivery.change)])
        if number == 0 and self.interleaving.runs[self._index[id(delivery)]] == "between":
            self.reconcile()

    def arm(self, delivery: Delivery, number: int, fault: StoreFault | None) -> None:
        point = self.interleaving.runs[self._index[id(delivery)]] if number == 0 else None
        if point in INSIDE:
            operation, call = INSIDE[point]  # type: ignore[index]
            self.world.client.arm(fault, after=(operation, call, self.reconcile_inside))
        else:
            self.world.client.arm(fault)

    def reconcile_inside(self) -> None:
        """Another container's scheduled run, while this attempt is between two of its table calls."""
        self.seen.add("a run inside a delivery")
        before = len(self.world.fake.requests)
        self.reconcile()
        self.requests_beside += len(self.world.fake.requests) - before
        for alarm in range(len(self.names)):
            stored = self.reconciler_store.get(self.key(alarm))
            if stored is not None and stored.pending_action is not None:
                self.left_pending.add(self.key(alarm))

    def reconcile(self) -> list[Reconciled]:
        """One scheduled run (its own container: no store faults), checked against CloudWatch's states."""
        if self._reconciler is None:
            self._reconciler = Runtime(settings=self.settings(), store=self.reconciler_store, clock=lambda: self.now)
        runtime = self._reconciler
        notifications = runtime.notifications()
        reader = AlarmReader(
            runtime.cloudwatch, own_account=ACCOUNT, own_region=None, role_arns=runtime.settings.reconcile_role_arns
        )
        open_before = {incident.dedup_key for incident in self.reconciler_store.list_active()}
        if any(state == "ALARM" and self.key(alarm) in open_before for alarm, state in self.states.items()):
            self.seen.add("a run met an open incident whose alarm is in ALARM")
        before = len(self.world.fake.requests)
        results = Reconciliation(
            notifications.delivery,
            reader,
            runtime.clock,
            silences=notifications.silences,
            retry_budget_seconds=RETRY_BUDGET_SECONDS,
        ).run()
        self.settle()
        self.runs += 1
        resolves = {
            r.body["dedup_key"] for r in self.world.fake.requests[before:] if r.body["event_action"] == "resolve"
        }
        for alarm, state in self.states.items():
            key = self.key(alarm)
            for result in results:
                if result.dedup_key == key:
                    self.seen.add(f"reconciled: {result.action} ({result.reason.split(':')[0][:40]})")
                    assert result.action != "resolved" or state == "OK", f"{key} resolved while {state}: {result}"
            if state == "ALARM" and key in open_before:
                assert key not in resolves, f"{key} is in ALARM but the run closed its page"
                after = self.reconciler_store.get(key)
                assert after is not None and after.is_open, f"{key} is in ALARM but the run closed its incident"
        return results

    def play(self) -> None:
        for alarm, changes in enumerate(self.scenario.histories):
            self.set_state(alarm, changes[0].old_state, create=True)
        super().play()
        if self.interleaving.broken is not None:
            self.write_secret(OTHER_ROUTING_KEY)
        self.publish(len(self._order))
        self.now += UNCONFIRMED_WINDOW + timedelta(minutes=1)  # every unknown outcome may be confirmed now
        for _ in range(MAX_FINAL_RUNS):
            if not any(result.action == "failed" for result in self.reconcile()):
                break
            self.now += timedelta(minutes=5)  # the next scheduled run
        else:
            pytest.fail("the scheduled runs kept failing after the last delivery")


def play_interleaved(world: World, interleaving: Interleaving) -> ReconcilingRun:
    world.fake.reset()
    prefix = uuid.uuid4().hex[:8]
    names = [
        f"{PAYMENTS if payments else 'prop'}-{prefix}-{index}" for index, payments in enumerate(interleaving.payments)
    ]
    table = f"incidents-{prefix}"  # a table per example: a run reads every incident in it
    create_table(world.client.raw, table)
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"pagerduty/{prefix}/payments", SecretString=OTHER_ROUTING_KEY
    )["ARN"]
    run = ReconcilingRun(world, interleaving.scenario, names, interleaving=interleaving, table=table, secret_arn=secret)
    run.play()

    assert run.resends == [], "a notification already handled reached PagerDuty again"
    for request in world.fake.requests:
        assert_valid_event(request.body)
        alarm = next(a for a in range(len(names)) if request.body["dedup_key"] == run.key(a))
        assert request.body["routing_key"] == run.routing_key(alarm), "an event went to another service's key"
    for alarm, changes in enumerate(interleaving.scenario.histories):
        if (alarm, len(changes) - 1) in interleaving.lost:
            run.seen.add("healed an alarm whose newest notification (OK) never came")
        key, routing_key = run.key(alarm), run.routing_key(alarm)
        is_open = key in world.fake.open_alerts(routing_key)
        assert is_open == expected_open(changes), f"{key}: history {changes}, lost {interleaving.lost}, open {is_open}"
    return run


# Hand-written interleavings, each a minimal reproduction of a defect the property found.
RECONCILED_RESOLVE_REFUSED_AFTER_ITS_OK_WAS_LOST = Interleaving(
    Scenario(
        (history(("ALARM", "OK", 1), ("OK", "ALARM", 2)), history(("ALARM", "OK", 3))),
        (Delivery(0, 0), Delivery(1, 0, (Attempt(pagerduty=("503", "503", "503")),))),
    ),
    places=("home", "home"),
    payments=(False, False),
    runs=(None, "after_claim"),
    lost=frozenset({(0, 1)}),
    broken=None,
)
"""The first alarm's OK never comes; a run (inside the second alarm's delivery) resolves it, PagerDuty
answers 503 until the budget is spent: the closed incident's resolve stays pending, and no run saw it."""


@PROPERTY_SETTINGS
@example(interleaving=RECONCILED_RESOLVE_REFUSED_AFTER_ITS_OK_WAS_LOST)
@given(interleaving=interleavings())
def test_scheduled_runs_at_any_point_never_close_a_live_page_and_heal_lost_oks(
    world: World, interleaving: Interleaving
) -> None:
    run = play_interleaved(world, interleaving)
    label(run)
    event(f"scheduled runs: {min(run.runs, 10)}{'+' if run.runs >= 10 else ''}")


def test_a_reconciled_resolve_that_pagerduty_refused_is_finished_by_the_next_run(world: World) -> None:
    run = play_interleaved(world, RECONCILED_RESOLVE_REFUSED_AFTER_ITS_OK_WAS_LOST)
    assert "reconciled: failed (PagerDuty API error)" in run.seen
    assert "reconciled: confirmed (redelivery)" in run.seen


def test_the_readme_states_how_many_examples_each_property_plays() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"({MAX_EXAMPLES} examples per property per run)" in readme
