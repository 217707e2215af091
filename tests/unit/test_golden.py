"""Every sample in events/ has a golden file holding what the bridge makes of it.

The samples are replayed in name order on one fresh embedded store (they tell a story: the OK
resolves the ALARM before it). A missing golden file fails; ``UPDATE_GOLDEN=1`` rewrites them.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pagerduty_bridge.cli import main
from tests.conftest import EVENTS, ROOT, assert_valid_event, event_files

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out, err = io.StringIO(), io.StringIO()
    state = tmp_path_factory.mktemp("golden") / "state.db"
    code = main(["replay", "--json", "--state", str(state), str(EVENTS)], out=out, err=err)
    assert code == 0, err.getvalue()
    by_input: dict[str, list[dict[str, Any]]] = {}
    for line in out.getvalue().splitlines():
        record = json.loads(line)
        by_input.setdefault(Path(record["input"]).name, []).append(record)
    return by_input


@pytest.mark.parametrize("sample", [p.name for p in event_files()])
def test_sample_matches_its_golden_file(sample: str, replayed: dict[str, list[dict[str, Any]]]) -> None:
    lines = [{**line, "input": f"events/{sample}"} for line in replayed[sample]]
    golden = GOLDEN / sample.replace(".json", ".golden.json")
    if UPDATE:
        golden.write_text(json.dumps(lines, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert golden.exists(), f"{golden} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert json.loads(golden.read_text(encoding="utf-8")) == lines


@pytest.mark.parametrize("sample", [p.name for p in event_files()])
def test_every_event_built_from_a_sample_is_valid(sample: str, replayed: dict[str, list[dict[str, Any]]]) -> None:
    for line in replayed[sample]:
        if line["event"] is not None:
            # The printed body masks the key to its last four characters: put a well-formed one back.
            assert_valid_event({**line["event"], "routing_key": "k" * 32})


def test_the_seed_alarm_yields_the_seed_payload(replayed: dict[str, list[dict[str, Any]]]) -> None:
    (alarm,) = replayed["01-seed-high-failure-rate-alarm.json"]
    assert alarm["dedup_key"] == "production-hybrid-routing-high-failure-rate-SupportModeSuccessRate"
    event = alarm["event"]
    assert event["payload"]["summary"] == "🚨 [PRODUCTION] High Failure Rate Alert"
    assert event["payload"]["source"] == "production-hybrid-routing"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["timestamp"] == "2025-01-14T14:30:00.000Z"
    assert (event["payload"]["component"], event["payload"]["group"], event["payload"]["class"]) == (
        "hybrid-routing",
        "ai-orchestrator",
        "performance",
    )
    details = event["payload"]["custom_details"]
    assert set(details) == {
        "alarmName",
        "metricName",
        "threshold",
        "currentValue",
        "environment",
        "description",
        "recommendations",
    }
    assert (details["threshold"], details["currentValue"]) == (95, 85)
    assert details["description"] == "Success rate has fallen below 95%"
    assert len(details["recommendations"]) == 5
    assert [link["text"] for link in event["links"]] == ["CloudWatch Dashboard"], "neutral links by default"
    assert event["client"] == "pagerduty-bridge" and "client_url" not in event
    (ok,) = replayed["02-seed-high-failure-rate-ok.json"]
    assert (ok["action"], ok["dedup_key"]) == ("resolve", alarm["dedup_key"])


SEED_SETTINGS = {
    "PAGERDUTY_CLIENT": "matbakh-bedrock-support-manager",
    "PAGERDUTY_CLIENT_URL": "https://app.matbakh.app/admin/bedrock-activation",
    "TEMPLATE_DASHBOARD_URL": "https://app.matbakh.app/admin/bedrock-activation",
    "TEMPLATE_DASHBOARD_TEXT": "Hybrid Routing Dashboard",
}
"""The seed's own application, configured: its example payload comes out field for field."""


def test_configured_template_links_reproduce_the_seeds_example_payload(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in SEED_SETTINGS.items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    sample = str(EVENTS / "01-seed-high-failure-rate-alarm.json")
    assert main(["replay", "--json", "--state", str(tmp_path / "s.db"), sample], out=out, err=err) == 0
    event = json.loads(out.getvalue())["event"]
    assert event["links"] == [
        {
            "href": "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=production-hybrid-routing",
            "text": "CloudWatch Dashboard",
        },
        {"href": "https://app.matbakh.app/admin/bedrock-activation", "text": "Hybrid Routing Dashboard"},
    ]
    assert event["client"] == "matbakh-bedrock-support-manager"
    assert event["client_url"] == "https://app.matbakh.app/admin/bedrock-activation"


@pytest.mark.parametrize("sample", [p.name for p in event_files()])
def test_every_sample_alone_on_a_fresh_store_gives_valid_events(sample: str, tmp_path: Path) -> None:
    """Each envelope and alarm kind, replayed on its own, yields valid events (or, for control and
    non-actionable messages, deliberately none)."""
    out, err = io.StringIO(), io.StringIO()
    assert main(["replay", "--json", "--state", str(tmp_path / "s.db"), str(EVENTS / sample)], out=out, err=err) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines, err.getvalue()
    for line in lines:
        if line["reason"] in ("control_message", "insufficient_data_ignored"):
            assert line["event"] is None and line["action"] == "none"
            continue
        assert line["event"] is not None, line
        assert_valid_event({**line["event"], "routing_key": "k" * 32})
        if line["state"] == "ALARM":
            assert line["action"] == "trigger"
