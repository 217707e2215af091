"""The construct in apps shaped the way teams shape them: stages (a CDK Pipelines app), nested stacks, props
read from files. An alarm the bridge cannot page is named at synth, never left unpaged without a word."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aspects, Stack, Stage
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk.cx_api import CloudAssembly, CloudFormationStackArtifact

from pagerduty_bridge_cdk import BridgeConfig, ConfigError, PageOnAlarms
from tests.infra.conftest import ACCOUNT, OTHER_ACCOUNT, REGION
from tests.infra.test_infra_adoption_attacks import HOME, _alarm, _bridge

# Every test here synthesizes apps of its own: one xdist worker bundles the asset once for all of them.
pytestmark = pytest.mark.xdist_group("cdk-adoption")


def _artifact(assembly: CloudAssembly, stack: Stack) -> CloudFormationStackArtifact:
    (artifact,) = [
        a for a in assembly.stacks_recursively if a.hierarchical_id == stack.artifact_id or a.id == stack.artifact_id
    ]
    return artifact


def _alarm_properties(assembly: CloudAssembly, stack: Stack) -> list[dict[str, Any]]:
    resources = _artifact(assembly, stack).template["Resources"].values()
    return [r["Properties"] for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"]


def _errors(assembly: CloudAssembly, stack: Stack) -> list[str]:
    return [str(m.entry.data) for m in _artifact(assembly, stack).messages if m.level.name == "ERROR"]


# --- Stages -------------------------------------------------------------------------------------------


def test_an_alarm_of_another_stage_is_an_error_naming_it_not_a_cross_stage_crash(tmp_path: Path) -> None:
    """A bridge in the app's monitoring stack and an alarm in a stage of the same account and region (a
    CDK Pipelines app): page() named the topic across the stage boundary and the whole synth died on
    CDK's "NoCrossStageDependency", naming stacks, not the alarm. Now the alarm is left unwired with an
    error saying why, as an alarm of another account or region is."""
    app = App(outdir=str(tmp_path))
    bridge = _bridge(Stack(app, "Monitoring", env=HOME))
    shop = Stack(Stage(app, "Beta", env=HOME), "Shop")
    bridge.page(_alarm(shop, "Checkout"))
    assembly = app.synth()

    (error,) = _errors(assembly, shop)
    assert "alarm Beta/Shop/Checkout is in stage Beta" in error and "Monitoring/Pager" in error
    assert [p.get("AlarmActions") for p in _alarm_properties(assembly, shop)] == [None]


def test_page_on_alarms_over_a_stage_without_a_bridge_stops_the_synth_naming_its_alarms(tmp_path: Path) -> None:
    """``Aspects.of(app).add(PageOnAlarms(bridge))`` promises every alarm of the app, but CDK applies an
    aspect within its own stage only: an alarm in a stage of the app (a CDK Pipelines app) synthesized
    with no actions, paging nobody, without a word. A stage synthesizes before the app's aspects run, so
    no annotation can reach it any more: the synth stops, naming the alarm. A stage with a bridge of its
    own pages its own alarms and is left to it; ``exclude`` leaves an alarm out knowingly."""
    app = App(outdir=str(tmp_path))
    bridge = _bridge(Stack(app, "Monitoring", env=HOME))
    beta = Stage(app, "Beta", env=HOME)
    _alarm(Stack(beta, "Shop"), "Checkout")
    _alarm(Stack(beta, "Shop2"), "Sandbox")
    Aspects.of(app).add(PageOnAlarms(bridge))
    with pytest.raises(RuntimeError, match=r"alarm Beta/Shop/Checkout is in stage Beta.*PageOnAlarms") as raised:
        app.synth()
    assert "Sandbox" in str(raised.value)

    app = App(outdir=str(tmp_path / "excluded"))
    bridge = _bridge(Stack(app, "Monitoring", env=HOME))
    _alarm(Stack(Stage(app, "Beta", env=HOME), "Shop"), "Checkout")
    Aspects.of(app).add(PageOnAlarms(bridge, exclude="Beta/*"))
    app.synth()

    app = App(outdir=str(tmp_path / "own-bridge"))
    bridge = _bridge(Stack(app, "Monitoring", env=HOME))
    beta = Stage(app, "Beta", env=HOME)
    shop = Stack(beta, "Shop")
    Aspects.of(shop).add(PageOnAlarms(_bridge(shop, environment="beta")))
    _alarm(shop, "Checkout")
    Aspects.of(app).add(PageOnAlarms(bridge))
    assembly = app.synth()
    (checkout,) = [p for p in _alarm_properties(assembly, shop) if p.get("MetricName") == "Checkout"]
    assert len(checkout["AlarmActions"]) == len(checkout["OKActions"]) == 1


def test_a_half_wired_alarm_of_another_stage_stops_the_synth_naming_it(tmp_path: Path) -> None:
    """A bridge on an existing topic (its ARN a literal, so alarms of any stage may name it) and an alarm
    of a stage wired to that topic on ALARM only: the check annotated the alarm after its stage had been
    synthesized, and the annotation went nowhere. The synth passed and the alarm's incidents would never
    resolve. Such an alarm is now a validation error of the synth, naming it."""
    app = App(outdir=str(tmp_path))
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:ops-alarms"
    _bridge(Stack(app, "Monitoring", env=HOME), alarm_topic_arn=topic_arn)
    shop = Stack(Stage(app, "Beta", env=HOME), "Shop")
    half = _alarm(shop, "Checkout")
    half.add_alarm_action(cloudwatch_actions.SnsAction(sns.Topic.from_topic_arn(shop, "Ops", topic_arn)))
    with pytest.raises(RuntimeError, match=r"alarm Beta/Shop/Checkout pages PagerDuty through Monitoring/Pager"):
        app.synth()


# --- Props read from files ----------------------------------------------------------------------------

SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:pagerduty/payments-AbCdEf"
ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/pagerduty-bridge-reconcile"


def test_blanks_around_the_aliases_and_arns_of_props_read_from_files_are_dropped() -> None:
    """``routing_key_secrets={"payments": Path("payments.arn").read_text()}`` carries the file's newline.
    The patterns' ``$`` matched before it, so the alias ``"payments\\n"`` and the ARN with its newline were
    taken as valid: rules routing to ``payments`` found no such alias and paged the default service, and
    the grant named a secret that does not exist. Blanks around them are dropped, as around every other
    prop's value, and a newline inside one is refused."""
    routed = BridgeConfig.from_props(environment="prod", routing_key_secrets={"payments\n": f"{SECRET}\n"})
    assert routed.routing_key_secrets == (("payments", SECRET),)
    reconciled = BridgeConfig.from_props(environment="prod", reconcile_role_arns={f"{OTHER_ACCOUNT}\n": f" {ROLE}\n"})
    assert reconciled.reconcile_role_arns == ((OTHER_ACCOUNT, ROLE),)
    with pytest.raises(ConfigError, match="routing_key_secrets: alias 'pay\\\\nments'"):
        BridgeConfig.from_props(environment="prod", routing_key_secrets={"pay\nments": SECRET})
    with pytest.raises(ConfigError, match="routing_key_secrets: the 'default' routing key is the integration key"):
        BridgeConfig.from_props(environment="prod", routing_key_secrets={"default\n": SECRET})
    with pytest.raises(ConfigError, match="routing_key_secrets='payments' is given twice"):
        BridgeConfig.from_props(environment="prod", routing_key_secrets={"payments": SECRET, "payments\n": SECRET})


