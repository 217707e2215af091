"""``incidents list|show|ack|resolve|clear`` and ``trigger``: see and fix the incident table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Final

from pagerduty_bridge.cli.common import (
    DRY_RUN_KEY,
    EXIT_OK,
    EXIT_SEND_FAILED,
    CliError,
    Streams,
    Wired,
    add_delivery_options,
    add_json,
    add_store_options,
    add_wide,
    json_line,
    load_settings,
    open_store,
    print_table,
    say,
    warn,
    wire,
)
from pagerduty_bridge.cli.replay import body_lines, replay_line
from pagerduty_bridge.errors import IncidentNotFoundError, PagerDutyApiError, PagerDutyDeliveryError
from pagerduty_bridge.integration import PagerDutyIntegration
from pagerduty_bridge.models import Incident
from pagerduty_bridge.seed.models import ServiceConfig
from pagerduty_bridge.seed.templates import SEED_TEMPLATES_BY_NAME
from pagerduty_bridge.store import to_record

INCIDENT_COLUMNS: Final = ("dedup_key", "status", "severity", "triggered_at", "resolved_at", "summary")
PAGERDUTY_FIELDS: Final = (
    "pd_status",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_by",
    "pd_incident_number",
    "pd_incident_id",
    "pd_html_url",
    "pd_updated_at",
)


def register(commands: Any) -> None:
    incidents = commands.add_parser("incidents", help="see and fix the incident table")
    actions = incidents.add_subparsers(dest="incident_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="active incidents (--all: resolved too)")
    listing.add_argument("--all", action="store_true", help="resolved incidents too (default: active only)")
    add_wide(listing)
    add_json(listing, "an array of incidents, full keys")
    add_store_options(listing)
    listing.set_defaults(func=list_incidents)
    show = actions.add_parser("show", help="one incident, with what PagerDuty reported back")
    show.add_argument("key", help="the incident's dedup key")
    add_json(show, "the incident as an object")
    add_store_options(show)
    show.set_defaults(func=show_incident)
    for name, text in (("ack", "acknowledge an incident"), ("resolve", "resolve an incident")):
        action = actions.add_parser(name, help=f"{text} (a dry run unless --send)")
        action.add_argument("key", help="the incident's dedup key")
        add_json(action, "the outcome as an object")
        add_delivery_options(action)
        add_store_options(action)
        action.set_defaults(func=change_incident, verb=name)
    clear = actions.add_parser("clear", help="forget every incident (PagerDuty is not told)")
    clear.add_argument("--yes", action="store_true", help="really clear (default: refuse without it)")
    add_json(clear, '{"cleared": N}')
    add_store_options(clear)
    clear.set_defaults(func=clear_incidents)
    _register_trigger(commands)


def environment_name(text: str) -> str:
    """An argparse type: the environment as the ENVIRONMENT variable gives it (stripped), never empty.
    It is in the dedup key: ``--environment "$ENV"`` with the variable unset, or a stray space, would
    page a second incident beside the environment's own (``-hybrid-routing-…``)."""
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("an empty environment (an unset variable?): give its name, e.g. production")
    return name


def _register_trigger(commands: Any) -> None:
    trigger = commands.add_parser("trigger", help="send one of the seed's templated incidents")
    trigger.add_argument("template", choices=sorted(SEED_TEMPLATES_BY_NAME), help="which template")
    trigger.add_argument("--current", type=float, required=True, help="the current value (required)")
    trigger.add_argument("--threshold", type=float, required=True, help="the threshold it crossed (required)")
    trigger.add_argument(
        "--environment",
        type=environment_name,
        default=None,
        help="the environment named in it (default: the ENVIRONMENT setting, else production)",
    )
    add_json(trigger, "the outcome as one JSON line")
    add_delivery_options(trigger)
    add_store_options(trigger, creates=True)
    trigger.set_defaults(func=trigger_template)


def incident_json(incident: Incident) -> dict[str, Any]:
    record = to_record(incident)
    for name in ("claim_token", "version"):
        record.pop(name, None)
    for name in ("dedup_key", "status", "severity", "summary", "triggered_at", "resolved_at", "acknowledged_at"):
        record.setdefault(name, None)
    if not incident.is_open and incident.last_reason == "silenced":
        record["status"] = "silenced"
    return record


def list_incidents(args: argparse.Namespace, streams: Streams) -> int:
    store = open_store(args, load_settings(args))
    found = store.list_all() if args.all else store.list_active()
    rows = [incident_json(i) for i in found]
    if args.json:
        print(json_line(rows), file=streams.out)
    else:
        print_table(rows, INCIDENT_COLUMNS, streams, wide=args.wide)
    return EXIT_OK


