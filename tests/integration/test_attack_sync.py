"""Attacks on the edges around the paging path: PagerDuty's refusals of a key, the webhook receiver,
settings read from the environment, secrets that change, SnapStart restores and redaction.

PagerDuty is the local stand-in over real HTTP; DynamoDB is moto."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty, Respond
from pagerduty_bridge.errors import BridgeError, ConfigurationError, PagerDutyApiError
from pagerduty_bridge.keys import RoutingKeys
from pagerduty_bridge.models import EventAction, Incident, IncidentStatus
from pagerduty_bridge.redaction import REDACTOR
from pagerduty_bridge.runtime import lambda_runtime
from pagerduty_bridge.settings import MAX_RESOLVED_RETENTION_DAYS, Settings
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import (
    T0,
    assert_no_secret,
    dedup_key,
    lambda_environment,
    powertools_log_stream,
    sns_event,
)
from tests.conftest import FakeLambdaContext

TABLE = "incidents"


@dataclass
class Bridge:
    """The paging function in a new container, its table and PagerDuty."""

    fake: FakePagerDuty
    store: DynamoDBIncidentStore
    key: str

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler.lambda_handler(event, FakeLambdaContext())
        return result

    def alert(self, name: str) -> str | None:
        alert = self.fake.alerts.get((self.key, dedup_key(name)))
        return alert.status if alert is not None else None


@pytest.fixture
def bridge(fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    key = uuid.uuid4().hex  # a key no earlier test has loaded (so nothing scrubs it in advance)
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, TABLE)
        lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url, key=key, retry_budget_seconds=1)
        yield Bridge(fake_pd, DynamoDBIncidentStore(client, TABLE), key)


# --- PagerDuty refusing the routing key ------------------------------------------------------------------


def invalid_routing_key() -> Respond:
    """PagerDuty's answer to an event on a routing key it does not know (a deleted integration, a key
    revoked or regenerated): 400, with the key as the reason in ``errors[]``."""
    return Respond(
        400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid routing key"]}
    )


def test_a_key_pagerduty_no_longer_knows_keeps_the_page_for_its_redelivery(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    """A revoked key is not the event's fault: once the key is fixed the same notification pages. So
    the notification is raised for Lambda's retries (and the failure destination), never recorded as
    done, and the key appears nowhere."""
    bridge.fake.script(invalid_routing_key())
    event = sns_event("revoked-key")

    with pytest.raises(BridgeError) as raised:
        bridge.invoke(event)

    assert raised.value.retryable, "a page refused for its key was dropped"
    assert "Invalid routing key" in str(raised.value)
    kept = bridge.store.get(dedup_key("revoked-key"))
    assert kept is not None and kept.pending_action is EventAction.TRIGGER, "the page must stay pending"
    assert bridge.alert("revoked-key") is None

    assert bridge.invoke(event) == {"processed": 1, "failed": 0}  # the key is fixed: the retry pages
    assert bridge.alert("revoked-key") == "triggered"
    assert_no_secret(bridge.key, raised.value, kept, logs=caplog.records)


@pytest.mark.parametrize(
    ("reason", "retryable"),
    [
        ("Bad Request: Event object is invalid (Invalid routing key)", True),
        ("Bad Request: Event object is invalid (invalid routing_key)", True),
        ("Bad Request: Event object is invalid ('payload.summary' is missing or blank)", False),
    ],
)
def test_only_a_400_refusing_the_key_is_kept(reason: str, retryable: bool) -> None:
    assert PagerDutyApiError(400, reason).retryable is retryable


# --- redaction: what log lines carry besides their message -----------------------------------------------


def registered_key() -> str:
    key = uuid.uuid4().hex
    REDACTOR.add([key])  # as every key is once loaded
    return key


def test_a_key_in_a_logged_exception_is_scrubbed_from_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected failure is logged with its traceback ("unexpected failure"): a key in the
    exception's message (or in the exception it was raised from) must not reach the log."""
    key = registered_key()
    caplog.set_level(logging.INFO)
    with powertools_log_stream() as stream:
        for name in (None, "pagerduty_bridge.processing"):
            log = handler.logger if name is None else logging.getLogger(name)
            try:
                try:
                    raise KeyError(key)
                except KeyError as inner:
                    raise RuntimeError(f"sending with {key} failed") from inner
            except RuntimeError:
                log.exception("unexpected failure", extra={"record": "Records[0]"})

    printed = stream.getvalue()
    assert printed.count("unexpected failure") == 2 and "RuntimeError" in printed and "KeyError" in printed
    assert "Traceback" in printed, "the traceback itself is kept"
    assert key not in printed, "a key in an exception's message reached the log"
    assert key not in caplog.text


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lambda key: {"body": {"routing_key": key}}, id="dict"),
        pytest.param(lambda key: ["first", f"with {key}"], id="list"),
        pytest.param(lambda key: ({"nested": [key]},), id="tuple-of-dict-of-list"),
        pytest.param(lambda key: ValueError(f"bad {key}"), id="exception-object"),
    ],
)
def test_a_key_inside_a_structured_extra_is_scrubbed(value: Any) -> None:
    """Powertools prints every ``extra`` field as JSON: a key inside a dict, a list or an object there is
    as printed as one in a string."""
    key = registered_key()
    with powertools_log_stream() as stream:
        handler.logger.info("structured", extra={"detail": value(key), "plain": "words"})

    printed = stream.getvalue()
    assert '"message":"structured"' in printed and '"plain":"words"' in printed
    assert key not in printed, "a key inside a structured extra reached the log"
    assert "****" in printed


