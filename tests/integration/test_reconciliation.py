"""Reconciliation, redrive and the invocation deadline, as safe as delivery itself.

Each case runs through the real paths: the Lambda handler under moto (CloudWatch alarms in any region
and account, Secrets Manager, the DynamoDB table), the CLI against moto's HTTP server, and the
PagerDuty stand-in over real HTTP with scripted faults.

1. A scheduled run that read an alarm as OK does not resolve once a newer ALARM was delivered.
2. Alarms are identified by their ARN and read in their own account and region.
3. Alarms named "(…)" are reconciled; forwarded messages and triggers made by hand are not.
4. One alias's broken secret fails only that alias's pages, retryably; the run goes on for the rest.
5. A batch longer than the invocation stops before the deadline and hands the rest back, unstarted.
6. ``redrive`` drains failed scheduled runs and notifications; what it cannot handle stays, with why.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge import redrive as redrive_module
from pagerduty_bridge.devtools.fake_pagerduty import Delay, FakePagerDuty, Respond
from pagerduty_bridge.errors import BridgeError, DeadlineError, RoutingKeyError
from pagerduty_bridge.models import EventAction, IncidentStatus, Origin
from pagerduty_bridge.processing import process_event
from pagerduty_bridge.runtime import ASSUMED_ROLE_SECONDS, cloudwatch_client, lambda_runtime
from pagerduty_bridge.silences import Silence
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import (
    ACCOUNT,
    REGION,
    T0,
    assert_no_secret,
    cli,
    cli_json,
    dedup_key,
    emf_metrics,
    eventbridge_event,
    lambda_environment,
    powertools_log_stream,
    put_cpu_alarm,
    schedule_event,
    sns_event,
    sns_event_of,
    sqs_alarm,
    sqs_event,
)
from tests.conftest import EVENTS, OTHER_ROUTING_KEY, ROUTING_KEY, FakeLambdaContext

TABLE = "incidents"
OTHER_ACCOUNT = "111111111111"
UNREADABLE_ACCOUNT = "222222222222"
ROLE_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:role/pagerduty-bridge-reconcile"
OTHER_REGION = "us-east-1"
UNANSWERING_REGION = "ap-nowhere-9"
"""A region moto's server does not serve: its CloudWatch answers 500, every retry."""
UNASSUMABLE_ROLE_ARN = "arn:aws:iam::2:r/x"
"""Shorter than any role ARN: STS refuses it before asking."""
PAYMENTS_RULES = json.dumps(
    {"rules": [{"name": "payments", "match": {"alarm_name": "payments-*"}, "routing_key": "payments"}]}
)
INVOCATION_MILLIS = 17_000
"""Case 5's invocations: 17 s each, of which the handler keeps 5 s back."""
SLOW_ANSWER_SECONDS = 0.8
BATCH_SIZE = 30


# --- the Lambda under moto ------------------------------------------------------------------------------


@dataclass
class Bridge:
    """The function as a test drives it: invoke it, start a new container, read what it wrote and emitted."""

    fake: FakePagerDuty
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    log_stream: io.StringIO
    stdout: list[str] = field(default_factory=list)

    @property
    def store(self) -> DynamoDBIncidentStore:
        return DynamoDBIncidentStore(boto3.client("dynamodb", region_name=REGION), TABLE)

    def invoke(self, event: dict[str, Any], *, remaining_ms: int = 60_000) -> Any:
        return handler.lambda_handler(event, FakeLambdaContext(remaining_millis=remaining_ms))

    def schedule(self) -> dict[str, int]:
        result: dict[str, int] = self.invoke(schedule_event())
        return result

    def new_container(self) -> None:
        self.monkeypatch.setattr(handler, "_runtime", None)

    def metrics(self) -> Counter[str]:
        """Sums of the EMF metrics Powertools printed so far, by name."""
        self.stdout.append(self.capsys.readouterr().out)
        return emf_metrics("".join(self.stdout))

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_stream.getvalue().splitlines() if line.startswith("{")]

    def reconciled(self) -> dict[str, tuple[str, str]]:
        """(action, reason) by dedup key, from the newest scheduled run's log lines."""
        return {
            line["dedup_key"]: (line["action"], line["reason"])
            for line in self.logs()
            if line.get("message") == "reconciled"
        }

    def everything(self) -> str:
        self.metrics()
        items = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
        return "\n".join([*self.stdout, self.log_stream.getvalue(), json.dumps(items)])


