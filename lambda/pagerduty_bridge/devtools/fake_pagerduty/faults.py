"""Scripted faults: how the next requests to the Events API are answered instead of (or before) normally.

A test queues faults (``FakePagerDuty.script`` or ``POST /_fake/script``); each request to the Events
API (alert or change events) takes the first one. This is how the bridge's retry and no-loss paths meet
outages, throttling, proxies' HTML pages, resets and slow answers over real sockets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, TypeAlias

from pagerduty_bridge.devtools.fake_pagerduty.wire import ResponseBody

MAX_STATUS: Final = 599
"""The largest HTTP status code (RFC 9110 reserves 1xx-5xx); a fault answers 200..599."""
FAULT_JSON_KEYS: Final = frozenset({"status", "body", "retry_after", "delay", "drop"})


@dataclass
class Respond:
    """Answer the next request with this status (and body) and change no alert.

    ``body`` None means a PagerDuty-like body for the status; a ``str`` is sent as text (a load
    balancer's HTML page, say). ``retry_after`` sets a ``Retry-After`` header: numbers are whole seconds
    as HTTP requires (fractions round up; 0 keeps tests fast), strings are sent verbatim. ``location``
    sets a ``Location`` header: a proxy or portal redirecting the request elsewhere.
    """

    status: int
    body: ResponseBody = None
    retry_after: float | str | None = None
    delay: float = 0.0
    location: str | None = None


@dataclass
class Drop:
    """Read the next request, then close the connection without answering: the client sees a reset."""

    delay: float = 0.0


@dataclass
class Delay:
    """Process the next request normally, but only after ``seconds``: for client timeouts and budgets."""

    seconds: float


Fault: TypeAlias = Respond | Drop | Delay


def check_fault(fault: object) -> Fault:
    """The fault itself when it is well-formed; ``ValueError``/``TypeError`` naming the problem otherwise."""
    if isinstance(fault, Respond):
        if not HTTPStatus.OK <= fault.status <= MAX_STATUS:
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


def describe_fault(fault: Fault) -> str:
    """A short name for a fault, as recorded on the request it was applied to."""
    if isinstance(fault, Respond):
        return f"Respond({fault.status})"
    if isinstance(fault, Drop):
        return "Drop"
    return f"Delay({fault.seconds:g}s)"


class FaultScript:
    """Faults queued for the next requests, first in, first out. Not thread-safe: its owner locks."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()

    def extend(self, faults: tuple[object, ...]) -> None:
        """Queue faults after checking them all (nothing is queued when one is malformed)."""
        checked = [check_fault(fault) for fault in faults]
        self._queue.extend(checked)

    def next(self) -> Fault | None:
        """The fault for the next request, or None to serve it normally."""
        return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        self._queue.clear()


def faults_from_json(items: object) -> list[Fault]:
    """Faults from the control endpoint's JSON array.

    Items: ``{"status": 503, "retry_after": 2, "body": {...}, "delay": 0.1}`` → Respond,
    ``{"drop": true, "delay": 0.1}`` → Drop, ``{"delay": 0.5}`` → Delay.
    """
    if not isinstance(items, list):
        raise ValueError("expected a JSON array of faults")
    return [_fault_from_json(item, f"fault {index}") for index, item in enumerate(items)]


def _fault_from_json(item: object, where: str) -> Fault:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object")
    unknown = sorted(set(item) - FAULT_JSON_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    delay = item.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ValueError(f"{where}: 'delay' must be a number of seconds")
    if item.get("drop") is True:
        return Drop(float(delay))
    if "status" in item:
        return _respond_from_json(item, float(delay), where)
    if "delay" in item:
        return Delay(float(delay))
    raise ValueError(f"{where}: needs 'status', 'drop' or 'delay'")


def _respond_from_json(item: dict[str, Any], delay: float, where: str) -> Respond:
    status, body, retry_after = item["status"], item.get("body"), item.get("retry_after")
    if isinstance(status, bool) or not isinstance(status, int):
        raise ValueError(f"{where}: 'status' must be an integer")
    if body is not None and not isinstance(body, dict | str):
        raise ValueError(f"{where}: 'body' must be an object or a string")
    if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int | float | str)):
        raise ValueError(f"{where}: 'retry_after' must be a number or a string")
    return Respond(status, body, retry_after, delay)
