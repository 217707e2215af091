"""The construct in someone else's app: props, properties, page(), PageOnAlarms and the half-wired check,
for L2 alarms and for L1 ones (``CfnAlarm``, ``CfnCompositeAlarm``, alarms included from a legacy template)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Annotations, App, Aspects, CfnParameter, Environment, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import cloudformation_include as cfn_include
from aws_cdk.cx_api import CloudAssembly
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]
from constructs import Construct, IConstruct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk import (
    DOUBLE_PAGE_WARNING_ID,
    HALF_WIRED_WARNING_ID,
    UNRESOLVED_ACTIONS_WARNING_ID,
    UNSUBSCRIBED_HEALTH_WARNING_ID,
    ConfigError,
    PageOnAlarms,
    PagerDutyBridge,
    nag,
)
from tests.infra.conftest import ACCOUNT, HEALTH_EMAIL, REGION

IMPORTED_ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:legacy-database-cpu"
LEGACY_TEMPLATES = Path(__file__).parent / "legacy"
"""CloudFormation templates from before the bridge, as teams bring them in with ``CfnInclude``."""
DBA_TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:dba-mail"
"""The ALARM action the legacy ``DbCpu`` alarm already has."""


def _metric(name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(namespace="Shop", metric_name=name)


def _alarm(scope: Construct, construct_id: str) -> cloudwatch.Alarm:
    return _metric(construct_id).create_alarm(scope, construct_id, threshold=1, evaluation_periods=1)


def _l1_alarm(scope: Construct, construct_id: str, **props: Any) -> cloudwatch.CfnAlarm:
    return cloudwatch.CfnAlarm(
        scope,
        construct_id,
        namespace="Shop",
        metric_name=construct_id,
        statistic="Sum",
        period=60,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanThreshold",
        **props,
    )


@dataclass
class UserApp:
    """A synthesized app of a team that embeds the bridge, and the constructs the tests look at."""

    app: App
    stack: Stack
    bridge: PagerDutyBridge
    alarms: dict[str, IConstruct]
    """L2 alarms, or L1 ones (their own CloudFormation resource)."""
    assembly: CloudAssembly

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = self.assembly.get_stack_by_name(self.stack.stack_name).template
        return template

    def actions(self, name: str) -> dict[str, list[Any]]:
        """The alarm's actions by state, as the template has them."""
        properties = self.properties(name)
        return {
            state: properties.get(key, [])
            for state, key in (
                ("alarm", "AlarmActions"),
                ("ok", "OKActions"),
                ("insufficient", "InsufficientDataActions"),
            )
        }

    def properties(self, name: str) -> dict[str, Any]:
        """The alarm's resource properties in the template."""
        alarm = self.alarms[name]
        resource: Any = alarm.node.default_child or alarm
        logical_id = self.stack.resolve(resource.logical_id)  # an included resource keeps its template's id
        properties: dict[str, Any] = self.template["Resources"][logical_id]["Properties"]
        return properties

    @property
    def topic(self) -> dict[str, str]:
        return {"Ref": self.stack.get_logical_id(self.bridge.topic.node.default_child)}  # type: ignore[arg-type]

    def messages(self, level: str) -> list[tuple[str, str]]:
        artifact = self.assembly.get_stack_by_name(self.stack.stack_name)
        return [(m.id, str(m.entry.data)) for m in artifact.messages if m.level.name == level]


def _user_app(outdir: Path, build: Any, **props: Any) -> UserApp:
    """The team's app; its operators subscribe to the bridge's health alarms by e-mail unless ``props``
    say otherwise."""
    app = App(outdir=str(outdir))
    stack = Stack(app, "User", env=Environment(account=ACCOUNT, region=REGION))
    bridge = PagerDutyBridge(stack, "Pager", environment="prod", **{"health_alarm_email": HEALTH_EMAIL, **props})
    alarms: dict[str, IConstruct] = build(stack, bridge)
    nag.add_checks(app)
    return UserApp(app, stack, bridge, alarms, app.synth())


