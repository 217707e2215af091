"""Hostile and odd answers around the delivery: secrets of odd shapes, crashes between steps, tables and
PagerDuty answering strangely. Each test is a defect that was reproduced first, then fixed."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import clear_caches
from botocore.exceptions import ClientError
from moto import mock_aws

from pagerduty_bridge import constants as c
from pagerduty_bridge import events_api, handler, keys, transport
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.errors import RoutingKeyError, UnknownAliasError
from pagerduty_bridge.keys import RoutingKeys, parse_secret
from pagerduty_bridge.models import Incident
from pagerduty_bridge.redaction import scrub
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from tests.builders import (
    T0,
    dedup_key,
    lambda_environment,
    put_cpu_alarm,
    schedule_event,
    sns_event,
    sqs_alarm,
    sqs_event,
)
from tests.conftest import ROUTING_KEY, FakeLambdaContext
from tests.integration.test_hardening import fresh_key
from tests.sockets import LocalServer, read_request, within

TABLE = "incidents"
REGION = "eu-west-1"


@dataclass
class Bridge:
    """The function in a new container, on moto and the PagerDuty stand-in."""

    fake: FakePagerDuty
    client: Any
    key: str

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler.lambda_handler(event, FakeLambdaContext())
        return result

    def incident(self, name: str) -> Incident | None:
        return DynamoDBIncidentStore(self.client, TABLE).get(dedup_key(name))

    def alert(self, name: str, key: str | None = None) -> str | None:
        alert = self.fake.alerts.get((key or self.key, dedup_key(name)))
        return alert.status if alert is not None else None


@pytest.fixture
def bridge(monkeypatch: pytest.MonkeyPatch, fake_pd: FakePagerDuty) -> Iterator[Bridge]:
    key = fresh_key()
    lambda_environment(monkeypatch, table=TABLE, events_url=fake_pd.url, key=key, retry_budget_seconds=1)
    clear_caches()  # Powertools keeps its Secrets Manager provider per process
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, TABLE)
        yield Bridge(fake_pd, client, key)
    clear_caches()


def use_secret(bridge: Bridge, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """The integration key comes from a Secrets Manager secret holding ``value``."""
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"pagerduty-{uuid.uuid4().hex[:8]}", SecretString=value
    )["ARN"]
    monkeypatch.delenv(c.ENV_INTEGRATION_KEY)
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY_SECRET_ARN, arn)


# --- secrets of odd shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("odd", [None, 12345, ["a", "b"], {"key": "nested"}, True])
def test_attack_an_entry_of_another_type_in_a_json_secret_fails_only_its_own_alias(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, odd: object
) -> None:
    """``{"default": "…", "payments": null}`` (an alias switched off by hand, a number pasted): the
    default alias still pages; only the odd alias's pages fail, kept for retry."""
    use_secret(bridge, monkeypatch, json.dumps({"default": bridge.key, "payments": odd}))

    response = bridge.invoke(sns_event("odd-entry-default"))

    assert response == {"processed": 1, "failed": 0}
    assert bridge.alert("odd-entry-default") == "triggered"
    ok = bridge.invoke(sns_event("odd-entry-default", "OK", "ALARM", at=T0 + timedelta(minutes=1)))
    assert ok == {"processed": 1, "failed": 0}
    assert bridge.alert("odd-entry-default") == "resolved"


def test_attack_the_odd_entry_of_a_json_secret_is_a_broken_alias_not_a_missing_one() -> None:
    """The odd entry's alias is named, so its pages are kept for retry (not rerouted to ``default``), and
    whatever the entry holds is scrubbed from logs like any key."""
    hidden = fresh_key()
    secret = json.dumps({"default": ROUTING_KEY, "payments": None, "web": {"key": hidden}})
    keys = RoutingKeys(Settings(integration_key_secret_arn="s"), fetch=lambda reference, where: secret)

    assert keys.get("default") == ROUTING_KEY
    for alias in ("payments", "web"):
        with pytest.raises(RoutingKeyError, match="holds no routing key string") as caught:
            keys.get(alias)
        assert not isinstance(caught.value, UnknownAliasError) and caught.value.retryable
    assert hidden not in scrub(f"echoed {hidden}")


