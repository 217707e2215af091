"""Routing keys and secrets: parsing secrets, one alias's failure isolated, logs that never carry a key."""

from __future__ import annotations

import json
import logging
import string
import uuid
from typing import Any

import pytest

from pagerduty_bridge.errors import ConfigurationError, RoutingKeyError, UnknownAliasError
from pagerduty_bridge.keys import RoutingKeys, StaticKeys, parse_secret
from pagerduty_bridge.redaction import (
    REDACTOR,
    RedactingFilter,
    Redactor,
    mask_key,
    scrub,
    scrub_aws_secret_fields,
)
from pagerduty_bridge.settings import Settings
from tests.conftest import OTHER_ROUTING_KEY, ROUTING_KEY


def test_a_plain_secret_is_the_default_key() -> None:
    assert parse_secret(ROUTING_KEY, "where") == {"default": ROUTING_KEY}


def test_a_json_secret_holds_aliases() -> None:
    keys = parse_secret(f'{{"default": "{ROUTING_KEY}", "payments": "{OTHER_ROUTING_KEY}"}}'.encode(), "where")
    assert keys["payments"] == OTHER_ROUTING_KEY


@pytest.mark.parametrize(
    ("value", "complaint"), [("", "is empty"), ("{nope", "not valid JSON"), ('{"a": 1}', "JSON object")]
)
def test_bad_secrets_are_named_without_their_value(value: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint) as caught:
        parse_secret(value, "MY_SECRET")
    assert "MY_SECRET" in str(caught.value)


def fetcher(secrets: dict[str, str]) -> object:
    def fetch(reference: str, where: str) -> str:
        if reference not in secrets:
            raise ConfigurationError(f"{where}: cannot read the secret (ResourceNotFoundException)")
        return secrets[reference]

    return fetch


def test_a_malformed_key_fails_only_its_own_alias_and_is_not_echoed() -> None:
    settings = Settings(
        integration_key_secret_arn="default-secret",
        routing_key_secrets={"payments": "payments-secret", "web": "missing-secret"},
    )
    keys = RoutingKeys(
        settings,
        fetch=fetcher({"default-secret": ROUTING_KEY, "payments-secret": "REPLACE-ME"}),  # type: ignore[arg-type]
    )
    assert keys.get("default") == ROUTING_KEY
    with pytest.raises(RoutingKeyError) as payments:
        keys.get("payments")
    assert payments.value.alias == "payments" and payments.value.retryable
    assert "REPLACE-ME" not in str(payments.value)
    assert not isinstance(payments.value, UnknownAliasError), "a broken key is not a missing alias"
    with pytest.raises(RoutingKeyError, match="cannot read the secret") as unreadable:
        keys.get("web")
    assert not isinstance(unreadable.value, UnknownAliasError), "an unreadable secret may come back"
    with pytest.raises(UnknownAliasError, match="no routing key is configured for alias 'other'"):
        keys.get("other")


def test_one_bad_entry_in_a_json_secret_fails_only_that_alias() -> None:
    secret = json.dumps({"default": ROUTING_KEY, "payments": "TODO"})
    keys = RoutingKeys(Settings(integration_key_secret_arn="s"), fetch=fetcher({"s": secret}))  # type: ignore[arg-type]
    assert keys.get("default") == ROUTING_KEY
    with pytest.raises(RoutingKeyError):
        keys.get("payments")


def test_loaded_keys_are_registered_for_scrubbing() -> None:
    key = "Zz" * 16
    StaticKeys({"default": key}).get("default")
    assert key in REDACTOR.secrets
    assert key not in scrub(f"echoed {key} back")
    assert mask_key(key).endswith(key[-4:]) and key not in mask_key(key)


@pytest.mark.parametrize("spelled", [str.upper, str.lower, str.swapcase], ids=["upper", "lower", "swapped"])
def test_attack_a_key_echoed_in_another_case_is_scrubbed_too(spelled: Any) -> None:
    """A proxy, a gateway or PagerDuty may echo a key back in another case (a header name folded, a body
    upper-cased in an error page): it is the same secret and must not reach a log, an error or a record."""
    key = "Ab3dEf7hIj0lMn4pQr8tUv2xYz6BcDeF"
    REDACTOR.add([key])
    echoed = f"upstream said: invalid routing key {spelled(key)}!"
    assert spelled(key) != key
    assert REDACTOR.holds_secret(echoed)
    cleaned = scrub(echoed)
    assert cleaned == "upstream said: invalid routing key ****!"
    assert scrub(f"one-off {spelled(OTHER_ROUTING_KEY)} here", OTHER_ROUTING_KEY) == "one-off **** here"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "answer %s", (echoed,), None)
    record.detail = {"body": echoed}
    assert RedactingFilter().filter(record)
    assert key.lower() not in record.getMessage().lower()
    assert record.detail == {"body": cleaned}


