"""The standalone CDK app: reads context, builds the stack, synthesizes, checks it.

``cdk.json`` runs it (through ``infra/app.py``); from an installed wheel it runs as
``cdk --app "python -m pagerduty_bridge_cdk.app"``. Either way the process exits non-zero when cdk-nag
reports any finding that no acknowledgement covers (1) or a context parameter is malformed (2).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Environment

from pagerduty_bridge_cdk.config import BridgeConfig, ConfigError, check_context_keys
from pagerduty_bridge_cdk.nag import add_checks, unacknowledged_findings
from pagerduty_bridge_cdk.stack import PagerDutyBridgeStack


def build_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> tuple[App, PagerDutyBridgeStack]:
    """The app with its one stack and the rule pack; ``context`` and ``outdir`` are for tests."""
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    check_context_keys(app.node.get_all_context())
    config = BridgeConfig.from_context(app.node.try_get_context)
    stack = PagerDutyBridgeStack(
        app,
        config.stack_name,
        config=config,
        env=Environment(
            account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    add_checks(app)
    return app, stack


def main() -> int:
    """Synthesize; report unacknowledged rule-pack findings and fail on them."""
    try:
        app, _ = build_app()
    except ConfigError as exc:
        sys.stderr.write(f"pagerduty-bridge: {exc}\n")
        return 2
    assembly = app.synth()
    findings = unacknowledged_findings(assembly.directory)
    if findings:
        sys.stderr.write(f"pagerduty-bridge: {len(findings)} unacknowledged cdk-nag finding(s):\n")
        sys.stderr.writelines(f"  {line}\n" for line in findings)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
