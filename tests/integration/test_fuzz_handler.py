"""Fuzzing: real-format events, mutated, into ``process_event``, the ``replay`` command and the handler.

Every file in ``events/`` and ``tests/fixtures/alarm_variants/`` is a seed. Hypothesis mutates it up to four times: anywhere in the JSON tree, including inside the JSON
strings it carries (``Sns.Message``, an SQS ``body``, EventBridge's ``reasonData``), it deletes a key,
replaces a value with random JSON or text, changes a value's type, empties it, truncates a string
(which breaks an embedded JSON message), or nests the value in junk. The ``replay`` command also
gets the file truncated as a whole, or as bytes that are not UTF-8.

What must hold, whatever the input:
- ``process_event`` raises nothing but ``InvalidMessageError`` (the event is no envelope at all) or a
  retryable ``BridgeError``; every record's failure is a ``BridgeError``;
- ``pagerduty-bridge replay --json`` exits 0, 1 or 2, prints no traceback and one JSON object per line;
- ``lambda_handler`` (moto's DynamoDB, the PagerDuty stand-in) raises nothing but retryable
  ``BridgeError``s, and every event it sends is one PagerDuty accepts;
- the routing key appears in no output, no log line and no result.

Cases: ``len(SEED_FILES)`` unmutated seeds and ``len(HOSTILE)`` hand-made hostile events through each
of the three targets (the parametrized ids), plus ``FUZZ_EXAMPLES`` hypothesis examples per target:
``TOTAL_CASES`` in all. The hostile events are inputs the random mutations do not reach (lone UTF-16
surrogates, integers beyond a float, JSON nested deeper than Python's recursion limit, times at and
past the ends of ``datetime`` in every envelope, Unicode digits in times and ``SentTimestamp``, huge
fields, names that look like patterns or templates, non-finite numbers); each names the defect it once
exposed, if any.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import SecretStr

from pagerduty_bridge import constants as c
from pagerduty_bridge import handler
from pagerduty_bridge.cli import main
from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
from pagerduty_bridge.errors import BridgeError, InvalidMessageError
from pagerduty_bridge.integration import DryRunSender, PagerDutyIntegration
from pagerduty_bridge.processing import EventResult, process_event
from pagerduty_bridge.seed.models import ServiceConfig
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore, create_table
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore
from tests.builders import (
    alarm_message,
    eventbridge_event,
    lambda_environment,
    sns_event_of,
    sns_notification,
    sqs_event,
    sqs_record,
)
from tests.conftest import EVENTS, FIXTURES, ROOT, ROUTING_KEY, FakeLambdaContext, assert_valid_event

SEED_DIRECTORIES = (EVENTS, FIXTURES / "alarm_variants")
SEED_FILES = tuple(sorted(path for directory in SEED_DIRECTORIES for path in directory.glob("*.json")))
FUZZ_EXAMPLES = 250
"""Hypothesis examples per target (process_event, replay, lambda_handler)."""
TARGETS = 3
MAX_MUTATIONS = 4
TABLE = "incidents"
REGION = "eu-west-1"
REMAINING_MILLIS = 6_500
"""What the fake Lambda context reports: the handler's retry budget comes out at its 1 s minimum."""


def seed_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


SEEDS: tuple[tuple[str, Any], ...] = tuple((seed_id(p), json.loads(p.read_text(encoding="utf-8"))) for p in SEED_FILES)


# --- hostile events ----------------------------------------------------------------------------------

_ALARM_EVENT: dict[str, Any] = dict(SEEDS)["events/05-ec2-cpu-alarm.json"]
_PLACEHOLDER = "__VALUE__"


def with_message(message: str) -> dict[str, Any]:
    """events/05 carrying ``message`` as its SNS ``Message``."""
    event = copy.deepcopy(_ALARM_EVENT)
    event["Records"][0]["Sns"]["Message"] = message
    return event


def with_alarm_field(field: str, raw_json: str, *, in_trigger: bool = False) -> dict[str, Any]:
    """events/05 with one alarm field set to ``raw_json``, written into the message text as is."""
    message = json.loads(_ALARM_EVENT["Records"][0]["Sns"]["Message"])
    (message["Trigger"] if in_trigger else message)[field] = _PLACEHOLDER
    return with_message(json.dumps(message).replace(f'"{_PLACEHOLDER}"', raw_json))


