"""The local function URL: real HTTP in, a payload format 2.0 event to a toy handler, its answer out.

The events are checked against Powertools' own model of a function URL event, so a handler written for
the real thing (Powertools' parser or data classes) reads them unchanged.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
from aws_lambda_powertools.utilities.parser.models import LambdaFunctionUrlModel

from pagerduty_bridge.devtools.function_url import FunctionUrlServer, LambdaContext, function_url_event, http_response

TIMEOUT = 5.0


class Echo:
    """A toy handler: remembers each event and context, answers what ``answer`` says (default: an echo)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.answer: Any = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is not None:
            return self.answer
        return {"statusCode": 201, "headers": {"X-Echo": "yes"}, "body": json.dumps({"path": event["rawPath"]})}


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def function(echo: Echo) -> Iterator[FunctionUrlServer]:
    with FunctionUrlServer(echo, function_name="webhook-receiver") as server:
        yield server


def test_a_request_becomes_a_function_url_event(function: FunctionUrlServer, echo: Echo) -> None:
    response = requests.post(
        function.url + "pagerduty/webhook?tag=a&tag=b&empty=",
        data='{"event": {"id": "1"}}',
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": "v1=abc", "Cookie": "a=1; b=2"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201
    assert response.headers["X-Echo"] == "yes"
    assert response.json() == {"path": "/pagerduty/webhook"}
    (event,) = echo.events
    assert (event["version"], event["routeKey"]) == ("2.0", "$default")
    assert (event["rawPath"], event["rawQueryString"]) == ("/pagerduty/webhook", "tag=a&tag=b&empty=")
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": ""}
    assert event["headers"]["x-pagerduty-signature"] == "v1=abc"  # names lower-cased
    assert event["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in event["headers"])
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"]) == ("POST", "/pagerduty/webhook", "127.0.0.1")
    assert http["userAgent"].startswith("python-requests/")
    assert (event["body"], event["isBase64Encoded"]) == ('{"event": {"id": "1"}}', False)
    LambdaFunctionUrlModel.model_validate(event)  # Powertools' parser reads it
    parsed = LambdaFunctionUrlEvent(event)
    assert (parsed.http_method, parsed.path, parsed.json_body) == ("POST", "/pagerduty/webhook", {"event": {"id": "1"}})


def test_repeated_headers_are_joined_with_commas() -> None:
    event = function_url_event("GET", "/", [("X-Tag", "a"), ("x-tag", "b"), ("Host", "h")], b"")
    assert event["headers"]["x-tag"] == "a,b"
    assert "body" not in event  # no body, no field
    assert "queryStringParameters" not in event and event["rawQueryString"] == ""


def test_a_body_that_is_not_utf8_is_base64_encoded(function: FunctionUrlServer, echo: Echo) -> None:
    data = bytes(range(256))
    assert requests.put(function.url + "blob", data=data, timeout=TIMEOUT).status_code == 201
    (event,) = echo.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data
    assert event["requestContext"]["http"]["method"] == "PUT"
    LambdaFunctionUrlModel.model_validate(event)


def test_a_plain_result_is_answered_200_as_json(function: FunctionUrlServer, echo: Echo) -> None:
    echo.answer = {"received": True}
    dict_answer = requests.get(function.url, timeout=TIMEOUT)
    echo.answer = "accepted"
    text_answer = requests.delete(function.url + "x", timeout=TIMEOUT)
    assert (dict_answer.status_code, dict_answer.json()) == (200, {"received": True})
    assert dict_answer.headers["Content-Type"] == "application/json"
    assert (text_answer.status_code, text_answer.text) == (200, "accepted")
    assert [e["requestContext"]["http"]["method"] for e in echo.events] == ["GET", "DELETE"]


def test_the_answer_is_translated_as_lambda_does(function: FunctionUrlServer, echo: Echo) -> None:
    echo.answer = {
        "statusCode": 200,
        "headers": {"Content-Type": "image/png"},
        "body": base64.b64encode(b"\x89PNG\x00").decode(),
        "isBase64Encoded": True,
        "cookies": ["session=1; Path=/", "theme=dark"],
    }
    response = requests.get(function.url, timeout=TIMEOUT)
    assert response.content == b"\x89PNG\x00"
    assert response.headers["Content-Type"] == "image/png"
    assert response.raw.headers.getlist("Set-Cookie") == ["session=1; Path=/", "theme=dark"]
    echo.answer = {"statusCode": 401}
    denied = requests.post(function.url, data=b"{}", timeout=TIMEOUT)
    assert (denied.status_code, denied.content, denied.headers["Content-Type"]) == (401, b"", "application/json")


def test_a_function_error_is_a_502_and_recorded(function: FunctionUrlServer, echo: Echo) -> None:
    echo.answer = RuntimeError("boom")
    failed = requests.post(function.url, data=b"{}", timeout=TIMEOUT)
    echo.answer = {"statusCode": "ok"}
    unusable = requests.post(function.url, data=b"{}", timeout=TIMEOUT)
    assert (failed.status_code, failed.json()) == (502, {"Message": "Internal Server Error"})
    assert unusable.status_code == 502
    first, second = function.invocations
    assert (first.status, first.error) == (502, "RuntimeError: boom")
    assert second.error is not None and "statusCode" in second.error
    assert first.event["body"] == "{}"


def test_the_context_looks_like_lambdas(function: FunctionUrlServer, echo: Echo) -> None:
    for _ in range(2):
        requests.post(function.url, data=b"{}", timeout=TIMEOUT)
    first, second = echo.contexts
    assert isinstance(first, LambdaContext)
    assert first.function_name == "webhook-receiver"
    assert first.invoked_function_arn.endswith(":function:webhook-receiver")
    assert 0 < first.get_remaining_time_in_millis() <= 30_000
    assert first.aws_request_id != second.aws_request_id
    assert re.fullmatch(r"/aws/lambda/webhook-receiver", first.log_group_name)


def test_http_response_rejects_what_lambda_would_not_send() -> None:
    with pytest.raises(ValueError, match="statusCode"):
        http_response({"statusCode": 99})
    with pytest.raises(ValueError, match="statusCode"):
        http_response({"statusCode": True})
    status, headers, body = http_response({"statusCode": 204, "headers": {"X-A": "1"}})
    assert (status, body) == (204, b"")
    assert ("X-A", "1") in headers


def test_loopback_only_and_url_only_while_running(echo: Echo) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FunctionUrlServer(echo, host="0.0.0.0")
    server = FunctionUrlServer(echo)
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", server.url)
        url = server.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)