@pytest.fixture
def bridge(
    monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty, capsys: pytest.CaptureFixture[str]
) -> Iterator[Bridge]:
    """The Lambda's environment on moto (in-process) and the stand-in; a fresh container."""
    lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url)
    with powertools_log_stream() as stream, mock_aws():
        create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        yield Bridge(fake_pd, monkeypatch, capsys, stream)


def cloudwatch(region: str = REGION, credentials: dict[str, str] | None = None) -> Any:
    return boto3.client("cloudwatch", region_name=region, **(credentials or {}))


def put_alarm(name: str, state: str, *, region: str = REGION, credentials: dict[str, str] | None = None) -> None:
    """A CPU alarm (as events/05 defines it) in moto's CloudWatch, in ``state``."""
    put_cpu_alarm(cloudwatch(region, credentials), name)
    set_state(name, state, region=region, credentials=credentials)


def set_state(name: str, state: str, *, region: str = REGION, credentials: dict[str, str] | None = None) -> None:
    cloudwatch(region, credentials).set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"now {state}")


def assumed(role_arn: str) -> dict[str, str]:
    """Credentials of ``role_arn`` (moto keeps each account's resources apart by them)."""
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="test-setup")["Credentials"]
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }


def arn_key(name: str, *, account: str = ACCOUNT, region: str = REGION) -> str:
    """The dedup key under ``DEDUP_KEY_STRATEGY=alarm-arn``."""
    return f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"


def secret(name: str, value: str) -> str:
    arn: str = boto3.client("secretsmanager", region_name=REGION).create_secret(Name=name, SecretString=value)["ARN"]
    return arn


def update_secret(arn: str, value: str) -> None:
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(SecretId=arn, SecretString=value)


def sent(fake: FakePagerDuty, action: str) -> list[str]:
    """Dedup keys of the events with ``action`` PagerDuty accepted, in order."""
    return [body["dedup_key"] for body in fake.accepted() if body["event_action"] == action]


# --- 1. the race with a newer ALARM ------------------------------------------------------------------------


def test_reconciliation_racing_a_newer_alarm_does_not_resolve_it(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, key = "web-prod-race", dedup_key("web-prod-race")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "OK")  # it recovered at T0 + 5 min; that OK notification was lost
    runtime = handler.get_runtime()
    other_container = lambda_runtime()
    newer_alarm = sns_event(name, "ALARM", "OK", T0 + timedelta(minutes=10))
    raced: list[Any] = []

    def deliver_newer_alarm(**_: Any) -> None:
        """Right after DescribeAlarms answered OK, the alarm fires again and another container delivers it."""
        if not raced:
            set_state(name, "ALARM")
            raced.append(process_event(newer_alarm, other_container.notifications()))

    build = runtime.cloudwatch

    def racing_cloudwatch(region: str | None = None, role_arn: str | None = None) -> Any:
        client = build(region, role_arn)
        client.meta.events.register("after-call.cloudwatch.DescribeAlarms", deliver_newer_alarm, unique_id="race")
        return client

    monkeypatch.setattr(runtime, "cloudwatch", racing_cloudwatch)

    summary = bridge.schedule()

    (delivered,) = raced
    assert [r.error for r in delivered.results] == [None], "the newer ALARM went through in the other container"
    assert (summary["resolved"], summary["race_lost"]) == (0, 1)
    assert bridge.reconciled()[key] == ("kept", "reconcile_race_lost")
    assert bridge.metrics()["ReconcileRaceLost"] == 1
    assert sent(bridge.fake, "resolve") == [], "the page of the live ALARM was resolved"
    assert set(bridge.fake.open_alerts()) == {key}
    incident = bridge.store.get(key)
    assert incident is not None and incident.status is IncidentStatus.TRIGGERED
    assert incident.state_changed_at == T0 + timedelta(minutes=10)

    # The next run reads ALARM and keeps it, for the right reason.
    summary = bridge.schedule()
    assert (summary["resolved"], summary["kept"]) == (0, 1)
    assert bridge.reconciled()[key] == ("kept", "alarm_not_ok")


