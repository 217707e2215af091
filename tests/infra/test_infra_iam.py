"""Least privilege: each statement names the actions the bridge uses on the resources it owns."""

from __future__ import annotations

import json
from typing import Any

from infra import nag
from infra.bridge_function import LOG_ACTIONS, TABLE_ACTIONS
from infra.integration_key import readable_secret_arn
from infra.reconciliation import ALARM_ACTIONS, DESCRIBE_ALARMS_REASON, INDEX_ACTIONS
from pagerduty_bridge import constants
from tests.infra.conftest import (
    EXISTING_SECRET_KEY_ARN,
    EXISTING_SECRET_PARTIAL_ARN,
    PAYMENTS_SECRET_ARN,
    WEB_SECRET_PARTIAL_ARN,
    Synthesized,
    as_list,
    ref,
)

POLICY_DOCUMENTS = {
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
}


def _role_statements(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """The function role's statements by Sid (every statement of ours has one)."""
    role_id = synthesized.logical_id(synthesized.stack.bridge.role)
    statements: dict[str, dict[str, Any]] = {}
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                assert "Sid" in statement, statement
                statements[statement["Sid"]] = statement
    return statements


def _all_statements(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document in the template, with its resource's logical id."""
    return [
        (logical_id, statement)
        for resource_type, document_key in POLICY_DOCUMENTS.items()
        for logical_id, resource in synthesized.of_type(resource_type).items()
        for statement in resource["Properties"][document_key]["Statement"]
    ]


def _grant(statement: dict[str, Any]) -> tuple[frozenset[str], tuple[Any, ...]]:
    """(actions, resources) with each resource as the logical id it references, or its literal."""
    assert statement["Effect"] == "Allow"
    resources = tuple(ref(resource) or resource for resource in as_list(statement["Resource"]))
    return frozenset(as_list(statement["Action"])), resources


def test_direct_function_role_grants_exactly_what_the_bridge_uses(direct: Synthesized) -> None:
    stack = direct.stack
    ids = direct.logical_id
    statements = _role_statements(direct)
    assert {sid: _grant(statement) for sid, statement in statements.items()} == {
        "WriteOwnLogs": (frozenset(LOG_ACTIONS), (ids(stack.bridge.log_group),)),
        "ReadWriteIncidents": (frozenset(TABLE_ACTIONS), (ids(stack.incidents.table),)),
        "ReadIntegrationKeySecret": (
            frozenset({"secretsmanager:GetSecretValue"}),
            (direct.one("AWS::SecretsManager::Secret")[0],),
        ),
        "DecryptIntegrationKeySecret": (
            frozenset({"kms:Decrypt"}),
            (ids(stack.integration_key.node.find_child("Key")),),
        ),
        "SendFailedInvocationsToQueue": (
            frozenset({"sqs:SendMessage"}),
            (ids(stack.dead_letter_queues["FailedInvocations"]),),
        ),
        "ListActiveIncidents": (frozenset({"dynamodb:Query"}), (_index_arn(direct),)),
        "ReadAlarmStates": (frozenset({"cloudwatch:DescribeAlarms"}), ("*",)),
    }
    assert TABLE_ACTIONS == ("dynamodb:GetItem", "dynamodb:PutItem")
    assert INDEX_ACTIONS == ("dynamodb:Query",)
    assert ALARM_ACTIONS == ("cloudwatch:DescribeAlarms",)


def _index_arn(synthesized: Synthesized) -> dict[str, Any]:
    """The active-incidents index's ARN as the template spells it: the table's ARN, then the index."""
    table_id = synthesized.logical_id(synthesized.stack.incidents.table)
    return {"Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, f"/index/{constants.ACTIVE_INDEX_NAME}"]]}


def test_buffered_function_role_grants_exactly_what_the_bridge_uses(buffered: Synthesized) -> None:
    stack = buffered.stack
    ids = buffered.logical_id
    buffer_queue = stack.node.find_child("BufferedDelivery").node.find_child("Buffer")
    statements = _role_statements(buffered)
    assert {sid: _grant(statement) for sid, statement in statements.items()} == {
        "WriteOwnLogs": (frozenset(LOG_ACTIONS), (ids(stack.bridge.log_group),)),
        "ReadWriteIncidents": (frozenset(TABLE_ACTIONS), (ids(stack.incidents.table),)),
        "ReadIntegrationKeySecret": (
            frozenset({"secretsmanager:GetSecretValue"}),
            (f"{EXISTING_SECRET_PARTIAL_ARN}-??????",),
        ),
        "DecryptIntegrationKeySecret": (frozenset({"kms:Decrypt"}), (EXISTING_SECRET_KEY_ARN,)),
        "ConsumeBufferQueue": (
            frozenset({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}),
            (ids(buffer_queue),),
        ),
    }


def test_routed_function_role_adds_exactly_the_routing_key_secrets(routed: Synthesized) -> None:
    stack = routed.stack
    ids = routed.logical_id
    statements = _role_statements(routed)
    assert {sid: _grant(statement) for sid, statement in statements.items()} == {
        "WriteOwnLogs": (frozenset(LOG_ACTIONS), (ids(stack.bridge.log_group),)),
        "ReadWriteIncidents": (frozenset(TABLE_ACTIONS), (ids(stack.incidents.table),)),
        "ReadIntegrationKeySecret": (
            frozenset({"secretsmanager:GetSecretValue"}),
            (routed.one("AWS::SecretsManager::Secret")[0],),
        ),
        "ReadRoutingKeySecrets": (
            frozenset({"secretsmanager:GetSecretValue"}),
            # A complete ARN as given; a partial one matches the six characters Secrets Manager appends.
            (PAYMENTS_SECRET_ARN, f"{WEB_SECRET_PARTIAL_ARN}-??????"),
        ),
        "DecryptIntegrationKeySecret": (
            frozenset({"kms:Decrypt"}),
            (ids(stack.integration_key.node.find_child("Key")),),
        ),
        "SendFailedInvocationsToQueue": (
            frozenset({"sqs:SendMessage"}),
            (ids(stack.dead_letter_queues["FailedInvocations"]),),
        ),
        "ListActiveIncidents": (frozenset({"dynamodb:Query"}), (_index_arn(routed),)),
        "ReadAlarmStates": (frozenset({"cloudwatch:DescribeAlarms"}), ("*",)),
    }


def test_secrets_are_read_only_where_the_function_is_told_to_look(variant: Synthesized) -> None:
    """GetSecretValue covers the integration-key secret and each alias's secret, and nothing else."""
    variables = variant.function["Properties"]["Environment"]["Variables"]
    told = [variables[constants.ENV_INTEGRATION_KEY_SECRET_ARN]]
    told += json.loads(variables.get(constants.ENV_ROUTING_KEY_SECRETS, "{}")).values()
    readable = [
        resource
        for statement in _role_statements(variant).values()
        if "secretsmanager:GetSecretValue" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]
    expected = [readable_secret_arn(arn) if isinstance(arn, str) else arn for arn in told]
    assert sorted(map(json.dumps, readable)) == sorted(map(json.dumps, expected))


def test_query_is_granted_on_the_active_index_alone(variant: Synthesized) -> None:
    queries = [
        statement for _, statement in _all_statements(variant) if "dynamodb:Query" in as_list(statement["Action"])
    ]
    if not variant.stack.config.reconcile_minutes:
        assert queries == []
        return
    (query,) = queries
    assert query["Sid"] == "ListActiveIncidents"
    assert as_list(query["Action"]) == ["dynamodb:Query"]
    assert query["Resource"] == _index_arn(variant)


def test_describe_alarms_is_the_only_wildcard_resource_and_it_is_acknowledged(variant: Synthesized) -> None:
    wildcards = [
        (logical_id, statement)
        for logical_id, statement in _all_statements(variant)
        if statement["Effect"] == "Allow"
        and "*" in as_list(statement.get("Resource", []))
        # In a key policy "*" means the key itself.
        and variant.resources[logical_id]["Type"] != "AWS::KMS::Key"
    ]
    policy = variant.stack.bridge.role.node.find_child("DefaultPolicy")
    acknowledged = nag.acknowledgements(variant.app).get(policy.node.path, {})
    iam5 = f"{nag.RULE_PACK}::{nag.RULE_PACK}-IAM5[Resource::*]"
    if not variant.stack.config.reconcile_minutes:
        assert wildcards == []
        assert iam5 not in acknowledged
        return
    ((logical_id, statement),) = wildcards
    assert logical_id == variant.logical_id(policy)
    assert statement["Sid"] == "ReadAlarmStates"
    assert as_list(statement["Action"]) == ["cloudwatch:DescribeAlarms"]
    assert "Condition" not in statement
    assert acknowledged == {iam5: DESCRIBE_ALARMS_REASON}
    assert "composite" in DESCRIBE_ALARMS_REASON


def test_key_decryption_only_through_secrets_manager(variant: Synthesized) -> None:
    statement = _role_statements(variant)["DecryptIntegrationKeySecret"]
    service = statement["Condition"]["StringEquals"]["kms:ViaService"]
    assert "secretsmanager." in str(service)


def test_the_only_role_is_the_functions_and_it_has_no_managed_policy(variant: Synthesized) -> None:
    role_id, role = variant.one("AWS::IAM::Role")
    assert role_id == variant.logical_id(variant.stack.bridge.role)
    properties = role["Properties"]
    assert "ManagedPolicyArns" not in properties
    assert "Policies" not in properties
    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"


def _is_account_root(principal: Any) -> bool:
    return isinstance(principal, dict) and ":root" in str(principal.get("AWS", ""))


def test_no_allow_statement_has_a_wildcard_action(variant: Synthesized) -> None:
    """Anywhere: IAM, queue, topic and key policies.

    Two kinds are expected and checked for exactly: a key policy's statements for the account root
    (CDK's administration statement, which lets IAM policies grant the key at all), and CloudWatch's
    ``kms:GenerateDataKey*``, which is how the SNS documentation words what alarms need on a topic key.
    """
    offending = []
    for logical_id, statement in _all_statements(variant):
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            if "*" not in action:
                continue
            is_key = variant.resources[logical_id]["Type"] == "AWS::KMS::Key"
            if is_key and _is_account_root(statement["Principal"]):
                continue
            if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} and action == (
                "kms:GenerateDataKey*"
            ):
                continue
            offending.append((logical_id, action))
    assert offending == []


def test_service_principals_act_only_for_this_account_or_topic(variant: Synthesized) -> None:
    """Every Allow to a service principal carries a confused-deputy condition."""
    for logical_id, statement in _all_statements(variant):
        principal = statement.get("Principal")
        if statement["Effect"] == "Allow" and isinstance(principal, dict) and "Service" in principal:
            condition = statement.get("Condition", {})
            keys = {key for operator in condition.values() for key in operator}
            assert keys & {"aws:SourceAccount", "aws:SourceArn"}, (logical_id, statement)
