"""The construct as teams adopt it: several bridges in one app, bridges in several regions and accounts,
alarms of other stacks, and props at their edges. A valid app synthesizes what deploys; an invalid one
stops at synth with an error that names the prop or the alarm, never with CloudFormation's at deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk.cx_api import CloudAssembly
from constructs import Construct

from pagerduty_bridge_cdk import ConfigError, PagerDutyBridge
from tests.infra.conftest import ACCOUNT, HEALTH_EMAIL, OTHER_ACCOUNT, REGION

OTHER_REGION = "us-east-1"
HOME = Environment(account=ACCOUNT, region=REGION)

# Every test here synthesizes apps of its own: one xdist worker bundles the asset once for all of them.
pytestmark = pytest.mark.xdist_group("cdk-adoption")


def _bridge(scope: Construct, construct_id: str = "Pager", **props: Any) -> PagerDutyBridge:
    return PagerDutyBridge(scope, construct_id, **{"environment": "prod", "health_alarm_email": HEALTH_EMAIL, **props})


def _alarm(scope: Construct, construct_id: str) -> cloudwatch.Alarm:
    metric = cloudwatch.Metric(namespace="Shop", metric_name=construct_id)
    return metric.create_alarm(scope, construct_id, threshold=1, evaluation_periods=1)


def _resources(assembly: CloudAssembly, stack: Stack, resource_type: str) -> dict[str, dict[str, Any]]:
    template = assembly.get_stack_by_name(stack.stack_name).template
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def _messages(assembly: CloudAssembly, stack: Stack, level: str) -> list[str]:
    artifact = assembly.get_stack_by_name(stack.stack_name)
    return [str(m.entry.data) for m in artifact.messages if m.level.name == level]


# --- Several bridges ---------------------------------------------------------------------------------


def test_one_environment_in_two_regions_of_an_account_has_a_dashboard_per_region(tmp_path: Path) -> None:
    """CloudWatch dashboards are global to an account: a bridge per region (alarms reach topics of their
    own region only) named both dashboards ``pagerduty-bridge-prod``, and the second deploy failed with
    "Dashboard already exists"."""
    app = App(outdir=str(tmp_path))
    home = Stack(app, "Home", env=HOME)
    away = Stack(app, "Away", env=Environment(account=ACCOUNT, region=OTHER_REGION))
    agnostic = Stack(app, "Anywhere")
    for stack in (home, away, agnostic):
        _bridge(stack)
    assembly = app.synth()
    names = {
        stack.stack_name: [
            r["Properties"]["DashboardName"] for r in _resources(assembly, stack, "AWS::CloudWatch::Dashboard").values()
        ]
        for stack in (home, away, agnostic)
    }
    assert names == {
        "Home": [f"pagerduty-bridge-prod-{REGION}"],
        "Away": [f"pagerduty-bridge-prod-{OTHER_REGION}"],
        "Anywhere": [{"Fn::Join": ["", ["pagerduty-bridge-prod-", {"Ref": "AWS::Region"}]]}],
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(HOME, None, id="same-stack"),
        pytest.param(HOME, HOME, id="two-stacks"),
    ],
)
def test_a_second_bridge_of_an_environment_in_the_same_account_and_region_is_refused(
    first: Environment, second: Environment | None
) -> None:
    """Two bridges of one environment in one account and region share a dashboard name and the metrics
    their health alarms watch: one bridge's failures would raise the other's alarms."""
    app = App()
    stack = Stack(app, "First", env=first)
    _bridge(stack, "Pager")
    scope = stack if second is None else Stack(app, "Second", env=second)
    with pytest.raises(ConfigError, match=r"^prop environment='prod' is already .* First/Pager"):
        _bridge(scope, "OtherPager")
    assert scope.node.try_find_child("OtherPager") is None
    _bridge(scope, "StagingPager", environment="staging")
    _bridge(Stack(app, "Elsewhere", env=Environment(account=OTHER_ACCOUNT, region=REGION)), "Pager")
