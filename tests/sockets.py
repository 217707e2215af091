"""Raw local servers for what no well-behaved HTTP server does: answers that stall, trickle or never
come, connections that die. Each test's server says only what a connection gets."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class LocalServer:
    """A listening socket on a free local port, each accepted connection handed to ``accepted`` on a
    thread of its own until ``close``. ``stop`` is set on close: a handler holding a connection open
    waits on it."""

    path = ""
    """What follows the port in ``url``."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}{self.path}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.accepted, args=(conn,), daemon=True).start()

    def accepted(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def read_request(conn: socket.socket) -> bool:
    """Read one whole HTTP request (its headers, then its ``Content-Length`` of body); whether one came."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def within(seconds: float, call: Callable[[], T]) -> list[T]:
    """``[call()]`` when it returns within ``seconds``, else ``[]`` (it runs on, on a daemon thread): a
    test of something that may hang on a stalled server ends either way."""
    returned: list[T] = []
    worker = threading.Thread(target=lambda: returned.append(call()), daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    return returned


Answer = Callable[[socket.socket, threading.Event], None]


class ScriptedServer(LocalServer):
    """Answers the n-th request it reads with the n-th of ``answers`` (on any connection)."""

    path = "/v2/enqueue"

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = iter(answers)
        self.requests = 0
        super().__init__()

    def accepted(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while read_request(conn):
                self.requests += 1
                answer = next(self.answers, None)
                if answer is None:
                    return
                answer(conn, self.stop)