# --- Secrets of another account -----------------------------------------------------------------------

KEY = f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def _secret(account: str, name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{account}:secret:pagerduty/{name}-AbCdEf"


@pytest.mark.parametrize(
    ("props", "refused"),
    [
        pytest.param(
            {"integration_key_secret_arn": _secret(OTHER_ACCOUNT, "key")}, "integration_key_secret_arn", id="key"
        ),
        pytest.param(
            {"webhooks": True, "webhook_secret_arn": _secret(OTHER_ACCOUNT, "webhook")},
            "webhook_secret_arn",
            id="webhook",
        ),
        pytest.param(
            {"routing_key_secrets": {"payments": _secret(OTHER_ACCOUNT, "payments")}},
            "routing_key_secrets",
            id="routing",
        ),
    ],
)
def test_a_secret_of_another_account_without_a_key_of_the_teams_is_refused(props: dict[str, Any], refused: str) -> None:
    """A central team's secret shared with the bridge's account: Secrets Manager decrypts a secret for
    another account only under a customer-managed key (``aws/secretsmanager`` cannot be shared), so
    without one the synth passed and every page failed at run time. Now it is refused, naming the prop."""
    stack = Stack(App(), "User", env=HOME)
    with pytest.raises(ConfigError, match=rf"^prop {refused}.* is in account {OTHER_ACCOUNT}, the bridge in {ACCOUNT}"):
        _bridge(stack, **props)
    assert stack.node.try_find_child("Pager") is None


def test_a_secret_of_another_account_under_a_key_of_the_teams_is_taken() -> None:
    """With the key that encrypts it, the secret of another account is readable (its policies allowing),
    and so are routing-key secrets under the same key; an env-agnostic stack's account is not known."""
    _bridge(
        Stack(App(), "User", env=HOME),
        integration_key_secret_arn=_secret(OTHER_ACCOUNT, "key"),
        integration_key_secret_kms_key_arn=KEY,
        routing_key_secrets={"payments": _secret(OTHER_ACCOUNT, "payments")},
    )
    _bridge(Stack(App(), "Anywhere"), integration_key_secret_arn=_secret(OTHER_ACCOUNT, "key"))
