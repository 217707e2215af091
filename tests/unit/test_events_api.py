"""The wire body: PagerDuty's limits, masking, and failure classification."""

from __future__ import annotations

import json
import math
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import InvalidEventError, PagerDutyApiError, PagerDutyDeliveryError
from pagerduty_bridge.events_api import (
    EventPayload,
    EventsClient,
    PagerDutyEvent,
    bounded_dedup_key,
    classify_response,
    format_timestamp,
    wire_bytes,
)
from pagerduty_bridge.models import AlertSeverity, EventAction
from pagerduty_bridge.redaction import masked_body
from pagerduty_bridge.transport import MAX_ANSWER_BYTES, Connections, Target, _Connection, read_answer
from tests.builders import assert_no_secret
from tests.conftest import ROUTING_KEY, assert_valid_event


def trigger(summary: str = "disk full", details: dict[str, object] | None = None, key: str = "k") -> PagerDutyEvent:
    return PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=key,
        payload=EventPayload(
            summary=summary,
            source="host-1",
            severity=AlertSeverity.ERROR,
            timestamp=datetime(2025, 1, 14, 14, 30, tzinfo=UTC),
            custom_details=details or {},
        ),
    )


def test_summary_is_cut_to_1024_characters() -> None:
    body = trigger("x" * 5000).to_wire(ROUTING_KEY)
    assert len(body["payload"]["summary"]) == c.MAX_SUMMARY_LENGTH
    assert body["payload"]["summary"].endswith("…")
    assert_valid_event(body)


@given(st.text(min_size=1, max_size=700))
def test_dedup_keys_stay_within_255_and_distinct(key: str) -> None:
    bounded = bounded_dedup_key(key)
    assert len(bounded) <= c.MAX_DEDUP_KEY_LENGTH
    assert bounded_dedup_key(key) == bounded
    if len(key) <= c.MAX_DEDUP_KEY_LENGTH:
        assert bounded == key
    else:
        assert bounded_dedup_key(key + "x") != bounded
        assert bounded.startswith(key[:100])


def test_an_oversized_event_is_shrunk_by_its_custom_details() -> None:
    details: dict[str, object] = {"log": "y" * 600_000, "small": "kept", "many": ["z" * 1000] * 200}
    body = trigger(details=details).to_wire(ROUTING_KEY)
    size = len(json.dumps(body, ensure_ascii=False).encode())
    assert size <= c.MAX_EVENT_BYTES
    kept = body["payload"]["custom_details"]
    assert kept["small"] == "kept"
    assert "log" in kept["_truncated"]
    assert_valid_event(body)


@pytest.mark.parametrize(
    ("details", "sent"),
    [
        ({"ratio": float("nan")}, {"ratio": None}),
        ({"limits": [1.0, float("inf")], "floor": -math.inf}, {"limits": [1.0, None], "floor": None}),
    ],
)
def test_a_number_pagerduty_would_refuse_goes_as_unknown(details: dict[str, object], sent: dict[str, object]) -> None:
    """Never a literal NaN on the wire (PagerDuty answers 400, and the page would be lost)."""
    wire = wire_bytes(trigger(details=details).to_wire(ROUTING_KEY))
    assert b"NaN" not in wire and b"Infinity" not in wire
    assert json.loads(wire)["payload"]["custom_details"] == sent


def test_attack_a_lone_surrogate_a_caller_put_in_goes_as_a_replacement_character() -> None:
    """No UTF-8 can carry it: sent as U+FFFD, never an encoding error (whose arguments would hold the
    whole body, routing key included)."""
    event = trigger(summary="db \ud83d down", details={"host\udc00": ("a\ud800", float("nan"))}, key="k\udfff")
    wire = json.loads(wire_bytes(event.to_wire(ROUTING_KEY)))
    assert wire["payload"]["summary"] == "db \ufffd down"
    assert wire["payload"]["custom_details"] == {"host\ufffd": ["a\ufffd", None]}
    assert wire["dedup_key"] == "k\ufffd"


@pytest.mark.parametrize(
    ("details", "named"),
    [
        ({"since": datetime(2025, 1, 1, tzinfo=UTC)}, "payload.custom_details.since is a datetime"),
        ({"ratio": float("nan"), "ids": {1, 2}}, "payload.custom_details.ids is a set"),
    ],
)
def test_a_body_that_is_not_json_is_a_permanent_error_naming_the_field(details: dict[str, object], named: str) -> None:
    """Never an unforeseen TypeError: the field a caller put in is named."""
    with pytest.raises(InvalidEventError) as refused:
        trigger(details=details).to_wire(ROUTING_KEY)
    assert named in str(refused.value)
    assert not refused.value.retryable


