"""Fixtures every test layer shares: a clean environment, a routing key, PagerDuty's schema, the stand-in."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pagerduty_bridge import constants as c
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
OPENAPI = FIXTURES / "pagerduty-events-v2-openapi.json"
ROUTING_KEY = "R0ut1ngKey0000000000000000000042"
"""A well-formed (32 letters and digits) key that tests search for in every output."""
OTHER_ROUTING_KEY = "0therRoutingKey00000000000000077"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's settings or AWS credentials; moto gets dummy ones."""
    for name in c.ALL_SETTINGS_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", c.METRICS_NAMESPACE)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))


_OPENAPI_DOC = load_json(OPENAPI)


def _request_body(path: str) -> dict[str, Any]:
    """The schema of ``POST /v2{path}``'s body in PagerDuty's OpenAPI document."""
    body: dict[str, Any] = _OPENAPI_DOC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return body


@functools.cache
def _request_schema(path: str) -> jsonschema.Draft7Validator:
    """PagerDuty's own request schema for ``POST /v2{path}``, with its components resolvable; built once."""
    schema = {**_request_body(path), "components": _OPENAPI_DOC["components"]}
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def _assert_schema_valid(validator: jsonschema.Draft7Validator, body: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def enqueue_validator() -> jsonschema.Draft7Validator:
    """PagerDuty's own request schema for ``POST /v2/enqueue``."""
    return _request_schema("/enqueue")


def assert_valid_event(body: dict[str, Any]) -> None:
    """Valid against PagerDuty's OpenAPI schema and within its documented limits."""
    _assert_schema_valid(enqueue_validator(), body)
    assert len(body["routing_key"]) == c.ROUTING_KEY_LENGTH
    assert len(body.get("dedup_key", "")) <= c.MAX_DEDUP_KEY_LENGTH
    assert len(json.dumps(body, ensure_ascii=False).encode()) <= c.MAX_EVENT_BYTES
    if body["event_action"] == "trigger":
        payload = body["payload"]
        assert 0 < len(payload["summary"]) <= c.MAX_SUMMARY_LENGTH
        assert payload["summary"].strip() and payload["source"].strip(), "PagerDuty refuses blank ones"
        assert payload["severity"] in c.SEVERITIES
        for link in body.get("links", []):
            assert link["href"]
        for image in body.get("images", []):
            assert image["src"].startswith("https://")
    else:
        assert body.get("dedup_key", "").strip()


def change_enqueue_validator() -> jsonschema.Draft7Validator:
    """PagerDuty's own request schema for ``POST /v2/change/enqueue``."""
    return _request_schema("/change/enqueue")


CHANGE_EVENT_FIELDS = frozenset(_request_body("/change/enqueue")["properties"])
"""The top-level fields of PagerDuty's change event schema (which does not forbid others itself)."""


def assert_valid_change_event(body: dict[str, Any]) -> None:
    """Valid against PagerDuty's OpenAPI change event schema and within its documented limits."""
    _assert_schema_valid(change_enqueue_validator(), body)
    assert not set(body) - CHANGE_EVENT_FIELDS, sorted(set(body) - CHANGE_EVENT_FIELDS)
    assert len(body["routing_key"]) == c.ROUTING_KEY_LENGTH
    assert body["routing_key"].isascii() and body["routing_key"].isalnum()
    assert len(json.dumps(body, ensure_ascii=False).encode()) <= c.MAX_EVENT_BYTES
    summary = body["payload"]["summary"]
    assert summary.strip()
    assert len(summary) <= c.MAX_SUMMARY_LENGTH
    for link in body.get("links", []):
        assert link["href"].strip()
    for image in body.get("images", []):
        assert image["src"].startswith("https://")


@dataclass
class FakeLambdaContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    function_name: str = "pagerduty-bridge"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:pagerduty-bridge"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_millis: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis
