"""Least privilege: each statement names the actions the bridge uses on the resources it owns."""

from __future__ import annotations

import json
from typing import Any

from pagerduty_bridge import constants
from pagerduty_bridge_cdk import nag
from pagerduty_bridge_cdk.bridge_function import ASSUME_ROLE_ACTIONS, INDEX_ACTIONS
from pagerduty_bridge_cdk.functions import LOG_ACTIONS, TABLE_ACTIONS
from pagerduty_bridge_cdk.reconciliation import ALARM_ACTIONS, DESCRIBE_ALARMS_REASON
from pagerduty_bridge_cdk.secrets import readable_secret_arn
from tests.infra.conftest import (
    EXISTING_SECRET_KEY_ARN,
    EXISTING_SECRET_PARTIAL_ARN,
    PAYMENTS_SECRET_ARN,
    RECONCILE_ROLES,
    WEB_SECRET_PARTIAL_ARN,
    WEBHOOK_SECRET_ARN,
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

Grant = tuple[frozenset[str], tuple[Any, ...]]


def _role_statements(synthesized: Synthesized, role: Any = None) -> dict[str, dict[str, Any]]:
    """A role's statements by Sid (every statement of ours has one); the main function's by default."""
    role_id = synthesized.logical_id(role if role is not None else synthesized.bridge.bridge.role)
    statements: dict[str, dict[str, Any]] = {}
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                assert "Sid" in statement, statement
                assert statement["Sid"] not in statements, statement
                statements[statement["Sid"]] = statement
    return statements


def _grants(synthesized: Synthesized, role: Any = None) -> dict[str, Grant]:
    return {sid: _grant(statement) for sid, statement in _role_statements(synthesized, role).items()}


def _all_statements(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document in the template, with its resource's logical id."""
    return [
        (logical_id, statement)
        for resource_type, document_key in POLICY_DOCUMENTS.items()
        for logical_id, resource in synthesized.of_type(resource_type).items()
        for statement in resource["Properties"][document_key]["Statement"]
    ]


def _grant(statement: dict[str, Any]) -> Grant:
    """(actions, resources) with each resource as the logical id it references, or its literal."""
    assert statement["Effect"] == "Allow"
    resources = tuple(ref(resource) or resource for resource in as_list(statement["Resource"]))
    return frozenset(as_list(statement["Action"])), resources


def _index_arn(synthesized: Synthesized) -> dict[str, Any]:
    """The active-incidents index's ARN as the template spells it: the table's ARN, then the index."""
    table_id = synthesized.logical_id(synthesized.bridge.incidents.table)
    return {"Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, f"/index/{constants.ACTIVE_INDEX_NAME}"]]}


def _always(synthesized: Synthesized) -> dict[str, Grant]:
    """What the main function may do in every deployment."""
    bridge = synthesized.bridge
    ids = synthesized.logical_id
    return {
        "WriteOwnLogs": (frozenset(LOG_ACTIONS), (ids(bridge.bridge.log_group),)),
        "ReadWriteIncidents": (frozenset(TABLE_ACTIONS), (ids(bridge.incidents.table),)),
        "QueryActiveIndex": (frozenset(INDEX_ACTIONS), (_index_arn(synthesized),)),
    }


def _created_integration_key(synthesized: Synthesized) -> dict[str, Grant]:
    key = synthesized.bridge.integration_key
    return {
        "ReadIntegrationKeySecret": (
            frozenset({"secretsmanager:GetSecretValue"}),
            (synthesized.logical_id(key.node.find_child("Secret")),),
        ),
        "DecryptIntegrationKeySecret": (
            frozenset({"kms:Decrypt"}),
            (synthesized.logical_id(key.node.find_child("Key")),),
        ),
    }


def _direct_delivery_and_reconciliation(synthesized: Synthesized) -> dict[str, Grant]:
    queue = synthesized.bridge.dead_letter_queues["FailedInvocations"]
    return {
        "SendFailedInvocationsToQueue": (frozenset({"sqs:SendMessage"}), (synthesized.logical_id(queue),)),
        "ReadAlarmStates": (frozenset(ALARM_ACTIONS), ("*",)),
    }


def test_direct_function_role_grants_exactly_what_the_bridge_uses(direct: Synthesized) -> None:
    assert _grants(direct) == {
        **_always(direct),
        **_created_integration_key(direct),
        **_direct_delivery_and_reconciliation(direct),
    }
    assert TABLE_ACTIONS == ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
    assert INDEX_ACTIONS == ("dynamodb:Query",)
    assert ALARM_ACTIONS == ("cloudwatch:DescribeAlarms",)


def test_buffered_function_role_grants_exactly_what_the_bridge_uses(buffered: Synthesized) -> None:
    buffer_queue = buffered.bridge.node.find_child("BufferedDelivery").node.find_child("Buffer")
    assert _grants(buffered) == {
        **_always(buffered),
        "ReadIntegrationKeySecret": (
            frozenset({"secretsmanager:GetSecretValue"}),
            (f"{EXISTING_SECRET_PARTIAL_ARN}-??????",),
        ),
        "DecryptIntegrationKeySecret": (frozenset({"kms:Decrypt"}), (EXISTING_SECRET_KEY_ARN,)),
        "ConsumeBufferQueue": (
            frozenset({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}),
            (buffered.logical_id(buffer_queue),),
        ),
    }


def test_routed_function_role_adds_exactly_the_routing_key_secrets(routed: Synthesized) -> None:
    assert _grants(routed) == {
        **_always(routed),
        **_created_integration_key(routed),
        **_direct_delivery_and_reconciliation(routed),
        "ReadRoutingKeySecrets": (
            frozenset({"secretsmanager:GetSecretValue"}),
            # A complete ARN as given; a partial one matches the six characters Secrets Manager appends.
            (PAYMENTS_SECRET_ARN, f"{WEB_SECRET_PARTIAL_ARN}-??????"),
        ),
    }


def test_featured_function_role_adds_exactly_the_reconciliation_roles(featured: Synthesized) -> None:
    """Change events need no grant of the function (EventBridge invokes it); the roles are assumed."""
    assert _grants(featured) == {
        **_always(featured),
        **_created_integration_key(featured),
        **_direct_delivery_and_reconciliation(featured),
        "AssumeReconcileRoles": (frozenset(ASSUME_ROLE_ACTIONS), tuple(sorted(RECONCILE_ROLES.values()))),
    }
    assert ASSUME_ROLE_ACTIONS == ("sts:AssumeRole",)


def test_webhook_role_with_a_created_secret_reads_only_its_items_and_its_secret(featured: Synthesized) -> None:
    webhooks = featured.bridge.webhooks
    assert webhooks is not None
    ids = featured.logical_id
    secret = webhooks.signing_secret
    assert _grants(featured, webhooks.role) == {
        "WriteOwnLogs": (frozenset(LOG_ACTIONS), (ids(webhooks.log_group),)),
        "ReadWriteIncidents": (
            frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}),
            (ids(featured.bridge.table),),
        ),
        "ReadWebhookSecret": (frozenset({"secretsmanager:GetSecretValue"}), (ids(secret.node.find_child("Secret")),)),
        "DecryptWebhookSecret": (frozenset({"kms:Decrypt"}), (ids(secret.node.find_child("Key")),)),
    }
    decrypt = _role_statements(featured, webhooks.role)["DecryptWebhookSecret"]
    assert "secretsmanager." in str(decrypt["Condition"]["StringEquals"]["kms:ViaService"])


def test_webhook_role_with_an_existing_secret_reads_exactly_that_secret(buffered: Synthesized) -> None:
    webhooks = buffered.bridge.webhooks
    assert webhooks is not None
    ids = buffered.logical_id
    assert _grants(buffered, webhooks.role) == {
        "WriteOwnLogs": (frozenset(LOG_ACTIONS), (ids(webhooks.log_group),)),
        "ReadWriteIncidents": (frozenset(TABLE_ACTIONS), (ids(buffered.bridge.table),)),
        # A complete ARN: granted as given, no suffix wildcard.
        "ReadWebhookSecret": (frozenset({"secretsmanager:GetSecretValue"}), (WEBHOOK_SECRET_ARN,)),
    }


def test_without_webhooks_there_is_no_webhook_function(variant: Synthesized) -> None:
    if variant.bridge.config.webhooks:
        assert variant.bridge.webhooks is not None
        return
    assert variant.bridge.webhooks is None
    assert variant.bridge.webhook_url is None
    assert not variant.of_type("AWS::Lambda::Url")
    assert len(variant.of_type("AWS::IAM::Role")) == 1


def _readable_secrets(synthesized: Synthesized, role: Any = None) -> list[str]:
    return sorted(
        json.dumps(resource)
        for statement in _role_statements(synthesized, role).values()
        if "secretsmanager:GetSecretValue" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    )


def test_secrets_are_read_only_where_each_function_is_told_to_look(variant: Synthesized) -> None:
    """GetSecretValue covers the secrets each function's environment names, and nothing else."""
    variables = variant.function["Properties"]["Environment"]["Variables"]
    told = [variables[constants.ENV_INTEGRATION_KEY_SECRET_ARN]]
    told += json.loads(variables.get(constants.ENV_ROUTING_KEY_SECRETS, "{}")).values()
    expected = [readable_secret_arn(arn) if isinstance(arn, str) else arn for arn in told]
    assert _readable_secrets(variant) == sorted(map(json.dumps, expected))
    webhooks = variant.bridge.webhooks
    if webhooks is not None:
        webhook_function = variant.resources[variant.logical_id(webhooks.function)]
        secret = webhook_function["Properties"]["Environment"]["Variables"][constants.ENV_WEBHOOK_SECRET_ARN]
        assert _readable_secrets(variant, webhooks.role) == [json.dumps(secret)]


def test_query_is_granted_on_the_active_index_alone(variant: Synthesized) -> None:
    """Silences are read from the index on every notification: the grant does not depend on reconciliation."""
    queries = [
        statement for _, statement in _all_statements(variant) if "dynamodb:Query" in as_list(statement["Action"])
    ]
    (query,) = queries
    assert query["Sid"] == "QueryActiveIndex"
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
    policy = variant.bridge.bridge.role.node.find_child("DefaultPolicy")
    acknowledged = nag.acknowledgements(variant.app).get(policy.node.path, {})
    iam5 = f"{nag.RULE_PACK}::{nag.RULE_PACK}-IAM5[Resource::*]"
    if not variant.bridge.config.reconcile_minutes:
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


def test_the_only_roles_are_the_functions_and_they_have_no_managed_policy(variant: Synthesized) -> None:
    expected = {variant.logical_id(variant.bridge.bridge.role)}
    if variant.bridge.webhooks is not None:
        expected.add(variant.logical_id(variant.bridge.webhooks.role))
    roles = variant.of_type("AWS::IAM::Role")
    assert set(roles) == expected
    for role in roles.values():
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