def test_a_body_that_is_not_json_is_never_sent() -> None:
    client = EventsClient("http://127.0.0.1:9/v2/enqueue", retry_budget_seconds=0.1)
    since = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidEventError, match=r"custom_details\.since is a datetime"):
        client.send_body({"routing_key": ROUTING_KEY, "payload": {"custom_details": {"since": since}}})


def test_acknowledge_and_resolve_carry_no_payload() -> None:
    for action in (EventAction.ACKNOWLEDGE, EventAction.RESOLVE):
        body = PagerDutyEvent(event_action=action, dedup_key="k").to_wire(ROUTING_KEY)
        assert body == {"routing_key": ROUTING_KEY, "event_action": action.value, "dedup_key": "k"}
        assert_valid_event(body)


def test_masked_body_shows_only_the_last_four_characters() -> None:
    body = masked_body(trigger().to_wire(ROUTING_KEY))
    assert_no_secret(ROUTING_KEY, body)
    assert body["routing_key"].endswith(ROUTING_KEY[-4:])
    assert len(body["routing_key"]) == len(ROUTING_KEY)


def test_timestamp_format_matches_the_seed() -> None:
    assert format_timestamp(datetime(2025, 1, 14, 14, 30, tzinfo=UTC)) == "2025-01-14T14:30:00.000Z"


@pytest.mark.parametrize(
    ("status", "reason", "text", "message", "retryable"),
    [
        (401, "Unauthorized", "", "PagerDuty API error: 401 - Unauthorized", True),
        (403, "Forbidden", "", "PagerDuty API error: 403 - Forbidden", True),
        (404, "Not Found", "", "PagerDuty API error: 404 - Not Found", True),
        (
            400,
            "Bad Request",
            json.dumps(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["'payload.summary' is missing"],
                }
            ),
            "PagerDuty API error: 400 - Bad Request: Event object is invalid ('payload.summary' is missing)",
            False,
        ),
        (429, "Too Many Requests", "{}", "PagerDuty API error: 429 - Too Many Requests", True),
        (503, "Service Unavailable", "<html>", "PagerDuty API error: 503 - Service Unavailable", True),
    ],
)
def test_failures_are_classified(status: int, reason: str, text: str, message: str, retryable: bool) -> None:
    with pytest.raises(PagerDutyApiError) as caught:
        classify_response(status, reason, text)
    assert str(caught.value) == message
    assert caught.value.retryable is retryable


def test_accepted_response() -> None:
    response = classify_response(
        202, "Accepted", json.dumps({"status": "success", "message": "Event processed", "dedup_key": "k"})
    )
    assert (response.status, response.dedup_key) == ("success", "k")


@pytest.mark.parametrize(
    ("status", "text"),
    [(400, "<html>blocked</html>"), (400, json.dumps({"message": "Bad Request"})), (407, ""), (408, ""), (413, "")],
)
def test_an_error_pagerduty_does_not_give_is_kept_for_retry(status: int, text: str) -> None:
    with pytest.raises(PagerDutyDeliveryError) as caught:
        classify_response(status, "", text, content_type="text/html; charset=utf-8")
    assert caught.value.retryable
    assert f"answer {status} (text/html) is not PagerDuty's" in str(caught.value)


@pytest.mark.parametrize("length", [c.MAX_DEDUP_KEY_LENGTH - 1, c.MAX_DEDUP_KEY_LENGTH])
def test_a_dedup_key_up_to_the_limit_goes_as_it_is(length: int) -> None:
    key = "k" * length
    assert bounded_dedup_key(key) == key


@pytest.mark.parametrize("length", [c.MAX_DEDUP_KEY_LENGTH + 1, 300, 5000])
def test_long_dedup_keys_that_differ_anywhere_stay_apart(length: int) -> None:
    """Random text seldom runs past 255 characters: these do, and differ only where the bounded key's
    readable prefix has already stopped (two alarm ARNs with a long shared beginning)."""
    key = "a" * length
    bounded = bounded_dedup_key(key)
    assert len(bounded) == c.MAX_DEDUP_KEY_LENGTH
    assert bounded.startswith(key[:200])
    for changed in (key[:-1] + "b", "a" * (length - 40) + "b" + "a" * 39, key + "a"):
        assert bounded_dedup_key(changed) != bounded, "keys that differ past the prefix share a dedup key"
        assert len(bounded_dedup_key(changed)) == c.MAX_DEDUP_KEY_LENGTH


