"""PagerDuty Events API v2: the wire body (built in exactly one place) and the client that sends it.

The routing key stays out of ``PagerDutyEvent``: the client adds it when sending, so an event can be
logged, printed or stored without leaking it. Failures are classified once, here: 429, 5xx, network
errors and timeouts are retried with exponential backoff and jitter (urllib3's ``Retry``, honouring
``Retry-After``) within a time budget; any other 4xx is permanent. The client is urllib3 itself (what
requests is built on, already loaded by botocore): no second HTTP stack to import at cold start.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import urllib3
from pydantic import BaseModel, ConfigDict, Field
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from pagerduty_bridge import constants as c

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse
from pagerduty_bridge.errors import PagerDutyApiError, PagerDutyDeliveryError
from pagerduty_bridge.models import AlertSeverity, EventAction, EventResponse, utc

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""PagerDuty: 429 means slow down, 5xx means try again; every other 4xx is the event's fault."""
CONNECT_TIMEOUT_SECONDS = 3.05
"""Slightly above a multiple of 3 s, TCP's retransmission window (requests' documentation advice)."""
READ_TIMEOUT_SECONDS = 10.0
"""PagerDuty answers in well under a second; 10 s separates slow from dead."""
BACKOFF_FACTOR = 0.5
BACKOFF_MAX_SECONDS = 8.0
BACKOFF_JITTER_SECONDS = 0.25
TRUNCATION_MARK = "…"


