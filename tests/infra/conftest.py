"""Synthesized stacks, built once per test session, and helpers to read their templates.

Four variants of the standalone app cover every option between them: ``direct`` is the default
deployment (created topic and secret, SNS → Lambda, arm64, reconciliation every 15 minutes, no alert
rules, no webhooks, no change events, no SnapStart); ``buffered`` flips the deployment options (SQS
buffer with batches of 50, existing topic and secret given by partial ARN with its own KMS key, e-mail
subscription, x86_64, Python 3.14, no reserved concurrency, reconciliation off, alert rules from a YAML
file, SnapStart, webhooks with an existing signing secret); ``routed`` is the default deployment with inline
alert rules, routing-key secrets, reconciliation every 5 minutes and change events for every stack;
``featured`` is the default deployment with SnapStart, webhooks (created signing secret), change events
for two stack-name globs and cross-account reconciliation roles.

Under ``--dist loadgroup`` each test joins the xdist group of the variant it uses, so every variant is
synthesized once, on one worker, and different variants synthesize in parallel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from pagerduty_bridge_cdk import PagerDutyBridge, PagerDutyBridgeStack
from pagerduty_bridge_cdk.app import build_app

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "eu-west-1"
EXISTING_TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:existing-alarms"
EXISTING_SECRET_PARTIAL_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:pagerduty/integration-key"
EXISTING_SECRET_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
HEALTH_EMAIL = "oncall@example.com"
RULES_FILE = REPO_ROOT / "tests" / "fixtures" / "rules" / "example.yaml"
PAYMENTS_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:pagerduty/payments-AbCdEf"
"""A complete ARN: the name and Secrets Manager's six random characters."""
WEB_SECRET_PARTIAL_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:pagerduty/web"
WEBHOOK_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:pagerduty/webhook-XyZ123"
OTHER_ACCOUNT = "210987654321"
THIRD_ACCOUNT = "111122223333"
RECONCILE_ROLES = {
    OTHER_ACCOUNT: f"arn:aws:iam::{OTHER_ACCOUNT}:role/pagerduty-bridge-reconcile",
    THIRD_ACCOUNT: f"arn:aws:iam::{THIRD_ACCOUNT}:role/ops/pagerduty-bridge-reconcile",
}
CHANGE_EVENT_GLOBS = ("shop-*", "payments")
BUFFERED_BATCH_SIZE = 50
INLINE_RULES: dict[str, Any] = {
    "rules": [
        {"name": "payments", "match": {"alarm_name": "payments-*"}, "severity": "critical", "routing_key": "payments"},
        {"name": "web", "match": {"namespace": "AWS/EC2"}, "severity": "warning", "routing_key": "web"},
    ]
}

BUFFERED_CONTEXT: dict[str, str] = {
    "environment": "staging",
    "buffered": "true",
    "architecture": "x86_64",
    "pythonVersion": "3.14",
    "alarmTopicArn": EXISTING_TOPIC_ARN,
    "integrationKeySecretArn": EXISTING_SECRET_PARTIAL_ARN,
    "integrationKeySecretKmsKeyArn": EXISTING_SECRET_KEY_ARN,
    "healthAlarmEmail": HEALTH_EMAIL,
    "reservedConcurrency": "none",
    "reconcileMinutes": "0",
    "alertRulesFile": str(RULES_FILE),
    "batchSize": str(BUFFERED_BATCH_SIZE),
    "snapStart": "true",
    "webhooks": "true",
    "webhookSecretArn": WEBHOOK_SECRET_ARN,
}

ROUTED_CONTEXT: dict[str, str] = {
    "environment": "routed",
    "reconcileMinutes": "5",
    "alertRules": json.dumps(INLINE_RULES),
    "routingKeySecrets": json.dumps({"payments": PAYMENTS_SECRET_ARN, "web": WEB_SECRET_PARTIAL_ARN}),
    "changeEvents": "true",
}

FEATURED_CONTEXT: dict[str, str] = {
    "environment": "featured",
    "snapStart": "true",
    "webhooks": "true",
    "changeEvents": ",".join(CHANGE_EVENT_GLOBS),
    "reconcileRoleArns": json.dumps(RECONCILE_ROLES),
}

VARIANTS: Final = ("direct", "buffered", "routed", "featured")


