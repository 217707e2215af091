"""The scheduled run and the webhook under odd keys and throttled keys: what real DynamoDB refuses and
moto takes, one service's rate limit against the others' resolves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import webhook
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.conftest import FakeLambdaContext
from tests.integration.test_webhooks import SECRET, TABLE, delivery

MAX_KEY_BYTES = 2048
"""DynamoDB's limit on a partition key's value: a longer one fails the request as malformed."""


class StrictKeys:
    """A DynamoDB client that refuses an over-long partition key as real DynamoDB does (moto reads it)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.asked: list[str] = []

    def get_item(self, **request: Any) -> Any:
        key = request["Key"][c.TABLE_PARTITION_KEY]["S"]
        self.asked.append(key)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            error = {"Code": "ValidationException", "Message": "One or more parameter values were invalid"}
            raise ClientError({"Error": error}, "GetItem")
        return self._client.get_item(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def strict_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[StrictKeys]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        strict = StrictKeys(client)
        monkeypatch.setenv(c.ENV_WEBHOOK_SECRET, SECRET)
        settings = Settings.from_env()
        monkeypatch.setattr(webhook, "_receiver", webhook.Receiver(settings, DynamoDBIncidentStore(strict, TABLE)))
        yield strict


@pytest.mark.parametrize("length", [c.MAX_DEDUP_KEY_LENGTH + 1, 3000])
def test_a_webhook_whose_incident_key_is_longer_than_any_of_ours_is_not_ours_not_a_failure(
    strict_receiver: StrictKeys, length: int
) -> None:
    """Another integration's incident (an account-wide subscription) with an incident key longer than
    any dedup key the bridge sends (255 characters): it was looked up, real DynamoDB refused the key
    (over 2,048 bytes) and the receiver answered 500, for every retry PagerDuty made, until it gave up
    on the subscription. It is not the bridge's: 200, and the table is not asked."""
    answer = webhook.lambda_handler(delivery("incident.acknowledged", minutes=1, key="k" * length), FakeLambdaContext())
    assert answer["statusCode"] == 200, answer
    assert answer["body"] == "webhook_not_ours"
    assert strict_receiver.asked == []
