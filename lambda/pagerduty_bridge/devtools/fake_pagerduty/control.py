"""The stand-in's own HTTP endpoints under ``/_fake/``: inspect, script, reset and act as a responder.

For a stand-in running in another process (``make storm``, the CLI): the same things a test does in
process through ``FakePagerDuty``'s methods, as JSON. Routing keys are shown masked; control requests
are never recorded as API requests.

- ``GET /_fake/alerts``, ``GET /_fake/requests``, ``GET /_fake/webhooks``: what the stand-in holds.
- ``POST /_fake/script``: a JSON array of faults (see ``faults_from_json``).
- ``POST /_fake/reset``: forget everything (the webhook subscription stays).
- ``POST /_fake/act``: ``{"action": "acknowledge", "dedup_key": "…"}`` (optional: ``routing_key``,
  ``agent``, ``assignee``): a responder's action, announced by webhook as one made in PagerDuty's web app.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from pagerduty_bridge.devtools.fake_pagerduty.alerts import RESPONDER_ACTIONS, ResponderAction
from pagerduty_bridge.devtools.fake_pagerduty.faults import Fault, faults_from_json
from pagerduty_bridge.devtools.fake_pagerduty.records import Alert, RecordedRequest, safe_body
from pagerduty_bridge.devtools.fake_pagerduty.webhooks import WebhookDelivery
from pagerduty_bridge.devtools.fake_pagerduty.wire import parse_json
from pagerduty_bridge.redaction import mask_key

Answer = tuple[int, dict[str, Any]]


class Controlled(Protocol):
    """What the control endpoints need of the stand-in (``FakePagerDuty`` provides it)."""

    @property
    def requests(self) -> list[RecordedRequest]: ...

    @property
    def alerts(self) -> dict[tuple[str, str], Alert]: ...

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]: ...

    def script(self, *faults: Fault) -> None: ...

    def reset(self) -> None: ...

    def act(
        self,
        action: ResponderAction,
        dedup_key: str,
        *,
        routing_key: str | None = None,
        agent: str = ...,
        assignee: str | None = None,
    ) -> Alert: ...


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the control endpoint shows it: its routing key masked, its events' too."""
    return {
        "routing_key": mask_key(alert.routing_key),
        "dedup_key": alert.dedup_key,
        "status": alert.status,
        "summary": alert.summary,
        "severity": alert.severity,
        "times_opened": alert.times_opened,
        "incident_number": alert.number,
        "assignee": alert.assignee,
        "events": [safe_body(event) for event in alert.events],
    }


def request_json(record: RecordedRequest) -> dict[str, Any]:
    return {
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "fault": record.fault,
        "ignored": record.ignored,
        "at": record.at,
        "body": safe_body(record.body),
        "response": record.response_body,
    }


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "event_type": delivery.event_type,
        "webhook_id": delivery.webhook_id,
        "status": delivery.status,
        "error": delivery.error,
        "fault": delivery.fault,
        "at": delivery.at,
        "payload": delivery.payload,
    }


class ControlEndpoints:
    """Answers ``/_fake/<name>`` requests from the stand-in's public methods."""

    def __init__(self, target: Controlled) -> None:
        self._target = target
        self._routes: dict[tuple[str, str], Callable[[bytes], Answer]] = {
            ("GET", "alerts"): lambda _: (HTTPStatus.OK, {"alerts": [alert_json(a) for a in target.alerts.values()]}),
            ("GET", "requests"): lambda _: (HTTPStatus.OK, {"requests": [request_json(r) for r in target.requests]}),
            ("GET", "webhooks"): lambda _: (
                HTTPStatus.OK,
                {"webhooks": [delivery_json(d) for d in target.webhook_deliveries]},
            ),
            ("POST", "reset"): self._reset,
            ("POST", "script"): self._script,
            ("POST", "act"): self._act,
        }

    def handle(self, method: str, name: str, raw: bytes) -> Answer:
        route = self._routes.get((method, name))
        if route is None:
            return HTTPStatus.NOT_FOUND, _error(f"no control endpoint {method} /_fake/{name}")
        try:
            return route(raw)
        except (ValueError, TypeError, LookupError) as exc:
            return HTTPStatus.BAD_REQUEST, _error(str(exc))

    def _reset(self, raw: bytes) -> Answer:
        self._target.reset()
        return HTTPStatus.OK, {"status": "ok"}

    def _script(self, raw: bytes) -> Answer:
        items, parsed = parse_json(raw)
        if not parsed:
            raise ValueError("body is not JSON")
        faults = faults_from_json(items)
        self._target.script(*faults)
        return HTTPStatus.OK, {"status": "ok", "queued": len(faults)}

    def _act(self, raw: bytes) -> Answer:
        body, parsed = parse_json(raw)
        if not parsed or not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        action, dedup_key = body.get("action"), body.get("dedup_key")
        if action not in RESPONDER_ACTIONS:
            raise ValueError(f"'action' must be one of: {', '.join(RESPONDER_ACTIONS)}")
        if not isinstance(dedup_key, str) or not dedup_key:
            raise ValueError("'dedup_key' must be a non-empty string")
        options = {key: body[key] for key in ("routing_key", "agent", "assignee") if isinstance(body.get(key), str)}
        alert = self._target.act(action, dedup_key, **options)
        return HTTPStatus.OK, {"status": "ok", "alert": alert_json(alert)}


def _error(message: str) -> dict[str, Any]:
    return {"status": "error", "message": message}
