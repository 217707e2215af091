"""``rules check`` and ``rules test``: validate alert rules, and ask where an alarm would page.

``rules test`` builds the alarm from options (or reads an event file) and routes it with the very code
the handler uses (``Notifications.route``): matched rule, severity (as PagerDuty would receive it),
routing alias, dedup key, summary, suppression and any silence covering it now.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pagerduty_bridge import constants as c
from pagerduty_bridge.cli.common import (
    DEFAULT_STATE,
    EXIT_FINDING,
    EXIT_OK,
    CliError,
    Streams,
    add_json,
    add_store_options,
    json_line,
    load_settings,
    open_store,
    parse_pairs,
    print_table,
    say,
    warn,
)
from pagerduty_bridge.cli.replay import expand_paths, read_event
from pagerduty_bridge.delivery import Delivery, DryRunSender, shown_alias
from pagerduty_bridge.envelopes import Notification, parse_event
from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.keys import StaticKeys
from pagerduty_bridge.models import AlarmKind, AlarmNotification, AlarmState
from pagerduty_bridge.notifications import Notifications, Route
from pagerduty_bridge.rules import AlertRules, load_rules, read_rules_file
from pagerduty_bridge.sample_alarms import sample_files
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.silences import SilenceCache
from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

ROUTE_FIELDS: Final = (
    "alarm_name",
    "rule",
    "severity",
    "routing_key",
    "dedup_key",
    "summary",
    "suppress",
    "silence",
    "insufficient_data",
)
EXPECTABLE: Final = (*ROUTE_FIELDS, "state", "template")


def register(commands: Any) -> None:
    rules = commands.add_parser("rules", help="alert rules: validate them, test where an alarm pages")
    actions = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate rules and show where each sample pages",
        description="Validate a rules file and show, for every sample alarm, the rule it matches and what "
        "replay would send (the severity of a trigger). Warns on stderr about routing aliases with no key "
        "configured. Exit 0 valid, 2 invalid.",
    )
    check.add_argument(
        "file", type=Path, nargs="?", default=None, help="the rules file, JSON or YAML (default: the configured rules)"
    )
    check.add_argument(
        "--events",
        type=Path,
        nargs="*",
        default=None,
        metavar="PATH",
        help="event files or folders to try (default: the shipped samples)",
    )
    add_json(check, '{"file", "rules", "warnings": [...], "samples": [...]}')
    check.set_defaults(func=check_rules)
    _register_test(actions)


def _register_test(actions: Any) -> None:
    test = actions.add_parser(
        "test",
        help="where would this alarm page? (the handler's own routing)",
        description="Build an alarm from options (or read one from --event) and route it with the handler's "
        "own code: matched rule, severity, routing alias, dedup key, summary, suppression, silence. "
        "Exit 0 when every --expect holds, 1 when one does not, 2 on bad input.",
    )
    test.add_argument(
        "--rules", type=Path, default=None, metavar="FILE", help="a rules file (default: the configured rules)"
    )
    test.add_argument(
        "--event", type=Path, default=None, metavar="FILE", help="an event file instead of options (default: none)"
    )
    test.add_argument("--alarm-name", default="test-alarm", help="the alarm's name (default: test-alarm)")
    test.add_argument("--namespace", default=None, help="the metric's namespace, e.g. AWS/RDS (default: none)")
    test.add_argument("--metric", default=None, help="the metric name (default: none)")
    test.add_argument("--dimension", action="append", metavar="K=V", help="a dimension, repeatable (default: none)")
    test.add_argument("--tag", action="append", metavar="K=V", help="an alarm tag, repeatable (default: none)")
    test.add_argument(
        "--kind", choices=[k.value for k in AlarmKind], default="metric", help="the alarm's kind (default: metric)"
    )
    test.add_argument(
        "--alarm-state",
        choices=[s.value for s in AlarmState],
        default="ALARM",
        help="the state it changes to (default: ALARM)",
    )
    test.add_argument("--region", default=None, help="the alarm's region code (default: none)")
    test.add_argument("--account", default=None, help="the alarm's account id (default: none)")
    test.add_argument(
        "--expect",
        action="append",
        metavar="FIELD=VALUE",
        help=f"exit 1 unless FIELD is VALUE, repeatable ({', '.join(EXPECTABLE)}; default: none)",
    )
    add_json(test, "the route as one object")
    add_store_options(
        test,
        state_help=f"the state file whose silences apply (default: {DEFAULT_STATE} when it exists)",
    )
    test.set_defaults(func=test_route)


def _rules(path: Path | None, settings: Settings) -> AlertRules:
    """The rules of the file given, else the configured rules."""
    if path is None:
        return load_rules(settings)
    return read_rules_file(path, component=settings.event_defaults.component)


def _notifications(settings: Settings, rules: AlertRules, silences: SilenceCache | None = None) -> Notifications:
    """The notification path with nothing behind it: routing only, never a send or a write."""
    store = SQLiteIncidentStore(":memory:")
    delivery = Delivery(store, DryRunSender(), StaticKeys({}, fallback=""), lambda: datetime.now(UTC))
    return Notifications(settings, rules, delivery, lambda: datetime.now(UTC), silences=silences)


def route_json(alarm: AlarmNotification, route: Route) -> dict[str, Any]:
    return {
        "alarm_name": alarm.alarm_name,
        "state": alarm.new_state.value,
        "rule": route.resolved.rule or "(defaults)",
        "severity": route.severity.value,
        "routing_key": route.resolved.routing_key,
        "dedup_key": route.dedup_key,
        "summary": route.summary or None,
        "suppress": route.resolved.suppress,
        "silence": route.silence_id,
        "insufficient_data": route.insufficient_data.value,
        "template": route.resolved.template,
    }


def unknown_aliases(rules: AlertRules, settings: Settings) -> list[str]:
    """Aliases the rules route to that no configured source names (they would fail at run time)."""
    known = {c.DEFAULT_ROUTING_KEY_ALIAS, *settings.routing_keys, *settings.routing_key_secrets}
    return sorted(alias for alias in rules.routing_aliases() if alias not in known)


def unknown_alias_warning(alias: str) -> str:
    """What ``rules check`` says of an alias no source names; of a routing key written where its alias
    belongs, that it is one, shown by its last four characters (CI logs are read by many)."""
    shown = shown_alias(alias)
    if shown != alias:
        return (
            f"routing alias {shown!r} looks like a routing key: write the key's alias here, and the key in "
            f"{c.ENV_ROUTING_KEYS} or a secret ({c.ENV_ROUTING_KEY_SECRETS})"
        )
    return (
        f"routing alias {alias!r} has no key configured ({c.ENV_ROUTING_KEY_SECRETS}, {c.ENV_ROUTING_KEYS}, "
        f"or a JSON {c.ENV_INTEGRATION_KEY_SECRET_ARN} secret naming it)"
    )


def shown_route(shown: dict[str, Any]) -> dict[str, Any]:
    """A route as printed: its routing alias masked when it is a routing key (``shown_alias``)."""
    alias = shown.get("routing_key")
    return {**shown, "routing_key": shown_alias(alias)} if isinstance(alias, str) else shown


def check_rules(args: argparse.Namespace, streams: Streams) -> int:
    settings = load_settings(args)
    rules = _rules(args.file, settings)
    where = str(args.file) if args.file else "the configured rules"
    notifications = _notifications(settings, rules)
    warnings = [unknown_alias_warning(alias) for alias in unknown_aliases(rules, settings)]
    rows = []
    for path in expand_paths(args.events) if args.events is not None else sample_files():
        for alarm in _alarms_in(path):
            rows.append({"sample": path.name, **sample_route(alarm, notifications.route(alarm))})
    if args.json:
        print(
            json_line({"file": where, "rules": len(rules.rules), "warnings": warnings, "samples": rows}),
            file=streams.out,
        )
    else:
        say(streams, f"{where}: {len(rules.rules)} rules, valid")
        for warning in warnings:
            warn(streams, f"warning: {warning}")
        print_table(rows, ("sample", "alarm_name", "rule", "severity", "routing_key", "suppress", "state"), streams)
    return EXIT_OK


def sample_route(alarm: AlarmNotification, route: Route) -> dict[str, Any]:
    """One sample's route as ``rules check`` shows it: the severity is the one its trigger carries —
    what replay sends — and absent for a state that sends no trigger."""
    shown = shown_route(route_json(alarm, route))
    if route.trigger is None:
        shown["severity"] = None
    return shown


def _alarms_in(path: Path) -> list[AlarmNotification]:
    try:
        parsed = parse_event(read_event(path))
    except InvalidMessageError:
        return []
    return [p.content for p in parsed if isinstance(p, Notification) and isinstance(p.content, AlarmNotification)]


def test_route(args: argparse.Namespace, streams: Streams) -> int:
    settings = load_settings(args)
    rules = _rules(args.rules, settings)
    alarm = _alarm_from(args)
    silences = _silences(args, settings)
    route = _notifications(settings, rules, silences).route(alarm)
    shown = route_json(alarm, route)
    failed = [
        f"{name}: expected {shown_alias(want)!r}, got {shown_alias(_text(shown.get(name)))!r}"
        for name, want in _expectations(args)
        if not _holds(shown.get(name), want)
    ]
    shown = shown_route(shown)
    if args.json:
        print(json_line({**shown, "expectations_failed": failed}), file=streams.out)
    else:
        for name, value in shown.items():
            say(streams, f"{name:18} {value if value is not None else '-'}")
        for problem in failed:
            warn(streams, f"expectation failed: {problem}")
    return EXIT_FINDING if failed else EXIT_OK


def _holds(value: Any, want: str) -> bool:
    """Whether an expectation holds: as the value is printed (``False``, ``-`` for none) or spelled in
    JSON (``false``, empty), so a CI check can be written from what the command showed."""
    if value is None:
        return want in ("", "-")
    if isinstance(value, bool):
        return want.lower() == _text(value)
    return _text(value) == want


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def _expectations(args: argparse.Namespace) -> list[tuple[str, str]]:
    pairs = list(parse_pairs(args.expect, "--expect").items())
    for name, _ in pairs:
        if name not in EXPECTABLE:
            raise CliError(f"--expect {name}=…: no such field (one of {', '.join(EXPECTABLE)})")
    return pairs


def _silences(args: argparse.Namespace, settings: Settings) -> SilenceCache | None:
    """The silences of the store the options name: ``--table``, a ``--state`` file (which must exist:
    a mistyped one is an error, not "no silences"), or the default state file when there is one."""
    if args.table is None and args.state is None and not DEFAULT_STATE.exists():
        return None
    return SilenceCache(open_store(args, settings))


def _alarm_from(args: argparse.Namespace) -> AlarmNotification:
    if args.event is not None:
        alarms = _alarms_in(args.event)
        if not alarms:
            raise CliError(f"{args.event}: holds no CloudWatch alarm")
        return alarms[0]
    region, account = args.region, args.account
    arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{args.alarm_name}" if region and account else None
    return AlarmNotification(
        kind=AlarmKind(args.kind),
        alarm_name=args.alarm_name,
        new_state=AlarmState(args.alarm_state),
        old_state=AlarmState.OK if args.alarm_state != "OK" else AlarmState.ALARM,
        state_change_time=datetime.now(UTC),
        namespace=args.namespace,
        metric_name=args.metric,
        dimensions=parse_pairs(args.dimension, "--dimension"),
        tags=parse_pairs(args.tag, "--tag"),
        region_code=region,
        account_id=account,
        alarm_arn=arn,
    )