@pytest.mark.parametrize("state_at_the_next_run", ["OK", "ALARM"])
def test_a_reconciliation_resolve_pagerduty_refused_is_finished_by_the_next_run(
    bridge: Bridge, state_at_the_next_run: str
) -> None:
    """No notification will finish the run's own resolve (its OK never came): the next run must."""
    name, key = "web-prod-unfinished", dedup_key("web-prod-unfinished")
    bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    put_alarm(name, "OK")
    bridge.fake.script(Respond(503, retry_after=60))  # no retry fits in the budget: the resolve fails

    assert bridge.schedule()["failed"] == 1
    assert set(bridge.fake.open_alerts()) == {key}
    unfinished = bridge.store.get(key)
    assert unfinished is not None and unfinished.pending_action is EventAction.RESOLVE

    set_state(name, state_at_the_next_run)
    bridge.schedule()

    incident = bridge.store.get(key)
    assert incident is not None
    if state_at_the_next_run == "OK":
        assert bridge.fake.open_alerts() == {}, "the alarm is OK and its page is still open"
        assert incident.pending_action is None and incident.status is IncidentStatus.RESOLVED
    else:  # it fired again: the page stays; the newer notification decides
        assert set(bridge.fake.open_alerts()) == {key}
        assert bridge.reconciled()[key] == ("kept", "alarm_not_ok")


@pytest.mark.parametrize("state_at_the_next_run", ["ALARM", "INSUFFICIENT_DATA", "OK"])
def test_a_page_that_failed_every_retry_is_sent_by_the_next_run_while_its_alarm_fires(
    bridge: Bridge, state_at_the_next_run: str
) -> None:
    """PagerDuty away through all of Lambda's retries: the trigger is left pending on an open incident
    (and in the failure destination). The scheduled run must send it while the alarm may still fire,
    not wait for someone to redrive; an alarm that recovered meanwhile is resolved instead."""
    name, key = "web-prod-unpaged", dedup_key("web-prod-unpaged")
    put_alarm(name, "ALARM")
    bridge.fake.script(Respond(503, retry_after=60))  # no retry fits in the budget: the trigger fails
    with pytest.raises(BridgeError):  # the invocation fails, for Lambda to retry
        bridge.invoke(sns_event(name, "ALARM", "OK", T0))
    pending = bridge.store.get(key)
    assert pending is not None and pending.is_open and pending.pending_action is EventAction.TRIGGER
    assert bridge.fake.open_alerts() == {}

    set_state(name, state_at_the_next_run)
    bridge.schedule()

    incident = bridge.store.get(key)
    assert incident is not None and incident.pending_action is None
    if state_at_the_next_run == "OK":
        assert bridge.fake.open_alerts() == {} and incident.status is IncidentStatus.RESOLVED
    else:
        assert set(bridge.fake.open_alerts()) == {key}, "the alarm may still fire and nobody was paged"
        assert incident.is_open


# --- 2. alarms identified by ARN ------------------------------------------------------------------------


