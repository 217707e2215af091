"""A team's existing alarms and topics wired to the bridge: what CloudWatch cannot deliver (a topic under a
key it may not use, an action that bypasses the topic) or should not (a suppressor alarm that pages) stops
or warns at synth, naming the alarm or the topic and what to do, instead of paging nobody after deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aspects, Environment, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as sns_subscriptions
from aws_cdk.cx_api import CloudAssembly
from constructs import Construct

from pagerduty_bridge_cdk import PageOnAlarms, PagerDutyBridge
from tests.infra.conftest import ACCOUNT, HEALTH_EMAIL, REGION

HOME = Environment(account=ACCOUNT, region=REGION)

# Every test here synthesizes apps of its own: one xdist worker bundles the asset once for all of them.
pytestmark = pytest.mark.xdist_group("cdk-existing-alarms")


def _bridge(scope: Construct, construct_id: str = "Pager", **props: Any) -> PagerDutyBridge:
    return PagerDutyBridge(scope, construct_id, **{"environment": "prod", "health_alarm_email": HEALTH_EMAIL, **props})


def _alarm(scope: Construct, construct_id: str) -> cloudwatch.Alarm:
    metric = cloudwatch.Metric(namespace="Shop", metric_name=construct_id)
    return metric.create_alarm(scope, construct_id, threshold=1, evaluation_periods=1)


def _legacy(stack: Stack, **props: Any) -> cloudwatch.CfnAlarm:
    """An L1 alarm as teams wrote them before the L2 constructs (``props``: its actions)."""
    return cloudwatch.CfnAlarm(
        stack,
        "Legacy",
        namespace="Shop",
        metric_name="Legacy",
        statistic="Sum",
        period=60,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanThreshold",
        **props,
    )


def _messages(assembly: CloudAssembly, stack: Stack, level: str) -> list[str]:
    artifact = assembly.get_stack_by_name(stack.stack_name)
    return [str(m.entry.data) for m in artifact.messages if m.level.name == level]


# --- The topic's key ----------------------------------------------------------------------------------


def test_a_topic_of_the_app_under_a_key_cloudwatch_cannot_use_is_an_error_naming_it(tmp_path: Path) -> None:
    """A team gives the bridge its own topic (``alarm_topic_arn=topic.topic_arn``) encrypted with the
    AWS-managed ``alias/aws/sns`` key, whose policy CloudWatch can never be granted, or with a key of the
    app whose policy does not let ``cloudwatch.amazonaws.com`` use it: the synth was clean, and after the
    deploy CloudWatch silently failed every publish, so no alarm ever paged. Now each is an error naming
    the topic and what to do; a key whose policy grants CloudWatch is clean."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    managed = sns.Topic(stack, "Managed", master_key=kms.Alias.from_alias_name(stack, "AwsSns", "alias/aws/sns"))
    closed = sns.Topic(stack, "Closed", master_key=kms.Key(stack, "ClosedKey"))
    open_key = kms.Key(stack, "OpenKey")
    open_key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
        )
    )
    granted = sns.Topic(stack, "Granted", master_key=open_key)
    for name, topic in (("managed", managed), ("closed", closed), ("granted", granted)):
        _bridge(stack, f"{name.title()}Pager", environment=name, alarm_topic_arn=topic.topic_arn)
    errors = _messages(app.synth(), stack, "ERROR")

    (managed_error,) = [m for m in errors if "Shop/Managed" in m]
    assert "alias/aws/sns" in managed_error and "customer-managed key" in managed_error
    (closed_error,) = [m for m in errors if "Shop/Closed" in m]
    assert "Shop/ClosedKey" in closed_error and "cloudwatch.amazonaws.com" in closed_error
    assert "kms:Decrypt" in closed_error and "kms:GenerateDataKey*" in closed_error
    assert not [m for m in errors if "Granted" in m or "OpenKey" in m]


# --- Actions that bypass the topic -------------------------------------------------------------------


