"""Dry means dry: without ``--send`` no command changes a store, and a ``--send`` run after a dry run
does exactly what it would have done had the dry run never happened.

Each test runs against both stores an operator can name: the SQLite state file (compared byte for
byte) and a DynamoDB table on moto's HTTP server (compared item for item), with CloudWatch, STS and SQS
on the same server through ``--endpoint-url``, and PagerDuty played by the local stand-in.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from tests.builders import (
    T0,
    alarm_message,
    cli,
    cli_json,
    dedup_key,
    put_cpu_alarm,
    sns_event,
    sns_notification,
)
from tests.conftest import ROUTING_KEY


@dataclass
class Store:
    kind: str
    args: tuple[str, ...]
    snapshot: Callable[[], Any]

    def name(self, alarm: str) -> str:
        """An alarm name of this test's own (moto's server is shared by the module)."""
        return f"{self.kind}-{alarm}"


def sqlite_snapshot(path: Path) -> dict[str, bytes]:
    """The state file and any journal beside it, byte for byte, once every connection is closed."""
    gc.collect()
    return {p.name: p.read_bytes() for p in sorted(path.parent.glob(path.name + "*"))}


def table_snapshot(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    kind = f"{request.param}-{uuid.uuid4().hex[:6]}"
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        return Store(kind, ("--state", str(path), "--endpoint-url", moto_url), lambda: sqlite_snapshot(path))
    table = f"incidents-{kind}"
    assert cli("table", "create", "--table", table, "--endpoint-url", moto_url).code == 0
    client = boto3.client("dynamodb", endpoint_url=moto_url)
    return Store(kind, ("--table", table, "--endpoint-url", moto_url), lambda: table_snapshot(client, table))


def event_file(folder: Path, name: str, state: str = "ALARM", old_state: str = "OK", minute: int = 0) -> Path:
    """An SNS event file for one alarm state change, ``minute`` minutes after ``T0``."""
    path = folder / f"{name}-{state}-{minute}.json"
    path.write_text(json.dumps(sns_event(name, state, old_state, T0 + timedelta(minutes=minute))))
    return path


def sent(fake: FakePagerDuty) -> list[tuple[str, str]]:
    """(event_action, dedup_key) of every event PagerDuty received."""
    return [
        (r.body.get("event_action"), r.body.get("dedup_key"))
        for r in fake.requests
        if isinstance(r.body, dict) and r.path.endswith("/enqueue")
    ]


def test_a_dry_replay_changes_no_store_and_a_send_after_it_pages_as_if_it_never_ran(
    store: Store, fake_pd: FakePagerDuty, tmp_path: Path
) -> None:
    send = ("--send", "--events-url", fake_pd.url)
    opened, fresh = store.name("replay-open"), store.name("replay-fresh")
    assert cli("replay", *send, *store.args, str(event_file(tmp_path, opened))).code == 0
    before, requests = store.snapshot(), len(fake_pd.requests)

    files = [str(event_file(tmp_path, fresh)), str(event_file(tmp_path, opened, "OK", "ALARM", minute=5))]
    dry = cli("replay", "--json", *store.args, *files)
    assert dry.code == 0, dry.err
    assert [(line["action"], line["delivered"]) for line in dry.json()] == [("trigger", False), ("resolve", False)]
    assert store.snapshot() == before
    assert len(fake_pd.requests) == requests

    real = cli("replay", "--json", *send, *store.args, *files)
    assert [(line["action"], line["reason"]) for line in real.json()] == [("trigger", "alarm"), ("resolve", "alarm_ok")]
    assert sent(fake_pd)[-2:] == [("trigger", dedup_key(fresh)), ("resolve", dedup_key(opened))]
    assert store.snapshot() != before


def test_dry_acknowledge_and_resolve_change_nothing_and_the_real_ones_still_act(
    store: Store, fake_pd: FakePagerDuty, tmp_path: Path
) -> None:
    send = ("--send", "--events-url", fake_pd.url)
    key = dedup_key(store.name("manual"))
    assert cli("replay", *send, *store.args, str(event_file(tmp_path, store.name("manual")))).code == 0
    before, requests = store.snapshot(), len(fake_pd.requests)

    for verb in ("ack", "resolve"):
        dry = cli("incidents", verb, key, *store.args)
        assert dry.code == 0 and "dry run" in dry.out, dry.err
        assert cli_json("incidents", verb, key, "--json", *store.args)["sent"] is False
    assert store.snapshot() == before
    assert len(fake_pd.requests) == requests

    assert cli_json("incidents", "ack", key, "--json", *send, *store.args)["sent"] is True
    assert cli_json("incidents", "show", key, "--json", *store.args)["status"] == "acknowledged"
    assert cli("incidents", "resolve", key, *send, *store.args).code == 0
    assert cli_json("incidents", "show", key, "--json", *store.args)["status"] == "resolved"
    assert sent(fake_pd)[-2:] == [("acknowledge", key), ("resolve", key)]


def test_a_dry_reconcile_changes_nothing_and_the_real_one_resolves_the_same_incidents(
    store: Store, fake_pd: FakePagerDuty, tmp_path: Path, moto_url: str
) -> None:
    send = ("--send", "--events-url", fake_pd.url)
    recovered, gone, firing = store.name("rc-ok"), store.name("rc-gone"), store.name("rc-firing")
    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_url)
    put_cpu_alarm(cloudwatch, recovered, "OK")
    put_cpu_alarm(cloudwatch, firing, "ALARM")
    for name in (recovered, gone, firing):
        assert cli("replay", *send, *store.args, str(event_file(tmp_path, name))).code == 0
    before, requests = store.snapshot(), len(fake_pd.requests)

    for _ in range(2):
        dry = {r["alarm_name"]: (r["action"], r["reason"]) for r in cli_json("reconcile", "--json", *store.args)}
        assert dry == {
            recovered: ("resolved", "alarm_ok"),
            gone: ("resolved", "alarm_gone"),
            firing: ("kept", "alarm_not_ok"),
        }
        assert store.snapshot() == before, "a second dry run sees exactly what the first saw"
    assert len(fake_pd.requests) == requests

    real = {r["alarm_name"]: r["action"] for r in cli_json("reconcile", "--json", *send, *store.args)}
    assert real == {recovered: "resolved", gone: "resolved", firing: "kept"}
    assert sorted(sent(fake_pd)[-2:]) == sorted([("resolve", dedup_key(recovered)), ("resolve", dedup_key(gone))])
    assert {r["alarm_name"] for r in cli_json("reconcile", "--json", *send, *store.args)} == {firing}


def queue_counts(sqs: Any, queue: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_dry_redrive_changes_nothing_leaves_every_message_visible_and_the_real_one_redrives_them(
    store: Store, fake_pd: FakePagerDuty, tmp_path: Path, moto_url: str
) -> None:
    send = ("--send", "--events-url", fake_pd.url)
    assert cli("replay", *send, *store.args, str(event_file(tmp_path, store.name("rd-setup")))).code == 0
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    queue = sqs.create_queue(QueueName=f"dead-letters-{store.kind}")["QueueUrl"]
    lost = [store.name(f"rd-{index}") for index in range(3)]
    for name in lost:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(sns_notification(alarm_message(name))))
    before, requests = store.snapshot(), len(fake_pd.requests)

    dry = cli_json("redrive", "--queue-url", queue, "--json", *store.args)
    assert (dry["received"], dry["redriven"], dry["kept"]) == (3, 3, [])
    assert store.snapshot() == before
    assert len(fake_pd.requests) == requests
    assert queue_counts(sqs, queue) == (3, 0), "every message is still there, and visible"

    real = cli_json("redrive", "--queue-url", queue, "--json", *send, *store.args)
    assert (real["received"], real["redriven"]) == (3, 3)
    assert sorted(sent(fake_pd)[-3:]) == sorted(("trigger", dedup_key(name)) for name in lost)
    assert queue_counts(sqs, queue) == (0, 0)