@pytest.fixture
def by_arn(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> Bridge:
    monkeypatch.setenv(c.ENV_DEDUP_KEY_STRATEGY, "alarm-arn")
    return bridge


def test_alarms_identified_by_arn_are_read_in_their_own_account_and_region(by_arn: Bridge) -> None:
    bridge = by_arn
    # Another account's alarm, named like one of ours that is OK: this account cannot see it.
    bridge.invoke(eventbridge_event("shared-name", at=T0, account=OTHER_ACCOUNT))
    put_alarm("shared-name", "OK")
    # Alarms of us-east-1, each named like an alarm of eu-west-1 in the opposite state.
    bridge.invoke(eventbridge_event("remote-firing", at=T0, region=OTHER_REGION))
    put_alarm("remote-firing", "ALARM", region=OTHER_REGION)
    put_alarm("remote-firing", "OK")
    bridge.invoke(eventbridge_event("remote-recovered", at=T0, region=OTHER_REGION))
    put_alarm("remote-recovered", "OK", region=OTHER_REGION)
    put_alarm("remote-recovered", "ALARM")

    summary = bridge.schedule()

    shared = arn_key("shared-name", account=OTHER_ACCOUNT)
    firing, recovered = arn_key("remote-firing", region=OTHER_REGION), arn_key("remote-recovered", region=OTHER_REGION)
    assert bridge.reconciled() == {
        shared: ("kept", "alarm_not_visible"),
        firing: ("kept", "alarm_not_ok"),
        recovered: ("resolved", "alarm_ok"),
    }
    assert (summary["resolved"], summary["kept"]) == (1, 2)
    assert sent(bridge.fake, "resolve") == [recovered]
    assert set(bridge.fake.open_alerts()) == {shared, firing}


def test_another_accounts_alarm_is_read_through_the_role_assumed_there(
    by_arn: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = by_arn
    monkeypatch.setenv(c.ENV_RECONCILE_ROLE_ARNS, json.dumps({OTHER_ACCOUNT: ROLE_ARN}))
    there = assumed(ROLE_ARN)
    bridge.invoke(eventbridge_event("shared-name", at=T0, account=OTHER_ACCOUNT))
    put_alarm("shared-name", "ALARM", credentials=there)
    put_alarm("shared-name", "OK")  # ours, same name: it must not decide
    bridge.invoke(eventbridge_event("their-recovered", at=T0, account=OTHER_ACCOUNT))
    put_alarm("their-recovered", "OK", credentials=there)
    bridge.invoke(eventbridge_event("elsewhere", at=T0, account=UNREADABLE_ACCOUNT))  # no role for that account

    bridge.schedule()

    shared, recovered = arn_key("shared-name", account=OTHER_ACCOUNT), arn_key("their-recovered", account=OTHER_ACCOUNT)
    elsewhere = arn_key("elsewhere", account=UNREADABLE_ACCOUNT)
    assert bridge.reconciled() == {
        shared: ("kept", "alarm_not_ok"),
        recovered: ("resolved", "alarm_ok"),
        elsewhere: ("kept", "alarm_not_visible"),
    }
    assert set(bridge.fake.open_alerts()) == {shared, elsewhere}


def test_a_silenced_alarm_that_cannot_be_read_when_its_silence_ends_is_watched_on(by_arn: Bridge) -> None:
    """Unknown is not recovered: the alarm may still be in ALARM, and CloudWatch says so only once. Its
    incident stays watched until the alarm can be read (or speaks), so the page is not lost."""
    bridge = by_arn
    now = datetime.now(UTC)
    silence = Silence(
        id="maintenance",
        matchers={"alarm_name": "elsewhere"},
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        comment="maintenance",
        created_by="test",
        created_at=now - timedelta(hours=1),
    )
    bridge.store.put_silence(silence)
    bridge.invoke(eventbridge_event("elsewhere", at=T0, account=UNREADABLE_ACCOUNT))  # no role for that account
    key = arn_key("elsewhere", account=UNREADABLE_ACCOUNT)
    assert [i.dedup_key for i in bridge.store.list_watched()] == [key], "silenced, so watched"
    bridge.store.put_silence(replace(silence, expired_at=now))
    bridge.new_container()

    for _ in range(2):
        bridge.schedule()
        assert bridge.reconciled() == {key: ("kept", "alarm_not_visible")}
        assert [i.dedup_key for i in bridge.store.list_watched()] == [key]
    assert bridge.fake.accepted() == []


@pytest.fixture
def over_http(
    moto_url: str, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Bridge]:
    """The Lambda on moto's HTTP server: every AWS call real HTTP, answered as AWS answers it (a region
    moto does not serve answers an error, as a region that is down or not enabled does)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url)
    monkeypatch.setenv(c.ENV_DEDUP_KEY_STRATEGY, "alarm-arn")
    with powertools_log_stream() as stream:
        create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        yield Bridge(fake_pd, monkeypatch, capsys, stream)
        boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE)


def test_alarms_that_cannot_be_read_are_left_alone_and_the_run_goes_on(
    over_http: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region that answers only errors, a role that cannot be assumed: their incidents are kept, one
    warning names each place, and every other incident is reconciled as usual."""
    bridge = over_http
    monkeypatch.setenv(c.ENV_RECONCILE_ROLE_ARNS, json.dumps({UNREADABLE_ACCOUNT: UNASSUMABLE_ROLE_ARN}))
    bridge.invoke(eventbridge_event("recovered-here", at=T0))
    put_alarm("recovered-here", "OK")  # its OK notification was lost
    bridge.invoke(eventbridge_event("far-away", at=T0, region=UNANSWERING_REGION))
    bridge.invoke(eventbridge_event("behind-a-role", at=T0, account=UNREADABLE_ACCOUNT))

    summary = bridge.schedule()

    recovered, far = arn_key("recovered-here"), arn_key("far-away", region=UNANSWERING_REGION)
    behind = arn_key("behind-a-role", account=UNREADABLE_ACCOUNT)
    assert bridge.reconciled() == {
        recovered: ("resolved", "alarm_ok"),
        far: ("kept", "alarm_not_visible"),
        behind: ("kept", "alarm_not_visible"),
    }
    assert (summary["resolved"], summary["kept"], summary["failed"]) == (1, 2, 0)
    assert sent(bridge.fake, "resolve") == [recovered]
    assert set(bridge.fake.open_alerts()) == {far, behind}
    warnings = [line for line in bridge.logs() if line["level"] == "WARNING" and line["message"] == "alarms unreadable"]
    assert sorted((w["account"], w["region"], w.get("role_arn")) for w in warnings) == [
        (ACCOUNT, UNANSWERING_REGION, None),
        (UNREADABLE_ACCOUNT, REGION, UNASSUMABLE_ROLE_ARN),
    ]
    assert all(w["problem"] for w in warnings)

    # The next run does the same: nothing piles up, nothing is resolved as "gone".
    assert bridge.schedule()["kept"] == 2
    assert set(bridge.fake.open_alerts()) == {far, behind}


# --- 3. what reconciliation looks at --------------------------------------------------------------------


def test_alarms_named_in_parentheses_are_reconciled_forwarded_messages_and_manual_triggers_are_not(
    bridge: Bridge,
) -> None:
    paren = "(prod) api-5xx"
    bridge.invoke(sns_event(paren, "ALARM", "OK", T0))
    put_alarm(paren, "OK")
    budget_text = json.loads((EVENTS / "11-budget-plain-text.json").read_text())["Records"][0]["Sns"]["Message"]
    bridge.invoke(sns_event_of(budget_text, at=T0))
    manual = cli_json("trigger", "high-failure-rate", "--current", "85", "--threshold", "95", "--json", "--send",
                      "--events-url", bridge.fake.url, "--table", TABLE)  # fmt: skip
    origins = {i.dedup_key: i.origin for i in bridge.store.list_active()}
    assert sorted(origins.values()) == [Origin.ALARM, Origin.MANUAL, Origin.MESSAGE]
    # None of the other two has an alarm in CloudWatch: judged as alarms, they would be "gone".

    summary = bridge.schedule()

    assert bridge.reconciled() == {dedup_key(paren): ("resolved", "alarm_ok")}
    assert (summary["reconciled"], summary["resolved"]) == (1, 1)
    assert sent(bridge.fake, "resolve") == [dedup_key(paren)]
    still_open = {i.dedup_key: i.origin for i in bridge.store.list_active()}
    assert sorted(still_open.values()) == [Origin.MANUAL, Origin.MESSAGE]
    assert manual["dedup_key"] in still_open
    assert set(bridge.fake.open_alerts()) == set(still_open)


# --- 4. one broken alias --------------------------------------------------------------------------------

SECRET_LAYOUTS = {
    # One secret per alias; the payments one is overwritten with a placeholder.
    "per-alias secret": ("REPLACE-ME", False),
    # One JSON integration-key secret of aliases; its payments entry is overwritten with a placeholder.
    "JSON integration-key secret": ("TODO", True),
}


@pytest.mark.parametrize("layout", sorted(SECRET_LAYOUTS))
def test_one_broken_alias_stops_only_its_own_pages(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    placeholder, in_json = SECRET_LAYOUTS[layout]
    monkeypatch.delenv(c.ENV_INTEGRATION_KEY)
    monkeypatch.setenv(c.ENV_ALERT_RULES, PAYMENTS_RULES)
    keys = {"default": ROUTING_KEY, "payments": OTHER_ROUTING_KEY}
    if in_json:
        holder = secret("pagerduty/keys", json.dumps(keys))
        monkeypatch.setenv(c.ENV_INTEGRATION_KEY_SECRET_ARN, holder)
    else:
        monkeypatch.setenv(c.ENV_INTEGRATION_KEY_SECRET_ARN, secret("pagerduty/default", ROUTING_KEY))
        holder = secret("pagerduty/payments", OTHER_ROUTING_KEY)
        monkeypatch.setenv(c.ENV_ROUTING_KEY_SECRETS, json.dumps({"payments": holder}))
    # Both services page while the secrets are good.
    bridge.invoke(sns_event("payments-api-5xx", "ALARM", "OK", T0))
    bridge.invoke(sns_event("web-prod-cpu-high", "ALARM", "OK", T0))
    assert set(bridge.fake.open_alerts(OTHER_ROUTING_KEY)) == {dedup_key("payments-api-5xx")}
    assert set(bridge.fake.open_alerts(ROUTING_KEY)) == {dedup_key("web-prod-cpu-high")}

    # Someone writes a placeholder into the payments key; a new container reads it.
    update_secret(holder, json.dumps({**keys, "payments": placeholder}) if in_json else placeholder)
    bridge.new_container()
    payments, web = sqs_alarm("payments-checkout", at=T0), sqs_alarm("web-api-cpu", at=T0)
    answer = bridge.invoke(sqs_event(payments, web))

    assert answer == {"batchItemFailures": [{"itemIdentifier": payments["messageId"]}]}
    assert set(bridge.fake.open_alerts(ROUTING_KEY)) == {dedup_key("web-prod-cpu-high"), dedup_key("web-api-cpu")}
    assert bridge.store.get(dedup_key("payments-checkout")) is None, "nothing is claimed for a page that cannot go"
    with pytest.raises(RoutingKeyError) as raised:
        bridge.invoke(sns_event("payments-checkout", "ALARM", "OK", T0))  # SNS: Lambda retries, then redrive
    assert raised.value.retryable and raised.value.alias == "payments"
    assert bridge.metrics()["DeliveryFailed"] == 2

    # Both open incidents' alarms are OK now: the run resolves what it can and goes on.
    put_alarm("payments-api-5xx", "OK")
    put_alarm("web-prod-cpu-high", "OK")
    put_alarm("web-api-cpu", "ALARM")
    summary = bridge.schedule()

    results = bridge.reconciled()
    assert results[dedup_key("web-prod-cpu-high")] == ("resolved", "alarm_ok")
    assert results[dedup_key("web-api-cpu")] == ("kept", "alarm_not_ok")
    action, reason = results[dedup_key("payments-api-5xx")]
    assert action == "failed" and "payments" in reason
    assert (summary["resolved"], summary["failed"]) == (1, 1)
    assert bridge.metrics()["DeliveryFailed"] == 3
    assert set(bridge.fake.open_alerts(OTHER_ROUTING_KEY)) == {dedup_key("payments-api-5xx")}

    # The key is fixed: the kept page goes out when received again, and the next run resolves the other.
    update_secret(holder, json.dumps(keys) if in_json else OTHER_ROUTING_KEY)
    bridge.new_container()
    assert bridge.invoke(sqs_event(payments)) == {"batchItemFailures": []}
    put_alarm("payments-checkout", "ALARM")
    bridge.schedule()
    assert set(bridge.fake.open_alerts(OTHER_ROUTING_KEY)) == {dedup_key("payments-checkout")}
    assert all(
        body["routing_key"] == OTHER_ROUTING_KEY for body in bridge.fake.accepted() if "payments" in body["dedup_key"]
    )
    assert_no_secret([ROUTING_KEY, OTHER_ROUTING_KEY], bridge.everything(), raised.value)


# --- 5. the invocation deadline -------------------------------------------------------------------------


def test_a_batch_longer_than_the_invocation_goes_back_unstarted_and_pages_each_alarm_once(bridge: Bridge) -> None:
    bridge.fake.script(*[Delay(SLOW_ANSWER_SECONDS)] * BATCH_SIZE)
    names = [f"batch-{index:02d}" for index in range(BATCH_SIZE)]
    pending = [sqs_alarm(name, at=T0) for name in names]
    invocations: list[tuple[int, int, float]] = []  # (records received, handed back, seconds)
    while pending:
        assert len(invocations) < BATCH_SIZE, "no progress"
        started = time.monotonic()
        answer = bridge.invoke(sqs_event(*pending), remaining_ms=INVOCATION_MILLIS)
        seconds = time.monotonic() - started
        failed = [item["itemIdentifier"] for item in answer["batchItemFailures"]]
        ids = [record["messageId"] for record in pending]
        # What comes back is what was not started: the tail of the batch, untouched.
        assert failed == ids[len(ids) - len(failed) :]
        for record in pending[len(ids) - len(failed) :]:
            name = json.loads(json.loads(record["body"])["Message"])["AlarmName"]
            assert bridge.store.get(dedup_key(name)) is None
        invocations.append((len(pending), len(failed), seconds))
        pending = pending[len(ids) - len(failed) :]  # SQS delivers the failures again

    assert len(invocations) >= 2, invocations
    assert all(seconds < INVOCATION_MILLIS / 1000 for *_, seconds in invocations), invocations
    assert all(failed < received for received, failed, _ in invocations), "every invocation got somewhere"
    assert Counter(sent(bridge.fake, "trigger")) == Counter(dedup_key(name) for name in names)
    alerts = bridge.fake.open_alerts(ROUTING_KEY)
    assert set(alerts) == {dedup_key(name) for name in names}
    assert all(alert.times_opened == 1 for alert in alerts.values())
    assert all(i.pending_action is None for i in bridge.store.list_active())


def test_in_sns_mode_a_record_that_cannot_start_fails_the_invocation_before_its_turn(bridge: Bridge) -> None:
    bridge.fake.script(Delay(SLOW_ANSWER_SECONDS))
    names = ("sns-first", "sns-second", "sns-third")
    event = {"Records": [sns_event(name, "ALARM", "OK", T0)["Records"][0] for name in names]}
    # 10.5 s left, 5 s kept back: the first record starts (one whole 2 s attempt and the table work fit
    # in 5.5 s); after its 0.8 s answer less than that is left, so the others are not started.
    with pytest.raises(DeadlineError) as raised:
        bridge.invoke(event, remaining_ms=10_500)
    assert raised.value.retryable
    assert sent(bridge.fake, "trigger") == [dedup_key("sns-first")]
    first = bridge.store.get(dedup_key("sns-first"))
    assert first is not None and first.pending_action is None, "the first record is done, not half-done"
    assert [bridge.store.get(dedup_key(name)) for name in names[1:]] == [None, None], "the others were not started"

    # Lambda retries the whole event: the first is a duplicate now, the others go out once.
    assert bridge.invoke(event) == {"processed": 3, "failed": 0}
    assert Counter(sent(bridge.fake, "trigger")) == Counter(dedup_key(name) for name in names)


# --- 6. redrive -----------------------------------------------------------------------------------------


@dataclass
class Operator:
    """The operator's side against moto's server: the table, the queue, alarms, and the CLI."""

    url: str
    fake: FakePagerDuty
    table: str
    queue: str
    folder: Path

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def run(self, *argv: str, send: bool = True) -> Any:
        options = ["--table", self.table, "--endpoint-url", self.url, "--events-url", self.fake.url]
        return cli(*argv, *options, *(["--send"] if send else []))

    def redrive(self, *, send: bool = True) -> Any:
        return self.run("redrive", "--queue-url", self.queue, "--json", send=send)

    def replay(self, event: dict[str, Any]) -> None:
        path = self.folder / f"{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(event))
        run = self.run("replay", str(path))
        assert run.code == 0, run.err

    def put_alarm(self, name: str, state: str) -> None:
        put_cpu_alarm(self.client("cloudwatch"), name, state)

    def enqueue(self, body: str) -> str:
        message_id: str = self.client("sqs").send_message(QueueUrl=self.queue, MessageBody=body)["MessageId"]
        return message_id

    def messages_left(self) -> int:
        attributes = self.client("sqs").get_queue_attributes(QueueUrl=self.queue, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.client("dynamodb").scan(TableName=self.table)["Items"]
        return sorted(items, key=json.dumps)


@pytest.fixture
def operator(moto_url: str, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Operator:
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY, ROUTING_KEY)
    suffix = uuid.uuid4().hex[:8]  # the server lives for the module: each test has its own table and queue
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    create_table(client, f"incidents-{suffix}")
    queue = boto3.client("sqs", region_name=REGION, endpoint_url=moto_url).create_queue(QueueName=f"failed-{suffix}")
    return Operator(moto_url, fake_pd, f"incidents-{suffix}", queue["QueueUrl"], tmp_path)


def failure_record(payload: dict[str, Any]) -> str:
    """What Lambda's on-failure destination writes for an asynchronous invocation that kept failing."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2025-01-14T15:30:00.000Z",
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:pagerduty-bridge:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "ConfigurationError", "errorMessage": "cannot read the secret"},
        }
    )


def test_redrive_drains_failed_scheduled_runs_and_notifications(operator: Operator) -> None:
    # An incident whose OK never came; its alarm is OK now. The failed runs would have resolved it.
    operator.replay(sns_event("web-prod-stale", "ALARM", "OK", T0))
    operator.put_alarm("web-prod-stale", "OK")
    operator.put_alarm("web-prod-failed", "ALARM")
    operator.enqueue(failure_record(schedule_event()))
    operator.enqueue(failure_record(sns_event("web-prod-failed", "ALARM", "OK", T0)))

    run = operator.redrive()

    assert run.code == 0, run.err
    assert run.json() == {"received": 2, "redriven": 2, "schedules": 1, "kept": []}
    assert operator.messages_left() == 0
    assert sent(operator.fake, "resolve") == [dedup_key("web-prod-stale")], "the reconciliation ran once"
    assert set(operator.fake.open_alerts()) == {dedup_key("web-prod-failed")}
    assert ROUTING_KEY not in run.out + run.err


def test_redrive_keeps_what_it_cannot_handle_and_says_why(operator: Operator, monkeypatch: pytest.MonkeyPatch) -> None:
    # An incident of the payments service, opened while its key was configured; then the key is gone,
    # so a scheduled run cannot resolve it.
    monkeypatch.setenv(c.ENV_ALERT_RULES, PAYMENTS_RULES)
    monkeypatch.setenv(c.ENV_ROUTING_KEYS, json.dumps({"payments": OTHER_ROUTING_KEY}))
    operator.replay(sns_event("payments-api-5xx", "ALARM", "OK", T0))
    operator.put_alarm("payments-api-5xx", "OK")
    monkeypatch.delenv(c.ENV_ROUTING_KEYS)
    operator.put_alarm("web-prod-failed", "ALARM")
    garbage = operator.enqueue("not json at all")
    failed_run = operator.enqueue(failure_record(schedule_event()))
    operator.enqueue(failure_record(sns_event("web-prod-failed", "ALARM", "OK", T0)))

    run = operator.redrive()

    assert run.code == 1
    report = run.json()
    assert (report["received"], report["redriven"], report["schedules"]) == (3, 1, 1)
    kept = {entry["message_id"]: entry["reason"] for entry in report["kept"]}
    assert set(kept) == {garbage, failed_run}
    assert kept[garbage].startswith("not JSON")
    assert "reconciliation run failed for 1 incident" in kept[failed_run]
    assert operator.messages_left() == 2, "what could not be handled stays in the queue"
    assert set(operator.fake.open_alerts()) == {dedup_key("payments-api-5xx"), dedup_key("web-prod-failed")}


def test_a_dry_run_redrive_deletes_nothing_and_changes_no_store(operator: Operator) -> None:
    operator.replay(sns_event("web-prod-stale", "ALARM", "OK", T0))
    operator.put_alarm("web-prod-stale", "OK")
    operator.put_alarm("web-prod-failed", "ALARM")
    operator.enqueue(failure_record(schedule_event()))
    operator.enqueue(failure_record(sns_event("web-prod-failed", "ALARM", "OK", T0)))
    items, requests = operator.items(), len(operator.fake.requests)

    run = operator.redrive(send=False)

    assert run.code == 0, run.err
    assert run.json() == {"received": 2, "redriven": 2, "schedules": 1, "kept": []}
    assert operator.messages_left() == 2
    assert operator.items() == items
    assert len(operator.fake.requests) == requests
    # The messages are there for the real run straight away.
    run = operator.redrive()
    assert run.json() == {"received": 2, "redriven": 2, "schedules": 1, "kept": []}
    assert operator.messages_left() == 0


def test_redriving_twice_sends_nothing_more(operator: Operator) -> None:
    operator.put_alarm("web-prod-failed", "ALARM")
    notification = failure_record(sns_event("web-prod-failed", "ALARM", "OK", T0))
    operator.enqueue(notification)
    assert operator.redrive().code == 0
    requests = len(operator.fake.requests)
    operator.enqueue(notification)
    operator.enqueue(failure_record(schedule_event()))
    run = operator.redrive()
    assert run.json() == {"received": 2, "redriven": 2, "schedules": 1, "kept": []}
    assert len(operator.fake.requests) == requests, "a redriven duplicate and an idle run send nothing"


def test_redrive_reports_an_unreadable_queue_not_a_crash(operator: Operator) -> None:
    run = cli("redrive", "--queue-url", operator.queue + "-missing", "--endpoint-url", operator.url, "--send")
    assert run.code not in (0, 1)
    assert "Traceback" not in run.err


def test_redrive_handles_each_message_once_even_when_it_comes_back_during_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kept message becomes visible again when the rest take longer than its visibility (PagerDuty
    down: each message spends its retry budget): it is not handled, sent or reported twice."""
    monkeypatch.setattr(redrive_module, "VISIBILITY_SECONDS", 0)  # every kept message is back at once
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
        ids = [sqs.send_message(QueueUrl=url, MessageBody=f"not json {n}")["MessageId"] for n in range(3)]

        report = redrive_module.redrive(sqs, url, None, run_schedule=lambda: None, max_messages=30)  # type: ignore[arg-type]

    assert report.received == 3
    assert sorted(message_id for message_id, _ in report.kept) == sorted(ids)


def test_an_assumed_roles_credentials_renew_themselves_in_a_long_lived_container() -> None:
    """The CloudWatch client of another account lives as long as the container, and the role's session
    only 15 minutes: the next scheduled run (15 minutes later by default) must not meet ExpiredToken."""
    with mock_aws():
        client = cloudwatch_client(REGION, ROLE_ARN)
        client.describe_alarms()
        credentials = client._request_signer._credentials
        first = credentials.get_frozen_credentials().access_key

        later = datetime.now(UTC) + timedelta(seconds=ASSUMED_ROLE_SECONDS)
        credentials._time_fetcher = lambda: later  # the session is over
        client.describe_alarms()

        assert credentials.get_frozen_credentials().access_key != first, "the role was not assumed again"
