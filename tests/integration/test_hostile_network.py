"""PagerDuty's Events API through a hostile or broken network, over real local sockets: answers whose
status line and headers trickle in, interim answers that never end, and more. A send must end within
``send_seconds`` of its budget (what the invocation's deadline counts on), keep an event whose fate is
unknown for retry, and never put the routing key in what it raises."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pagerduty_bridge.errors import PagerDutyDeliveryError
from pagerduty_bridge.processing import send_seconds
from tests.integration.test_hostile_budget import Answer, ScriptedServer, send
from tests.integration.test_odd_answers import BODY

SLACK_SECONDS = 2.0
"""What a loaded machine may add to a send's longest time."""


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Answer]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(answers: list[Answer]) -> ScriptedServer:
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


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