def without_state_change_time(name: str) -> dict[str, Any]:
    """An alarm message (events/05) without ``StateChangeTime``: its envelope's time stands in for it."""
    message = alarm_message(name)
    del message["StateChangeTime"]
    return message


def sns_stamped(timestamp: str) -> dict[str, Any]:
    """A Lambda SNS event whose alarm has no time of its own and whose ``Timestamp`` is ``timestamp``."""
    event = sns_event_of(without_state_change_time("fuzz-sns-timestamp"))
    event["Records"][0]["Sns"]["Timestamp"] = timestamp
    return event


def sqs_sent(sent: str) -> dict[str, Any]:
    """An SQS event whose raw alarm body has no time of its own and whose ``SentTimestamp`` is ``sent``."""
    record = sqs_record(without_state_change_time("fuzz-sent-timestamp"))
    record["attributes"]["SentTimestamp"] = sent
    return sqs_event(record)


def eventbridge_in_sns(time: str) -> dict[str, Any]:
    """An SNS-wrapped EventBridge alarm event stamped ``time``, with no state timestamp of its own."""
    event = eventbridge_event("fuzz-eventbridge")
    event["time"] = time
    del event["detail"]["state"]["timestamp"]
    return sqs_event(sqs_record(sns_notification(event)))


def many_dimensions(count: int) -> str:
    return json.dumps([{"name": f"d{i}", "value": "v" * 64} for i in range(count)])


HUGE_INTEGER = "alarms._number: float() of an integer beyond a float's range raises OverflowError, out of parse_event"
DATE_OUT_OF_RANGE = (
    "alarms._time / models.utc: a StateChangeTime whose conversion to UTC leaves datetime's range raises "
    "OverflowError, out of parse_event"
)
NESTED_TOO_DEEP = (
    "envelopes._sns (and _lambda_record, cli.read_event) catch ValueError around json.loads, but deeply nested "
    "JSON raises RecursionError"
)
LONE_SURROGATE = (
    "a lone surrogate (a \\ud800 escape in the message) raises UnicodeEncodeError wherever text is encoded: "
    "rendering.console_url, rendering.unrecognized_dedup_key, the SQLite store, the Events API client"
)
NON_FINITE_NUMBER = (
    "a number beyond a float (Threshold 1e999) becomes inf and is sent as 'Infinity', which is no JSON: "
    "PagerDuty answers 400 and the page is lost"
)

TIME_BEFORE_YEAR_ONE = (
    "envelopes._iso / models.utc: an envelope time in year 1 at a positive offset (EventBridge time, SNS "
    "Timestamp) raises OverflowError out of the handler, and the whole SQS batch goes back, again and again"
)
SENT_TIMESTAMP_DIGITS = (
    "envelopes: str.isdigit() accepts '\u00b2', int() refuses it: ValueError out of the handler, and the whole SQS "
    "batch goes back"
)
FAR_FUTURE = "a StateChangeTime in 2999 was stored as the ordering mark: every genuine later notification was stale"
HUGE_NAME = "an alarm name of 210,000 characters made an item past DynamoDB's 400 KB: the page failed at the claim"


@dataclass(frozen=True)
class Hostile:
    event: Any
    shows: str = ""
    """The defect this input once exposed (kept so a regression names it)."""


