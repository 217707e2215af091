"""The construct library as a team gets it: from a wheel, installed away from this repository.

The wheel is built from a clean copy of the working tree with ``pip wheel --no-deps --no-build-isolation``
and unpacked into a ``site`` folder. A user's CDK app, in a folder of its own and a process of its own
with ``site`` first on its path, embeds the bridge in its own stack, pages its alarms, and synthesizes
offline; the tests read what it synthesized.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pagerduty_bridge import __version__, constants
from tests.infra.conftest import ACCOUNT, REGION, REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cdk-wheel")]

NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".pagerduty-bridge",
)
"""What a fresh clone does not have."""

USER_APP = textwrap.dedent(
    f"""
    import importlib.resources
    import json
    import sys

    import pagerduty_bridge
    import pagerduty_bridge_cdk
    from aws_cdk import App, Aspects, Environment, Stack
    from aws_cdk import aws_cloudwatch as cloudwatch
    from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
    from constructs import Construct
    from pagerduty_bridge_cdk import PageOnAlarms, PagerDutyBridge

    ENV = Environment(account="{ACCOUNT}", region="{REGION}")


    def alarm(scope, name):
        metric = cloudwatch.Metric(namespace="Team", metric_name=name)
        return metric.create_alarm(scope, name, threshold=1, evaluation_periods=1)


    def wired(outdir):
        app = App(outdir=outdir)
        stack = Stack(app, "TeamStack", env=ENV)
        bridge = PagerDutyBridge(stack, "Pager", environment="prod")
        bridge.page(alarm(stack, "Wired"))
        nested = alarm(Construct(Construct(stack, "Service"), "Api"), "Nested")
        imported = cloudwatch.Alarm.from_alarm_arn(
            stack, "Imported", "arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:legacy"
        )
        cloudwatch.CompositeAlarm(stack, "Composite", alarm_rule=cloudwatch.AlarmRule.any_of(imported, nested))
        Aspects.of(stack).add(PageOnAlarms(bridge))
        return app


    def half(outdir):
        app = App(outdir=outdir)
        stack = Stack(app, "TeamStack", env=ENV)
        bridge = PagerDutyBridge(stack, "Pager", environment="prod")
        alarm(stack, "Half").add_alarm_action(cloudwatch_actions.SnsAction(bridge.topic))
        return app


    samples = importlib.resources.files("pagerduty_bridge") / "samples"
    report = {{
        "modules": [pagerduty_bridge.__file__, pagerduty_bridge_cdk.__file__],
        "samples": sorted(entry.name for entry in samples.iterdir() if entry.name.endswith(".json")),
        "apps": {{}},
    }}
    for name, build in (("wired", wired), ("half", half)):
        outdir = sys.argv[1] + "/" + name
        artifact = build(outdir).synth().get_stack_by_name("TeamStack")
        report["apps"][name] = {{
            "outdir": outdir,
            "messages": [[m.level.name, m.id, str(m.entry.data)] for m in artifact.messages],
        }}
    print(json.dumps(report))
    """
)


@dataclass
class Installed:
    wheel: Path
    site: Path
    report: dict[str, Any]

    def template(self, app: str) -> dict[str, Any]:
        outdir = Path(self.report["apps"][app]["outdir"])
        template: dict[str, Any] = json.loads((outdir / "TeamStack.template.json").read_text(encoding="utf-8"))
        return template

    def messages(self, app: str, level: str) -> list[tuple[str, str]]:
        return [(path, text) for lvl, path, text in self.report["apps"][app]["messages"] if lvl == level]


def _build_wheel(tmp: Path) -> Path:
    source = tmp / "clean-copy"
    shutil.copytree(REPO_ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    dist = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dist), "."],
        cwd=source,
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("pagerduty_bridge-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(tmp)
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    user = tmp / "team-app"
    user.mkdir()
    (user / "app.py").write_text(USER_APP, encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(site), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(
        [sys.executable, "app.py", str(tmp / "cdk.out")],
        cwd=user,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    yield Installed(wheel, site, json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_wheel_holds_both_packages_their_data_and_nothing_of_the_repository(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert installed.wheel.name.startswith(f"pagerduty_bridge-{__version__}-")
    assert "pagerduty_bridge/handler.py" in names
    assert "pagerduty_bridge_cdk/bridge.py" in names
    assert "pagerduty_bridge_cdk/py.typed" in names
    assert "pagerduty_bridge/py.typed" in names
    samples = sorted(name for name in names if name.startswith("pagerduty_bridge/samples/"))
    assert samples == sorted(f"pagerduty_bridge/samples/{p.name}" for p in (REPO_ROOT / "events").glob("*.json"))
    requirements = (installed.site / "pagerduty_bridge_cdk" / "lambda-requirements.txt").read_text(encoding="utf-8")
    assert requirements == (REPO_ROOT / "requirements" / "lambda.txt").read_text(encoding="utf-8")
    assert not {name for name in names if name.split("/")[0] in ("infra", "tests", "app.py", "events", "lambda")}
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(installed.wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert "Provides-Extra: cdk" in text
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_the_user_app_ran_on_the_installed_packages(installed: Installed) -> None:
    for module in installed.report["modules"]:
        assert Path(module).is_relative_to(installed.site), module


def test_the_samples_are_found_as_package_resources_when_installed(installed: Installed) -> None:
    assert installed.report["samples"] == sorted(p.name for p in (REPO_ROOT / "events").glob("*.json"))


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    kinds = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
    return {lid: r["Properties"] for lid, r in template["Resources"].items() if r["Type"] in kinds}


def _alarm_topic(template: dict[str, Any]) -> dict[str, str]:
    (output,) = [o for o in template["Outputs"].values() if "AlarmActions AND OKActions" in o["Description"]]
    value: dict[str, str] = output["Value"]
    return value


def test_every_user_alarm_pages_exactly_once_both_ways(installed: Installed) -> None:
    template = installed.template("wired")
    topic = _alarm_topic(template)
    alarms = _alarms(template)
    users = {lid: p for lid, p in alarms.items() if not lid.startswith("Pager")}
    assert sorted(users) == sorted(lid for lid in alarms if lid.startswith(("Wired", "ServiceApiNested", "Composite")))
    assert len(users) == 3
    assert any(template["Resources"][lid]["Type"] == "AWS::CloudWatch::CompositeAlarm" for lid in users)
    for logical_id, properties in users.items():
        assert properties["AlarmActions"] == [topic], logical_id
        assert properties["OKActions"] == [topic], logical_id


def test_the_bridges_own_health_alarms_do_not_page_through_it(installed: Installed) -> None:
    template = installed.template("wired")
    topic = _alarm_topic(template)
    health = {lid: p for lid, p in _alarms(template).items() if lid.startswith("PagerHealth")}
    assert health
    for properties in health.values():
        assert topic not in properties["AlarmActions"] + properties.get("OKActions", [])


def test_the_asset_is_built_from_the_installed_package(installed: Installed) -> None:
    template = installed.template("wired")
    functions = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    (function,) = [f for f in functions if f["Handler"] == constants.HANDLER]
    outdir = Path(installed.report["apps"]["wired"]["outdir"])
    asset = outdir / f"asset.{function['Code']['S3Key'].removesuffix('.zip')}"
    handler = asset / "pagerduty_bridge" / "handler.py"
    assert handler.is_file()
    assert handler.read_bytes() == (installed.site / "pagerduty_bridge" / "handler.py").read_bytes()
    assert (asset / "pydantic").is_dir()
    for left_out in ("samples", "devtools", "__main__.py", "cli.py", "cli"):
        assert not (asset / "pagerduty_bridge" / left_out).exists(), left_out


def test_a_fully_wired_app_has_no_wiring_error(installed: Installed) -> None:
    assert installed.messages("wired", "ERROR") == []
    assert [text for _, text in installed.messages("wired", "WARNING") if "OK" in text] == []


def test_an_alarm_wired_for_alarm_only_is_reported_naming_it(installed: Installed) -> None:
    (error,) = installed.messages("half", "ERROR")
    path, text = error
    assert path == "/TeamStack/Half"
    assert "TeamStack/Half" in text
    assert "never tells it OK" in text
