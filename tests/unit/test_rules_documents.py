"""The documents the CDK construct hands the function, read as the function reads them.

The synth validates alert rules and converts YAML to compact JSON (``ALERT_RULES``); routing-key
secrets arrive as a JSON object (``PAGERDUTY_ROUTING_KEY_SECRETS``). These tests hold the package to
reading both exactly as handed over; ``tests/infra`` checks that the template carries them.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pagerduty_bridge import constants
from pagerduty_bridge.rules import load_rules, parse_rules
from pagerduty_bridge.settings import Settings

RULES_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "rules" / "example.yaml"


def _compact_json_of_the_yaml_file() -> str:
    """What the synth puts into ALERT_RULES for the example YAML file."""
    return json.dumps(yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")), separators=(",", ":"))


def test_a_yaml_rules_file_as_compact_json_is_the_same_rules() -> None:
    as_json = parse_rules(_compact_json_of_the_yaml_file(), where="test").rules
    as_yaml = parse_rules(RULES_FILE.read_text(encoding="utf-8"), where="test").rules
    assert [rule.name for rule in as_json] == [rule.name for rule in as_yaml]
    assert as_json == as_yaml


def test_the_alert_rules_variable_is_read_through_settings() -> None:
    document = {"rules": [{"name": "payments", "match": {"alarm_name": "payments-*"}, "severity": "critical"}]}
    rules = load_rules(Settings.from_env({constants.ENV_ALERT_RULES: json.dumps(document, separators=(",", ":"))}))
    assert [rule.name for rule in rules.rules] == ["payments"]


def test_the_routing_key_secrets_variable_is_read_by_alias() -> None:
    secrets = {
        "payments": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pagerduty/payments-AbCdEf",
        "web": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pagerduty/web",
    }
    settings = Settings.from_env({constants.ENV_ROUTING_KEY_SECRETS: json.dumps(secrets, separators=(",", ":"))})
    assert settings.routing_key_secrets == secrets