@pytest.mark.parametrize("snap_start", [False, True], ids=["function", "live-alias"])
def test_a_lambda_action_on_the_bridges_function_is_an_error_naming_the_alarm(tmp_path: Path, snap_start: bool) -> None:
    """``alarm.add_alarm_action(LambdaAction(bridge.function))`` pages on ALARM but never tells the bridge
    OK (the half-wired check looks for the topic only), bypasses the topic's dead-letter queue and the
    buffer, and with SnapStart runs the unpublished ``$LATEST``: the synth was clean. Now it is an error
    naming the alarm and saying to page it through the topic."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    bridge = _bridge(stack, snap_start=snap_start)
    direct = _alarm(stack, "Direct")
    direct.add_alarm_action(cloudwatch_actions.LambdaAction(bridge.function))
    legacy = _legacy(stack, ok_actions=[bridge.function.function_arn])
    bridge.page(_alarm(stack, "Fine"))
    errors = _messages(app.synth(), stack, "ERROR")

    (direct_error,) = [m for m in errors if "Shop/Direct" in m]
    assert "bridge.page(alarm)" in direct_error and "Shop/Pager" in direct_error
    assert [m for m in errors if legacy.node.path in m]
    assert not [m for m in errors if "Shop/Fine" in m]


# --- Composite alarms with an actions suppressor -----------------------------------------------------


def test_a_suppressor_alarm_paging_through_the_bridge_is_a_warning_naming_it(tmp_path: Path) -> None:
    """A composite alarm's ``actions_suppressor`` (a maintenance window, a deploy in progress) is in ALARM
    exactly when nobody should be paged; ``PageOnAlarms`` wired it like any alarm, so every maintenance
    window woke the on-call engineer. Now such an alarm gets a warning naming it and the composite."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    bridge = _bridge(stack)
    maintenance = _alarm(stack, "Maintenance")
    child = _alarm(stack, "Checkout")
    cloudwatch.CompositeAlarm(
        stack,
        "CheckoutDown",
        alarm_rule=cloudwatch.AlarmRule.from_alarm(child, cloudwatch.AlarmState.ALARM),
        actions_suppressor=maintenance,
    )
    Aspects.of(stack).add(PageOnAlarms(bridge, exclude="Shop/Checkout"))
    warnings = _messages(app.synth(), stack, "WARNING")

    (warning,) = [m for m in warnings if "Shop/Maintenance" in m]
    assert "Shop/CheckoutDown" in warning and "suppress" in warning


# --- Action lists replaced after wiring --------------------------------------------------------------


def test_an_alarm_that_tells_the_bridge_ok_but_never_alarm_is_an_error_naming_it(tmp_path: Path) -> None:
    """``bridge.page(legacy)`` on an L1 alarm, then ``legacy.alarm_actions = [team_topic]`` further down
    (setting the property, as one does for the team's own topic) replaced the list page() had extended:
    the alarm told the bridge OK and never ALARM, so it paged nobody, and the half-wired check (ALARM
    without OK only) said nothing. Now it is an error naming it."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    bridge = _bridge(stack)
    legacy = _legacy(stack)
    bridge.page(legacy)
    legacy.alarm_actions = [f"arn:aws:sns:{REGION}:{ACCOUNT}:team-mail"]
    bridge.page(_alarm(stack, "Fine"))
    errors = _messages(app.synth(), stack, "ERROR")

    (error,) = [m for m in errors if "Shop/Legacy" in m]
    assert "never" in error and "ALARM" in error and "AlarmActions" in error
    assert not [m for m in errors if "Shop/Fine" in m]


# --- INSUFFICIENT_DATA that an alert rule acts on ----------------------------------------------------


def test_an_alarm_whose_rule_pages_on_missing_data_but_not_wired_for_it_is_an_error_naming_both(
    tmp_path: Path,
) -> None:
    """An alert rule says ``insufficient_data: trigger`` for the heartbeats (a host that stops reporting
    must page), but ``bridge.page(alarm)`` and ``PageOnAlarms`` wire ALARM and OK only unless told: CloudWatch
    never told the bridge INSUFFICIENT_DATA, so the silent host paged nobody, after a clean synth. Now an
    alarm of a literal name that a rule acting on INSUFFICIENT_DATA matches, wired without it, is an error
    naming the alarm and the rule; wired with it, or matched by no such rule, it is clean."""
    rules = {
        "rules": [
            {"name": "quiet", "match": {"alarm_name": "heartbeat-batch"}, "severity": "info"},
            {"name": "heartbeats", "match": {"alarm_name": "heartbeat-*"}, "insufficient_data": "trigger"},
        ]
    }
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    bridge = _bridge(stack, alert_rules=rules)

    def heartbeat(construct_id: str, name: str) -> cloudwatch.Alarm:
        metric = cloudwatch.Metric(namespace="Shop", metric_name="Heartbeat")
        return metric.create_alarm(stack, construct_id, alarm_name=name, threshold=1, evaluation_periods=1)

    bridge.page(heartbeat("Orders", "heartbeat-orders"))
    bridge.page(heartbeat("Payments", "heartbeat-payments"), insufficient_data=True)
    bridge.page(heartbeat("Batch", "heartbeat-batch"))
    bridge.page(_alarm(stack, "Unnamed"))
    errors = _messages(app.synth(), stack, "ERROR")

    (error,) = [m for m in errors if "INSUFFICIENT_DATA" in m]
    assert "Shop/Orders" in error and "'heartbeats'" in error and "insufficient_data=True" in error
    assert not [m for m in errors if any(name in m for name in ("Payments", "Batch", "Unnamed"))]


# --- CloudWatch's five actions per state -------------------------------------------------------------


def test_actions_added_after_page_beyond_cloudwatchs_five_are_an_error_naming_the_alarm(tmp_path: Path) -> None:
    """page() counted the alarm's actions when it was called; a team adding its own topics afterwards (the
    usual order: page() where the alarm is made, the team's actions further down) brought the alarm to six
    ALARM actions, and the deploy failed far from the cause. Now the count is checked once the app is
    built, and the error names the alarm."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    bridge = _bridge(stack)
    crowded = bridge.page(_alarm(stack, "Crowded"))
    for n in range(5):
        crowded.add_alarm_action(cloudwatch_actions.SnsAction(sns.Topic(stack, f"Team{n}")))
    errors = _messages(app.synth(), stack, "ERROR")

    (error,) = [m for m in errors if "Shop/Crowded" in m]
    assert "6 AlarmActions" in error and "allows 5 per state" in error