HOSTILE: dict[str, Hostile] = {
    "threshold-beyond-a-float": Hostile(
        with_alarm_field("Threshold", "9" * 400, in_trigger=True),
        HUGE_INTEGER,
    ),
    "threshold-1e999": Hostile(with_alarm_field("Threshold", "1e999", in_trigger=True), NON_FINITE_NUMBER),
    "state-change-time-at-the-end-of-time": Hostile(
        with_alarm_field("StateChangeTime", '"9999-12-31T23:59:59.999-2359"'),
        DATE_OUT_OF_RANGE,
    ),
    "message-nested-100000-deep": Hostile(
        with_message("[" * 100_000 + "]" * 100_000),
        NESTED_TOO_DEEP,
    ),
    "lone-surrogate-in-alarm-name": Hostile(
        with_alarm_field("AlarmName", '"web-prod-cpu-high\\ud800"'),
        LONE_SURROGATE,
    ),
    "lone-surrogate-in-a-text-message": Hostile(
        with_message("AWS Budgets: 80% of the monthly budget \ud800 reached"),
        LONE_SURROGATE,
    ),
    "message-with-nul-and-controls": Hostile(with_alarm_field("AlarmDescription", '"a\\u0000b\\u001b[31mred"')),
    "alarm-name-100k-characters": Hostile(with_alarm_field("AlarmName", json.dumps("n" * 100_000))),
    "description-600kb": Hostile(with_alarm_field("AlarmDescription", json.dumps("d" * 600_000))),
    "eventbridge-time-0001-01-01-plus-one-hour": Hostile(
        eventbridge_in_sns("0001-01-01T00:00:00+01:00"), TIME_BEFORE_YEAR_ONE
    ),
    "sns-timestamp-0001-01-01-plus-one-hour": Hostile(sns_stamped("0001-01-01T00:00:00+01:00"), TIME_BEFORE_YEAR_ONE),
    "sns-timestamp-9999-12-31-minus-one-hour": Hostile(sns_stamped("9999-12-31T23:59:59-01:00")),
    "state-change-time-0001-01-01-plus-one-hour": Hostile(
        with_alarm_field("StateChangeTime", '"0001-01-01T00:00:00+01:00"'), DATE_OUT_OF_RANGE
    ),
    "state-change-time-9999-12-31-minus-one-hour": Hostile(
        with_alarm_field("StateChangeTime", '"9999-12-31T23:59:59-01:00"'), DATE_OUT_OF_RANGE
    ),
    "state-change-time-2999": Hostile(
        with_alarm_field("StateChangeTime", '"2999-01-01T00:00:00.000+0000"'), FAR_FUTURE
    ),
    "state-change-time-fullwidth-digits": Hostile(
        with_alarm_field("StateChangeTime", json.dumps("\uff12\uff10\uff12\uff15-01-14T14:30:00.000+0000"))
    ),
    "sent-timestamp-superscript-two": Hostile(sqs_sent("\u00b2"), SENT_TIMESTAMP_DIGITS),
    "sent-timestamp-fullwidth-digits": Hostile(sqs_sent("\uff11\uff12\uff13"), SENT_TIMESTAMP_DIGITS),
    "sent-timestamp-past-year-9999": Hostile(sqs_sent("9" * 400)),
    "alarm-name-210000-characters": Hostile(with_alarm_field("AlarmName", json.dumps("z" * 210_000)), HUGE_NAME),
    "alarm-name-catastrophic-regex-bait": Hostile(with_alarm_field("AlarmName", json.dumps("a" * 29 + "!"))),
    "alarm-name-like-a-pattern": Hostile(with_alarm_field("AlarmName", json.dumps("re:(a+)+$ *[!a-]?\\1(?=x)"))),
    "alarm-name-like-a-template": Hostile(
        with_alarm_field("AlarmName", json.dumps("{alarm_name:>100000000}{0.__class__}{state!x}%s%n"))
    ),
    "reason-300kb": Hostile(with_alarm_field("NewStateReason", json.dumps("Threshold Crossed: " + "9" * 300_000))),
    "10000-dimensions": Hostile(with_alarm_field("Dimensions", many_dimensions(10_000), in_trigger=True)),
}
TOTAL_CASES = TARGETS * (len(SEED_FILES) + len(HOSTILE) + FUZZ_EXAMPLES)


# --- mutations ---------------------------------------------------------------------------------------

Path_ = tuple[Any, ...]
"""A place in a document: dict keys, list indexes, and ``EMBEDDED`` to step into a JSON string."""
EMBEDDED = object()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
junk = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=8,
)
MUTATIONS = ("delete", "replace", "text", "number", "empty", "truncate", "nest", "add_key")


def embedded_json(value: Any) -> Any:
    """The object or array a string holds as JSON, else None."""
    if not isinstance(value, str) or not value.lstrip().startswith(("{", "[")):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict | list) else None


def paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every place in ``value``, the root included, stepping into embedded JSON strings."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))
    elif (inner := embedded_json(value)) is not None:
        yield from paths(inner, (*prefix, EMBEDDED))


