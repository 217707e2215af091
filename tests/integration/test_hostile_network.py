"""PagerDuty's Events API through a hostile or broken network, over real local sockets: answers whose
status line and headers trickle in, interim answers that never end, and more. A send must end within
``send_seconds`` of its budget (what the invocation's deadline counts on), keep an event whose fate is
unknown for retry, and never put the routing key in what it raises."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest

from pagerduty_bridge.errors import PagerDutyDeliveryError
from pagerduty_bridge.processing import Deadline, process_event, send_seconds
from pagerduty_bridge.runtime import Runtime
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.builders import assert_no_secret, sqs_alarm, sqs_event
from tests.conftest import OTHER_ROUTING_KEY, ROUTING_KEY
from tests.integration.test_hostile_budget import send
from tests.integration.test_odd_answers import BODY
from tests.sockets import Answer, ScriptedServer, within

SLACK_SECONDS = 2.0
"""What a loaded machine may add to a send's longest time."""


def trickled(data: bytes, every: float) -> Answer:
    """An answer that writes ``data`` a byte every ``every`` seconds (each byte well within any read
    timeout: only a bound on the whole answer ends it)."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        for byte in data:
            if stop.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(every)

    return answer


def assert_kept_unsent(error: BaseException | None) -> None:
    assert isinstance(error, PagerDutyDeliveryError), error
    assert error.retryable
    assert error.ambiguous, "the request went out and no whole answer came: PagerDuty may have taken it"
    assert BODY["routing_key"] not in str(error)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 400 + b"\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" * 40,
    ],
    ids=["status-and-headers", "endless-interim-answers"],
)
def test_attack_a_head_trickled_a_byte_at_a_time_ends_the_send_within_its_budget(scripted, answer: bytes) -> None:  # type: ignore[no-untyped-def]
    budget = 1.0
    server = scripted([trickled(answer, 0.2)] * 20)
    error, elapsed = send(server.url, budget)
    assert_kept_unsent(error)
    assert elapsed < send_seconds(budget) + SLACK_SECONDS, f"{elapsed:.1f}s"


ACCEPTED = b'{"status":"success","message":"Event processed","dedup_key":"k"}'


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.0 202 Accepted\r\nContent-Type: application/json\r\n\r\n" + ACCEPTED,
        b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n" + ACCEPTED,
        b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\n" + ACCEPTED[:-1] + b" " * 30000 + b"}",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s"
        % (len(ACCEPTED), ACCEPTED),
    ],
    ids=[
        "http-1.0-to-its-close",
        "connection-close",
        "connection-close-longer-than-a-buffer",
        "after-an-interim-answer",
    ],
)
def test_an_acceptance_read_to_the_connections_close_is_accepted(scripted, answer: bytes) -> None:  # type: ignore[no-untyped-def]
    def close_after(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_WR)

    server = scripted([close_after])
    error, _ = send(server.url, 2.0)
    assert error is None, error


class PerKeyServer(ScriptedServer):
    """Answers 429 (``Retry-After``: ``hold``) to the first ``refusals`` events for ``throttled`` (every
    one, by default) and accepts the others."""

    def __init__(self, throttled: str, hold: int, refusals: int | None = None) -> None:
        self.throttled, self.hold, self.refusals = throttled, hold, refusals
        self.bodies: list[tuple[float, dict[str, object]]] = []
        """Each event read, with when (monotonic seconds)."""
        super().__init__([])

    def accepted(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while True:
                body = read_body(conn)
                if body is None:
                    return
                self.bodies.append((time.monotonic(), body))
                if body.get("routing_key") == self.throttled and self.refusals != 0:
                    self.refusals = None if self.refusals is None else self.refusals - 1
                    answer = (
                        b'{"status":"throttle event","message":"Requests for this service are arriving too quickly"}'
                    )
                    status = f"429 Too Many Requests\r\nRetry-After: {self.hold}"
                else:
                    answer, status = ACCEPTED, "202 Accepted"
                head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
                conn.sendall(head.encode() + answer)


def read_body(conn: socket.socket) -> dict[str, object] | None:
    """One request's JSON body, or ``None`` once the connection closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    parsed = json.loads(body)
    assert isinstance(parsed, dict)
    return parsed


def payments_runtime(url: str) -> Runtime:
    """A bridge routing ``payments-*`` alarms to ``OTHER_ROUTING_KEY``, the rest to ``ROUTING_KEY``."""
    settings = Settings(
        integration_key=ROUTING_KEY,
        routing_keys={"payments": OTHER_ROUTING_KEY},
        alert_rules=json.dumps(
            {"rules": [{"name": "payments", "match": {"alarm_name": "payments-*"}, "routing_key": "payments"}]}
        ),
        events_url=url,
        retry_budget_seconds=10.0,
    )
    return Runtime(settings=settings, store=SQLiteIncidentStore())


def mixed_batch() -> tuple[list[dict[str, object]], list[dict[str, object]], dict[str, object]]:
    """Two ``payments-*`` records and two others, interleaved: (payments, others, the SQS event)."""
    throttled = [sqs_alarm(f"payments-{i}") for i in range(2)]
    others = [sqs_alarm(f"web-{i}") for i in range(2)]
    return throttled, others, sqs_event(*(record for pair in zip(throttled, others, strict=True) for record in pair))


def delivered(server: PerKeyServer, routing_key: str) -> dict[str, float]:
    """The alarms whose events for ``routing_key`` the server read, and when (the last time)."""
    return {str(b["dedup_key"]).split("-CPU")[0]: at for at, b in server.bodies if b["routing_key"] == routing_key}


def test_attack_a_throttled_routing_key_does_not_hold_back_the_pages_of_the_others_in_its_batch() -> None:
    """PagerDuty throttles one service's key (429, come back in 2 s, every time): each of its pages
    waited out its whole retry budget, and the pages after them, for another service, were not even
    started (back to the queue, minutes late). They are delivered now; the throttled key's records
    are tried again after them, with what is left, and go back to the queue when it still refuses."""
    server = PerKeyServer(OTHER_ROUTING_KEY, hold=2)
    runtime = payments_runtime(server.url)
    throttled, _, batch = mixed_batch()
    deadline = Deadline.after(20.0)  # the function timeout the stack gives a budget of 10 s, less its headroom
    started = time.monotonic()
    try:
        done = within(60, lambda: process_event(batch, runtime.notifications(), deadline=deadline))
    finally:
        server.close()
    assert done, "the batch did not end"
    failed = {f["itemIdentifier"] for f in done[0].batch_item_failures()}
    assert failed == {r["messageId"] for r in throttled}, "only the throttled key's records go back"
    web = delivered(server, ROUTING_KEY)
    assert sorted(web) == ["web-0", "web-1"], "every page of the other service is delivered"
    assert max(web.values()) - started < 3.0, "and at once, not after the throttled key's waits"
    remaining = deadline.remaining()
    assert remaining is not None and remaining > 0
    assert_no_secret(OTHER_ROUTING_KEY, *(r.error for r in done[0].results if r.error is not None))


def test_a_throttled_keys_records_tried_again_after_the_others_are_delivered_in_the_same_invocation() -> None:
    server = PerKeyServer(OTHER_ROUTING_KEY, hold=2, refusals=1)
    runtime = payments_runtime(server.url)
    _, _, batch = mixed_batch()
    metrics: list[str] = []
    try:
        done = within(
            60,
            lambda: process_event(
                batch, runtime.notifications(), deadline=Deadline.after(20.0), metric=lambda n, v, u: metrics.append(n)
            ),
        )
    finally:
        server.close()
    assert done, "the batch did not end"
    assert done[0].batch_item_failures() == [], "every page went through"
    web, payments = delivered(server, ROUTING_KEY), delivered(server, OTHER_ROUTING_KEY)
    assert sorted(payments) == ["payments-0", "payments-1"] and sorted(web) == ["web-0", "web-1"]
    assert max(web.values()) < min(payments.values()) + 1.0, "the other service's pages did not wait for the hold"
    assert [r.outcome.delivered for r in done[0].results if r.outcome is not None] == [True] * 4
    assert "DeliveryFailed" not in metrics, "a record delivered on its second try is no failure"


@pytest.mark.parametrize("interim", [b"103 Early Hints\r\nLink: </style.css>; rel=preload", b"102 Processing"])
def test_attack_an_interim_answer_before_the_acceptance_is_not_taken_for_the_answer(
    scripted,  # type: ignore[no-untyped-def]
    interim: bytes,
) -> None:
    """A proxy (or a CDN) that sends ``103 Early Hints`` or ``102 Processing`` before PagerDuty's answer:
    the interim answer was taken for the answer (a failure, every time: the page never went through)
    and PagerDuty's acceptance was left unread on the connection."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 " + interim + b"\r\n\r\n")
        time.sleep(0.2)
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s" % (len(ACCEPTED), ACCEPTED))

    server = scripted([answer])
    error, _ = send(server.url, 2.0)
    assert error is None, error
    assert server.requests == 1


def test_attack_an_endless_trailer_after_the_last_chunk_ends_the_send_within_its_budget(scripted) -> None:  # type: ignore[no-untyped-def]
    """A chunked acceptance whose last chunk is followed by trailer lines that never end (each line well
    within the read timeout): urllib3 reads trailers within one read of the body, which no deadline
    between reads could stop."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n" % (len(ACCEPTED), ACCEPTED)
        )
        while not stop.is_set():
            conn.sendall(b"X-Trailer: y\r\n" * 100)
            time.sleep(0.01)

    budget = 1.0
    server = scripted([answer])
    error, elapsed = send(server.url, budget)
    assert_kept_unsent(error)
    assert elapsed < send_seconds(budget) + SLACK_SECONDS, f"{elapsed:.1f}s"
