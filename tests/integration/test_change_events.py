"""AWS changes reach PagerDuty: a completed CloudFormation stack operation becomes one Change Event."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pagerduty_bridge import handler
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty, Respond
from pagerduty_bridge.envelopes import Notification, parse_event
from pagerduty_bridge.errors import PagerDutyDeliveryError
from pagerduty_bridge.models import StackStatusChange
from pagerduty_bridge.rendering import change_event
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.dynamodb import create_table
from tests.builders import T0, lambda_environment
from tests.conftest import ROUTING_KEY, FakeLambdaContext, assert_valid_change_event

STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/checkout-service/5b5b6c80-d2c9-11ef-9f25-0a1b2c3d4e5f"


def stack_event(status: str, reason: str = "") -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudFormation Stack Status Change",
        "source": "aws.cloudformation",
        "account": "123456789012",
        "time": T0.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "eu-west-1",
        "resources": [STACK_ID],
        "detail": {
            "stack-id": STACK_ID,
            "status-details": {"status": status, "status-reason": reason},
            "client-request-token": "tok",
        },
    }


@pytest.fixture
def lambda_env(fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePagerDuty]:
    with mock_aws():
        create_table(boto3.client("dynamodb"), "incidents")
        lambda_environment(monkeypatch, table="incidents", events_url=fake_pd.url)
        yield fake_pd


def test_a_stack_status_change_is_read_from_eventbridge() -> None:
    (parsed,) = parse_event(stack_event("UPDATE_COMPLETE"))
    assert isinstance(parsed, Notification) and isinstance(parsed.content, StackStatusChange)
    change = parsed.content
    assert (change.stack_name, change.status, change.account_id, change.region_code) == (
        "checkout-service",
        "UPDATE_COMPLETE",
        "123456789012",
        "eu-west-1",
    )


def test_a_completed_stack_update_is_exactly_one_valid_change_event(lambda_env: FakePagerDuty) -> None:
    answer = handler.lambda_handler(stack_event("UPDATE_COMPLETE"), FakeLambdaContext())

    assert answer == {"processed": 1, "failed": 0}
    assert len(lambda_env.requests) == 1
    (body,) = lambda_env.change_events
    assert_valid_change_event(body)
    assert body["routing_key"] == ROUTING_KEY
    payload = body["payload"]
    assert "checkout-service" in payload["summary"] and "UPDATE_COMPLETE" in payload["summary"]
    assert payload["timestamp"] == "2025-01-14T14:30:00.000Z"
    assert payload["custom_details"]["stackId"] == STACK_ID
    assert payload["custom_details"]["region"] == "eu-west-1"
    assert payload["custom_details"]["account"] == "123456789012"
    assert body["links"][0]["href"].startswith("https://eu-west-1.console.aws.amazon.com/cloudformation/")
    assert lambda_env.alerts == {}, "a change event never opens an alert"


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"])
def test_in_progress_statuses_send_nothing(lambda_env: FakePagerDuty, status: str) -> None:
    assert handler.lambda_handler(stack_event(status), FakeLambdaContext()) == {"processed": 1, "failed": 0}
    assert lambda_env.requests == []


@pytest.mark.parametrize("status", ["UPDATE_ROLLBACK_COMPLETE", "CREATE_FAILED", "DELETE_COMPLETE"])
def test_every_completed_or_failed_status_is_a_change(lambda_env: FakePagerDuty, status: str) -> None:
    handler.lambda_handler(stack_event(status, reason="Resource creation cancelled"), FakeLambdaContext())
    (body,) = lambda_env.change_events
    assert_valid_change_event(body)
    assert status in body["payload"]["summary"]


def test_change_events_follow_the_same_retry_and_acceptance_rules(lambda_env: FakePagerDuty) -> None:
    lambda_env.script(Respond(503), Respond(200, body="<html>proxy</html>"))
    with pytest.raises(PagerDutyDeliveryError, match="is not PagerDuty's acceptance"):
        handler.lambda_handler(stack_event("UPDATE_COMPLETE"), FakeLambdaContext())
    assert handler.lambda_handler(stack_event("UPDATE_COMPLETE"), FakeLambdaContext()) == {"processed": 1, "failed": 0}
    assert len(lambda_env.change_events) == 1


@pytest.mark.parametrize("region", ["evil.example.net/x?", "eu-west-1.evil.example.net", "EU (Ireland)"])
def test_a_forged_region_never_becomes_the_console_links_host(region: str) -> None:
    """The stack's console link is built from a region only when it is one: the stack id's own (a real
    region) wins over a forged event region, and with neither there is no link."""
    event = stack_event("UPDATE_COMPLETE")
    event["region"] = region
    (parsed,) = parse_event(event)
    assert isinstance(parsed, Notification) and isinstance(parsed.content, StackStatusChange)
    assert parsed.content.region_code == "eu-west-1"
    (link,) = change_event(parsed.content, Settings()).links
    assert link.href.startswith("https://eu-west-1.console.aws.amazon.com/cloudformation/")

    event["detail"]["stack-id"] = event["detail"]["stack-id"].replace(":eu-west-1:", f":{region}:")
    (parsed,) = parse_event(event)
    assert isinstance(parsed, Notification) and isinstance(parsed.content, StackStatusChange)
    assert parsed.content.region_code is None
    assert change_event(parsed.content, Settings()).links == ()
    assert change_event(replace(parsed.content, region_code=region), Settings()).links == ()


@pytest.mark.parametrize("name", ["web\u202eevil", "web\x1b[2Jnew", "web\rUPDATE_FAILED"])
def test_a_stack_name_shows_its_control_characters_in_the_summary_instead_of_obeying_them(name: str) -> None:
    """Real CloudFormation names cannot hold them, but a forged event can: a responder's screen must show
    them, not reverse, clear or overwrite the summary (as alarm summaries already do)."""
    (parsed,) = parse_event(stack_event("UPDATE_COMPLETE"))
    assert isinstance(parsed, Notification) and isinstance(parsed.content, StackStatusChange)
    summary = change_event(replace(parsed.content, stack_name=name), Settings()).summary
    assert not any(ch in summary for ch in "\u202e\x1b\r")
    assert "web" in summary