def _wired_everywhere(stack: Stack, bridge: PagerDutyBridge) -> dict[str, cloudwatch.AlarmBase]:
    """Alarms of every kind, wired every way, with a few left out on purpose."""
    wired = _alarm(stack, "Checkout")
    assert bridge.page(wired) is wired
    bridge.page(wired)
    insufficient = bridge.page(_alarm(stack, "Heartbeat"), insufficient_data=True)
    bridge.page(insufficient, insufficient_data=True)
    manual = _alarm(stack, "Manual")
    manual.add_alarm_action(cloudwatch_actions.SnsAction(bridge.topic))
    manual.add_ok_action(cloudwatch_actions.SnsAction(bridge.topic))
    half_then_aspect = _alarm(stack, "HalfThenAspect")
    half_then_aspect.add_alarm_action(cloudwatch_actions.SnsAction(bridge.topic))
    api = Construct(Construct(stack, "Service"), "Api")
    nested = _alarm(api, "Latency")
    sandbox = _alarm(Construct(stack, "Sandbox"), "Experiment")
    # Over an alarm that does not page itself: a composite over a paging alarm would page twice.
    composite = cloudwatch.CompositeAlarm(
        stack,
        "ShopDown",
        alarm_rule=cloudwatch.AlarmRule.any_of(
            cloudwatch.Alarm.from_alarm_arn(stack, "LegacyDatabaseCpu", IMPORTED_ALARM_ARN), sandbox
        ),
    )
    canary = _alarm(stack, "CanaryErrors")
    Aspects.of(stack).add(
        PageOnAlarms(
            bridge, exclude=lambda alarm: alarm.node.path.startswith("User/Sandbox/") or "Canary" in alarm.node.path
        )
    )
    names = ("Checkout", "Heartbeat", "Manual", "HalfThenAspect", "Latency", "ShopDown", "Experiment", "CanaryErrors")
    return dict(
        zip(names, (wired, insufficient, manual, half_then_aspect, nested, composite, sandbox, canary), strict=True)
    )


def _half_wired(stack: Stack, bridge: PagerDutyBridge) -> dict[str, IConstruct]:
    half = _alarm(stack, "Half")
    half.add_alarm_action(cloudwatch_actions.SnsAction(bridge.topic))
    half_l1 = _l1_alarm(stack, "HalfL1", alarm_actions=[bridge.topic.topic_arn])
    whole_l1 = _l1_alarm(stack, "WholeL1", alarm_actions=[bridge.topic.topic_arn], ok_actions=[bridge.topic.topic_arn])
    return {"Half": half, "Whole": bridge.page(_alarm(stack, "Whole")), "HalfL1": half_l1, "WholeL1": whole_l1}


def _legacy(stack: Stack, bridge: PagerDutyBridge) -> dict[str, IConstruct]:
    """L1 alarms: one written in the app, two included from a legacy template, one left out on purpose."""
    orders = _l1_alarm(stack, "Orders")
    legacy = cfn_include.CfnInclude(stack, "Legacy", template_file=str(LEGACY_TEMPLATES / "alarms.json"))
    sandbox = _l1_alarm(Construct(stack, "Sandbox"), "Experiment")
    Aspects.of(stack).add(PageOnAlarms(bridge, exclude="User/Sandbox/*"))
    return {
        "Orders": orders,
        "DbCpu": legacy.get_resource("DbCpu"),
        "DbConnections": legacy.get_resource("DbConnections"),
        "Experiment": sandbox,
    }


@pytest.fixture(scope="module")
def user_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserApp]:
    yield _user_app(tmp_path_factory.mktemp("user-app"), _wired_everywhere)


@pytest.fixture(scope="module")
def half_wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserApp]:
    yield _user_app(tmp_path_factory.mktemp("half-wired"), _half_wired)


@pytest.fixture(scope="module")
def half_wired_warn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserApp]:
    yield _user_app(tmp_path_factory.mktemp("half-wired-warn"), _half_wired, half_wired_alarms="warn")


@pytest.fixture(scope="module")
def legacy_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserApp]:
    yield _user_app(tmp_path_factory.mktemp("legacy"), _legacy)


# Every test here synthesizes in this module's fixtures: one xdist worker builds them all.
pytestmark = pytest.mark.xdist_group("cdk-user")


# --- Props and properties ---------------------------------------------------------------------------


def _bare_stack() -> Stack:
    return Stack(App(), "User", env=Environment(account=ACCOUNT, region=REGION))