def apply_at(value: Any, path: Path_, change: Callable[[Any], Any], *, delete: bool = False) -> Any:
    """``value`` with the node at ``path`` changed (or deleted from its container)."""
    if not path:
        return change(value)
    head, rest = path[0], path[1:]
    if head is EMBEDDED:
        return json.dumps(apply_at(json.loads(value), rest, change, delete=delete), ensure_ascii=False)
    if delete and not rest:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != head}
        return [v for i, v in enumerate(value) if i != head]
    if isinstance(value, dict):
        return {**value, head: apply_at(value[head], rest, change, delete=delete)}
    return [apply_at(v, rest, change, delete=delete) if i == head else v for i, v in enumerate(value)]


@st.composite
def mutation(draw: st.DrawFn, document: Any) -> Any:
    """One mutation at one place in ``document``."""
    where = draw(st.sampled_from(list(paths(document))))
    kind = draw(st.sampled_from(MUTATIONS))
    if kind == "delete" and where and where[-1] is not EMBEDDED:
        return apply_at(document, where, lambda v: v, delete=True)
    if kind == "text":
        replacement: Any = draw(st.text(max_size=60))
        return apply_at(document, where, lambda v: replacement)
    if kind == "number":
        replacement = draw(st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False))
        return apply_at(document, where, lambda v: replacement)
    if kind == "empty":
        replacement = draw(st.sampled_from(("", [], {}, None, 0)))
        return apply_at(document, where, lambda v: copy.deepcopy(replacement))
    if kind == "truncate":
        cut = draw(st.integers(0, 200))
        return apply_at(document, where, lambda v: v[: len(v) * cut // 200] if isinstance(v, str | list) else v)
    if kind == "nest":
        wrap = draw(st.sampled_from(("list", "dict")))
        extra = draw(st.text(max_size=12))
        return apply_at(document, where, lambda v: [v] if wrap == "list" else {extra: v})
    if kind == "add_key":
        key, value = draw(st.text(max_size=20)), draw(junk)
        return apply_at(document, where, lambda v: {**v, key: value} if isinstance(v, dict) else v)
    replacement = draw(junk)
    return apply_at(document, where, lambda v: replacement)


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[str, Any]:
    """A seed's name and the seed after up to ``MAX_MUTATIONS`` mutations."""
    name, document = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, MAX_MUTATIONS))):
        document = draw(mutation(document))
    return name, document


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A mutated event as a file: JSON, JSON cut short, or bytes that are not UTF-8."""
    name, document = draw(mutated_events())
    text = json.dumps(document, ensure_ascii=False)
    form = draw(st.sampled_from(("json", "json", "cut", "latin-1")))
    if form == "cut":
        return name, text[: draw(st.integers(0, max(0, len(text) - 1)))].encode()
    if form == "latin-1":
        return name, b"\xff\xfe" + text.encode("utf-8", errors="replace")[:200]
    return name, text.encode()


FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- what the outputs must never show ----------------------------------------------------------------


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the Lambda's logger (and the package's loggers, which share its handlers) write."""
    buffer = io.StringIO()
    streams = [h for h in handler.logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(buffer) for h in streams]
    yield buffer
    for stream_handler, stream in zip(streams, previous, strict=True):
        if stream is not None:
            stream_handler.setStream(stream)


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert ROUTING_KEY not in text, "the routing key leaked"


# --- target 1: process_event with a dry-run integration ----------------------------------------------


def dry_run_integration() -> PagerDutyIntegration:
    key = SecretStr(ROUTING_KEY)
    return PagerDutyIntegration(
        ServiceConfig(integration_key=key, service_name="fuzz"),
        store=SQLiteIncidentStore(":memory:"),
        settings=Settings(integration_key=key),
        sender=DryRunSender(),
    )


def check_process_event(document: Any, logs: io.StringIO) -> None:
    result: EventResult | None = None
    try:
        result = process_event(document, dry_run_integration().notifications)
    except InvalidMessageError as exc:
        assert_no_key(str(exc))
    except BridgeError as exc:
        assert exc.retryable, f"a permanent error escaped process_event: {exc!r}"
    if result is not None:
        for record in result.results:
            assert record.outcome is not None or record.error is not None
            assert record.error is None or isinstance(record.error, BridgeError)
        assert_no_key(repr(result.results), json.dumps([r.outcome.body for r in result.results if r.outcome]))
    assert_no_key(logs.getvalue())


@pytest.mark.parametrize("name", [name for name, _ in SEEDS])
def test_every_seed_goes_through_process_event(name: str, log_output: io.StringIO) -> None:
    document = dict(SEEDS)[name]
    check_process_event(document, log_output)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_events_go_through_process_event(name: str, log_output: io.StringIO) -> None:
    check_process_event(HOSTILE[name].event, log_output)


