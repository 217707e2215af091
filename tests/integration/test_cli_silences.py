"""Silences, end to end: ``silence add|list|expire`` on the SQLite file and on a DynamoDB table (moto's
HTTP server), holding in ``replay --send`` against the PagerDuty stand-in and in the Lambda handler
(moto in-process, the silence written to the handler's own table by the CLI); ending on time; and the
lifecycle around one — an ALARM during is recorded ``silenced`` and not paged, an OK during sends
nothing, an ALARM after pages, and an alarm still in ALARM when its silence ends pages at the next
scheduled run."""

from __future__ import annotations

import getpass
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.silences import CACHE_SECONDS, SilenceCache
from pagerduty_bridge.timeutil import parse_time
from tests.builders import T0, cli, cli_json, dedup_key, lambda_environment, put_cpu_alarm, schedule_event, sns_event
from tests.conftest import ROUTING_KEY, FakeLambdaContext


@dataclass
class Store:
    kind: str
    args: tuple[str, ...]
    folder: Path

    def name(self, alarm: str) -> str:
        """An alarm name of this test's own (moto's server is shared by the module)."""
        return f"{alarm}-{self.kind}"

    def event(self, name: str, state: str = "ALARM", old_state: str = "OK", minute: int = 0) -> str:
        path = self.folder / f"{name}-{state}-{minute}.json"
        path.write_text(json.dumps(sns_event(name, state, old_state, T0 + timedelta(minutes=minute))))
        return str(path)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    kind = f"{request.param}-{uuid.uuid4().hex[:6]}"
    if request.param == "sqlite":
        return Store(kind, ("--state", str(tmp_path / "state.db"), "--endpoint-url", moto_url), tmp_path)
    table = f"incidents-{kind}"
    assert cli("table", "create", "--table", table, "--endpoint-url", moto_url).code == 0
    return Store(kind, ("--table", table, "--endpoint-url", moto_url), tmp_path)


def add_silence(store: Store, match: str, *extra: str) -> str:
    added = cli_json(
        "silence", "add", "--match", match, "--comment", "planned maintenance", "--json", *extra, *store.args
    )
    assert set(added) == {"id"}
    return str(added["id"])


def replay(store: Store, fake: FakePagerDuty, event: str) -> dict[str, Any]:
    run = cli("replay", "--json", "--send", "--events-url", fake.url, *store.args, event)
    assert run.code == 0, run.err
    line: dict[str, Any] = run.json()
    return line


def sent(fake: FakePagerDuty, key: str) -> list[str]:
    return [
        r.body["event_action"] for r in fake.requests if isinstance(r.body, dict) and r.body.get("dedup_key") == key
    ]


def sleep_past(ends_at: str) -> None:
    """Until just after ``ends_at`` (an ISO 8601 time)."""
    ends = parse_time(ends_at)
    assert ends is not None
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.05)


def wait_until_over(store: Store, silence_id: str) -> None:
    (silence,) = [s for s in cli_json("silence", "list", "--all", "--json", *store.args) if s["id"] == silence_id]
    sleep_past(silence["ends_at"])


# --- the commands -------------------------------------------------------------------------------------