def test_a_bad_severity_in_alert_rules_fails_naming_the_prop_before_anything_is_built() -> None:
    stack = _bare_stack()
    rules = {"rules": [{"name": "payments", "match": {"alarm_name": "payments-*"}, "severity": "deafening"}]}
    with pytest.raises(ConfigError, match=r"^prop alert_rules: rule 'payments' \(#1\) field severity"):
        PagerDutyBridge(stack, "Pager", environment="prod", alert_rules=rules)
    assert stack.node.try_find_child("Pager") is None


@pytest.mark.parametrize(
    ("props", "complaint"),
    [
        ({"alarm_topic_arn": "arn:aws:sns:eu-west-1:123456789012"}, "prop alarm_topic_arn='arn:aws:sns:eu-west-1:"),
        ({"integration_key_secret_arn": "pagerduty/key"}, "prop integration_key_secret_arn="),
        ({"environment": "Production"}, "prop environment='Production'"),
        ({"buffered": True, "batch_size": 1000}, "prop batch_size=1000"),
        ({"change_events": "shop_*"}, "prop change_events='shop_\\*'"),
        (
            {"webhook_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:w"},
            "webhook_secret_arn is only",
        ),
    ],
)
def test_malformed_props_fail_naming_the_prop(props: dict[str, Any], complaint: str) -> None:
    arguments = {"environment": "prod", **props}
    with pytest.raises(ConfigError, match=complaint):
        PagerDutyBridge(_bare_stack(), "Pager", **arguments)


