"""Reconciliation, redrive and silences at their edges: odd answers, odd timing, overlapping holds.

Each case runs the real paths (the Lambda handler under moto, the PagerDuty stand-in over HTTP) and
names the promise it keeps.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import redrive as redrive_module
from pagerduty_bridge.devtools.fake_pagerduty import Delay
from pagerduty_bridge.models import EventAction
from pagerduty_bridge.processing import Deadline
from pagerduty_bridge.reconcile import GONE, INVISIBLE, AlarmReader, AlarmRef
from pagerduty_bridge.runtime import cloudwatch_client
from pagerduty_bridge.silences import Silence, expired
from tests.builders import (
    ACCOUNT,
    REGION,
    T0,
    dedup_key,
    eventbridge_event,
    put_cpu_alarm,
    schedule_event,
    sns_event,
    sqs_alarm,
)
from tests.conftest import EVENTS
from tests.integration.test_reconciliation import (
    TABLE,
    Bridge,
    Operator,
    bridge,
    failure_record,
    operator,
    put_alarm,
    sent,
)
from tests.sockets import within

HUNG_REGION = "ap-hung-9"
__all__ = ["bridge", "operator"]  # the fixtures, shared with the reconciliation tests


def alarm_action(name: str) -> dict[str, Any]:
    """The event an alarm's own Lambda action invokes the function with (events/16), for ``name``."""
    event: dict[str, Any] = json.loads((EVENTS / "16-alarm-lambda-action.json").read_text())
    event["alarmArn"] = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
    event["region"], event["accountId"] = REGION, ACCOUNT
    event["alarmData"]["alarmName"] = name
    return event


def silence(name: str, glob: str, *, starts: datetime, ends: datetime) -> Silence:
    return Silence(
        id=name,
        matchers={"alarm_name": glob},
        starts_at=starts,
        ends_at=ends,
        comment=name,
        created_by="test",
        created_at=starts,
    )


# --- the scheduled run --------------------------------------------------------------------------------------


def test_an_incident_whose_delivery_is_in_flight_is_left_to_it_not_counted_as_a_failed_delivery(
    bridge: Bridge,
) -> None:
    """README: "a delivery whose lease is still running is left to its invocation". The alarm reads OK
    while another invocation holds the incident's claim (it is sending right now): the run keeps the
    incident for the next run; it does not count a failed delivery (the ``DeliveryFailed`` health alarm
    would wake someone for nothing) nor fail ``reconcile``."""
    name, key = "web-prod-busy", dedup_key("web-prod-busy")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "OK")
    opened = bridge.store.get(key)
    assert opened is not None and opened.is_open
    now = datetime.now(UTC)
    sending = replace(
        opened,
        pending_action=EventAction.TRIGGER,
        claim_token="another-invocation",
        lease_until=now + timedelta(minutes=1),
        version=opened.version + 1,
    )
    bridge.store.put(sending, expected_version=opened.version)
    before = bridge.metrics()

    summary = bridge.schedule()

    assert bridge.reconciled() == {key: ("kept", "in_flight")}
    assert summary["failed"] == 0
    assert bridge.metrics()[c.METRIC_DELIVERY_FAILED] == before[c.METRIC_DELIVERY_FAILED]
    assert sent(bridge.fake, "resolve") == []


def test_a_lease_ending_centuries_ahead_does_not_keep_an_incident_from_the_run_for_good(bridge: Bridge) -> None:
    """A claim whose lease ends in the year 2999 (written by hand, or by a clock far ahead) was taken as
    a delivery in flight by every run: an incident whose alarm is OK was never resolved. No lease is
    that long; the run resolves it."""
    name, key = "web-prod-stuck", dedup_key("web-prod-stuck")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "OK")
    opened = bridge.store.get(key)
    assert opened is not None and opened.is_open
    stuck = replace(
        opened,
        pending_action=EventAction.TRIGGER,
        claim_token="a-clock-far-ahead",
        lease_until=datetime(2999, 1, 1, tzinfo=UTC),
        version=opened.version + 1,
    )
    bridge.store.put(stuck, expected_version=opened.version)

    bridge.schedule()

    assert sent(bridge.fake, "resolve") != []
    after = bridge.store.get(key)
    assert after is not None and not after.is_open and after.pending_action is None