def test_an_oversized_event_cuts_a_long_text_rather_than_dropping_it() -> None:
    """A long log line is cut to its first kilobyte, which is what the responder reads first; only what
    still does not fit goes whole."""
    details: dict[str, object] = {"log": "y" * 600_000, "small": "kept", "many": ["z" * 1000] * 200}
    kept = trigger(details=details).to_wire(ROUTING_KEY)["payload"]["custom_details"]
    assert kept["log"].startswith("y" * 1000) and kept["log"].endswith("…")
    assert len(kept["log"]) == 1024
    assert kept["many"] == ["z" * 1000] * 200, "what fitted once the long text was cut must stay"
    assert kept["_truncated"] == ["log"]


def test_an_acceptance_that_echoes_the_routing_key_does_not_carry_it_on() -> None:
    key = "R" + "9" * 31
    text = json.dumps({"status": "success", "message": f"Event processed for {key}", "dedup_key": "k"})
    response = classify_response(202, "Accepted", text, routing_key=key)
    assert key not in response.message
    assert response.message == "Event processed for ****"


@pytest.mark.parametrize(
    ("status", "reason", "refused"),
    [
        (401, "Unauthorized", True),
        (403, "Forbidden", True),
        (400, "Bad Request: Event object is invalid (Invalid routing key)", True),
        (400, "Bad Request: Event object is invalid ('payload.summary' is missing)", False),
        (404, "Not Found", False),
        (404, "Not Found: invalid routing key", False),
        (429, "Too Many Requests", False),
        (503, "Service Unavailable", False),
    ],
)
def test_only_an_answer_refusing_the_key_reads_the_key_again(status: int, reason: str, refused: bool) -> None:
    """A refused key is read afresh from its secret (it may have been rotated); a wrong URL (404), a
    throttle or an outage says nothing about the key."""
    assert PagerDutyApiError(status, reason).key_refused is refused


class EndlessAnswer:
    """An answer body that never ends; counts what the reader took from it."""

    def __init__(self) -> None:
        self.taken = 0
        self.closed = False
        self.released = False

    def read1(self, amount: int) -> bytes:
        chunk = b"x" * min(amount, 4096)
        self.taken += len(chunk)
        return chunk

    def isclosed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


def test_an_endless_answer_is_read_no_further_than_an_answer_can_be() -> None:
    answer = EndlessAnswer()
    data, short = read_answer(answer, deadline=None)  # type: ignore[arg-type]
    assert short == f"longer than {MAX_ANSWER_BYTES} bytes"
    assert len(data) == MAX_ANSWER_BYTES
    assert answer.taken == MAX_ANSWER_BYTES + 1, "read past the cap (one byte over is how it knows)"
    assert answer.closed and answer.released, "a connection not read to its end must not be reused"


class CutConnection(_Connection):
    """A connection cut after the request went out (the error quoting what was sent, as some proxies'
    errors do); its socket is one end of a local pair, so nothing leaves the process."""

    def connect(self) -> None:
        self.sock, self.peer = socket.socketpair()

    def getresponse(self) -> Any:
        sent = self.peer.recv(65536).decode(errors="replace")
        self.peer.close()
        raise ConnectionResetError(f"reset after {sent}")


class CutConnections(Connections):
    def take(self, target: Target) -> Any:
        return CutConnection(target.host, target.port)


def test_a_connection_cut_after_the_request_is_ambiguous_and_names_no_key() -> None:
    """The request went out and no answer came back: PagerDuty may have taken the event, so the send is
    ambiguous (the scheduled run checks its state again), and the error says so without the key."""
    key = "R" + "7" * 31
    client = EventsClient("https://events.example.com/v2/enqueue", connections=CutConnections())
    with pytest.raises(PagerDutyDeliveryError) as failed:
        client.send(trigger(), key, budget_seconds=0.2)
    assert failed.value.ambiguous
    assert failed.value.retryable
    assert "ConnectionResetError" in str(failed.value), "the error names what cut the answer off"
    assert key not in str(failed.value) and key not in failed.value.cause
