"""Storm benchmark: an alarm storm against PagerDuty's rate limit — nothing lost, nothing duplicated.

Usage::

    .venv/bin/python tests/benchmarks/storm.py                   # 1,000 notifications, 200 alarms, about 40 s
    .venv/bin/python tests/benchmarks/storm.py --time-scale 10 --workers 5 --seed 7

What runs: 1,000 CloudWatch alarm notifications (SNS events) across 200 alarms, each alarm flapping
ALARM → OK → ALARM … (2 to 9 state changes, its latest state decides what PagerDuty must show), arriving
in time order as one burst. Five workers stand for five concurrent Lambda containers (the stack's
reserved concurrency): each has its own runtime as the Lambda builds it (``Runtime.notifications()``:
a real ``EventsClient`` with its retry policy, time budget and pacer), its own connection to one
shared SQLite incident store, and calls ``process_event`` — the handler's path — with the handler's
budget. The PagerDuty stand-in (``FakePagerDuty``, in its own process on loopback) accepts 120 events
per minute per routing key (one key, as the Lambda has) over a sliding window and answers 429 beyond.

Time is scaled (``--time-scale``, default 20: a PagerDuty minute lasts 3 s) so the storm takes well under
a minute; the retry budget (30 s), the pacer's window and hold, and Lambda's retry delays (about 1 and
2 minutes, then the on-failure destination, re-driven here every 2 minutes) are scaled alike. The
client's own backoff steps (0.5 s, 1 s …) are not scaled: against the shrunk window they are relatively
longer, so without pacing the client retries less often than it would at full scale and "requests per
delivered event" is on the low side. ``--no-pacing`` runs the same storm with the pacer out of the way
(an unlimited one), for comparison.

The bound: PagerDuty accepts at most 120 events a minute per key, so N delivered events need at least
N / 120 minutes; the drain time is reported against it.

A notification whose invocation fails with a retryable error (429 beyond the budget, a concurrent
delivery in flight) is invoked again as Lambda would; at most ``--max-attempts`` times.

Printed: notifications handled, PagerDuty events delivered (accepted), lost (an alarm whose latest state
is ALARM without an open alert on the stand-in, or OK with one), duplicated (a notification accepted more
than once, a trigger accepted twice for one state change, or accepted events the bridge never saw),
PagerDuty requests per delivered event, wall time and events per minute achieved. Exits 1 when something
was lost, duplicated or left unfinished, else 0. Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import ROUTING_KEY, alarm_event, load_average, machine_line, stand_in, stand_in_control

from pagerduty_bridge.pacing import WINDOW_SECONDS, Pacer

PAGERDUTY_LIMIT_PER_MINUTE = 120
LAMBDA_RETRY_DELAYS_SECONDS = (60.0, 120.0)
"""Lambda's asynchronous retries: about a minute, then two; afterwards the on-failure destination."""
REDRIVE_DELAY_SECONDS = 120.0
RETRY_BUDGET_SECONDS = 30.0


class NoPacing(Pacer):
    """The client as it was before pacing: every send goes at once; 429s are only retried into."""

    def acquire(self, key: str, deadline: float | None = None) -> bool:
        return True

    def delay(self, key: str) -> float:
        return 0.0

    def throttled(self, key: str, retry_after: float | None = None) -> None:
        return None

    def accepted(self, key: str) -> None:
        return None


@dataclass
class Job:
    """One notification: its SNS event and what became of it."""

    index: int
    alarm: str
    state: str
    when: datetime
    event: dict[str, Any]
    attempts: int = 0
    reasons: list[str] = field(default_factory=list)
    accepted: int = 0
    dedup_key: str | None = None
    done: bool = False
    permanent_error: str | None = None