def test_an_incident_of_an_origin_this_version_does_not_know_is_not_resolved_as_an_alarm_gone(
    bridge: Bridge,
) -> None:
    """An open incident whose ``origin`` is one a newer version wrote (a kind of manual page this version
    does not know) read as an alarm's: the run found no alarm of its name and resolved it in PagerDuty,
    closing a live incident nobody had handled. Unknown, it is left alone like a page made by hand."""
    key = "page-by-api"
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=TABLE,
        Item={
            "dedup_key": {"S": key},
            "alarm_name": {"S": key},
            "status": {"S": "triggered"},
            "origin": {"S": "api"},
            "alarm_arn": {"S": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{key}"},
            "updated_at": {"S": "2025-01-01T00:00:00.000000Z"},
            "triggered_at": {"S": "2025-01-01T00:00:00.000000Z"},
            "version": {"N": "7"},
            "active": {"S": "open"},
            "active_since": {"S": "2025-01-01T00:00:00.000000Z"},
        },
    )

    bridge.schedule()

    assert sent(bridge.fake, "resolve") == []
    after = bridge.store.get(key)
    assert after is not None and after.is_open


def test_a_run_out_of_time_leaves_the_rest_to_the_next_run_and_resolves_each_incident_once(bridge: Bridge) -> None:
    """Many incidents whose OK was lost, PagerDuty slow to answer, a short invocation: the run resolves
    what fits, defers the rest unstarted (nothing pending, nothing failed), within its time; the next
    runs finish the rest, and no incident is resolved twice."""
    names = [f"web-late-{index:02d}" for index in range(8)]
    for name in names:
        bridge.invoke(sns_event(name, "ALARM", "OK", T0))
        put_alarm(name, "OK")
    bridge.fake.script(*[Delay(0.8)] * len(names))

    started = time.monotonic()
    first = bridge.invoke(schedule_event(), remaining_ms=12_000)
    assert time.monotonic() - started < 12, "within the invocation"
    assert 0 < first["resolved"] < len(names), first
    assert first["failed"] == 0 and first["kept"] == len(names) - first["resolved"]
    assert all(i.pending_action is None for i in [*bridge.store.list_active(), *bridge.store.list_watched()])

    for _ in range(len(names)):
        if not bridge.store.list_active():
            break
        bridge.invoke(schedule_event(), remaining_ms=12_000)
    assert bridge.store.list_active() == []
    assert Counter(sent(bridge.fake, "resolve")) == Counter({dedup_key(name): 1 for name in names})


def test_more_alarms_than_one_describe_call_takes_are_each_read_once_none_taken_for_gone() -> None:
    """250 incidents in one place (DescribeAlarms takes 100 names a call and answers in pages): every
    alarm that exists is read with its own state, and only the ones deleted are gone."""
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        names = [f"web-{index:03d}" for index in range(250)]
        for index, name in enumerate(names):
            if index % 10 != 9:  # every tenth alarm was deleted since it paged
                put_cpu_alarm(cloudwatch, name, "ALARM" if index % 2 else "OK")
        calls: list[int] = []

        def clients(region: str | None, role: str | None) -> Any:
            client = boto3.client("cloudwatch", region_name=region)
            client.meta.events.register(
                "provide-client-params.cloudwatch.DescribeAlarms",
                lambda params, **_: calls.append(len(params.get("AlarmNames", []))),
            )
            return client

        reader = AlarmReader(clients, own_account=ACCOUNT, own_region=REGION)
        refs = [AlarmRef(ACCOUNT, REGION, name) for name in names]
        states = reader.states([*refs, *refs[:5]])  # an alarm with two incidents is asked for once

    expected = {ref: GONE if index % 10 == 9 else ("ALARM" if index % 2 else "OK") for index, ref in enumerate(refs)}
    assert states == expected
    assert all(0 < n <= 100 for n in calls) and sum(calls) == len(names), calls


