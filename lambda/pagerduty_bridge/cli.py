"""The ``pagerduty-bridge`` command: replay events locally through the handler's own code path.

``main(argv) -> int`` is callable from tests; ``entrypoint()`` is the console script. No command
prints a traceback: errors are one line on stderr naming what is wrong, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import BridgeError, ConfigurationError, InvalidMessageError
from pagerduty_bridge.integration import DryRunSender, EventSender, Outcome, PagerDutyIntegration
from pagerduty_bridge.models import ServiceConfig
from pagerduty_bridge.processing import RecordResult, process_event
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store import IncidentStore

DEFAULT_STATE = Path(".pagerduty-bridge") / "state.db"
DRY_RUN_KEY = "dryrun0000000000000000000000key0"
"""A well-formed placeholder routing key for dry runs, which send nothing."""
EXIT_OK, EXIT_SEND_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class CliError(Exception):
    """A problem with the command line or the environment: printed as one line, exit 2."""


@dataclass
class Streams:
    out: TextIO
    err: TextIO


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pagerduty-bridge", description="CloudWatch alarms to PagerDuty incidents, tried locally."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = commands.add_parser(
        "replay",
        help="replay Lambda events through the handler's code path",
        description="Replay Lambda events (files, or folders of *.json in name order) through the handler's "
        "own code path. Dry run unless --send.",
    )
    replay.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    replay.add_argument("--json", action="store_true", help="one JSON object per line per notification")
    _add_delivery_options(replay)
    _add_store_options(replay)

    fake = commands.add_parser("fake-pagerduty", help="run a local stand-in for PagerDuty's Events API")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8787)
    fake.add_argument("--rate-limit", type=int, default=None, metavar="N", help="events per minute per key")
    return parser


def _add_delivery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--send", action="store_true", help="really send to PagerDuty (default: dry run)")
    parser.add_argument("--events-url", default=None, help=f"Events API URL (default: {c.DEFAULT_EVENTS_URL})")
    parser.add_argument(
        "--retry-budget", type=float, default=None, metavar="SECONDS", help="time to keep retrying (default 30)"
    )


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state", type=Path, default=None, help=f"SQLite state file (default {DEFAULT_STATE})")
    where.add_argument("--table", default=None, help="DynamoDB incident table instead of the embedded store")
    parser.add_argument("--endpoint-url", default=None, help="DynamoDB endpoint (with --table)")


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    streams = Streams(out or sys.stdout, err or sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        if args.command == "replay":
            return replay(args, streams)
        if args.command == "fake-pagerduty":
            from pagerduty_bridge.devtools.fake_pagerduty import serve_forever

            return serve_forever(args.host, args.port, rate_limit_per_minute=args.rate_limit, out=streams.out)
    except (CliError, BridgeError) as exc:
        print(f"pagerduty-bridge: {exc}", file=streams.err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")  # pragma: no cover - argparse rejects it first
    return EXIT_BAD_INPUT  # pragma: no cover


def entrypoint() -> None:
    sys.exit(main())


# --- wiring -------------------------------------------------------------------------------------------


def load_settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        events_url=getattr(args, "events_url", None),
        retry_budget_seconds=getattr(args, "retry_budget", None),
        table_name=getattr(args, "table", None),
    )


def open_store(args: argparse.Namespace, settings: Settings) -> IncidentStore:
    retention = timedelta(days=settings.resolved_retention_days)
    if args.table:
        import boto3
        from botocore.exceptions import BotoCoreError

        from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore

        try:
            client = boto3.client("dynamodb", endpoint_url=args.endpoint_url)
        except BotoCoreError as exc:
            raise CliError(f"cannot create a DynamoDB client: {exc}") from None
        return DynamoDBIncidentStore(client, args.table, retention=retention)
    from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

    return SQLiteIncidentStore(args.state or DEFAULT_STATE, retention=retention)


def build_integration(args: argparse.Namespace, settings: Settings, store: IncidentStore) -> PagerDutyIntegration:
    key = settings.integration_key
    sender: EventSender | None = None
    if not args.send:
        key = key or SecretStr(DRY_RUN_KEY)
        sender = DryRunSender()
    elif key is None:
        raise ConfigurationError(f"--send needs a routing key: set {c.ENV_INTEGRATION_KEY}")
    config = ServiceConfig(
        integration_key=key, service_name=settings.service_name, escalation_policy_id=settings.escalation_policy_id
    )
    return PagerDutyIntegration(config, settings.environment, store=store, settings=settings, sender=sender)


# --- replay -------------------------------------------------------------------------------------------


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; folders become their ``*.json`` files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.json") if p.is_file()))
        else:
            files.append(path)
    return files


def read_event(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidMessageError("no such file") from None
    except IsADirectoryError:
        raise InvalidMessageError("is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidMessageError(f"cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidMessageError(f"is not JSON ({exc})") from None


def replay(args: argparse.Namespace, streams: Streams) -> int:
    settings = load_settings(args)
    store = open_store(args, settings)
    integration = build_integration(args, settings, store)
    exit_code = EXIT_OK
    files = expand_paths(args.paths)
    if not files:
        raise CliError("no JSON files found in " + ", ".join(str(p) for p in args.paths))
    for path in files:
        try:
            result = process_event(read_event(path), integration)
        except InvalidMessageError as exc:
            print(f"pagerduty-bridge: {path}: {exc}", file=streams.err)
            exit_code = EXIT_BAD_INPUT
            continue
        for record in result.results:
            if record.outcome is None:
                print(f"pagerduty-bridge: {path}: {record.record}: {record.error}", file=streams.err)
                exit_code = EXIT_BAD_INPUT
                continue
            if record.error is not None:
                print(f"pagerduty-bridge: {path}: {record.record}: {record.error}", file=streams.err)
                exit_code = max(exit_code, EXIT_SEND_FAILED)
            if args.json:
                print(json.dumps(replay_line(path, record, record.outcome), ensure_ascii=False), file=streams.out)
            else:
                print(replay_block(path, record, record.outcome, send=args.send), file=streams.out)
    return exit_code


def replay_line(path: Path, record: RecordResult, outcome: Outcome) -> dict[str, Any]:
    line = {
        "input": str(path),
        "record": record.record,
        "alarm_name": outcome.alarm_name,
        "state": outcome.state,
        "action": outcome.action.value if outcome.action else "none",
        "reason": outcome.reason,
        "dedup_key": outcome.dedup_key,
        "event": outcome.body,
        "delivered": outcome.delivered,
    }
    if outcome.error is not None:
        line["error"] = str(outcome.error)
    return line


def replay_block(path: Path, record: RecordResult, outcome: Outcome, *, send: bool) -> str:
    action = outcome.action.value if outcome.action else "none"
    title = outcome.alarm_name or "(not an alarm)"
    lines = [f"── {path.name} {record.record}", f"   {title}  {outcome.state or '-'} → {action} ({outcome.reason})"]
    if outcome.dedup_key:
        lines.append(f"   dedup_key: {outcome.dedup_key}")
    if outcome.body is not None:
        if outcome.error is not None:
            status = f"FAILED: {outcome.error}"
        elif outcome.delivered:
            status = "delivered (202)"
        else:
            status = "dry run, not sent" if not send else "not sent"
        lines.append(f"   PagerDuty receives ({status}):")
        body = json.dumps(outcome.body, indent=2, ensure_ascii=False)
        lines.extend("     " + line for line in body.splitlines())
    return "\n".join(lines) + "\n"
