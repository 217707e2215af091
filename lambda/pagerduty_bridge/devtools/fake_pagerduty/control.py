"""The stand-in's own HTTP endpoints under ``/_fake/``: inspect, script and reset.

For a stand-in running in another process (``make storm``, the CLI): the same things a test does in
process through ``FakePagerDuty``'s methods, as JSON. Routing keys are shown masked; control requests
are never recorded as API requests.

- ``GET /_fake/alerts``, ``GET /_fake/requests``: what the stand-in holds.
- ``POST /_fake/script``: a JSON array of faults (see ``faults_from_json``).
- ``POST /_fake/reset``: forget everything.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from pagerduty_bridge.devtools.fake_pagerduty.faults import Fault, faults_from_json
from pagerduty_bridge.devtools.fake_pagerduty.records import Alert, RecordedRequest, safe_body
from pagerduty_bridge.devtools.fake_pagerduty.wire import parse_json
from pagerduty_bridge.redaction import mask_key

Answer = tuple[int, dict[str, Any]]


class Controlled(Protocol):
    """What the control endpoints need of the stand-in (``FakePagerDuty`` provides it)."""

    @property
    def requests(self) -> list[RecordedRequest]: ...

    @property
    def alerts(self) -> dict[tuple[str, str], Alert]: ...

    def script(self, *faults: Fault) -> None: ...

    def reset(self) -> None: ...


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the control endpoint shows it: its routing key masked, its events' too."""
    return {
        "routing_key": mask_key(alert.routing_key),
        "dedup_key": alert.dedup_key,
        "status": alert.status,
        "summary": alert.summary,
        "severity": alert.severity,
        "times_opened": alert.times_opened,
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


class ControlEndpoints:
    """Answers ``/_fake/<name>`` requests from the stand-in's public methods."""

    def __init__(self, target: Controlled) -> None:
        self._target = target
        self._routes: dict[tuple[str, str], Callable[[bytes], Answer]] = {
            ("GET", "alerts"): lambda _: (HTTPStatus.OK, {"alerts": [alert_json(a) for a in target.alerts.values()]}),
            ("GET", "requests"): lambda _: (HTTPStatus.OK, {"requests": [request_json(r) for r in target.requests]}),
            ("POST", "reset"): self._reset,
            ("POST", "script"): self._script,
        }

    def handle(self, method: str, name: str, raw: bytes) -> Answer:
        route = self._routes.get((method, name))
        if route is None:
            return HTTPStatus.NOT_FOUND, _error(f"no control endpoint {method} /_fake/{name}")
        try:
            return route(raw)
        except (ValueError, TypeError) as exc:
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


def _error(message: str) -> dict[str, Any]:
    return {"status": "error", "message": message}
