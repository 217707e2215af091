"""What every command shares: options, wiring (settings, store, keys, sender), output, one error path.

Exit codes, for every command: 0 all good; 1 a finding or a failed send (the command did its job and
reports trouble); 2 usage, input, configuration or AWS errors (the command could not do its job).
Errors are one line on stderr naming what failed and what to check; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from pagerduty_bridge import constants as c
from pagerduty_bridge.delivery import Delivery, DryRunSender, EventSender
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.events_api import EventsClient
from pagerduty_bridge.keys import KeySource, ParameterFetcher, RoutingKeys, StaticKeys
from pagerduty_bridge.notifications import Notifications
from pagerduty_bridge.redaction import REDACTOR
from pagerduty_bridge.rules import load_rules
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.silences import SilenceCache
from pagerduty_bridge.store import IncidentStore
from pagerduty_bridge.store.overlay import OverlayStore
from pagerduty_bridge.text import printable

DEFAULT_STATE: Final = Path(".pagerduty-bridge") / "state.db"
DRY_RUN_KEY: Final = "dryrun0000000000000000000000key0"
"""A well-formed placeholder routing key for dry runs, which send nothing."""
EXIT_OK, EXIT_FINDING, EXIT_ERROR = 0, 1, 2
EXIT_SEND_FAILED, EXIT_BAD_INPUT = EXIT_FINDING, EXIT_ERROR

Handler = Callable[[argparse.Namespace, "Streams"], int]


class CliError(Exception):
    """A problem with the command line, the input or the environment: printed as one line, exit 2."""


@dataclass
class Streams:
    out: TextIO
    err: TextIO


def _escaped(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: what the encoding cannot hold, as JSON's ``\\uXXXX`` escapes (a UTF-16
    surrogate pair beyond U+FFFF): JSON output stays the same JSON, human output readable."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    escapes = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            escapes.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            escapes.append(f"\\u{code:04x}")
    return "".join(escapes), error.end


ESCAPE_UNENCODABLE: Final = "pagerduty-bridge-json-escape"
codecs.register_error(ESCAPE_UNENCODABLE, _escaped)


class CommandOutput:
    """A command's stdout or stderr, which printing cannot fail.

    Text the stream's encoding cannot hold (a terminal under ``LANG=C``, a Latin-1 console, a file
    name that is not UTF-8) is written with JSON's ``\\uXXXX`` escapes instead of ending the command.
    Once the reader is gone (``… | head -1`` has read its line and closed the pipe) the rest of the
    output is dropped and the command finishes its work: a ``--send`` stopped half way, with pages
    left unsent after the first line printed, is worse than output nobody reads. The stream's file
    descriptor is pointed at the null device, so the interpreter's last flush at exit fails neither.
    A stream that cannot be written at all (a full disk, an I/O error) is dropped the same way, the
    work finished, and ``lost`` says why (``main`` reports it in one line, exit 2); a stream that
    was closed before the command started (``>&-``: Python's ``sys.stdout`` is ``None``) has no reader."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.reader_gone = stream is None
        self.lost: OSError | None = None

    def write(self, text: str) -> int:
        if self._stream is not None and not self.reader_gone:
            try:
                try:
                    self._stream.write(text)
                except UnicodeEncodeError:
                    encoding = getattr(self._stream, "encoding", None) or "ascii"
                    self._stream.write(text.encode(encoding, ESCAPE_UNENCODABLE).decode(encoding))
            except OSError as exc:
                self._drop_the_rest(exc)
        return len(text)

    def flush(self) -> None:
        if self._stream is not None and not self.reader_gone:
            try:
                self._stream.flush()
            except OSError as exc:
                self._drop_the_rest(exc)

    def _drop_the_rest(self, error: OSError) -> None:
        self.reader_gone = True
        if not isinstance(error, BrokenPipeError):
            self.lost = error
        if self._stream is None:
            return
        try:
            descriptor = self._stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream: nothing flushes it at exit
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, descriptor)
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# --- options ------------------------------------------------------------------------------------------


def whole_number(minimum: int, below: str) -> Callable[[str], int]:
    """An argparse type: a whole number of ``minimum`` or more; ``below`` says why less is refused."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} {below}")
        return value

    return parse


def given_path(text: str) -> Path:
    """An argparse type: a path, never empty. ``Path("")`` is ``.``: ``replay --send "$EVENT"`` with the
    variable unset would replay, and page, every event file of the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset variable?): give a file or folder")
    return Path(text)


TOPIC_ARN: Final = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")


