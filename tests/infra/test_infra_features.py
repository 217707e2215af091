"""SnapStart and what triggers invoke, the webhook receiver, change events, and the stack's outputs."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.change_events import DEAD_LETTERS_ALARM_DESCRIPTION, FINAL_STATUSES, MAX_EVENT_AGE
from pagerduty_bridge_cdk.event_targets import TARGET_RETRY_ATTEMPTS
from pagerduty_bridge_cdk.functions import LIVE_ALIAS, MEMORY_MB, runtime_for
from pagerduty_bridge_cdk.secrets import WEBHOOK_PLACEHOLDER
from pagerduty_bridge_cdk.webhook import RESERVED_CONCURRENCY, TIMEOUT
from tests.infra.conftest import (
    ACCOUNT,
    CHANGE_EVENT_GLOBS,
    RECONCILE_ROLES,
    WEBHOOK_SECRET_ARN,
    Synthesized,
    as_list,
    names_target,
    ref,
)

# --- SnapStart: every trigger invokes the live alias -------------------------------------------------


def _functions_with_snap_start(synthesized: Synthesized) -> list[Any]:
    bridge = synthesized.bridge
    functions = [bridge.function]
    if bridge.webhooks is not None:
        functions.append(bridge.webhooks.function)
    return functions


def test_snap_start_publishes_a_version_behind_a_live_alias(variant: Synthesized) -> None:
    snap_start = variant.bridge.config.snap_start
    assert snap_start == (variant.name in ("buffered", "featured"))
    functions = _functions_with_snap_start(variant)
    versions = variant.of_type("AWS::Lambda::Version")
    aliases = variant.of_type("AWS::Lambda::Alias")
    for function in functions:
        properties = variant.resources[variant.logical_id(function)]["Properties"]
        if not snap_start:
            assert "SnapStart" not in properties
            continue
        assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}
        function_ref = {"Ref": variant.logical_id(function)}
        (version_id,) = [vid for vid, v in versions.items() if v["Properties"]["FunctionName"] == function_ref]
        (alias,) = [a["Properties"] for a in aliases.values() if a["Properties"]["FunctionName"] == function_ref]
        assert alias["Name"] == LIVE_ALIAS
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    assert len(versions) == len(aliases) == (len(functions) if snap_start else 0)


def test_every_trigger_of_the_main_function_invokes_its_target(variant: Synthesized) -> None:
    """SNS, SQS, the failure destination's invoke configuration, every EventBridge rule, every permission:
    the live alias with SnapStart (never $LATEST, which has no snapshot), the function otherwise."""
    invoked = []
    for subscription in variant.of_type("AWS::SNS::Subscription").values():
        if subscription["Properties"]["Protocol"] == "lambda":
            invoked.append(subscription["Properties"]["Endpoint"])
    invoked += [m["Properties"]["FunctionName"] for m in variant.of_type("AWS::Lambda::EventSourceMapping").values()]
    for rule in variant.of_type("AWS::Events::Rule").values():
        invoked += [target["Arn"] for target in rule["Properties"]["Targets"]]
    for permission in variant.of_type("AWS::Lambda::Permission").values():
        if permission["Properties"]["Principal"] in ("sns.amazonaws.com", "events.amazonaws.com"):
            invoked.append(permission["Properties"]["FunctionName"])
    expected = 2 + 2 * (variant.bridge.reconciliation is not None) + 2 * (variant.bridge.change_events is not None)
    assert len(invoked) == expected - (1 if variant.bridge.config.buffered else 0)
    assert all(names_target(variant, value) for value in invoked), invoked


def test_failed_invocations_are_configured_on_what_sns_invokes(variant: Synthesized) -> None:
    configs = variant.of_type("AWS::Lambda::EventInvokeConfig")
    if variant.bridge.config.buffered:
        assert configs == {}
        return
    (config,) = [c["Properties"] for c in configs.values()]
    assert ref(config["FunctionName"]) == variant.logical_id(variant.bridge.function)
    if variant.bridge.config.snap_start:
        # The alias's name, as the eighth field of its ARN (arn:aws:lambda:region:account:function:name:alias).
        alias_arn = {"Ref": variant.logical_id(variant.bridge.bridge.target)}
        assert config["Qualifier"] == {"Fn::Select": [7, {"Fn::Split": [":", alias_arn]}]}
    else:
        assert config["Qualifier"] == "$LATEST"


# --- The webhook receiver ------------------------------------------------------------------------------

WEBHOOKS = pytest.mark.parametrize("variant", ["buffered", "featured"], indirect=True)


@WEBHOOKS
def test_the_webhook_function_runs_the_webhook_handler_from_the_same_asset(variant: Synthesized) -> None:
    webhooks = variant.bridge.webhooks
    assert webhooks is not None
    properties = variant.resources[variant.logical_id(webhooks.function)]["Properties"]
    assert properties["Handler"] == constants.WEBHOOK_HANDLER
    assert properties["Code"] == variant.function["Properties"]["Code"]
    assert properties["Runtime"] == variant.function["Properties"]["Runtime"]
    assert properties["Runtime"] == runtime_for(variant.bridge.config.python_version).name
    assert properties["MemorySize"] == MEMORY_MB
    assert properties["Timeout"] == TIMEOUT.to_seconds()
    assert properties["LoggingConfig"]["LogGroup"] == {"Ref": variant.logical_id(webhooks.log_group)}
    assert properties["Role"] == {"Fn::GetAtt": [variant.logical_id(webhooks.role), "Arn"]}
    reserved = properties.get("ReservedConcurrentExecutions")
    assert reserved == (None if variant.bridge.config.reserved_concurrency is None else RESERVED_CONCURRENCY)


@WEBHOOKS
def test_the_webhook_function_is_told_exactly_its_table_secret_and_environment(variant: Synthesized) -> None:
    webhooks = variant.bridge.webhooks
    assert webhooks is not None
    variables = variant.resources[variant.logical_id(webhooks.function)]["Properties"]["Environment"]["Variables"]
    secret = variables[constants.ENV_WEBHOOK_SECRET_ARN]
    if variant.name == "buffered":
        assert secret == WEBHOOK_SECRET_ARN
    else:
        assert secret == {"Ref": variant.logical_id(webhooks.signing_secret.node.find_child("Secret"))}
    assert variables == {
        constants.ENV_TABLE_NAME: {"Ref": variant.logical_id(variant.bridge.table)},
        constants.ENV_WEBHOOK_SECRET_ARN: secret,
        constants.ENV_ENVIRONMENT: variant.bridge.config.environment,
        constants.ENV_POWERTOOLS_SERVICE_NAME: constants.deployed_service_name(variant.bridge.config.environment),
        constants.ENV_POWERTOOLS_METRICS_NAMESPACE: constants.METRICS_NAMESPACE,
    }


def test_a_placeholder_signing_secret_is_created_with_a_key_of_its_own(featured: Synthesized) -> None:
    assert featured.bridge.webhooks is not None
    secret = featured.resources[featured.logical_id(featured.bridge.webhooks.signing_secret.node.find_child("Secret"))]
    assert secret["Properties"]["SecretString"] == WEBHOOK_PLACEHOLDER
    key_id = ref(secret["Properties"]["KmsKeyId"])
    assert key_id is not None
    assert featured.resources[key_id]["Properties"]["EnableKeyRotation"] is True


def test_a_given_signing_secret_is_used_not_created(buffered: Synthesized) -> None:
    assert buffered.bridge.webhooks is not None
    assert buffered.bridge.webhooks.signing_secret.node.try_find_child("Secret") is None
    assert not buffered.of_type("AWS::SecretsManager::Secret")


@WEBHOOKS
def test_the_function_url_takes_no_aws_auth_and_invokes_the_webhook_function_only(variant: Synthesized) -> None:
    webhooks = variant.bridge.webhooks
    assert webhooks is not None
    (_, url) = variant.one("AWS::Lambda::Url")
    function_id = variant.logical_id(webhooks.function)
    assert url["Properties"]["AuthType"] == "NONE"
    assert url["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert url["Properties"].get("Qualifier") == (LIVE_ALIAS if variant.bridge.config.snap_start else None)
    public = [
        p["Properties"]
        for p in variant.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "*"
    ]
    assert sorted(p["Action"] for p in public) == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    for permission in public:
        target = json.dumps(permission["FunctionName"])
        assert function_id in target or variant.logical_id(webhooks.target) in target
        # Only through the URL: a public InvokeFunction is limited to invocations via the function URL.
        assert permission.get("FunctionUrlAuthType") == "NONE" or permission.get("InvokedViaFunctionUrl") is True
    assert variant.bridge.webhook_url is not None


# --- Change events ---------------------------------------------------------------------------------------

CHANGE_EVENTS = pytest.mark.parametrize("variant", ["routed", "featured"], indirect=True)


def _change_event_rule(synthesized: Synthesized) -> dict[str, Any]:
    change_events = synthesized.bridge.change_events
    assert change_events is not None
    rule: dict[str, Any] = synthesized.resources[synthesized.logical_id(change_events.rule)]["Properties"]
    return rule


def test_change_events_match_final_statuses_of_the_configured_stacks(featured: Synthesized) -> None:
    assert featured.bridge.config.change_events == CHANGE_EVENT_GLOBS
    pattern = _change_event_rule(featured)["EventPattern"]
    assert pattern == {
        "source": [constants.CLOUDFORMATION_SOURCE],
        "detail-type": [constants.STACK_STATUS_CHANGE_DETAIL_TYPE],
        "account": [ACCOUNT],
        "detail": {
            "status-details": {"status": [{"wildcard": "*_COMPLETE"}, {"wildcard": "*_FAILED"}]},
            "stack-id": [
                {"wildcard": f"arn:aws:cloudformation:*:{ACCOUNT}:stack/shop-*/*"},
                {"wildcard": f"arn:aws:cloudformation:*:{ACCOUNT}:stack/payments/*"},
            ],
        },
    }


def test_change_events_for_every_stack_filter_on_status_and_account_only(routed: Synthesized) -> None:
    assert routed.bridge.config.change_events == ("*",)
    pattern = _change_event_rule(routed)["EventPattern"]
    assert "stack-id" not in pattern["detail"]
    assert pattern["account"] == [ACCOUNT]


def _matches(wildcards: list[dict[str, str]], value: str) -> bool:
    """EventBridge's wildcard matching: ``*`` stands for any run of characters."""
    return any(fnmatchcase(value, entry["wildcard"]) for entry in wildcards)


