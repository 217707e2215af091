"""Pacing sends per routing key, so an alarm storm spends its requests on events PagerDuty accepts.

PagerDuty accepts about 120 events a minute per routing key, counted over a sliding 60 s window, and
answers ``429`` beyond (https://developer.pagerduty.com/docs/events-api-v2/rate-limits/). Several
containers share that budget without knowing of each other, so each one learns its share:

- a token bucket per routing key: ``limit`` events per ``window`` from this container, after a burst
  of as many, so a quiet container pages at once;
- a ``429`` *holds* this container's sends for that key: for ``Retry-After`` when PagerDuty gives
  one; else (its usual answer) for ``HOLD_SECONDS``, and this container's rate for the key is halved:
  every container that hears the 429 stands back instead of each retrying into a full window;
- every accepted event wins back a little of the rate (additive increase, multiplicative decrease:
  the containers settle near the limit together, as TCP flows share a link).

A wait is only ever taken within the caller's time budget: ``acquire`` refuses (and sleeps not at
all) when the next send could not start before the deadline, so the caller fails fast, sends nothing,
and leaves the event for a later retry. Only a digest of each routing key is kept.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

LIMIT_PER_WINDOW: Final = 120
"""Events PagerDuty accepts per routing key per window ("about 120 events per minute")."""
WINDOW_SECONDS: Final = 60.0
"""PagerDuty's rate-limit window: 60 s looking back from the current time."""
BURST: Final = LIMIT_PER_WINDOW
"""Events a quiet container may send for one key at once: as many as PagerDuty's window takes, so a
burst of alarms (a region's outage) pages at once; the rate paces what follows. In a storm the
burst is spent by the first 429 (a simulation of five containers: the same 1.07 requests per
accepted event with a burst of 10 or of 120)."""
HOLD_SECONDS: Final = 10.0
"""How long a 429 without ``Retry-After`` holds sends for its key: a sixth of PagerDuty's window,
long enough for the containers hearing 429s to thin out together, short enough not to idle while the
sliding window frees room. A simulation of five containers draining 962 events: 1.07 requests per
accepted event and 1.2–1.3 × the drain time the limit allows (5 s: 1.08; 20 s: 1.06 but slower;
holding a whole window doubles the drain time)."""
DECREASE: Final = 0.5
"""A 429 halves this container's rate for the key."""
INCREASE: Final = 0.01
"""Each accepted event raises the rate by this fraction of the limit (from half back to full after 50
accepted events)."""
RECOVERY_SECONDS: Final = 300.0
"""Five windows without a 429 for a key and this container's rate for it is whole again: the next
storm starts from the limit, not from what the last one left."""
MIN_SHARE: Final = 0.02
"""The rate never falls below this fraction of the limit (one event every 25 s at 120 a minute)."""


RATE_LIMIT_PATIENCE: ContextVar[float | None] = ContextVar("rate_limit_patience", default=None)
"""While set: the most a send waits for its routing key's rate limit (a 429's ``Retry-After`` or hold,
the pacer's), in seconds, before it gives up as ``RateLimitedError``: a batch's other records wait
behind it (``processing``). Unset, the send's whole budget."""
BATCH_PATIENCE_SECONDS: Final = 2.0
"""What a record with others behind it waits for its key's rate limit: a token at half PagerDuty's
rate (1 s) or a short ``Retry-After``, not a hold of 10 s."""


_EPSILON: Final = 1e-9
"""A token this close to whole is whole: waiting for the rest would not move a float clock."""