def checked_topic_arn(value: str) -> str:
    """``value`` when it is an SNS topic ARN; else a ``CliError`` naming ``--topic-arn`` (a topic's name
    given instead of its ARN, an empty variable)."""
    if not TOPIC_ARN.match(value):
        raise CliError(f"--topic-arn {value!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    return value


def table_name(text: str) -> str:
    """An argparse type: a table's name, never empty. ``--table "$TABLE"`` with the variable unset
    would otherwise fall back to the local state file: a silence meant for the Lambda's table, or a
    redrive's pages, recorded where the Lambda never reads them."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty table name (an unset variable?): give the table's name")
    return text


def add_json(parser: argparse.ArgumentParser, what: str = "one JSON document") -> None:
    parser.add_argument(
        "--json", action="store_true", help=f"machine-readable output: {what} (default: text for people)"
    )


def add_wide(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wide", action="store_true", help="full values in the table (default: cells cut at 60 characters)"
    )


def add_delivery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--send", action="store_true", help="really send to PagerDuty and change the store (default: a dry run)"
    )
    parser.add_argument(
        "--events-url", default=None, metavar="URL", help=f"Events API URL (default: {c.DEFAULT_EVENTS_URL})"
    )
    parser.add_argument(
        "--retry-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to keep retrying PagerDuty (default: 30)",
    )


def add_store_options(parser: argparse.ArgumentParser, *, creates: bool = False, state_help: str | None = None) -> None:
    """``--state FILE`` (the embedded SQLite file) or ``--table NAME`` (DynamoDB), and ``--endpoint-url``.

    ``creates``: the command may create a missing state file (it writes); otherwise a missing one is
    an error (a mistyped path must not look like an empty store)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--state",
        type=given_path,
        default=None,
        metavar="FILE",
        help=state_help
        or f"the embedded SQLite state file (default: {DEFAULT_STATE}"
        + (", created by the first run that writes to it)" if creates else "; it must exist)"),
    )
    where.add_argument(
        "--table",
        type=table_name,
        default=None,
        metavar="NAME",
        help="a DynamoDB incident table instead of --state (default: none, the state file)",
    )
    parser.set_defaults(creates_state=creates)
    add_aws_options(parser)


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    if any("--endpoint-url" in action.option_strings for action in parser._actions):
        return
    parser.add_argument(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help="AWS endpoint for every AWS client (DynamoDB, SNS, SQS, CloudWatch, STS, Secrets Manager); "
        "AWS_ENDPOINT_URL does the same (default: AWS's own)",
    )


# --- wiring -------------------------------------------------------------------------------------------


def load_settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        events_url=getattr(args, "events_url", None),
        retry_budget_seconds=getattr(args, "retry_budget", None),
        table_name=getattr(args, "table", None),
        environment=getattr(args, "environment", None),
    )


def aws_client(args: argparse.Namespace, service: str, *, region: str | None = None) -> Any:
    """A boto3 client honouring ``--endpoint-url``; botocore's own errors become one clear line."""
    import boto3
    from botocore.exceptions import BotoCoreError

    endpoint = getattr(args, "endpoint_url", None)
    try:
        return boto3.client(service, endpoint_url=endpoint, region_name=region)
    except BotoCoreError:  # a bad region is one too (and a ValueError): described as botocore's own
        raise
    except ValueError as exc:  # botocore's "Invalid endpoint: localhost:5000" (no scheme), a broken IPv6 host
        given = f"--endpoint-url {endpoint!r}" if endpoint is not None else "AWS_ENDPOINT_URL"
        raise CliError(
            f"{given} is no endpoint URL ({exc}): give one such as http://127.0.0.1:5000 "
            "(check --endpoint-url / AWS_ENDPOINT_URL)"
        ) from None


def open_store(args: argparse.Namespace, settings: Settings) -> IncidentStore:
    """The real store the command names: a DynamoDB table, or the SQLite file (which a read-only
    command refuses to create)."""
    retention = timedelta(days=settings.resolved_retention_days)
    if getattr(args, "table", None):
        from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore

        return DynamoDBIncidentStore(aws_client(args, "dynamodb"), args.table, retention=retention)
    from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

    path = Path(getattr(args, "state", None) or DEFAULT_STATE)
    if not path.exists():
        if not getattr(args, "creates_state", False):
            raise CliError(
                f"{path}: no such state file (a mistyped --state?); commands that only read never create one"
            )
        if dry_run(args) and _nearest_existing(path.parent).is_dir():
            # A file made by a dry run would change the store: plan on an empty one. (A path no file can
            # ever be made at, under a file, still fails below with the reason.)
            return SQLiteIncidentStore(":memory:", retention=retention)
    # A dry run plans on the file as it is: not even its schema changes (an older release reads it on).
    return SQLiteIncidentStore(path, retention=retention, read_only=dry_run(args))


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def dry_run(args: argparse.Namespace) -> bool:
    """Whether a command that can send (``--send``) is a dry run that keeps nothing (no ``--record``)."""
    return hasattr(args, "send") and not args.send and not getattr(args, "record", False)


def working_store(args: argparse.Namespace, store: IncidentStore) -> IncidentStore:
    """Where a command writes: the store itself with ``--send``, else a scratch layer over it."""
    return store if getattr(args, "send", False) else OverlayStore(store)


def configured_keys(args: argparse.Namespace, settings: Settings) -> RoutingKeys:
    """The configured routing keys, secrets read through ``--endpoint-url``."""
    return RoutingKeys(
        settings, fetch=ParameterFetcher(client=lambda service, region=None: aws_client(args, service, region=region))
    )


