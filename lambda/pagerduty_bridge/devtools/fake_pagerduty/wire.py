"""What the Events API says on the wire: its paths, the JSON it accepts, and its answers in its own words.

Every response body the stand-in sends is built here, so each wording exists once. Sources: PagerDuty's
OpenAPI document for the Events API (response schemas and the "Unrecognized object" example) and 400
bodies PagerDuty really sends, e.g. ``{"status": "invalid event", "message": "Event object is invalid",
"errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final, TypeAlias

from pagerduty_bridge.constants import MAX_EVENT_BYTES

ENQUEUE_PATH: Final = "/v2/enqueue"
CHANGE_ENQUEUE_PATH: Final = "/v2/change/enqueue"
API_PATHS: Final = (ENQUEUE_PATH, CHANGE_ENQUEUE_PATH)
CONTROL_PREFIX: Final = "/_fake/"
"""The stand-in's own endpoints (inspect, script, reset); never recorded as API requests."""
MAX_REQUEST_BYTES: Final = 16 * MAX_EVENT_BYTES
"""Bodies larger than this are not even read (the connection is closed): it protects the test process."""

ResponseBody: TypeAlias = dict[str, Any] | str | None
"""An answer's body: JSON (a dict), text (a ``str``, e.g. a proxy's HTML page) or none."""

THROTTLED_BODY: Final = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}
CHANGE_ACCEPTED_BODY: Final = {"status": "success", "message": "Change event processed"}
"""PagerDuty's 202 to a change event: unlike an alert event's, it carries no dedup key."""


def accepted_body(dedup_key: str) -> dict[str, Any]:
    """PagerDuty's 202 to an alert event: the dedup key it filed the event under."""
    return {"status": "success", "message": "Event processed", "dedup_key": dedup_key}


def invalid_body(errors: Sequence[str]) -> dict[str, Any]:
    """PagerDuty's 400 to an event that breaks its rules: ``errors`` names each broken rule."""
    return {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}


def too_large_body() -> dict[str, Any]:
    """PagerDuty's 400 to an event over 512 KB."""
    return invalid_body([f"Event is too large (maximum is {MAX_EVENT_BYTES} bytes)"])


def unrecognized_body(error: str) -> dict[str, Any]:
    """PagerDuty's answer to a body that is not a JSON object (from its OpenAPI document's example)."""
    return {
        "status": "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": [error],
    }


def error_body(status: int) -> dict[str, Any]:
    """``{"status": "error", "message": <the status's reason phrase>}``, for statuses PagerDuty has no words for."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown Status"
    return {"status": "error", "message": phrase}


def default_response_body(status: int, event: object = None, *, change: bool = False) -> dict[str, Any]:
    """A PagerDuty-like body for a scripted status.

    A 202 to an alert event echoes the event's dedup key (or a generated one); a 202 to a change event
    (``change``) is the change answer, which has none.
    """
    if status == HTTPStatus.ACCEPTED:
        if change:
            return dict(CHANGE_ACCEPTED_BODY)
        dedup_key = event.get("dedup_key") if isinstance(event, dict) else None
        return accepted_body(dedup_key if isinstance(dedup_key, str) and dedup_key else uuid.uuid4().hex)
    if status == HTTPStatus.BAD_REQUEST:
        return invalid_body(["Scripted fault: event rejected"])
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return dict(THROTTLED_BODY)
    return error_body(status)


def retry_after_header(value: float | str) -> str:
    """HTTP's delay-seconds is a whole number: fractions round up; strings (an HTTP date) go verbatim."""
    if isinstance(value, str):
        return value
    return str(max(0, math.ceil(value)))


def utc_now() -> datetime:
    """The wall-clock time, in UTC: the default clock incidents open and webhooks occur at."""
    return datetime.now(UTC)


def iso_timestamp(moment: datetime) -> str:
    """``2025-01-14T14:30:00.000Z``: the form PagerDuty's own timestamps take (milliseconds, UTC, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _reject_json_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's parser accepts them, PagerDuty's does not."""
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> tuple[Any, bool]:
    """The parsed body and True, or the body as text and False when it is not JSON."""
    try:
        return json.loads(raw, parse_constant=_reject_json_constant), True
    except (ValueError, RecursionError):
        return raw.decode("utf-8", errors="replace"), False
