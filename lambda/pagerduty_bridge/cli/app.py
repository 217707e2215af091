"""The ``pagerduty-bridge`` command: the parser, dispatch, and the one error path every command shares.

Each command group registers itself (``register``) and names its handler (``set_defaults(func=…)``).
No command prints a traceback unless ``--debug``: an error is one line on stderr naming what failed
and what to check. Exit codes: 0 ok, 1 a finding or a failed send, 2 usage, input, configuration or
AWS errors.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import Final, TextIO

from pagerduty_bridge.cli import audit, aws, devtools, incidents, replay, rules, silence, status
from pagerduty_bridge.cli.common import EXIT_ERROR, CliError, Streams, warn
from pagerduty_bridge.errors import BridgeError

GROUPS: Final = (replay, incidents, status, rules, silence, aws, audit, devtools)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("pagerduty-bridge")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pagerduty-bridge",
        description="CloudWatch alarms to PagerDuty incidents: try it locally, operate it in AWS. "
        "Exit codes: 0 ok, 1 a finding or a failed send, 2 usage, input, configuration or AWS errors.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pagerduty-bridge {version()}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    streams = Streams(out or sys.stdout, err or sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        code: int = args.func(args, streams)
    except KeyboardInterrupt:
        return 130
    except (CliError, BridgeError) as exc:
        return _fail(args, streams, str(exc))
    except Exception as exc:
        aws = _aws_failure(exc)
        if aws is None:
            raise
        return _fail(args, streams, aws)
    return code


def _fail(args: argparse.Namespace, streams: Streams, message: str) -> int:
    if getattr(args, "debug", False):
        warn(streams, traceback.format_exc().rstrip())
    warn(streams, f"pagerduty-bridge: {message}")
    return EXIT_ERROR


def _aws_failure(exc: Exception) -> str | None:
    """One line for a botocore failure (unreachable endpoint, no region, no credentials, a refusal)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is needed by every AWS command
        return None
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "an AWS call")
        return f"AWS refused {operation}: {error.get('Code', '?')}: {error.get('Message', exc)}"
    if isinstance(exc, BotoCoreError):
        return f"AWS call failed: {exc} (check the region, credentials and --endpoint-url / AWS_ENDPOINT_URL)"
    return None


def entrypoint() -> None:
    sys.exit(main())
