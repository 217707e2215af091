"""PagerDuty Events API v2: the wire bodies (each built in exactly one place) and the client.

The routing key stays out of ``PagerDutyEvent``: the client adds it when sending, so an event can be
logged, printed or stored without leaking it. Answers are classified once, here (the README's answer
table): only ``202`` with ``status: success`` is acceptance; any other 2xx or 3xx came from something
in between (a proxy's login page, a portal's redirect, which is never followed: it would hand another
host the routing key) and is a retryable failure; 429, 5xx, network errors and timeouts are
retried with exponential backoff and jitter (urllib3's ``Retry``, honouring ``Retry-After``) within a
time budget; 401, 403 and 404 are kept for redrive; PagerDuty's 400 (with its ``errors[]``) is the
event's own fault, and any other 4xx is someone else's answer, kept for retry. A request whose
answer never came (read timeout, a connection dropped after sending) may still be processed later:
the send reports it as ``ambiguous``. The exchange itself (connections, bounded reads) is ``transport``'s,
on the standard library's ``http.client``; the retry policy is urllib3's ``Retry`` (already loaded by
botocore: no second HTTP stack to import at cold start).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import quote

import urllib3
from urllib3.exceptions import InvalidHeader, MaxRetryError, ProtocolError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import (
    BAD_REQUEST,
    RETRIED_STATUSES,
    InvalidEventError,
    PagerDutyApiError,
    PagerDutyDeliveryError,
    RateLimitedError,
    worth_sending_again,
)
from pagerduty_bridge.models import AlertSeverity, EventAction, EventResponse
from pagerduty_bridge.pacing import RATE_LIMIT_PATIENCE, Pacer, key_digest
from pagerduty_bridge.redaction import scrub
from pagerduty_bridge.safejson import clean, not_json
from pagerduty_bridge.text import truncate
from pagerduty_bridge.timeutil import utc
from pagerduty_bridge.transport import Answer, Connections, exchange, read_answer

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

CONNECT_TIMEOUT_SECONDS: Final = 3.05
"""Slightly above a multiple of 3 s, TCP's retransmission window (requests' documentation advice)."""
READ_TIMEOUT_SECONDS: Final = 10.0
"""PagerDuty answers in well under a second; 10 s separates slow from dead."""
MIN_READ_TIMEOUT_SECONDS: Final = 0.5
"""No request waits less than this for its answer, however little of the budget is left."""
BACKOFF_FACTOR: Final = 0.5
BACKOFF_MAX_SECONDS: Final = 8.0
BACKOFF_JITTER_SECONDS: Final = 0.25
MAX_LINK_HREF_LENGTH: Final = 2048
"""Links longer than this are dropped from an event: no browser or phone follows them, and a forged
alarm name must not push the event past PagerDuty's 512 KB."""
MAX_LINK_TEXT_LENGTH: Final = 1024
"""What a link's text is cut to: a line on a screen, as the summary is."""
MAX_LINKS_BYTES: Final = 64 * 1024
"""The most an event's links take together (about thirty of the longest): the rest of PagerDuty's
512 KB is left to the alarm's details."""
MAX_ERROR_DETAIL_LENGTH: Final = 1024
"""How much of PagerDuty's (or a proxy's) answer an error message carries."""
ACCEPTED_STATUS: Final = 202
"""PagerDuty's only answer of acceptance: the event is queued."""
THROTTLED_STATUS: Final = 429
"""PagerDuty's answer beyond its rate limit for a routing key (``pacing``)."""


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    text: str | None = None

    def wire(self) -> dict[str, str]:
        return {"href": self.href} if self.text is None else {"href": self.href, "text": self.text}


