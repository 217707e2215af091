"""The checks every synth runs: cdk-nag with nothing unacknowledged, cfn-lint with no errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]

from pagerduty_bridge_cdk import UNSUBSCRIBED_HEALTH_WARNING_ID, nag
from pagerduty_bridge_cdk.queues import secure_queue
from tests.infra.conftest import ACCOUNT, REGION, Synthesized

MIN_REASON_LENGTH = 60
"""Long enough that a reason has to say something about this stack, not just 'not needed'."""


def test_cfn_lint_reports_no_errors(variant: Synthesized) -> None:
    template = variant.assembly_dir / f"{variant.stack.artifact_id}.template.json"
    matches = lint_file(template, config=ManualArgs(regions=[REGION]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_cdk_nag_has_no_unacknowledged_findings(variant: Synthesized) -> None:
    assert nag.unacknowledged_findings(variant.assembly_dir) == []


def test_every_acknowledgement_names_a_rule_and_says_why(variant: Synthesized) -> None:
    acknowledged = nag.acknowledgements(variant.app)
    for path, rules in acknowledged.items():
        for rule_id, reason in rules.items():
            assert rule_id.startswith((f"{nag.RULE_PACK}::{nag.RULE_PACK}-", "CloudFormation-Validate::")), (
                path,
                rule_id,
            )
            assert len(reason) >= MIN_REASON_LENGTH, (path, rule_id, reason)


def test_every_acknowledgement_matches_a_finding(variant: Synthesized) -> None:
    """An acknowledgement that suppresses nothing is stale, and would hide a future finding."""
    report = json.loads((variant.assembly_dir / nag.VALIDATION_REPORT).read_text(encoding="utf-8"))
    used = {
        (suppressed["acknowledgedAt"], suppressed["acknowledgedId"])
        for plugin in report["pluginReports"]
        for suppressed in plugin.get("suppressedViolations", [])
    }
    declared = {(path, rule_id) for path, rules in nag.acknowledgements(variant.app).items() for rule_id in rules}
    assert declared == used


def test_the_synth_reports_no_warning_and_no_error(variant: Synthesized) -> None:
    """Nothing for an operator to wade through: every CDK warning is fixed or acknowledged with a reason.

    (Info annotations, such as how a buffered function's timeout was sized, are allowed.)
    """
    artifact = variant.app.synth().get_stack_by_name(variant.stack.stack_name)
    noisy = [(m.level.name, m.id, m.entry.data) for m in artifact.messages if m.level.name in ("WARNING", "ERROR")]
    report = json.loads((variant.assembly_dir / nag.VALIDATION_REPORT).read_text(encoding="utf-8"))
    open_violations = [
        (plugin["pluginName"], violation.get("ruleName"))
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    if variant.bridge.config.health_alarm_email is None:
        # ... except the one warning that a deployment without healthAlarmEmail must give.
        (unheard,) = [entry for entry in noisy if UNSUBSCRIBED_HEALTH_WARNING_ID in str(entry[2])]
        assert unheard[:2] == ("WARNING", f"/{variant.bridge.health_topic.node.path}")
        noisy.remove(unheard)
        open_violations.remove(("Construct Annotations", f"Annotation::{UNSUBSCRIBED_HEALTH_WARNING_ID}"))
    assert noisy == []
    assert open_violations == []


def _careless_app(outdir: Path) -> tuple[App, Stack]:
    app = App(outdir=str(outdir))
    stack = Stack(app, "Careless", env=Environment(account=ACCOUNT, region=REGION))
    nag.add_checks(app)
    return app, stack


def test_an_unacknowledged_error_fails_the_synth(tmp_path: Path) -> None:
    """A plain queue (no SSL-only policy, no dead-letter queue): CDK itself refuses to synthesize."""
    app, stack = _careless_app(tmp_path)
    sqs.Queue(stack, "Plain")
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS4"):
        app.synth()
    findings = nag.unacknowledged_findings(tmp_path)
    assert any("AwsSolutions-SQS4" in line and "Careless/Plain" in line for line in findings)


def test_an_unacknowledged_warning_fails_the_check(tmp_path: Path) -> None:
    """Once anything is acknowledged, CDK recounts success from errors alone and lets warnings through.

    Here a table without point-in-time recovery (a warning) sits beside an acknowledged queue: the
    synth succeeds, and the app's own check, which ``python -m infra.app`` exits non-zero on, does not.
    """
    app, stack = _careless_app(tmp_path)
    queue = secure_queue(stack, "Acknowledged")
    nag.acknowledge(queue, "SQS3", "A queue acknowledged only so that CDK recounts the report's success.")
    dynamodb.Table(
        stack,
        "Unrecoverable",
        partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
    )
    findings = nag.unacknowledged_findings(app.synth().directory)
    assert any("AwsSolutions-DDB3 (warning)" in line and "Careless/Unrecoverable" in line for line in findings)
    assert not any("SQS3" in line for line in findings)


def test_a_missing_report_fails_the_check(tmp_path: Path) -> None:
    assert nag.unacknowledged_findings(tmp_path)
