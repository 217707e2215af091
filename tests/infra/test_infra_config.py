"""Context parameters: parsed, validated, and documented in cdk.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.bridge_function import _RETENTION
from infra.config import CONTEXT_PARAMETERS, LOG_RETENTION_DAYS, BridgeConfig, ConfigError
from tests.infra.conftest import cdk_json_context


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


def test_command_line_strings_are_parsed() -> None:
    parsed = config(
        environment="prod",
        buffered="TRUE",
        reservedConcurrency="20",
        logRetentionDays="90",
        architecture="x86_64",
        maxReceiveCount="3",
        retryBudgetSeconds="45",
    )
    assert (parsed.environment, parsed.buffered, parsed.reserved_concurrency) == ("prod", True, 20)
    assert (parsed.log_retention_days, parsed.architecture, parsed.max_receive_count) == (90, "x86_64", 3)
    assert parsed.retry_budget_seconds == 45


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
    ],
)
def test_malformed_values_are_rejected_naming_the_parameter(key: str, value: str) -> None:
    context = {key: value}
    if key == "integrationKeySecretKmsKeyArn":
        context["integrationKeySecretArn"] = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k"
    with pytest.raises(ConfigError, match=key):
        config(**context)


def test_combinations_that_would_fail_at_deploy_time_are_rejected() -> None:
    with pytest.raises(ConfigError, match="integrationKeySecretKmsKeyArn"):
        config(integrationKeySecretKmsKeyArn="arn:aws:kms:eu-west-1:123456789012:key/" + "0" * 36)
    with pytest.raises(ConfigError, match="maxConcurrency"):
        config(buffered="true", reservedConcurrency="2", maxConcurrency="3")


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
    assert set(_RETENTION) == set(LOG_RETENTION_DAYS)


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("environment", "environment"),
        ("reservedConcurrency", "reserved_concurrency"),
        ("logRetentionDays", "log_retention_days"),
        ("architecture", "architecture"),
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