@pytest.mark.parametrize(
    ("rules", "resolved"),
    [
        (None, True),
        ({"rules": [{"name": "web", "match": {"alarm_name": "web-*"}, "insufficient_data": "ignore"}]}, False),
    ],
    ids=["every-alarm-resolves-on-missing-data", "a-rule-may-say-otherwise"],
)
def test_an_incident_whose_alarm_lost_its_data_is_resolved_when_missing_data_resolves(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, rules: dict[str, Any] | None, resolved: bool
) -> None:
    """``INSUFFICIENT_DATA_ACTION=resolve``: missing data clears an alarm (an instance terminated while
    its alarm fired). Its INSUFFICIENT_DATA notification was lost, and the alarm stays without data for
    good: the scheduled run resolves the incident, as it resolves one whose alarm is OK. When a rule
    may treat missing data otherwise, the run cannot tell which rule the alarm falls under: it keeps."""
    monkeypatch.setenv(c.ENV_INSUFFICIENT_DATA_ACTION, "resolve")
    if rules is not None:
        monkeypatch.setenv(c.ENV_ALERT_RULES, json.dumps(rules))
    name, key = "web-prod-terminated", dedup_key("web-prod-terminated")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "INSUFFICIENT_DATA")

    bridge.schedule()

    if resolved:
        assert bridge.reconciled() == {key: ("resolved", "alarm_insufficient_data")}
        assert sent(bridge.fake, "resolve") == [key]
        assert bridge.store.list_active() == []
    else:
        assert bridge.reconciled() == {key: ("kept", "alarm_not_ok")}
        assert sent(bridge.fake, "resolve") == []


@contextmanager
def unanswering_server() -> Iterator[str]:
    """An endpoint that takes connections and requests and never answers: a region whose CloudWatch
    hangs (packets dropped past the load balancer), the worst a place can do."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def test_a_region_that_never_answers_holds_the_run_up_for_seconds_not_minutes(moto_url: str) -> None:
    """README: "A place that cannot be read holds up nothing else." A region whose CloudWatch takes the
    request and never answers is given up on within seconds (not botocore's 60 s read timeout, five
    times over), so the scheduled run still reaches every other incident before its deadline."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=moto_url)
    put_cpu_alarm(cloudwatch, "web-here-cpu", "OK")
    with unanswering_server() as hung:

        def clients(region: str | None, role: str | None) -> Any:
            return cloudwatch_client(region, role, endpoint_url=hung if region == HUNG_REGION else moto_url)

        reader = AlarmReader(clients, own_account=ACCOUNT, own_region=REGION)
        here, there = AlarmRef(ACCOUNT, REGION, "web-here-cpu"), AlarmRef(ACCOUNT, HUNG_REGION, "web-there-cpu")
        started = time.monotonic()
        found = within(30, lambda: reader.states([there, here]))
        seconds = time.monotonic() - started

    assert found, f"still waiting on the hung region after {seconds:.0f} s"
    assert found[0] == {here: "OK", there: INVISIBLE}


