"""Silences, on their own: which alarms a silence matches (globs, dimension. and tag. fields, the fields
it refuses), when it holds (start, end, expired early), and how often the Lambda reads them."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pagerduty_bridge.cli import main
from pagerduty_bridge.delivery import Delivery, DryRunSender
from pagerduty_bridge.errors import StoreError
from pagerduty_bridge.keys import StaticKeys
from pagerduty_bridge.models import AlarmKind, AlarmNotification, AlarmState, MetricQuery
from pagerduty_bridge.notifications import Notifications, Route
from pagerduty_bridge.rules import parse_rules
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.silences import (
    CACHE_SECONDS,
    FIELDS,
    MAX_COMMENT_LENGTH,
    MAX_MATCHERS,
    Silence,
    SilenceCache,
    alarm_values,
    check_matchers,
    expired,
    new_silence,
)
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from pagerduty_bridge.timeutil import LATEST

NOW = datetime(2025, 1, 14, 14, 30, tzinfo=UTC)
RULES = Path(__file__).resolve().parents[1] / "fixtures" / "rules" / "example.yaml"


def db_alarm(name: str = "orders-db-cpu", **changes: object) -> AlarmNotification:
    alarm = AlarmNotification(
        kind=AlarmKind.METRIC,
        alarm_name=name,
        new_state=AlarmState.ALARM,
        old_state=AlarmState.OK,
        state_change_time=NOW,
        namespace="AWS/RDS",
        metric_name="CPUUtilization",
        dimensions={"DBInstanceIdentifier": "orders-primary"},
        tags={"team": "payments"},
        region_code="eu-west-1",
        account_id="123456789012",
    )
    return replace(alarm, **changes)


def route_of(alarm: AlarmNotification) -> Route:
    """The alarm's route through the example rules, as the handler computes it (no silences)."""
    rules = parse_rules(RULES.read_text(encoding="utf-8"), where=str(RULES))
    store = SQLiteIncidentStore(":memory:")
    delivery = Delivery(store, DryRunSender(), StaticKeys({}, fallback=""), lambda: NOW)
    return Notifications(Settings(), rules, delivery, lambda: NOW).route(alarm)


def silence(matchers: dict[str, str], *, starts: datetime = NOW, ends: datetime | None = None) -> Silence:
    return new_silence(
        matchers,
        starts_at=starts,
        ends_at=ends or starts + timedelta(hours=2),
        comment="planned maintenance",
        created_by="oncall",
        now=NOW,
    )


def matches(matchers: dict[str, str], alarm: AlarmNotification | None = None) -> bool:
    alarm = alarm or db_alarm()
    return silence(matchers).matches(alarm_values(alarm, route_of(alarm)))


# --- matching -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ({"alarm_name": "orders-*"}, True),
        ({"alarm_name": "orders-db-cpu"}, True),
        ({"alarm_name": "orders-db-???"}, True),
        ({"alarm_name": "orders-db-[cm]pu"}, True),
        ({"alarm_name": "payments-*"}, False),
        ({"alarm_name": "Orders-*"}, False),
        ({"alarm_name": "orders"}, False),
        ({"namespace": "AWS/RDS"}, True),
        ({"namespace": "AWS/*"}, True),
        ({"namespace": "AWS/EC2"}, False),
        ({"metric_name": "CPU*"}, True),
        ({"kind": "metric"}, True),
        ({"kind": "composite"}, False),
        ({"region": "eu-*"}, True),
        ({"account": "123456789012"}, True),
        ({"account": "210987654321"}, False),
        ({"dedup_key": "orders-db-cpu-CPUUtilization"}, True),
    ],
)
def test_globs_on_the_alarms_own_fields(matchers: dict[str, str], expected: bool) -> None:
    assert matches(matchers) is expected


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ({"dimension.DBInstanceIdentifier": "orders-*"}, True),
        ({"dimension.DBInstanceIdentifier": "billing-*"}, False),
        ({"dimension.InstanceId": "i-*"}, False),
        ({"tag.team": "payments"}, True),
        ({"tag.team": "web"}, False),
        ({"tag.owner": "?*"}, False),
    ],
)
def test_dimension_and_tag_fields(matchers: dict[str, str], expected: bool) -> None:
    assert matches(matchers) is expected


def test_dimensions_of_a_metric_math_alarms_queries_count() -> None:
    query = MetricQuery(id="m1", namespace="AWS/RDS", metric_name="CPUUtilization", dimensions={"Cluster": "orders"})
    alarm = db_alarm(kind=AlarmKind.METRIC_MATH, metric_name=None, dimensions={}, metrics=(query,))
    assert matches({"dimension.Cluster": "orders"}, alarm)


