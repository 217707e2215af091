"""``table create``: the incident table as the stack makes it, on moto's HTTP server; idempotent; never
mistaking another table for one."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from tests.builders import cli, cli_json
from tests.conftest import EVENTS, ROUTING_KEY


@pytest.fixture
def dynamodb(moto_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto_url)


def stack_table() -> dict[str, Any]:
    """The incident table's properties in the synthesized stack."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from aws_cdk import App, Stack
    from aws_cdk.assertions import Template

    from pagerduty_bridge_cdk.incident_table import IncidentTable

    stack = Stack(App(), "IncidentTableOnly")
    IncidentTable(stack, "Incidents")
    resources = Template.from_stack(stack).to_json()["Resources"]
    (table,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]
    return dict(table)


def test_it_creates_the_table_the_stack_defines(moto_url: str, dynamodb: Any) -> None:
    run = cli("table", "create", "--table", "from-the-cli", "--endpoint-url", moto_url)
    assert run.code == 0, run.err
    assert "created table from-the-cli (ACTIVE)" in run.out

    made = dynamodb.describe_table(TableName="from-the-cli")["Table"]
    ttl = dynamodb.describe_time_to_live(TableName="from-the-cli")["TimeToLiveDescription"]
    stack = stack_table()
    assert made["TableStatus"] == "ACTIVE"
    assert made["KeySchema"] == stack["KeySchema"]
    assert sorted(made["AttributeDefinitions"], key=str) == sorted(stack["AttributeDefinitions"], key=str)
    assert made["BillingModeSummary"]["BillingMode"] == stack["BillingMode"]
    indexes = [{k: i[k] for k in ("IndexName", "KeySchema", "Projection")} for i in made["GlobalSecondaryIndexes"]]
    assert indexes == stack["GlobalSecondaryIndexes"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == (
        "ENABLED",
        stack["TimeToLiveSpecification"]["AttributeName"],
    )


def test_the_bridge_works_on_the_table_it_made(
    moto_url: str, fake_pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    table = ("--table", "tried-locally", "--endpoint-url", moto_url)
    assert cli_json("table", "create", *table[:2], "--json", *table[2:])["created"] is True
    assert cli("replay", "--send", "--events-url", fake_pd.url, *table, str(EVENTS / "05-ec2-cpu-alarm.json")).code == 0
    silence = cli_json("silence", "add", "--match", "alarm_name=x-*", "--for", "1h", "--comment", "c", "--json", *table)
    (incident,) = cli_json("incidents", "list", "--json", *table)
    assert incident["dedup_key"] == "web-prod-cpu-high-CPUUtilization"
    assert [s["id"] for s in cli_json("silence", "list", "--json", *table)] == [silence["id"]]


def test_running_it_again_keeps_the_table_and_its_items(moto_url: str, dynamodb: Any) -> None:
    table = ("--table", "twice", "--endpoint-url", moto_url)
    assert cli("table", "create", *table).code == 0
    dynamodb.put_item(TableName="twice", Item={"dedup_key": {"S": "kept"}, "version": {"N": "1"}})
    again = cli("table", "create", *table)
    assert again.code == 0, again.err
    assert "already exists with the incident key schema" in again.out and "kept" in again.out
    shown = cli_json("table", "create", *table, "--json")
    assert (shown["table"], shown["created"], shown["status"]) == ("twice", False, "ACTIVE")
    assert dynamodb.get_item(TableName="twice", Key={"dedup_key": {"S": "kept"}}).get("Item")


def test_a_table_of_another_key_schema_is_refused_and_left_alone(moto_url: str, dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="someone-elses",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    run = cli("table", "create", "--table", "someone-elses", "--endpoint-url", moto_url)
    assert run.code == 2
    (line,) = run.err.strip().splitlines()
    assert line.startswith("pagerduty-bridge: table someone-elses exists but is not an incident table")
    assert "dedup_key" in line and "active-incidents" in line
    assert dynamodb.describe_table(TableName="someone-elses")["Table"]["KeySchema"][0]["AttributeName"] == "id"
