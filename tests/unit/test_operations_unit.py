"""The seed's key metrics and what the handler counts, from data alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge.cli import DRY_RUN_KEY
from pagerduty_bridge.integration import DryRunSender, PagerDutyIntegration
from pagerduty_bridge.models import EventResponse, Incident, IncidentStatus, Resolution
from pagerduty_bridge.operations import active_incident_check, compute_stats, parse_duration
from pagerduty_bridge.processing import process_event
from pagerduty_bridge.seed.models import ServiceConfig
from pagerduty_bridge.settings import Settings
from tests.conftest import EVENTS, load_json

T0 = datetime(2025, 1, 14, 14, 0, tzinfo=UTC)


def incident(
    key: str, minutes: int, *, resolved_after: int | None, ack: bool, how: Resolution | None, ack_after: int = 0
) -> Incident:
    start = T0 + timedelta(minutes=minutes)
    return Incident(
        dedup_key=key,
        alarm_name=key,
        status=IncidentStatus.RESOLVED if resolved_after is not None else IncidentStatus.TRIGGERED,
        triggered_at=start,
        resolved_at=start + timedelta(minutes=resolved_after) if resolved_after is not None else None,
        acknowledged_at=start + timedelta(minutes=ack_after) if ack else None,
        resolution=how,
        updated_at=start,
    )


def test_stats_over_a_mixed_history() -> None:
    history = [
        incident("a", 0, resolved_after=5, ack=True, how=Resolution.AUTO, ack_after=2),
        incident("b", 30, resolved_after=15, ack=False, how=Resolution.MANUAL),
        incident("c", 90, resolved_after=None, ack=True, how=None, ack_after=4),
        Incident(dedup_key="d", alarm_name="d", status=IncidentStatus.RESOLVED, updated_at=T0),  # never triggered
    ]
    stats = compute_stats(history, now=T0 + timedelta(hours=5))
    assert (stats.incidents, stats.resolved, stats.active, stats.acknowledged) == (3, 2, 1, 2)
    assert stats.mean_resolution_seconds == 600
    assert stats.acknowledgement_rate == round(2 / 3, 3)
    assert stats.auto_resolution_rate == 0.5
    assert stats.window_hours == 1.5
    assert stats.incidents_per_hour == 2.0
    assert stats.mean_acknowledgement_seconds == 180
    assert stats.resolved_by == {"auto": 1, "manual": 1, "reconciled": 0, "pagerduty": 0}
    recent = compute_stats(history, since=timedelta(hours=1), now=T0 + timedelta(minutes=80))
    assert recent.incidents == 2


def test_a_resolution_recorded_before_its_trigger_counts_as_resolved_but_not_towards_the_mean() -> None:
    """PagerDuty's clock says when a responder resolved (a webhook's ``occurred_at``) and CloudWatch's when
    the alarm fired: a resolution stamped before the trigger is a skew, not a negative time to resolve,
    as an acknowledgement stamped before it is not a negative time to acknowledge."""
    history = [
        incident("a", 0, resolved_after=10, ack=False, how=Resolution.AUTO),
        incident("b", 30, resolved_after=-600, ack=False, how=Resolution.PAGERDUTY),
    ]
    stats = compute_stats(history, now=T0 + timedelta(hours=5))
    assert (stats.resolved, stats.resolved_by["pagerduty"]) == (2, 1)
    assert stats.mean_resolution_seconds == 600


def test_stats_of_nothing() -> None:
    stats = compute_stats([], now=T0)
    assert (stats.incidents, stats.mean_resolution_seconds, stats.acknowledgement_rate) == (0, None, None)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("1.5h", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "h", "5y", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999999999d", "1" + "0" * 400 + "s", "9" * 400 + "w"])
def test_a_duration_beyond_any_clock_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="longer than any time a clock can hold"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["\u0663d", "\uff15m", "1\u0660h"])
def test_a_duration_is_written_in_ascii_digits(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_stats_over_the_longest_window_count_everything() -> None:
    old = incident("old", 0, resolved_after=5, ack=False, how=Resolution.AUTO)
    stats = compute_stats([old], since=timedelta.max, now=T0 + timedelta(hours=1))
    assert stats.incidents == 1


@pytest.mark.parametrize("since", [timedelta(0), timedelta(seconds=-1)])
def test_stats_over_no_time_is_a_clear_error(since: timedelta) -> None:
    """A window of no time holds no rate per hour (it would divide by zero)."""
    with pytest.raises(ValueError, match="longer than zero"):
        compute_stats([], since=since, now=T0)


def test_active_incident_check_names_the_count() -> None:
    assert active_incident_check(10).ok
    check = active_incident_check(11)
    assert not check.ok and "11 active incidents" in check.message


class AcceptingSender(DryRunSender):
    """Answers as PagerDuty does when it accepts, without any network."""

    def send_body(self, body: dict[str, Any], *, budget_seconds: float | None = None) -> EventResponse:
        super().send_body(body)
        return EventResponse(status="success", message="Event processed", dedup_key=body["dedup_key"])


def test_the_handler_path_counts_what_happened() -> None:
    counted: list[tuple[str, float, str]] = []
    bridge = PagerDutyIntegration(
        ServiceConfig(integration_key=DRY_RUN_KEY, service_name="x"),
        settings=Settings(),
        sender=AcceptingSender(),
    )

    def metric(name: str, value: float, unit: str) -> None:
        counted.append((name, value, unit))

    for sample in (
        "01-seed-high-failure-rate-alarm.json",
        "02-seed-high-failure-rate-ok.json",
        "02-seed-high-failure-rate-ok.json",
        "11-budget-plain-text.json",
    ):
        process_event(load_json(EVENTS / sample), bridge.notifications, metric=metric)
    names = [name for name, _, _ in counted]
    assert names.count(c.METRIC_INCIDENT_TRIGGERED) == 2  # the seed alarm and the forwarded message
    assert names.count(c.METRIC_INCIDENT_RESOLVED) == 1
    assert "IncidentResolvedAuto" in names
    assert (c.METRIC_RESOLUTION_TIME, 300.0, "Seconds") in counted
    assert c.METRIC_DUPLICATE_NOTIFICATION in names
    assert c.METRIC_UNRECOGNIZED_MESSAGE in names