def show_incident(args: argparse.Namespace, streams: Streams) -> int:
    store = open_store(args, load_settings(args))
    incident = store.get(args.key)
    if incident is None:
        raise IncidentNotFoundError(args.key)
    record = incident_json(incident)
    if args.json:
        print(json_line(record), file=streams.out)
        return EXIT_OK
    for key, value in record.items():
        if key not in PAGERDUTY_FIELDS:
            say(streams, f"{key:18} {value if value is not None else '-'}")
    pagerduty = {k: record[k] for k in PAGERDUTY_FIELDS if record.get(k) is not None}
    say(streams, "PagerDuty side:" if pagerduty else "PagerDuty side:    nothing reported back (no webhook yet)")
    for key, value in pagerduty.items():
        say(streams, f"  {key:16} {value}")
    return EXIT_OK


def change_incident(args: argparse.Namespace, streams: Streams) -> int:
    wired = wire(args, rules=False)
    integration = _facade(wired)
    act: Callable[[str], Any] = integration.acknowledge_incident if args.verb == "ack" else integration.resolve_incident
    verb = "acknowledged" if args.verb == "ack" else "resolved"
    try:
        response = act(args.key)
    except IncidentNotFoundError as exc:
        raise CliError(explain_closed(wired, args.key, args.verb, exc)) from exc
    except (PagerDutyApiError, PagerDutyDeliveryError) as exc:
        if args.json:
            print(
                json_line({"dedup_key": args.key, "action": verb, "sent": False, "error": str(exc)}), file=streams.out
            )
        warn(streams, f"pagerduty-bridge: {args.key}: not {verb}: {exc}")
        return EXIT_SEND_FAILED
    if args.json:
        print(
            json_line({"dedup_key": args.key, "action": verb, "status": response.status, "sent": args.send}),
            file=streams.out,
        )
    else:
        say(streams, f"{verb} {args.key} ({'sent' if args.send else 'dry run: not sent, store unchanged'})")
    return EXIT_OK


def explain_closed(wired: Wired, key: str, verb: str, exc: IncidentNotFoundError) -> str:
    """Why there is nothing to acknowledge or resolve: no such key, a silenced alarm, or already resolved."""
    stored = wired.real_store.get(key)
    if stored is None:
        return f"{exc}: `pagerduty-bridge incidents list --all` shows the keys tracked"
    if stored.last_reason == "silenced" and not stored.is_open:
        return (
            f"Incident not found: {key} (its alarm was silenced by {stored.silence_id or 'a silence'}: "
            "nothing was opened in PagerDuty)"
        )
    how = f", {stored.resolution.value}" if stored.resolution is not None else ""
    by = f" by {stored.resolved_by}" if stored.resolved_by else ""
    return f"{exc}{how}{by}: nothing to {verb}; `pagerduty-bridge incidents show {key}` has the details"


def _facade(wired: Wired) -> PagerDutyIntegration:
    """The seed API over this command's store, sender and keys."""
    delivery = wired.delivery
    return PagerDutyIntegration(
        ServiceConfig(integration_key=DRY_RUN_KEY, service_name=wired.settings.service_name),
        wired.settings.environment,
        store=wired.store,
        settings=wired.settings,
        sender=delivery.sender,
        rules=wired.notifications.rules,
        keys=delivery.keys,
    )


def clear_incidents(args: argparse.Namespace, streams: Streams) -> int:
    if not args.yes:
        raise CliError("incidents clear forgets every incident: add --yes to confirm")
    store = open_store(args, load_settings(args))
    count = len(store.list_all())
    store.clear()
    if args.json:
        print(json_line({"cleared": count}), file=streams.out)
    else:
        say(streams, f"cleared {count} incidents")
    return EXIT_OK


def trigger_template(args: argparse.Namespace, streams: Streams) -> int:
    wired = wire(args, rules=False)
    outcome = _facade(wired).trigger_template(SEED_TEMPLATES_BY_NAME[args.template], args.current, args.threshold)
    if args.json:
        print(json_line(replay_line("cli", "trigger", outcome)), file=streams.out)
    else:
        say(
            streams,
            f"{outcome.alarm_name} → trigger",
            f"   dedup_key: {outcome.dedup_key}",
            *body_lines(outcome, send=args.send),
        )
    if outcome.error is not None:
        warn(streams, f"pagerduty-bridge: {outcome.error}")
        return EXIT_SEND_FAILED
    return EXIT_OK
