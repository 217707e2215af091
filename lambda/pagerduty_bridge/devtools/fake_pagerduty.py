"""A local stand-in for PagerDuty's Events API v2, for tests and the ``fake-pagerduty`` CLI command.

It checks events the way PagerDuty documents them, answers with PagerDuty's response bodies, models
alerts the way PagerDuty deduplicates them (per routing key and dedup key), rate-limits per routing key
and plays scripted faults (any status, dropped connections, delays), so the bridge's retry and no-loss
paths run against real sockets. Standard library only, because it must start in milliseconds and run
where nothing else is installed; it binds loopback addresses only.

Sources: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ (fields, limits, dedup
rules), .../events-api-v2/overview/ (response codes, 512 KB), .../events-api-v2/rate-limits/ (about 120
events a minute per routing key over a sliding 60 s window), PagerDuty's OpenAPI document for the Events
API, and 400 bodies PagerDuty really sends, e.g. ``{"status": "invalid event", "message": "Event object
is invalid", "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import selectors
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, Literal, TextIO, TypeAlias, cast
from urllib.parse import urlsplit

from pagerduty_bridge.constants import (
    MAX_DEDUP_KEY_LENGTH,
    MAX_EVENT_BYTES,
    MAX_SUMMARY_LENGTH,
    ROUTING_KEY_LENGTH,
    SEVERITIES,
)

DEFAULT_HOST: Final = "127.0.0.1"
ENQUEUE_PATH: Final = "/v2/enqueue"
CHANGE_ENQUEUE_PATH: Final = "/v2/change/enqueue"
CONTROL_PREFIX: Final = "/_fake/"
EVENT_ACTIONS: Final = ("trigger", "acknowledge", "resolve")
KNOWN_EVENT_FIELDS: Final = frozenset(
    {"routing_key", "event_action", "dedup_key", "payload", "links", "images", "client", "client_url"}
)
"""Every top-level field PagerDuty documents for an alert event; anything else is rejected."""
RATE_LIMIT_WINDOW_SECONDS: Final = 60.0
"""PagerDuty counts events per routing key "over a 60 second window looking back from the current time"."""
MAX_REQUEST_BYTES: Final = 16 * MAX_EVENT_BYTES
"""Bodies larger than this are not even read (the connection is closed): it protects the test process."""
CONNECTION_IDLE_TIMEOUT_SECONDS: Final = 30.0
"""An idle keep-alive connection is closed after this, so handler threads do not pile up."""
ACCEPT_TIMEOUT_SECONDS: Final = 0.5
"""Bounds one accept when a pending connection vanished before it was accepted (a rare race)."""
MASK_VISIBLE_CHARS: Final = 4
"""Routing keys are shown by their last four characters only: the key is a secret (DESIGN.md)."""
MAX_LINE_CHARS: Final = 200
"""The CLI prints one short line per request."""

AlertStatus: TypeAlias = Literal["triggered", "acknowledged", "resolved"]
ResponseBody: TypeAlias = dict[str, Any] | str | None


# --- Scripted faults ---------------------------------------------------------------------------------


@dataclass
class Respond:
    """Answer the next request with this status (and body) and change no alert.

    ``body`` None means a PagerDuty-like body for the status; a ``str`` is sent as text (a load
    balancer's HTML page, say). ``retry_after`` sets a ``Retry-After`` header: numbers are whole seconds
    as HTTP requires (fractions round up; 0 keeps tests fast), strings are sent verbatim.
    """

    status: int
    body: ResponseBody = None
    retry_after: float | str | None = None
    delay: float = 0.0


@dataclass
class Drop:
    """Read the next request, then close the connection without answering: the client sees a reset."""

    delay: float = 0.0


@dataclass
class Delay:
    """Process the next request normally, but only after ``seconds``: for client timeouts and budgets."""

    seconds: float


Fault: TypeAlias = Respond | Drop | Delay


# --- What the fake remembers -------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as received (body parsed when it is JSON) and how it was answered.

    ``status`` is None while the request is in flight and stays None when the connection was dropped.
    ``fault`` names the scripted fault applied to it, if any. ``ignored`` marks an acknowledge/resolve
    answered 202 that changed nothing, for want of an open alert (PagerDuty drops those silently).
    """

    path: str
    headers: dict[str, str]
    body: Any
    status: int | None
    at: float
    method: str = "POST"
    response_body: ResponseBody = None
    fault: str | None = None
    ignored: bool = False

    def __repr__(self) -> str:
        text = (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, status={self.status!r}, "
            f"fault={self.fault!r}, at={self.at!r}, body={masked_body(self.body)!r})"
        )
        return scrub(text, self.body.get("routing_key")) if isinstance(self.body, dict) else text


@dataclass
class Alert:
    """PagerDuty's view of one alert: opened by a trigger, keyed by (routing key, dedup key).

    ``events`` holds every accepted event applied to it, in order; ``times_opened`` counts how often a
    trigger opened it (a trigger after a resolve opens a new alert under the same key).
    """

    routing_key: str
    dedup_key: str
    status: AlertStatus
    summary: str | None
    severity: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    times_opened: int = 1

    def __repr__(self) -> str:
        return scrub(
            f"Alert(routing_key={mask_routing_key(self.routing_key)!r}, dedup_key={self.dedup_key!r}, "
            f"status={self.status!r}, summary={self.summary!r}, severity={self.severity!r}, "
            f"events={len(self.events)}, times_opened={self.times_opened})",
            self.routing_key,
        )


# --- Masking -----------------------------------------------------------------------------------------


def mask_routing_key(routing_key: object) -> str:
    """The key's last four characters behind asterisks; only asterisks when it is too short to hide."""
    if not isinstance(routing_key, str) or len(routing_key) <= 2 * MASK_VISIBLE_CHARS:
        return "*" * MASK_VISIBLE_CHARS
    return "*" * MASK_VISIBLE_CHARS + routing_key[-MASK_VISIBLE_CHARS:]


def scrub(text: str, routing_key: object) -> str:
    """``text`` with every occurrence of the routing key masked: for a key pasted into another field."""
    if isinstance(routing_key, str) and len(routing_key.strip()) >= MASK_VISIBLE_CHARS:
        return text.replace(routing_key, mask_routing_key(routing_key))
    return text


def masked_body(body: Any) -> Any:
    """A request body safe to show: its ``routing_key`` masked."""
    if isinstance(body, dict) and "routing_key" in body:
        return {**body, "routing_key": mask_routing_key(body["routing_key"])}
    return body


# --- Validation (pure: unit tests can check wire bodies without a server) -----------------------------


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_iso8601(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _check_string(container: Mapping[str, Any], key: str, name: str) -> list[str]:
    """An optional field that, when present, must be a string."""
    if key in container and not isinstance(container[key], str):
        return [f"'{name}' must be a string"]
    return []


def _check_required_string(value: object, name: str) -> list[str]:
    if _is_blank(value):
        return [f"'{name}' is missing or blank"]
    if not isinstance(value, str):
        return [f"'{name}' must be a string"]
    return []


def _check_routing_key(value: object) -> list[str]:
    errors = _check_required_string(value, "routing_key")
    if errors or not isinstance(value, str):
        return errors
    if len(value) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    if not (value.isascii() and value.isalnum()):
        errors.append("'routing_key' cannot contain non-alphanumeric characters.")  # PagerDuty's wording
    return errors


def _check_context_list(
    value: object, name: str, required: str, optional: tuple[str, ...], *, https: bool
) -> list[str]:
    """``links`` and ``images``: arrays of objects with one required URL field."""
    if not isinstance(value, list):
        return [f"'{name}' must be an array"]
    errors: list[str] = []
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            errors.append(f"'{where}' must be an object")
            continue
        target = item.get(required)
        errors.extend(_check_required_string(target, f"{where}.{required}"))
        if https and isinstance(target, str) and target.strip() and not target.lower().startswith("https://"):
            errors.append(f"'{where}.{required}' must be an https URL")
        for key in optional:
            errors.extend(_check_string(item, key, f"{where}.{key}"))
    return errors


def _check_payload(payload: object) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' must be an object"]
    summary = payload.get("summary")
    errors = _check_required_string(summary, "payload.summary")
    if not errors and isinstance(summary, str) and len(summary) > MAX_SUMMARY_LENGTH:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY_LENGTH} characters)")
    errors.extend(_check_required_string(payload.get("source"), "payload.source"))
    severity = payload.get("severity")
    if _is_blank(severity):
        errors.append("'payload.severity' is missing or blank")
    elif severity not in SEVERITIES:
        errors.append(f"'payload.severity' is invalid (must be one of: {', '.join(SEVERITIES)})")
    timestamp_errors = _check_string(payload, "timestamp", "payload.timestamp")
    errors.extend(timestamp_errors)
    timestamp = payload.get("timestamp")
    if not timestamp_errors and isinstance(timestamp, str) and not _is_iso8601(timestamp):
        errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
    for key in ("component", "group", "class"):
        errors.extend(_check_string(payload, key, f"payload.{key}"))
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def validate_event(event: object) -> list[str]:
    """PagerDuty's checks on an alert event, as messages naming the field; empty when it is valid.

    Pure, so unit tests can check the bridge's wire bodies without a server. Messages never contain
    field values, so they are safe to log.
    """
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = [f"'{str(key)[:40]}' is not a recognized field" for key in event if key not in KNOWN_EVENT_FIELDS]
    errors.extend(_check_routing_key(event.get("routing_key")))
    action = event.get("event_action")
    if _is_blank(action):
        errors.append("'event_action' is missing or blank")
    elif action not in EVENT_ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of: {', '.join(EVENT_ACTIONS)})")
    dedup_key = event.get("dedup_key")
    if action in ("acknowledge", "resolve") and _is_blank(dedup_key):
        errors.append(f"'dedup_key' is missing or blank (required for {action} events)")
    elif "dedup_key" in event and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
        errors.append(f"'dedup_key' is too long (maximum is {MAX_DEDUP_KEY_LENGTH} characters)")
    if "payload" in event:
        errors.extend(_check_payload(event["payload"]))
    elif action == "trigger":
        errors.append("'payload' is missing (required for trigger events)")
    if "links" in event:
        errors.extend(_check_context_list(event["links"], "links", "href", ("text",), https=False))
    if "images" in event:
        errors.extend(_check_context_list(event["images"], "images", "src", ("href", "alt"), https=True))
    errors.extend(_check_string(event, "client", "client"))
    errors.extend(_check_string(event, "client_url", "client_url"))
    return errors