class Link(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    href: str
    text: str | None = None


class Image(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    src: str
    href: str | None = None
    alt: str | None = None


class EventPayload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    summary: str
    source: str
    severity: AlertSeverity
    timestamp: datetime | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] = Field(default_factory=dict)


class PagerDutyEvent(BaseModel):
    """One Events API v2 event, without its routing key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
            payload: dict[str, Any] = {
                "summary": truncate(self.payload.summary, c.MAX_SUMMARY_LENGTH),
                "source": self.payload.source,
                "severity": self.payload.severity.value,
            }
            if self.payload.timestamp is not None:
                payload["timestamp"] = format_timestamp(self.payload.timestamp)
            for key, value in (
                ("component", self.payload.component),
                ("group", self.payload.group),
                ("class", self.payload.class_),
            ):
                if value:
                    payload[key] = value
            if self.payload.custom_details:
                payload["custom_details"] = dict(self.payload.custom_details)
            body["payload"] = payload
            if self.links:
                body["links"] = [link.model_dump(exclude_none=True) for link in self.links]
            if self.images:
                body["images"] = [image.model_dump(exclude_none=True) for image in self.images]
            if self.client:
                body["client"] = self.client
            if self.client_url:
                body["client_url"] = self.client_url
        return fit_event_size(body)


def masked(body: dict[str, Any]) -> dict[str, Any]:
    """A wire body safe to print: the routing key shown by its last four characters only."""
    key = str(body.get("routing_key", ""))
    return {**body, "routing_key": ("*" * 28 + key[-4:]) if key else key}


def format_timestamp(value: datetime) -> str:
    """PagerDuty's ISO 8601 with milliseconds and ``Z``, as in the seed's payload."""
    return utc(value).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def bounded_dedup_key(key: str) -> str:
    """The key itself when short enough; else a readable prefix and a hash of the whole key.

    Stable (the same long key always maps to the same short one) and unique (the hash covers
    everything the prefix drops).
    """
    if len(key) <= c.MAX_DEDUP_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: c.MAX_DEDUP_KEY_LENGTH - len(digest) - 1]}-{digest}"


def _encoded_size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, ensure_ascii=False).encode())


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


class BudgetedRetry(Retry):
    """urllib3 ``Retry`` that also stops when the next wait would overrun the caller's time budget.

    A fresh instance with its own ``deadline`` goes with every send (urllib3 takes the retry policy per
    request), so one connection pool serves every call, in any thread.
    """

    def __init__(self, *args: Any, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def new(self, **kw: Any) -> Self:
        retry = super().new(**kw)
        retry.deadline = self.deadline
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
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.deadline is None:
            return new
        wait = new.get_backoff_time()
        if response is not None:
            wait = max(wait, new.get_retry_after(response) or 0.0)
        if time.monotonic() + wait > self.deadline:
            raise MaxRetryError(_pool, url or "", error or ResponseError("retry budget exhausted"))  # type: ignore[arg-type]
        return new


def default_retry(deadline: float | None = None) -> BudgetedRetry:
    return BudgetedRetry(
        total=12,
        connect=6,
        read=6,
        status=8,
        other=2,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX_SECONDS,
        backoff_jitter=BACKOFF_JITTER_SECONDS,
        status_forcelist=RETRYABLE_STATUSES,
        allowed_methods=frozenset({"POST"}),  # safe: PagerDuty deduplicates by dedup_key
        respect_retry_after_header=True,
        raise_on_status=False,
        deadline=deadline,
    )


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


def build_pool() -> urllib3.PoolManager:
    """Pooled keep-alive connections: one TLS handshake per container, not per event."""
    return urllib3.PoolManager(num_pools=2, maxsize=8, ca_certs=_ca_bundle(), retries=False)


class EventsClient:
    """Sends events to one Events API URL. Build once per process; it reuses its connections."""

    def __init__(
        self,
        url: str = c.DEFAULT_EVENTS_URL,
        *,
        pool: urllib3.PoolManager | None = None,
        retry_budget_seconds: float = 30.0,
        on_attempt: Callable[[float], None] | None = None,
    ) -> None:
        self.url = url
        self.retry_budget_seconds = retry_budget_seconds
        self._pool = pool
        self._on_attempt = on_attempt

    @property
    def pool(self) -> urllib3.PoolManager:
        if self._pool is None:
            self._pool = build_pool()
        return self._pool

    def send(self, event: PagerDutyEvent, routing_key: str, *, budget_seconds: float | None = None) -> EventResponse:
        """Send one event; return PagerDuty's acceptance or raise a classified ``BridgeError``."""
        return self.send_body(event.to_wire(routing_key), budget_seconds=budget_seconds)

    def send_body(self, body: dict[str, Any], *, budget_seconds: float | None = None) -> EventResponse:
        budget = self.retry_budget_seconds if budget_seconds is None else budget_seconds
        read_timeout = max(0.5, min(READ_TIMEOUT_SECONDS, budget))
        started = time.monotonic()
        try:
            response = self.pool.request(
                "POST",
                self.url,
                body=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=min(CONNECT_TIMEOUT_SECONDS, read_timeout), read=read_timeout),
                retries=default_retry(deadline=started + budget),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise PagerDutyDeliveryError(_describe_network_error(exc, time.monotonic() - started)) from exc
        finally:
            if self._on_attempt is not None:
                self._on_attempt(time.monotonic() - started)
        return classify_response(response.status, response.reason or "", response.data.decode("utf-8", "replace"))


def classify_response(status: int, reason: str, text: str) -> EventResponse:
    """202 → ``EventResponse``; anything else → ``PagerDutyApiError`` (retryable for 429 and 5xx)."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    if 200 <= status < 300:
        return EventResponse(
            status=str(data.get("status", "success")),
            message=str(data.get("message", "Event processed")),
            dedup_key=data.get("dedup_key"),
        )
    detail = reason or str(data.get("status") or "error")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        detail += f": {data.get('message', 'invalid event')} ({'; '.join(str(e) for e in errors)})"
    raise PagerDutyApiError(status, detail)


def _describe_network_error(exc: Exception, elapsed: float) -> str:
    cause: BaseException = exc
    while True:
        inner = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__
        if inner is None or not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    return f"{type(exc).__name__} after {elapsed:.1f}s ({type(cause).__name__}: {cause})"