@functools.lru_cache(maxsize=64)
def key_digest(routing_key: str, scope: str = "") -> str:
    """What the pacer remembers a key by (per endpoint, ``scope``): never the key itself."""
    return hashlib.sha256(f"{scope}\0{routing_key}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(slots=True)
class _Bucket:
    rate: float
    """Events per second this container allows itself for the key now."""
    tokens: float
    updated: float
    hold_until: float = 0.0
    throttled_at: float | None = None


class Pacer:
    """Per-routing-key token buckets, learned from 429s. Thread-safe; one per process (per client).

    ``clock`` and ``sleep`` are injected (monotonic seconds) so tests run without waiting.
    """

    def __init__(
        self,
        *,
        limit: int = LIMIT_PER_WINDOW,
        window_seconds: float = WINDOW_SECONDS,
        burst: int = BURST,
        hold_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window_seconds <= 0 or burst < 1:
            raise ValueError("limit and burst must be at least 1, window_seconds positive")
        self.max_rate = limit / window_seconds
        self.burst = float(burst)
        scale = window_seconds / WINDOW_SECONDS
        self.hold_seconds = HOLD_SECONDS * scale if hold_seconds is None else hold_seconds
        self.window_seconds = window_seconds
        self.recovery_seconds = RECOVERY_SECONDS * scale
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Pacer({self.max_rate * WINDOW_SECONDS:g} per minute per key, {len(self._buckets)} keys)"

    def delay(self, key: str) -> float:
        """Seconds until a send for ``key`` (a ``key_digest``) may start."""
        with self._lock:
            return self._delay(self._bucket(key), self._clock())

    def acquire(self, key: str, deadline: float | None = None) -> bool:
        """Wait until a send for ``key`` may start and take its token; ``False`` at once, without
        waiting or taking anything, when that moment is after ``deadline`` (monotonic seconds)."""
        while True:
            with self._lock:
                bucket, now = self._bucket(key), self._clock()
                wait = self._delay(bucket, now)
                if wait <= 0:
                    bucket.tokens = max(bucket.tokens, 1.0) - 1.0
                    return True
                if deadline is not None and now + wait > deadline:
                    return False
            self._sleep(wait)

    def throttled(self, key: str, retry_after: float | None = None) -> None:
        """PagerDuty answered 429 for ``key``: hold its sends.

        With ``Retry-After`` PagerDuty said when to come back: the hold is that long (one window at
        most: PagerDuty counts its limit over that window, so a longer wait is not its word but a
        proxy's or a far-future date's, and would hold every page for the key), and nothing else
        changes. Without it (PagerDuty's usual 429) the hold is ``HOLD_SECONDS``, the burst is
        spent and this container's rate for the key is halved: the sends resume one by one, slower.
        """
        with self._lock:
            bucket, now = self._bucket(key), self._clock()
            self._delay(bucket, now)
            if retry_after is not None and retry_after >= 0:
                bucket.hold_until = max(bucket.hold_until, now + min(retry_after, self.window_seconds))
                return
            bucket.hold_until = max(bucket.hold_until, now + self.hold_seconds)
            bucket.tokens = min(bucket.tokens, 0.0)
            bucket.rate = max(self.max_rate * MIN_SHARE, bucket.rate * DECREASE)
            bucket.throttled_at = now

    def accepted(self, key: str) -> None:
        """PagerDuty accepted an event for ``key``: win back a little of the rate."""
        with self._lock:
            bucket = self._bucket(key)
            bucket.rate = min(self.max_rate, bucket.rate + self.max_rate * INCREASE)

    def rate(self, key: str) -> float:
        """This container's current rate for ``key``, in events per second."""
        with self._lock:
            return self._bucket(key).rate

    def _bucket(self, key: str) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(rate=self.max_rate, tokens=self.burst, updated=self._clock())
        return bucket

    def _delay(self, bucket: _Bucket, now: float) -> float:
        """Refill ``bucket`` up to ``now`` (nothing accrues while held) and say how long until a token."""
        if bucket.throttled_at is not None and now - bucket.throttled_at >= self.recovery_seconds:
            bucket.rate, bucket.throttled_at = self.max_rate, None  # quiet for long enough: the storm is over
        since = max(bucket.updated, bucket.hold_until)
        if now > since:
            bucket.tokens = min(self.burst, bucket.tokens + (now - since) * bucket.rate)
        bucket.updated = max(bucket.updated, now)
        held = max(0.0, bucket.hold_until - now)
        missing = 1.0 - bucket.tokens
        return held + (0.0 if missing <= _EPSILON else missing / bucket.rate)