class Dispatcher:
    """Hands out notifications in arrival order and re-invocations when they are due (thread-safe)."""

    def __init__(self, jobs: list[Job], time_scale: float, max_attempts: int, deadline: float) -> None:
        self._fresh = list(reversed(jobs))
        self._retries: list[tuple[float, int, Job]] = []
        self._sequence = itertools.count()
        self._in_flight = 0
        self._condition = threading.Condition()
        self.time_scale = time_scale
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.gave_up: list[Job] = []

    def next(self) -> Job | None:
        """The next invocation to run; None once everything is finished (or the deadline passed)."""
        with self._condition:
            while True:
                now = time.monotonic()
                if now >= self.deadline:
                    return None
                if self._retries and self._retries[0][0] <= now:
                    job = heapq.heappop(self._retries)[2]
                elif self._fresh:
                    job = self._fresh.pop()
                elif not self._retries and self._in_flight == 0:
                    return None
                else:
                    due = self._retries[0][0] if self._retries else now + 0.5
                    self._condition.wait(timeout=max(0.01, min(due - now, 0.5, self.deadline - now)))
                    continue
                self._in_flight += 1
                return job

    def finish(self, job: Job, *, retry: bool) -> None:
        with self._condition:
            self._in_flight -= 1
            if retry:
                if job.attempts >= self.max_attempts:
                    self.gave_up.append(job)
                else:
                    steps = LAMBDA_RETRY_DELAYS_SECONDS
                    delay = steps[job.attempts - 1] if job.attempts <= len(steps) else REDRIVE_DELAY_SECONDS
                    due = time.monotonic() + delay / self.time_scale
                    heapq.heappush(self._retries, (due, next(self._sequence), job))
            self._condition.notify_all()

    @property
    def unfinished(self) -> int:
        with self._condition:
            return len(self._fresh) + len(self._retries) + self._in_flight