def test_places_the_run_has_no_time_left_for_are_left_unread_its_own_place_first() -> None:
    """Each hung place costs the run its clients' whole timeouts (about 14 s): three or four of them
    held the run past the invocation's deadline before it resolved anything, run after run. Places are
    read while one more read fits the deadline, the run's own region first (its alarms are most of the
    incidents); the rest are unread this run (kept, not gone) and the run goes on to resolve."""
    elapsed = [0.0]
    deadline = Deadline(end=40.0, clock=lambda: elapsed[0])
    asked: list[str | None] = []

    class HungCloudWatch:
        def __init__(self, region: str | None) -> None:
            self.region = region

        def get_paginator(self, _: str) -> Any:
            asked.append(self.region)
            elapsed[0] += 14.0  # connect and read timeouts, twice, then the client gives up
            raise EndpointConnectionError(endpoint_url=f"https://monitoring.{self.region}.amazonaws.com")

    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        put_cpu_alarm(cloudwatch, "web-here-cpu", "OK")

        def clients(region: str | None, role: str | None) -> Any:
            return cloudwatch if region == REGION else HungCloudWatch(region)

        reader = AlarmReader(clients, own_account=ACCOUNT, own_region=REGION)
        there = [AlarmRef(ACCOUNT, region, "web-there-cpu") for region in ("ap-hung-1", "ap-hung-2", "ap-hung-3")]
        here = AlarmRef(ACCOUNT, REGION, "web-here-cpu")
        states = reader.states([*there, here], deadline=deadline)

    assert states == {here: "OK", **dict.fromkeys(there, INVISIBLE)}
    assert len(asked) == 2, f"a place was read with no time left for it: {asked}"
    assert elapsed[0] <= 40.0


# --- silences --------------------------------------------------------------------------------------------


def test_an_alarm_under_two_silences_is_not_paged_when_the_shorter_one_ends(bridge: Bridge) -> None:
    """A short silence for one host's patching and a longer one for the whole maintenance both cover
    the alarm: when the short one ends the alarm is still silenced, so the scheduled run pages nothing."""
    now = datetime.now(UTC)
    short = silence("patching", "web-*", starts=now - timedelta(hours=2), ends=now + timedelta(hours=1))
    long = silence("maintenance", "web-prod-*", starts=now - timedelta(hours=1), ends=now + timedelta(hours=3))
    bridge.store.put_silence(short)
    bridge.store.put_silence(long)
    name, key = "web-prod-cpu", dedup_key("web-prod-cpu")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "ALARM")
    assert bridge.fake.accepted() == [], "silenced"

    bridge.store.put_silence(expired(short, now))
    bridge.new_container()
    bridge.schedule()

    assert sent(bridge.fake, "trigger") == [], "the longer silence still holds"
    assert [i.dedup_key for i in bridge.store.list_watched()] == [key], "still watched for when it ends"

    bridge.store.put_silence(expired(long, now))
    bridge.new_container()
    bridge.schedule()
    assert sent(bridge.fake, "trigger") == [key], "paged once both are over"


def test_back_to_back_silences_hand_over_without_a_page(bridge: Bridge) -> None:
    """Two maintenance windows back to back (or a second silence added while the first holds): the
    alarm fired under the first; when it ends the second covers the alarm, so the scheduled run does
    not page and keeps watching — and pages once the second is over too."""
    now = datetime.now(UTC)
    first = silence("window-1", "web-prod-*", starts=now - timedelta(hours=2), ends=now + timedelta(hours=1))
    bridge.store.put_silence(first)
    name, key = "web-prod-db", dedup_key("web-prod-db")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "ALARM")
    second = silence("window-2", "web-prod-db", starts=now - timedelta(minutes=1), ends=now + timedelta(hours=2))
    bridge.store.put_silence(second)
    bridge.store.put_silence(expired(first, now))
    bridge.new_container()

    bridge.schedule()

    assert sent(bridge.fake, "trigger") == [], "the second window covers it"
    watched = bridge.store.list_watched()
    assert [(i.dedup_key, i.silence_id) for i in watched] == [(key, "window-2")]

    bridge.store.put_silence(expired(second, now))
    bridge.new_container()
    bridge.schedule()
    bridge.schedule()
    assert sent(bridge.fake, "trigger") == [key], "paged once, when no window covers it"


