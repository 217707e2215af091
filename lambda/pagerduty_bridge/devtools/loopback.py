"""HTTP plumbing shared by the local stand-ins: a loopback-only threaded server that starts and stops fast.

The PagerDuty stand-in and the function URL adapter both serve HTTP on a loopback port for tests and
the CLI. Both need the same things the standard library's ``ThreadingHTTPServer`` does not give:
no reverse DNS at bind time, a shutdown that takes milliseconds rather than a poll interval, kept-alive
connections closed on stop, chunked request bodies, and a refusal to bind anything but loopback.
Standard library only, so a stand-in starts in milliseconds wherever Python runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import selectors
import socket
import socketserver
import sys
import threading
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

DEFAULT_HOST: Final = "127.0.0.1"
CONNECTION_IDLE_TIMEOUT_SECONDS: Final = 30.0
"""An idle keep-alive connection is closed after this, so handler threads do not pile up."""
ACCEPT_TIMEOUT_SECONDS: Final = 0.5
"""Bounds one accept when a pending connection vanished before it was accepted (a rare race)."""
CHUNK_LINE_LIMIT: Final = 1024
"""Longest chunk-size or trailer line read from a chunked body; anything longer is malformed."""
_CONTENT_LENGTH = re.compile(rb"[0-9]+")
"""RFC 9110 section 8.6: ``Content-Length = 1*DIGIT`` (no sign, no blanks or underscores inside)."""
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")
"""RFC 9112 section 7.1: ``chunk-size = 1*HEXDIG``. Python's ``int(…, 16)`` also takes ``-1``, which as a
length to read would mean "everything until the client closes": unbounded, past any limit."""


class BodyTooLargeError(Exception):
    """A request body larger than the caller's limit: it is not read."""


def loopback(host: str) -> tuple[str, socket.AddressFamily]:
    """The host as a loopback IP address and its family; anything else is refused, never bound.

    The stand-ins accept anything sent to them; binding a public interface would expose that.
    """
    address = DEFAULT_HOST if host == "localhost" else host
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address (127.0.0.1 or ::1), got {host!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"host must be a loopback IP address (127.0.0.1 or ::1), got {host!r}")
    return str(ip), socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    """The request body, by Content-Length or chunked transfer encoding.

    Raises ``BodyTooLargeError`` past ``limit`` bytes (before reading them) and ``ValueError`` on
    malformed framing, so a hostile client cannot make the test process allocate without bound.
    """
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(handler, limit)
    given = (handler.headers.get("Content-Length") or "0").strip().encode("utf-8", "replace")
    if not _CONTENT_LENGTH.fullmatch(given):
        raise ValueError(f"Content-Length must be digits, got {given!r}")
    length = int(given)
    if length > limit:
        raise BodyTooLargeError
    return handler.rfile.read(length)


def _read_chunked(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = handler.rfile.readline(CHUNK_LINE_LIMIT).split(b";")[0].strip()
        if not _CHUNK_SIZE.fullmatch(line):
            raise ValueError(f"chunk size must be hexadecimal digits, got {line[:32]!r}")
        size = int(line, 16)
        if size == 0:
            while handler.rfile.readline(CHUNK_LINE_LIMIT) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > limit:
            raise BodyTooLargeError
        parts.append(handler.rfile.read(size))
        handler.rfile.readline(CHUNK_LINE_LIMIT)  # the CRLF after each chunk


class LoopbackHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that skips reverse DNS, stops at once and closes its keep-alive connections.

    ``serve_forever`` notices a shutdown only when its poll interval elapses (0.5 s by default), which
    would dominate a test's run time; here a socket pair wakes the accept loop immediately.
    """

    daemon_threads = True
    timeout = ACCEPT_TIMEOUT_SECONDS
    request_queue_size = socket.SOMAXCONN
    """The listen backlog: socketserver's 5 reset clients beyond it when many connect at once (a storm
    of notifications), which a sender takes for an outcome it cannot know."""

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], family: socket.AddressFamily
    ) -> None:
        self.address_family = family
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, handler)

    def serve_until_woken(self) -> None:
        """Accept connections (each served on its own thread) until ``wake()``."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_reader in ready:
                    return
                self.handle_request()

    def wake(self) -> None:
        """End ``serve_until_woken``; callable from any thread."""
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def server_bind(self) -> None:
        """Bind without HTTPServer's ``socket.getfqdn`` lookup, which can take seconds (or leave loopback)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A client that reset its connection is not worth a traceback on stderr; anything else is."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every open connection, so a stopped server answers no pooled keep-alive request."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class ServerThread:
    """Runs one ``LoopbackHTTPServer`` on a daemon thread; ``stop`` returns once it no longer serves."""

    def __init__(self, server: LoopbackHTTPServer, name: str) -> None:
        self.server = server
        self._thread = threading.Thread(target=server.serve_until_woken, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close open connections and the listening socket."""
        self.server.wake()
        self._thread.join()
        self.server.close_connections()
        self.server.server_close()


def base_url(host: str, family: socket.AddressFamily, port: int) -> str:
    """``http://host:port`` with an IPv6 host in brackets."""
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return f"http://{shown}:{port}"


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive HTTP/1.1 handler that logs nothing and answers in one place (``send``)."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = CONNECTION_IDLE_TIMEOUT_SECONDS

    def setup(self) -> None:
        """Disable Nagle: headers and body go out in two writes, and delayed ACKs would add ~40 ms each."""
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default writes every request to stderr; the CLI prints its own masked lines."""

    def send(
        self, status: int, body: object, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None
    ) -> None:
        """Answer: a ``str`` as text, ``bytes`` as they are, None as nothing, anything else as JSON.

        ``headers`` may repeat a name (as a list of pairs) and override the content type. A client that
        went away (a timeout, say) is not an error: there is nobody to tell.
        """
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        bodiless = status in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED)
        data, content_type = _encode(body)
        try:
            self.send_response(status)
            if content_type and not bodiless and all(name.lower() != "content-type" for name, _ in pairs):
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(0 if bodiless else len(data)))
            for name, value in pairs:
                self.send_header(name, value)
            self.end_headers()
            if not bodiless and self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def drop(self) -> None:
        """Close the connection without a response: the client sees RemoteDisconnected or a reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _encode(body: object) -> tuple[bytes, str]:
    if body is None:
        return b"", ""
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"
