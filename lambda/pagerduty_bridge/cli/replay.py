"""``replay``: Lambda events through the handler's own code path, printing what PagerDuty receives.

A dry run (no ``--send``) plans on a scratch copy of the state: the files replayed together see each
other's decisions, and the store is untouched afterwards (``--record`` keeps the simulated state on
purpose). ``--json`` prints JSON lines, one per notification.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pagerduty_bridge.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_SEND_FAILED,
    CliError,
    Streams,
    add_delivery_options,
    add_json,
    add_store_options,
    given_path,
    json_line,
    readable_json,
    say,
    warn,
    wire,
)
from pagerduty_bridge.cli.failures import aws_cause
from pagerduty_bridge.delivery import Outcome
from pagerduty_bridge.errors import (
    ConcurrentUpdateError,
    ConfigurationError,
    InvalidMessageError,
    RoutingKeyError,
    StoreError,
    VersionConflictError,
)
from pagerduty_bridge.processing import RecordResult, process_event
from pagerduty_bridge.safejson import loads
from pagerduty_bridge.store.overlay import OverlayStore


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "replay",
        help="replay Lambda events through the handler's code path",
        description="Replay Lambda events (files, or folders of *.json in name order) through the handler's "
        "own code path, printing what PagerDuty receives. A dry run unless --send: nothing is sent and no "
        "store changes (--record keeps the simulated state on purpose). Exit 0 all handled, 1 a send failed, "
        "2 an input could not be read or the store failed.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", type=given_path, help="event files or folders of them")
    parser.add_argument(
        "--samples",
        action="store_true",
        help="replay the samples that ship with the package, events/ (default: only the PATHs given)",
    )
    parser.add_argument(
        "--record", action="store_true", help="keep a dry run's simulated state in the store (default: forget it)"
    )
    add_json(parser, "JSON lines, one object per notification")
    add_delivery_options(parser)
    add_store_options(parser, creates=True)
    parser.set_defaults(func=replay)


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
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark (Windows editors write one) is no text
    except FileNotFoundError:
        raise InvalidMessageError("no such file") from None
    except IsADirectoryError:
        raise InvalidMessageError("is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidMessageError(f"cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        return loads(text)
    except ValueError as exc:
        raise InvalidMessageError(f"is not JSON ({exc})") from None


def sample_paths() -> list[Path]:
    """The samples that ship with the package (the repository's ``events/`` when run from it)."""
    from pagerduty_bridge import sample_alarms

    return sample_alarms.sample_files()


def replay(args: argparse.Namespace, streams: Streams) -> int:
    wired = wire(args)
    files = expand_paths(args.paths) + (sample_paths() if args.samples else [])
    if not files:
        raise CliError("no JSON files found in " + (", ".join(str(p) for p in args.paths) or "(no paths given)"))
    exit_code = EXIT_OK
    for path in files:
        try:
            result = process_event(read_event(path), wired.notifications)
        except InvalidMessageError as exc:
            warn(streams, f"pagerduty-bridge: {path}: {exc}")
            exit_code = EXIT_BAD_INPUT
            continue
        for record in result.results:
            exit_code = max(exit_code, _show(args, streams, path, record))
    if args.record and isinstance(wired.store, OverlayStore):
        wired.store.record()
    return exit_code


def _show(args: argparse.Namespace, streams: Streams, path: Path, record: RecordResult) -> int:
    if stops_the_run(record.error):
        # Every further record would fail the same way: one line (naming what to check), exit 2.
        assert record.error is not None
        raise record.error
    if isinstance(record.error, InvalidMessageError):
        warn(streams, f"pagerduty-bridge: {path}: {record.record}: {record.error}")
        return EXIT_BAD_INPUT
    code = EXIT_OK
    outcome = record.outcome or Outcome(None, "failed", None, error=record.error)
    if record.error is not None:
        warn(streams, f"pagerduty-bridge: {path}: {record.record}: {record.error}")
        code = EXIT_SEND_FAILED
    if args.json:
        print(json_line(replay_line(path, record, outcome)), file=streams.out)
    else:
        say(streams, *replay_block(path, record, outcome, send=args.send))
    return code


def stops_the_run(error: BaseException | None) -> bool:
    """A failure no further record can do better than: the store itself (not a lost race with another
    writer), the configuration, or AWS refusing a routing key. An alias with no key configured fails
    only the pages routed to it (a failed send, exit 1), as in the Lambda."""
    if isinstance(error, RoutingKeyError):
        return aws_cause(error) is not None
    if isinstance(error, ConfigurationError):
        return True
    return isinstance(error, StoreError) and not isinstance(error, (VersionConflictError, ConcurrentUpdateError))


def replay_line(path: Path | str, record: RecordResult | str, outcome: Outcome) -> dict[str, Any]:
    line = {
        "input": str(path),
        "record": record if isinstance(record, str) else record.record,
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


def replay_block(path: Path, record: RecordResult, outcome: Outcome, *, send: bool) -> list[str]:
    """What one notification did, as lines for ``say`` (which escapes any line break a value holds),
    ending in a blank line."""
    action = outcome.action.value if outcome.action else "none"
    title = outcome.alarm_name or "(not an alarm)"
    lines = [f"── {path.name} {record.record}", f"   {title}  {outcome.state or '-'} → {action} ({outcome.reason})"]
    if outcome.dedup_key:
        lines.append(f"   dedup_key: {outcome.dedup_key}")
    lines.extend(body_lines(outcome, send=send))
    return [*lines, ""]


def body_lines(outcome: Outcome, *, send: bool) -> list[str]:
    lines: list[str] = []
    if outcome.body is not None:
        if outcome.error is not None:
            status = f"FAILED: {outcome.error}"
        elif outcome.delivered:
            status = "delivered (202)"
        else:
            status = "dry run, not sent" if not send else "not sent"
        lines.append(f"   PagerDuty receives ({status}):")
        lines.extend("     " + line for line in readable_json(outcome.body))
    return lines
