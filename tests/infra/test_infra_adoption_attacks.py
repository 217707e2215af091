"""The construct as teams adopt it: several bridges in one app, bridges in several regions and accounts,
alarms of other stacks, and props at their edges. A valid app synthesizes what deploys; an invalid one
stops at synth with an error that names the prop or the alarm, never with CloudFormation's at deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aspects, Environment, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk.cx_api import CloudAssembly
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]
from constructs import Construct

from pagerduty_bridge_cdk import ConfigError, PageOnAlarms, PagerDutyBridge, nag
from pagerduty_bridge_cdk.app import build_app
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


# --- Alarms of other stacks ---------------------------------------------------------------------------


def test_an_alarm_the_bridges_topic_cannot_hear_is_an_error_naming_it_not_a_failed_synth(tmp_path: Path) -> None:
    """An alarm in another account (the created topic takes this account's alarms only), in another region
    without cross-region references, or in a stack pinned to an environment while the bridge's is
    env-agnostic: page() and PageOnAlarms wired them anyway, and the synth died on CDK's
    "CannotUseCrossEnvironment … physical name must be explicit set". Now each is an error annotation on
    the alarm saying why, and the alarm is left unwired."""
    app = App(outdir=str(tmp_path))
    home = Stack(app, "Home", env=HOME)
    bridge = _bridge(home)
    other_account = Stack(app, "OtherAccount", env=Environment(account=OTHER_ACCOUNT, region=REGION))
    other_region = Stack(app, "OtherRegion", env=Environment(account=ACCOUNT, region=OTHER_REGION))
    bridge.page(_alarm(other_account, "Paged"))
    Aspects.of(other_account).add(PageOnAlarms(bridge))
    _alarm(other_account, "Aspected")
    bridge.page(_alarm(other_region, "Paged"))
    anywhere = Stack(app, "Anywhere")
    agnostic_bridge = _bridge(anywhere, environment="anywhere")
    agnostic_bridge.page(_alarm(home, "PinnedForAnAgnosticBridge"))
    assembly = app.synth()

    for stack in (other_account, other_region):
        for alarm in _resources(assembly, stack, "AWS::CloudWatch::Alarm").values():
            assert "AlarmActions" not in alarm["Properties"] and "OKActions" not in alarm["Properties"]
    account_errors = _messages(assembly, other_account, "ERROR")
    assert len(account_errors) == 2
    for name, text in zip(("Paged", "Aspected"), sorted(account_errors, reverse=True), strict=True):
        assert f"alarm OtherAccount/{name} is in account {OTHER_ACCOUNT}" in text
        assert "the bridge's topic Home/Pager/" in text and f"takes alarms of account {ACCOUNT} only" in text
    (region_error,) = _messages(assembly, other_region, "ERROR")
    assert f"alarm OtherRegion/Paged is in {OTHER_REGION}, the bridge's topic in {REGION}" in region_error
    (agnostic_error,) = _messages(assembly, home, "ERROR")
    assert "alarm Home/PinnedForAnAgnosticBridge" in agnostic_error and "Anywhere/Pager" in agnostic_error
    assert "of its own account and region" in agnostic_error and "same env" in agnostic_error


def test_an_alarm_in_another_region_than_an_existing_topic_is_an_error_naming_it(tmp_path: Path) -> None:
    """The region that counts is the topic's own, from its ARN, not the bridge stack's: an alarm of this
    region wired to an existing topic of another would fail its deploy ("Invalid region")."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Home", env=HOME)
    bridge = _bridge(stack, alarm_topic_arn=f"arn:aws:sns:{OTHER_REGION}:{ACCOUNT}:ops-alarms")
    paged = bridge.page(_alarm(stack, "Paged"))
    assembly = app.synth()
    (error,) = _messages(assembly, stack, "ERROR")
    assert f"alarm Home/Paged is in {REGION}, the bridge's topic in {OTHER_REGION}" in error
    logical_id = stack.get_logical_id(paged.node.default_child)  # type: ignore[arg-type]
    assert "AlarmActions" not in _resources(assembly, stack, "AWS::CloudWatch::Alarm")[logical_id]["Properties"]