def test_add_list_and_expire(store: Store) -> None:
    held = add_silence(
        store, "alarm_name=orders-*", "--for", "2h", "--match", "dimension.DBInstanceIdentifier=orders-*"
    )
    coming = add_silence(
        store,
        "tag.team=payments",
        "--for",
        "1h",
        "--starts",
        (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
        "--created-by",
        "alice",
    )

    listed = {s["id"]: s for s in cli_json("silence", "list", "--json", *store.args)}
    assert set(listed) == {held, coming}
    assert listed[held]["matchers"] == {"alarm_name": "orders-*", "dimension.DBInstanceIdentifier": "orders-*"}
    assert (listed[held]["comment"], listed[held]["created_by"]) == ("planned maintenance", getpass.getuser())
    assert listed[coming]["created_by"] == "alice"
    ends = parse_time(listed[held]["ends_at"])
    assert ends is not None and abs((ends - datetime.now(UTC)) - timedelta(hours=2)) < timedelta(minutes=1)
    table = cli("silence", "list", *store.args)
    rows = {line.split()[0]: line.split()[1] for line in table.out.splitlines()[1:]}
    assert rows == {held: "active", coming: "coming"}

    ended = cli_json("silence", "expire", held, "--json", *store.args)
    assert ended["id"] == held and ended["expired_at"] is not None
    assert [s["id"] for s in cli_json("silence", "list", "--json", *store.args)] == [coming]
    every = {
        line.split()[0]: line.split()[1] for line in cli("silence", "list", "--all", *store.args).out.splitlines()[1:]
    }
    assert every[held] == "ended"

    unknown = cli("silence", "expire", "0123456789ab", *store.args)
    assert unknown.code == 2 and "no silence '0123456789ab'" in unknown.err


def test_the_human_output_of_add_starts_with_the_id(store: Store) -> None:
    run = cli("silence", "add", "--match", "alarm_name=x-*", "--for", "90m", "--comment", "c", *store.args)
    assert run.code == 0
    silence_id = run.out.split()[0]
    assert [s["id"] for s in cli_json("silence", "list", "--json", *store.args)] == [silence_id]


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (("--match", "colour=red", "--for", "1h"), "cannot match on 'colour'"),
        (("--match", "alarm_name", "--for", "1h"), "expected KEY=VALUE"),
        (
            ("--match", "alarm_name=payments-*", "--match", "alarm_name=*-db", "--for", "1h"),
            "--match alarm_name given twice",
        ),
        (("--match", "alarm_name=x", "--for", "soon"), "--for: 'soon' is not a duration"),
        (("--match", "alarm_name=x", "--for", "99999999999999d"), "--for: '99999999999999d' is longer than any"),
        (("--match", "alarm_name=x", "--until", "tomorrow"), "not an ISO 8601 time"),
        (("--match", "alarm_name=x", "--until", "2020-01-01T00:00:00Z"), "must end after it starts"),
    ],
)
def test_a_wrong_silence_is_one_line_and_nothing_stored(store: Store, options: tuple[str, ...], complaint: str) -> None:
    run = cli("silence", "add", *options, "--comment", "c", *store.args)
    assert run.code == 2
    (line,) = run.err.strip().splitlines()
    assert complaint in line
    if "--state" in store.args:
        assert not Path(store.args[1]).exists() or cli_json("silence", "list", "--all", "--json", *store.args) == []
    else:
        assert cli_json("silence", "list", "--all", "--json", *store.args) == []


# --- the lifecycle around a silence, through replay --send --------------------------------------------


def test_alarm_during_is_recorded_ok_during_sends_nothing_alarm_after_pages(
    store: Store, fake_pd: FakePagerDuty
) -> None:
    name = store.name("maint-db")
    key = dedup_key(name)
    silence = add_silence(store, f"alarm_name={name}", "--for", "1h")

    during = replay(store, fake_pd, store.event(name, "ALARM", "OK", minute=0))
    assert (during["action"], during["reason"], during["delivered"]) == ("none", "silenced", False)
    shown = cli_json("incidents", "show", key, "--json", *store.args)
    assert (shown["status"], shown["silence_id"], shown["alarm_state"]) == ("silenced", silence, "ALARM")
    assert cli_json("incidents", "list", "--json", *store.args) == [], "nothing is open"
    ack = cli("incidents", "ack", key, *store.args)
    assert ack.code == 2 and f"silenced by {silence}: nothing was opened in PagerDuty" in ack.err

    ok = replay(store, fake_pd, store.event(name, "OK", "ALARM", minute=1))
    assert (ok["action"], ok["reason"]) == ("none", "no_open_incident")
    assert sent(fake_pd, key) == []

    cli_json("silence", "expire", silence, "--json", *store.args)
    after = replay(store, fake_pd, store.event(name, "ALARM", "OK", minute=2))
    assert (after["action"], after["delivered"]) == ("trigger", True)
    assert sent(fake_pd, key) == ["trigger"]
    assert key in fake_pd.open_alerts(ROUTING_KEY)


