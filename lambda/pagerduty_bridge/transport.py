"""HTTP exchanges with PagerDuty on the standard library's ``http.client``: keep-alive connections per
origin, each answer's head read within one read timeout and its body within the caller's deadline,
interim answers skipped, redirects never followed. The retry policy is urllib3's ``Retry``
(``events_api.BudgetedRetry``), driven here as urllib3's own pool drives it: connect errors, answers lost
after the request went out (``ReadTimeoutError``, ``ProtocolError``: the request may have been processed)
and retried statuses each count against their own limit, and the last answer is returned when the
retries are spent.

Why not urllib3's pool: one notification's send through ``HTTPConnectionPool.urlopen`` and its
response object cost about twice what the same exchange costs on ``http.client`` (README, Performance),
and a page is a single small POST on a connection the bridge keeps itself.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
    URLSchemeUnknown,
)
from urllib3.util.retry import Retry

MAX_ANSWER_BYTES: Final = 64 * 1024
"""The most of an answer the bridge reads. PagerDuty's are a few hundred bytes (a 400 lists its errors);
more is someone else's (a proxy's page, a stream), and reading all of it could exhaust the function's
memory or outlast its budget."""
LATE_READS: Final = 2
"""Reads of an answer's body once the deadline is past: what came with the headers, then its end."""
LATE_READ_SECONDS: Final = 0.05
"""How long each of those reads waits: only for what is already on its way."""
MAX_IDLE_SECONDS: Final = 30.0
"""Connections idle longer than this are not used again: load balancers close theirs after about a
minute and NATs forget them, and a container frozen meanwhile never hears of it. A page sent on such
a connection waits out its read timeout, its outcome unknown, though PagerDuty never saw it; a new
connection costs one TLS handshake."""
MAX_IDLE_CONNECTIONS: Final = 8
"""Idle connections kept per origin: one per thread sending at once."""
MAX_HEAD_LINE_BYTES: Final = 65536
"""The longest line of an interim answer's head the bridge reads (``http.client``'s own bound)."""
INTERIM_STATUSES: Final = range(100, 200)
SWITCHING_PROTOCOLS: Final = 101
USER_AGENT: Final = "pagerduty-bridge"
METHOD: Final = "POST"
"""The only request the bridge makes (safe to send again: PagerDuty deduplicates by ``dedup_key``)."""