@pytest.mark.parametrize("json_secret", [False, True], ids=["plain", "json"])
@pytest.mark.parametrize("mark", ["\ufeff", "\u200b", "\u2060"], ids=["bom", "zero-width-space", "word-joiner"])
def test_attack_an_invisible_mark_around_a_secret_does_not_stop_every_page(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, json_secret: bool, mark: str
) -> None:
    """A key saved by an editor that writes a byte-order mark, or pasted from a page with a zero-width
    character beside it, looks like the key in every console: it is read as the key, and a JSON secret
    so marked as JSON (not as one malformed plain key that fails every alias)."""
    value = json.dumps({"default": bridge.key}) if json_secret else bridge.key
    use_secret(bridge, monkeypatch, f"{mark}{value}{mark}\r\n")

    assert bridge.invoke(sns_event("invisible-mark")) == {"processed": 1, "failed": 0}
    assert bridge.alert("invisible-mark") == "triggered"


@contextlib.contextmanager
def secrets_manager_refusing(code: str) -> Iterator[Callable[[bool], None]]:
    """Secrets Manager answering ``GetSecretValue`` with ``code`` while switched on (a throttle, an
    outage, a network path to it that broke): clients made from boto3's default session, as the function's
    are, hear it. Yields the switch."""
    refusing = [False]

    def refuse(**_: object) -> None:
        if refusing[0]:
            raise ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, "GetSecretValue")

    events = boto3._get_default_session().events
    events.register("before-call.secrets-manager.GetSecretValue", refuse)
    try:
        yield lambda on: refusing.__setitem__(0, on)
    finally:
        refusing[0] = False
        events.unregister("before-call.secrets-manager.GetSecretValue", refuse)


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServiceError"])
def test_attack_secrets_manager_failing_a_refresh_does_not_stop_pages_with_the_key_just_used(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    """The cached key expires (every five minutes) and Secrets Manager throttles or fails the read that
    refreshes it: the key the function paged with a moment ago still pages, instead of every alarm
    failing until Secrets Manager answers again."""
    monkeypatch.setattr(keys, "SECRET_MAX_AGE_SECONDS", 0)  # every read refreshes: five minutes later
    use_secret(bridge, monkeypatch, bridge.key)
    with secrets_manager_refusing(code) as refusing:
        assert bridge.invoke(sns_event("before-the-throttle")) == {"processed": 1, "failed": 0}
        refusing(True)

        response = bridge.invoke(sns_event("during-the-throttle"))

    assert response == {"processed": 1, "failed": 0}
    assert bridge.alert("during-the-throttle") == "triggered"


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException", "ResourceNotFoundException"])
def test_attack_a_secret_that_cannot_be_read_says_what_secrets_manager_answered(code: str) -> None:
    """Throttling, a missing permission and a deleted secret need different fixes: the error (in the log
    and in ``health``) names Secrets Manager's answer, not only that Powertools could not get it."""
    clear_caches()
    with mock_aws(), secrets_manager_refusing(code) as refusing:
        refusing(True)
        arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:pagerduty-AbCdEf"
        with pytest.raises(RoutingKeyError) as caught:
            RoutingKeys(Settings(integration_key_secret_arn=arn)).get("default")
    clear_caches()
    assert code in str(caught.value)


class StallingSecretsManager(LocalServer):
    """A Secrets Manager endpoint that answers ``GetSecretValue`` with ``value`` ``answers`` times, then
    takes requests and never answers (a VPC endpoint or a network path to it that broke)."""

    def __init__(self, value: str, answers: int = 1) -> None:
        self.value, self.answers = value, answers
        self.stalled = 0
        super().__init__()

    def accepted(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while read_request(conn):
                if self.answers <= 0:
                    self.stalled += 1
                    self.stop.wait()
                    return
                self.answers -= 1
                body = json.dumps(
                    {
                        "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pd-AbCdEf",
                        "Name": "pd",
                        "VersionId": "v1",
                        "SecretString": self.value,
                        "VersionStages": ["AWSCURRENT"],
                    }
                ).encode()
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {len(body)}\r\n\r\n"
                conn.sendall(head.encode() + body)


def use_secrets_manager_at(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key read from a secret, through the Secrets Manager endpoint at ``url``."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
    monkeypatch.delenv(c.ENV_INTEGRATION_KEY)
    monkeypatch.setenv(
        c.ENV_INTEGRATION_KEY_SECRET_ARN, f"arn:aws:secretsmanager:{REGION}:123456789012:secret:pd-AbCdEf"
    )


def test_attack_a_secrets_manager_that_stops_answering_does_not_hold_every_page(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets Manager takes the refresh's request and never answers: the read gives up within seconds
    and the key read last pages, instead of each page waiting out boto3's 60 s read timeout (times its
    retries) and the function's timeout ending the invocation with nothing paged."""
    monkeypatch.setattr(keys, "SECRET_MAX_AGE_SECONDS", 0)  # every read refreshes: five minutes later
    stalling = StallingSecretsManager(bridge.key)
    use_secrets_manager_at(stalling.url, monkeypatch)
    try:
        assert bridge.invoke(sns_event("before-the-stall")) == {"processed": 1, "failed": 0}
        answered = within(15, lambda: bridge.invoke(sns_event("during-the-stall")))
        assert stalling.stalled, "the refresh never reached the stalling endpoint"
        assert answered == [{"processed": 1, "failed": 0}], "the page waited on a Secrets Manager that never answers"
    finally:
        stalling.close()
    assert bridge.alert("during-the-stall") == "triggered"


# --- a table that stops answering -------------------------------------------------------------------------


class SeveringProxy(LocalServer):
    """A TCP proxy to ``upstream`` whose next connection is dead the way a NAT or a frozen container's
    idle connection dies: no FIN, no RST; what is sent on it simply never gets an answer. (moto's server
    closes each connection after its answer, so the dead pooled connection is played by the next one.)
    Connections after it work."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.to_sever = 0
        self.severed_requests = 0
        super().__init__()

    def accepted(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        dead = [self.to_sever > 0]
        self.to_sever -= dead[0]
        threading.Thread(target=self._copy, args=(client, server, dead, True), daemon=True).start()
        self._copy(server, client, dead, False)

    def _copy(self, source: socket.socket, target: socket.socket, dead: list[bool], request: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if dead[0]:
                    self.severed_requests += request
                    continue  # swallowed: nothing reaches the table, no answer comes back
                target.sendall(data)

    def sever_next(self) -> None:
        self.to_sever = 1


def test_attack_a_table_connection_that_died_while_idle_costs_seconds_not_the_batch(
    fake_pd: FakePagerDuty, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function's pooled connection to DynamoDB died while the container was frozen (no FIN: a NAT
    forgot it). The next write on it gets no answer: it is given up within seconds and made again on a
    new connection, so the page goes out, instead of waiting out boto3's 60 s read timeout — past the
    function's own timeout, which ends the invocation with nothing paged and the whole batch back."""
    table = f"incidents-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION), table)
    proxy = SeveringProxy(moto_url)
    key = fresh_key()
    # The default budget's order: a claim written seconds late still leaves its lease time to send.
    lambda_environment(monkeypatch, table=table, events_url=fake_pd.url, key=key, retry_budget_seconds=20)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
    try:
        first = handler.lambda_handler(sns_event("before-the-freeze"), FakeLambdaContext())
        assert first == {"processed": 1, "failed": 0}
        proxy.sever_next()
        context = FakeLambdaContext(remaining_millis=30_000)
        answered = within(25, lambda: handler.lambda_handler(sns_event("after-the-freeze"), context))
    finally:
        proxy.close()
    assert proxy.severed_requests, "no request went over the severed connection"
    assert answered == [{"processed": 1, "failed": 0}], "the page waited on a connection that was dead"
    alert = fake_pd.alerts.get((key, dedup_key("after-the-freeze")))
    assert alert is not None and alert.status == "triggered"


def test_attack_a_secret_of_blanks_between_two_characters_is_trimmed_in_linear_time() -> None:
    """Up to 64 KB of anything may be in a secret: trimming what surrounds a key never backtracks."""
    value = "a" + " \u200b" * 32_000 + "b"
    around = " \u200b" * 32_000  # blanks and marks in turn: no layer-by-layer stripping either
    started = time.monotonic()
    assert parse_secret(f"\ufeff{value}\n", "W") == {"default": value}
    assert parse_secret(f"{around}{value}{around}", "W") == {"default": value}
    assert time.monotonic() - started < 0.5


def test_attack_a_cloudwatch_connection_that_died_while_idle_does_not_stop_the_scheduled_run(
    fake_pd: FakePagerDuty, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduled run comes every quarter of an hour, so the container's connection to CloudWatch
    has idled long enough for a NAT to forget it. Its first read of the alarms gets no answer: given up
    within seconds and made again, the run still resolves the incident whose OK was lost, instead of
    waiting out boto3's 60 s and being ended by the function's timeout at every run."""
    table = f"incidents-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION), table)
    name = f"cw-stall-{uuid.uuid4().hex[:8]}"
    put_cpu_alarm(boto3.client("cloudwatch", endpoint_url=moto_url, region_name=REGION), name, "OK")
    proxy = SeveringProxy(moto_url)
    key = fresh_key()
    lambda_environment(monkeypatch, table=table, events_url=fake_pd.url, key=key, retry_budget_seconds=20)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", proxy.url)
    try:
        assert handler.lambda_handler(sns_event(name), FakeLambdaContext()) == {"processed": 1, "failed": 0}
        proxy.sever_next()
        context = FakeLambdaContext(remaining_millis=30_000)
        ran = within(25, lambda: handler.lambda_handler(schedule_event(T0 + timedelta(hours=1)), context))
    finally:
        proxy.close()
    assert proxy.severed_requests, "no request went over the severed connection"
    assert ran, "the scheduled run waited on a connection that was dead"
    alert = fake_pd.alerts.get((key, dedup_key(name)))
    assert alert is not None and alert.status == "resolved", ran


# --- PagerDuty's connection after the container idled ---------------------------------------------------


class ForgetfulPagerDuty(LocalServer):
    """Accepts every event on a new connection; a connection that was used once (kept alive) then takes
    requests and never answers: it died while the container idled, and nothing told the client."""

    path = "/v2/enqueue"

    def __init__(self) -> None:
        self.answered = 0
        self.swallowed = 0
        super().__init__()

    def accepted(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            used = False
            while read_request(conn):
                if used:
                    self.swallowed += 1
                    self.stop.wait()
                    return
                used = True
                self.answered += 1
                body = b'{"status":"success","message":"Event processed","dedup_key":"k"}'
                head = f"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                conn.sendall(head.encode() + body)


EVENT = {
    "routing_key": ROUTING_KEY,
    "event_action": "trigger",
    "dedup_key": "k",
    "payload": {"summary": "s", "source": "x", "severity": "critical"},
}


def test_attack_a_page_after_the_container_idled_does_not_wait_on_a_dead_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection kept alive from the last page died while the container idled (PagerDuty's load
    balancer closed it, a NAT forgot it, and the frozen container never heard). The next page must not
    be sent on it: it would wait a whole read timeout, and its outcome would be unknown (the incident
    left unconfirmed for the scheduled run) though PagerDuty never saw it."""
    monkeypatch.setattr(transport, "MAX_IDLE_SECONDS", 0.2)  # an idle container, sped up
    pagerduty = ForgetfulPagerDuty()
    client = events_api.EventsClient(pagerduty.url, retry_budget_seconds=3)
    try:
        assert client.send_body(dict(EVENT)).status == "success"
        time.sleep(0.5)
        started = time.monotonic()
        answer = client.send_body(dict(EVENT))
        elapsed = time.monotonic() - started
    finally:
        pagerduty.close()
    assert answer.status == "success"
    assert not pagerduty.swallowed and not answer.ambiguous, "the page went out on the connection that had died"
    assert elapsed < 1.0


def test_attack_a_batch_read_while_secrets_manager_stalls_waits_on_it_once_not_per_record(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten buffered alarms arrive while Secrets Manager stalls: the first record's refresh gives up and
    pages with the key read last; the records after it page at once with that key too, instead of each
    waiting out its own refresh (ten of them outlast the function's timeout)."""
    monkeypatch.setattr(keys, "SECRET_MAX_AGE_SECONDS", 0)  # every read refreshes: five minutes later
    stalling = StallingSecretsManager(bridge.key)
    use_secrets_manager_at(stalling.url, monkeypatch)
    records = [sqs_alarm(f"stalled-batch-{i}") for i in range(10)]
    try:
        assert bridge.invoke(sns_event("before-the-stall")) == {"processed": 1, "failed": 0}
        context = FakeLambdaContext(remaining_millis=45_000)
        started = time.monotonic()
        answered = within(40, lambda: handler.lambda_handler(sqs_event(*records), context))
        elapsed = time.monotonic() - started
    finally:
        stalling.close()
    assert answered == [{"batchItemFailures": []}]
    assert all(bridge.alert(f"stalled-batch-{i}") == "triggered" for i in range(10))
    assert elapsed < 15, f"each record waited on Secrets Manager: {elapsed:.1f} s"


def test_attack_a_batch_at_a_cold_start_while_secrets_manager_stalls_ends_within_its_deadline(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key was read yet and Secrets Manager stalls: the first record's read gives up; the records
    after it fail at once for the same reason (kept for retry) instead of each waiting on the service
    again, so the invocation answers with its batch failures before the function's timeout ends it."""
    stalling = StallingSecretsManager(bridge.key, answers=0)
    use_secrets_manager_at(stalling.url, monkeypatch)
    records = [sqs_alarm(f"cold-stall-{i}") for i in range(10)]
    try:
        context = FakeLambdaContext(remaining_millis=45_000)
        answered = within(20, lambda: handler.lambda_handler(sqs_event(*records), context))
    finally:
        stalling.close()
    assert answered, "each record waited on Secrets Manager in turn"
    assert {f["itemIdentifier"] for f in answered[0]["batchItemFailures"]} == {r["messageId"] for r in records}
