"""The ``pagerduty-bridge`` command: the parser, dispatch, and the one error path every command shares.

Each command group registers itself (``register``) and names its handler (``set_defaults(func=…)``).
No command prints a traceback unless ``--debug``: an error is one line on stderr naming what failed
and what to check. Exit codes: 0 ok, 1 a finding or a failed send, 2 usage, input, configuration or
AWS errors.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Final, TextIO

from pagerduty_bridge import constants as c
from pagerduty_bridge.cli import audit, aws, devtools, incidents, replay, rules, silence, status, table
from pagerduty_bridge.cli.common import EXIT_ERROR, CliError, CommandOutput, Streams, warn
from pagerduty_bridge.cli.failures import describe
from pagerduty_bridge.redaction import RedactingFilter

GROUPS: Final = (replay, incidents, status, rules, silence, aws, audit, table, devtools)


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
        "Nothing goes to PagerDuty and no incident changes without --send. "
        "Exit codes: 0 ok, 1 a finding or a failed send, 2 usage, input, configuration or AWS errors.",
    )
    parser.add_argument(
        "--version", action="version", version=f"pagerduty-bridge {version()}", help="print the version and exit"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show log lines and the traceback of an error (default: one line)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    streams = Streams(CommandOutput(out or sys.stdout), CommandOutput(err or sys.stderr))  # type: ignore[arg-type]
    return _output_checked(streams, _run(argv, streams))


def _output_checked(streams: Streams, code: int) -> int:
    """``code``, or 2 with one line on stderr when stdout could not be written (a full disk): the
    command finished its work (every page went), but what it printed is incomplete."""
    if not isinstance(streams.out, CommandOutput):  # pragma: no cover - main always wraps it
        return code
    streams.out.flush()
    if streams.out.lost is None:
        return code
    warn(
        streams,
        f"pagerduty-bridge: the output could not be written ({streams.out.lost.strerror or streams.out.lost}): "
        "the command finished its work, its output is incomplete",
    )
    return max(code, EXIT_ERROR)


def _run(argv: Sequence[str] | None, streams: Streams) -> int:
    parser = build_parser()
    try:
        # argparse prints help, --version and usage errors to sys.stdout and sys.stderr: here they go
        # where every other line of the command goes, through the same encoding and closed-pipe care.
        with redirect_stdout(streams.out), redirect_stderr(streams.err):
            args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    with _logging(streams, debug=args.debug):
        try:
            _refuse_undecodable(args)
            code: int = args.func(args, streams)
        except KeyboardInterrupt:
            return 130
        except CliError as exc:
            return _fail(args, streams, str(exc))
        except Exception as exc:  # noqa: BLE001 - every failure ends in one line; --debug shows the traceback
            line = describe(exc)
            if line is None:
                line = f"unexpected {type(exc).__name__}: {exc} (a bug: run again with --debug and report it)"
            return _fail(args, streams, line)
    return code


def _refuse_undecodable(args: argparse.Namespace) -> None:
    """Text arguments that are not UTF-8 (Latin-1 typed into a UTF-8 terminal) reach Python as lone
    surrogates, which no store, JSON document or HTTP request can hold: one line naming the value,
    before anything is read or written. Paths are the file system's bytes, not text: they pass."""
    for value in vars(args).values():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and _SURROGATE.search(text):
                raise CliError(f"{text!r} is not UTF-8 text: check the terminal's encoding (LANG, LC_ALL)")


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _fail(args: argparse.Namespace, streams: Streams, message: str) -> int:
    if getattr(args, "debug", False):
        warn(streams, *traceback.format_exc().rstrip().split("\n"))
    warn(streams, f"pagerduty-bridge: {message}")
    return EXIT_ERROR


@contextmanager
def _logging(streams: Streams, *, debug: bool) -> Iterator[None]:
    """Library log lines are for ``--debug``: the command reports what matters itself, in one line.

    Without a handler Python prints warnings (and tracebacks of ``logger.exception``) through its last
    resort; a ``NullHandler`` on the root stops that. ``--debug`` shows every line of the package and
    warnings of the libraries below it (botocore, urllib3), scrubbed of secrets."""
    root = logging.getLogger()
    quiet = logging.NullHandler()
    root.addHandler(quiet)
    shown: logging.Handler | None = None
    package = logging.getLogger(c.PACKAGE_NAME)
    level = package.level
    if debug:
        shown = logging.StreamHandler(streams.err)
        shown.addFilter(RedactingFilter())
        shown.setFormatter(logging.Formatter("pagerduty-bridge: %(levelname)s %(name)s: %(message)s"))
        root.addHandler(shown)
        package.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(quiet)
        if shown is not None:
            root.removeHandler(shown)
            package.setLevel(level)


def entrypoint() -> None:
    sys.exit(main())
