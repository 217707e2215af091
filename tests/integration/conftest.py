"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import boto3
import pytest
import requests
from moto import mock_aws

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import REGION, lambda_environment, moto_server
from tests.sockets import Answer, ScriptedServer

LAMBDA_TABLE = "incidents"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's HTTP server, one per test module: each test names tables, queues and alarms of its own."""
    yield from moto_server()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """An HTTP session for talking to the local servers (the PagerDuty stand-in, a function URL)."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def lambda_store(monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty) -> Iterator[DynamoDBIncidentStore]:
    """The Lambda's environment on moto's DynamoDB (table ``incidents``) and the stand-in, a one-second
    retry budget; a fresh runtime per test. The store is the table the handler writes."""
    lambda_environment(monkeypatch, table=LAMBDA_TABLE, events_url=fake_pd.url, retry_budget_seconds=1)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, LAMBDA_TABLE)
        yield DynamoDBIncidentStore(client, LAMBDA_TABLE)


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Answer]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(answers: list[Answer]) -> ScriptedServer:
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
