"""The ``pagerduty-bridge`` command: replay events locally through the handler's own code path.

``main(argv) -> int`` is callable from tests; ``entrypoint()`` is the console script. No command
prints a traceback: errors are one line on stderr naming what is wrong, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import (
    BridgeError,
    ConfigurationError,
    IncidentNotFoundError,
    InvalidMessageError,
    PagerDutyApiError,
)
from pagerduty_bridge.integration import DryRunSender, EventSender, Outcome, PagerDutyIntegration
from pagerduty_bridge.models import Incident, ServiceConfig
from pagerduty_bridge.operations import (
    DEFAULT_MAX_ACTIVE_INCIDENTS,
    Check,
    active_incident_check,
    compute_stats,
    parse_duration,
    reconcile,
)
from pagerduty_bridge.processing import RecordResult, process_event
from pagerduty_bridge.redrive import redrive
from pagerduty_bridge.rendering import COST_THRESHOLD, HIGH_FAILURE_RATE, HIGH_LATENCY
from pagerduty_bridge.safejson import loads
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.store import IncidentStore, to_record

TEMPLATES = {"high-failure-rate": HIGH_FAILURE_RATE, "high-latency": HIGH_LATENCY, "cost-threshold": COST_THRESHOLD}

DEFAULT_STATE = Path(".pagerduty-bridge") / "state.db"
TEST_ALARM_NAME = "pagerduty-bridge-test-alarm"
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

    _build_incident_parsers(commands)

    trigger = commands.add_parser("trigger", help="send one of the seed's templated incidents")
    trigger.add_argument("template", choices=sorted(TEMPLATES))
    trigger.add_argument("--current", type=float, required=True)
    trigger.add_argument("--threshold", type=float, required=True)
    trigger.add_argument("--environment", default=None, help="default: the ENVIRONMENT setting, else production")
    trigger.add_argument("--json", action="store_true")
    _add_delivery_options(trigger)
    _add_store_options(trigger)

    stats = commands.add_parser("stats", help="the seed's key metrics from the incident store")
    stats.add_argument("--since", default=None, metavar="DURATION", help="e.g. 24h, 7d (default: all)")
    stats.add_argument("--json", action="store_true")
    _add_store_options(stats)

    health = commands.add_parser("health", help="check configuration, store and active incidents")
    health.add_argument("--json", action="store_true")
    health.add_argument("--ping", action="store_true", help="also check that PagerDuty answers (sends no alert)")
    health.add_argument("--max-active", type=int, default=DEFAULT_MAX_ACTIVE_INCIDENTS, metavar="N")
    health.add_argument("--events-url", default=None)
    _add_store_options(health)

    publish = commands.add_parser("publish-test-alarm", help="publish a realistic alarm message to a topic")
    publish.add_argument("--topic-arn", required=True)
    publish.add_argument("--state", choices=["ALARM", "OK"], default="ALARM")
    publish.add_argument("--alarm-name", default=TEST_ALARM_NAME)
    publish.add_argument("--sns-endpoint-url", default=None)

    reconcile = commands.add_parser("reconcile", help="resolve open incidents whose alarm is OK or gone")
    reconcile.add_argument("--json", action="store_true")
    reconcile.add_argument("--cloudwatch-endpoint-url", default=None)
    _add_delivery_options(reconcile)
    _add_store_options(reconcile)

    redrive = commands.add_parser("redrive", help="re-process a dead-letter or on-failure queue")
    redrive.add_argument("--queue-url", required=True)
    redrive.add_argument("--max-messages", type=int, default=1000)
    redrive.add_argument("--sqs-endpoint-url", default=None)
    _add_delivery_options(redrive)
    _add_store_options(redrive)

    rules = commands.add_parser("rules", help="alert rules")
    rules_actions = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_actions.add_parser("check", help="validate a rules file and show what each sample matches")
    check.add_argument("file", type=Path)
    check.add_argument("--events", type=Path, nargs="*", default=None, help="samples to try (default: events/)")

    _build_fake_pagerduty_parser(commands)
    return parser


def _build_fake_pagerduty_parser(commands: Any) -> None:
    """The stand-in's options, spelled as ``python -m pagerduty_bridge.devtools.fake_pagerduty`` spells them."""
    fake = commands.add_parser("fake-pagerduty", help="run a local stand-in for PagerDuty's Events API and webhooks")
    fake.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: %(default)s)")
    fake.add_argument("--port", type=int, default=8787, help="port; 0 picks a free one (default: %(default)s)")
    fake.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="events per minute per routing key (default: unlimited)",
    )
    fake.add_argument(
        "--webhook-url",
        default=None,
        metavar="URL",
        help="POST a signed webhook v3 here for each incident change (default: none, no webhooks)",
    )
    fake.add_argument(
        "--webhook-secret",
        default=None,
        metavar="SECRET",
        help="the webhook subscription's signing secret, required with --webhook-url (default: none)",
    )


