"""PagerDuty's checks on alert and change events, as messages naming the field; pure functions.

Pure, so unit tests can check the bridge's wire bodies without a server. Messages name fields and never
contain their values, so they are safe to log. The rules are those of PagerDuty's OpenAPI document for
the Events API (``/enqueue`` and ``/change/enqueue`` request schemas) plus the limits its documentation
states in prose and the schema does not encode (the 32-character key, lengths, https images):
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and
https://developer.pagerduty.com/docs/events-api-v2/send-change-events/.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pagerduty_bridge.constants import MAX_DEDUP_KEY_LENGTH, MAX_SUMMARY_LENGTH, ROUTING_KEY_LENGTH, SEVERITIES

EVENT_ACTIONS: Final = ("trigger", "acknowledge", "resolve")
KNOWN_EVENT_FIELDS: Final = frozenset(
    {"routing_key", "event_action", "dedup_key", "payload", "links", "images", "client", "client_url"}
)
"""Every top-level field PagerDuty documents for an alert event; anything else is rejected."""
KNOWN_CHANGE_EVENT_FIELDS: Final = frozenset({"routing_key", "payload", "links", "images"})
"""Every top-level field of the OpenAPI document's change event schema; anything else is rejected."""
MAX_FIELD_NAME_SHOWN: Final = 40
"""An unknown field's name is quoted in the error up to this length (it is the client's text)."""


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


def _check_unknown_fields(event: Mapping[str, Any], known: frozenset[str]) -> list[str]:
    return [f"'{str(key)[:MAX_FIELD_NAME_SHOWN]}' is not a recognized field" for key in event if key not in known]


def _check_routing_key(value: object) -> list[str]:
    errors = _check_required_string(value, "routing_key")
    if errors or not isinstance(value, str):
        return errors
    if len(value) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    if not (value.isascii() and value.isalnum()):
        errors.append("'routing_key' cannot contain non-alphanumeric characters.")  # PagerDuty's wording
    return errors


def _check_summary(payload: Mapping[str, Any]) -> list[str]:
    summary = payload.get("summary")
    errors = _check_required_string(summary, "payload.summary")
    if not errors and isinstance(summary, str) and len(summary) > MAX_SUMMARY_LENGTH:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY_LENGTH} characters)")
    return errors


def _check_timestamp(payload: Mapping[str, Any]) -> list[str]:
    errors = _check_string(payload, "timestamp", "payload.timestamp")
    timestamp = payload.get("timestamp")
    if not errors and isinstance(timestamp, str) and not _is_iso8601(timestamp):
        errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
    return errors


def _check_custom_details(payload: Mapping[str, Any]) -> list[str]:
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        return ["'payload.custom_details' must be an object"]
    return []


def _check_severity(payload: Mapping[str, Any]) -> list[str]:
    severity = payload.get("severity")
    if _is_blank(severity):
        return ["'payload.severity' is missing or blank"]
    if severity not in SEVERITIES:
        return [f"'payload.severity' is invalid (must be one of: {', '.join(SEVERITIES)})"]
    return []


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


def _check_links_and_images(event: Mapping[str, Any]) -> list[str]:
    """``links[].href`` is required; ``images[].src`` is required and must be https (PagerDuty's docs)."""
    errors: list[str] = []
    if "links" in event:
        errors.extend(_check_context_list(event["links"], "links", "href", ("text",), https=False))
    if "images" in event:
        errors.extend(_check_context_list(event["images"], "images", "src", ("href", "alt"), https=True))
    return errors


def _check_payload(payload: object) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' must be an object"]
    errors = _check_summary(payload)
    errors.extend(_check_required_string(payload.get("source"), "payload.source"))
    errors.extend(_check_severity(payload))
    errors.extend(_check_timestamp(payload))
    for key in ("component", "group", "class"):
        errors.extend(_check_string(payload, key, f"payload.{key}"))
    errors.extend(_check_custom_details(payload))
    return errors


def _check_action(action: object) -> list[str]:
    if _is_blank(action):
        return ["'event_action' is missing or blank"]
    if action not in EVENT_ACTIONS:
        return [f"'event_action' is invalid (must be one of: {', '.join(EVENT_ACTIONS)})"]
    return []


def _check_dedup_key(event: Mapping[str, Any], action: object) -> list[str]:
    dedup_key = event.get("dedup_key")
    if action in ("acknowledge", "resolve") and _is_blank(dedup_key):
        return [f"'dedup_key' is missing or blank (required for {action} events)"]
    if "dedup_key" in event and not isinstance(dedup_key, str):
        return ["'dedup_key' must be a string"]
    if isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
        return [f"'dedup_key' is too long (maximum is {MAX_DEDUP_KEY_LENGTH} characters)"]
    return []


def validate_event(event: object) -> list[str]:
    """PagerDuty's checks on an alert event (``POST /v2/enqueue``); empty when it is valid."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    action = event.get("event_action")
    errors = _check_unknown_fields(event, KNOWN_EVENT_FIELDS)
    errors.extend(_check_routing_key(event.get("routing_key")))
    errors.extend(_check_action(action))
    errors.extend(_check_dedup_key(event, action))
    if "payload" in event:
        errors.extend(_check_payload(event["payload"]))
    elif action == "trigger":
        errors.append("'payload' is missing (required for trigger events)")
    errors.extend(_check_links_and_images(event))
    errors.extend(_check_string(event, "client", "client"))
    errors.extend(_check_string(event, "client_url", "client_url"))
    return errors


def _check_change_payload(payload: object) -> list[str]:
    """The OpenAPI document's ``ChangeEventPayload``: summary required (at most 1024 characters);
    source, timestamp (ISO 8601) and custom_details (an object) optional."""
    if not isinstance(payload, dict):
        return ["'payload' must be an object"]
    errors = _check_summary(payload)
    errors.extend(_check_string(payload, "source", "payload.source"))
    errors.extend(_check_timestamp(payload))
    errors.extend(_check_custom_details(payload))
    return errors


def validate_change_event(event: object) -> list[str]:
    """PagerDuty's checks on a change event (``POST /v2/change/enqueue``); empty when it is valid.

    A change event pages nobody, but PagerDuty still rejects a malformed one with 400, and the bridge
    must learn that in tests rather than in production.
    """
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = _check_unknown_fields(event, KNOWN_CHANGE_EVENT_FIELDS)
    errors.extend(_check_routing_key(event.get("routing_key")))
    if "payload" in event:
        errors.extend(_check_change_payload(event["payload"]))
    else:
        errors.append("'payload' is missing (required for change events)")
    errors.extend(_check_links_and_images(event))
    return errors
