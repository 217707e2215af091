"""The invocation's time budget under a slow world: answers whose headers come late and whose body
comes later still, over real local sockets. A send must end within ``send_seconds`` of its budget (what
the invocation's deadline counts on), and an answer that came whole must count, late or not."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from pagerduty_bridge import handler
from pagerduty_bridge.errors import PagerDutyApiError, PagerDutyDeliveryError
from pagerduty_bridge.keys import RoutingKeys
from pagerduty_bridge.processing import Deadline, process_event, send_seconds
from pagerduty_bridge.runtime import Runtime
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.builders import lambda_environment, sns_event, sqs_alarm, sqs_event
from tests.conftest import ROUTING_KEY, FakeLambdaContext
from tests.integration.test_odd_answers import timed_send
from tests.sockets import Answer, LocalServer, read_request, within

SLOW_SECRET_SECONDS = 5.0
"""A Secrets Manager read that timed out once (3 s) and was answered on its retry: well within what
the secret client allows (two attempts of 2 s to connect and 3 s to read)."""
ACCEPTED = b'{"status":"success","message":"Event processed","dedup_key":"k"}'


def after(seconds: float, head: bytes, body: bytes = b"", *, stall: bool = False) -> Answer:
    """Wait ``seconds``, write ``head`` and ``body``; with ``stall``, then hold the rest of the body back."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        time.sleep(seconds)
        conn.sendall(head + body)
        if stall:
            stop.wait(30)

    return answer


def head(status: str, length: int) -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()


def send(url: str, budget: float) -> tuple[BaseException | None, float]:
    return timed_send(url, budget, wait=40)


def test_attack_a_503_whose_body_stalls_near_the_budgets_end_does_not_push_the_retry_past_it(scripted) -> None:  # type: ignore[no-untyped-def]
    budget = 2.0
    server = scripted(
        [
            after(1.7, head("503 Service Unavailable", 100), stall=True),  # the retry check passes; the drain waits
            after(1.9, head("202 Accepted", 100), stall=True),  # headers just before the read timeout, then nothing
        ]
    )
    error, elapsed = send(server.url, budget)
    assert isinstance(error, PagerDutyDeliveryError | PagerDutyApiError), error
    assert error.retryable
    assert elapsed <= send_seconds(budget) + 0.5, f"the send took {elapsed:.1f} s, more than the deadline counts on"


def test_attack_a_last_attempt_whose_body_stalls_ends_within_what_the_deadline_counts_on(scripted) -> None:  # type: ignore[no-untyped-def]
    budget = 6.0  # read timeout 6 s, connect timeout 3.05 s: the last attempt may take 9.05 s, not 12
    server = scripted(
        [
            after(5.8, head("503 Service Unavailable", 2), b"{}"),
            after(5.9, head("202 Accepted", len(ACCEPTED)), stall=True),
        ]
    )
    error, elapsed = send(server.url, budget)
    assert isinstance(error, PagerDutyDeliveryError), error
    assert error.ambiguous and error.retryable
    assert elapsed <= send_seconds(budget) + 0.5, f"the send took {elapsed:.1f} s, more than the deadline counts on"


def test_attack_an_acceptance_read_whole_just_after_the_budget_counts_as_accepted(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(
        [
            after(1.8, head("503 Service Unavailable", 2), b"{}"),
            after(0.5, head("202 Accepted", len(ACCEPTED)), ACCEPTED),  # whole, but after the budget's end
        ]
    )
    error, _ = send(server.url, 2.0)
    assert error is None, f"PagerDuty accepted the event, yet the send failed: {error}"
    assert server.requests == 2


def test_attack_a_slow_secret_read_is_spent_from_the_records_budget_not_from_lambdas_timeout(scripted) -> None:  # type: ignore[no-untyped-def]
    """The routing key's secret is read when the first page needs it (and again every few minutes): a
    Secrets Manager that answers only after a read timeout and its retry takes seconds the record's
    budget never counted. The record must still end by the invocation's deadline, not run on into the
    margin kept for the answer (and past it, into Lambda's timeout, mid-record)."""
    server = scripted([after(1.9, head("503 Service Unavailable", 2), b"{}") for _ in range(10)])
    settings = Settings(
        integration_key_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:k",
        events_url=server.url,
        retry_budget_seconds=2.0,
    )
    runtime = Runtime(settings=settings, store=SQLiteIncidentStore())

    def slow_secret(reference: str, where: str) -> str:
        time.sleep(SLOW_SECRET_SECONDS)
        return ROUTING_KEY

    runtime.keys = RoutingKeys(runtime.settings, fetch=slow_secret)
    deadline = Deadline.after(8.0)
    assert deadline.record_budget(2.0) == 2.0, "the record is started with its whole budget"

    result = process_event(sns_event("slow-secret-cpu"), runtime.notifications(), deadline=deadline)

    remaining = deadline.remaining()
    assert remaining is not None and remaining >= 0, f"the record ran {-(remaining or 0):.1f} s past the deadline"
    [record] = result.results
    assert record.retryable, "the page that could not be sent in time is kept for the retry"


class SilentTable(LocalServer):
    """A DynamoDB endpoint that takes every connection and request and never answers (a table behind a
    NAT that forgot the container's connections, or an endpoint in trouble)."""

    def __init__(self) -> None:
        self.requests = 0
        super().__init__()

    def accepted(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if read_request(conn):
                self.requests += 1
            self.stop.wait(60)


def test_attack_a_table_that_stops_answering_does_not_hold_a_batch_past_lambdas_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each call to a silent table waits out its read timeout on every attempt the client makes. The
    first record meets it in full; the records after it must not each wait it out again: one started
    with its one second of table work to spare outlasts the margin, and Lambda's timeout ends the
    invocation with no answer for any record of the batch."""
    table = SilentTable()
    lambda_environment(monkeypatch, table="incidents", events_url="http://127.0.0.1:9/v2/enqueue")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", table.url)
    records = [sqs_alarm(f"silent-table-{i}") for i in range(3)]
    lambda_timeout = 32.0  # the first record waits out 4 attempts of 5 s; the second is started with 7 s left
    try:
        started = time.monotonic()
        answered = within(
            lambda_timeout + 20,
            lambda: handler.lambda_handler(
                sqs_event(*records), FakeLambdaContext(remaining_millis=int(lambda_timeout * 1000))
            ),
        )
        elapsed = time.monotonic() - started
    finally:
        table.close()
    assert elapsed < lambda_timeout, f"the invocation ran {elapsed:.1f} s: Lambda's timeout would have ended it"
    assert answered, "no answer"
    failed = {f["itemIdentifier"] for f in answered[0]["batchItemFailures"]}
    assert failed == {r["messageId"] for r in records}, "every record goes back: none was paged"
