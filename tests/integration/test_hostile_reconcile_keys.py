"""The scheduled run and the webhook under odd keys and throttled keys: what real DynamoDB refuses and
moto takes, one service's rate limit against the others' resolves."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import webhook
from pagerduty_bridge.models import EventAction
from pagerduty_bridge.pacing import BATCH_PATIENCE_SECONDS
from pagerduty_bridge.processing import Deadline, process_event
from pagerduty_bridge.reconcile import AlarmReader, Reconciled, Reconciliation
from pagerduty_bridge.runtime import Runtime
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import ACCOUNT, REGION, assert_no_secret, sqs_alarm, sqs_event
from tests.conftest import OTHER_ROUTING_KEY, ROUTING_KEY, FakeLambdaContext
from tests.integration.test_hostile_network import PerKeyServer, delivered, payments_runtime
from tests.integration.test_hostile_sync_account import routed
from tests.integration.test_webhooks import KEY, SECRET, TABLE, World, delivery, world

__all__ = ["world"]  # the fixture, shared with the webhook tests
from tests.sockets import within

MAX_KEY_BYTES = 2048
"""DynamoDB's limit on a partition key's value: a longer one fails the request as malformed."""


class StrictKeys:
    """A DynamoDB client that refuses an over-long partition key as real DynamoDB does (moto reads it)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.asked: list[str] = []

    def get_item(self, **request: Any) -> Any:
        key = request["Key"][c.TABLE_PARTITION_KEY]["S"]
        self.asked.append(key)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            error = {"Code": "ValidationException", "Message": "One or more parameter values were invalid"}
            raise ClientError({"Error": error}, "GetItem")
        return self._client.get_item(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def strict_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[StrictKeys]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        strict = StrictKeys(client)
        monkeypatch.setenv(c.ENV_WEBHOOK_SECRET, SECRET)
        settings = Settings.from_env()
        monkeypatch.setattr(webhook, "_receiver", webhook.Receiver(settings, DynamoDBIncidentStore(strict, TABLE)))
        yield strict


@pytest.mark.parametrize("length", [c.MAX_DEDUP_KEY_LENGTH + 1, 3000])
def test_a_webhook_whose_incident_key_is_longer_than_any_of_ours_is_not_ours_not_a_failure(
    strict_receiver: StrictKeys, length: int
) -> None:
    """Another integration's incident (an account-wide subscription) with an incident key longer than
    any dedup key the bridge sends (255 characters): it was looked up, real DynamoDB refused the key
    (over 2,048 bytes) and the receiver answered 500, for every retry PagerDuty made, until it gave up
    on the subscription. It is not the bridge's: 200, and the table is not asked."""
    answer = webhook.lambda_handler(delivery("incident.acknowledged", minutes=1, key="k" * length), FakeLambdaContext())
    assert answer["statusCode"] == 200, answer
    assert answer["body"] == "webhook_not_ours"
    assert strict_receiver.asked == []


class AllOk:
    """A CloudWatch whose every alarm asked about is OK (their OK notifications were lost)."""

    def get_paginator(self, _: str) -> Any:
        return self

    def paginate(self, *, AlarmNames: list[str], **_: Any) -> list[dict[str, Any]]:
        return [{"MetricAlarms": [{"AlarmName": name, "StateValue": "OK"} for name in AlarmNames]}]


THROTTLED = [f"payments-{i}" for i in range(3)]
OTHERS = [f"web-{i}" for i in range(2)]


def reconcile_throttled(refusals: int | None) -> tuple[PerKeyServer, Runtime, list[Reconciled], float]:
    """Incidents of ``THROTTLED`` (the payments service's key) and ``OTHERS`` opened, their alarms OK
    again, and a scheduled run while PagerDuty throttles the payments key (429, come back in 2 s) for
    its next ``refusals`` events (``None``: every one): the server, the runtime, the run's results, and
    when it started."""
    server = PerKeyServer(OTHER_ROUTING_KEY, hold=2, refusals=0)
    runtime = payments_runtime(server.url)
    try:
        opened = process_event(sqs_event(*(sqs_alarm(name) for name in [*THROTTLED, *OTHERS])), runtime.notifications())
        assert opened.batch_item_failures() == []
        server.refusals = refusals
        run = Reconciliation(
            runtime.notifications().delivery,
            AlarmReader(lambda region, role: AllOk(), own_account=ACCOUNT, own_region=REGION),
            runtime.clock,
            deadline=Deadline.after(25.0),
            retry_budget_seconds=10.0,
        )
        started = time.monotonic()
        done = within(60, run.run)
    finally:
        server.close()
    assert done, "the run did not end"
    return server, runtime, done[0], started


def test_a_throttled_routing_key_does_not_spend_the_run_that_resolves_the_other_services_incidents() -> None:
    """Three incidents of a service whose key PagerDuty throttles (429, come back in 2 s, every time)
    read before two of another service, all their alarms OK again: each throttled resolve waited out
    its whole retry budget, and the other service's incidents were never started (left open, every
    run, while the throttling lasts). They are resolved at once now; the throttled ones are tried again
    after them with what is left, and stay pending for the next run when PagerDuty still refuses."""
    server, runtime, results, started = reconcile_throttled(None)
    assert {r.alarm_name for r in results if r.action == "resolved"} == set(OTHERS), results
    web = delivered(server, ROUTING_KEY)
    waited = max(web.values()) - started
    assert waited < len(THROTTLED) * BATCH_PATIENCE_SECONDS + 1.0, f"they waited out the throttling: {waited:.1f}s"
    tried_again = [
        at for at, body in server.bodies if body["routing_key"] == OTHER_ROUTING_KEY and at > max(web.values())
    ]
    assert tried_again, "the throttled resolves are tried again after the others"
    assert {r.alarm_name for r in results if r.action == "failed"} == set(THROTTLED)
    pending = {i.alarm_name for i in runtime.store.list_watched() if i.pending_action is EventAction.RESOLVE}
    assert pending == set(THROTTLED), "their resolves wait for the next run"


def test_a_resolve_the_rate_limit_held_back_is_sent_after_the_others_and_reported_once() -> None:
    """PagerDuty refuses the payments key once: that resolve, held back while the others went, is sent
    again in the same run; the run reports each incident once, resolved, and nothing is left pending."""
    _, runtime, results, _ = reconcile_throttled(1)
    assert sorted(r.alarm_name for r in results) == sorted([*THROTTLED, *OTHERS]), results
    assert {r.action for r in results} == {"resolved"}, results
    assert runtime.store.list_active() == [] and runtime.store.list_watched() == []


# --- a new ALARM on an incident open on a key its alias no longer holds ------------------------------------


def test_a_new_alarm_on_an_incident_open_on_an_older_key_goes_to_its_alert_not_a_second_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payments alias takes a new key (a new integration), the old one kept aside, while the
    incident it opened is open. The alarm fires again (after INSUFFICIENT_DATA): its trigger went with
    the new key, paging the new service for an incident already paged, and the incident then
    remembered the new key: the alarm's OK resolved that second alert, and the first stayed open for
    good. The trigger goes to the alert the incident has (one page, one alert), and the OK closes it;
    the alarm's next incident pages the new key."""
    routed(monkeypatch, "payments", {"payments": OTHER_ROUTING_KEY})
    world.alarm(minutes=0)
    routed(monkeypatch, "payments", {"payments": ROUTING_KEY, "payments-old": OTHER_ROUTING_KEY})

    assert world.alarm("ALARM", "INSUFFICIENT_DATA", minutes=3) == {"processed": 1, "failed": 0}
    assert KEY not in world.fake.open_alerts(ROUTING_KEY), "a second alert paged the new service"
    assert world.alarm("OK", "ALARM", minutes=5) == {"processed": 1, "failed": 0}
    assert KEY not in world.fake.open_alerts(OTHER_ROUTING_KEY), "the incident's alert was left open"
    assert not world.incident().is_open

    world.alarm("ALARM", "OK", minutes=10)
    assert KEY in world.fake.open_alerts(ROUTING_KEY), "the next incident pages the alias's new key"
    assert KEY not in world.fake.open_alerts(OTHER_ROUTING_KEY)


def test_a_new_alarm_on_an_incident_whose_key_is_gone_pages_the_new_key_and_says_the_old_alert_stays(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As above, the old key removed: nothing can reach the first alert. The page still goes out (with
    the alias's key), and the bridge says, as an error, that the first alert stays open."""
    routed(monkeypatch, "payments", {"payments": OTHER_ROUTING_KEY})
    world.alarm(minutes=0)
    routed(monkeypatch, "payments", {"payments": ROUTING_KEY})

    with caplog.at_level(logging.ERROR):
        assert world.alarm("ALARM", "INSUFFICIENT_DATA", minutes=3) == {"processed": 1, "failed": 0}

    assert KEY in world.fake.open_alerts(ROUTING_KEY)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(KEY in message and "stays open" in message for message in said), said
    assert_no_secret([ROUTING_KEY, OTHER_ROUTING_KEY], logs=caplog.records)
