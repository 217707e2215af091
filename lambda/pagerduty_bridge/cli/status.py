"""``stats`` and ``health``: the seed's key metrics, and whether the bridge can do its job."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from pagerduty_bridge import constants as c
from pagerduty_bridge.cli.common import (
    EXIT_FINDING,
    EXIT_OK,
    CliError,
    Streams,
    add_json,
    add_store_options,
    configured_keys,
    json_line,
    load_settings,
    open_store,
    say,
    whole_number,
)
from pagerduty_bridge.cli.failures import describe
from pagerduty_bridge.errors import BridgeError, ConfigurationError, PagerDutyApiError
from pagerduty_bridge.operations import (
    DEFAULT_MAX_ACTIVE_INCIDENTS,
    Check,
    active_incident_check,
    compute_stats,
    parse_duration,
)
from pagerduty_bridge.settings import Settings


def register(commands: Any) -> None:
    stats = commands.add_parser("stats", help="the seed's key metrics from the incident store")
    stats.add_argument("--since", default=None, metavar="DURATION", help="e.g. 24h, 7d (default: everything kept)")
    add_json(stats, "one object of figures")
    add_store_options(stats)
    stats.set_defaults(func=show_stats)

    health = commands.add_parser(
        "health", help="check configuration, keys, store and active incidents (exit 1 with warnings)"
    )
    health.add_argument(
        "--ping",
        action="store_true",
        help="also check that PagerDuty answers; creates no alert (default: no request to PagerDuty)",
    )
    health.add_argument(
        "--max-active",
        type=whole_number(0, "is below 0: give 0 (warn on any active incident) or more"),
        default=DEFAULT_MAX_ACTIVE_INCIDENTS,
        metavar="N",
        help=f"warn above N active incidents (default: {DEFAULT_MAX_ACTIVE_INCIDENTS})",
    )
    health.add_argument(
        "--events-url", default=None, metavar="URL", help=f"Events API URL to check (default: {c.DEFAULT_EVENTS_URL})"
    )
    add_json(health, '{"healthy": …, "checks": […]}')
    add_store_options(health)
    health.set_defaults(func=show_health)


def show_stats(args: argparse.Namespace, streams: Streams) -> int:
    store = open_store(args, load_settings(args))
    try:
        since = parse_duration(args.since) if args.since else None
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None
    if since is not None and since <= timedelta(0):  # 0s, or less than the microsecond a clock counts
        raise CliError(f"--since {args.since}: a window must be longer than zero")
    figures = compute_stats(store.list_all(), since=since, now=datetime.now(UTC)).as_dict()
    if args.json:
        print(json_line(figures), file=streams.out)
    else:
        for key, value in figures.items():
            say(streams, f"{key:30} {_shown(value)}")
    return EXIT_OK


def _shown(value: object) -> str:
    """A figure for people: ``-`` for none, a breakdown (resolutions by how) as ``auto 2, manual 0``."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{name} {count}" for name, count in value.items())
    return str(value)


def show_health(args: argparse.Namespace, streams: Streams) -> int:
    checks = run_health_checks(args)
    healthy = all(check.ok for check in checks)
    if args.json:
        body = {"healthy": healthy, "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in checks]}
        print(json_line(body), file=streams.out)
    else:
        width = max(18, *(len(check.name) for check in checks))  # an alias's name can be long
        for check in checks:
            say(streams, f"{'ok  ' if check.ok else 'WARN'}  {check.name:{width}} {check.message}")
    return EXIT_OK if healthy else EXIT_FINDING


def run_health_checks(args: argparse.Namespace) -> list[Check]:
    try:
        settings = load_settings(args)
    except ConfigurationError as exc:
        return [Check("configuration", False, str(exc))]
    checks = [Check("configuration", True, f"environment {settings.environment}")]
    checks.extend(key_checks(args, settings))
    checks.append(Check("events_url", True, settings.events_url))
    if args.ping:
        checks.append(ping_pagerduty(settings.events_url))
    try:
        store = open_store(args, settings)
        store.ping()
        active = len(store.list_active())
    except (BridgeError, CliError) as exc:
        return [*checks, Check("store", False, describe(exc) or str(exc))]
    return [*checks, Check("store", True, f"{store!r} reachable"), active_incident_check(active, args.max_active)]


def key_checks(args: argparse.Namespace, settings: Settings) -> list[Check]:
    """One check per routing-key alias: each loads on its own, so one broken alias is named alone."""
    keys = configured_keys(args, settings)
    if not keys.configured:
        return [
            Check(
                "integration_key",
                False,
                f"no PagerDuty integration key: set {c.ENV_INTEGRATION_KEY_SECRET_ARN} (or {c.ENV_INTEGRATION_KEY} locally)",
            )
        ]
    try:
        in_secret = keys.secret_aliases()  # a JSON secret may route to several services
    except ConfigurationError:
        in_secret = []  # the check of the default alias, which reads the same secret, says why
    checks = []
    for alias in sorted({*keys.aliases(), *in_secret}):
        try:
            keys.get(alias)
        except ConfigurationError as exc:
            checks.append(Check(f"routing_key {alias}", False, describe(exc) or str(exc)))
        else:
            checks.append(Check(f"routing_key {alias}", True, "configured, well-formed"))
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
