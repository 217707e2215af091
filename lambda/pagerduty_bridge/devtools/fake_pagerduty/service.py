"""The Events API's behaviour without the transport: one request in, one answer out, state kept in between.

``EventsService.handle`` is the one entry the HTTP server calls: it records the request, plays the next
scripted fault, validates, rate-limits, applies the event to the alerts and says what to answer (or to
drop the connection). Everything a test inspects is a snapshot taken under one lock, so a request's
answer and the alert it changed are always seen together. Alert changes are announced through
``on_transition`` (the webhook sender), outside the lock and before the answer goes out.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final

from pagerduty_bridge.constants import MAX_EVENT_BYTES
from pagerduty_bridge.devtools.fake_pagerduty.alerts import AlertBook, RateLimiter, ResponderAction, Transition
from pagerduty_bridge.devtools.fake_pagerduty.faults import Delay, Drop, Fault, FaultScript, Respond, describe_fault
from pagerduty_bridge.devtools.fake_pagerduty.records import Alert, RecordedRequest
from pagerduty_bridge.devtools.fake_pagerduty.validation import validate_change_event, validate_event
from pagerduty_bridge.devtools.fake_pagerduty.wire import (
    API_PATHS,
    CHANGE_ACCEPTED_BODY,
    CHANGE_ENQUEUE_PATH,
    THROTTLED_BODY,
    ResponseBody,
    accepted_body,
    default_response_body,
    error_body,
    invalid_body,
    iso_timestamp,
    parse_json,
    retry_after_header,
    too_large_body,
    unrecognized_body,
    utc_now,
)


@dataclass(frozen=True)
class ApiRequest:
    """A request to the Events API as the server read it; ``raw`` None means the body was too large to read."""

    method: str
    path: str
    headers: Mapping[str, str]
    raw: bytes | None


@dataclass(frozen=True)
class Reply:
    """What to answer: ``status`` None means close the connection without answering.

    ``record`` is a snapshot of the request as answered, for the CLI's one line per request.
    """

    record: RecordedRequest
    status: int | None
    body: ResponseBody = None
    headers: Mapping[str, str] = field(default_factory=dict)


TOO_LARGE_TEXT: Final = "<body not read: too large>"
"""What a request too large to read is recorded with instead of its body."""


class EventsService:
    """PagerDuty's Events API v2 (alert and change events): validates, models alerts, throttles, plays faults.

    Thread-safe. ``clock`` gives the wall-clock time incidents open at; ``on_transition`` hears every
    change of an incident's state (from an event or a responder), in the calling thread.
    """

    def __init__(
        self,
        *,
        rate_limit: int | None = None,
        time_scale: float = 1.0,
        clock: Callable[[], datetime] = utc_now,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self._limiter = RateLimiter(rate_limit, time_scale=time_scale)
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._book = AlertBook()
        self._script = FaultScript()
        self._stopping = threading.Event()

    @property
    def rate_limit(self) -> int | None:
        return self._limiter.limit

    # -- serving --

    def handle(self, request: ApiRequest) -> Reply:
        """Record, fault, validate and apply one request; the answer to send (or None status: drop)."""
        body, parsed = (TOO_LARGE_TEXT, False) if request.raw is None else parse_json(request.raw)
        record = RecordedRequest(
            request.path, dict(request.headers), body, None, time.monotonic(), method=request.method
        )
        with self._lock:
            self._requests.append(record)
        if request.raw is None:
            return self._complete(record, HTTPStatus.BAD_REQUEST, too_large_body())
        if request.path not in API_PATHS:
            return self._complete(record, HTTPStatus.NOT_FOUND, error_body(HTTPStatus.NOT_FOUND))
        if request.method != "POST":
            return self._complete(record, HTTPStatus.METHOD_NOT_ALLOWED, error_body(HTTPStatus.METHOD_NOT_ALLOWED))
        with self._lock:
            fault = self._script.next()
            if fault is not None:
                record.fault = describe_fault(fault)
        return self._play(fault, record, request.raw, parsed)

    def _play(self, fault: Fault | None, record: RecordedRequest, raw: bytes, parsed: bool) -> Reply:
        """Answer as the fault says, or normally (after a ``Delay``); drop when stopping meanwhile."""
        if isinstance(fault, Drop):
            self._wait(fault.delay)
            return self._dropped(record)
        if isinstance(fault, Respond):
            if not self._wait(fault.delay):
                return self._dropped(record)
            change = record.path == CHANGE_ENQUEUE_PATH
            body = (
                fault.body
                if fault.body is not None
                else default_response_body(fault.status, record.body, change=change)
            )
            headers = {} if fault.retry_after is None else {"Retry-After": retry_after_header(fault.retry_after)}
            if fault.location is not None:
                headers["Location"] = fault.location
            return self._complete(record, fault.status, body, headers)
        if isinstance(fault, Delay) and not self._wait(fault.seconds):
            return self._dropped(record)
        if record.path == CHANGE_ENQUEUE_PATH:
            return self._complete(
                record, *self._check(record.body, raw, parsed, validate_change_event, CHANGE_ACCEPTED_BODY)
            )
        return self._process_alert_event(record, raw, parsed)

    @staticmethod
    def _check(
        body: Any, raw: bytes, parsed: bool, validate: Callable[[object], list[str]], accepted: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """PagerDuty's answer to a body before any state: 400 with its reasons, else ``accepted``."""
        if len(raw) > MAX_EVENT_BYTES:
            return HTTPStatus.BAD_REQUEST, too_large_body()
        if not parsed:
            return HTTPStatus.BAD_REQUEST, unrecognized_body("JSON parse error")
        if not isinstance(body, dict):
            return HTTPStatus.BAD_REQUEST, unrecognized_body("Event object must be a JSON object")
        if errors := validate(body):
            return HTTPStatus.BAD_REQUEST, invalid_body(errors)
        return HTTPStatus.ACCEPTED, dict(accepted)

    def _process_alert_event(self, record: RecordedRequest, raw: bytes, parsed: bool) -> Reply:
        status, answer = self._check(record.body, raw, parsed, validate_event, {})
        if status != HTTPStatus.ACCEPTED:
            return self._complete(record, status, answer)
        event: dict[str, Any] = record.body
        routing_key: str = event["routing_key"]
        given = event.get("dedup_key")
        dedup_key = given if isinstance(given, str) and given else uuid.uuid4().hex
        transition = None
        with self._lock:
            if not self._limiter.admit(routing_key, time.monotonic()):
                status, answer = HTTPStatus.TOO_MANY_REQUESTS, dict(THROTTLED_BODY)
            else:
                changed, transition = self._book.apply(routing_key, dedup_key, event, iso_timestamp(self._clock()))
                record.ignored = not changed
                answer = accepted_body(dedup_key)
            record.status, record.response_body = int(status), answer
            reply = Reply(replace(record), record.status, answer)
        self._announce(transition)
        return reply

    def _complete(
        self, record: RecordedRequest, status: int, body: ResponseBody, headers: Mapping[str, str] | None = None
    ) -> Reply:
        with self._lock:
            record.status, record.response_body = int(status), body
            return Reply(replace(record), record.status, body, dict(headers or {}))

    def _dropped(self, record: RecordedRequest) -> Reply:
        with self._lock:
            return Reply(replace(record), None)

    def _wait(self, seconds: float) -> bool:
        """Sleep; False when the service is halted meanwhile (the request is then abandoned)."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _announce(self, transition: Transition | None) -> None:
        if transition is not None and self._on_transition is not None:
            self._on_transition(transition)

    def halt(self) -> None:
        """Abandon delayed requests now and any that arrive until ``resume``: the server is stopping."""
        self._stopping.set()

    def resume(self) -> None:
        self._stopping.clear()

    # -- scripting, responders and inspection --

    def script(self, faults: tuple[object, ...]) -> None:
        """Queue faults for the next requests to the Events API, first in, first out."""
        with self._lock:
            self._script.extend(faults)

    def act(
        self, action: ResponderAction, dedup_key: str, *, routing_key: str | None, agent: str, assignee: str | None
    ) -> Alert:
        """A responder's action on an open incident (see ``AlertBook.act``); announced, then returned."""
        with self._lock:
            alert, transition = self._book.act(
                action, dedup_key, routing_key=routing_key, agent=agent, assignee=assignee
            )
        self._announce(transition)
        return alert

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [replace(record, headers=dict(record.headers)) for record in self._requests]

    def answered(self, path: str, status: int) -> list[dict[str, Any]]:
        """Bodies of the JSON-object requests to ``path`` answered ``status`` (scripted answers included)."""
        with self._lock:
            return [
                record.body
                for record in self._requests
                if record.path == path and record.status == status and isinstance(record.body, dict)
            ]

    def alerts(self) -> dict[tuple[str, str], Alert]:
        with self._lock:
            return self._book.alerts()

    def dropped(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._book.dropped()

    def reset(self) -> None:
        """Forget requests, alerts, the script and the rate-limit windows."""
        with self._lock:
            self._requests.clear()
            self._book.clear()
            self._script.clear()
            self._limiter.clear()