def cdk_json_context() -> dict[str, Any]:
    """The context ``cdk.json`` gives the CLI, so the tests synthesize with the same feature flags."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return context


@dataclass
class Synthesized:
    """One synthesized stack: the construct tree, its template, and the cloud assembly on disk."""

    name: str
    """The variant: ``direct``, ``buffered``, ``routed`` or ``featured``."""
    app: App
    stack: PagerDutyBridgeStack
    template: dict[str, Any]
    assembly_dir: Path
    _assertions: Template | None = field(default=None, repr=False)

    @property
    def assertions(self) -> Template:
        """The template as ``aws_cdk.assertions.Template``, for its matchers."""
        if self._assertions is None:
            self._assertions = Template.from_json(self.template)
        return self._assertions

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id → resource, for every resource of ``resource_type``."""
        return {lid: res for lid, res in self.resources.items() if res["Type"] == resource_type}

    def one(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        """The single resource of ``resource_type`` (fails if there is not exactly one)."""
        found = self.of_type(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    def logical_id(self, construct: Any) -> str:
        """The logical id CDK gave ``construct``'s CloudFormation resource."""
        child = construct.node.default_child if construct.node.default_child is not None else construct
        logical: str = self.stack.get_logical_id(child)
        return logical

    @property
    def bridge(self) -> PagerDutyBridge:
        """The stack's one construct."""
        return self.stack.bridge

    @property
    def function(self) -> dict[str, Any]:
        return self.resources[self.logical_id(self.bridge.function)]

    @property
    def asset_dir(self) -> Path:
        """The function's bundled code, as the asset CDK staged for upload."""
        s3_key: str = self.function["Properties"]["Code"]["S3Key"]
        return self.assembly_dir / f"asset.{s3_key.removesuffix('.zip')}"


def synthesize(name: str, outdir: Path, **parameters: str) -> Synthesized:
    """Build and synthesize the app as ``make synth`` does, with ``parameters`` as extra context."""
    context = {**cdk_json_context(), "account": ACCOUNT, "region": REGION, **parameters}
    app, stack = build_app(context, outdir=str(outdir))
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    return Synthesized(name=name, app=app, stack=stack, template=template, assembly_dir=Path(assembly.directory))


@pytest.fixture(scope="session")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """The default deployment."""
    yield synthesize("direct", tmp_path_factory.mktemp("cdk-direct"))


@pytest.fixture(scope="session")
def buffered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """Every non-default option at once."""
    yield synthesize("buffered", tmp_path_factory.mktemp("cdk-buffered"), **BUFFERED_CONTEXT)


@pytest.fixture(scope="session")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """The default deployment with alert rules, routing-key secrets and a 5-minute reconciliation."""
    yield synthesize("routed", tmp_path_factory.mktemp("cdk-routed"), **ROUTED_CONTEXT)


@pytest.fixture(scope="session")
def featured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """The default deployment with SnapStart, webhooks, change events and cross-account reconciliation."""
    yield synthesize("featured", tmp_path_factory.mktemp("cdk-featured"), **FEATURED_CONTEXT)


@pytest.fixture(scope="session", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> Synthesized:
    """Each synthesized variant in turn, for properties all must have."""
    synthesized: Synthesized = request.getfixturevalue(request.param)
    return synthesized


def _variants_used(item: pytest.Item) -> set[str]:
    """The variants a test synthesizes: its fixtures, or its ``variant`` parameter."""
    used = set(getattr(item, "fixturenames", ())) & set(VARIANTS)
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("variant") in VARIANTS:
        used.add(callspec.params["variant"])
    return used


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put each test in the xdist group of the variant it uses (or of its own ``xdist_group`` mark, for
    tests that synthesize apps of their own); tests that synthesize nothing run anywhere.

    pytest-xdist 3.8 announces a test's group by appending ``@group`` to its node id, which pytest 9.2
    no longer lets it change (pytest-dev/pytest-xdist#1386): the mark alone would be ignored and every
    worker would synthesize every variant. Until xdist carries the fix, the suffix is set here as xdist
    would set it.
    """
    for item in items:
        marked = {str(mark.args[0]) for mark in item.iter_markers("xdist_group") if mark.args}
        variants = {f"cdk-{name}" for name in _variants_used(item)}
        groups = sorted(marked | variants)
        if not groups:
            continue
        for group in sorted(variants - marked):
            item.add_marker(pytest.mark.xdist_group(group))
        if getattr(config.option, "loadgroup", False):
            _announce_group(item, "_".join(groups))


def _announce_group(item: pytest.Item, group: str) -> None:
    """Give ``item`` the ``nodeid@group`` id that ``--dist loadgroup`` schedules by (once only)."""
    if item.nodeid.endswith(f"@{group}"):
        return
    grouped = f"{item.nodeid}@{group}"
    if hasattr(item, "_id"):  # pytest >= 9.2: a structured id, parsed from the string form
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(grouped)
    else:
        item._nodeid = grouped


def names_target(synthesized: Synthesized, value: Any) -> bool:
    """Whether ``value`` (a trigger's function name or ARN) is what triggers must invoke: the main
    function's live alias with SnapStart (its ARN, or the function name qualified by ``:live``), the
    function itself otherwise. Never both: with SnapStart, $LATEST has no snapshot."""
    bridge = synthesized.bridge.bridge
    text = json.dumps(value)
    function_id = synthesized.logical_id(bridge.function)
    if bridge.target is bridge.function:
        return ref(value) == function_id and "Alias" not in text
    alias_id = synthesized.logical_id(bridge.target)
    return json.dumps({"Ref": alias_id}) in text and (ref(value) == alias_id or text.endswith(':live"]]}'))


def ref(value: Any) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` points at, or None for anything else."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def as_list(value: Any) -> list[Any]:
    """IAM lets a single action, resource or statement stand without a list."""
    return value if isinstance(value, list) else [value]