def validate_change_event(event: object) -> list[str]:
    """Loose checks on a change event: a routing key and ``payload.summary``; change events page nobody."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = _check_required_string(event.get("routing_key"), "routing_key")
    payload = event.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
        return errors
    summary = payload.get("summary")
    errors.extend(_check_required_string(summary, "payload.summary"))
    if isinstance(summary, str) and len(summary) > MAX_SUMMARY_LENGTH:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY_LENGTH} characters)")
    return errors


# --- Response bodies (PagerDuty's words) -------------------------------------------------------------


def accepted_body(dedup_key: str) -> dict[str, Any]:
    return {"status": "success", "message": "Event processed", "dedup_key": dedup_key}


def invalid_body(errors: Sequence[str]) -> dict[str, Any]:
    return {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}


def unrecognized_body(error: str) -> dict[str, Any]:
    """PagerDuty's answer to a body that is not a JSON object (from its OpenAPI document's example)."""
    return {
        "status": "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": [error],
    }


THROTTLED_BODY: Final = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}


def default_response_body(status: int, event: object = None) -> dict[str, Any]:
    """A PagerDuty-like body for a scripted status (202 echoes the event's dedup key when it has one)."""
    if status == HTTPStatus.ACCEPTED:
        dedup_key = event.get("dedup_key") if isinstance(event, dict) else None
        return accepted_body(dedup_key if isinstance(dedup_key, str) and dedup_key else uuid.uuid4().hex)
    if status == HTTPStatus.BAD_REQUEST:
        return invalid_body(["Scripted fault: event rejected"])
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return dict(THROTTLED_BODY)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown Status"
    return {"status": "error", "message": phrase}


def _retry_after_header(value: float | str) -> str:
    """HTTP's delay-seconds is a whole number: fractions round up; strings (an HTTP date) go verbatim."""
    if isinstance(value, str):
        return value
    return str(max(0, math.ceil(value)))


def _describe_fault(fault: Fault) -> str:
    if isinstance(fault, Respond):
        return f"Respond({fault.status})"
    if isinstance(fault, Drop):
        return "Drop"
    return f"Delay({fault.seconds:g}s)"


def _reject_json_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's parser accepts them, PagerDuty's does not."""
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    """The parsed body and True, or the body as text and False when it is not JSON."""
    try:
        return json.loads(raw, parse_constant=_reject_json_constant), True
    except (ValueError, RecursionError):
        return raw.decode("utf-8", errors="replace"), False


def faults_from_json(items: object) -> list[Fault]:
    """Faults from the control endpoint's JSON array.

    Items: ``{"status": 503, "retry_after": 2, "body": {...}, "delay": 0.1}`` → Respond,
    ``{"drop": true, "delay": 0.1}`` → Drop, ``{"delay": 0.5}`` → Delay.
    """
    if not isinstance(items, list):
        raise ValueError("expected a JSON array of faults")
    faults: list[Fault] = []
    for index, item in enumerate(items):
        where = f"fault {index}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object")
        unknown = sorted(set(item) - {"status", "body", "retry_after", "delay", "drop"})
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}")
        delay = item.get("delay", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ValueError(f"{where}: 'delay' must be a number of seconds")
        if item.get("drop") is True:
            faults.append(Drop(float(delay)))
        elif "status" in item:
            status, body, retry_after = item["status"], item.get("body"), item.get("retry_after")
            if isinstance(status, bool) or not isinstance(status, int):
                raise ValueError(f"{where}: 'status' must be an integer")
            if body is not None and not isinstance(body, dict | str):
                raise ValueError(f"{where}: 'body' must be an object or a string")
            if retry_after is not None and (
                isinstance(retry_after, bool) or not isinstance(retry_after, int | float | str)
            ):
                raise ValueError(f"{where}: 'retry_after' must be a number or a string")
            faults.append(Respond(status, body, retry_after, float(delay)))
        elif "delay" in item:
            faults.append(Delay(float(delay)))
        else:
            raise ValueError(f"{where}: needs 'status', 'drop' or 'delay'")
    return faults


def _check_fault(fault: object) -> Fault:
    if isinstance(fault, Respond):
        if not HTTPStatus.OK <= fault.status <= 599:
            raise ValueError(f"Respond status must be 200..599, got {fault.status}")
        if fault.delay < 0:
            raise ValueError("Respond delay must not be negative")
        return fault
    if isinstance(fault, Drop):
        if fault.delay < 0:
            raise ValueError("Drop delay must not be negative")
        return fault
    if isinstance(fault, Delay):
        if fault.seconds < 0:
            raise ValueError("Delay seconds must not be negative")
        return fault
    raise TypeError(f"expected Respond, Drop or Delay, got {type(fault).__name__}")


def _loopback(host: str) -> tuple[str, socket.AddressFamily]:
    """The host as a loopback IP address and its family; anything else is refused, never bound."""
    address = DEFAULT_HOST if host == "localhost" else host
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address (127.0.0.1 or ::1), got {host!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"host must be a loopback IP address (127.0.0.1 or ::1), got {host!r}")
    return str(ip), socket.AF_INET6 if ip.version == 6 else socket.AF_INET


# --- The fake ----------------------------------------------------------------------------------------


class FakePagerDuty:
    """PagerDuty's Events API v2 on a loopback port: validates, models alerts, throttles, plays faults.

    Thread-safe: requests are served on their own threads; every read of the recorded state returns a
    snapshot. ``time_scale`` shortens the rate-limit window (60 makes a "minute" last one second).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        rate_limit_per_minute: int | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self._host, self._family = _loopback(host)
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1 (or None for no limit)")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._port = port
        self.rate_limit_per_minute = rate_limit_per_minute
        self.time_scale = time_scale
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._dropped: list[dict[str, Any]] = []
        self._script: deque[Fault] = deque()
        self._windows: dict[str, deque[float]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None
        self._listener: Callable[[RecordedRequest], None] | None = None

    # -- lifecycle --

    def start(self) -> FakePagerDuty:
        """Bind and serve on a daemon thread; returns self. Starting a running fake does nothing."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), self, self._family)
        self._bound_port = server.server_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_until_woken,
            name=f"fake-pagerduty:{self._bound_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and wake delayed requests (they are abandoned)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.wake()
        if thread is not None:
            thread.join()
        server.close_connections()
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> FakePagerDuty:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: for the control endpoints."""
        if self._server is None or self._bound_port is None:
            raise RuntimeError("FakePagerDuty is not running: call start() or use it as a context manager")
        host = f"[{self._host}]" if self._family == socket.AF_INET6 else self._host
        return f"http://{host}:{self._bound_port}"

    @property
    def url(self) -> str:
        """The events URL to give the bridge: ``http://127.0.0.1:<port>/v2/enqueue``."""
        return self.base_url + ENQUEUE_PATH

    # -- scripting and inspection --

    def script(self, *faults: Fault) -> None:
        """Queue answers for the next requests to /v2/enqueue, consumed first in, first out.

        Faults apply before validation; when the queue is empty the fake behaves normally.
        """
        checked = [_check_fault(fault) for fault in faults]
        with self._lock:
            self._script.extend(checked)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to the API (not the control endpoints) in order of arrival; a snapshot."""
        with self._lock:
            return [replace(record, headers=dict(record.headers)) for record in self._requests]

    def accepted(self) -> list[dict[str, Any]]:
        """Bodies of the events to /v2/enqueue answered 202 (a scripted 202 included), in order."""
        with self._lock:
            return [
                record.body
                for record in self._requests
                if record.path == ENQUEUE_PATH
                and record.status == HTTPStatus.ACCEPTED
                and isinstance(record.body, dict)
            ]

    def dropped(self) -> list[dict[str, Any]]:
        """Acknowledge/resolve events accepted but dropped, as PagerDuty does, for want of an open alert."""
        with self._lock:
            return list(self._dropped)

    @property
    def alerts(self) -> dict[tuple[str, str], Alert]:
        """Every alert ever opened, by (routing key, dedup key); a snapshot."""
        with self._lock:
            return {key: replace(alert, events=list(alert.events)) for key, alert in self._alerts.items()}

    def open_alerts(self, routing_key: str | None = None) -> dict[str, Alert]:
        """Triggered or acknowledged alerts by dedup key, for one routing key or all of them."""
        return {
            alert.dedup_key: alert
            for alert in self.alerts.values()
            if alert.status != "resolved" and (routing_key is None or alert.routing_key == routing_key)
        }

    def reset(self) -> None:
        """Forget requests, alerts, the script and the rate-limit windows."""
        with self._lock:
            self._requests.clear()
            self._alerts.clear()
            self._dropped.clear()
            self._script.clear()
            self._windows.clear()

    # -- used by the request handler --

    def _arrive(self, method: str, path: str, headers: dict[str, str], body: Any) -> RecordedRequest:
        record = RecordedRequest(path=path, headers=headers, body=body, status=None, at=time.monotonic(), method=method)
        with self._lock:
            self._requests.append(record)
        return record

    def _next_fault(self, record: RecordedRequest) -> Fault | None:
        with self._lock:
            fault = self._script.popleft() if self._script else None
            if fault is not None:
                record.fault = _describe_fault(fault)
            return fault

    def _complete(self, record: RecordedRequest, status: int, body: ResponseBody) -> None:
        with self._lock:
            record.status, record.response_body = int(status), body

    def _wait(self, seconds: float) -> bool:
        """Sleep; False when the fake is stopping meanwhile (the request is then abandoned)."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _notify(self, record: RecordedRequest) -> None:
        listener = self._listener
        if listener is not None:
            with self._lock:
                snapshot = replace(record)
            listener(snapshot)

    def _process_event(self, record: RecordedRequest, raw: bytes, body: Any, parsed: bool) -> None:
        """Validate, throttle and apply one alert event; the answer is stored on ``record``."""
        status: int
        answer: dict[str, Any]
        if len(raw) > MAX_EVENT_BYTES:
            status, answer = (
                HTTPStatus.BAD_REQUEST,
                invalid_body([f"Event is too large (maximum is {MAX_EVENT_BYTES} bytes)"]),
            )
        elif not parsed:
            status, answer = HTTPStatus.BAD_REQUEST, unrecognized_body("JSON parse error")
        elif not isinstance(body, dict):
            status, answer = HTTPStatus.BAD_REQUEST, unrecognized_body("Event object must be a JSON object")
        elif errors := validate_event(body):
            status, answer = HTTPStatus.BAD_REQUEST, invalid_body(errors)
        else:
            with self._lock:
                status, answer = self._accept_locked(record, body, time.monotonic())
                record.status, record.response_body = int(status), answer
                return
        self._complete(record, status, answer)

    def _process_change_event(self, record: RecordedRequest, body: Any, parsed: bool) -> None:
        if not parsed:
            self._complete(record, HTTPStatus.BAD_REQUEST, unrecognized_body("JSON parse error"))
        elif errors := validate_change_event(body):
            self._complete(record, HTTPStatus.BAD_REQUEST, invalid_body(errors))
        else:
            self._complete(record, HTTPStatus.ACCEPTED, {"status": "success", "message": "Change event processed"})

    def _accept_locked(self, record: RecordedRequest, event: dict[str, Any], now: float) -> tuple[int, dict[str, Any]]:
        routing_key: str = event["routing_key"]
        if self._throttled_locked(routing_key, now):
            return HTTPStatus.TOO_MANY_REQUESTS, dict(THROTTLED_BODY)
        given = event.get("dedup_key")
        dedup_key = given if isinstance(given, str) and given else uuid.uuid4().hex
        if self.rate_limit_per_minute is not None:
            self._windows.setdefault(routing_key, deque()).append(now)
        record.ignored = not self._apply_locked(routing_key, dedup_key, event)
        return HTTPStatus.ACCEPTED, accepted_body(dedup_key)

    def _throttled_locked(self, routing_key: str, now: float) -> bool:
        limit = self.rate_limit_per_minute
        if limit is None:
            return False
        window = self._windows.setdefault(routing_key, deque())
        horizon = now - RATE_LIMIT_WINDOW_SECONDS / self.time_scale
        while window and window[0] <= horizon:
            window.popleft()
        return len(window) >= limit

    def _apply_locked(self, routing_key: str, dedup_key: str, event: dict[str, Any]) -> bool:
        """PagerDuty's dedup rules: a trigger opens or updates; ack/resolve act on an open alert only.

        Returns False when the event changed nothing (it is dropped, as PagerDuty drops it).
        """
        key = (routing_key, dedup_key)
        alert = self._alerts.get(key)
        action = event["event_action"]
        if action == "trigger":
            payload = event["payload"]
            if alert is None:
                self._alerts[key] = Alert(
                    routing_key, dedup_key, "triggered", payload["summary"], payload["severity"], [event]
                )
                return True
            if alert.status == "resolved":
                alert.status = "triggered"
                alert.times_opened += 1
            # A trigger on an open alert updates its details (an acknowledged alert stays acknowledged).
            alert.summary, alert.severity = payload["summary"], payload["severity"]
            alert.events.append(event)
            return True
        if alert is None or alert.status == "resolved":
            self._dropped.append(event)
            return False
        alert.status = "acknowledged" if action == "acknowledge" else "resolved"
        alert.events.append(event)
        return True

    def _alerts_json(self) -> list[dict[str, Any]]:
        return [
            {
                "routing_key": mask_routing_key(alert.routing_key),
                "dedup_key": alert.dedup_key,
                "status": alert.status,
                "summary": alert.summary,
                "severity": alert.severity,
                "times_opened": alert.times_opened,
                "events": [masked_body(event) for event in alert.events],
            }
            for alert in self.alerts.values()
        ]

    def _requests_json(self) -> list[dict[str, Any]]:
        return [
            {
                "method": record.method,
                "path": record.path,
                "status": record.status,
                "fault": record.fault,
                "ignored": record.ignored,
                "at": record.at,
                "body": masked_body(record.body),
                "response": record.response_body,
            }
            for record in self.requests
        ]


# --- HTTP plumbing -----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that skips reverse DNS, stops at once and closes its keep-alive connections.

    ``serve_forever`` notices a shutdown only when its poll interval elapses (0.5 s by default), which
    would dominate a test's run time; here a socket pair wakes the accept loop immediately.
    """

    daemon_threads = True
    timeout = ACCEPT_TIMEOUT_SECONDS

    def __init__(self, address: tuple[str, int], fake: FakePagerDuty, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, _Handler)

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

    def close_connections(self) -> None:
        """Shut down every open connection, so a stopped fake answers no pooled keep-alive request."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _BodyTooLargeError(Exception):
    """A request body larger than MAX_REQUEST_BYTES: it is not read."""


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the fake: the API under /v2/, control endpoints under /_fake/."""

    protocol_version = "HTTP/1.1"
    server_version = "FakePagerDuty/1.0"
    sys_version = ""
    timeout = CONNECTION_IDLE_TIMEOUT_SECONDS

    @property
    def fake(self) -> FakePagerDuty:
        return cast(_Server, self.server).fake

    def setup(self) -> None:
        """Disable Nagle: headers and body go out in two writes, and delayed ACKs would add ~40 ms each."""
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default writes every request to stderr; the CLI prints its own masked lines."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        try:
            raw = self._read_body()
        except _BodyTooLargeError:
            self.close_connection = True
            if not path.startswith(CONTROL_PREFIX):
                record = self.fake._arrive(method, path, dict(self.headers.items()), "<body not read: too large>")
                self._answer(
                    record,
                    HTTPStatus.BAD_REQUEST,
                    invalid_body([f"Event is too large (maximum is {MAX_EVENT_BYTES} bytes)"]),
                )
            else:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"status": "error", "message": "body too large"})
            return
        except ValueError:
            self.close_connection = True
            self._send(HTTPStatus.BAD_REQUEST, {"status": "error", "message": "malformed request framing"})
            return
        if path.startswith(CONTROL_PREFIX):
            self._control(method, path, raw)
        else:
            self._api(method, path, raw)

    def _read_body(self) -> bytes:
        """The request body, by Content-Length or chunked transfer encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_REQUEST_BYTES:
            raise _BodyTooLargeError
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_REQUEST_BYTES:
                raise _BodyTooLargeError
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _api(self, method: str, path: str, raw: bytes) -> None:
        fake = self.fake
        body, parsed = _parse_json(raw)
        record = fake._arrive(method, path, dict(self.headers.items()), body)
        if path not in (ENQUEUE_PATH, CHANGE_ENQUEUE_PATH):
            self._answer(record, HTTPStatus.NOT_FOUND, {"status": "error", "message": "Not Found"})
        elif method != "POST":
            self._answer(record, HTTPStatus.METHOD_NOT_ALLOWED, {"status": "error", "message": "Method Not Allowed"})
        elif path == CHANGE_ENQUEUE_PATH:
            fake._process_change_event(record, body, parsed)
            self._answer(record)
        else:
            self._enqueue(record, raw, body, parsed)

    def _enqueue(self, record: RecordedRequest, raw: bytes, body: Any, parsed: bool) -> None:
        fake = self.fake
        fault = fake._next_fault(record)
        if isinstance(fault, Drop):
            fake._wait(fault.delay)
            self._drop(record)
        elif isinstance(fault, Respond):
            if not fake._wait(fault.delay):
                self._drop(record)
                return
            answer = fault.body if fault.body is not None else default_response_body(fault.status, body)
            headers = {} if fault.retry_after is None else {"Retry-After": _retry_after_header(fault.retry_after)}
            self._answer(record, fault.status, answer, headers)
        elif isinstance(fault, Delay) and not fake._wait(fault.seconds):
            self._drop(record)
        else:
            fake._process_event(record, raw, body, parsed)
            self._answer(record)

    def _answer(
        self,
        record: RecordedRequest,
        status: int | None = None,
        body: ResponseBody = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Store the answer on the record (unless already stored), send it, then tell the listener."""
        if status is not None:
            self.fake._complete(record, status, body)
        else:
            status, body = cast(int, record.status), record.response_body
        self._send(status, body, headers)
        self.fake._notify(record)

    def _drop(self, record: RecordedRequest) -> None:
        """Close the connection without a response: the client sees RemoteDisconnected or a reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.fake._notify(record)

    def _send(self, status: int, body: ResponseBody, headers: Mapping[str, str] | None = None) -> None:
        bodiless = status in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED)
        if isinstance(body, str):
            data, content_type = body.encode(), "text/plain; charset=utf-8"
        elif body is None or bodiless:
            data, content_type = b"", ""
        else:
            data, content_type = json.dumps(body).encode(), "application/json"
        try:
            self.send_response(status)
            if content_type and not bodiless:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(0 if bodiless else len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not bodiless:
                self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away (a timeout, say): nothing to tell it

    def _control(self, method: str, path: str, raw: bytes) -> None:
        fake = self.fake
        name = path.removeprefix(CONTROL_PREFIX)
        if method == "GET" and name == "alerts":
            self._send(HTTPStatus.OK, {"alerts": fake._alerts_json()})
        elif method == "GET" and name == "requests":
            self._send(HTTPStatus.OK, {"requests": fake._requests_json()})
        elif method == "POST" and name == "reset":
            fake.reset()
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif method == "POST" and name == "script":
            items, parsed = _parse_json(raw)
            try:
                if not parsed:
                    raise ValueError("body is not JSON")
                faults = faults_from_json(items)
                fake.script(*faults)
            except (ValueError, TypeError) as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"status": "error", "message": str(exc)})
                return
            self._send(HTTPStatus.OK, {"status": "ok", "queued": len(faults)})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"status": "error", "message": f"no control endpoint {method} {path}"})


