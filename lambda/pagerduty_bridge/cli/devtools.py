"""``fake-pagerduty``: the local PagerDuty stand-in; ``webhook verify``: check a captured delivery."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagerduty_bridge.cli.common import EXIT_FINDING, EXIT_OK, CliError, Streams, add_json, json_line, say
from pagerduty_bridge.redaction import mask_key
from pagerduty_bridge.text import printable

if TYPE_CHECKING:
    from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty
    from pagerduty_bridge.devtools.fake_pagerduty.command import Lines
    from pagerduty_bridge.devtools.fake_pagerduty.records import RecordedRequest
    from pagerduty_bridge.devtools.fake_pagerduty.webhooks import WebhookDelivery


def register(commands: Any) -> None:
    fake = commands.add_parser("fake-pagerduty", help="run a local stand-in for PagerDuty's Events API and webhooks")
    fake.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)")
    fake.add_argument("--port", type=int, default=8787, help="port; 0 picks a free one (default: 8787)")
    fake.add_argument(
        "--rate-limit", type=int, default=None, metavar="N", help="events per minute per key (default: unlimited)"
    )
    fake.add_argument(
        "--webhook-url",
        default=None,
        metavar="URL",
        help="POST a signed webhook v3 here for each incident change (default: none)",
    )
    fake.add_argument(
        "--webhook-secret", default=None, help="the subscription's signing secret, with --webhook-url (default: none)"
    )
    add_json(fake, "JSON lines: where it listens, then one object per request and per webhook")
    fake.set_defaults(func=run_fake)

    webhook = commands.add_parser("webhook", help="PagerDuty webhooks: check a captured delivery")
    actions = webhook.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="check a delivery's signature offline (exit 0 valid, 1 not, 2 unreadable)"
    )
    verify.add_argument(
        "file", type=Path, help="a function URL event (JSON with headers and body), or the raw body with --signature"
    )
    verify.add_argument(
        "--secret",
        required=True,
        help="the subscription's signing secret, or the secret's value as the function reads it: several, "
        "one per line or a JSON list (required)",
    )
    verify.add_argument(
        "--signature", default=None, help="the X-PagerDuty-Signature header, when FILE is the raw body (default: none)"
    )
    add_json(verify, '{"verdict": …, "event_type": …, "incident_key": …}')
    verify.set_defaults(func=verify_webhook)


def run_fake(args: argparse.Namespace, streams: Streams) -> int:
    from pagerduty_bridge.devtools.fake_pagerduty.command import serve_forever, stop_on_interrupt

    if bool(args.webhook_url) != bool(args.webhook_secret):
        raise CliError("--webhook-url and --webhook-secret go together")
    if threading.current_thread() is threading.main_thread():  # run in-process by a test: no signals there
        stop_on_interrupt()
    try:
        return serve_forever(
            args.host,
            args.port,
            rate_limit=args.rate_limit,
            webhook_url=args.webhook_url or None,
            webhook_secret=args.webhook_secret or None,
            out=streams.out,
            lines=json_lines() if args.json else text_lines(),
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None


def text_lines() -> Lines:
    """The stand-in's lines for people, each one line whatever a request holds: its dedup key (the
    sender's text) is shown with every control character and line break escaped, as ``say`` does."""
    from pagerduty_bridge.devtools.fake_pagerduty.command import TEXT_LINES, Lines

    return Lines(
        request=lambda record: printable(TEXT_LINES.request(record)),
        webhook=lambda delivery: printable(TEXT_LINES.webhook(delivery)),
        started=TEXT_LINES.started,
        stopped=TEXT_LINES.stopped,
    )


def json_lines() -> Lines:
    """The stand-in with JSON lines: ``{"listening"…}`` first, then one object per request and webhook,
    routing keys masked (last four characters), until Ctrl-C."""
    from pagerduty_bridge.devtools.fake_pagerduty.command import Lines
    from pagerduty_bridge.devtools.fake_pagerduty.records import scrub_key

    def request(record: RecordedRequest) -> str:
        body = record.body if isinstance(record.body, dict) else {}
        key = body.get("routing_key")
        shown = {
            "request": f"{record.method} {record.path}",
            "event_action": body.get("event_action"),
            "dedup_key": body.get("dedup_key"),
            "routing_key": mask_key(key) or None,
            "status": record.status,
        }
        return scrub_key(json_line(shown), key)

    def webhook(delivery: WebhookDelivery) -> str:
        data = delivery.payload["event"]["data"]
        return json_line(
            {"webhook": delivery.event_type, "incident_key": data.get("incident_key"), "status": delivery.status}
        )

    def started(fake: FakePagerDuty, webhook_url: str | None) -> list[str]:
        return [json_line({"listening": fake.base_url, "events_url": fake.url})]

    return Lines(request=request, webhook=webhook, started=started, stopped=None)


def _delivery(args: argparse.Namespace) -> tuple[bytes, str | None]:
    """The body bytes and signature header of a captured delivery."""
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: cannot be read ({exc.__class__.__name__})") from None
    if args.signature is not None:
        return raw, args.signature
    try:
        event = json.loads(raw)
    except ValueError:
        raise CliError(f"{args.file}: not a function URL event (JSON); give the raw body with --signature") from None
    from pagerduty_bridge.webhook_sync import SIGNATURE_HEADER, header, raw_body

    if isinstance(event, dict) and "event" in event and "body" not in event:
        # A webhook's own body saved as it came: read as a function URL event it would have no body.
        raise CliError(f"{args.file}: a webhook's raw body, not a function URL event: give its --signature")
    body = raw_body(event) if isinstance(event, dict) else None
    if body is None:
        raise CliError(f"{args.file}: no readable body in the event; give a raw body with --signature")
    return body, header(event, SIGNATURE_HEADER)


def verify_webhook(args: argparse.Namespace, streams: Streams) -> int:
    from pagerduty_bridge.webhook_sync import Verdict, WebhookError, parse_webhook, signing_secrets, verify

    # Read as the receiver reads its secret (several lines or a JSON list, each stripped): the value
    # pasted from the secret gets the function's own verdict.
    secrets = signing_secrets(args.secret)
    if not secrets:
        raise CliError("--secret holds no signing secret (empty, or the stack's placeholder)")
    body, signature = _delivery(args)
    verdict = verify(body, signature, secrets)
    shown: dict[str, Any] = {"verdict": verdict.value}
    try:
        event = parse_webhook(body)
    except WebhookError as exc:
        shown["problem"] = str(exc)
        event = None
    if event is not None:
        shown.update(event_id=event.event_id, event_type=event.event_type, incident_key=event.incident_key)
    if args.json:
        print(json_line(shown), file=streams.out)
    else:
        for name, value in shown.items():
            say(streams, f"{name:14} {value}")
    return EXIT_OK if verdict is Verdict.VALID else EXIT_FINDING
