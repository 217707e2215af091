"""The Events API v2 stand-in, over real loopback HTTP with ``requests``.

Validation is cross-checked against PagerDuty's own OpenAPI document: every body the schema rejects,
the stand-in rejects too, and where the stand-in is stricter it is for a rule PagerDuty documents in
prose (lengths, the 32-character key, https images …), listed case by case below.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from pagerduty_bridge.constants import MAX_DEDUP_KEY_LENGTH, MAX_EVENT_BYTES, MAX_SUMMARY_LENGTH
from pagerduty_bridge.devtools.fake_pagerduty import (
    THROTTLED_BODY,
    Alert,
    Delay,
    Drop,
    FakePagerDuty,
    RecordedRequest,
    Respond,
    format_request_line,
    main,
    validate_change_event,
    validate_event,
)
from pagerduty_bridge.redaction import mask_key
from tests.conftest import assert_valid_change_event, change_enqueue_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENAPI_NAME = "pagerduty-events-v2-openapi.json"
KEY_A = "0123456789abcdef0123456789abcdef"  # made-up 32-character routing keys
KEY_B = "fedcba9876543210fedcba9876543210"
TIMEOUT = 5.0
"""Every HTTP call here: a hang fails the test instead of blocking the suite."""


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as server:
        yield server


def event(
    action: str = "trigger",
    *,
    drop: tuple[str, ...] = (),
    payload: dict[str, Any] | None = None,
    payload_drop: tuple[str, ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    """A valid event for ``action``, then changed: fields set or dropped, payload fields set or dropped."""
    body: dict[str, Any] = {"routing_key": KEY_A, "event_action": action, "dedup_key": "disk-full"}
    if action == "trigger" or payload is not None:
        body["payload"] = {"summary": "Disk full on db-1", "source": "db-1", "severity": "critical"}
    body.update(fields)
    if payload is not None:
        body["payload"].update(payload)
    for key in drop:
        body.pop(key)
    for key in payload_drop:
        body["payload"].pop(key)
    return body


def post(http: requests.Session, fake: FakePagerDuty, body: Any) -> requests.Response:
    return http.post(fake.url, json=body, timeout=TIMEOUT)


# The seed system's complete example payload (DESIGN.md), with a well-formed key: the bridge's canonical body.
SEED_EVENT: dict[str, Any] = {
    "routing_key": KEY_A,
    "event_action": "trigger",
    "dedup_key": "production-hybrid-routing-high-failure-rate-SupportModeSuccessRate",
    "payload": {
        "summary": "🚨 [PRODUCTION] High Failure Rate Alert",
        "source": "production-hybrid-routing",
        "severity": "critical",
        "timestamp": "2025-01-14T14:30:00.000Z",
        "component": "hybrid-routing",
        "group": "ai-orchestrator",
        "class": "performance",
        "custom_details": {
            "alarmName": "production-hybrid-routing-high-failure-rate",
            "threshold": 95,
            "currentValue": 85,
            "recommendations": ["Check hybrid routing health status", "Review recent deployment changes"],
        },
    },
    "links": [{"href": "https://console.aws.amazon.com/cloudwatch/home", "text": "CloudWatch Dashboard"}],
    "images": [{"src": "https://example.com/graph.png", "href": "https://example.com", "alt": "graph"}],
    "client": "matbakh-bedrock-support-manager",
    "client_url": "https://app.matbakh.app/admin/bedrock-activation",
}


@dataclass(frozen=True)
class Case:
    """One body; ``error`` None means valid, else a fragment of the 400's ``errors[]`` naming the field.

    ``schema_rejects``: PagerDuty's OpenAPI schema rejects it too. False for an invalid case means a rule
    PagerDuty documents only in prose, which the stand-in enforces and the schema does not encode.
    """

    id: str
    body: dict[str, Any]
    error: str | None = None
    schema_rejects: bool = True


CASES = [
    # Valid: accepted by the stand-in and by the schema.
    Case("trigger-minimal", event()),
    Case("trigger-seed-payload", SEED_EVENT),
    Case("trigger-without-dedup-key", event(drop=("dedup_key",))),
    Case("timestamp-offset-without-colon", event(payload={"timestamp": "2019-02-12T15:45:24.006+0000"})),
    Case("summary-at-limit", event(payload={"summary": "s" * MAX_SUMMARY_LENGTH})),
    Case("dedup-key-at-limit", event(dedup_key="k" * MAX_DEDUP_KEY_LENGTH)),
    Case("severity-error", event(payload={"severity": "error"})),
    Case("severity-warning", event(payload={"severity": "warning"})),
    Case("severity-info", event(payload={"severity": "info"})),
    Case("empty-links-and-images", event(links=[], images=[])),
    Case("acknowledge", event("acknowledge")),
    Case("resolve", event("resolve")),
    Case("resolve-with-valid-payload", event("resolve", payload={})),
    # Invalid for both.
    Case("routing-key-missing", event(drop=("routing_key",)), "'routing_key' is missing or blank"),
    Case("routing-key-not-string", event(routing_key=12345678901234567890), "'routing_key' must be a string"),
    Case("event-action-missing", event(drop=("event_action",)), "'event_action' is missing or blank"),
    Case("event-action-unknown", event(event_action="create"), "'event_action' is invalid"),
    Case("event-action-blank", event(event_action=""), "'event_action' is missing or blank"),
    Case("dedup-key-not-string", event(dedup_key=42), "'dedup_key' must be a string"),
    Case("dedup-key-null", event(dedup_key=None), "'dedup_key' must be a string"),
    Case("payload-not-object", {**event(), "payload": "disk full"}, "'payload' must be an object"),
    Case("summary-missing", event(payload_drop=("summary",)), "'payload.summary' is missing or blank"),
    Case("summary-not-string", event(payload={"summary": 5}), "'payload.summary' must be a string"),
    Case("source-missing", event(payload_drop=("source",)), "'payload.source' is missing or blank"),
    Case("severity-missing", event(payload_drop=("severity",)), "'payload.severity' is missing or blank"),
    Case("severity-unknown", event(payload={"severity": "fatal"}), "'payload.severity' is invalid"),
    Case("severity-uppercase", event(payload={"severity": "CRITICAL"}), "'payload.severity' is invalid"),
    Case("timestamp-not-string", event(payload={"timestamp": 1700000000}), "'payload.timestamp' must be a string"),
    Case("component-not-string", event(payload={"component": 1}), "'payload.component' must be a string"),
    Case("group-not-string", event(payload={"group": ["a"]}), "'payload.group' must be a string"),
    Case("class-not-string", event(payload={"class": {}}), "'payload.class' must be a string"),
    Case(
        "custom-details-not-object",
        event(payload={"custom_details": "free text"}),
        "'payload.custom_details' must be an object",
    ),
    Case("links-not-array", event(links={"href": "https://x"}), "'links' must be an array"),
    Case("link-not-object", event(links=["https://x"]), "'links[0]' must be an object"),
    Case("link-without-href", event(links=[{"text": "x"}]), "'links[0].href' is missing or blank"),
    Case("link-href-not-string", event(links=[{"href": 1}]), "'links[0].href' must be a string"),
    Case("link-text-not-string", event(links=[{"href": "https://x", "text": 2}]), "'links[0].text' must be"),
    Case("image-without-src", event(images=[{"alt": "x"}]), "'images[0].src' is missing or blank"),
    Case(
        "image-alt-not-string",
        event(images=[{"src": "https://x/y.png", "alt": 3}]),
        "'images[0].alt' must be a string",
    ),
    Case("client-not-string", event(client=1), "'client' must be a string"),
    Case("client-url-not-string", event(client_url=["u"]), "'client_url' must be a string"),
    Case(
        "resolve-with-invalid-payload",
        {**event("resolve"), "payload": {"summary": "x"}},
        "'payload.source' is missing or blank",
    ),
    # Invalid by PagerDuty's documented rules, which the schema does not encode.
    Case("routing-key-short", event(routing_key=KEY_A[:31]), "Length of 'routing_key' is incorrect", False),
    Case("routing-key-long", event(routing_key=KEY_A + "0"), "Length of 'routing_key' is incorrect", False),
    Case(
        "routing-key-non-alphanumeric",
        event(routing_key="0123456789abcdef-0123456789abcde"),
        "'routing_key' cannot contain non-alphanumeric characters",
        False,
    ),
    Case("routing-key-blank", event(routing_key=""), "'routing_key' is missing or blank", False),
    Case("dedup-key-too-long", event(dedup_key="k" * 256), "'dedup_key' is too long", False),
    Case(
        "acknowledge-without-dedup-key",
        event("acknowledge", drop=("dedup_key",)),
        "'dedup_key' is missing or blank (required for acknowledge events)",
        False,
    ),
    Case("resolve-blank-dedup-key", event("resolve", dedup_key=""), "required for resolve events", False),
    Case("trigger-without-payload", event(drop=("payload",)), "'payload' is missing", False),
    Case("summary-too-long", event(payload={"summary": "s" * 1025}), "'payload.summary' is too long", False),
    Case("summary-blank", event(payload={"summary": "  "}), "'payload.summary' is missing or blank", False),
    Case("source-blank", event(payload={"source": ""}), "'payload.source' is missing or blank", False),
    Case(
        "timestamp-not-iso-8601",
        event(payload={"timestamp": "yesterday"}),
        "'payload.timestamp' is not a valid ISO 8601 timestamp",
        False,
    ),
    Case(
        "image-src-not-https",
        event(images=[{"src": "http://example.com/a.png"}]),
        "'images[0].src' must be an https URL",
        False,
    ),
    Case("link-href-blank", event(links=[{"href": ""}]), "'links[0].href' is missing or blank", False),
    Case("unknown-top-level-field", event(service_key="x"), "'service_key' is not a recognized field", False),
]


def _openapi_path() -> Path | None:
    candidates = [
        os.environ.get("PAGERDUTY_OPENAPI_DOCUMENT"),
        REPO_ROOT / "tests" / "fixtures" / OPENAPI_NAME,
        REPO_ROOT / "docs" / OPENAPI_NAME,
        REPO_ROOT.parent / "shared" / OPENAPI_NAME,
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    """PagerDuty's OpenAPI document for the Events API (a development file, not shipped)."""
    path = _openapi_path()
    if path is None:
        pytest.skip(f"{OPENAPI_NAME} not found; set PAGERDUTY_OPENAPI_DOCUMENT to its path")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    """A validator for one schema of the document, its ``#/components/...`` references resolvable."""
    rooted = {**schema, "components": document["components"]}
    jsonschema.Draft7Validator.check_schema(rooted)
    return jsonschema.Draft7Validator(rooted)


