"""Parameters: parsed and validated the same way from context and props, and documented in cdk.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import Fn

from pagerduty_bridge import constants
from pagerduty_bridge.settings import Settings
from pagerduty_bridge_cdk.config import (
    CONTEXT_PARAMETERS,
    LOG_RETENTION_DAYS,
    PARAMETERS,
    BridgeConfig,
    ConfigError,
)
from pagerduty_bridge_cdk.functions import retention_days
from pagerduty_bridge_cdk.timing import MAX_BATCH_SIZE, PER_RECORD_SECONDS, TIMEOUT_HEADROOM_SECONDS
from tests.infra.conftest import cdk_json_context, synthesize

ROLE = "arn:aws:iam::210987654321:role/reconcile"


def config(**context: Any) -> BridgeConfig:
    return BridgeConfig.from_context(context.get)


def test_cdk_json_documents_every_context_parameter() -> None:
    assert cdk_json_context()["//parameters"] == CONTEXT_PARAMETERS


def test_cdk_json_sets_no_parameter_so_the_code_defaults_apply() -> None:
    assert not set(cdk_json_context()) & set(CONTEXT_PARAMETERS)


def test_defaults() -> None:
    assert config() == BridgeConfig()
    defaults = BridgeConfig()
    assert defaults.architecture == "arm64"
    assert defaults.buffered is False
    assert defaults.max_receive_count == 5
    assert defaults.alarm_topic_arn is None
    assert defaults.integration_key_secret_arn is None
    assert defaults.stack_name == "PagerDutyBridge-dev"
    assert (defaults.webhooks, defaults.webhook_secret_arn, defaults.snap_start) == (False, None, False)
    assert (defaults.change_events, defaults.reconcile_role_arns) == ((), ())
    assert defaults.half_wired_alarms == "error"


def test_command_line_strings_are_parsed() -> None:
    parsed = config(
        environment="prod",
        buffered="TRUE",
        reservedConcurrency="20",
        logRetentionDays="90",
        architecture="x86_64",
        maxReceiveCount="3",
        retryBudgetSeconds="45",
        snapStart="true",
        webhooks="TRUE",
    )
    assert (parsed.environment, parsed.buffered, parsed.reserved_concurrency) == ("prod", True, 20)
    assert (parsed.log_retention_days, parsed.architecture, parsed.max_receive_count) == (90, "x86_64", 3)
    assert parsed.retry_budget_seconds == 45
    assert (parsed.snap_start, parsed.webhooks) == (True, True)


def test_none_clears_reserved_concurrency() -> None:
    assert config(reservedConcurrency="none").reserved_concurrency is None
    assert config().reserved_concurrency == BridgeConfig().reserved_concurrency


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("environment", "Prod!"),
        ("alarmTopicArn", "arn:aws:sqs:eu-west-1:123456789012:not-a-topic"),
        ("integrationKeySecretArn", "my-secret"),
        ("integrationKeySecretKmsKeyArn", "alias/aws/secretsmanager"),
        ("reservedConcurrency", "0"),
        ("reservedConcurrency", "many"),
        ("logRetentionDays", "10"),
        ("healthAlarmEmail", "not-an-address"),
        ("architecture", "riscv64"),
        ("buffered", "yes"),
        ("maxReceiveCount", "0"),
        ("maxConcurrency", "1"),
        ("account", "12345"),
        ("region", "Europe"),
        ("reconcileMinutes", "-1"),
        ("reconcileMinutes", "1441"),
        ("reconcileMinutes", "hourly"),
        ("alertRules", "rules: []"),
        ("alertRules", '{"rules": [{"severity": "critical"}]}'),
        ("alertRulesFile", "no/such/rules.yaml"),
        ("routingKeySecrets", "payments=arn:aws:secretsmanager:eu-west-1:123456789012:secret:p"),
        ("routingKeySecrets", '["arn:aws:secretsmanager:eu-west-1:123456789012:secret:p"]'),
        ("routingKeySecrets", '{"payments": "arn:aws:ssm:eu-west-1:123456789012:parameter/p"}'),
        ("routingKeySecrets", '{"pay ments": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:p"}'),
        ("routingKeySecrets", '{"default": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:p"}'),
        ("webhooks", "yes"),
        ("webhookSecretArn", "arn:aws:ssm:eu-west-1:123456789012:parameter/webhook"),
        ("changeEvents", "shop_*"),
        ("changeEvents", "shop-*,9lives"),
        ("changeEvents", '["shop-*", 3]'),
        ("changeEvents", "[not json"),
        ("reconcileRoleArns", '{"2109": "arn:aws:iam::210987654321:role/r"}'),
        ("reconcileRoleArns", '{"210987654321": "arn:aws:iam::210987654321:user/r"}'),
        ("reconcileRoleArns", '{"210987654321": "arn:aws:iam::111122223333:role/r"}'),
        ("reconcileRoleArns", "210987654321=arn:aws:iam::210987654321:role/r"),
        ("snapStart", "on"),
    ],
)
def test_malformed_values_are_rejected_naming_the_parameter(key: str, value: str) -> None:
    context = {key: value}
    if key == "integrationKeySecretKmsKeyArn":
        context["integrationKeySecretArn"] = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k"
    if key == "webhookSecretArn":
        context["webhooks"] = "true"
    with pytest.raises(ConfigError, match=f"context parameter {key}"):
        config(**context)


def test_combinations_that_would_fail_at_deploy_time_are_rejected() -> None:
    with pytest.raises(ConfigError, match="integrationKeySecretKmsKeyArn"):
        config(integrationKeySecretKmsKeyArn="arn:aws:kms:eu-west-1:123456789012:key/" + "0" * 36)
    with pytest.raises(ConfigError, match="maxConcurrency"):
        config(buffered="true", reservedConcurrency="2", maxConcurrency="3")
    with pytest.raises(ConfigError, match="webhookSecretArn is only meaningful with webhooks"):
        config(webhookSecretArn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:w")
    with pytest.raises(ConfigError, match="reconcileRoleArns needs scheduled reconciliation: reconcileMinutes"):
        config(reconcileRoleArns=json.dumps({"210987654321": ROLE}), reconcileMinutes="0")


def test_the_queue_leaves_room_in_the_reserved_pool_for_the_schedule_and_change_events() -> None:
    """The schedule and the change-event rule invoke the same function out of the same reserved pool: a
    queue allowed all of it would be throttled whenever they run."""
    with pytest.raises(
        ConfigError, match=r"maxConcurrency \(4\) must be below reservedConcurrency \(4\).*reconcileMinutes"
    ):
        config(buffered="true", reservedConcurrency="4", maxConcurrency="4")
    with pytest.raises(ConfigError, match=r"maxConcurrency \(4\) must be below reservedConcurrency.*changeEvents"):
        config(buffered="true", reservedConcurrency="4", maxConcurrency="4", reconcileMinutes="0", changeEvents="true")
    alone = config(buffered="true", reservedConcurrency="4", maxConcurrency="4", reconcileMinutes="0")
    assert alone.max_concurrency == alone.reserved_concurrency == 4
    assert config(buffered="true", reservedConcurrency="5", maxConcurrency="4").max_concurrency == 4


def test_a_buffered_batch_that_cannot_fit_lambdas_timeout_fails_naming_batch_size() -> None:
    assert MAX_BATCH_SIZE * PER_RECORD_SECONDS + TIMEOUT_HEADROOM_SECONDS <= 900
    fits = config(buffered="true", batchSize=str(MAX_BATCH_SIZE))
    assert fits.function_timeout.seconds == MAX_BATCH_SIZE * PER_RECORD_SECONDS + TIMEOUT_HEADROOM_SECONDS
    with pytest.raises(ConfigError) as raised:
        config(buffered="true", batchSize=str(MAX_BATCH_SIZE + 1))
    message = str(raised.value)
    assert message.startswith(f"context parameter batchSize={MAX_BATCH_SIZE + 1}")
    assert f"{(MAX_BATCH_SIZE + 1) * PER_RECORD_SECONDS} s" in message
    assert f"at most {MAX_BATCH_SIZE}" in message
    # Direct mode has no batches: the same batch size is irrelevant there.
    assert config(batchSize=str(MAX_BATCH_SIZE + 1)).function_timeout.seconds == 30 + TIMEOUT_HEADROOM_SECONDS
    with pytest.raises(ConfigError, match="prop batch_size=500"):
        BridgeConfig.from_props(environment="prod", buffered=True, batch_size=500)


def test_the_function_timeout_is_the_larger_of_budget_and_batch_plus_headroom() -> None:
    assert config().function_timeout.seconds == 30 + TIMEOUT_HEADROOM_SECONDS
    assert config(buffered="true").function_timeout.seconds == 30 + TIMEOUT_HEADROOM_SECONDS  # 10 x 2 s < 30 s
    batch = config(buffered="true", batchSize="50")
    assert batch.function_timeout.seconds == 50 * PER_RECORD_SECONDS + TIMEOUT_HEADROOM_SECONDS
    assert "batch of 50" in batch.function_timeout.explain()


def test_reconcile_minutes_zero_turns_the_schedule_off() -> None:
    assert config().reconcile_minutes == 15
    assert config(reconcileMinutes="0").reconcile_minutes == 0
    assert config(reconcileMinutes=60).reconcile_minutes == 60


def test_alert_rules_come_inline_as_string_or_object_or_from_a_file(tmp_path: Path) -> None:
    document = {"rules": [{"name": "payments", "match": {"alarm_name": "payments-*"}, "severity": "critical"}]}
    compact = json.dumps(document, separators=(",", ":"))
    assert config(alertRules=json.dumps(document, indent=2)).alert_rules == compact
    assert config(alertRules=document).alert_rules == compact
    assert config(alertRules=document["rules"]).alert_rules == compact  # a bare list is the rules
    for name, text in (("rules.json", json.dumps(document)), ("rules.yaml", yaml.safe_dump(document, sort_keys=False))):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert config(alertRulesFile=str(tmp_path / name)).alert_rules == compact
    assert config().alert_rules is None


def test_alert_rules_inline_and_from_a_file_exclude_each_other(tmp_path: Path) -> None:
    (tmp_path / "rules.json").write_text('{"rules": []}', encoding="utf-8")
    with pytest.raises(ConfigError, match="alertRules and alertRulesFile"):
        config(alertRules='{"rules": []}', alertRulesFile=str(tmp_path / "rules.json"))


def test_alert_rules_errors_name_the_rule_and_the_field() -> None:
    rules = [{"name": "ok"}, {"name": "web", "match": {"alarm_name": "re:(unclosed"}}]
    with pytest.raises(ConfigError, match=r"alertRules: rule 'web' \(#2\) field match\.alarm_name"):
        config(alertRules=rules)


def test_a_yaml_value_json_cannot_hold_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - name: dated\n    custom_details: {since: 2025-01-01}\n")
    with pytest.raises(ConfigError, match="alertRulesFile"):
        config(alertRulesFile=str(tmp_path / "rules.yaml"))


def test_routing_key_secrets_are_parsed_and_sorted_by_alias() -> None:
    web = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pagerduty/web"
    payments = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pagerduty/payments-AbCdEf"
    expected = (("payments", payments), ("web", web))
    assert config(routingKeySecrets=json.dumps({"web": web, "payments": payments})).routing_key_secrets == expected
    assert config(routingKeySecrets={"web": web, "payments": payments}).routing_key_secrets == expected
    assert config(routingKeySecrets="{}").routing_key_secrets == ()
    assert config().routing_key_secrets == ()


def test_every_accepted_retention_maps_to_a_log_retention() -> None:
    assert retention_days() == set(LOG_RETENTION_DAYS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", ("*",)),
        ("TRUE", ("*",)),
        ("*", ("*",)),
        (True, ("*",)),
        ("false", ()),
        (False, ()),
        ("shop-*, payments", ("shop-*", "payments")),
        ("shop-*,shop-*", ("shop-*",)),
        ('["shop-*", "payments"]', ("shop-*", "payments")),
        (["payments", "*"], ("*",)),
    ],
)
def test_change_events_take_every_stack_or_stack_name_globs(value: Any, expected: tuple[str, ...]) -> None:
    assert config(changeEvents=value).change_events == expected
    assert BridgeConfig.from_props(environment="dev", change_events=value).change_events == expected


def test_reconcile_role_arns_are_parsed_and_sorted_by_account() -> None:
    roles = {"210987654321": ROLE, "111122223333": "arn:aws:iam::111122223333:role/ops/reconcile"}
    expected = tuple(sorted(roles.items()))
    assert config(reconcileRoleArns=json.dumps(roles)).reconcile_role_arns == expected
    assert BridgeConfig.from_props(environment="dev", reconcile_role_arns=roles).reconcile_role_arns == expected


PROP_ERRORS = [
    ("environment", "Prod!"),
    ("alarm_topic_arn", "arn:aws:sqs:eu-west-1:123456789012:not-a-topic"),
    ("integration_key_secret_arn", "my-secret"),
    ("reserved_concurrency", 0),
    ("log_retention_days", 10),
    ("health_alarm_email", "not-an-address"),
    ("architecture", "riscv64"),
    ("buffered", "yes"),
    ("batch_size", "many"),
    ("reconcile_minutes", 1441),
    ("alert_rules", {"rules": [{"name": "loud", "severity": "deafening"}]}),
    ("alert_rules_file", "no/such/rules.yaml"),
    ("routing_key_secrets", {"payments": "arn:aws:ssm:eu-west-1:123456789012:parameter/p"}),
    ("webhooks", "maybe"),
    ("change_events", ["shop_*"]),
    ("reconcile_role_arns", {"210987654321": "arn:aws:iam::111122223333:role/r"}),
    ("snap_start", 1),
    ("half_wired_alarms", "ignore"),
]


@pytest.mark.parametrize(("prop", "value"), PROP_ERRORS)
def test_props_are_validated_as_context_is_and_errors_name_the_prop(prop: str, value: Any) -> None:
    props: dict[str, Any] = {"environment": "prod", prop: value}
    with pytest.raises(ConfigError, match=f"prop {prop}"):
        BridgeConfig.from_props(**props)


def test_a_bad_severity_in_alert_rules_names_the_prop_the_rule_and_the_field() -> None:
    rules = {"rules": [{"name": "fine", "severity": "info"}, {"name": "loud", "severity": "deafening"}]}
    with pytest.raises(ConfigError, match=r"^prop alert_rules: rule 'loud' \(#2\) field severity"):
        BridgeConfig.from_props(environment="prod", alert_rules=rules)


def test_props_and_context_read_into_the_same_config(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("rules:\n  - name: web\n    severity: warning\n", encoding="utf-8")
    secrets = {"web": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pagerduty/web"}
    from_context = config(
        environment="prod",
        buffered="true",
        reservedConcurrency="none",
        alertRulesFile=str(rules_file),
        routingKeySecrets=json.dumps(secrets),
        changeEvents="shop-*",
        reconcileRoleArns=json.dumps({"210987654321": ROLE}),
        webhooks="true",
    )
    from_props = BridgeConfig.from_props(
        environment="prod",
        buffered=True,
        reserved_concurrency=None,
        alert_rules_file=rules_file,
        routing_key_secrets=secrets,
        change_events=["shop-*"],
        reconcile_role_arns={"210987654321": ROLE},
        webhooks=True,
    )
    assert from_props == from_context
    assert BridgeConfig.from_props(**from_props.as_props()) == from_props


def test_a_config_built_directly_is_validated_and_normalized() -> None:
    with pytest.raises(ConfigError, match=r"prop alert_rules: rule 'loud' \(#1\) field severity"):
        BridgeConfig(alert_rules='{"rules": [{"name": "loud", "severity": "deafening"}]}')
    with pytest.raises(ConfigError, match="prop alarm_topic_arn"):
        BridgeConfig(alarm_topic_arn="my-topic")
    with pytest.raises(ConfigError, match=r"max_concurrency \(3\) must not exceed reserved_concurrency"):
        BridgeConfig(buffered=True, reserved_concurrency=2, max_concurrency=3)
    direct = BridgeConfig(alert_rules='{ "rules": [ {"name": "web"} ] }')
    assert direct.alert_rules == '{"rules":[{"name":"web"}]}'


def test_an_unknown_prop_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="alarm_topic"):
        BridgeConfig.from_props(environment="prod", alarm_topic="arn:aws:sns:eu-west-1:123456789012:t")
    with pytest.raises(TypeError, match="account"):
        BridgeConfig.from_props(environment="prod", account="123456789012")


def test_an_arn_of_the_same_app_is_taken_as_given() -> None:
    """A token (a topic or secret of the same app) cannot be checked at synth: CloudFormation fills it in."""
    topic_arn = Fn.import_value("alarms-topic-arn")
    assert BridgeConfig.from_props(environment="prod", alarm_topic_arn=topic_arn).alarm_topic_arn == topic_arn
    with pytest.raises(ConfigError, match="prop health_alarm_email"):
        BridgeConfig.from_props(environment="prod", health_alarm_email=Fn.import_value("oncall-address"))


def test_every_parameter_is_documented_once() -> None:
    fields = set(BridgeConfig.__dataclass_fields__)
    assert fields | {"alert_rules_file"} == set(PARAMETERS)
    assert set(CONTEXT_PARAMETERS) == {
        "".join([name.split("_")[0], *(part.capitalize() for part in name.split("_")[1:])])
        for name in PARAMETERS
        if name != "half_wired_alarms"
    }


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("environment", "environment"),
        ("reservedConcurrency", "reserved_concurrency"),
        ("logRetentionDays", "log_retention_days"),
        ("architecture", "architecture"),
        ("pythonVersion", "python_version"),
        ("retryBudgetSeconds", "retry_budget_seconds"),
        ("maxReceiveCount", "max_receive_count"),
        ("batchSize", "batch_size"),
        ("maxBatchingWindowSeconds", "max_batching_window_seconds"),
        ("maxConcurrency", "max_concurrency"),
        ("reconcileMinutes", "reconcile_minutes"),
    ],
)
def test_documented_defaults_are_the_code_defaults(key: str, field: str) -> None:
    assert CONTEXT_PARAMETERS[key].endswith(f"Default: {getattr(BridgeConfig(), field)}.")


def test_webhook_service_ids_are_read_as_a_list_or_comma_separated_text() -> None:
    """``webhookServiceIds`` names the services whose webhooks the receiver takes (account-wide
    subscriptions deliver every service's); ids are PagerDuty's, sorted, each once."""
    assert config(webhooks="true", webhookServiceIds="PDEF456, PABC123,PABC123").webhook_service_ids == (
        "PABC123",
        "PDEF456",
    )
    assert config(webhooks="true", webhookServiceIds='["PABC123"]').webhook_service_ids == ("PABC123",)
    assert BridgeConfig.from_props(
        environment="prod", webhooks=True, webhook_service_ids=["PABC123"]
    ).webhook_service_ids == ("PABC123",)
    assert config().webhook_service_ids == ()
    with pytest.raises(ConfigError, match="webhookServiceIds is only meaningful with webhooks"):
        config(webhookServiceIds="PABC123")
    with pytest.raises(ConfigError, match="webhookServiceIds"):
        config(webhooks="true", webhookServiceIds="PABC123,not an id")


def test_the_webhook_function_is_told_the_service_ids(tmp_path: Path) -> None:
    synthesized = synthesize("services", tmp_path, webhooks="true", webhookServiceIds="PDEF456,PABC123")
    webhooks = synthesized.bridge.webhooks
    assert webhooks is not None
    function = synthesized.resources[synthesized.logical_id(webhooks.function)]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables[constants.ENV_WEBHOOK_SERVICE_IDS] == "PABC123,PDEF456"
    assert Settings.from_env({constants.ENV_WEBHOOK_SERVICE_IDS: "PABC123,PDEF456"}).webhook_service_ids == {
        "PABC123",
        "PDEF456",
    }