# --- CLI ---------------------------------------------------------------------------------------------


def format_request_line(record: RecordedRequest) -> str:
    """One short line for a request: action, dedup key, masked routing key, answer. Never the key."""
    body = record.body if isinstance(record.body, dict) else {}
    routing_key = body.get("routing_key")
    if record.path == ENQUEUE_PATH and record.method == "POST":
        what = str(body.get("event_action") or "?")
    elif record.path == CHANGE_ENQUEUE_PATH and record.method == "POST":
        what = "change"
    else:
        what = f"{record.method} {record.path}"
    dedup_key = body.get("dedup_key")
    answer = record.response_body if isinstance(record.response_body, dict) else {}
    if not dedup_key and isinstance(answer.get("dedup_key"), str):
        dedup_key = f"{answer['dedup_key']} (generated)"
    if record.status is None:
        outcome = "dropped (no answer)"
    else:
        outcome = str(record.status)
        errors = answer.get("errors")
        if record.status == HTTPStatus.BAD_REQUEST and isinstance(errors, list) and errors:
            outcome += f" {errors[0]}" + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
    if record.ignored:
        outcome += " (no open alert for this routing key: dropped, as PagerDuty does)"
    if record.fault:
        outcome += f" [scripted {record.fault}]"
    line = f"{what:<11} dedup_key={dedup_key or '-'} routing_key={mask_routing_key(routing_key)} -> {outcome}"
    line = scrub(line, routing_key)
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"


