"""The stand-in as a command: serve until Ctrl-C, one masked line per request and per webhook.

``pagerduty-bridge fake-pagerduty`` and ``python -m pagerduty_bridge.devtools.fake_pagerduty`` both end
here, with the same options. Output never holds a routing key (only its last four characters) nor the
webhook secret.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import FrameType
from typing import Final, TextIO

from pagerduty_bridge.devtools.fake_pagerduty.fake import FakePagerDuty
from pagerduty_bridge.devtools.fake_pagerduty.records import RecordedRequest, scrub_key
from pagerduty_bridge.devtools.fake_pagerduty.webhooks import WebhookDelivery
from pagerduty_bridge.devtools.fake_pagerduty.wire import CHANGE_ENQUEUE_PATH, CONTROL_PREFIX, ENQUEUE_PATH
from pagerduty_bridge.devtools.loopback import DEFAULT_HOST, loopback
from pagerduty_bridge.redaction import mask_key
from pagerduty_bridge.text import printable

MAX_LINE_CHARS: Final = 200
"""The CLI prints one short line per request."""
IDLE_SLEEP_SECONDS: Final = 3600
"""The main thread only waits for Ctrl-C; requests are served on other threads."""


def _shorten(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"


def _outcome(record: RecordedRequest) -> str:
    if record.status is None:
        return "dropped (no answer)"
    outcome = str(record.status)
    answer = record.response_body if isinstance(record.response_body, dict) else {}
    errors = answer.get("errors")
    if record.status == HTTPStatus.BAD_REQUEST and isinstance(errors, list) and errors:
        outcome += f" {errors[0]}" + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
    if record.ignored:
        outcome += " (no open alert for this routing key: dropped, as PagerDuty does)"
    if record.fault:
        outcome += f" [scripted {record.fault}]"
    return outcome


def format_request_line(record: RecordedRequest) -> str:
    """One short line for a request: action, dedup key, masked routing key, answer. Never the key."""
    body = record.body if isinstance(record.body, dict) else {}
    routing_key = body.get("routing_key")
    if record.path == ENQUEUE_PATH and record.method == "POST":
        what = str(body.get("event_action") or "?")
    elif record.path == CHANGE_ENQUEUE_PATH and record.method == "POST":
        what = "change"
    else:
        what = f"{record.method} {record.path}"
    dedup_key = body.get("dedup_key")
    answer = record.response_body if isinstance(record.response_body, dict) else {}
    if not dedup_key and isinstance(answer.get("dedup_key"), str):
        dedup_key = f"{answer['dedup_key']} (generated)"
    shown_key = mask_key(routing_key) or "-"
    line = f"{what:<11} dedup_key={dedup_key or '-'} routing_key={shown_key} -> {_outcome(record)}"
    return _shorten(printable(scrub_key(line, routing_key)))


def format_webhook_line(delivery: WebhookDelivery) -> str:
    """One short line for a webhook delivery: event type, incident key, the subscriber's answer."""
    data = delivery.payload["event"]["data"]
    answer = str(delivery.status) if delivery.status is not None else f"no answer ({delivery.error})"
    fault = f" [{delivery.fault}]" if delivery.fault else ""
    return _shorten(
        printable(f"webhook     {delivery.event_type} incident_key={data['incident_key']} -> {answer}{fault}")
    )


def _started(fake: FakePagerDuty, webhook_url: str | None) -> list[str]:
    lines = [
        f"fake PagerDuty listening: --events-url {fake.url}  "
        f"(inspect: {fake.base_url}{CONTROL_PREFIX}alerts; Ctrl-C stops)"
    ]
    if webhook_url is not None:
        lines.append(f"webhooks v3 go to {webhook_url} (signed with the given secret)")
    return lines


@dataclass(frozen=True)
class Lines:
    """What the running stand-in prints: a line per request and per webhook, when it starts and stops."""

    request: Callable[[RecordedRequest], str] = format_request_line
    webhook: Callable[[WebhookDelivery], str] = format_webhook_line
    started: Callable[[FakePagerDuty, str | None], list[str]] = _started
    stopped: str | None = "fake PagerDuty stopped"


TEXT_LINES: Final = Lines()


def serve_forever(
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    rate_limit: int | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    out: TextIO | None = None,
    lines: Lines = TEXT_LINES,
) -> int:
    """Run the fake until Ctrl-C, printing the events URL, then one masked line per request; returns 0.

    With ``webhook_url`` (and its ``webhook_secret``) every incident change is POSTed there, signed.
    ``out`` defaults to the current ``sys.stdout`` (looked up at call time, so captured output works);
    ``lines`` says what is printed (``pagerduty-bridge fake-pagerduty --json`` prints JSON lines).
    """
    if (webhook_url is None) != (webhook_secret is None):
        raise ValueError("--webhook-url and --webhook-secret go together")
    stream = sys.stdout if out is None else out
    write_lock = threading.Lock()

    def write(line: str) -> None:
        with write_lock:
            stream.write(line + "\n")
            stream.flush()

    fake = FakePagerDuty(
        host,
        port,
        rate_limit=rate_limit,
        on_request=lambda record: write(lines.request(record)),
        on_webhook=lambda delivery: write(lines.webhook(delivery)),
    )
    if webhook_url is not None and webhook_secret is not None:
        fake.subscribe_webhooks(webhook_url, webhook_secret)
    fake.start()
    try:
        for line in lines.started(fake, webhook_url):
            write(line)
        while True:
            time.sleep(IDLE_SLEEP_SECONDS)
    except KeyboardInterrupt:
        if lines.stopped is not None:
            write(lines.stopped)
    finally:
        fake.stop()
    return 0


def build_parser(prog: str = "python -m pagerduty_bridge.devtools.fake_pagerduty") -> argparse.ArgumentParser:
    """The command's options; ``pagerduty-bridge fake-pagerduty`` spells them the same way."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Local stand-in for PagerDuty's Events API v2 and webhooks v3 (loopback only).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="loopback address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="events per minute per routing key (default: unlimited)",
    )
    parser.add_argument(
        "--webhook-url",
        default=None,
        metavar="URL",
        help="POST a signed webhook v3 here for each incident change (default: none, no webhooks)",
    )
    parser.add_argument(
        "--webhook-secret",
        default=None,
        metavar="SECRET",
        help="the webhook subscription's signing secret, required with --webhook-url (default: none)",
    )
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def stop_on_interrupt() -> None:
    """Ctrl-C and a supervisor's SIGTERM both stop the stand-in cleanly, even when its parent ignored
    SIGINT (a background job of a shell without job control hands that on). Main thread only."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pagerduty_bridge.devtools.fake_pagerduty [--port N]``: serve until Ctrl-C or SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if (args.webhook_url is None) != (args.webhook_secret is None):
        parser.error("--webhook-url and --webhook-secret go together")
    stop_on_interrupt()
    return serve_forever(
        args.host,
        args.port,
        rate_limit=args.rate_limit,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )
