"""Answers no PagerDuty gives, over real HTTP: a body that never ends or comes a byte at a time (a proxy
streaming, a broken middlebox). The send must end within its budget, read no more than an answer can
be, and keep the event for retry (PagerDuty may have taken it: the send is ambiguous)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from pagerduty_bridge.errors import PagerDutyDeliveryError
from pagerduty_bridge.events_api import EventsClient
from pagerduty_bridge.transport import MAX_ANSWER_BYTES
from tests.sockets import LocalServer, within

BODY = {
    "routing_key": "R0123456789abcdef0123456789abcdef",
    "event_action": "trigger",
    "dedup_key": "k",
    "payload": {"summary": "s", "source": "x", "severity": "critical"},
}


class RawServer(LocalServer):
    """Hands each connection to ``answer(conn)`` once its request is read; counts the bytes it wrote."""

    path = "/v2/enqueue"

    def __init__(self, answer: Callable[[socket.socket, RawServer], None]) -> None:
        self.answer = answer
        self.sent = 0
        super().__init__()

    def accepted(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request (small: one read is enough here)
            with contextlib.suppress(OSError):  # the client hung up: what it should do
                self.answer(conn, self)

    def write(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket, RawServer], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Callable[[socket.socket, RawServer], None]) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def timed_send(url: str, budget: float, *, wait: float = 30) -> tuple[BaseException | None, float]:
    """One send of ``BODY`` with ``budget``: what it raised (``None`` when accepted), and how long it took."""

    def run() -> BaseException | None:
        try:
            EventsClient(url, retry_budget_seconds=budget).send_body(dict(BODY))
        except BaseException as exc:  # handed to the test
            return exc
        return None

    started = time.monotonic()
    outcome = within(wait, run)
    assert outcome, f"the send did not end within {wait:.0f} s"
    return outcome[0], time.monotonic() - started


def test_attack_a_body_trickled_a_byte_at_a_time_ends_the_send_within_its_budget(serve) -> None:  # type: ignore[no-untyped-def]
    def trickle(conn: socket.socket, server: RawServer) -> None:
        server.write(conn, b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while not server.stop.is_set():
            server.write(conn, b" ")
            time.sleep(0.05)  # each byte well within any read timeout: only a deadline on the whole read ends it

    server = serve(trickle)
    error, elapsed = timed_send(server.url, budget=2.0)
    assert isinstance(error, PagerDutyDeliveryError), error
    assert error.ambiguous, "PagerDuty may have taken the event: the send is ambiguous, kept for retry"
    assert error.retryable
    assert elapsed < 2.0 + 5


def test_attack_an_endless_answer_is_not_read_past_what_an_answer_can_be(serve) -> None:  # type: ignore[no-untyped-def]
    def flood(conn: socket.socket, server: RawServer) -> None:
        server.write(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000000000\r\n\r\n")
        chunk = b"<p>" + b"x" * 65533
        while not server.stop.is_set():
            server.write(conn, chunk)

    server = serve(flood)
    error, elapsed = timed_send(server.url, budget=20.0)
    assert isinstance(error, PagerDutyDeliveryError), error
    assert error.retryable
    assert "200" in str(error)
    assert elapsed < 10, "a flood is cut at once, not read until the budget runs out"
    time.sleep(0.2)
    # What the server wrote before the bridge hung up: the answer's cap plus what the sockets buffer.
    assert server.sent < MAX_ANSWER_BYTES + 16 * 1024 * 1024


def test_attack_a_trickled_answer_that_is_retried_leaves_the_budget_to_the_retry(serve) -> None:  # type: ignore[no-untyped-def]
    answers = iter(["trickle"])

    def answer(conn: socket.socket, server: RawServer) -> None:
        if next(answers, "accept") == "accept":
            body = b'{"status":"success","message":"Event processed","dedup_key":"k"}'
            head = f"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            server.write(conn, head.encode() + body)
            return
        server.write(
            conn, b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
        )
        while not server.stop.is_set():
            server.write(conn, b" ")
            time.sleep(0.05)

    server = serve(answer)
    error, elapsed = timed_send(server.url, budget=4.0)
    assert error is None, f"the retry after the 503 was not left the budget: {error}"
    assert elapsed < 4.0
