"""Attacks on the promise that a routing key or a secret never leaves the process, and on the seed API
used as a library: every path a key could escape by (errors, reprs, logs, output), hostile inputs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from pagerduty_bridge import PagerDutyIntegration, ServiceConfig
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.settings import Settings
from tests.builders import assert_no_secret
from tests.conftest import ROUTING_KEY, assert_valid_event


def integration(url: str) -> PagerDutyIntegration:
    config = ServiceConfig(integration_key=SecretStr(ROUTING_KEY), service_name="checkout")
    return PagerDutyIntegration(config, "production", events_url=url, settings=Settings(retry_budget_seconds=2.0))


# --- the seed API's service config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"integrationKey": ROUTING_KEY, "service_name": "checkout"}, "integrationKey"),  # the seed's spelling
        ({"integration_key": [ROUTING_KEY], "service_name": "checkout"}, "integration_key"),
        ({"integration_key": {"default": ROUTING_KEY}, "service_name": "checkout"}, "integration_key"),
        ({"integration_key": ROUTING_KEY, "service_name": "checkout", "key": ROUTING_KEY}, "key"),
    ],
)
def test_attack_a_service_config_refused_does_not_print_its_key(fields: dict[str, Any], named: str) -> None:
    """A config pydantic refuses (the seed's camelCase ``integrationKey``, a key in a list): the error
    names the field, and never repeats the key it was given (pydantic's ``input_value=``)."""
    with pytest.raises(ValidationError) as caught:
        ServiceConfig(**fields)
    assert named in str(caught.value)
    assert_no_secret(ROUTING_KEY, caught.value, caught.value.errors(), caught.value.json())


def test_attack_an_update_of_the_service_config_refused_does_not_print_the_key(fake_pd: FakePagerDuty) -> None:
    """``update_service_config(integrationKey=…)`` (the seed's spelling) is refused naming the field, the
    key given in no part of the error, and the config as it was."""
    bridge = integration(fake_pd.url)
    new_key = "N3wRoutingKey0000000000000000042"
    with pytest.raises(ValidationError, match="integrationKey") as caught:
        bridge.update_service_config(integrationKey=new_key)
    assert_no_secret([ROUTING_KEY, new_key], caught.value, caught.value.errors(), caught.value.json())
    bridge.trigger_high_latency_incident(7450, 5000)
    (body,) = fake_pd.accepted()
    assert body["routing_key"] == ROUTING_KEY
    assert_valid_event(body)
