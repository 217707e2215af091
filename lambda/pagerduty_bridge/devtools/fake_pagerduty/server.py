"""The stand-in's HTTP side: reads each request, hands it to the Events API model, sends what it says.

The server owns only HTTP: framing, the ``/_fake/`` routes, answering or dropping the connection, and
telling a listener (the CLI) about each answered request. What to answer is ``EventsService.handle``'s
decision alone.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from http import HTTPStatus
from typing import cast
from urllib.parse import urlsplit

from pagerduty_bridge.devtools.fake_pagerduty.control import ControlEndpoints
from pagerduty_bridge.devtools.fake_pagerduty.records import RecordedRequest
from pagerduty_bridge.devtools.fake_pagerduty.service import ApiRequest, EventsService
from pagerduty_bridge.devtools.fake_pagerduty.wire import CONTROL_PREFIX, MAX_REQUEST_BYTES
from pagerduty_bridge.devtools.loopback import BodyTooLargeError, LoopbackHTTPServer, QuietHandler, read_body

RequestListener = Callable[[RecordedRequest], None]


class EventsHTTPServer(LoopbackHTTPServer):
    """A loopback server for one ``EventsService`` and its control endpoints."""

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        service: EventsService,
        control: ControlEndpoints,
        on_request: RequestListener | None = None,
    ) -> None:
        self.service = service
        self.control = control
        self.on_request = on_request
        super().__init__(address, EventsRequestHandler, family)


class EventsRequestHandler(QuietHandler):
    """Routes requests: the Events API under /v2/, control endpoints under /_fake/."""

    server_version = "FakePagerDuty/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        server = cast(EventsHTTPServer, self.server)
        path = urlsplit(self.path).path
        control = path.startswith(CONTROL_PREFIX)
        raw: bytes | None
        try:
            raw = read_body(self, MAX_REQUEST_BYTES)
        except BodyTooLargeError:
            self.close_connection = True
            if control:
                self.send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"status": "error", "message": "body too large"})
                return
            raw = None  # the Events API answers it as PagerDuty would: 400, too large
        except ValueError:
            self.close_connection = True
            self.send(HTTPStatus.BAD_REQUEST, {"status": "error", "message": "malformed request framing"})
            return
        if control:
            status, body = server.control.handle(method, path.removeprefix(CONTROL_PREFIX), raw or b"")
            self.send(status, body)
            return
        reply = server.service.handle(ApiRequest(method, path, dict(self.headers.items()), raw))
        # Told before the answer goes out: a client that waits for each answer sees its requests
        # listed in the order it made them (each request runs on a thread of its own).
        if server.on_request is not None:
            server.on_request(reply.record)
        if reply.status is None:
            self.drop()
        else:
            self.send(reply.status, reply.body, reply.headers)