def _request_content(document: dict[str, Any], path: str) -> dict[str, Any]:
    """The request body's JSON media type object: its ``schema`` and ``examples``."""
    content: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return content


def _response_schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["responses"][name]["content"]["application/json"]["schema"]
    return schema


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_validation_answers_like_pagerduty(fake: FakePagerDuty, http: requests.Session, case: Case) -> None:
    response = post(http, fake, case.body)
    body = response.json()
    if case.error is None:
        assert response.status_code == 202, body
        assert body["status"] == "success"
        assert body["message"] == "Event processed"
        assert body["dedup_key"] == case.body.get("dedup_key", body["dedup_key"])
        assert body["dedup_key"]
    else:
        assert response.status_code == 400
        assert body["status"] == "invalid event"
        assert body["message"] == "Event object is invalid"
        assert any(case.error in error for error in body["errors"]), body["errors"]
        assert KEY_A not in response.text  # messages name fields, never echo values
        assert fake.alerts == {}


def assert_agreement(case: Case, *, schema_accepts: bool, stand_in_accepts: bool) -> None:
    """The stand-in accepts what the schema accepts, except a documented rule the schema does not encode."""
    if case.error is None:
        assert schema_accepts and stand_in_accepts
    elif case.schema_rejects:
        assert not schema_accepts and not stand_in_accepts
    else:  # a documented PagerDuty rule the schema does not encode
        assert schema_accepts and not stand_in_accepts


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_stand_in_agrees_with_the_openapi_schema(
    fake: FakePagerDuty, http: requests.Session, openapi: dict[str, Any], case: Case
) -> None:
    schema_accepts = _validator(openapi, _request_content(openapi, "/enqueue")["schema"]).is_valid(case.body)
    stand_in_accepts = post(http, fake, case.body).status_code == 202
    assert_agreement(case, schema_accepts=schema_accepts, stand_in_accepts=stand_in_accepts)


