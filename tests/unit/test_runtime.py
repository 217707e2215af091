"""The Lambda runtime's secret handling: parsing secrets, and logs that never carry a key."""

from __future__ import annotations

import logging

import pytest

from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.runtime import RedactingFilter, parse_secret
from tests.conftest import OTHER_ROUTING_KEY, ROUTING_KEY


def test_a_plain_secret_is_the_default_key() -> None:
    keys = parse_secret(ROUTING_KEY, "where")
    assert {alias: k.get_secret_value() for alias, k in keys.items()} == {"default": ROUTING_KEY}


def test_a_json_secret_holds_aliases() -> None:
    keys = parse_secret(f'{{"default": "{ROUTING_KEY}", "payments": "{OTHER_ROUTING_KEY}"}}'.encode(), "where")
    assert keys["payments"].get_secret_value() == OTHER_ROUTING_KEY


@pytest.mark.parametrize(
    ("value", "complaint"),
    [("", "is empty"), ("{nope", "not valid JSON"), ('{"a": 1}', "JSON object"), ("short", "malformed")],
)
def test_bad_secrets_are_named_without_their_value(value: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint) as caught:
        parse_secret(value, "MY_SECRET")
    assert "MY_SECRET" in str(caught.value)


def test_a_malformed_key_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_secret("not-a-key-but-secret", "MY_SECRET")
    assert "not-a-key-but-secret" not in str(caught.value)


def test_the_redacting_filter_scrubs_message_arguments_and_extras() -> None:
    redactor = RedactingFilter()
    redactor.secrets.add(ROUTING_KEY)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s in message", (ROUTING_KEY,), None)
    record.error = f"failed with {ROUTING_KEY}"
    assert redactor.filter(record)
    assert ROUTING_KEY not in record.getMessage()
    assert ROUTING_KEY not in record.error
    assert "****" in record.error


@pytest.mark.parametrize("by_arn", [False, True])
def test_the_key_may_live_in_an_ssm_securestring(by_arn: bool) -> None:
    import boto3
    from moto import mock_aws

    from pagerduty_bridge.runtime import Runtime
    from pagerduty_bridge.settings import Settings
    from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

    with mock_aws():
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name="/pagerduty/key", Value=ROUTING_KEY, Type="SecureString")
        reference = ssm.get_parameter(Name="/pagerduty/key")["Parameter"]["ARN"] if by_arn else "/pagerduty/key"
        runtime = Runtime(settings=Settings(integration_key_secret_arn=reference), store=SQLiteIncidentStore())
        assert runtime.routing_keys()["default"].get_secret_value() == ROUTING_KEY
        missing = Runtime(settings=Settings(integration_key_secret_arn="/pagerduty/nope"), store=SQLiteIncidentStore())
        with pytest.raises(ConfigurationError, match="PAGERDUTY_INTEGRATION_KEY_SECRET_ARN: cannot read the secret"):
            missing.routing_keys()