def serve_forever(
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    rate_limit_per_minute: int | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the fake until Ctrl-C, printing the events URL, then one masked line per request; returns 0.

    ``out`` defaults to the current ``sys.stdout`` (looked up at call time, so captured output works).
    """
    stream = sys.stdout if out is None else out
    write_lock = threading.Lock()

    def write(line: str) -> None:
        with write_lock:
            stream.write(line + "\n")
            stream.flush()

    fake = FakePagerDuty(host, port, rate_limit_per_minute=rate_limit_per_minute)
    fake._listener = lambda record: write(format_request_line(record))
    fake.start()
    try:
        write(
            f"fake PagerDuty listening: --events-url {fake.url}  "
            f"(inspect: {fake.base_url}{CONTROL_PREFIX}alerts; Ctrl-C stops)"
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        write("fake PagerDuty stopped")
    finally:
        fake.stop()
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pagerduty_bridge.devtools.fake_pagerduty [--port N]``: serve until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m pagerduty_bridge.devtools.fake_pagerduty",
        description="Local stand-in for PagerDuty's Events API v2 (loopback only).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="loopback address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--rate-limit-per-minute", type=int, default=None, help="events per routing key")
    args = parser.parse_args(argv)
    try:
        _loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    # Ctrl-C and a supervisor's SIGTERM both stop cleanly, even if the parent process ignored SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    return serve_forever(args.host, args.port, rate_limit_per_minute=args.rate_limit_per_minute)


if __name__ == "__main__":
    raise SystemExit(main())
