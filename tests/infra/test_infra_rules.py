"""Alert rules and routing-key aliases: validated at synth, handed to the function as the validated document.

How the package itself reads these variables is tested in ``tests/unit/test_rules_documents.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.app import build_app
from pagerduty_bridge_cdk.config import ConfigError
from pagerduty_bridge_cdk.functions import ENVIRONMENT_LIMIT_BYTES, UNRESOLVED_VALUE_BYTES, environment_size
from tests.infra.conftest import (
    ACCOUNT,
    INLINE_RULES,
    PAYMENTS_SECRET_ARN,
    REGION,
    REPO_ROOT,
    RULES_FILE,
    WEB_SECRET_PARTIAL_ARN,
    Synthesized,
    cdk_json_context,
)

INVALID_RULES: dict[str, Any] = {
    "rules": [
        {"name": "fine", "severity": "info"},
        {"name": "loud-payments", "match": {"alarm_name": "payments-*"}, "severity": "deafening"},
    ]
}
"""The second rule's severity is not one PagerDuty knows."""


def _variables(synthesized: Synthesized) -> dict[str, Any]:
    variables: dict[str, Any] = synthesized.function["Properties"]["Environment"]["Variables"]
    return variables


def _context(**parameters: str) -> dict[str, Any]:
    return {**cdk_json_context(), "account": ACCOUNT, "region": REGION, **parameters}


def test_inline_alert_rules_reach_the_function_as_the_validated_document(routed: Synthesized) -> None:
    value = _variables(routed)[constants.ENV_ALERT_RULES]
    assert json.loads(value) == INLINE_RULES
    assert value == routed.bridge.config.alert_rules
    assert value == json.dumps(INLINE_RULES, separators=(",", ":"))


def test_a_yaml_rules_file_reaches_the_function_as_json(buffered: Synthesized) -> None:
    value = _variables(buffered)[constants.ENV_ALERT_RULES]
    assert json.loads(value) == yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert value.startswith("{")  # JSON: the function needs no YAML parser
    assert "\n" not in value  # compact: the environment is limited to 4 KB


def test_without_rules_or_routing_context_neither_variable_is_set(direct: Synthesized) -> None:
    variables = _variables(direct)
    assert constants.ENV_ALERT_RULES not in variables
    assert constants.ENV_ROUTING_KEY_SECRETS not in variables
    assert constants.ENV_ALERT_RULES_FILE not in variables


def test_routing_key_secrets_reach_the_function_by_alias(routed: Synthesized) -> None:
    value = _variables(routed)[constants.ENV_ROUTING_KEY_SECRETS]
    assert json.loads(value) == {"payments": PAYMENTS_SECRET_ARN, "web": WEB_SECRET_PARTIAL_ARN}


def test_the_environment_fits_lambdas_limit(variant: Synthesized) -> None:
    size = environment_size(_variables_as_given(variant))
    assert size <= ENVIRONMENT_LIMIT_BYTES


def _variables_as_given(synthesized: Synthesized) -> dict[str, str]:
    """The variables with each deploy-time value as the placeholder the size check counts."""
    return {
        name: value if isinstance(value, str) else "x" * UNRESOLVED_VALUE_BYTES
        for name, value in _variables(synthesized).items()
    }


@pytest.mark.parametrize("shape", ["string", "object"])
def test_invalid_inline_rules_fail_the_synth_naming_rule_and_field(shape: str) -> None:
    rules = json.dumps(INVALID_RULES) if shape == "string" else INVALID_RULES
    with pytest.raises(ConfigError, match=r"alertRules: rule 'loud-payments' \(#2\) field severity"):
        build_app({**_context(), "alertRules": rules})


def test_an_invalid_rules_file_fails_the_synth_naming_file_rule_and_field(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(INVALID_RULES), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        build_app(_context(alertRulesFile=str(rules_file)))
    message = str(raised.value)
    assert "alertRulesFile" in message
    assert str(rules_file) in message
    assert "rule 'loud-payments' (#2) field severity" in message


def test_the_app_exits_non_zero_on_invalid_rules() -> None:
    """What ``cdk synth`` runs, in a process of its own: the CLI hands context over in CDK_CONTEXT_JSON."""
    environment = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(_context(alertRules=json.dumps(INVALID_RULES)))}
    result = subprocess.run(
        [sys.executable, "infra/app.py"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "rule 'loud-payments' (#2) field severity" in result.stderr


def test_rules_too_large_for_lambdas_environment_fail_the_synth() -> None:
    """Checked before the asset is built: the error comes in well under a second of CDK work."""
    many = {
        "rules": [
            {"name": f"team-{n:03d}", "match": {"alarm_name": f"team-{n:03d}-*"}, "severity": "warning"}
            for n in range(80)
        ]
    }
    with pytest.raises(
        ConfigError, match=rf"over Lambda's limit of {ENVIRONMENT_LIMIT_BYTES}.*{constants.ENV_ALERT_RULES}"
    ):
        build_app(_context(alertRules=json.dumps(many)))
