"""cdk-nag wiring: the AWS Solutions rule pack on every synth, and acknowledgements that say why.

cdk-nag 3 is a CDK policy-validation plugin: its findings land in the cloud assembly's
``validation-report.json``, and CDK itself only fails the synth for findings of *error* severity.
:func:`unacknowledged_findings` reads that report so the app can fail on *any* finding, warnings
included: a warning nobody has looked at is exactly what a rule pack exists to surface.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from aws_cdk import Acknowledgment, App, Validations
from constructs import IConstruct

RULE_PACK: Final = "AwsSolutions"
VALIDATION_REPORT: Final = "validation-report.json"


def add_checks(app: App) -> None:
    """Run the AWS Solutions rule pack over every stack of ``app`` at synth time.

    Only the standalone app (and tests) run the rule pack, so cdk-nag is imported here, not at import.
    """
    from cdk_nag import AwsSolutionsChecks

    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str, *, finding: str | None = None) -> None:
    """Accept rule ``AwsSolutions-<rule>`` on ``scope`` and its children, for ``reason``.

    ``finding`` narrows the acknowledgement to one finding of a rule that reports several (IAM5 reports
    each wildcard resource separately), so a new wildcard elsewhere still fails the synth.
    """
    rule_id = f"{RULE_PACK}::{RULE_PACK}-{rule}" + (f"[{finding}]" if finding else "")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_validation(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Accept a finding of another validation (``CloudFormation-Validate::W3694`` …) on ``scope``."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledgements(root: IConstruct) -> dict[str, dict[str, str]]:
    """Every acknowledgement under ``root``: construct path → {rule id: reason}."""
    found: dict[str, dict[str, str]] = {}
    for construct in root.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY and isinstance(entry.data, dict):
                found.setdefault(construct.node.path, {}).update(entry.data)
    return found


def unacknowledged_findings(assembly_dir: str | Path) -> list[str]:
    """One line per finding of the rule pack that no acknowledgement covers, from the synth report.

    CDK writes the report whenever a validation plugin is registered, so a missing report means the
    rule pack never ran, which is itself a failure.
    """
    report_path = Path(assembly_dir) / VALIDATION_REPORT
    if not report_path.exists():
        return [f"no {VALIDATION_REPORT} in {assembly_dir}: the {RULE_PACK} checks did not run"]
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    lines: list[str] = []
    # A plugin with nothing to report (no finding, nothing acknowledged) is left out of the report.
    for plugin in report.get("pluginReports", []):
        if plugin.get("pluginName") != RULE_PACK:
            continue
        # Acknowledged findings are listed apart, under "suppressedViolations".
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                lines.append(
                    f"{violation.get('ruleName')} ({violation.get('severity')}) at "
                    f"{construct.get('constructPath', '?')}: {violation.get('description', '')}"
                )
    return lines