@pytest.mark.parametrize(
    ("status", "invokes"),
    [
        ("CREATE_COMPLETE", True),
        ("UPDATE_COMPLETE", True),
        ("UPDATE_ROLLBACK_COMPLETE", True),
        ("DELETE_FAILED", True),
        ("UPDATE_ROLLBACK_FAILED", True),
        ("CREATE_IN_PROGRESS", False),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", False),
        ("UPDATE_ROLLBACK_IN_PROGRESS", False),
        ("REVIEW_IN_PROGRESS", False),
    ],
)
def test_only_final_statuses_invoke(featured: Synthesized, status: str, invokes: bool) -> None:
    wildcards = _change_event_rule(featured)["EventPattern"]["detail"]["status-details"]["status"]
    assert [entry["wildcard"] for entry in wildcards] == list(FINAL_STATUSES)
    assert _matches(wildcards, status) is invokes


@pytest.mark.parametrize(
    ("stack_id", "invokes"),
    [
        (f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/shop-web/0b9a1c2e-0000-4000-8000-000000000001", True),
        (f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/payments/0b9a1c2e-0000-4000-8000-000000000002", True),
        (f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/payments-v2/0b9a1c2e-0000-4000-8000-000000000003", False),
        (f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/workshop-1/0b9a1c2e-0000-4000-8000-000000000004", False),
        ("arn:aws:cloudformation:eu-west-1:210987654321:stack/shop-web/0b9a1c2e-0000-4000-8000-000000000005", False),
    ],
)
def test_only_the_configured_stacks_invoke(featured: Synthesized, stack_id: str, invokes: bool) -> None:
    wildcards = _change_event_rule(featured)["EventPattern"]["detail"]["stack-id"]
    assert _matches(wildcards, stack_id) is invokes


@CHANGE_EVENTS
def test_change_events_retry_then_keep_what_they_could_not_deliver(variant: Synthesized) -> None:
    change_events = variant.bridge.change_events
    assert change_events is not None
    (target,) = _change_event_rule(variant)["Targets"]
    assert names_target(variant, target["Arn"])
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": TARGET_RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": MAX_EVENT_AGE.to_seconds(),
    }
    queue_id = variant.logical_id(change_events.dead_letters)
    assert ref(target["DeadLetterConfig"]["Arn"]) == queue_id
    assert variant.bridge.dead_letter_queues["ChangeEventDeadLetters"] is change_events.dead_letters
    (alarm,) = [
        a["Properties"]
        for a in variant.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    ]
    assert alarm["AlarmDescription"] == DEAD_LETTERS_ALARM_DESCRIPTION
    allows = [
        statement
        for policy in variant.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]
    (allow,) = allows
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert as_list(allow["Action"]) == ["sqs:SendMessage"]
    rule_id = variant.logical_id(change_events.rule)
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}


def test_without_change_events_there_is_no_event_pattern_rule(direct: Synthesized) -> None:
    assert direct.bridge.change_events is None
    assert [r for r in direct.of_type("AWS::Events::Rule").values() if "EventPattern" in r["Properties"]] == []


# --- Cross-account reconciliation ----------------------------------------------------------------------


def test_reconcile_roles_reach_the_function_by_account(featured: Synthesized) -> None:
    variables = featured.function["Properties"]["Environment"]["Variables"]
    assert json.loads(variables[constants.ENV_RECONCILE_ROLE_ARNS]) == RECONCILE_ROLES


# --- Outputs ---------------------------------------------------------------------------------------------


def _output_values(synthesized: Synthesized) -> list[Any]:
    return [output["Value"] for output in synthesized.template["Outputs"].values()]


def test_outputs_name_everything_an_operator_needs(variant: Synthesized) -> None:
    bridge = variant.bridge
    values = _output_values(variant)
    ids = variant.logical_id
    topic = bridge.config.alarm_topic_arn or {"Ref": ids(bridge.topic)}
    assert topic in values
    assert {"Ref": ids(bridge.table)} in values
    assert {"Ref": ids(bridge.bridge.log_group)} in values
    for name, queue in bridge.dead_letter_queues.items():
        assert {"Ref": ids(queue)} in values, name  # a queue's Ref is its URL, what redrive takes
    queue_urls = [
        v
        for v in values
        if isinstance(v, dict) and variant.resources.get(ref(v) or "", {}).get("Type") == "AWS::SQS::Queue"
    ]
    assert len(queue_urls) == len(bridge.dead_letter_queues)
    url = [v for v in values if isinstance(v, dict) and "Fn::GetAtt" in v and v["Fn::GetAtt"][1] == "FunctionUrl"]
    if bridge.webhooks is None:
        assert url == []
    else:
        assert url == [{"Fn::GetAtt": [ids(bridge.webhooks.url), "FunctionUrl"]}]