def test_actions_disabled_after_page_are_a_warning_naming_the_alarm(tmp_path: Path) -> None:
    """page() looked at ``ActionsEnabled`` when it was called; an L1 alarm whose actions were turned off
    further down (``legacy.actions_enabled = False``, as for a noisy alarm) paged nobody with no word at
    synth. Now the warning is given once the app is built."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    bridge = _bridge(stack)
    legacy = _legacy(stack)
    bridge.page(legacy)
    legacy.actions_enabled = False
    warnings = _messages(app.synth(), stack, "WARNING")

    (warning,) = [m for m in warnings if "Shop/Legacy" in m]
    assert "actions disabled" in warning


# --- Subscriptions into the bridge -------------------------------------------------------------------


@pytest.mark.parametrize("buffered", [False, True], ids=["function", "buffer"])
def test_a_filter_policy_on_a_subscription_into_the_bridge_is_an_error_naming_it(
    tmp_path: Path, buffered: bool
) -> None:
    """A team subscribes the bridge to its own alarm topic with a filter policy (to forward only some
    alarms): CloudWatch's notifications carry no message attributes, so an attribute filter drops every
    one, and a body filter on the state drops the OKs that resolve. The synth was clean and nothing ever
    paged. Now such a subscription is an error naming it."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Shop", env=HOME)
    bridge = _bridge(stack, buffered=buffered)
    ops = sns.Topic(stack, "Ops")
    only_critical = {"severity": sns.SubscriptionFilter.string_filter(allowlist=["critical"])}
    if bridge.buffer is not None:
        ops.add_subscription(sns_subscriptions.SqsSubscription(bridge.buffer, filter_policy=only_critical))
    else:
        ops.add_subscription(sns_subscriptions.LambdaSubscription(bridge.function, filter_policy=only_critical))
    states, prod = sns.Topic(stack, "States"), sns.Topic(stack, "Prod")
    for topic, field, condition in (
        (states, "NewStateValue", sns.SubscriptionFilter.string_filter(allowlist=["ALARM"])),
        (prod, "AlarmName", sns.SubscriptionFilter.string_filter(match_prefixes=["prod-"])),
    ):
        body = {field: sns.FilterOrPolicy.filter(condition)}
        topic.add_subscription(
            sns_subscriptions.LambdaSubscription(bridge.bridge.target, filter_policy_with_message_body=body)
        )
    errors = _messages(app.synth(), stack, "ERROR")

    (error,) = [m for m in errors if "Shop/Ops" in m]
    assert "filter policy" in error and "message attributes" in error
    (error,) = [m for m in errors if "Shop/States" in m]
    assert "OK notifications" in error
    assert not [m for m in errors if "Shop/Prod" in m], "a body filter on the alarm name keeps both sides"