def _build_incident_parsers(commands: Any) -> None:
    incidents = commands.add_parser("incidents", help="see and fix the incident table")
    actions = incidents.add_subparsers(dest="incident_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="active incidents (--all: resolved too)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--json", action="store_true")
    _add_store_options(listing)
    show = actions.add_parser("show", help="one incident")
    show.add_argument("key")
    show.add_argument("--json", action="store_true")
    _add_store_options(show)
    for name, text in (("ack", "acknowledge an incident"), ("resolve", "resolve an incident")):
        action = actions.add_parser(name, help=text)
        action.add_argument("key")
        action.add_argument("--json", action="store_true")
        _add_delivery_options(action)
        _add_store_options(action)
    clear = actions.add_parser("clear", help="forget every incident (PagerDuty is not told)")
    clear.add_argument("--yes", action="store_true", help="really clear")
    _add_store_options(clear)


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
        handler = COMMANDS.get(args.command)
        if handler is not None:
            return handler(args, streams)
        if args.command == "fake-pagerduty":
            from pagerduty_bridge.devtools.fake_pagerduty import serve_forever

            try:
                return serve_forever(
                    args.host,
                    args.port,
                    rate_limit=args.rate_limit,
                    webhook_url=args.webhook_url,
                    webhook_secret=args.webhook_secret,
                    out=streams.out,
                )
            except ValueError as exc:  # a non-loopback host, a malformed URL, a URL without its secret
                raise CliError(str(exc)) from exc
    except (CliError, BridgeError) as exc:
        print(f"pagerduty-bridge: {exc}", file=streams.err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")  # pragma: no cover - argparse rejects it first
    return EXIT_BAD_INPUT  # pragma: no cover


# Characters that are line breaks to str.splitlines() (and some JSON-lines readers) but that JSON
# leaves unescaped: escaping them keeps "one JSON object per line" true whatever an alarm is called.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(value: Any) -> str:
    """One JSON document on exactly one line, non-ASCII text kept readable."""
    return json.dumps(value, ensure_ascii=False).translate(_LINE_BREAKS)


def entrypoint() -> None:
    sys.exit(main())


# --- wiring -------------------------------------------------------------------------------------------


def load_settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        events_url=getattr(args, "events_url", None),
        retry_budget_seconds=getattr(args, "retry_budget", None),
        table_name=getattr(args, "table", None),
        environment=getattr(args, "environment", None),
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
    """The integration the command works with: dry run (nothing sent) unless ``--send``."""
    from pagerduty_bridge.runtime import SECRET_KEY_FIELD, Runtime

    sender: EventSender | None = None
    keys: dict[str, SecretStr] = {}
    configured = settings.integration_key is not None or settings.integration_key_secret_arn is not None
    if args.send:
        if not configured:
            raise ConfigurationError(
                f"--send needs a routing key: set {c.ENV_INTEGRATION_KEY} (or {c.ENV_INTEGRATION_KEY_SECRET_ARN})"
            )
        keys = Runtime(settings=settings, store=store).routing_keys()
    else:
        sender = DryRunSender()
        # Nothing is sent: every alias a rule routes to gets the placeholder unless configured locally.
        keys = defaultdict(lambda: SecretStr(DRY_RUN_KEY), settings.routing_keys)
        keys[SECRET_KEY_FIELD] = settings.integration_key or SecretStr(DRY_RUN_KEY)
    config = ServiceConfig(
        integration_key=keys[SECRET_KEY_FIELD],
        service_name=settings.service_name,
        escalation_policy_id=settings.escalation_policy_id,
    )
    return PagerDutyIntegration(
        config, settings.environment, store=store, settings=settings, sender=sender, routing_keys=keys
    )


def wire(args: argparse.Namespace) -> tuple[Settings, IncidentStore, PagerDutyIntegration]:
    settings = load_settings(args)
    store = open_store(args, settings)
    return settings, store, build_integration(args, settings, store)


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
        return loads(text)
    except ValueError as exc:
        raise InvalidMessageError(f"is not JSON ({exc})") from None


def replay(args: argparse.Namespace, streams: Streams) -> int:
    _, _, integration = wire(args)
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
            if isinstance(record.error, InvalidMessageError):
                print(f"pagerduty-bridge: {path}: {record.record}: {record.error}", file=streams.err)
                exit_code = EXIT_BAD_INPUT
                continue
            outcome = record.outcome or Outcome(None, "failed", None, error=record.error)
            if record.error is not None:
                print(f"pagerduty-bridge: {path}: {record.record}: {record.error}", file=streams.err)
                exit_code = max(exit_code, EXIT_SEND_FAILED)
            if args.json:
                print(json_line(replay_line(path, record, outcome)), file=streams.out)
            else:
                print(replay_block(path, record, outcome, send=args.send), file=streams.out)
    return exit_code


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


def replay_block(path: Path, record: RecordResult, outcome: Outcome, *, send: bool) -> str:
    action = outcome.action.value if outcome.action else "none"
    title = outcome.alarm_name or "(not an alarm)"
    lines = [f"── {path.name} {record.record}", f"   {title}  {outcome.state or '-'} → {action} ({outcome.reason})"]
    if outcome.dedup_key:
        lines.append(f"   dedup_key: {outcome.dedup_key}")
    lines.extend(_body_lines(outcome, send=send))
    return "\n".join(lines) + "\n"


def _body_lines(outcome: Outcome, *, send: bool) -> list[str]:
    lines: list[str] = []
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
    return lines


# --- incidents, trigger, stats, health ---------------------------------------------------------------

INCIDENT_COLUMNS = ("dedup_key", "status", "severity", "triggered_at", "resolved_at", "summary")


def incident_json(incident: Incident) -> dict[str, Any]:
    record = to_record(incident)
    for name in ("claim_token", "version"):
        record.pop(name, None)
    for name in ("dedup_key", "status", "severity", "summary", "triggered_at", "resolved_at", "acknowledged_at"):
        record.setdefault(name, None)
    return record


def print_table(rows: list[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    if not rows:
        print("(none)", file=out)
        return
    cells = [[str(row.get(col) if row.get(col) is not None else "-") for col in columns] for row in rows]
    widths = [min(60, max(len(col), *(len(cell[i]) for cell in cells))) for i, col in enumerate(columns)]
    print("  ".join(col.upper().ljust(widths[i]) for i, col in enumerate(columns)).rstrip(), file=out)
    for cell in cells:
        print("  ".join(value[: widths[i]].ljust(widths[i]) for i, value in enumerate(cell)).rstrip(), file=out)


def incidents(args: argparse.Namespace, streams: Streams) -> int:
    command = args.incident_command
    if command in ("list", "show", "clear"):
        settings = load_settings(args)
        store = open_store(args, settings)
        if command == "clear":
            if not args.yes:
                raise CliError("incidents clear forgets every incident: add --yes to confirm")
            count = len(store.list_all())
            store.clear()
            print(f"cleared {count} incidents", file=streams.out)
            return EXIT_OK
        if command == "show":
            incident = store.get(args.key)
            if incident is None:
                raise IncidentNotFoundError(args.key)
            if args.json:
                print(json_line(incident_json(incident)), file=streams.out)
            else:
                for key, value in incident_json(incident).items():
                    print(f"{key:18} {value if value is not None else '-'}", file=streams.out)
            return EXIT_OK
        found = store.list_all() if args.all else store.list_active()
        rows = [incident_json(i) for i in found]
        if args.json:
            print(json_line(rows), file=streams.out)
        else:
            print_table(rows, INCIDENT_COLUMNS, streams.out)
        return EXIT_OK
    _, _, integration = wire(args)
    response = (
        integration.acknowledge_incident(args.key) if command == "ack" else integration.resolve_incident(args.key)
    )
    verb = "acknowledged" if command == "ack" else "resolved"
    sent = "sent" if args.send else "dry run, not sent"
    if args.json:
        print(json.dumps({"dedup_key": args.key, "action": verb, "status": response.status}), file=streams.out)
    else:
        print(f"{verb} {args.key} ({sent})", file=streams.out)
    return EXIT_OK


def trigger(args: argparse.Namespace, streams: Streams) -> int:
    _, _, integration = wire(args)
    outcome = integration.trigger_template(TEMPLATES[args.template], args.current, args.threshold)
    if args.json:
        print(json_line(replay_line("cli", "trigger", outcome)), file=streams.out)
    else:
        print(f"{outcome.alarm_name} → trigger", file=streams.out)
        print(f"   dedup_key: {outcome.dedup_key}", file=streams.out)
        print("\n".join(_body_lines(outcome, send=args.send)), file=streams.out)
    if outcome.error is not None:
        print(f"pagerduty-bridge: {outcome.error}", file=streams.err)
        return EXIT_SEND_FAILED
    return EXIT_OK


def stats(args: argparse.Namespace, streams: Streams) -> int:
    settings = load_settings(args)
    store = open_store(args, settings)
    try:
        since = parse_duration(args.since) if args.since else None
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None
    figures = compute_stats(store.list_all(), since=since, now=datetime.now(UTC)).as_dict()
    if args.json:
        print(json.dumps(figures), file=streams.out)
    else:
        for key, value in figures.items():
            print(f"{key:25} {value if value is not None else '-'}", file=streams.out)
    return EXIT_OK


def health(args: argparse.Namespace, streams: Streams) -> int:
    checks = run_health_checks(args)
    healthy = all(check.ok for check in checks)
    if args.json:
        body = {"healthy": healthy, "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in checks]}
        print(json.dumps(body), file=streams.out)
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'WARN'}  {check.name:18} {check.message}", file=streams.out)
    return EXIT_OK if healthy else EXIT_SEND_FAILED


def run_health_checks(args: argparse.Namespace) -> list[Check]:
    from pagerduty_bridge.runtime import Runtime

    try:
        settings = load_settings(args)
    except ConfigurationError as exc:
        return [Check("configuration", False, str(exc))]
    checks = [Check("configuration", True, f"environment {settings.environment}")]
    try:
        store = open_store(args, settings)
        store.ping()
    except BridgeError as exc:
        return [*checks, Check("store", False, str(exc))]
    checks.append(Check("store", True, f"{store!r} reachable"))
    try:
        keys = Runtime(settings=settings, store=store).routing_keys()
        checks.append(Check("integration_key", True, f"{len(keys)} routing key(s) configured, well-formed"))
    except ConfigurationError as exc:
        checks.append(Check("integration_key", False, str(exc)))
    checks.append(Check("events_url", True, settings.events_url))
    if args.ping:
        checks.append(ping_pagerduty(settings.events_url))
    checks.append(active_incident_check(len(store.list_active()), args.max_active))
    return checks


def ping_pagerduty(url: str) -> Check:
    """PagerDuty answers an empty event with 400: proof it is reachable, and no alert is created."""
    from pagerduty_bridge.events_api import EventsClient

    try:
        EventsClient(url, retry_budget_seconds=5).send_body({})
    except PagerDutyApiError as exc:
        if exc.status == 400:
            return Check("pagerduty", True, f"{url} answers")
        return Check("pagerduty", False, str(exc))
    except BridgeError as exc:
        return Check("pagerduty", False, str(exc))
    return Check("pagerduty", False, f"{url} accepted an empty event: is it PagerDuty?")


# --- publish-test-alarm, reconcile, redrive ----------------------------------------------------------


def test_alarm_message(alarm_name: str, state: str, topic_arn: str, now: datetime) -> dict[str, Any]:
    """A CloudWatch metric alarm message as SNS carries it, for the topic's own account and region."""
    parts = topic_arn.split(":")
    partition, region, account = (parts[1], parts[3], parts[4]) if len(parts) >= 6 else ("aws", "us-east-1", "")
    old = "OK" if state == "ALARM" else "ALARM"
    value = 99.0 if state == "ALARM" else 1.0
    return {
        "AlarmName": alarm_name,
        "AlarmDescription": "Test alarm published by pagerduty-bridge publish-test-alarm to verify a deployment.",
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "NewStateValue": state,
        "NewStateReason": f"Threshold Crossed: 1 datapoint [{value} ({now.strftime('%d/%m/%y %H:%M:%S')})] was "
        f"{'greater' if state == 'ALARM' else 'not greater'} than the threshold (50.0).",
        "StateChangeTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000",
        "Region": region,
        "AlarmArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{alarm_name}",
        "OldStateValue": old,
        "OKActions": [topic_arn],
        "AlarmActions": [topic_arn],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "TestMetric",
            "Namespace": "PagerDutyBridge/Test",
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": None,
            "Dimensions": [{"value": "deployment-check", "name": "Check"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 50.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }


def publish_test_alarm(args: argparse.Namespace, streams: Streams) -> int:
    import boto3

    message = test_alarm_message(args.alarm_name, args.state, args.topic_arn, datetime.now(UTC))
    subject = f'{args.state}: "{args.alarm_name}" in {message["Region"]}'[:100]
    sns = boto3.client("sns", endpoint_url=args.sns_endpoint_url)
    response = sns.publish(TopicArn=args.topic_arn, Subject=subject, Message=json.dumps(message))
    print(
        f"published {args.state} for {args.alarm_name} to {args.topic_arn} (message {response['MessageId']})",
        file=streams.out,
    )
    return EXIT_OK


def reconcile_command(args: argparse.Namespace, streams: Streams) -> int:
    import boto3

    _, _, integration = wire(args)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=args.cloudwatch_endpoint_url)
    results = reconcile(integration, cloudwatch)
    rows = [asdict(r) for r in results]
    if args.json:
        print(json.dumps(rows), file=streams.out)
    else:
        print_table(rows, ("dedup_key", "alarm_state", "action", "reason"), streams.out)
    return EXIT_SEND_FAILED if any(r.action == "failed" for r in results) else EXIT_OK


def redrive_command(args: argparse.Namespace, streams: Streams) -> int:
    import boto3

    _, _, integration = wire(args)
    sqs = boto3.client("sqs", endpoint_url=args.sqs_endpoint_url)
    report = redrive(sqs, args.queue_url, integration, max_messages=args.max_messages, delete=args.send)
    print(
        f"received {report.received}, redriven {report.redriven}, kept {len(report.kept)}"
        f"{'' if args.send else ' (dry run: nothing sent, nothing deleted)'}",
        file=streams.out,
    )
    for message_id, why in report.kept:
        print(f"kept {message_id}: {why}", file=streams.err)
    return EXIT_OK if not report.kept else EXIT_SEND_FAILED


def rules_command(args: argparse.Namespace, streams: Streams) -> int:
    from pagerduty_bridge.envelopes import Notification, parse_event
    from pagerduty_bridge.models import AlarmNotification
    from pagerduty_bridge.rendering import alarm_dedup_key
    from pagerduty_bridge.rules import parse_rules

    settings = load_settings(args)
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{args.file}: cannot be read ({exc.__class__.__name__})") from None
    rules = parse_rules(text, where=str(args.file), component=settings.event_defaults.component)
    print(f"{args.file}: {len(rules.rules)} rules, valid", file=streams.out)
    rows = []
    for path in expand_paths(args.events if args.events is not None else [Path("events")]):
        try:
            parsed = parse_event(read_event(path))
        except InvalidMessageError:
            continue
        for item in parsed:
            if isinstance(item, Notification) and isinstance(item.content, AlarmNotification):
                alarm = item.content
                resolved = rules.resolve(alarm, default_severity=settings.default_severity, default_routing="default")
                rows.append(
                    {
                        "sample": path.name,
                        "alarm_name": alarm.alarm_name,
                        "rule": resolved.rule or "(defaults)",
                        "severity": resolved.severity.value,
                        "routing_key": resolved.routing_key,
                        "suppress": resolved.suppress,
                        "dedup_key": alarm_dedup_key(
                            alarm, settings.dedup_key_strategy, resolved.dedup_key, settings.environment
                        ),
                    }
                )
    print_table(rows, ("sample", "alarm_name", "rule", "severity", "routing_key", "suppress"), streams.out)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Streams], int]] = {
    "rules": rules_command,
    "replay": replay,
    "incidents": incidents,
    "trigger": trigger,
    "stats": stats,
    "health": health,
    "publish-test-alarm": publish_test_alarm,
    "reconcile": reconcile_command,
    "redrive": redrive_command,
}