def test_an_ok_during_a_silence_sends_nothing_after_an_earlier_resolved_incident(
    store: Store, fake_pd: FakePagerDuty
) -> None:
    name = store.name("flappy")
    key = dedup_key(name)
    replay(store, fake_pd, store.event(name, "ALARM", "OK", minute=0))
    replay(store, fake_pd, store.event(name, "OK", "ALARM", minute=1))
    add_silence(store, f"alarm_name={name}", "--for", "1h")
    assert replay(store, fake_pd, store.event(name, "ALARM", "OK", minute=2))["reason"] == "silenced"
    assert replay(store, fake_pd, store.event(name, "OK", "ALARM", minute=3))["action"] == "none"
    assert sent(fake_pd, key) == ["trigger", "resolve"], "the silenced ALARM and its OK sent nothing"


def test_a_silence_never_holds_back_the_resolve_of_an_incident_opened_before_it(
    store: Store, fake_pd: FakePagerDuty
) -> None:
    name = store.name("before")
    key = dedup_key(name)
    replay(store, fake_pd, store.event(name, "ALARM", "OK", minute=0))
    add_silence(store, f"alarm_name={name}", "--for", "1h")
    ok = replay(store, fake_pd, store.event(name, "OK", "ALARM", minute=1))
    assert (ok["action"], ok["delivered"]) == ("resolve", True)
    assert sent(fake_pd, key) == ["trigger", "resolve"]
    assert key not in fake_pd.open_alerts(ROUTING_KEY)


@pytest.mark.parametrize("how", ["--for", "--until"])
def test_a_silence_ends_on_time(store: Store, fake_pd: FakePagerDuty, how: str) -> None:
    name = store.name(f"brief{how.strip('-')}")
    key = dedup_key(name)
    until = "2s" if how == "--for" else (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    silence = add_silence(store, f"alarm_name={name}", how, until)
    assert replay(store, fake_pd, store.event(name, "ALARM", "OK", minute=0))["reason"] == "silenced"
    wait_until_over(store, silence)
    assert cli_json("silence", "list", "--json", *store.args) == [], "an ended silence is no longer listed"
    assert replay(store, fake_pd, store.event(name, "OK", "ALARM", minute=1))["action"] == "none"
    assert replay(store, fake_pd, store.event(name, "ALARM", "OK", minute=2))["action"] == "trigger"
    assert sent(fake_pd, key) == ["trigger"]


def test_an_alarm_still_in_alarm_when_its_silence_ends_pages_at_the_next_reconcile(
    store: Store, fake_pd: FakePagerDuty, moto_url: str
) -> None:
    firing, recovered = store.name("still-firing"), store.name("recovered")
    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_url)
    put_cpu_alarm(cloudwatch, firing, "ALARM")
    put_cpu_alarm(cloudwatch, recovered, "ALARM")
    silence = add_silence(store, f"alarm_name=*-{store.kind}", "--for", "2s")
    for name in (firing, recovered):
        assert replay(store, fake_pd, store.event(name))["reason"] == "silenced"
    send = ("--send", "--events-url", fake_pd.url, *store.args)
    assert cli_json("reconcile", "--json", *send) == [], "nothing to do while the silence holds"
    cloudwatch.set_alarm_state(AlarmName=recovered, StateValue="OK", StateReason="recovered during the silence")
    wait_until_over(store, silence)

    dry = cli_json("reconcile", "--json", *store.args)
    assert [(r["alarm_name"], r["action"]) for r in dry] == [(firing, "paged")]
    assert sent(fake_pd, dedup_key(firing)) == []
    paged = cli_json("reconcile", "--json", *send)
    assert [(r["alarm_name"], r["action"], r["reason"]) for r in paged] == [(firing, "paged", "silence_over")]
    assert sent(fake_pd, dedup_key(firing)) == ["trigger"]
    assert sent(fake_pd, dedup_key(recovered)) == [], "an alarm that recovered during its silence is not paged"
    assert cli_json("incidents", "show", dedup_key(firing), "--json", *store.args)["status"] == "triggered"
    again = cli_json("reconcile", "--json", *send)
    assert [(r["alarm_name"], r["action"]) for r in again] == [(firing, "kept")]
    assert sent(fake_pd, dedup_key(firing)) == ["trigger"]