# --- settings from the environment ------------------------------------------------------------------------


@pytest.mark.parametrize("days", ["1000000000", "10000000000", "99999999999999999999"])
def test_a_retention_beyond_what_can_be_counted_is_an_error_naming_its_variable(
    days: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retention of more days than a time span holds crashed the function's first invocation with an
    ``OverflowError`` that named nothing; it is a configuration error naming the variable."""
    monkeypatch.setenv(c.ENV_TABLE_NAME, TABLE)
    monkeypatch.setenv(c.ENV_RESOLVED_RETENTION_DAYS, days)

    with pytest.raises(ConfigurationError, match=c.ENV_RESOLVED_RETENTION_DAYS):
        lambda_runtime()


def test_the_longest_retention_still_builds_and_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(c.ENV_RESOLVED_RETENTION_DAYS, str(MAX_RESOLVED_RETENTION_DAYS))
    with mock_aws():
        create_table(boto3.client("dynamodb"), TABLE)
        monkeypatch.setenv(c.ENV_TABLE_NAME, TABLE)
        store = lambda_runtime().store
        resolved = Incident(
            dedup_key="kept-long", alarm_name="kept-long", status=IncidentStatus.RESOLVED, resolved_at=T0, updated_at=T0
        )
        store.put(resolved, expected_version=None)
        assert store.get("kept-long") is not None


# --- routing keys from secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize("padded", ["{key}\n", " {key} ", "\t{key}\r\n"])
def test_a_key_in_a_json_secret_is_read_without_the_whitespace_around_it(padded: str) -> None:
    """A key pasted into a JSON secret with a newline or spaces around it (the console's key/value
    editor keeps them) is the key, as it is in a plain secret: the alias pages."""
    key, other = uuid.uuid4().hex, uuid.uuid4().hex
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(
            Name="pagerduty-keys",
            SecretString=json.dumps({"default": padded.format(key=key), "payments": padded.format(key=other)}),
        )["ARN"]
        single = secrets.create_secret(Name="pagerduty-team", SecretString=json.dumps({"team": padded.format(key=key)}))
        keys = RoutingKeys(Settings(integration_key_secret_arn=arn, routing_key_secrets={"team": single["ARN"]}))

        assert (keys.get("default"), keys.get("payments"), keys.get("team")) == (key, other, key)


@pytest.mark.parametrize("refusal", [Respond(401), Respond(403), invalid_routing_key()], ids=["401", "403", "400"])
def test_a_refused_key_is_read_again_so_the_retry_pages_with_the_rotated_one(
    refusal: Respond, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is regenerated in PagerDuty and the new one put into the secret: a warm container still
    holds the old one (secrets are cached for minutes), and PagerDuty refuses it. The refusal makes the
    container read the secret again, so Lambda's retry pages with the new key instead of failing again
    until the cache expires and the page lands in the failure destination."""
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    with mock_aws():
        create_table(boto3.client("dynamodb"), TABLE)
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(Name="pagerduty-integration-key", SecretString=old)["ARN"]
        monkeypatch.setenv(c.ENV_TABLE_NAME, TABLE)
        monkeypatch.setenv(c.ENV_EVENTS_URL, fake_pd.url)
        monkeypatch.setenv(c.ENV_RETRY_BUDGET_SECONDS, "1")
        monkeypatch.setenv(c.ENV_INTEGRATION_KEY_SECRET_ARN, arn)
        monkeypatch.setattr(handler, "_runtime", None)

        assert handler.lambda_handler(sns_event("before-rotation"), FakeLambdaContext())["failed"] == 0
        secrets.put_secret_value(SecretId=arn, SecretString=new)  # the key regenerated, the secret updated
        fake_pd.script(refusal)  # PagerDuty no longer knows the old key
        event = sns_event("after-rotation")
        with pytest.raises(BridgeError) as raised:
            handler.lambda_handler(event, FakeLambdaContext())
        assert raised.value.retryable

        assert handler.lambda_handler(event, FakeLambdaContext())["failed"] == 0  # Lambda's retry

    used = [r.body["routing_key"] for r in fake_pd.requests]
    assert used == [old, old, new], "the retry was sent with the refused key"
    assert (new, dedup_key("after-rotation")) in fake_pd.alerts


@pytest.mark.parametrize(
    ("variable", "value", "level", "warned"),
    [
        ("LOG_LEVEL", "TRACE", "DEBUG", False),  # Lambda's own log levels: TRACE is the most verbose
        ("POWERTOOLS_LOG_LEVEL", "fatal", "CRITICAL", False),
        ("POWERTOOLS_LOG_LEVEL", " warn ", "WARNING", False),
        ("LOG_LEVEL", "verbose", "INFO", True),
        ("POWERTOOLS_LOG_LEVEL", "", "INFO", False),
    ],
)
def test_a_log_level_the_logging_module_does_not_know_never_stops_the_functions_import(
    variable: str, value: str, level: str, warned: bool, tmp_path: Path
) -> None:
    """Powertools raised ``ValueError: Unknown level`` while the function was imported: every page
    failed until the variable was found. A level of Lambda's (TRACE, FATAL) means its nearest; anything
    else is INFO, with a warning that names the variable."""
    script = (
        "import logging\n"
        "from pagerduty_bridge import handler, webhook\n"
        "print(logging.getLevelName(handler.logger.log_level), logging.getLevelName(webhook.logger.log_level))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "POWERTOOLS_LOG_LEVEL")}
    env |= {variable: value, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1] == f"{level} {level}"
    assert (variable in run.stdout + run.stderr) is warned


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POWERTOOLS_DEV", "sure"),
        ("POWERTOOLS_DEBUG", "enabled"),
        ("POWERTOOLS_LOGGER_LOG_EVENT", "sure"),
        ("POWERTOOLS_LOG_DEDUPLICATION_DISABLED", "2"),
        ("POWERTOOLS_METRICS_DISABLED", "nope"),
        ("POWERTOOLS_LOGGER_SAMPLE_RATE", "10%"),
    ],
)
def test_a_powertools_variable_it_cannot_read_never_stops_a_page(variable: str, value: str, tmp_path: Path) -> None:
    """Powertools reads its own variables and raised on a value it cannot read (``invalid truth value``,
    a sampling rate of ``10%``), at import or at every metrics flush: the function could not page at all.
    Such a value is ignored, with a warning naming the variable, and the page goes out."""
    script = (
        "from pagerduty_bridge import handler, webhook\n"
        "print('IMPORTED')\n"
        "handler.metrics.add_metric(name='Probe', unit='Count', value=1)\n"
        "handler.metrics.flush_metrics()\n"
        "print('FLUSHED')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env |= {variable: value, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "IMPORTED" in run.stdout and "FLUSHED" in run.stdout
    warnings = [line for line in (run.stdout + run.stderr).splitlines() if variable in line]
    assert warnings, "nothing named the variable that was ignored"