# --- Props at their edges ------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["", "   ", None, "none"])
def test_an_empty_environment_is_refused_not_taken_for_dev(environment: str | None) -> None:
    """``environment`` is the one required prop; an empty value (a variable that was never set) made a
    bridge of environment ``dev``, beside or in place of the team's real dev bridge."""
    stack = Stack(App(), "User", env=HOME)
    with pytest.raises(ConfigError, match=r"^prop environment=.* is required"):
        _bridge(stack, environment=environment)
    assert stack.node.try_find_child("Pager") is None


# --- Context parameters of the standalone app ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "meant"),
    [
        ("reserved_concurrency", "none", "reservedConcurrency"),  # the props' spelling, as the README shows it
        ("ReconcileMinutes", "0", "reconcileMinutes"),
        ("health-alarm-email", HEALTH_EMAIL, "healthAlarmEmail"),
        ("BUFFERED", "true", "buffered"),
    ],
)
def test_a_context_parameter_spelled_another_way_stops_the_synth_naming_the_right_spelling(
    key: str, value: str, meant: str
) -> None:
    """``-c reserved_concurrency=none`` (the prop's name) was ignored without a word: the stack deployed
    with the default reserved concurrency the team had meant to turn off."""
    with pytest.raises(
        ConfigError, match=rf"^context parameter {key} is not one of the bridge's: did you mean {meant}\?"
    ):
        build_app({"account": ACCOUNT, "region": REGION, key: value})


def test_a_prop_only_parameter_given_as_context_says_it_is_a_prop() -> None:
    with pytest.raises(ConfigError, match=r"^context parameter halfWiredAlarms is a prop of the construct only"):
        build_app({"account": ACCOUNT, "region": REGION, "halfWiredAlarms": "warn"})


# --- IAM ---------------------------------------------------------------------------------------------


def test_a_secret_of_another_region_is_decrypted_through_that_regions_secrets_manager(tmp_path: Path) -> None:
    """A bridge per region reading one integration-key secret, kept in one region under a key of the
    team's: the Decrypt grant was limited to Secrets Manager of the bridge's own region, while Secrets
    Manager decrypts in the secret's region, so every page of the other regions failed, AccessDenied."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Away", env=Environment(account=ACCOUNT, region=OTHER_REGION))
    _bridge(
        stack,
        integration_key_secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:pagerduty/key-AbCdEf",
        integration_key_secret_kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    )
    policies = _resources(app.synth(), stack, "AWS::IAM::Policy").values()
    decrypts = [
        statement["Condition"]
        for policy in policies
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "DecryptIntegrationKeySecret"
    ]
    assert decrypts == [{"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}}]


def test_a_secrets_key_in_another_region_than_the_secret_is_refused() -> None:
    """Secrets Manager encrypts a secret with a key of the secret's own region: any other key is a typo
    that would only show as a function failing every page."""
    with pytest.raises(
        ConfigError, match=r"^prop integration_key_secret_kms_key_arn=.* is in us-east-1, the secret in eu-west-1"
    ):
        _bridge(
            Stack(App(), "User", env=HOME),
            integration_key_secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:pagerduty/key-AbCdEf",
            integration_key_secret_kms_key_arn=f"arn:aws:kms:{OTHER_REGION}:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        )


# --- Env-agnostic stacks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "features",
    [
        pytest.param({"reconcile_minutes": 0}, id="nothing-on"),
        pytest.param(
            {"snap_start": True, "buffered": True, "webhooks": True, "change_events": True, "max_concurrency": 4},
            id="everything-on",
        ),
    ],
)
def test_an_env_agnostic_bridge_is_nag_clean_and_lint_clean(tmp_path: Path, features: dict[str, Any]) -> None:
    """A stack without account or region (deployed wherever the CLI points) puts tokens where the
    pinned variants have literals: in policies' conditions, the change-event pattern, the dashboard's
    name."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Anywhere")
    bridge = _bridge(stack, **features)
    Aspects.of(stack).add(PageOnAlarms(bridge))
    _alarm(stack, "Checkout")
    nag.add_checks(app)
    assembly = app.synth()
    assert _messages(assembly, stack, "ERROR") == [] and _messages(assembly, stack, "WARNING") == []
    assert nag.unacknowledged_findings(assembly.directory) == []
    template = Path(assembly.directory) / f"{stack.artifact_id}.template.json"
    matches = lint_file(template, config=ManualArgs(regions=[REGION, OTHER_REGION]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []
