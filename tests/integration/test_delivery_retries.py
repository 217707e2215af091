"""Delivery under PagerDuty's failures, through ``pagerduty-bridge replay --send`` (real HTTP).

429 and 5xx are retried with backoff (honouring ``Retry-After``), 400 is never retried, an unreachable
PagerDuty fails within the retry budget, and nothing is lost: replaying the same file once PagerDuty is
back delivers it, and replaying it again sends nothing.
"""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from pagerduty_bridge.cli import main
from pagerduty_bridge.devtools.fake_pagerduty import Drop, FakePagerDuty, Respond
from tests.conftest import EVENTS, ROUTING_KEY

ALARM = EVENTS / "05-ec2-cpu-alarm.json"


@pytest.fixture(autouse=True)
def routing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)


def send(url: str, state: Path, *extra: str, path: Path = ALARM) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["replay", "--json", "--send", "--events-url", url, "--state", str(state), *extra, str(path)], out=out, err=err
    )
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def enqueue_bodies(fake: FakePagerDuty) -> list[Any]:
    return [r.body for r in fake.requests if r.path == "/v2/enqueue"]


@pytest.mark.parametrize("statuses", [(500,), (503,), (500, 503)])
def test_5xx_then_accepted_is_delivered_once_with_identical_bodies(
    fake_pd: FakePagerDuty, tmp_path: Path, statuses: tuple[int, ...]
) -> None:
    fake_pd.script(*(Respond(s) for s in statuses))
    code, (line,), _ = send(fake_pd.url, tmp_path / "s.db")
    assert code == 0 and line["delivered"] is True
    bodies = enqueue_bodies(fake_pd)
    assert len(bodies) == len(statuses) + 1
    assert all(body == bodies[0] for body in bodies)
    assert len(fake_pd.accepted()) == 1


def test_429_with_retry_after_waits_then_delivers(fake_pd: FakePagerDuty, tmp_path: Path) -> None:
    fake_pd.script(Respond(429, retry_after=2))
    started = time.monotonic()
    code, (line,), _ = send(fake_pd.url, tmp_path / "s.db")
    assert code == 0 and line["delivered"]
    first, second = fake_pd.requests
    assert second.at - first.at >= 2.0
    assert time.monotonic() - started >= 2.0


def test_400_is_sent_once_and_fails_with_pagerdutys_reason(fake_pd: FakePagerDuty, tmp_path: Path) -> None:
    fake_pd.script(
        Respond(
            400,
            body={
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": ["'payload.source' is missing"],
            },
        )
    )
    code, (line,), err = send(fake_pd.url, tmp_path / "s.db")
    assert code == 1
    assert len(fake_pd.requests) == 1
    assert line["delivered"] is False
    assert "400" in line["error"] and "'payload.source' is missing" in line["error"]
    assert "'payload.source' is missing" in err


def test_unreachable_fails_within_budget_then_nothing_is_lost(fake_pd: FakePagerDuty, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v2/enqueue"
    state = tmp_path / "s.db"
    started = time.monotonic()
    code, (line,), err = send(dead_url, state, "--retry-budget", "1.5")
    elapsed = time.monotonic() - started
    assert code == 1
    assert "Failed to send PagerDuty event" in err
    assert line["delivered"] is False
    assert elapsed < 1.5 + 5, "the budget bounds the retries"

    code, (line,), _ = send(fake_pd.url, state)
    assert code == 0 and line["delivered"] is True and line["reason"] == "redelivery"
    assert fake_pd.open_alerts()["web-prod-cpu-high-CPUUtilization"].status == "triggered"

    code, (line,), _ = send(fake_pd.url, state)
    assert code == 0 and (line["action"], line["reason"]) == ("none", "duplicate")
    assert len(fake_pd.requests) == 1


def test_a_dropped_connection_is_retried(fake_pd: FakePagerDuty, tmp_path: Path) -> None:
    fake_pd.script(Drop())
    code, (line,), _ = send(fake_pd.url, tmp_path / "s.db")
    assert code == 0 and line["delivered"]
    assert len(fake_pd.accepted()) == 1
    assert len(fake_pd.requests) == 2


def test_outage_longer_than_the_budget_fails_then_recovers(fake_pd: FakePagerDuty, tmp_path: Path) -> None:
    fake_pd.script(*[Respond(503)] * 30)
    state = tmp_path / "s.db"
    code, (line,), err = send(fake_pd.url, state, "--retry-budget", "1")
    assert code == 1 and "503" in err
    fake_pd.reset()
    code, (line,), _ = send(fake_pd.url, state)
    assert code == 0 and line["delivered"]
    assert len(fake_pd.accepted()) == 1


def test_ack_and_resolve_reach_the_triggers_routing_key(fake_pd: FakePagerDuty, tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    send(fake_pd.url, state)
    code, (line,), _ = send(fake_pd.url, state, path=EVENTS / "06-ec2-cpu-ok.json")
    assert code == 0 and line["action"] == "resolve"
    assert {r.body["routing_key"] for r in fake_pd.requests} == {ROUTING_KEY}
    assert fake_pd.open_alerts() == {}