def test_every_matcher_must_hold() -> None:
    assert matches({"alarm_name": "orders-*", "namespace": "AWS/RDS", "tag.team": "payments"})
    assert not matches({"alarm_name": "orders-*", "namespace": "AWS/EC2"})


def test_fields_after_the_rules_severity_routing_alias_and_rule() -> None:
    payments = db_alarm("payments-api-latency")
    values = alarm_values(payments, route_of(payments))
    assert (values["rule"], values["severity"], values["routing_key"]) == ("payments-critical", "critical", "payments")
    assert matches({"rule": "payments-critical", "severity": "critical", "routing_key": "pay*"}, payments)
    assert not matches({"routing_key": "payments"})


def test_a_glob_matching_the_empty_string_also_matches_an_alarm_without_that_field() -> None:
    """As in Alertmanager: an absent field is the empty string. ``?*`` asks for the field to be there."""
    composite = db_alarm(kind=AlarmKind.COMPOSITE, namespace=None, metric_name=None, dimensions={}, tags={})
    assert matches({"alarm_name": "orders-*", "namespace": "*"}, composite)
    assert not matches({"alarm_name": "orders-*", "namespace": "?*"}, composite)


@pytest.mark.parametrize(
    ("matchers", "complaint"),
    [
        ({}, "at least one --match"),
        ({"alarmname": "x"}, "cannot match on 'alarmname'"),
        ({"AlarmName": "x"}, "cannot match on 'AlarmName'"),
        ({"dimension.": "x"}, "cannot match on 'dimension.'"),
        ({"tag.": "x"}, "cannot match on 'tag.'"),
        ({"dimension.a b": "x"}, "cannot match on 'dimension.a b'"),
        ({"label.team": "x"}, "cannot match on 'label.team'"),
        ({f"tag.t{i}": "x" for i in range(MAX_MATCHERS + 1)}, f"at most {MAX_MATCHERS}"),
    ],
)
def test_refused_fields(matchers: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        check_matchers(matchers)


def test_every_field_a_silence_may_use_is_one_an_alarm_has() -> None:
    alarm = db_alarm()
    assert set(FIELDS) <= set(alarm_values(alarm, route_of(alarm)))
    check_matchers(dict.fromkeys(FIELDS, "*"))


# --- times --------------------------------------------------------------------------------------------


def test_a_silence_holds_from_its_start_until_just_before_its_end() -> None:
    held = silence({"alarm_name": "x"}, starts=NOW, ends=NOW + timedelta(hours=1))
    assert not held.active(NOW - timedelta(microseconds=1))
    assert held.active(NOW)
    assert held.active(NOW + timedelta(minutes=59, seconds=59))
    assert not held.active(NOW + timedelta(hours=1))


def test_expiring_early_ends_it_at_once_and_keeps_it_readable() -> None:
    held = silence({"alarm_name": "x"})
    ended = expired(held, NOW + timedelta(minutes=10))
    assert not ended.active(NOW + timedelta(minutes=10))
    assert ended.active(NOW + timedelta(minutes=5)) is False, "an expired silence holds at no time any more"
    assert ended.ends_at == NOW + timedelta(minutes=10)
    assert ended.expired_at == NOW + timedelta(minutes=10)
    assert (ended.id, ended.matchers, ended.comment) == (held.id, held.matchers, held.comment)


def test_its_state_is_coming_then_active_then_ended() -> None:
    held = silence({"alarm_name": "x"}, starts=NOW, ends=NOW + timedelta(hours=1))
    assert held.state(NOW - timedelta(microseconds=1)) == "coming"
    assert held.state(NOW) == "active"
    assert held.state(NOW + timedelta(hours=1)) == "ended"
    assert expired(held, NOW - timedelta(minutes=1)).state(NOW - timedelta(minutes=2)) == "ended", "expired early"
    for moment in (NOW - timedelta(minutes=1), NOW, NOW + timedelta(minutes=30), NOW + timedelta(hours=2)):
        assert (held.state(moment) == "active") == held.active(moment)


def test_expiring_after_its_end_keeps_the_end() -> None:
    held = silence({"alarm_name": "x"}, ends=NOW + timedelta(hours=1))
    assert expired(held, NOW + timedelta(hours=3)).ends_at == NOW + timedelta(hours=1)


def test_a_silence_running_past_the_end_of_time_ends_there(tmp_path: Path) -> None:
    """``--starts`` late in year 9999 with ``--for``: the end saturates as every computed time does."""
    state = ("--state", str(tmp_path / "s.db"), "--json")
    out, err = io.StringIO(), io.StringIO()
    added = ["silence", "add", "--match", "alarm_name=x", "--starts", "9999-12-31T23:00:00Z", "--for", "2h"]
    assert main([*added, "--comment", "far away", *state], out=out, err=err) == 0, err.getvalue()
    listed = io.StringIO()
    assert main(["silence", "list", *state], out=listed, err=err) == 0, err.getvalue()
    (kept,) = json.loads(listed.getvalue())
    assert kept["id"] == json.loads(out.getvalue())["id"]
    assert Silence.from_dict(kept).ends_at == LATEST


@pytest.mark.parametrize(
    ("starts", "ends", "comment", "complaint"),
    [
        (NOW, NOW, "why", "must end after it starts"),
        (NOW, NOW - timedelta(seconds=1), "why", "must end after it starts"),
        (NOW, NOW + timedelta(hours=1), "   ", "needs a --comment"),
    ],
)
def test_a_new_silence_is_checked(starts: datetime, ends: datetime, comment: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        new_silence({"alarm_name": "x"}, starts_at=starts, ends_at=ends, comment=comment, created_by="me", now=NOW)


def test_a_new_silence_has_a_short_id_and_a_bounded_comment() -> None:
    made = new_silence(
        {"alarm_name": "x"},
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=1),
        comment="c" * (MAX_COMMENT_LENGTH + 50),
        created_by="me",
        now=NOW,
    )
    assert len(made.id) == 12 and int(made.id, 16) >= 0
    assert len(made.comment) == MAX_COMMENT_LENGTH
    other = silence({"alarm_name": "x"})
    assert other.id != made.id


def test_a_silence_survives_its_stored_form() -> None:
    ended = expired(silence({"alarm_name": "orders-*", "tag.team": "payments"}), NOW + timedelta(minutes=1))
    assert Silence.from_dict(ended.as_dict()) == ended
    broken = {**ended.as_dict(), "ends_at": "tomorrow"}
    with pytest.raises(ValueError, match="ends_at is not a time"):
        Silence.from_dict(broken)


# --- the cache ----------------------------------------------------------------------------------------


@dataclass
class CountingStore:
    silences: list[Silence] = field(default_factory=list)
    reads: int = 0
    failing: bool = False
    """Every read fails as a throttled or unreachable table does."""

    def list_silences(self) -> list[Silence]:
        self.reads += 1
        if self.failing:
            raise StoreError("list silences failed: ProvisionedThroughputExceededException: slow down")
        return list(self.silences)


@dataclass
class Ticks:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_reads_the_store_at_most_every_few_seconds() -> None:
    store, ticks = CountingStore(), Ticks()
    cache = SilenceCache(store, monotonic=ticks)
    alarm = db_alarm()
    route = route_of(alarm)
    assert cache.matching(alarm, route, NOW) is None
    store.silences.append(silence({"alarm_name": "orders-*"}))
    ticks.now += CACHE_SECONDS - 0.1
    assert cache.matching(alarm, route, NOW) is None, "a silence added within the cache time is not yet seen"
    ticks.now += 0.1
    assert cache.matching(alarm, route, NOW) == store.silences[0].id
    assert store.reads == 2


def test_a_failed_refresh_keeps_the_silences_last_read_and_asks_again_soon() -> None:
    # The table throttled the silences' Query for a moment (their own key space: the incidents' writes
    # beside it went through): every alarm failed, though the list read five seconds before was good.
    store, ticks = CountingStore([silence({"alarm_name": "orders-*"})]), Ticks()
    cache = SilenceCache(store, monotonic=ticks)
    alarm = db_alarm()
    route = route_of(alarm)
    assert cache.matching(alarm, route, NOW) == store.silences[0].id
    store.failing = True
    ticks.now += CACHE_SECONDS
    assert cache.matching(alarm, route, NOW) == store.silences[0].id, "the list last read still holds"
    store.failing = False
    store.silences.clear()
    ticks.now += CACHE_SECONDS
    assert cache.matching(alarm, route, NOW) is None, "read again once the table answers"


def test_silences_never_read_are_not_made_up_when_the_first_read_fails() -> None:
    cache = SilenceCache(CountingStore(failing=True), monotonic=Ticks())
    with pytest.raises(StoreError):
        cache.matching(db_alarm(), route_of(db_alarm()), NOW)


def test_the_cache_answers_only_for_silences_holding_now() -> None:
    held = silence({"alarm_name": "orders-*"}, starts=NOW, ends=NOW + timedelta(hours=1))
    coming = silence({"alarm_name": "*"}, starts=NOW + timedelta(hours=2))
    cache = SilenceCache(CountingStore([coming, held]), monotonic=Ticks())
    alarm = db_alarm()
    route = route_of(alarm)
    assert cache.matching(alarm, route, NOW) == held.id
    assert cache.matching(alarm, route, NOW + timedelta(hours=1)) is None
    assert cache.matching(alarm, route, NOW + timedelta(hours=2)) == coming.id
    assert cache.is_active(held.id, NOW) and not cache.is_active(held.id, NOW + timedelta(hours=1))
    assert not cache.is_active("no-such-id", NOW)
