"""``fake-pagerduty``: the local PagerDuty stand-in, for trying the bridge without an account."""

from __future__ import annotations

import argparse
from typing import Any

from pagerduty_bridge.cli.common import Streams


def register(commands: Any) -> None:
    fake = commands.add_parser("fake-pagerduty", help="run a local stand-in for PagerDuty's Events API")
    fake.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1)")
    fake.add_argument("--port", type=int, default=8787, help="(default: 8787)")
    fake.add_argument(
        "--rate-limit", type=int, default=None, metavar="N", help="events per minute per key (default: unlimited)"
    )
    fake.set_defaults(func=run_fake)


def run_fake(args: argparse.Namespace, streams: Streams) -> int:
    from pagerduty_bridge.devtools.fake_pagerduty import serve_forever

    return serve_forever(args.host, args.port, rate_limit_per_minute=args.rate_limit, out=streams.out)
