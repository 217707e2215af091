"""A Lambda function URL on a loopback port: each HTTP request becomes a payload format 2.0 event.

The bridge's webhook receiver runs behind a function URL. To test it end to end without AWS, this
server turns each request into the event a function URL would deliver, calls the handler in process
with a small context object, and answers with what the handler returned, translated as Lambda does.

Sources: AWS Lambda developer guide, "Invoking Lambda function URLs" (request payload: ``version`` 2.0,
``rawPath``, ``rawQueryString``, ``cookies``, lower-cased ``headers`` with repeated values joined by
commas, ``queryStringParameters``, ``requestContext.http``, ``body``, ``isBase64Encoded``; response
format: a result without ``statusCode`` is answered 200 with it as a JSON body; a function error is a
502) and "Lambda quotas" (6 MB synchronous request payload).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlsplit

from pagerduty_bridge.devtools.loopback import (
    DEFAULT_HOST,
    BodyTooLargeError,
    LoopbackHTTPServer,
    QuietHandler,
    ServerThread,
    base_url,
    loopback,
    read_body,
)

MAX_REQUEST_BYTES: Final = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit is 6 MB ("Lambda quotas"); a function URL refuses more."""
DEFAULT_TIMEOUT_SECONDS: Final = 30.0
"""What ``context.get_remaining_time_in_millis`` counts down from, like a function's configured timeout."""
DEFAULT_FUNCTION_NAME: Final = "pagerduty-bridge-webhook"
ACCOUNT_ID: Final = "123456789012"
REGION: Final = "eu-west-1"
URL_ID: Final = "localfunctionurl0000000000000000"
"""Stands in for the 32-character id in ``https://<url-id>.lambda-url.<region>.on.aws``."""
FUNCTION_ERROR_BODY: Final = {"Message": "Internal Server Error"}
"""What a function URL answers (with 502) when the function raised or returned something unusable."""
HTTP_STATUSES: Final = range(100, 600)
"""An HTTP status is three digits, 1xx to 5xx (RFC 9110); Lambda refuses any other ``statusCode``."""

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object a handler (and Powertools) reads."""

    function_name: str = DEFAULT_FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


@dataclass
class Invocation:
    """One call of the handler: the event it got, what it returned, and the HTTP status answered.

    ``error`` names the exception the handler raised (or why its result was unusable); it was answered 502.
    """

    event: dict[str, Any]
    status: int
    result: Any = None
    error: str | None = None


def _joined_headers(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Lower-cased headers, repeated ones joined by commas; cookies apart, as function URLs deliver them."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined, cookies


def _query_parameters(raw_query: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    return parameters


def function_url_event(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event a function URL delivers for one request (``target`` is path?query)."""
    moment = now or datetime.now(UTC)
    parts = urlsplit(target)
    joined, cookies = _joined_headers(headers)
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": joined,
        "requestContext": _request_context(method, parts.path or "/", joined, source_ip, moment),
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if parts.query:
        event["queryStringParameters"] = _query_parameters(parts.query)
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    return event


def _request_context(
    method: str, path: str, headers: dict[str, str], source_ip: str, moment: datetime
) -> dict[str, Any]:
    return {
        "accountId": "anonymous",
        "apiId": URL_ID,
        "domainName": f"{URL_ID}.lambda-url.{REGION}.on.aws",
        "domainPrefix": URL_ID,
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(moment.timestamp() * 1000),
    }


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Lambda's translation of a handler's result into an HTTP answer: (status, headers, body).

    A dict with ``statusCode`` is the answer itself (``headers``, ``body``, ``isBase64Encoded``,
    ``cookies`` as one ``Set-Cookie`` each); anything else is answered 200 with the result as JSON (a
    string as it is). The content type defaults to JSON, as Lambda's does. Raises ``ValueError`` for a
    result Lambda could not use (it answers 502 then).
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        text = result if isinstance(result, str) else json.dumps(result)
        return HTTPStatus.OK, [("Content-Type", "application/json")], text.encode("utf-8")
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or status not in HTTP_STATUSES:
        raise ValueError(f"statusCode must be an HTTP status, got {status!r}")
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body")
    text = "" if body is None else body if isinstance(body, str) else json.dumps(body)
    data = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode("utf-8")
    return status, headers, data


class _FunctionUrlHTTPServer(LoopbackHTTPServer):
    """A loopback server whose requests invoke ``owner``'s handler."""

    def __init__(self, address: tuple[str, int], owner: FunctionUrlServer) -> None:
        self.owner = owner
        super().__init__(address, _FunctionUrlRequestHandler, owner.family)


class _FunctionUrlRequestHandler(QuietHandler):
    """Reads a request, invokes the function with its event, answers with what Lambda makes of the result."""

    server_version = "LocalFunctionUrl/1.0"

    def _invoke(self) -> None:
        owner = cast(_FunctionUrlHTTPServer, self.server).owner
        try:
            body = read_body(self, MAX_REQUEST_BYTES)
        except BodyTooLargeError:
            self.close_connection = True
            self.send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"Message": "Request must be smaller than 6 MB"})
            return
        except ValueError:
            self.close_connection = True
            self.send(HTTPStatus.BAD_REQUEST, {"Message": "malformed request framing"})
            return
        event = function_url_event(
            self.command, self.path, self.headers.items(), body, source_ip=self.client_address[0]
        )
        status, headers, data = owner.invoke(event)
        self.send(status, data, headers)

    # A function URL passes every method to the function.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _invoke


class FunctionUrlServer:
    """Serves ``handler`` as a function URL would, on a loopback port; a context manager with ``url``.

    Each request runs the handler on its own thread (as concurrent invocations run in their own
    instances); ``invocations`` records every call.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        function_name: str = DEFAULT_FUNCTION_NAME,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.host, self.family = loopback(host)
        self._port = port
        self._handler = handler
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._invocations: list[Invocation] = []
        self._running: ServerThread | None = None

    def start(self) -> FunctionUrlServer:
        if self._running is None:
            server = _FunctionUrlHTTPServer((self.host, self._port), self)
            self._running = ServerThread(server, f"function-url:{server.server_port}")
        return self

    def stop(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.stop()

    def __enter__(self) -> FunctionUrlServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/``, as a function URL ends in a slash."""
        if self._running is None:
            raise RuntimeError("FunctionUrlServer is not running: call start() or use it as a context manager")
        return base_url(self.host, self.family, self._running.server.server_port) + "/"

    @property
    def invocations(self) -> list[Invocation]:
        with self._lock:
            return list(self._invocations)

    def invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Call the handler with ``event`` and a fresh context; the HTTP answer Lambda would give."""
        context = LambdaContext(function_name=self.function_name, timeout_seconds=self.timeout_seconds)
        invocation = Invocation(event, HTTPStatus.BAD_GATEWAY)
        try:
            invocation.result = self._handler(event, context)
            status, headers, data = http_response(invocation.result)
        except Exception as exc:  # noqa: BLE001 - any function error is Lambda's 502, recorded for the test
            invocation.error = f"{type(exc).__name__}: {exc}"
            status, headers = HTTPStatus.BAD_GATEWAY, [("Content-Type", "application/json")]
            data = json.dumps(FUNCTION_ERROR_BODY).encode()
        invocation.status = status
        with self._lock:
            self._invocations.append(invocation)
        return status, headers, data