@pytest.mark.parametrize("twice", [False, True], ids=["once", "rotated-twice"])
def test_attack_keys_inside_or_across_each_other_are_scrubbed_whole(twice: bool) -> None:
    """Two aliases' keys where one holds the other, or where one's end is the other's start (a line
    joining them): scrubbing one first left the other's rest in the line, a part of a key in clear."""
    base = "Mn8bVc5xZl2kJh7gFd4sAp1oIu6yTr3e"
    nested = [(base[:12] + f"{n:04d}", base[:12] + f"{n:04d}" + base[16:]) for n in range(8)]
    overlapping = ("Hx" * 8 + base[:16], base[:16] + "Qz" * 8)
    redactor = Redactor()
    for short, long in nested:
        redactor.add([short, long])
    redactor.add(overlapping)
    if twice:
        redactor.add([base.lower()])  # a later key changes the set, not the outcome
    for short, long in nested:
        assert redactor.scrub(f"echo {long} and {short}.") == "echo **** and ****."
        assert redactor.scrub(f"echo {long.upper()}") == "echo ****"
    joined = overlapping[0] + overlapping[1][16:]
    assert redactor.scrub(f"[{joined}]") == "[****]"
    assert redactor.scrub(f"[{joined.swapcase()}]") == "[****]"


def test_the_redacting_filter_scrubs_message_arguments_and_extras() -> None:
    REDACTOR.add([ROUTING_KEY])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s in message", (ROUTING_KEY,), None)
    record.error = f"failed with {ROUTING_KEY}"
    assert RedactingFilter().filter(record)
    assert ROUTING_KEY not in record.getMessage()
    assert ROUTING_KEY not in record.error
    assert "****" in record.error


@pytest.mark.parametrize("where", ["first", "last", "alone", "twice", "nowhere"])
def test_the_redacting_filter_finds_a_secret_in_any_extra_and_leaves_clean_records_alone(where: str) -> None:
    REDACTOR.add([ROUTING_KEY])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "handled", None, None)
    extras = {"a_first": "", "middle": "plain words", "z_last": ""}
    if where in ("first", "twice"):
        extras["a_first"] = ROUTING_KEY  # the whole value: nothing before it in its own text
    if where in ("last", "twice"):
        extras["z_last"] = f"ends with {ROUTING_KEY}"
    if where == "alone":
        extras = {"only": ROUTING_KEY}
    for name, value in extras.items():
        setattr(record, name, value)
    before = dict(vars(record))

    assert RedactingFilter().filter(record)

    assert not any(isinstance(v, str) and ROUTING_KEY in v for v in vars(record).values())
    if where == "nowhere":
        assert vars(record) == before, "a record without a secret is left as it was"
    else:
        assert any(isinstance(v, str) and "****" in v for v in vars(record).values())


def test_aws_answers_lose_their_secret_values_before_the_bridge_knows_them() -> None:
    body = 'Response body:\nb\'{"ARN":"arn:x","Name":"pd","SecretString":"unknown-yet-0123456789abcdef"}\''
    cleaned = scrub_aws_secret_fields(body)
    assert "unknown-yet" not in cleaned and '"ARN":"arn:x"' in cleaned
    ssm = "{'Parameter': {'Name': '/pd', 'Type': 'SecureString', 'Value': 'unknown-yet-0123456789abcdef'}}"
    assert "unknown-yet" not in scrub_aws_secret_fields(ssm)


KEY_CHARACTERS = string.ascii_letters + string.digits
"""Every character a routing key may hold."""
SECRETS = {
    "plain": (KEY_CHARACTERS[:32], [KEY_CHARACTERS[:32]]),
    "aliases": (
        json.dumps({"default": KEY_CHARACTERS[:32], "payments": KEY_CHARACTERS[30:], "web": KEY_CHARACTERS[15:47]}),
        [KEY_CHARACTERS[:32], KEY_CHARACTERS[30:], KEY_CHARACTERS[15:47]],
    ),
    "aliases-spaced": (  # written by hand: spaces, new lines, an alias with quotes of both kinds
        f'{{\n  "default" :  "{KEY_CHARACTERS[::-1][:32]}",\n  "it\'s \\"ours\\"": "{KEY_CHARACTERS[1::2]}"\n}}',
        [KEY_CHARACTERS[::-1][:32], KEY_CHARACTERS[1::2]],
    ),
    "not-a-key": ('he said "it\'s 0123456789abcdef" \\ twice', ["he said", "0123456789abcdef", "twice"]),
}


def aws_answers(secret: str) -> dict[str, dict[str, Any]]:
    """The answers that carry a secret: Secrets Manager's GetSecretValue and SSM's GetParameter."""
    return {
        "secretsmanager": {
            "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pd-AbCdEf",
            "Name": "pd",
            "SecretString": secret,
            "VersionStages": ["AWSCURRENT"],
        },
        "ssm": {
            "Parameter": {
                "ARN": "arn:aws:ssm:eu-west-1:123456789012:parameter/pd",
                "Type": "SecureString",
                "Value": secret,
                "Version": 1,
                "DataType": "text",
            }
        },
    }