@FUZZ_SETTINGS
@given(event=mutated_events())
def test_mutated_events_never_escape_process_event(event: tuple[str, Any], log_output: io.StringIO) -> None:
    check_process_event(event[1], log_output)


# --- target 2: the replay command --------------------------------------------------------------------


@pytest.fixture
def replay_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(c.ENV_INTEGRATION_KEY, ROUTING_KEY)
    return tmp_path


def check_replay(content: bytes, folder: Path) -> None:
    path = folder / f"event-{uuid.uuid4().hex[:8]}.json"
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    code = main(["replay", "--json", "--state", ":memory:", str(path)], out=out, err=err)
    assert code in (0, 1, 2)
    for stream in (out.getvalue(), err.getvalue()):
        assert "Traceback" not in stream
        assert_no_key(stream)
    for line in out.getvalue().splitlines():
        assert isinstance(json.loads(line), dict)
    assert code == 2 or out.getvalue(), "a replay that succeeds says what it did"


@pytest.mark.parametrize("name", [name for name, _ in SEEDS])
def test_every_seed_replays(name: str, replay_env: Path) -> None:
    check_replay(json.dumps(dict(SEEDS)[name]).encode(), replay_env)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_events_replay(name: str, replay_env: Path) -> None:
    check_replay(json.dumps(HOSTILE[name].event).encode(), replay_env)


@FUZZ_SETTINGS
@given(event=mutated_files())
def test_mutated_files_never_crash_replay(event: tuple[str, bytes], replay_env: Path) -> None:
    check_replay(event[1], replay_env)


# --- target 3: the Lambda handler --------------------------------------------------------------------


@dataclass
class Lambda:
    store: DynamoDBIncidentStore
    fake: FakePagerDuty
    logs: io.StringIO


@pytest.fixture(scope="module")
def aws() -> Iterator[DynamoDBIncidentStore]:
    """moto's DynamoDB with the incident table, once for the module (starting moto costs ~0.4 s)."""
    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        create_table(client, TABLE)
        yield DynamoDBIncidentStore(client, TABLE)


@pytest.fixture(scope="module")
def stand_in() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, aws: DynamoDBIncidentStore, stand_in: FakePagerDuty, log_output: io.StringIO
) -> Lambda:
    """The Lambda's environment and a cold container: the runtime is built on the first invocation."""
    lambda_environment(monkeypatch, table=TABLE, events_url=stand_in.url, retry_budget_seconds=1)
    return Lambda(aws, stand_in, log_output)


def check_handler(document: Any, env: Lambda, capsys: pytest.CaptureFixture[str]) -> None:
    env.fake.reset()
    env.store.clear()
    try:
        answer = handler.lambda_handler(document, FakeLambdaContext(remaining_millis=REMAINING_MILLIS))
    except BridgeError as exc:
        assert exc.retryable, f"the handler raised a permanent error: {exc!r}"
        assert_no_key(str(exc))
    else:
        assert isinstance(answer, dict)
        assert_no_key(json.dumps(answer, default=str))
    for request in env.fake.requests:
        assert request.status == 202, f"PagerDuty refuses what the bridge sent: {request.response_body}"
        assert_valid_event(request.body)
    captured = capsys.readouterr()
    assert_no_key(captured.out, captured.err, env.logs.getvalue())


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.parametrize("name", [name for name, _ in SEEDS])
def test_every_seed_goes_through_the_handler(name: str, lambda_env: Lambda, capsys: pytest.CaptureFixture[str]) -> None:
    check_handler(dict(SEEDS)[name], lambda_env, capsys)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_events_go_through_the_handler(
    name: str, lambda_env: Lambda, capsys: pytest.CaptureFixture[str]
) -> None:
    check_handler(HOSTILE[name].event, lambda_env, capsys)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@FUZZ_SETTINGS
@given(event=mutated_events())
def test_mutated_events_never_escape_the_handler(
    event: tuple[str, Any], lambda_env: Lambda, capsys: pytest.CaptureFixture[str]
) -> None:
    check_handler(event[1], lambda_env, capsys)


def test_the_readme_states_how_many_cases_the_fuzz_test_runs() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"a fuzz test sends {TOTAL_CASES:,} generated, mutated and hostile events" in readme