def test_openapi_examples_are_accepted(fake: FakePagerDuty, http: requests.Session, openapi: dict[str, Any]) -> None:
    examples = {
        "/v2/enqueue": _request_content(openapi, "/enqueue")["examples"],
        "/v2/change/enqueue": _request_content(openapi, "/change/enqueue")["examples"],
    }
    answered = [
        http.post(fake.base_url + path, json=example["value"], timeout=TIMEOUT).status_code
        for path, named in examples.items()
        for example in named.values()
    ]
    assert answered == [202] * sum(len(named) for named in examples.values())
    assert answered  # the document has examples at all


def test_responses_match_the_openapi_response_schemas(openapi: dict[str, Any], http: requests.Session) -> None:
    success = _validator(openapi, _response_schema(openapi, "Success"))
    error = _validator(openapi, _response_schema(openapi, "Error"))
    with FakePagerDuty(rate_limit=1) as fake:
        accepted = post(http, fake, event()).json()
        throttled = post(http, fake, event()).json()
        invalid = post(http, fake, event(routing_key="short")).json()
    success.validate(accepted)
    error.validate(invalid)
    error.validate(throttled)
    assert throttled == THROTTLED_BODY


def test_body_that_is_not_json_is_an_unrecognized_object(fake: FakePagerDuty, http: requests.Session) -> None:
    not_json = http.post(fake.url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    nan = http.post(fake.url, data=json.dumps(event(payload={"custom_details": {"v": float("nan")}})), timeout=TIMEOUT)
    array = post(http, fake, [event()])
    expected = {"status": "Unrecognized object", "message": "Event object format is unrecognized"}
    assert not_json.status_code == nan.status_code == array.status_code == 400
    assert not_json.json() == {**expected, "errors": ["JSON parse error"]}
    assert nan.json()["errors"] == ["JSON parse error"]  # NaN is Python's extension, not JSON
    assert array.json()["status"] == "Unrecognized object"
    assert fake.requests[0].body == "{not json"


def test_whole_event_is_limited_to_512_kb(fake: FakePagerDuty, http: requests.Session) -> None:
    def sized(size: int) -> bytes:
        body = event(payload={"custom_details": {"pad": ""}})
        padding = size - len(json.dumps(body).encode())
        body["payload"]["custom_details"]["pad"] = "x" * padding
        data = json.dumps(body).encode()
        assert len(data) == size
        return data

    headers = {"Content-Type": "application/json"}
    at_limit = http.post(fake.url, data=sized(MAX_EVENT_BYTES), headers=headers, timeout=TIMEOUT)
    over = http.post(fake.url, data=sized(MAX_EVENT_BYTES + 1), headers=headers, timeout=TIMEOUT)
    assert at_limit.status_code == 202
    assert over.status_code == 400
    assert "too large" in over.json()["errors"][0]


def test_chunked_request_body_is_read(fake: FakePagerDuty, http: requests.Session) -> None:
    data = json.dumps(event()).encode()
    chunks = iter([data[:10], data[10:]])  # a generator makes requests send Transfer-Encoding: chunked
    response = http.post(fake.url, data=chunks, headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 202
    assert fake.requests[0].headers.get("Transfer-Encoding") == "chunked"
    assert fake.requests[0].body == event()


def test_validate_event_is_usable_without_a_server() -> None:
    assert validate_event(SEED_EVENT) == []
    assert validate_event(event(routing_key="short", payload={"severity": "fatal"})) == [
        "Length of 'routing_key' is incorrect (should be 32 characters)",
        "'payload.severity' is invalid (must be one of: critical, error, warning, info)",
    ]


# --- alert model -------------------------------------------------------------------------------------


def test_alert_lifecycle_follows_pagerduty_dedup_rules(fake: FakePagerDuty, http: requests.Session) -> None:
    def status() -> str:
        return fake.alerts[(KEY_A, "disk-full")].status

    assert post(http, fake, event()).status_code == 202
    assert status() == "triggered"
    post(http, fake, event("acknowledge"))
    assert status() == "acknowledged"
    post(http, fake, event(payload={"summary": "Disk still full", "severity": "error"}))
    alert = fake.alerts[(KEY_A, "disk-full")]
    assert (alert.status, alert.summary, alert.severity) == ("acknowledged", "Disk still full", "error")
    post(http, fake, event("resolve"))
    assert status() == "resolved"
    assert fake.open_alerts() == {}
    post(http, fake, event(payload={"summary": "Disk full again"}))
    alert = fake.alerts[(KEY_A, "disk-full")]
    assert (alert.status, alert.times_opened, alert.summary) == ("triggered", 2, "Disk full again")
    assert [e["event_action"] for e in alert.events] == ["trigger", "acknowledge", "trigger", "resolve", "trigger"]
    assert list(fake.open_alerts(KEY_A)) == ["disk-full"]
    assert fake.dropped() == []


def test_ack_and_resolve_on_another_routing_key_are_dropped(fake: FakePagerDuty, http: requests.Session) -> None:
    post(http, fake, event())
    ack = post(http, fake, event("acknowledge", routing_key=KEY_B))
    resolve = post(http, fake, event("resolve", routing_key=KEY_B))
    assert ack.status_code == resolve.status_code == 202  # accepted, as PagerDuty does …
    assert fake.alerts[(KEY_A, "disk-full")].status == "triggered"  # … and dropped
    assert list(fake.open_alerts(KEY_A)) == ["disk-full"]
    assert fake.open_alerts(KEY_B) == {}
    assert [e["event_action"] for e in fake.dropped()] == ["acknowledge", "resolve"]
    assert [r.ignored for r in fake.requests] == [False, True, True]
    assert "dropped" in format_request_line(fake.requests[1])
    assert len(fake.alerts) == 1


def test_ack_and_resolve_without_an_open_alert_change_nothing(fake: FakePagerDuty, http: requests.Session) -> None:
    assert post(http, fake, event("resolve", dedup_key="never-triggered")).status_code == 202
    assert fake.alerts == {}
    post(http, fake, event())
    post(http, fake, event("resolve"))
    assert post(http, fake, event("acknowledge")).status_code == 202
    assert fake.alerts[(KEY_A, "disk-full")].status == "resolved"
    assert len(fake.dropped()) == 2
    assert len(fake.accepted()) == 4


def test_same_dedup_key_on_two_routing_keys_is_two_alerts(fake: FakePagerDuty, http: requests.Session) -> None:
    post(http, fake, event())
    post(http, fake, event(routing_key=KEY_B))
    post(http, fake, event("resolve", routing_key=KEY_B))
    assert fake.alerts[(KEY_A, "disk-full")].status == "triggered"
    assert fake.alerts[(KEY_B, "disk-full")].status == "resolved"


def test_trigger_without_dedup_key_gets_a_generated_one(fake: FakePagerDuty, http: requests.Session) -> None:
    first = post(http, fake, event(drop=("dedup_key",))).json()["dedup_key"]
    second = post(http, fake, event(drop=("dedup_key",))).json()["dedup_key"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second
    assert set(fake.open_alerts(KEY_A)) == {first, second}


def test_concurrent_events_are_all_recorded(fake: FakePagerDuty) -> None:
    def send(index: int) -> int:
        return requests.post(fake.url, json=event(dedup_key=f"alarm-{index}"), timeout=TIMEOUT).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(send, range(24)))
    assert statuses == [202] * 24
    assert len(fake.requests) == 24
    assert set(fake.open_alerts(KEY_A)) == {f"alarm-{i}" for i in range(24)}


# --- scripted faults ---------------------------------------------------------------------------------


def test_scripted_errors_come_first_then_normal_service(fake: FakePagerDuty, http: requests.Session) -> None:
    fake.script(Respond(500), Respond(503))
    first, second = post(http, fake, event()), post(http, fake, event())
    assert (first.status_code, second.status_code) == (500, 503)
    assert first.json() == {"status": "error", "message": "Internal Server Error"}
    assert fake.alerts == {}  # a scripted answer changes no alert
    assert post(http, fake, event()).status_code == 202
    assert fake.alerts[(KEY_A, "disk-full")].status == "triggered"
    assert [(r.status, r.fault) for r in fake.requests] == [(500, "Respond(500)"), (503, "Respond(503)"), (202, None)]
    assert fake.accepted() == [event()]


def test_retry_after_header(fake: FakePagerDuty, http: requests.Session) -> None:
    http_date = "Wed, 21 Oct 2015 07:28:00 GMT"
    fake.script(Respond(429, retry_after=2), Respond(503, retry_after=0.2), Respond(503, retry_after=http_date))
    fake.script(Respond(503))
    throttled, rounded, dated, bare = (post(http, fake, event()) for _ in range(4))
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.json() == THROTTLED_BODY
    assert rounded.headers["Retry-After"] == "1"  # HTTP wants whole seconds: fractions round up
    assert dated.headers["Retry-After"] == http_date
    assert "Retry-After" not in bare.headers


def test_scripted_bodies(fake: FakePagerDuty, http: requests.Session) -> None:
    fake.script(Respond(502, body="<html>Bad Gateway</html>"), Respond(400, body={"status": "custom"}), Respond(202))
    gateway, custom, accepted = (post(http, fake, event()) for _ in range(3))
    assert gateway.text == "<html>Bad Gateway</html>"
    assert gateway.headers["Content-Type"].startswith("text/plain")
    assert custom.json() == {"status": "custom"}
    assert accepted.json() == {"status": "success", "message": "Event processed", "dedup_key": "disk-full"}
    assert fake.alerts == {}  # even a scripted 202 models nothing
    assert fake.accepted() == [event()]


def test_drop_closes_the_connection_without_an_answer(fake: FakePagerDuty, http: requests.Session) -> None:
    fake.script(Drop())
    with pytest.raises(requests.ConnectionError):
        post(http, fake, event())
    assert fake.requests[0].status is None
    assert fake.requests[0].fault == "Drop"
    assert fake.alerts == {}
    assert post(http, fake, event()).status_code == 202  # the next request is served normally
    assert fake.alerts[(KEY_A, "disk-full")].status == "triggered"


def test_delay_answers_normally_but_late(fake: FakePagerDuty, http: requests.Session) -> None:
    fake.script(Delay(0.3), Respond(503, delay=0.2))
    started = time.monotonic()
    delayed = post(http, fake, event())
    delayed_elapsed = time.monotonic() - started
    late_error = post(http, fake, event())
    assert delayed.status_code == 202
    assert delayed_elapsed >= 0.3
    assert time.monotonic() - started >= 0.5
    assert late_error.status_code == 503
    assert fake.alerts[(KEY_A, "disk-full")].status == "triggered"


def test_a_client_that_times_out_still_gets_its_event_accepted(fake: FakePagerDuty, http: requests.Session) -> None:
    """PagerDuty may accept an event whose answer the client never sees: the bridge must resend safely."""
    fake.script(Delay(0.4))
    with pytest.raises(requests.Timeout):
        http.post(fake.url, json=event(), timeout=(TIMEOUT, 0.1))  # (connect, read)
    deadline = time.monotonic() + 2
    while not fake.alerts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.alerts[(KEY_A, "disk-full")].status == "triggered"
    assert fake.requests[0].status == 202


def test_script_rejects_what_is_not_a_fault(fake: FakePagerDuty) -> None:
    with pytest.raises(ValueError, match=r"200\.\.599"):
        fake.script(Respond(99))
    with pytest.raises(TypeError):
        fake.script(500)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        fake.script(Delay(-1))


# --- rate limiting -----------------------------------------------------------------------------------


def test_rate_limit_per_routing_key_over_a_sliding_window(http: requests.Session) -> None:
    time_scale = 60.0  # a "minute" lasts 1 s
    with FakePagerDuty(rate_limit=3, time_scale=time_scale) as fake:
        statuses = [post(http, fake, event(dedup_key=f"k{i}")).status_code for i in range(3)]
        throttled_ack = post(http, fake, event("acknowledge", dedup_key="k0"))
        other_key = post(http, fake, event(routing_key=KEY_B))
        assert statuses == [202, 202, 202]
        assert throttled_ack.status_code == 429
        assert throttled_ack.json() == THROTTLED_BODY
        assert fake.alerts[(KEY_A, "k0")].status == "triggered"  # a throttled event changes nothing
        assert other_key.status_code == 202  # the limit is per routing key
        first_accepted = fake.requests[0].at
        time.sleep(max(0.0, first_accepted + 60 / time_scale - time.monotonic()) + 0.05)
        assert post(http, fake, event("acknowledge", dedup_key="k0")).status_code == 202
        assert fake.alerts[(KEY_A, "k0")].status == "acknowledged"


def test_reset_forgets_everything(http: requests.Session) -> None:
    with FakePagerDuty(rate_limit=1) as fake:
        post(http, fake, event())
        assert post(http, fake, event()).status_code == 429
        fake.script(Respond(500))
        fake.reset()
        assert (fake.requests, fake.alerts, fake.accepted()) == ([], {}, [])
        assert post(http, fake, event()).status_code == 202  # neither the script nor the window survived


# --- change events -----------------------------------------------------------------------------------


def change_event(*, drop: tuple[str, ...] = (), payload: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A valid change event (every documented field), then changed: fields set or dropped."""
    body: dict[str, Any] = {
        "routing_key": KEY_A,
        "payload": {
            "summary": "Deployed pagerduty-bridge v42",
            "source": "ci",
            "timestamp": "2025-01-14T14:30:00.000Z",
            "custom_details": {"commit": "4f2a9c1", "stack": "pagerduty-bridge-prod"},
        },
        "links": [{"href": "https://ci.example.com/builds/42", "text": "Build 42"}],
    }
    body.update(fields)
    if payload is not None:
        body["payload"] = {**body["payload"], **payload}
    for key in drop:
        body.pop(key)
    return body


def post_change(http: requests.Session, fake: FakePagerDuty, body: Any) -> requests.Response:
    return http.post(fake.change_url, json=body, timeout=TIMEOUT)


CHANGE_CASES = [
    # Valid: accepted by the stand-in and by the schema.
    Case("change-every-field", change_event()),
    Case("change-summary-only", {"routing_key": KEY_A, "payload": {"summary": "Rotated a secret"}}),
    Case("change-summary-at-limit", change_event(payload={"summary": "s" * MAX_SUMMARY_LENGTH})),
    Case("change-timestamp-offset-without-colon", change_event(payload={"timestamp": "2015-07-17T08:42:58.315+0000"})),
    Case("change-empty-links", change_event(links=[])),
    Case("change-with-image", change_event(images=[{"src": "https://example.com/deploys.png", "alt": "deploys"}])),
    # Invalid for both.
    Case("change-routing-key-missing", change_event(drop=("routing_key",)), "'routing_key' is missing or blank"),
    Case("change-routing-key-not-string", change_event(routing_key=42), "'routing_key' must be a string"),
    Case("change-payload-missing", change_event(drop=("payload",)), "'payload' is missing"),
    Case("change-payload-not-object", change_event(payload=None) | {"payload": "v42"}, "'payload' must be an object"),
    Case("change-summary-missing", {"routing_key": KEY_A, "payload": {"source": "ci"}}, "'payload.summary' is missing"),
    Case("change-summary-not-string", change_event(payload={"summary": 42}), "'payload.summary' must be a string"),
    Case("change-source-not-string", change_event(payload={"source": ["ci"]}), "'payload.source' must be a string"),
    Case("change-timestamp-not-string", change_event(payload={"timestamp": 1}), "'payload.timestamp' must be a string"),
    Case(
        "change-custom-details-not-object",
        change_event(payload={"custom_details": "v42"}),
        "'payload.custom_details' must be an object",
    ),
    Case("change-links-not-array", change_event(links={"href": "https://x"}), "'links' must be an array"),
    Case("change-link-not-object", change_event(links=["https://x"]), "'links[0]' must be an object"),
    Case("change-link-without-href", change_event(links=[{"text": "x"}]), "'links[0].href' is missing or blank"),
    Case("change-link-href-not-string", change_event(links=[{"href": 1}]), "'links[0].href' must be a string"),
    Case("change-link-text-not-string", change_event(links=[{"href": "https://x", "text": 1}]), "'links[0].text'"),
    Case("change-image-without-src", change_event(images=[{"alt": "x"}]), "'images[0].src' is missing or blank"),
    # Invalid by PagerDuty's documented rules, which the schema does not encode.
    Case("change-routing-key-short", change_event(routing_key=KEY_A[:31]), "Length of 'routing_key'", False),
    Case(
        "change-routing-key-non-alphanumeric",
        change_event(routing_key="0123456789abcdef-0123456789abcde"),
        "'routing_key' cannot contain non-alphanumeric characters",
        False,
    ),
    Case("change-routing-key-blank", change_event(routing_key=""), "'routing_key' is missing or blank", False),
    Case(
        "change-summary-too-long",
        change_event(payload={"summary": "s" * (MAX_SUMMARY_LENGTH + 1)}),
        "'payload.summary' is too long (maximum is 1024 characters)",
        False,
    ),
    Case("change-summary-blank", change_event(payload={"summary": " "}), "'payload.summary' is missing", False),
    Case(
        "change-timestamp-not-iso-8601",
        change_event(payload={"timestamp": "last Tuesday"}),
        "'payload.timestamp' is not a valid ISO 8601 timestamp",
        False,
    ),
    Case("change-link-href-blank", change_event(links=[{"href": " "}]), "'links[0].href' is missing", False),
    Case(
        "change-image-src-not-https",
        change_event(images=[{"src": "http://example.com/a.png"}]),
        "'images[0].src' must be an https URL",
        False,
    ),
    Case(
        "change-alert-field",
        change_event(event_action="trigger"),
        "'event_action' is not a recognized field",
        False,
    ),
]


@pytest.mark.parametrize("case", CHANGE_CASES, ids=[case.id for case in CHANGE_CASES])
def test_change_event_validation_answers_like_pagerduty(
    fake: FakePagerDuty, http: requests.Session, case: Case
) -> None:
    response = post_change(http, fake, case.body)
    body = response.json()
    if case.error is None:
        assert response.status_code == 202, body
        assert body == {"status": "success", "message": "Change event processed"}
        assert fake.change_events == [case.body]
    else:
        assert response.status_code == 400
        assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
        assert any(case.error in error for error in body["errors"]), body["errors"]
        assert KEY_A not in response.text
        assert fake.change_events == []
    assert fake.alerts == {}


@pytest.mark.parametrize("case", CHANGE_CASES, ids=[case.id for case in CHANGE_CASES])
def test_change_event_validation_agrees_with_the_openapi_schema(
    fake: FakePagerDuty, http: requests.Session, openapi: dict[str, Any], case: Case
) -> None:
    schema_accepts = _validator(openapi, _request_content(openapi, "/change/enqueue")["schema"]).is_valid(case.body)
    stand_in_accepts = post_change(http, fake, case.body).status_code == 202
    assert_agreement(case, schema_accepts=schema_accepts, stand_in_accepts=stand_in_accepts)


def test_the_shared_change_event_assertion_follows_the_openapi_schema() -> None:
    """``tests.conftest.assert_valid_change_event`` is PagerDuty's schema plus its documented limits."""
    assert_valid_change_event(change_event())
    assert_valid_change_event({"routing_key": KEY_A, "payload": {"summary": "Rotated a secret"}})
    for case in CHANGE_CASES:
        if case.error is not None:
            with pytest.raises(AssertionError):
                assert_valid_change_event(case.body)
    assert change_enqueue_validator().is_valid(change_event(payload={"timestamp": "2025-01-14T14:30:00Z"}))
    assert not change_enqueue_validator().is_valid(change_event(payload={"timestamp": "yesterday"}))


def test_validate_change_event_is_usable_without_a_server() -> None:
    assert validate_change_event(change_event()) == []
    assert validate_change_event(change_event(routing_key="short", payload={"custom_details": []})) == [
        "Length of 'routing_key' is incorrect (should be 32 characters)",
        "'payload.custom_details' must be an object",
    ]
    assert validate_change_event([change_event()]) == ["Event object must be a JSON object"]


def test_change_events_are_recorded_and_never_change_alerts(fake: FakePagerDuty, http: requests.Session) -> None:
    assert post(http, fake, event()).status_code == 202
    before = fake.alerts
    deploy, rollback = change_event(), change_event(payload={"summary": "Rolled back v42"})
    assert post_change(http, fake, deploy).status_code == 202
    assert post_change(http, fake, rollback).status_code == 202
    assert post_change(http, fake, change_event(drop=("payload",))).status_code == 400
    assert fake.alerts == before  # not even a change event carrying the alert's routing key touches it
    assert fake.change_events == [deploy, rollback]
    assert fake.accepted() == [event()]  # alert events only
    assert [r.path for r in fake.requests] == ["/v2/enqueue"] + ["/v2/change/enqueue"] * 3
    fake.reset()
    assert fake.change_events == []


def test_change_events_honour_the_same_fault_scripts(fake: FakePagerDuty, http: requests.Session) -> None:
    fake.script(Respond(503, retry_after=1), Drop(), Delay(0.2), Respond(202), Respond(500))
    unavailable = post_change(http, fake, change_event())
    with pytest.raises(requests.ConnectionError):
        post_change(http, fake, change_event())
    started = time.monotonic()
    delayed = post_change(http, fake, change_event(payload={"summary": "late"}))
    assert time.monotonic() - started >= 0.2
    scripted = post_change(http, fake, change_event(payload={"summary": "scripted"}))
    alert_event = post(http, fake, event())  # one queue for both endpoints, in arrival order
    assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "1")
    assert unavailable.json() == {"status": "error", "message": "Service Unavailable"}
    assert delayed.status_code == 202
    assert scripted.json() == {"status": "success", "message": "Change event processed"}  # no dedup key
    assert alert_event.status_code == 500
    assert [r.fault for r in fake.requests] == ["Respond(503)", "Drop", "Delay(0.2s)", "Respond(202)", "Respond(500)"]
    assert [c["payload"]["summary"] for c in fake.change_events] == ["late", "scripted"]
    assert post_change(http, fake, change_event()).status_code == 202  # the script is used up
    assert fake.alerts == {}


def test_change_event_answers_match_the_openapi_response_schemas(
    fake: FakePagerDuty, http: requests.Session, openapi: dict[str, Any]
) -> None:
    _validator(openapi, _response_schema(openapi, "Success")).validate(post_change(http, fake, change_event()).json())
    error = _validator(openapi, _response_schema(openapi, "Error"))
    error.validate(post_change(http, fake, change_event(routing_key="short")).json())
    not_json = http.post(fake.change_url, data=b"{", headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert not_json.status_code == 400
    error.validate(not_json.json())
    assert not_json.json()["status"] == "Unrecognized object"


# --- other endpoints ---------------------------------------------------------------------------------


def test_unknown_paths_and_methods(fake: FakePagerDuty, http: requests.Session) -> None:
    missing = http.post(fake.base_url + "/v1/enqueue", json=event(), timeout=TIMEOUT)
    wrong_method = http.get(fake.url, timeout=TIMEOUT)
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert [(r.method, r.path, r.status) for r in fake.requests] == [
        ("POST", "/v1/enqueue", 404),
        ("GET", "/v2/enqueue", 405),
    ]


def test_control_endpoints(fake: FakePagerDuty, http: requests.Session) -> None:
    control = fake.base_url + "/_fake/"
    faults = [{"status": 503, "retry_after": 1}, {"drop": True}, {"delay": 0.05}]
    scripted = http.post(control + "script", json=faults, timeout=TIMEOUT)
    assert scripted.json() == {"status": "ok", "queued": 3}
    unavailable = post(http, fake, event())
    with pytest.raises(requests.ConnectionError):
        post(http, fake, event())
    assert post(http, fake, event()).status_code == 202
    assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "1")

    listed = http.get(control + "requests", timeout=TIMEOUT)
    alerts = http.get(control + "alerts", timeout=TIMEOUT)
    assert [r["status"] for r in listed.json()["requests"]] == [503, None, 202]
    assert listed.json()["requests"][0]["body"]["routing_key"] == mask_key(KEY_A)
    assert [(a["dedup_key"], a["status"], a["routing_key"]) for a in alerts.json()["alerts"]] == [
        ("disk-full", "triggered", mask_key(KEY_A))
    ]
    assert KEY_A not in listed.text
    assert KEY_A not in alerts.text

    bad = http.post(control + "script", json=[{"status": "soon"}], timeout=TIMEOUT)
    assert bad.status_code == 400
    assert "'status'" in bad.json()["message"]
    assert http.get(control + "nothing", timeout=TIMEOUT).status_code == 404
    assert http.post(control + "reset", timeout=TIMEOUT).json() == {"status": "ok"}
    assert (fake.requests, fake.alerts) == ([], {})  # control requests are never recorded


# --- lifecycle, loopback, masking --------------------------------------------------------------------


def test_starts_fast_on_loopback_and_stop_closes_keep_alive_connections() -> None:
    fake = FakePagerDuty()
    with pytest.raises(RuntimeError):
        _ = fake.url
    started = time.monotonic()
    fake.start()
    assert time.monotonic() - started < 0.5
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v2/enqueue", fake.url)
    port = int(fake.base_url.rsplit(":", 1)[1])
    connection = HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    body = json.dumps(event())
    headers = {"Content-Type": "application/json"}
    try:
        connection.request("POST", "/v2/enqueue", body, headers)
        assert connection.getresponse().status == 202
        fake.stop()
        # Without closing open connections, the stopped fake would still answer on this kept-alive one.
        with pytest.raises((HTTPException, ConnectionError)):
            connection.request("POST", "/v2/enqueue", body, headers)
            connection.getresponse()
    finally:
        connection.close()
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{port}/v2/enqueue", json=event(), timeout=TIMEOUT)
    assert [r.status for r in fake.requests] == [202]


def test_stop_abandons_delayed_requests_quickly() -> None:
    fake = FakePagerDuty().start()
    fake.script(Delay(10))
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            outcome.append(requests.post(fake.url, json=event(), timeout=TIMEOUT).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 2
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop()
    caller.join(timeout=TIMEOUT)
    assert time.monotonic() - started < 2.0  # not the scripted 10 s
    assert len(outcome) == 1
    assert isinstance(outcome[0], requests.ConnectionError)
    assert fake.alerts == {}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
def test_only_loopback_addresses_are_accepted(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakePagerDuty(host=host)


def test_localhost_and_ipv6_loopback(http: requests.Session) -> None:
    with FakePagerDuty(host="localhost") as fake:
        assert fake.base_url.startswith("http://127.0.0.1:")
    try:
        ipv6 = FakePagerDuty(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with ipv6:
        assert ipv6.url.startswith("http://[::1]:")
        assert post(http, ipv6, event()).status_code == 202


def test_routing_keys_are_masked_everywhere_they_could_show() -> None:
    """The stand-in masks keys with the package's own ``mask_key``: last four characters only."""
    alert = Alert(KEY_A, "disk-full", "triggered", "s", "info", [event()])
    record = RecordedRequest("/v2/enqueue", {}, {**event(), "dedup_key": KEY_A}, 202, 0.0)
    assert KEY_A not in repr(alert)
    assert mask_key(KEY_A) in repr(alert)
    assert KEY_A not in repr(record)
    line = format_request_line(record)
    assert KEY_A not in line  # even pasted into the dedup key
    assert f"routing_key={mask_key(KEY_A)} " in line
    assert mask_key(KEY_A).endswith("cdef") and set(mask_key(KEY_A)[:-4]) == {"*"}
    keyless = RecordedRequest("/v2/enqueue", {}, event(drop=("routing_key",)), 400, 0.0)
    assert "routing_key=- " in format_request_line(keyless)
    numeric = RecordedRequest("/v2/enqueue", {}, {**event(), "routing_key": 12345678901234567890}, 400, 0.0)
    assert "routing_key=****************7890 " in format_request_line(numeric)


def test_cli_main_refuses_a_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0", "--port", "0"])
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


def test_serve_forever_prints_the_events_url_and_never_the_routing_key() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "lambda"), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pagerduty_bridge.devtools.fake_pagerduty", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        banner = lines.get(timeout=10)
        match = re.search(r"--events-url (http://127\.0\.0\.1:\d+/v2/enqueue)", banner)
        assert match, banner
        assert requests.post(match.group(1), json=event(), timeout=TIMEOUT).status_code == 202
        assert (
            requests.post(match.group(1), json=event("resolve", drop=("dedup_key",)), timeout=TIMEOUT).status_code
            == 400
        )
        triggered, rejected = lines.get(timeout=5), lines.get(timeout=5)
        process.send_signal(signal.SIGINT)
        return_code = process.wait(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    rest = [lines.get_nowait() for _ in range(lines.qsize())]
    output = "".join([banner, triggered, rejected, *rest]) + process.stderr.read()
    assert return_code == 0
    assert KEY_A not in output
    assert "trigger" in triggered and "dedup_key=disk-full" in triggered and mask_key(KEY_A) in triggered
    assert triggered.rstrip().endswith("-> 202")
    assert "-> 400" in rejected and "'dedup_key'" in rejected
    assert any("stopped" in line for line in rest)


def test_attack_a_hostile_dedup_key_is_shown_escaped_on_its_own_line() -> None:
    """The stand-in prints what senders send: a dedup key cannot clear the screen or forge a line."""
    record = RecordedRequest("/v2/enqueue", {}, {**event(), "dedup_key": "evil\x1b[2J\nresolve  ok"}, 202, 0.0)
    line = format_request_line(record)
    assert "\x1b" not in line and "\n" not in line
    assert "evil\\x1b[2J\\nresolve" in line