def as_logged(answer: dict[str, Any], how: str) -> str:
    """An answer as a log line may carry it: botocore's ``Response body`` (the JSON answer's bytes repr),
    that answer JSON-encoded again once, twice, three times (a log line quoting another), the parsed
    answer's repr, and the same answer twice in one line."""
    body = json.dumps(answer)
    if how == "repr":
        return f"Response: {answer!r}"
    if how == "twice":
        return f"Response body:\n{body.encode()!r} and again {body.encode()!r}"
    for _ in range(int(how.removeprefix("quoted-")) if how.startswith("quoted-") else 0):
        body = json.dumps(body)
    return f"Response body:\n{body.encode()!r}"


@pytest.mark.parametrize("how", ["botocore", "quoted-1", "quoted-2", "quoted-3", "repr", "twice"])
@pytest.mark.parametrize("service", ["secretsmanager", "ssm"])
@pytest.mark.parametrize("secret", SECRETS)
def test_aws_answers_lose_the_whole_secret_value_however_often_it_was_escaped(
    secret: str, service: str, how: str
) -> None:
    value, keys = SECRETS[secret]
    logged = as_logged(aws_answers(value)[service], how)
    assert all(key in logged for key in keys), "the secret is not in the answer as logged"

    cleaned = scrub_aws_secret_fields(logged)

    for key in keys:
        assert key not in cleaned, f"{key!r} survived in {cleaned!r}"
    assert ":123456789012:" in cleaned, "the fields before the secret were blanked too"
    assert ("AWSCURRENT" if service == "secretsmanager" else "DataType") in cleaned, "and those after it"


def test_every_key_a_secret_holds_is_registered_as_soon_as_it_is_read() -> None:
    """A JSON secret's other aliases are in the same answer (and its cache) as the one asked for: each
    must be scrubbed from then on, not only once its own alias is first used."""
    default, payments, broken = (uuid.uuid4().hex for _ in range(3))
    secret = json.dumps({"default": default, "payments": payments, "web": f"{broken} "})
    keys = RoutingKeys(Settings(integration_key_secret_arn="s"), fetch=fetcher({"s": secret}))  # type: ignore[arg-type]

    assert keys.get("default") == default

    assert {default, payments, broken} <= REDACTOR.secrets
    assert payments not in scrub(f"echoed {payments} back") and broken not in scrub(f"and {broken} too")


@pytest.mark.parametrize("by_arn", [False, True])
def test_the_key_may_live_in_an_ssm_securestring(by_arn: bool) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name="/pagerduty/key", Value=ROUTING_KEY, Type="SecureString")
        reference = ssm.get_parameter(Name="/pagerduty/key")["Parameter"]["ARN"] if by_arn else "/pagerduty/key"
        assert RoutingKeys(Settings(integration_key_secret_arn=reference)).get("default") == ROUTING_KEY
        missing = RoutingKeys(Settings(integration_key_secret_arn="/pagerduty/nope"))
        with pytest.raises(ConfigurationError, match="PAGERDUTY_INTEGRATION_KEY_SECRET_ARN: cannot read the secret"):
            missing.get("default")


@pytest.mark.parametrize("service", ["secretsmanager", "ssm"])
def test_a_secret_in_another_region_is_read_there(service: str) -> None:
    """A secret ARN names its region; the function's client is of its own region, where the secret is
    not: it is read with a client of the secret's region."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        there = boto3.client(service, region_name="us-east-1")
        if service == "ssm":
            there.put_parameter(Name="/pagerduty/key", Value=ROUTING_KEY, Type="SecureString")
            arn = there.get_parameter(Name="/pagerduty/key")["Parameter"]["ARN"]
        else:
            arn = there.create_secret(Name="pagerduty/key", SecretString=ROUTING_KEY)["ARN"]
        assert ":us-east-1:" in arn and boto3.client(service).meta.region_name != "us-east-1"

        assert RoutingKeys(Settings(integration_key_secret_arn=arn)).get("default") == ROUTING_KEY


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        (Settings(), "https://events.pagerduty.com/v2/change/enqueue"),
        (Settings(events_url="http://127.0.0.1:8080/v2/enqueue"), "http://127.0.0.1:8080/v2/change/enqueue"),
        (
            Settings(events_url="http://127.0.0.1:8080/v2/enqueue", change_events_url="https://proxy.example/c"),
            "https://proxy.example/c",
        ),
    ],
)
def test_change_events_go_to_their_own_url_or_the_events_urls_origin(settings: Settings, url: str) -> None:
    assert settings.change_url == url
