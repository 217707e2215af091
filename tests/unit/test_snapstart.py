"""SnapStart hooks: a restored container re-seeds its randomness, forgets cached secrets and drops its
connections; the snapshot is taken with the paging path built and no secret read."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pagerduty_bridge import snapstart
from pagerduty_bridge.events_api import EventsClient
from pagerduty_bridge.runtime import Runtime
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.conftest import ROUTING_KEY


@dataclass
class Hooks:
    """What ``snapshot_restore_py`` offers: registration of the two hooks."""

    before: list[Callable[[], None]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)

    def register_before_snapshot(self, hook: Callable[[], None]) -> None:
        self.before.append(hook)

    def register_after_restore(self, hook: Callable[[], None]) -> None:
        self.after.append(hook)


class CountingFetcher:
    def __init__(self) -> None:
        self.reads = 0
        self.cleared = 0

    def __call__(self, reference: str, where: str) -> Any:
        self.reads += 1
        return ROUTING_KEY

    def clear(self) -> None:
        self.cleared += 1


def runtime() -> Runtime:
    built = Runtime(settings=Settings(integration_key_secret_arn="arn:secret"), store=SQLiteIncidentStore())
    built.keys._fetch = CountingFetcher()
    return built


def test_without_the_runtimes_hooks_nothing_is_installed() -> None:
    assert snapstart.install(runtime) is False


def test_restored_containers_do_not_share_their_retry_jitter() -> None:
    hooks, built = Hooks(), runtime()
    assert snapstart.install(lambda: built, hooks)
    random.seed(1234)  # the state every container restored from one snapshot starts with
    state = random.getstate()
    (restore,) = hooks.after
    restore()
    first = [random.random() for _ in range(3)]
    random.setstate(state)
    restore()
    second = [random.random() for _ in range(3)]
    random.setstate(state)
    frozen = [random.random() for _ in range(3)]
    assert first != second, "two restored containers would retry PagerDuty in lockstep"
    assert frozen not in (first, second)


def test_a_restore_forgets_cached_secrets_and_connections() -> None:
    hooks, built = Hooks(), runtime()
    snapstart.install(lambda: built, hooks)
    (snapshot,) = hooks.before
    snapshot()
    fetcher = built.keys._fetch
    assert isinstance(fetcher, CountingFetcher)
    assert fetcher.reads == 0, "the snapshot holds no secret"
    assert built.keys.get("default") == ROUTING_KEY
    sender = built.notifications().delivery.sender
    assert isinstance(sender, EventsClient)
    connections = sender.connections
    (restore,) = hooks.after
    restore()
    assert fetcher.cleared == 1, "a key rotated since the snapshot is read afresh"
    assert sender.connections is not connections, "connections from the snapshot are not reused"
