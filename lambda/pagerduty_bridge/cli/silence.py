"""``silence add|list|expire``: planned maintenance, on the embedded store or the DynamoDB table.

Silences are written directly (they send nothing to PagerDuty); the Lambda sees a new one within a
few seconds, no deploy needed.
"""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime
from typing import Any

from pagerduty_bridge.cli.common import (
    EXIT_OK,
    CliError,
    Streams,
    add_json,
    add_store_options,
    add_wide,
    json_line,
    load_settings,
    open_store,
    parse_pairs,
    print_table,
    say,
)
from pagerduty_bridge.operations import parse_duration
from pagerduty_bridge.silences import FIELDS, expired, new_silence
from pagerduty_bridge.timeutil import parse_time, shifted


def register(commands: Any) -> None:
    silence = commands.add_parser("silence", help="silence matching alarms for a while (planned maintenance)")
    actions = silence.add_subparsers(dest="silence_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a silence; prints its id")
    add.add_argument(
        "--match",
        action="append",
        required=True,
        metavar="FIELD=GLOB",
        help=f"what to silence, repeatable (each field once), all must hold (required): {', '.join(FIELDS)}, dimension.NAME, tag.KEY",
    )
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long, e.g. 90s, 90m, 2h, 1d (this or --until)"
    )
    until.add_argument(
        "--until", metavar="TIME", help="until when, ISO 8601, e.g. 2026-12-01T06:00:00Z (this or --for)"
    )
    add.add_argument("--starts", metavar="TIME", default=None, help="when it starts (ISO 8601; default: now)")
    add.add_argument("--comment", required=True, help="why, shown with the silence (required)")
    add.add_argument("--created-by", default=None, metavar="NAME", help="who (default: your login name)")
    add_json(add, '{"id": …}')
    add_store_options(add, creates=True)
    add.set_defaults(func=add_silence)

    listing = actions.add_parser("list", help="active and coming silences (--all: ended ones too)")
    listing.add_argument(
        "--all", action="store_true", help="ended and expired silences too (default: active and coming ones)"
    )
    add_wide(listing)
    add_json(listing, "an array of silences")
    add_store_options(listing)
    listing.set_defaults(func=list_silences)

    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", help="the silence's id (silence list shows it)")
    add_json(expire, "the expired silence")
    add_store_options(expire)
    expire.set_defaults(func=expire_silence)


def _time(value: str, option: str) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise CliError(f"{option} {value!r}: not an ISO 8601 time")
    return parsed


def add_silence(args: argparse.Namespace, streams: Streams) -> int:
    store = open_store(args, load_settings(args))
    now = datetime.now(UTC)
    starts = _time(args.starts, "--starts") if args.starts else now
    try:
        duration = parse_duration(args.duration) if args.duration else None
    except ValueError as exc:
        raise CliError(f"--for: {exc}") from None
    try:
        ends = shifted(starts, duration) if duration is not None else _time(args.until, "--until")
        silence = new_silence(
            _matchers(args.match),
            starts_at=starts,
            ends_at=ends,
            comment=args.comment,
            created_by=args.created_by or _login(),
            now=now,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store.put_silence(silence)
    if args.json:
        print(json_line({"id": silence.id}), file=streams.out)
    else:
        say(streams, f"{silence.id}  silences {_describe(silence.matchers)} until {silence.ends_at.isoformat()}")
    return EXIT_OK


def _matchers(values: list[str]) -> dict[str, str]:
    """The ``--match`` pairs, none with an empty glob. An absent field is the empty string (as in
    Alertmanager), so ``--match "dimension.DBInstanceIdentifier=$DB"`` with the variable unset would
    silence every alarm without that dimension, an EC2 alarm during a database's maintenance."""
    matchers = parse_pairs(values, "--match")
    for name, pattern in matchers.items():
        if not pattern.strip():
            raise CliError(
                f"--match {name}={pattern}: an empty glob (an unset variable?) matches every alarm without "
                f"{name}: give the value to match"
            )
    return matchers


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _describe(matchers: dict[str, str]) -> str:
    return ", ".join(f"{name}={pattern}" for name, pattern in matchers.items())


def list_silences(args: argparse.Namespace, streams: Streams) -> int:
    store = open_store(args, load_settings(args))
    now = datetime.now(UTC)
    silences = [s for s in store.list_silences() if args.all or s.state(now) != "ended"]
    if args.json:
        print(json_line([s.as_dict() for s in silences]), file=streams.out)
        return EXIT_OK
    rows = [
        {
            "id": s.id,
            "state": s.state(now),
            "matchers": _describe(s.matchers),
            "ends_at": s.ends_at.isoformat(timespec="seconds"),
            "created_by": s.created_by,
            "comment": s.comment,
        }
        for s in silences
    ]
    print_table(rows, ("id", "state", "matchers", "ends_at", "created_by", "comment"), streams, wide=args.wide)
    return EXIT_OK


def expire_silence(args: argparse.Namespace, streams: Streams) -> int:
    store = open_store(args, load_settings(args))
    found = next((s for s in store.list_silences() if s.id == args.id), None)
    if found is None:
        raise CliError(f"no silence {args.id!r} (silence list --all shows them)")
    ended = expired(found, datetime.now(UTC))
    store.put_silence(ended)
    if args.json:
        print(json_line(ended.as_dict()), file=streams.out)
    else:
        say(streams, f"expired {ended.id}")
    return EXIT_OK
