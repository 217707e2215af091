"""Concurrent invocations for the same alarm never both send, and the newest state wins.

Several threads — each a Lambda container with its own boto3 client, store, integration and HTTP
session — deliver notifications for one alarm at the same moment (a barrier releases them together),
through ``process_event`` against the PagerDuty stand-in. What counts is the stand-in's view: how many
requests reached it per alarm and which alerts are open at the end.

Which DynamoDB server, and why: the guarantee rests on DynamoDB applying a conditional PutItem
atomically, so the server must do that under truly concurrent requests.

- moto's HTTP server (``ThreadedMotoServer``) does not. Its ``Table.put_item`` reads the current item,
  parses and evaluates the ConditionExpression, then stores the new item, with no lock. Measured with
  8 threads racing a conditional PutItem on one key, 300 races each: at Python's default thread
  switch interval every race had one winner (``attribute_not_exists`` and ``version = :v`` alike), but
  with ``sys.setswitchinterval(1e-6)`` 24 of 300 races had two winners (``attribute_not_exists``) and
  22 of 300 had two or three (``version = :v``). The GIL merely makes the window rare.
- dynalite (npm, an independent DynamoDB implementation on LevelDB) locks the item's key around
  read, condition check and write: 300 of 300 races had exactly one winner, at either switch interval.
  It is used when node can ``require('dynalite')`` from the repository (``node_modules`` after
  ``npm ci``, or ``NODE_PATH``); otherwise that variant is skipped, saying so. dynalite has no
  UpdateTimeToLive, so the table is created from the stack's key schema and index without TTL (TTL
  plays no part in a race).
- ``moto-locked``: moto's HTTP server with ``Table.put_item`` and ``DynamoDBBackend.update_item`` serialised
  by one lock — atomic by construction, as DynamoDB is — so the races run everywhere, dynalite installed or
  not. UpdateItem needs it as much: a store writes over an item it wrote itself as an UpdateItem (a claim
  over the commit it made), and moto's update reads, checks and changes the item as unguarded as its put.

The first test checks the premise on each server (racing conditional writes have one winner).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import SecretStr

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.errors import BridgeError, VersionConflictError
from pagerduty_bridge.integration import PagerDutyIntegration
from pagerduty_bridge.models import Incident, IncidentStatus
from pagerduty_bridge.processing import RecordResult, process_event
from pagerduty_bridge.seed.models import ServiceConfig
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import atomic_moto_writes, moto_server, sns_event
from tests.conftest import ROOT, ROUTING_KEY

SERVERS = ("dynalite", "moto-locked")
CONTAINERS = 8
"""Concurrent invocations per race: as many Lambda containers as threads."""
SAME_NOTIFICATION_RACES = 6
ALARM_VERSUS_OK_RACES = 12
WRITE_RACES = 20
SWITCH_INTERVAL_SECONDS = 1e-6
"""How often threads switch in the put-and-update race: often enough that moto unguarded loses it."""
MAX_LAMBDA_RETRIES = 5
"""Lambda retries a failed invocation; by then the racing one has finished."""
THREAD_TIMEOUT_SECONDS = 60.0
SERVER_START_TIMEOUT_SECONDS = 30.0
RETRY_BUDGET_SECONDS = 2.0
REGION = "eu-west-1"
METRIC = "CPUUtilization"
T0 = datetime(2025, 1, 14, 15, 0, tzinfo=UTC)
_DYNALITE_SERVER = """
const dynalite = require(process.argv[1]);
const server = dynalite({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"""
"""Listen on a free loopback port and print it (the dynalite CLI treats ``--port 0`` as its default)."""


# --- servers -----------------------------------------------------------------------------------------


def dynalite_module() -> str | None:
    """Where node finds dynalite from the repository (``node_modules`` or ``NODE_PATH``), if anywhere."""
    node = shutil.which("node")
    if node is None:
        return None
    found = subprocess.run(
        [node, "-p", "require.resolve('dynalite')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=SERVER_START_TIMEOUT_SECONDS,
    )
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None


def start_dynalite() -> Iterator[str]:
    module = dynalite_module()
    if module is None:
        pytest.skip(
            "dynalite is not installed: add it to package.json's devDependencies and run `npm ci` "
            "(or point NODE_PATH at a node_modules holding it); moto-locked still runs the races"
        )
    node = shutil.which("node")
    assert node is not None
    process = subprocess.Popen(
        [node, "-e", _DYNALITE_SERVER, module], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=SERVER_START_TIMEOUT_SECONDS)


def start_locked_moto() -> Iterator[str]:
    with atomic_moto_writes():
        yield from moto_server()


@pytest.fixture(scope="module", params=SERVERS)
def dynamodb_url(request: pytest.FixtureRequest) -> Iterator[str]:
    starter = start_dynalite if request.param == "dynalite" else start_locked_moto
    yield from starter()


def dynamodb_client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=CONTAINERS),
    )


@pytest.fixture
def table(dynamodb_url: str) -> str:
    """A fresh incident table, as the stack defines it (without TTL, which dynalite lacks)."""
    name = f"incidents-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb_client(dynamodb_url), name, time_to_live=False)
    return name


@dataclass
class Container:
    """One Lambda container: its own boto3 client, store and integration (with its own HTTP session)."""

    store: DynamoDBIncidentStore
    integration: PagerDutyIntegration


@pytest.fixture
def containers(dynamodb_url: str, table: str, fake_pd: FakePagerDuty) -> list[Container]:
    settings = Settings(
        integration_key=SecretStr(ROUTING_KEY), events_url=fake_pd.url, retry_budget_seconds=RETRY_BUDGET_SECONDS
    )
    built = []
    for _ in range(CONTAINERS):
        store = DynamoDBIncidentStore(dynamodb_client(dynamodb_url), table)
        config = ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="concurrency")
        built.append(Container(store, PagerDutyIntegration(config, store=store, settings=settings)))
    return built


# --- helpers -----------------------------------------------------------------------------------------


def race(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job on its own thread, released together; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = jobs[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "an invocation hung"
    return results


def deliver(container: Container, event: dict[str, Any]) -> RecordResult:
    (result,) = process_event(event, container.integration.notifications).results
    return result


def retry_until_handled(container: Container, event: dict[str, Any]) -> RecordResult:
    """Lambda's retries of a failed invocation, after the racing one has finished."""
    for _ in range(MAX_LAMBDA_RETRIES):
        result = deliver(container, event)
        if result.error is None:
            return result
        assert result.error.retryable, result.error
    raise AssertionError(f"still failing after {MAX_LAMBDA_RETRIES} retries: {result.error}")


def actions_for(fake: FakePagerDuty, dedup_key: str) -> list[str]:
    return [r.body["event_action"] for r in fake.requests if r.body.get("dedup_key") == dedup_key]


# --- the premise -------------------------------------------------------------------------------------


def test_the_server_applies_racing_conditional_writes_atomically(containers: list[Container]) -> None:
    for number in range(WRITE_RACES):
        incident = Incident(
            dedup_key=f"write-race-{number}", alarm_name="race", status=IncidentStatus.TRIGGERED, updated_at=T0
        )

        def write(container: Container, index: int, incident: Incident = incident) -> int:
            container.store.put(replace(incident, summary=f"writer {index}"), expected_version=None)
            return index

        results = race([partial(write, c, i) for i, c in enumerate(containers)])
        winners = [r for r in results if isinstance(r, int)]
        assert len(winners) == 1, f"race {number}: {results}"
        assert all(isinstance(r, VersionConflictError) for r in results if not isinstance(r, int)), results
        stored = containers[0].store.get(incident.dedup_key)
        assert stored is not None and stored.summary == f"writer {winners[0]}"


def test_the_server_applies_racing_conditional_puts_and_updates_atomically(
    dynamodb_url: str, table: str, request: pytest.FixtureRequest
) -> None:
    """A claim races as a PutItem from one container and as an UpdateItem from the one that wrote the item
    last: among writes conditional on the same version, exactly one may win, whatever their kind."""
    clients = [dynamodb_client(dynamodb_url) for _ in range(CONTAINERS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # threads switch often: a server's unguarded window shows
    request.addfinalizer(lambda: sys.setswitchinterval(interval))
    for number in range(WRITE_RACES):
        key = {"dedup_key": {"S": f"update-race-{number}"}}
        clients[0].put_item(TableName=table, Item={**key, "version": {"N": "1"}, "summary": {"S": "before"}})
        condition = {"ConditionExpression": "version = :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}

        def write(index: int, key: dict[str, Any] = key, condition: dict[str, Any] = condition) -> int:
            client = clients[index]
            if index % 2:
                client.put_item(
                    TableName=table,
                    Item={**key, "version": {"N": "2"}, "summary": {"S": f"writer {index}"}},
                    **condition,
                )
            else:
                client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET version = :two, summary = :me",
                    ConditionExpression=condition["ConditionExpression"],
                    ExpressionAttributeValues={
                        **condition["ExpressionAttributeValues"],
                        ":two": {"N": "2"},
                        ":me": {"S": f"writer {index}"},
                    },
                )
            return index

        results = race([partial(write, i) for i in range(CONTAINERS)])
        winners = [r for r in results if isinstance(r, int)]
        assert len(winners) == 1, f"race {number}: {results}"
        lost = [r for r in results if not isinstance(r, int)]
        assert all(isinstance(r, ClientError) and "ConditionalCheckFailed" in str(r) for r in lost), lost
        stored = clients[0].get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        assert stored["summary"] == {"S": f"writer {winners[0]}"}


# --- the races ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["ALARM", "OK"])
def test_concurrent_deliveries_of_one_notification_reach_pagerduty_once(
    containers: list[Container], fake_pd: FakePagerDuty, state: str
) -> None:
    """8 invocations with the same notification: one sends; the others back off or find it done."""
    expected_action = "trigger" if state == "ALARM" else "resolve"
    for number in range(SAME_NOTIFICATION_RACES):
        name = f"same-{state.lower()}-{number}-{uuid.uuid4().hex[:6]}"
        key = f"{name}-{METRIC}"
        if state == "OK":
            opened = deliver(containers[0], sns_event(name, "ALARM", "OK", T0))
            assert opened.error is None and key in fake_pd.open_alerts(ROUTING_KEY)
        event = sns_event(name, state, "ALARM" if state == "OK" else "OK", T0 + timedelta(minutes=5))
        before = Counter(actions_for(fake_pd, key))

        results = race([partial(deliver, c, event) for c in containers])

        assert all(isinstance(r, RecordResult) for r in results), results
        sent = [r for r in results if r.outcome is not None and r.outcome.delivered]
        assert len(sent) == 1, [(r.outcome and r.outcome.reason, r.error) for r in results]
        for result in results:
            if result.error is not None:
                assert isinstance(result.error, BridgeError) and result.error.retryable, result.error
                retried = retry_until_handled(containers[0], event)
                assert retried.outcome is not None and not retried.outcome.delivered
        assert Counter(actions_for(fake_pd, key)) - before == Counter({expected_action: 1})
        assert (key in fake_pd.open_alerts(ROUTING_KEY)) is (state == "ALARM")


def test_concurrent_alarm_and_ok_end_in_the_newest_state(containers: list[Container], fake_pd: FakePagerDuty) -> None:
    """ALARM and OK (twice each) at once, either newer, in random order: the newest state wins."""
    rng = random.Random(20250114)  # reproducible races
    for number in range(ALARM_VERSUS_OK_RACES):
        name = f"flap-{number}-{uuid.uuid4().hex[:6]}"
        key = f"{name}-{METRIC}"
        alarm_is_newer = rng.random() < 0.5
        alarm_at, ok_at = (T0 + timedelta(minutes=2), T0 + timedelta(minutes=1))
        if not alarm_is_newer:
            alarm_at, ok_at = ok_at, alarm_at
        events = [sns_event(name, "ALARM", "OK", alarm_at), sns_event(name, "OK", "ALARM", ok_at)] * 2
        rng.shuffle(events)

        results = race([partial(deliver, c, e) for c, e in zip(containers, events, strict=False)])

        for event, result in zip(events, results, strict=True):
            assert isinstance(result, RecordResult), result
            if result.error is not None:
                retry_until_handled(containers[0], event)
        newest = "ALARM" if alarm_is_newer else "OK"
        assert (key in fake_pd.open_alerts(ROUTING_KEY)) is (newest == "ALARM"), (
            f"race {number}: newest is {newest}, requests {actions_for(fake_pd, key)}"
        )
        actions = Counter(actions_for(fake_pd, key))
        assert max(actions.values()) == 1, f"race {number}: a change was sent twice: {actions}"
