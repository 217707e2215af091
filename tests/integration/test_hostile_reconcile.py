"""Reconciliation, redrive and silences at their edges: odd answers, odd timing, overlapping holds.

Each case runs the real paths (the Lambda handler under moto, the PagerDuty stand-in over HTTP) and
names the promise it keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pagerduty_bridge.silences import Silence, expired
from tests.builders import T0, dedup_key, sns_event
from tests.integration.test_reconciliation import Bridge, bridge, put_alarm, sent

__all__ = ["bridge"]  # the fixture, shared with the reconciliation tests


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