# --- in the Lambda handler ----------------------------------------------------------------------------


@pytest.fixture
def lambda_table(fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ...]]:
    """moto in-process, the handler's table made by ``table create``, and the handler's environment."""
    with mock_aws():
        assert cli("table", "create", "--table", "incidents").code == 0
        lambda_environment(monkeypatch, table="incidents", events_url=fake_pd.url)
        yield ("--table", "incidents")


def invoke(event: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    """The handler's answer and what it printed (Powertools' metrics)."""
    capsys.readouterr()
    answer = handler.lambda_handler(event, FakeLambdaContext())
    return answer, capsys.readouterr().out


@dataclass
class Ticks:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_silence_in_the_table_holds_in_the_lambda(
    lambda_table: tuple[str, ...], fake_pd: FakePagerDuty, capsys: pytest.CaptureFixture[str]
) -> None:
    key = dedup_key("payments-db-cpu")
    silence = cli_json(
        "silence",
        "add",
        "--match",
        "alarm_name=payments-*",
        "--for",
        "1h",
        "--comment",
        "failover",
        "--json",
        *lambda_table,
    )["id"]

    answer, printed = invoke(sns_event("payments-db-cpu", "ALARM", "OK", T0), capsys)
    assert answer == {"processed": 1, "failed": 0}
    assert '"SilencedNotification"' in printed
    assert fake_pd.requests == []
    shown = cli_json("incidents", "show", key, "--json", *lambda_table)
    assert (shown["status"], shown["silence_id"]) == ("silenced", silence)

    answer, printed = invoke(sns_event("payments-db-cpu", "OK", "ALARM", T0 + timedelta(minutes=1)), capsys)
    assert answer == {"processed": 1, "failed": 0}
    assert fake_pd.requests == [], "an OK during the silence sends nothing"

    ticks = Ticks()
    runtime = handler.get_runtime()
    runtime.notifications().silences = SilenceCache(runtime.store, monotonic=ticks)  # the container's clock
    invoke(sns_event("payments-db-cpu", "ALARM", "OK", T0 + timedelta(minutes=2)), capsys)
    cli_json("silence", "expire", silence, "--json", *lambda_table)
    invoke(sns_event("payments-db-cpu", "OK", "ALARM", T0 + timedelta(minutes=3)), capsys)
    invoke(sns_event("payments-db-cpu", "ALARM", "OK", T0 + timedelta(minutes=4)), capsys)
    assert fake_pd.requests == [], f"the container may use what it read for {CACHE_SECONDS} s"
    ticks.now += CACHE_SECONDS
    invoke(sns_event("payments-db-cpu", "OK", "ALARM", T0 + timedelta(minutes=5)), capsys)
    _, printed = invoke(sns_event("payments-db-cpu", "ALARM", "OK", T0 + timedelta(minutes=6)), capsys)
    assert sent(fake_pd, key) == ["trigger"]
    assert '"IncidentTriggered"' in printed and '"SilencedNotification"' not in printed


def test_a_silence_ending_in_the_lambda_pages_at_the_next_scheduled_run(
    lambda_table: tuple[str, ...], fake_pd: FakePagerDuty, capsys: pytest.CaptureFixture[str]
) -> None:
    key = dedup_key("orders-db-cpu")
    cloudwatch = boto3.client("cloudwatch")
    put_cpu_alarm(cloudwatch, "orders-db-cpu", "ALARM")
    until = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    cli_json(
        "silence", "add", "--match", "alarm_name=orders-*", "--until", until, "--comment", "c", "--json", *lambda_table
    )
    invoke(sns_event("orders-db-cpu", "ALARM", "OK", T0), capsys)
    answer, _ = invoke(schedule_event(), capsys)
    assert answer["paged"] == 0 and fake_pd.requests == []

    sleep_past(until)
    answer, printed = invoke(schedule_event(), capsys)
    assert answer["paged"] == 1
    assert sent(fake_pd, key) == ["trigger"]
    assert key in fake_pd.open_alerts(ROUTING_KEY)
    assert '"IncidentTriggered"' in printed