def test_an_unknown_prop_or_a_missing_environment_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="alarm_topic"):
        PagerDutyBridge(_bare_stack(), "Pager", environment="prod", alarm_topic="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="environment"):
        PagerDutyBridge(_bare_stack(), "Pager")  # type: ignore[call-arg]


def test_the_construct_exposes_its_topic_function_and_table(user_app: UserApp) -> None:
    bridge = user_app.bridge
    assert isinstance(bridge, Construct)
    assert not isinstance(bridge, Stack)
    assert isinstance(bridge.topic, sns.Topic)  # typed ITopic: an existing topic is imported by ARN
    assert isinstance(bridge.function, lambda_.Function)
    assert isinstance(bridge.table, dynamodb.Table)
    resources = user_app.template["Resources"]
    assert resources[user_app.topic["Ref"]]["Type"] == "AWS::SNS::Topic"
    function = resources[user_app.stack.get_logical_id(bridge.function.node.default_child)]  # type: ignore[arg-type]
    assert function["Properties"]["Handler"] == constants.HANDLER
    table = resources[user_app.stack.get_logical_id(bridge.table.node.default_child)]  # type: ignore[arg-type]
    assert table["Properties"]["KeySchema"] == [{"AttributeName": constants.TABLE_PARTITION_KEY, "KeyType": "HASH"}]


@pytest.mark.parametrize("app", ["user_app", "legacy_app"])
def test_the_embedded_bridge_is_cdk_nag_clean(app: str, request: pytest.FixtureRequest) -> None:
    user_app: UserApp = request.getfixturevalue(app)
    assert nag.unacknowledged_findings(user_app.assembly.directory) == []


@pytest.mark.parametrize("app", ["user_app", "legacy_app"])
def test_the_team_stack_has_no_cfn_lint_error(app: str, request: pytest.FixtureRequest) -> None:
    user_app: UserApp = request.getfixturevalue(app)
    template = Path(user_app.assembly.directory) / f"{user_app.stack.artifact_id}.template.json"
    matches = lint_file(template, config=ManualArgs(regions=[REGION]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


# --- page() ------------------------------------------------------------------------------------------


def test_page_adds_alarm_and_ok_actions_once_however_often_it_is_called(user_app: UserApp) -> None:
    topic = user_app.topic
    assert user_app.actions("Checkout") == {"alarm": [topic], "ok": [topic], "insufficient": []}


def test_page_adds_insufficient_data_only_when_asked_and_once(user_app: UserApp) -> None:
    topic = user_app.topic
    assert user_app.actions("Heartbeat") == {"alarm": [topic], "ok": [topic], "insufficient": [topic]}


def test_page_refuses_an_alarm_imported_by_arn() -> None:
    stack = _bare_stack()
    imported = cloudwatch.Alarm.from_alarm_arn(stack, "Imported", IMPORTED_ALARM_ARN)
    with pytest.raises(TypeError, match="imported by ARN"):
        PagerDutyBridge(stack, "Pager", environment="prod").page(imported)  # type: ignore[type-var]


# --- PageOnAlarms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Latency", "ShopDown", "HalfThenAspect", "Manual"])
def test_the_aspect_wires_nested_and_composite_alarms_and_never_twice(user_app: UserApp, name: str) -> None:
    topic = user_app.topic
    assert user_app.actions(name) == {"alarm": [topic], "ok": [topic], "insufficient": []}


def test_the_composite_is_a_composite_over_an_imported_alarm(user_app: UserApp) -> None:
    composite = user_app.alarms["ShopDown"]
    logical_id = user_app.stack.get_logical_id(composite.node.default_child)  # type: ignore[arg-type]
    resource = user_app.template["Resources"][logical_id]
    assert resource["Type"] == "AWS::CloudWatch::CompositeAlarm"
    assert "legacy-database-cpu" in str(resource["Properties"]["AlarmRule"])


@pytest.mark.parametrize("name", ["Experiment", "CanaryErrors"])
def test_the_aspect_leaves_excluded_alarms_alone(user_app: UserApp, name: str) -> None:
    assert user_app.actions(name) == {"alarm": [], "ok": [], "insufficient": []}


def test_the_aspect_never_wires_the_bridges_own_health_alarms(user_app: UserApp) -> None:
    health_topic = {"Ref": user_app.stack.get_logical_id(user_app.bridge.health.topic.node.default_child)}  # type: ignore[arg-type]
    health_alarms = user_app.bridge.health.alarms
    assert health_alarms
    for alarm in health_alarms.values():
        logical_id = user_app.stack.get_logical_id(alarm.node.default_child)  # type: ignore[arg-type]
        properties = user_app.template["Resources"][logical_id]["Properties"]
        assert properties["AlarmActions"] == [health_topic]
        assert properties["OKActions"] == [health_topic]


def test_include_keeps_only_the_alarms_it_matches(tmp_path: Path) -> None:
    """Globs on the construct path; no synth needed: the aspect acts when CDK invokes it."""
    stack = _bare_stack()
    bridge = PagerDutyBridge(stack, "Pager", environment="prod")
    critical, minor = _alarm(Construct(stack, "Critical"), "Errors"), _alarm(stack, "Minor")
    aspect = PageOnAlarms(bridge, include=["User/Critical/*"])
    for construct in stack.node.find_all():
        aspect.visit(construct)
    topic_arn = bridge.topic.topic_arn
    assert critical._alarm_action_arns == [topic_arn] and critical._ok_action_arns == [topic_arn]
    assert not minor._alarm_action_arns and not minor._ok_action_arns


def test_the_aspect_wires_an_l1_alarm_of_the_app(legacy_app: UserApp) -> None:
    topic = legacy_app.topic
    assert legacy_app.actions("Orders") == {"alarm": [topic], "ok": [topic], "insufficient": []}


def test_the_aspect_wires_an_included_legacy_alarm_keeping_its_own_actions(legacy_app: UserApp) -> None:
    topic = legacy_app.topic
    assert legacy_app.actions("DbCpu") == {"alarm": [DBA_TOPIC_ARN, topic], "ok": [topic], "insufficient": []}


def test_the_aspect_adds_the_topic_to_an_l1_alarm_once_and_insufficient_data_when_asked() -> None:
    stack = _bare_stack()
    bridge = PagerDutyBridge(stack, "Pager", environment="prod")
    topic_arn = bridge.topic.topic_arn
    heartbeat = _l1_alarm(stack, "Heartbeat", alarm_actions=[topic_arn], ok_actions=[DBA_TOPIC_ARN])
    aspect = PageOnAlarms(bridge, insufficient_data=True)
    for _ in range(2):
        for construct in stack.node.find_all():
            aspect.visit(construct)
    assert heartbeat.alarm_actions == [topic_arn]
    assert heartbeat.ok_actions == [DBA_TOPIC_ARN, topic_arn]
    assert heartbeat.insufficient_data_actions == [topic_arn]


def test_the_aspect_leaves_an_excluded_l1_alarm_alone(legacy_app: UserApp) -> None:
    assert legacy_app.actions("Experiment") == {"alarm": [], "ok": [], "insufficient": []}


def test_an_alarm_whose_actions_are_a_token_is_left_alone_with_a_warning_naming_it(legacy_app: UserApp) -> None:
    """``OKActions: {Ref: a CommaDelimitedList}`` is known only at deploy: extending it would be a guess."""
    properties = legacy_app.properties("DbConnections")
    assert "AlarmActions" not in properties
    assert properties["OKActions"] == {"Ref": "OnCallTopics"}
    assert legacy_app.messages("ERROR") == []
    (warning,) = legacy_app.messages("WARNING")
    path, text = warning
    assert path == "/User/Legacy/DbConnections"
    assert UNRESOLVED_ACTIONS_WARNING_ID in text
    assert "alarm User/Legacy/DbConnections" in text and "OKActions" in text
    assert "User/Pager" in text


# --- The half-wired check ---------------------------------------------------------------------------


def test_a_fully_wired_app_gets_no_error_and_no_warning(user_app: UserApp) -> None:
    """HalfThenAspect told the bridge ALARM only until the aspect ran: the check runs after aspects."""
    assert user_app.messages("ERROR") == []
    assert user_app.messages("WARNING") == []


def test_an_alarm_wired_for_alarm_only_is_an_error_naming_it(half_wired: UserApp) -> None:
    """Once per alarm: an L2 alarm is not reported again through the CfnAlarm it renders."""
    errors = dict(half_wired.messages("ERROR"))
    assert sorted(errors) == ["/User/Half", "/User/HalfL1"]
    text = errors["/User/Half"]
    assert "alarm User/Half pages PagerDuty through User/Pager on ALARM but never tells it OK" in text
    assert "bridge.page(alarm)" in text
    assert half_wired.messages("WARNING") == []
    assert half_wired.actions("Whole")["ok"] == [half_wired.topic]


def test_an_l1_alarm_wired_for_alarm_only_is_an_error_naming_it(half_wired: UserApp) -> None:
    text = dict(half_wired.messages("ERROR"))["/User/HalfL1"]
    assert "alarm User/HalfL1 pages PagerDuty through User/Pager on ALARM but never tells it OK" in text
    assert "OKActions" in text
    assert half_wired.actions("HalfL1") == {"alarm": [half_wired.topic], "ok": [], "insufficient": []}


def test_the_opt_out_makes_it_a_warning(half_wired_warn: UserApp) -> None:
    assert half_wired_warn.messages("ERROR") == []
    warnings = dict(half_wired_warn.messages("WARNING"))
    assert sorted(warnings) == ["/User/Half", "/User/HalfL1"]
    for path, text in warnings.items():
        assert f"alarm {path[1:]} " in text
        assert HALF_WIRED_WARNING_ID in text


# --- Double pages -----------------------------------------------------------------------------------


def _composite_over_a_paging_child(stack: Stack, bridge: PagerDutyBridge) -> dict[str, cloudwatch.AlarmBase]:
    child = _alarm(Construct(stack, "Service"), "Latency")
    composite = cloudwatch.CompositeAlarm(stack, "ShopDown", alarm_rule=cloudwatch.AlarmRule.any_of(child))
    Aspects.of(stack).add(PageOnAlarms(bridge))
    return {"Latency": child, "ShopDown": composite}


def test_a_composite_and_its_child_both_paging_is_a_warning_naming_both(tmp_path: Path) -> None:
    """One problem, two incidents: the audit's double page, reported at synth."""
    double = _user_app(tmp_path, _composite_over_a_paging_child)
    assert double.messages("ERROR") == []
    (warning,) = double.messages("WARNING")
    path, text = warning
    assert path == "/User/Service/Latency"
    assert "User/Service/Latency" in text and "composite alarm User/ShopDown" in text
    assert "two incidents" in text
    assert DOUBLE_PAGE_WARNING_ID in text


def _l1_composites_over_paging_children(stack: Stack, bridge: PagerDutyBridge) -> dict[str, IConstruct]:
    """Composites naming their children every way a rule can: an L1 by its ARN token, an L2 by its ARN,
    an L1 by its literal name, and an included composite by ``Fn::Sub`` of its child's logical id."""
    latency = _l1_alarm(stack, "Latency")
    cloudwatch.CfnCompositeAlarm(stack, "ShopDown", alarm_rule=f"ALARM({latency.attr_arn})")
    checkout = _alarm(stack, "Checkout")
    cloudwatch.CfnCompositeAlarm(stack, "CheckoutDown", alarm_rule=f"ALARM({checkout.alarm_arn})")
    _l1_alarm(stack, "Payments", alarm_name="shop-payments")
    cloudwatch.CfnCompositeAlarm(stack, "PaymentsDown", alarm_rule='ALARM("shop-payments")')
    cfn_include.CfnInclude(stack, "Legacy", template_file=str(LEGACY_TEMPLATES / "composite.json"))
    Aspects.of(stack).add(PageOnAlarms(bridge))
    return {}


def test_an_l1_composite_and_its_child_both_paging_is_a_warning_naming_both(tmp_path: Path) -> None:
    double = _user_app(tmp_path, _l1_composites_over_paging_children)
    assert double.messages("ERROR") == []
    warnings = dict(double.messages("WARNING"))
    assert warnings.keys() == {"/User/Latency", "/User/Checkout", "/User/Payments", "/User/Legacy/QueueDepth"}
    for child, composite in (
        ("User/Latency", "User/ShopDown"),
        ("User/Checkout", "User/CheckoutDown"),
        ("User/Payments", "User/PaymentsDown"),
        ("User/Legacy/QueueDepth", "User/Legacy/OrdersDown"),
    ):
        text = warnings[f"/{child}"]
        assert f"alarm {child} pages" in text and f"composite alarm {composite} built on it" in text
        assert DOUBLE_PAGE_WARNING_ID in text


# --- Who hears the health alarms ---------------------------------------------------------------------


def _no_alarms(stack: Stack, bridge: PagerDutyBridge) -> dict[str, cloudwatch.AlarmBase]:
    return {}


def test_a_health_topic_nobody_subscribes_to_is_a_warning_saying_how_to_subscribe(tmp_path: Path) -> None:
    """By default the health alarms would publish to a topic no one reads: a broken bridge told nobody."""
    unheard = _user_app(tmp_path, _no_alarms, health_alarm_email=None)
    assert unheard.messages("ERROR") == []
    (warning,) = unheard.messages("WARNING")
    path, text = warning
    assert path == f"/{unheard.bridge.health_topic.node.path}"
    assert UNSUBSCRIBED_HEALTH_WARNING_ID in text
    assert "no subscriber" in text
    for remedy in ("health_alarm_email", "healthAlarmEmail", "bridge.health_topic.add_subscription"):
        assert remedy in text


def test_a_subscription_made_in_the_app_is_a_subscriber(tmp_path: Path) -> None:
    def subscribe(stack: Stack, bridge: PagerDutyBridge) -> dict[str, cloudwatch.AlarmBase]:
        bridge.health_topic.add_subscription(subscriptions.UrlSubscription("https://ops.example.com/alerts"))
        return {}

    heard = _user_app(tmp_path, subscribe, health_alarm_email=None)
    assert heard.messages("WARNING") == []
    resources = heard.template["Resources"].values()
    health_topic = {"Ref": heard.stack.get_logical_id(heard.bridge.health_topic.node.default_child)}  # type: ignore[arg-type]
    assert any(r["Type"] == "AWS::SNS::Subscription" and r["Properties"]["TopicArn"] == health_topic for r in resources)


def test_the_warning_can_be_acknowledged_for_a_subscription_made_elsewhere(tmp_path: Path) -> None:
    def acknowledge(stack: Stack, bridge: PagerDutyBridge) -> dict[str, cloudwatch.AlarmBase]:
        Annotations.of(bridge).acknowledge_warning(UNSUBSCRIBED_HEALTH_WARNING_ID, "Subscribed by the ops stack")
        return {}

    assert _user_app(tmp_path, acknowledge, health_alarm_email=None).messages("WARNING") == []


def test_a_routing_key_secret_of_the_same_app_reaches_the_function_with_its_grant(tmp_path: Path) -> None:
    """An ARN CloudFormation fills in at deploy (a secret the team's app makes) is a routing-key secret
    like any other: in the function's alias map and readable by its role."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "User", env=Environment(account=ACCOUNT, region=REGION))
    payments = secretsmanager.Secret(stack, "PaymentsKey")
    PagerDutyBridge(
        stack,
        "Pager",
        environment="prod",
        health_alarm_email=HEALTH_EMAIL,
        routing_key_secrets={"payments": payments.secret_arn},
    )
    template = app.synth().get_stack_by_name("User").template
    secret_ref = {"Ref": stack.get_logical_id(payments.node.default_child)}  # type: ignore[arg-type]
    functions = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    aliases = [
        f["Environment"]["Variables"][constants.ENV_ROUTING_KEY_SECRETS]
        for f in functions
        if constants.ENV_ROUTING_KEY_SECRETS in f.get("Environment", {}).get("Variables", {})
    ]
    assert aliases == [{"Fn::Join": ["", ['{"payments":"', secret_ref, '"}']]}]
    reads = [
        statement["Resource"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in statement["Action"]
    ]
    assert secret_ref in reads or any(isinstance(r, list) and secret_ref in r for r in reads)


def test_page_wires_an_l1_alarm_and_refuses_one_whose_actions_are_known_only_at_deploy() -> None:
    stack = _bare_stack()
    bridge = PagerDutyBridge(stack, "Pager", environment="prod", health_alarm_email=HEALTH_EMAIL)
    legacy = _l1_alarm(stack, "Legacy", alarm_actions=["arn:aws:sns:eu-west-1:123456789012:dba-mail"])
    assert bridge.page(legacy) is legacy
    topic = stack.resolve(bridge.topic.topic_arn)
    assert stack.resolve(legacy.alarm_actions) == ["arn:aws:sns:eu-west-1:123456789012:dba-mail", topic]
    assert stack.resolve(legacy.ok_actions) == [topic]
    listed = CfnParameter(stack, "OkTargets", type="CommaDelimitedList")
    tokened = _l1_alarm(stack, "Tokened", ok_actions=listed.value_as_list)
    with pytest.raises(ValueError, match="OKActions is a token known only at deploy"):
        bridge.page(tokened)
    assert stack.resolve(tokened.alarm_actions) is None, "not wired one way only"


def test_page_marks_an_alarm_that_cannot_page_through_the_bridge(tmp_path: Path) -> None:
    """An alarm in another region (CloudWatch reaches topics of its own region only: the deploy fails),
    or with more actions for a state than CloudWatch allows once the bridge's is added, is an error at
    synth; one with its actions disabled, which pages nobody, a warning."""
    app = App(outdir=str(tmp_path))
    home = Stack(app, "Home", env=Environment(account=ACCOUNT, region=REGION), cross_region_references=True)
    away = Stack(app, "Away", env=Environment(account=ACCOUNT, region="us-east-1"), cross_region_references=True)
    bridge = PagerDutyBridge(home, "Pager", environment="prod", health_alarm_email=HEALTH_EMAIL)
    silent = cloudwatch.Alarm(
        home, "Silent", metric=_metric("Errors"), threshold=1, evaluation_periods=1, actions_enabled=False
    )
    bridge.page(silent)
    bridge.page(_alarm(away, "Elsewhere"))
    crowded = [f"arn:aws:sns:{REGION}:{ACCOUNT}:team-{n}" for n in range(5)]
    bridge.page(_l1_alarm(home, "Crowded", alarm_actions=crowded, ok_actions=crowded[:1]))
    assembly = app.synth()

    def messages(stack: str, level: str) -> list[str]:
        artifact = assembly.get_stack_by_name(stack)
        return [str(m.entry.data) for m in artifact.messages if m.level.name == level]

    assert any("Home/Silent" in m and "actions disabled" in m for m in messages("Home", "WARNING"))
    assert any("Away/Elsewhere" in m and "us-east-1" in m and REGION in m for m in messages("Away", "ERROR"))
    (crowded_error,) = [m for m in messages("Home", "ERROR") if "Home/Crowded" in m]
    assert "6 AlarmActions" in crowded_error and "allows 5 per state" in crowded_error