def storm_jobs(alarms: int, notifications: int, seed: int) -> list[Job]:
    """ALARM/OK flapping histories for ``alarms`` alarms, ``notifications`` in all, in arrival (time) order."""
    if notifications < alarms * 2:
        raise SystemExit("need at least two notifications per alarm")
    rng = random.Random(seed)
    lengths = [notifications // alarms] * alarms
    for i in range(notifications - sum(lengths)):
        lengths[i % alarms] += 1
    for _ in range(alarms * 4):  # spread the lengths (2 to 9) keeping the total
        a, b = rng.randrange(alarms), rng.randrange(alarms)
        if lengths[a] > 2 and lengths[b] < 9:
            lengths[a] -= 1
            lengths[b] += 1
    start = datetime(2025, 1, 14, 15, 0, tzinfo=UTC)
    jobs: list[Job] = []
    for number, length in enumerate(lengths):
        name = f"storm-{number:03d}-cpu-high"
        when = start + timedelta(seconds=rng.uniform(0, 60))
        for step in range(length):
            state = "ALARM" if step % 2 == 0 else "OK"
            jobs.append(Job(0, name, state, when, alarm_event(name, state, when)))
            when += timedelta(seconds=rng.uniform(30, 300))
    jobs.sort(key=lambda job: job.when)
    for index, job in enumerate(jobs):
        job.index = index
    return jobs


class ObservedSender:
    """Wraps a container's ``EventsClient``: counts, per notification, the events PagerDuty accepted."""

    def __init__(self, inner: Any, current: threading.local, lock: threading.Lock) -> None:
        self._inner = inner
        self._current = current
        self._lock = lock

    def send_body(self, body: dict[str, Any], *, budget_seconds: float | None = None) -> Any:
        response = self._inner.send_body(body, budget_seconds=budget_seconds)
        job: Job | None = getattr(self._current, "job", None)
        if job is not None:
            with self._lock:
                job.accepted += 1
        return response


def run_worker(
    dispatcher: Dispatcher,
    make_notifications: Callable[[], Any],
    current: threading.local,
    lock: threading.Lock,
    invocations: Counter[str],
) -> None:
    from pagerduty_bridge.processing import process_event

    notifications = make_notifications()
    delivery = notifications.delivery
    delivery.sender = ObservedSender(delivery.sender, current, lock)
    while (job := dispatcher.next()) is not None:
        current.job = job
        job.attempts += 1
        retry = False
        try:
            result = process_event(job.event, notifications)
            record = result.results[0]
            if record.outcome is not None and record.outcome.dedup_key:
                job.dedup_key = record.outcome.dedup_key
            if record.error is None:
                job.done = True
                job.reasons.append(record.outcome.reason if record.outcome else "?")
            elif record.error.retryable:
                retry = True
                job.reasons.append(f"retry: {type(record.error).__name__}")
            else:
                job.done = True
                job.permanent_error = str(record.error)
                job.reasons.append("permanent error")
        finally:
            current.job = None
            with lock:
                invocations["invocations"] += 1
            dispatcher.finish(job, retry=retry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alarms", type=int, default=200)
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--time-scale", type=float, default=20.0, help="PagerDuty minutes per real minute")
    parser.add_argument("--workers", type=int, default=5, help="concurrent Lambda containers (default 5)")
    parser.add_argument("--max-attempts", type=int, default=12, help="invocations per notification at most")
    parser.add_argument("--deadline", type=float, default=300.0, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-pacing", action="store_true", help="send without pacing, for comparison")
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # failed deliveries are counted, not printed
    logging.getLogger("pagerduty_bridge").setLevel(logging.CRITICAL)

    from pagerduty_bridge.events_api import EventsClient
    from pagerduty_bridge.runtime import Runtime
    from pagerduty_bridge.settings import Settings
    from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

    jobs = storm_jobs(args.alarms, args.notifications, args.seed)
    budget = max(1.0, RETRY_BUDGET_SECONDS / args.time_scale)
    minute = 60.0 / args.time_scale
    lengths = Counter(job.alarm for job in jobs).values()
    print("pagerduty-bridge storm benchmark")
    print(f"machine: {machine_line()}; load average {load_average()}")
    print(
        f"{len(jobs)} notifications across {args.alarms} alarms (ALARM/OK flapping, {min(lengths)}–{max(lengths)} "
        f"state changes each) → {args.workers} concurrent containers (process_event, real EventsClient, one "
        f"shared SQLite store) → PagerDuty stand-in at {PAGERDUTY_LIMIT_PER_MINUTE} events/minute per routing "
        f"key; time scaled {args.time_scale:g}×: a minute lasts {minute:.1f} s, retry budget {budget:.1f} s, "
        f"Lambda's retries after {LAMBDA_RETRY_DELAYS_SECONDS[0] / args.time_scale:.1f} s and "
        f"{LAMBDA_RETRY_DELAYS_SECONDS[1] / args.time_scale:.1f} s, then re-driven every "
        f"{REDRIVE_DELAY_SECONDS / args.time_scale:.1f} s; "
        + ("no pacing" if args.no_pacing else f"paced per container (the pacer's window {minute:.1f} s)")
    )
    with (
        tempfile.TemporaryDirectory(prefix="pagerduty-bridge-storm-") as tmp,
        stand_in(rate_limit=PAGERDUTY_LIMIT_PER_MINUTE, time_scale=args.time_scale) as url,
    ):
        state = Path(tmp) / "incidents.db"
        settings = Settings.from_env(
            {"PAGERDUTY_INTEGRATION_KEY": ROUTING_KEY},
            events_url=url,
            retry_budget_seconds=budget,
            environment="production",
        )

        def make_notifications() -> Any:
            notifications = Runtime(settings=settings, store=SQLiteIncidentStore(state)).notifications()
            # Each container's client as the runtime builds it, with the pacer on the storm's clock.
            pacer = NoPacing() if args.no_pacing else Pacer(window_seconds=WINDOW_SECONDS / args.time_scale)
            notifications.delivery.sender = EventsClient(url, retry_budget_seconds=budget, pacer=pacer)
            return notifications

        make_notifications()  # creates the schema before the workers race for it
        started = time.monotonic()
        dispatcher = Dispatcher(jobs, args.time_scale, args.max_attempts, started + args.deadline)
        current, lock, invocations = threading.local(), threading.Lock(), Counter[str]()
        threads = [
            threading.Thread(
                target=run_worker,
                args=(dispatcher, make_notifications, current, lock, invocations),
                name=f"container-{n}",
                daemon=True,
            )
            for n in range(args.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.deadline + 60)
        wall = time.monotonic() - started
        requests = [r for r in stand_in_control(url, "requests")["requests"] if r["path"] == "/v2/enqueue"]
        alerts = stand_in_control(url, "alerts")["alerts"]
        pending = sum(1 for incident in SQLiteIncidentStore(state).list_all() if incident.pending_action is not None)
    return report(jobs, dispatcher, invocations, requests, alerts, pending, wall, args.time_scale)


def report(
    jobs: list[Job],
    dispatcher: Dispatcher,
    invocations: Counter[str],
    requests: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    pending: int,
    wall: float,
    time_scale: float,
) -> int:
    statuses = Counter(r["status"] for r in requests)
    accepted = statuses.get(202, 0)
    latest: dict[str, Job] = {}
    keys: dict[str, str] = {}
    for job in jobs:
        if job.alarm not in latest or job.when > latest[job.alarm].when:
            latest[job.alarm] = job
        if job.dedup_key:
            keys[job.alarm] = job.dedup_key
    status_by_key = {alert["dedup_key"]: alert["status"] for alert in alerts}
    lost_alarm = [
        a
        for a, j in latest.items()
        if j.state == "ALARM" and status_by_key.get(keys.get(a, "")) not in ("triggered", "acknowledged")
    ]
    lost_ok = [
        a
        for a, j in latest.items()
        if j.state == "OK" and status_by_key.get(keys.get(a, "")) in ("triggered", "acknowledged")
    ]
    seen: Counter[tuple[str, str]] = Counter()
    for r in requests:
        body = r.get("body")
        if r["status"] == 202 and isinstance(body, dict) and body.get("event_action") == "trigger":
            details = (body.get("payload") or {}).get("custom_details") or {}
            seen[(str(body.get("dedup_key")), str(details.get("stateChangeTime")))] += 1
    twice = sum(n - 1 for n in seen.values() if n > 1)
    over_accepted = sum(job.accepted - 1 for job in jobs if job.accepted > 1)
    client_accepted = sum(job.accepted for job in jobs)
    unseen = max(0, accepted - client_accepted)
    quiet_reasons = Counter(
        job.reasons[-1] for job in jobs if job.done and not job.accepted and not job.permanent_error
    )
    delivered = sum(1 for job in jobs if job.accepted)
    quiet = sum(1 for job in jobs if job.done and not job.accepted and not job.permanent_error)
    permanent = [job for job in jobs if job.permanent_error]
    unfinished = [job for job in jobs if not job.done]
    redriven = sum(1 for job in jobs if job.done and job.attempts > 1 + len(LAMBDA_RETRY_DELAYS_SECONDS))
    attempts = Counter(min(job.attempts, 4) for job in jobs if job.done)
    lost = len(lost_alarm) + len(lost_ok)
    duplicated = over_accepted + twice + unseen
    scaled_minutes = wall * time_scale / 60.0

    print()
    print(
        f"notifications handled:    {len(jobs) - len(unfinished)} of {len(jobs)} — {delivered} delivered (PagerDuty "
        f"accepted their event), {quiet} needed none "
        f"({', '.join(f'{reason} {n}' for reason, n in quiet_reasons.most_common()) or '-'}); "
        f"permanent errors {len(permanent)}, gave up {len(dispatcher.gave_up)}, unfinished {len(unfinished)}"
    )
    print(
        f"invocations:              {sum(invocations.values())} — notifications done on the 1st invocation "
        f"{attempts.get(1, 0)}, 2nd {attempts.get(2, 0)}, 3rd {attempts.get(3, 0)}, after re-drive {redriven}"
    )
    print(
        f"PagerDuty requests:       {len(requests)} — accepted (202) {accepted}, throttled (429) {statuses.get(429, 0)}, "
        f"other {len(requests) - accepted - statuses.get(429, 0)}"
    )
    print(f"delivered events:         {accepted}")
    print(
        f"requests per delivered event: {len(requests) / accepted:.2f}"
        if accepted
        else "requests per delivered event: -"
    )
    print(
        f"lost:                     {lost} (latest state ALARM without an open alert: {len(lost_alarm)}; "
        f"latest state OK with an open alert: {len(lost_ok)})"
    )
    print(
        f"duplicated:               {duplicated} (notifications accepted more than once: {over_accepted}; "
        f"triggers accepted twice for one state change: {twice}; accepted events the bridge did not see: {unseen})"
    )
    print(f"left pending in the table: {pending}")
    bound = accepted / PAGERDUTY_LIMIT_PER_MINUTE
    print(
        f"drain time:               {wall:.1f} s = {scaled_minutes:.1f} PagerDuty minutes at {time_scale:g}×, "
        f"against the bound of {bound:.1f} minutes ({accepted} events at {PAGERDUTY_LIMIT_PER_MINUTE} a minute): "
        f"{scaled_minutes / bound:.2f} × the bound"
        if bound
        else f"drain time: {wall:.1f} s"
    )
    print(f"events per minute achieved: {accepted / scaled_minutes:.1f} (limit {PAGERDUTY_LIMIT_PER_MINUTE})")
    summary = {
        "requests": len(requests),
        "delivered": accepted,
        "throttled": statuses.get(429, 0),
        "requests_per_event": len(requests) / accepted if accepted else None,
        "lost": lost,
        "duplicated": duplicated,
        "pending": pending,
        "unfinished": len(unfinished),
        "drain_minutes": scaled_minutes,
        "bound_minutes": bound,
    }
    print("STORM-SUMMARY " + json.dumps(summary))
    problems = []
    if lost:
        problems.append(f"LOST {lost}: " + ", ".join((lost_alarm + lost_ok)[:5]))
    if duplicated:
        problems.append(f"DUPLICATED {duplicated}")
    if unfinished or dispatcher.gave_up:
        problems.append(f"UNFINISHED {len(unfinished)} (gave up on {len(dispatcher.gave_up)})")
    if pending:
        problems.append(f"PENDING {pending}")
    if problems:
        print("RESULT: FAIL — " + "; ".join(problems))
        return 1
    print("RESULT: all delivered, none lost, none duplicated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