@dataclass(frozen=True, slots=True)
class Image:
    src: str
    href: str | None = None
    alt: str | None = None

    def wire(self) -> dict[str, str]:
        return {k: v for k, v in (("src", self.src), ("href", self.href), ("alt", self.alt)) if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventPayload:
    summary: str
    source: str
    severity: AlertSeverity
    timestamp: datetime | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = None
    custom_details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PagerDutyEvent:
    """One Events API v2 event, without its routing key."""

    event_action: EventAction
    dedup_key: str
    payload: EventPayload | None = None
    links: tuple[Link, ...] = ()
    images: tuple[Image, ...] = ()
    client: str | None = None
    client_url: str | None = None

    def to_wire(self, routing_key: str) -> dict[str, Any]:
        """The exact JSON body PagerDuty receives, within its documented limits."""
        body: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": self.event_action.value,
            "dedup_key": bounded_dedup_key(self.dedup_key),
        }
        if self.payload is not None and self.event_action is EventAction.TRIGGER:
            body["payload"] = _payload_wire(self.payload)
            links = bounded_links(self.links)
            if links:
                body["links"] = links
            if self.images:
                body["images"] = [image.wire() for image in self.images]
            if self.client:
                body["client"] = self.client
            if self.client_url and len(self.client_url) <= MAX_LINK_HREF_LENGTH:
                body["client_url"] = self.client_url
        return fit_event_size(body)


def _payload_wire(payload: EventPayload) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "summary": truncate(payload.summary, c.MAX_SUMMARY_LENGTH),
        "source": truncate(payload.source, c.MAX_SUMMARY_LENGTH),
        "severity": payload.severity.value,
    }
    if payload.timestamp is not None:
        wire["timestamp"] = format_timestamp(payload.timestamp)
    for key, value in (("component", payload.component), ("group", payload.group), ("class", payload.class_)):
        if value:
            wire[key] = truncate(value, c.MAX_SUMMARY_LENGTH)
    if payload.custom_details:
        wire["custom_details"] = dict(payload.custom_details)
    return wire


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeEvent:
    """One Change Event (``POST /v2/change/enqueue``): something changed; it never notifies anyone."""

    summary: str
    source: str
    timestamp: datetime
    custom_details: dict[str, Any] = field(default_factory=dict)
    links: tuple[Link, ...] = ()

    def to_wire(self, routing_key: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "routing_key": routing_key,
            "payload": {
                "summary": truncate(self.summary, c.MAX_SUMMARY_LENGTH),
                "source": truncate(self.source, c.MAX_SUMMARY_LENGTH),
                "timestamp": format_timestamp(self.timestamp),
            },
        }
        if self.custom_details:
            body["payload"]["custom_details"] = dict(self.custom_details)
        links = bounded_links(self.links)
        if links:
            body["links"] = links
        return fit_event_size(body)


def bounded_links(links: tuple[Link, ...]) -> list[dict[str, str]]:
    """The links an event carries: each href no longer than ``MAX_LINK_HREF_LENGTH``, each text cut to
    ``MAX_LINK_TEXT_LENGTH``, and in order only as many as fit ``MAX_LINKS_BYTES``. Only custom details
    are shrunk to fit PagerDuty's 512 KB: a rule's links, bounded by nothing else, made every page of its
    alarms too large to be taken. The alarm's own links come first, so they are the ones kept."""
    kept = [
        Link(link.href, None if link.text is None else truncate(link.text, MAX_LINK_TEXT_LENGTH)).wire()
        for link in links
        if len(link.href) <= MAX_LINK_HREF_LENGTH
    ]
    # Nearly every page has a few short links: when even their largest possible encoding fits, they all do,
    # and none need be encoded to be measured.
    most = sum(_MAX_JSON_BYTES_PER_CHARACTER * sum(map(len, wire.values())) + _MAX_LINK_FRAME_BYTES for wire in kept)
    return kept if most <= MAX_LINKS_BYTES else _links_that_fit(kept)


_MAX_JSON_BYTES_PER_CHARACTER: Final = 6
"""The most one character takes in a JSON string written ``ensure_ascii=False``: a control character's
escape (``\\u001f``); UTF-8 takes 4 bytes at most."""
_MAX_LINK_FRAME_BYTES: Final = len(json.dumps({"href": "", "text": ""}))
"""What one link's JSON holds besides its texts."""


def _links_that_fit(links: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first of ``links`` whose JSON together fits ``MAX_LINKS_BYTES``, each measured."""
    kept: list[dict[str, str]] = []
    room = MAX_LINKS_BYTES
    for wire in links:
        room -= len(json.dumps(wire, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if room < 0:
            break
        kept.append(wire)
    return kept


def format_timestamp(value: datetime) -> str:
    """PagerDuty's ISO 8601 with milliseconds and ``Z``, as in the seed's payload."""
    return utc(value).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def bounded_dedup_key(key: str) -> str:
    """The key itself when short enough; else a readable prefix and a hash of the whole key.

    Stable (the same long key always maps to the same short one) and unique (the hash covers
    everything the prefix drops).
    """
    if len(key) <= c.MAX_DEDUP_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{key[: c.MAX_DEDUP_KEY_LENGTH - len(digest) - 1]}-{digest}"


BLANK_NAME_KEY_PREFIX: Final = "blank-alarm-name-"
"""Before the percent-encoded name of an alarm named only blanks: PagerDuty refuses a blank dedup key."""


def name_dedup_key(name: str) -> str:
    """The dedup key of an alarm known by its name alone: the name, bounded; a name of blanks spelled
    out (``blank-alarm-name-%20``), so its trigger and its resolve share a key PagerDuty accepts."""
    if not name.strip():
        return bounded_dedup_key(BLANK_NAME_KEY_PREFIX + quote(name, safe=""))
    return bounded_dedup_key(name)


def wire_bytes(body: dict[str, Any]) -> bytes:
    """The body as PagerDuty receives it: JSON proper, in UTF-8. ``NaN`` and infinities (which PagerDuty
    refuses with a 400) go as unknown (``null``), as every number the bridge reads does, and a lone
    surrogate (which no UTF-8 can carry) as U+FFFD; anything else JSON cannot carry (a date a caller put
    in) is an ``InvalidEventError`` naming the field. Never an error that holds the body: it holds the
    routing key."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        pass
    try:
        cleaned = clean(body)
        problem = not_json(cleaned)
    except RecursionError:
        problem = _nested_too_deeply(body)
    if problem is None:
        return json.dumps(cleaned, ensure_ascii=False, allow_nan=False).encode()
    raise InvalidEventError(f"the event cannot be sent: {problem}")


def _nested_too_deeply(body: dict[str, Any]) -> str:
    """Why a body too deep for ``clean`` cannot be sent: what in it is not JSON, when that is found
    before the depth stops the search too, else its depth (a caller's custom details)."""
    try:
        return not_json(body) or "it is nested too deeply"
    except RecursionError:
        return "payload.custom_details is nested too deeply"


def _encoded_size(body: dict[str, Any]) -> int:
    return len(wire_bytes(body))


def fit_event_size(body: dict[str, Any], limit: int = c.MAX_EVENT_BYTES) -> dict[str, Any]:
    """Shrink ``payload.custom_details`` until the whole event fits PagerDuty's 512 KB.

    Long string values are cut first (largest first), then whole entries dropped; what was cut is
    listed under ``_truncated`` so the responder knows the details are incomplete.
    """
    if _encoded_size(body) <= limit or "payload" not in body:
        return body
    details: dict[str, Any] = dict(body["payload"].get("custom_details", {}))
    body = {**body, "payload": {**body["payload"], "custom_details": details}}
    cut: list[str] = []
    by_size = sorted(details, key=lambda k: len(json.dumps(details[k], ensure_ascii=False)), reverse=True)
    for key in by_size:
        if _encoded_size(body) <= limit:
            break
        value = details[key]
        if isinstance(value, str) and len(value) > 1024:
            details[key] = truncate(value, 1024)
        else:
            del details[key]
        cut.append(key)
        details["_truncated"] = cut
    if _encoded_size(body) > limit:
        body["payload"]["custom_details"] = {"_truncated": cut}
        body["payload"]["summary"] = truncate(body["payload"]["summary"], c.MAX_SUMMARY_LENGTH)
    return body


# --- sending ------------------------------------------------------------------------------------------


@dataclass
class AttemptLog:
    """What one send's attempts were: whether any may have reached PagerDuty without an answer."""

    ambiguous: bool = False


_AMBIGUOUS_ERRORS: Final = (ReadTimeoutError, ProtocolError)
"""The request went out and no answer came: PagerDuty may still process it (a connect error means it
never left)."""


@dataclass(frozen=True, slots=True)
class Pacing:
    """The pacer and the (digested) routing key one send is paced under, and until when (monotonic
    seconds) it may wait for the key's rate limit (``None``: as long as its budget)."""

    pacer: Pacer
    key: str
    until: float | None = None

    def patience(self, deadline: float | None) -> float | None:
        """Until when a wait for the rate limit may end: ``until``, within ``deadline``."""
        if self.until is None or deadline is None:
            return deadline if self.until is None else self.until
        return min(deadline, self.until)


class BudgetedRetry(Retry):
    """urllib3 ``Retry`` that stops when the next wait would overrun the caller's time budget, notes
    attempts whose outcome is unknown, and tells the pacer about 429s (each retry waits for it too).

    A fresh instance with its own ``deadline`` goes with every send (urllib3 takes the retry policy per
    request), so one connection pool serves every call, in any thread.
    """

    def __init__(
        self,
        *args: Any,
        deadline: float | None = None,
        log: AttemptLog | None = None,
        pacing: Pacing | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self.log = log if log is not None else AttemptLog()
        self.pacing = pacing

    def new(self, **kw: Any) -> Self:
        retry = super().new(**kw)
        retry.deadline = self.deadline
        retry.log = self.log
        retry.pacing = self.pacing
        return retry

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, _AMBIGUOUS_ERRORS):
            self.log.ambiguous = True
        if self.pacing is not None and response is not None and response.status == THROTTLED_STATUS:
            self.pacing.pacer.throttled(self.pacing.key, self.get_retry_after(response))
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.deadline is None:
            return new
        wait = new.get_backoff_time()
        if response is not None:
            wait = max(wait, new.get_retry_after(response) or 0.0)
        limit = self.deadline
        if self.pacing is not None:
            paced = self.pacing.pacer.delay(self.pacing.key)
            wait = max(wait, paced)
            if paced > 0 or (response is not None and response.status == THROTTLED_STATUS):
                limit = self.pacing.patience(limit) or limit
        if time.monotonic() + wait > limit:
            raise MaxRetryError(_pool, url or "", error or ResponseError("retry budget exhausted"))  # type: ignore[arg-type]
        if isinstance(response, Answer):  # drained before retrying: take what came, drop the connection if more is due
            read_answer(response, deadline=0.0)
        return new

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """``Retry-After`` in seconds, or ``None`` when absent or unreadable (neither whole seconds nor an
        HTTP date: ``-5``, ``1.5``, a year past 9999). urllib3 would raise out of the retry with the
        budget unspent; unread, the header is as good as absent: the backoff applies, and a 429 holds
        and slows the key as PagerDuty's usual 429 does. Every reader of the header (urllib3's wait, the
        budget check, the pacer) comes through here."""
        try:
            return super().get_retry_after(response)
        except (InvalidHeader, ValueError, OverflowError):
            return None

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """urllib3's wait (backoff or ``Retry-After``), then the pacer's, within the budget."""
        super().sleep(response)
        if self.pacing is not None and not self.pacing.pacer.acquire(
            self.pacing.key, self.pacing.patience(self.deadline)
        ):
            raise MaxRetryError(None, "", ResponseError("retry budget exhausted waiting for the rate limit"))  # type: ignore[arg-type]


def default_retry(
    deadline: float | None = None, log: AttemptLog | None = None, pacing: Pacing | None = None
) -> BudgetedRetry:
    return BudgetedRetry(
        total=12,
        connect=6,
        read=6,
        status=8,
        other=2,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX_SECONDS,
        backoff_jitter=BACKOFF_JITTER_SECONDS,
        status_forcelist=RETRIED_STATUSES,
        allowed_methods=frozenset({"POST"}),  # safe: PagerDuty deduplicates by dedup_key
        respect_retry_after_header=True,
        raise_on_status=False,
        deadline=deadline,
        log=log,
        pacing=pacing,
    )


def request_timeouts(budget: float) -> tuple[float, float]:
    """One request's connect and read timeouts with ``budget`` seconds to spend: what ``send_body`` uses
    and what the invocation's deadline (``processing.attempt_seconds``) counts on."""
    read = max(MIN_READ_TIMEOUT_SECONDS, min(READ_TIMEOUT_SECONDS, budget))
    return min(CONNECT_TIMEOUT_SECONDS, read), read


def _ca_bundle() -> str | None:
    """certifi's bundle where installed, else botocore's (always there in Lambda), else the system's."""
    try:
        import certifi

        return str(certifi.where())
    except ImportError:
        pass
    try:
        from botocore.httpsession import get_cert_path

        return str(get_cert_path(True))
    except ImportError:
        return None


class EventsClient:
    """Sends events to one Events API URL (or, per call, another: ``send_body(url=…)`` for Change
    Events). Build once per process; it keeps its connections alive (``transport.Connections``) and paces
    its sends per routing key (``pacing.Pacer``)."""

    def __init__(
        self,
        url: str = c.DEFAULT_EVENTS_URL,
        *,
        connections: Connections | None = None,
        retry_budget_seconds: float = 30.0,
        on_attempt: Callable[[float], None] | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.url = url
        self.retry_budget_seconds = retry_budget_seconds
        self.pacer = pacer if pacer is not None else Pacer()
        self._connections = connections
        self._on_attempt = on_attempt

    @property
    def connections(self) -> Connections:
        if self._connections is None:
            self._connections = Connections(ca_certs=_ca_bundle())
        return self._connections

    def reset(self) -> None:
        """Close every kept connection (new ones are made for the next send)."""
        if self._connections is not None:
            self._connections.clear()
        self._connections = None

    def send(self, event: PagerDutyEvent, routing_key: str, *, budget_seconds: float | None = None) -> EventResponse:
        """Send one event; return PagerDuty's acceptance or raise a classified ``BridgeError``."""
        return self.send_body(event.to_wire(routing_key), budget_seconds=budget_seconds)

    def send_body(
        self, body: dict[str, Any], *, budget_seconds: float | None = None, url: str | None = None
    ) -> EventResponse:
        data = wire_bytes(body)
        budget = self.retry_budget_seconds if budget_seconds is None else budget_seconds
        deadline = time.monotonic() + budget
        log = AttemptLog()
        key = str(body.get("routing_key") or "")
        target = url or self.url
        patience = RATE_LIMIT_PATIENCE.get()
        pacing = Pacing(self.pacer, key_digest(key, target), None if patience is None else time.monotonic() + patience)
        if not self.pacer.acquire(pacing.key, pacing.patience(deadline)):
            raise RateLimitedError(
                "held back: PagerDuty's rate limit for this routing key leaves no room within the retry budget "
                "(it answered 429 lately); nothing was sent"
            )
        connections = self.connections
        started = time.monotonic()
        try:
            response = exchange(
                connections,
                connections.target(target),
                data,
                request_timeouts(budget),
                default_retry(deadline=deadline, log=log, pacing=pacing),
            )
        except urllib3.exceptions.HTTPError as exc:
            if isinstance(exc, _AMBIGUOUS_ERRORS) or isinstance(getattr(exc, "reason", None), _AMBIGUOUS_ERRORS):
                log.ambiguous = True
            cause = scrub(_describe_network_error(exc, time.monotonic() - started), key)
            raise PagerDutyDeliveryError(cause, ambiguous=log.ambiguous) from None
        finally:
            if self._on_attempt is not None:
                self._on_attempt(time.monotonic() - started)
        if response.status == ACCEPTED_STATUS:
            self.pacer.accepted(pacing.key)
        content_type = response.getheader("Content-Type", "")
        data, short = read_answer(response, deadline)
        if short is not None:
            kind = (content_type or "no content type").split(";")[0].strip()
            raise PagerDutyDeliveryError(
                f"answer {response.status} ({kind}) was not read to its end: {short}; kept for retry",
                ambiguous=log.ambiguous or response.status == ACCEPTED_STATUS,
            )
        return classify_response(
            response.status,
            response.reason or "",
            data.decode("utf-8", "replace"),
            content_type=content_type,
            ambiguous=log.ambiguous,
            routing_key=key,
        )


def classify_response(
    status: int,
    reason: str,
    text: str,
    *,
    content_type: str = "application/json",
    ambiguous: bool = False,
    routing_key: str = "",
) -> EventResponse:
    """``202`` with ``status: success`` → ``EventResponse``; anything else raises. An answer PagerDuty
    does not give (another 2xx, a redirect, a 4xx other than its own, a 400 without its ``errors[]``)
    came from something in between and says nothing about the event: ``PagerDutyDeliveryError``,
    kept for retry. PagerDuty's own error statuses are a ``PagerDutyApiError`` (retried for 429 and
    5xx, kept for 401/403/404, dropped for its 400). Every routing key is scrubbed from what the answer
    said before it goes anywhere."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    data = data if isinstance(data, dict) else None
    if status == ACCEPTED_STATUS and data is not None and data.get("status") == "success":
        dedup_key = data.get("dedup_key")
        return EventResponse(
            status="success",
            message=scrub(str(data.get("message", "Event processed")), routing_key),
            dedup_key=dedup_key if isinstance(dedup_key, str) else None,
            ambiguous=ambiguous,
        )
    if status < 400 or not _pagerdutys_error(status, data):
        kind = (content_type or "no content type").split(";")[0].strip()
        redirect = ", a redirect (not followed)" if 300 <= status < 400 else ""
        expected = (
            "PagerDuty's acceptance (202 with status success)"
            if status < 400
            else "PagerDuty's (it refuses an event with 400 and errors[], or 401, 403, 404, 429, 5xx)"
        )
        raise PagerDutyDeliveryError(
            f"answer {status} ({kind}{redirect}) is not {expected}: "
            "something between the bridge and PagerDuty answered; kept for retry",
            ambiguous=ambiguous,
        )
    detail = reason or str((data or {}).get("status") or "error")
    errors = (data or {}).get("errors")
    if isinstance(errors, list) and errors:
        detail += f": {(data or {}).get('message', 'invalid event')} ({'; '.join(str(e) for e in errors)})"
    detail = truncate(scrub(detail, routing_key), MAX_ERROR_DETAIL_LENGTH)
    raise PagerDutyApiError(status, detail, ambiguous=ambiguous)


def _pagerdutys_error(status: int, data: dict[str, Any] | None) -> bool:
    """Whether an error answer is one PagerDuty gives: 429 and 5xx, 401/403/404 (a wrong key or URL),
    and 400 only with the ``errors[]`` its Events API always lists (a firewall's or gateway's 400 has
    none). Dropping an event on anyone else's word would lose the page."""
    if worth_sending_again(status):
        return True
    return status == BAD_REQUEST and data is not None and isinstance(data.get("errors"), list)


def _describe_network_error(exc: Exception, elapsed: float) -> str:
    cause: BaseException = exc
    while True:
        inner = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__
        if inner is None or not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    return f"{type(exc).__name__} after {elapsed:.1f}s ({type(cause).__name__}: {cause})"