class _ReadsWithin(io.RawIOBase):
    """A socket's reads, each waiting at most until ``end`` (monotonic seconds), and never longer than
    the read timeout: first the answer's head (within one read timeout of its start), then, once
    ``read_answer`` says how long it waits (``until``), its body.

    ``http.client`` makes many reads of the socket within one read of its own, each waiting the whole
    read timeout: a server or proxy trickling the status line and headers a byte every few seconds (or
    an endless run of ``100 Continue``), or sending trailer lines after the last chunk without end, held
    one send for minutes, far past what the invocation's deadline counts on."""

    def __init__(self, sock: socket.socket, seconds: float | None) -> None:
        super().__init__()
        self.sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # holds the socket open, as http.client's own file does
        self._timeout = seconds
        self._end = None if seconds is None else time.monotonic() + seconds

    def until(self, end: float | None) -> None:
        """Reads from now on end by ``end`` (``None``: each waits its read timeout)."""
        self._end = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self._end is not None:
            left = self._end - time.monotonic()
            if left <= 0:
                raise TimeoutError("the answer did not come in time")
            self.sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class Answer(http.client.HTTPResponse):
    """``http.client``'s answer, its head read within one read timeout (``_ReadsWithin``), and every
    interim answer before it skipped: ``http.client`` skips only ``100 Continue``, and took a proxy's
    ``103 Early Hints`` or ``102 Processing`` for the answer (a failure, each time), leaving the real
    one unread on the connection. ``release_conn`` gives its connection back for the next request when
    the answer was read to its end, and closes it otherwise."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.reads = _ReadsWithin(sock, sock.gettimeout())
        self.fp.close()  # http.client's own file, unread: the one above holds the socket now
        self.fp = io.BufferedReader(self.reads)
        self.on_release: Callable[[bool], None] | None = None
        self.cut = False

    def begin(self) -> None:
        try:
            super().begin()
        finally:
            self.reads.until(None)  # the body's reads are read_answer's to bound

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not (INTERIM_STATUSES.start < status < INTERIM_STATUSES.stop) or status == SWITCHING_PROTOCOLS:
                return version, status, reason  # 100 is http.client's to skip; 101 is no answer the bridge asked for
            while self.fp.readline(MAX_HEAD_LINE_BYTES) not in (b"\r\n", b"\n", b""):
                pass  # the interim answer's headers

    def read1(self, n: int = -1) -> bytes:
        data = super().read1(n)
        if self.length == 0 and not self.chunked and self.fp is not None:
            # Read to its end: done with, as http.client's read() would say (its read1 waits for one more
            # read that finds nothing), so the connection can take the next request.
            http.client.HTTPResponse.close(self)
        return data

    def get_redirect_location(self) -> bool:
        """No redirect is ever followed (urllib3's ``Retry`` asks): it would hand another host the key."""
        return False

    def close(self) -> None:
        if not self.isclosed():
            self.cut = True  # closed before its end: what is left of it is unread on the connection
        super().close()

    def release_conn(self) -> None:
        release, self.on_release = self.on_release, None
        if release is not None:
            release(self.isclosed() and not self.cut)


class _Connection(http.client.HTTPConnection):
    response_class = Answer


class _TLSConnection(http.client.HTTPSConnection):
    response_class = Answer


Connection = _Connection | _TLSConnection


@dataclass(frozen=True, slots=True)
class Target:
    """Where one URL's requests go: its origin (scheme, host, port) and the path requested there."""

    url: str
    tls: bool
    host: str
    port: int
    path: str

    @classmethod
    def of(cls, url: str) -> Target:
        parsed = urllib3.util.parse_url(url)
        scheme = (parsed.scheme or "").lower()
        if scheme not in ("http", "https") or not parsed.host:
            raise URLSchemeUnknown(scheme or url)
        port = parsed.port or (443 if scheme == "https" else 80)
        return cls(url, scheme == "https", parsed.host.strip("[]"), port, parsed.request_uri)


def _dropped(conn: Connection) -> bool:
    """Whether a kept connection is gone: closed, or its peer closed it (or sent what nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        poller = select.poll()  # not select(): it takes no descriptor above 1023
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class Connections:
    """Keep-alive connections per origin: one TLS handshake per busy spell of a container, not per
    event. A connection idle past ``MAX_IDLE_SECONDS`` (wall-clock: a frozen container's monotonic clock
    may not count the time it was frozen), or closed by its peer meanwhile, is not used again.
    Thread-safe: each sending thread takes a connection of its own."""

    def __init__(self, ca_certs: str | None = None) -> None:
        self._ca_certs = ca_certs
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[tuple[bool, str, int], list[tuple[Connection, float]]] = {}
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()

    def target(self, url: str) -> Target:
        """``url`` parsed once (not for every page)."""
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = Target.of(url)
        return target

    def take(self, target: Target) -> Connection:
        """A kept connection to ``target``'s origin that is still alive, else a new (unconnected) one."""
        now = time.time()
        with self._lock:
            idle = self._idle.get((target.tls, target.host, target.port)) or []
            while idle:
                conn, since = idle.pop()
                if now - since <= MAX_IDLE_SECONDS and not _dropped(conn):
                    return conn
                conn.close()
        if target.tls:
            return _TLSConnection(target.host, target.port, context=self.tls_context())
        return _Connection(target.host, target.port)

    def give_back(self, target: Target, conn: Connection, reusable: bool) -> None:
        """Keep ``conn`` for the next request when its last answer was read to its end, else close it."""
        if not reusable or conn.sock is None:
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault((target.tls, target.host, target.port), [])
            if len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append((conn, time.time()))
                return
        conn.close()

    def tls_context(self) -> ssl.SSLContext:
        """Certificates and host names verified against ``ca_certs``; TLS 1.2 at least."""
        if self._tls is None:
            context = ssl.create_default_context(cafile=self._ca_certs)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._tls = context
        return self._tls

    def clear(self) -> None:
        """Close every kept connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for kept in idle.values():
            for conn, _ in kept:
                conn.close()

    def kept(self) -> int:
        """How many idle connections are kept."""
        with self._lock:
            return sum(len(kept) for kept in self._idle.values())


def exchange(
    connections: Connections, target: Target, body: bytes, timeouts: tuple[float, float], retry: Retry
) -> Answer:
    """POST ``body`` to ``target`` until an answer that is not to be retried comes, or ``retry`` is spent
    (``MaxRetryError``; the last answer is returned when only retried statuses came). The answer's body
    is the caller's to read (``read_answer``), which gives its connection back."""
    while True:
        conn = connections.take(target)
        try:
            answer = _attempt(conn, target, body, timeouts)
        except (ConnectTimeoutError, SSLError, ProtocolError, ReadTimeoutError) as error:
            conn.close()
            retry = retry.increment(METHOD, target.url, error=error, _stacktrace=error.__traceback__)
            retry.sleep()
            continue
        answer.on_release = lambda reusable, conn=conn: connections.give_back(target, conn, reusable)
        if not retry.is_retry(METHOD, answer.status, bool(answer.getheader("Retry-After"))):
            return answer
        try:
            retry = retry.increment(METHOD, target.url, response=answer)  # type: ignore[arg-type]
        except MaxRetryError:
            if retry.raise_on_status:
                raise
            return answer
        answer.release_conn()  # drained by the retry policy, or closed
        retry.sleep(answer)  # type: ignore[arg-type]


def _attempt(conn: Connection, target: Target, body: bytes, timeouts: tuple[float, float]) -> Answer:
    """One request and its answer's head. A failure before the request went out is a connect error (it
    was not sent); after, an answer lost (``ReadTimeoutError``, ``ProtocolError``): it may have been."""
    connect_timeout, read_timeout = timeouts
    if conn.sock is None:
        conn.timeout = connect_timeout
        try:
            conn.connect()
        except TimeoutError as exc:
            raise ConnectTimeoutError(f"connection to {target.host} timed out ({connect_timeout} s)") from exc
        except ssl.SSLError as exc:  # the certificate, the host name, the handshake
            raise SSLError(exc) from exc
        except OSError as exc:
            raise NewConnectionError(conn, f"failed to connect to {target.host}: {exc}") from exc  # type: ignore[arg-type]
    conn.timeout = read_timeout
    try:
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout)
        conn.request(
            METHOD,
            target.path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        answer = conn.getresponse()
    except TimeoutError as exc:
        raise ReadTimeoutError(None, target.url, f"read timed out ({read_timeout} s)") from exc  # type: ignore[arg-type]
    except (OSError, http.client.HTTPException) as exc:
        raise ProtocolError("Connection aborted.", exc) from exc
    assert isinstance(answer, Answer)
    return answer


def read_answer(response: Answer, deadline: float | None) -> tuple[bytes, str | None]:
    """``response``'s body, and why it stopped short if it did: at ``MAX_ANSWER_BYTES``, at ``deadline``,
    or broken off. Each read waits at most until ``deadline`` (a body trickled a byte at a time, or held
    back after its headers, would otherwise hold the send past what the invocation's deadline counts on:
    a whole read timeout more); past it, ``LATE_READS`` reads of ``LATE_READ_SECONDS`` each take what
    already came, so an answer that came whole just after the deadline still counts. A connection not
    read to its end is closed, so nothing left of this answer reaches the next request."""
    chunks: list[bytes] = []
    size = 0
    short: str | None = None
    late_reads = 0
    try:
        while not response.isclosed():
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    late_reads += 1
                    if late_reads > LATE_READS:
                        short = "still coming when the retry budget ran out"
                        break
                _wait_at_most(response, max(left, LATE_READ_SECONDS))
            chunk = response.read1(MAX_ANSWER_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                short = f"longer than {MAX_ANSWER_BYTES} bytes"
                break
    except (OSError, http.client.HTTPException) as exc:
        late = deadline is not None and time.monotonic() >= deadline
        short = "still coming when the retry budget ran out" if late else f"broken off ({type(exc).__name__})"
    if short is not None:
        response.close()
    response.release_conn()
    return b"".join(chunks)[:MAX_ANSWER_BYTES], short


def _wait_at_most(response: Answer, seconds: float) -> None:
    """Have the next read of ``response`` wait at most ``seconds`` (never longer than its read timeout):
    the timeout of its connection's socket and the end of every read of the socket that read makes."""
    reads = getattr(response, "reads", None)
    if isinstance(reads, _ReadsWithin):
        reads.until(time.monotonic() + seconds)
        current = reads.sock.gettimeout()
        reads.sock.settimeout(seconds if current is None else min(current, seconds))
