"""``pagerduty-bridge replay``: its output contract, exit codes, and that it never leaks or crashes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagerduty_bridge.cli import main
from tests.builders import assert_no_secret
from tests.conftest import EVENTS, ROUTING_KEY, assert_valid_event

REPLAY_KEYS = {"input", "record", "alarm_name", "state", "action", "reason", "dedup_key", "event", "delivered"}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_replaying_the_alarm_then_its_ok_resolves_it_across_recorded_runs(tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    record = ("replay", "--json", "--record", "--state", state)
    code, out, _ = run(*record, str(EVENTS / "01-seed-high-failure-rate-alarm.json"))
    first = json.loads(out)
    assert code == 0
    assert set(first) == REPLAY_KEYS
    assert (first["action"], first["delivered"]) == ("trigger", False)
    code, out, _ = run(*record, str(EVENTS / "02-seed-high-failure-rate-ok.json"))
    assert (json.loads(out)["action"], json.loads(out)["reason"]) == ("resolve", "alarm_ok")
    code, out, _ = run(*record, str(EVENTS / "02-seed-high-failure-rate-ok.json"))
    assert (json.loads(out)["action"], json.loads(out)["reason"]) == ("none", "duplicate")


def test_a_dry_run_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    dry = ("replay", "--json", "--state", str(state))
    assert run("replay", "--record", "--state", str(state), str(EVENTS / "05-ec2-cpu-alarm.json"))[0] == 0
    before = json.loads(run("incidents", "list", "--all", "--json", "--state", str(state))[1])
    assert run(*dry, str(EVENTS / "01-seed-high-failure-rate-alarm.json"))[0] == 0
    assert json.loads(run("incidents", "list", "--all", "--json", "--state", str(state))[1]) == before
    lines = [
        json.loads(line)
        for line in run(
            *dry,
            str(EVENTS / "01-seed-high-failure-rate-alarm.json"),
            str(EVENTS / "01-seed-high-failure-rate-alarm.json"),
        )[1].splitlines()
    ]
    assert [line["reason"] for line in lines] == ["alarm", "duplicate"], "one run still sees its own decisions"


def test_default_state_is_under_the_current_directory(tmp_path: Path) -> None:
    code, _, _ = run("replay", "--record", str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert code == 0
    assert (tmp_path / ".pagerduty-bridge" / "state.db").exists()


def test_readable_output_shows_the_body(tmp_path: Path) -> None:
    code, out, _ = run("replay", str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert code == 0
    assert "web-prod-cpu-high  ALARM → trigger (alarm)" in out
    assert '"event_action": "trigger"' in out
    assert "dry run, not sent" in out


def test_bad_inputs_exit_2_with_one_line_each_and_the_rest_still_runs(tmp_path: Path) -> None:
    (tmp_path / "not-json.json").write_text("{nope")
    (tmp_path / "unknown.json").write_text('{"hello": "world"}')
    (tmp_path / "list.json").write_text("[1, 2]")
    code, out, err = run(
        "replay",
        "--json",
        str(tmp_path / "missing.json"),
        str(tmp_path / "not-json.json"),
        str(tmp_path / "unknown.json"),
        str(tmp_path / "list.json"),
        str(EVENTS / "05-ec2-cpu-alarm.json"),
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 4
    assert "missing.json: no such file" in lines[0]
    assert "not-json.json: is not JSON" in lines[1]
    assert "unknown.json" in lines[2] and "no known envelope" in lines[2]
    assert "list.json" in lines[3]
    assert "Traceback" not in err
    assert json.loads(out)["action"] == "trigger"


def test_send_without_a_key_names_the_variable() -> None:
    code, _, err = run("replay", "--send", str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert code == 2
    assert "PAGERDUTY_INTEGRATION_KEY" in err


def test_a_malformed_key_is_named_but_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", "short-secret-value")
    code, out, err = run("replay", str(EVENTS / "05-ec2-cpu-alarm.json"))
    assert code == 2
    assert "PAGERDUTY_INTEGRATION_KEY: the key is malformed" in err
    assert "short-secret-value" not in out + err


def test_the_key_never_appears_in_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", ROUTING_KEY)
    code, out, err = run("replay", "--json", str(EVENTS))
    code2, out2, err2 = run("replay", str(EVENTS))
    assert code == 0 and code2 == 0
    assert_no_secret(ROUTING_KEY, out, err, out2, err2)
    assert ROUTING_KEY[-4:] in out


def _json_values() -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["Records", "Sns", "Message", "EventSource", "AlarmName", "NewStateValue", "detail", "x"]
                )
                | st.text(max_size=8),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_json_values())
def test_replaying_any_json_never_prints_a_traceback(tmp_path: Path, document: object) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(document))
    code, out, err = run("replay", "--json", "--state", str(tmp_path / "fuzz.db"), str(path))
    assert code in (0, 1, 2)
    assert "Traceback" not in out + err
    if code == 2:
        assert str(path) in err


def test_json_output_is_one_line_per_notification_whatever_the_alarm_is_called(tmp_path: Path) -> None:
    """U+0085 and U+2028 are line breaks to str.splitlines() but not escaped by JSON: found by fuzzing."""
    event = json.loads((EVENTS / "05-ec2-cpu-alarm.json").read_text())
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["AlarmName"] = "cpu\x85high\u2028now"
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(event))
    code, out, _ = run("replay", "--json", "--state", str(tmp_path / "s.db"), str(path))
    assert code == 0
    (line,) = out.splitlines()
    assert json.loads(line)["alarm_name"] == "cpu\x85high\u2028now"


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON: PagerDuty refuses the event holding it")


def test_a_number_that_is_not_finite_never_reaches_the_wire() -> None:
    """Every number in an event goes through ``text.number``: NaN and Infinity become unknown."""
    code, out, err = run("trigger", "high-latency", "--current", "nan", "--threshold", "inf", "--json")
    assert code == 0, err
    event = json.loads(out, parse_constant=_not_json)["event"]
    details = event["payload"]["custom_details"]
    assert (details["currentValue"], details["threshold"]) == (None, None)
    assert details["description"] == "Latency has risen above ?ms"
    assert_valid_event({**event, "routing_key": "k" * 32})