def test_a_later_silence_on_a_field_the_table_does_not_keep_does_not_hold_back_the_page(bridge: Bridge) -> None:
    """The scheduled run can judge a silence only on what the table keeps of the alarm (its name, dedup
    key, severity, account and region): one matching on anything else (a dimension, a tag) cannot be
    told to cover it, and a page is never lost on a guess."""
    now = datetime.now(UTC)
    first = silence("window-1", "web-prod-*", starts=now - timedelta(hours=2), ends=now + timedelta(hours=1))
    bridge.store.put_silence(first)
    name, key = "web-prod-db", dedup_key("web-prod-db")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "ALARM")
    other = replace(
        silence("by-namespace", "web-prod-*", starts=now - timedelta(minutes=1), ends=now + timedelta(hours=2)),
        matchers={"alarm_name": "web-prod-*", "namespace": "AWS/EC2"},
    )
    bridge.store.put_silence(other)
    bridge.store.put_silence(expired(first, now))
    bridge.new_container()

    bridge.schedule()

    assert sent(bridge.fake, "trigger") == [key]


def test_a_silenced_insufficient_data_page_is_sent_when_the_silence_ends_while_data_is_still_missing(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``INSUFFICIENT_DATA_ACTION=trigger`` missing data pages (a host that stopped reporting). A
    silence covered that page; when the silence is over and the alarm still has no data, the scheduled
    run pages it, as it pages an alarm still in ALARM: the page is late, not lost."""
    monkeypatch.setenv(c.ENV_INSUFFICIENT_DATA_ACTION, "trigger")
    now = datetime.now(UTC)
    held = silence("maintenance", "web-*", starts=now - timedelta(hours=1), ends=now + timedelta(hours=1))
    bridge.store.put_silence(held)
    name, key = "web-prod-cpu", dedup_key("web-prod-cpu")
    bridge.invoke(sns_event(name, "INSUFFICIENT_DATA", "OK", T0))
    put_alarm(name, "INSUFFICIENT_DATA")
    assert bridge.fake.accepted() == [], "silenced"
    assert [i.dedup_key for i in bridge.store.list_watched()] == [key]

    bridge.store.put_silence(expired(held, now))
    bridge.new_container()
    bridge.schedule()

    assert sent(bridge.fake, "trigger") == [key], "paged once the silence is over"
    bridge.schedule()
    assert sent(bridge.fake, "trigger") == [key], "and only once"


# --- redrive ---------------------------------------------------------------------------------------------


def test_redrive_reaches_every_message_when_the_kept_ones_come_back_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead-letter queue longer than one receive, its first ten kept (PagerDuty down: each spends its
    retry budget, longer together than their visibility): when they are visible again before the rest
    were read, the run goes on to the rest instead of taking "only old ones came back" for "drained"."""
    monkeypatch.setattr(redrive_module, "VISIBILITY_SECONDS", 2)
    slept: list[float] = []

    def slow_first_batch(_: redrive_module.RedriveReport) -> None:
        if not slept:  # the first ten took longer than their visibility
            slept.append(2.2)
            time.sleep(2.2)

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
        ids = [sqs.send_message(QueueUrl=url, MessageBody=f"not json {n}")["MessageId"] for n in range(25)]

        report = redrive_module.redrive(
            sqs,
            url,
            None,  # type: ignore[arg-type]
            run_schedule=lambda: None,
            max_messages=100,
            progress=slow_first_batch,
        )

    assert report.received == 25, "every message was looked at"
    assert sorted(message_id for message_id, _ in report.kept) == sorted(ids), "each kept once"


def test_redrive_handles_every_shape_a_dead_letter_takes(operator: Operator) -> None:
    """An SNS notification (a subscription's DLQ, the buffer's DLQ), an EventBridge state change (a
    rule target's DLQ), and the on-failure records of an alarm's own Lambda action and of a direct
    EventBridge invocation: each pages its alarm once, and the queue is drained."""
    shapes = {
        "web-dlq-sns": lambda n: json.dumps(sns_event(n)["Records"][0]["Sns"]),
        "web-dlq-buffered": lambda n: str(sqs_alarm(n)["body"]),
        "web-dlq-eventbridge": lambda n: json.dumps(eventbridge_event(n)),
        "web-dlq-failed-eventbridge": lambda n: failure_record(eventbridge_event(n)),
        "web-dlq-alarm-action": lambda n: failure_record(alarm_action(n)),
    }
    for name, body in shapes.items():
        operator.put_alarm(name, "ALARM")
        operator.enqueue(body(name))

    run = operator.redrive()

    assert run.code == 0, run.out + run.err
    assert run.json()["kept"] == []
    assert operator.messages_left() == 0
    triggered = Counter(
        b["payload"]["custom_details"].get("alarmName") or b["dedup_key"] for b in operator.fake.accepted()
    )
    assert sorted(triggered) == sorted(shapes) and set(triggered.values()) == {1}, triggered


def test_redrive_goes_on_when_a_message_it_handled_was_deleted_by_someone_else_meanwhile() -> None:
    """Another operator purges (or drains) the queue while a redrive is handling its messages: the
    delete of what this run handled fails, and the run says so for each message and goes on; it does
    not end in an AWS error with its report, and the rest of the queue, lost."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
        for _ in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=failure_record(schedule_event()))
        runs: list[str] = []

        def reconcile_while_someone_purges() -> str | None:
            runs.append("run")
            if len(runs) == 1:
                sqs.purge_queue(QueueUrl=url)
            return None

        report = redrive_module.redrive(sqs, url, None, run_schedule=reconcile_while_someone_purges)  # type: ignore[arg-type]

    assert (report.received, report.schedules) == (3, 3)
    assert report.redriven + len(report.kept) == 3
    assert all("not deleted" in why for _, why in report.kept), report.kept


@pytest.mark.parametrize("outcome", [None, "the reconciliation run failed for 1 incident(s)"])
def test_many_failed_scheduled_runs_in_the_queue_are_run_once_per_redrive(outcome: str | None) -> None:
    """Days of failed scheduled runs wait in the on-failure queue (PagerDuty was down): each stands for
    the same thing, the next run. One redrive runs the reconciliation once and settles them all by its
    outcome, instead of running it once per message (each spending its retry budget again on every
    incident still failing: hours for a queue of a few hundred)."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
        for _ in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=failure_record(schedule_event()))
        runs: list[str | None] = []

        def reconcile() -> str | None:
            runs.append(outcome)
            return outcome

        report = redrive_module.redrive(sqs, url, None, run_schedule=reconcile)  # type: ignore[arg-type]
        left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])

    assert len(runs) == 1
    assert (report.received, report.schedules) == (5, 5)
    if outcome is None:
        assert (report.redriven, report.kept) == (5, [])
        assert left["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    else:
        assert report.redriven == 0 and [why for _, why in report.kept] == [outcome] * 5


class ShortPollingSampler:
    """SQS as AWS documents short polling (``WaitTimeSeconds=0``): it asks only some of its servers, so
    a queue of a few messages may answer empty while they are there; a long poll asks them all."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def receive_message(self, **request: Any) -> dict[str, Any]:
        if not request.get("WaitTimeSeconds"):
            return {}
        return dict(self._sqs.receive_message(**request))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def test_redrive_does_not_take_a_short_polls_empty_answer_for_an_empty_queue() -> None:
    """Dead-letter queues hold a few messages: the usual case where a short poll misses them. redrive
    reported "0 received" and left them there, while the operator took the queue for drained."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
        ids = [sqs.send_message(QueueUrl=url, MessageBody=f"not json {n}")["MessageId"] for n in range(3)]
        sampler = ShortPollingSampler(sqs)

        report = redrive_module.redrive(
            sampler,  # type: ignore[arg-type]
            url,
            None,  # type: ignore[arg-type]
            run_schedule=lambda: None,
            max_messages=100,
        )

    assert report.received == 3, "the messages a short poll missed were read"
    assert sorted(message_id for message_id, _ in report.kept) == sorted(ids)