def routing_keys(args: argparse.Namespace, settings: Settings) -> KeySource:
    """Real keys with ``--send`` (from the environment or AWS); otherwise placeholders (nothing is sent)."""
    if getattr(args, "send", False):
        keys = configured_keys(args, settings)
        if not keys.configured:
            raise ConfigurationError(
                f"--send needs a routing key: set {c.ENV_INTEGRATION_KEY} (or {c.ENV_INTEGRATION_KEY_SECRET_ARN})"
            )
        return keys
    local = dict(settings.routing_keys)
    if settings.integration_key is not None:
        local[c.DEFAULT_ROUTING_KEY_ALIAS] = settings.integration_key
    return StaticKeys(local, fallback=DRY_RUN_KEY)


def sender(args: argparse.Namespace, settings: Settings) -> EventSender:
    if not getattr(args, "send", False):
        return DryRunSender()
    return EventsClient(
        settings.events_url,
        retry_budget_seconds=settings.retry_budget_seconds,
    )


@dataclass
class Wired:
    settings: Settings
    store: IncidentStore
    """Where this command writes (a scratch layer unless ``--send``)."""
    real_store: IncidentStore
    notifications: Notifications

    @property
    def delivery(self) -> Delivery:
        return self.notifications.delivery


def wire(args: argparse.Namespace, *, rules: bool = True) -> Wired:
    """Settings, store, keys, sender and the notification path, as the command's options say."""
    settings = load_settings(args)
    real = open_store(args, settings)
    store = working_store(args, real)
    clock = _clock
    delivery = Delivery(
        store,
        sender(args, settings),
        routing_keys(args, settings),
        clock,
        retry_budget_seconds=settings.retry_budget_seconds,
    )
    from pagerduty_bridge.rules import AlertRules

    loaded = load_rules(settings) if rules else AlertRules(component=settings.event_defaults.component)
    notifications = Notifications(settings, loaded, delivery, clock, silences=SilenceCache(real))
    return Wired(settings, store, real, notifications)


def _clock() -> datetime:
    return datetime.now(UTC)


# --- output -------------------------------------------------------------------------------------------

# What json.dumps(ensure_ascii=False) leaves raw (it escapes only U+0000-U+001F) but a terminal acts on,
# or str.splitlines() and some JSON-lines readers take for a line break (U+0085, U+2028, U+2029).
_JSON_UNESCAPED_CONTROL: Final = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def _escape_unescaped(text: str) -> str:
    """JSON text with those characters written as JSON's ``\\uXXXX``: the same value, on one line."""
    return _JSON_UNESCAPED_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_line(value: Any) -> str:
    """One JSON document on exactly one line, non-ASCII text kept readable, no secret in it."""
    return REDACTOR.scrub(_escape_unescaped(json.dumps(value, ensure_ascii=False, default=str)))


def say(streams: Streams, *lines: str) -> None:
    """Human output, one printed line per argument: every control character and line break escaped (a
    hostile alarm name can neither drive the terminal nor add a line, such as a forged status), every
    secret scrubbed. Output of several lines passes each line apart."""
    for line in lines:
        print(REDACTOR.scrub(printable(line)), file=streams.out)


def warn(streams: Streams, *lines: str) -> None:
    """As ``say``, on stderr."""
    for line in lines:
        print(REDACTOR.scrub(printable(line)), file=streams.err)


def readable_json(value: Any) -> list[str]:
    """``value`` as indented JSON, one entry per line, exactly what a JSON reader gets back: JSON escapes
    the control characters below U+0020 itself; DEL, the C1 controls and U+2028/U+2029 (which it leaves
    as they are, and which ``say`` would show as Python escapes) become JSON's ``\\uXXXX``."""
    return _escape_unescaped(json.dumps(value, indent=2, ensure_ascii=False)).split("\n")


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], streams: Streams, *, wide: bool = False
) -> None:
    """Rows as aligned columns (cells cut at 60 characters unless ``wide``)."""
    if not rows:
        say(streams, "(none)")
        return
    cells = [[printable(str(row.get(col) if row.get(col) is not None else "-")) for col in columns] for row in rows]
    limit = None if wide else 60
    widths = [max(len(col), *(len(cell[i]) for cell in cells)) for i, col in enumerate(columns)]
    if limit is not None:
        widths = [min(limit, width) for width in widths]
    say(streams, "  ".join(col.upper().ljust(widths[i]) for i, col in enumerate(columns)).rstrip())
    for cell in cells:
        say(streams, "  ".join(_fit(value, widths[i]).ljust(widths[i]) for i, value in enumerate(cell)).rstrip())


def _fit(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def parse_pairs(values: Sequence[str] | None, option: str) -> dict[str, str]:
    """``K=V`` options into a dict; a malformed one is a usage error naming the option, and so is a key
    given twice: keeping only the last would silently drop a condition (a silence's matcher, a test's
    expectation), so a silence would cover more than asked or a failing check pass."""
    pairs: dict[str, str] = {}
    for value in values or ():
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise CliError(f"{option} {value!r}: expected KEY=VALUE")
        key = key.strip()
        if key in pairs:
            raise CliError(f"{option} {key} given twice ({pairs[key]!r} and {rest!r}): each field takes one value")
        pairs[key] = rest
    return pairs
