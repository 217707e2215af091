"""The ``pagerduty-bridge`` command. ``main(argv) -> int`` is callable from tests; ``entrypoint()`` is
the console script. One module per command group; ``app`` wires them."""

from __future__ import annotations

from pagerduty_bridge.cli.app import entrypoint, main
from pagerduty_bridge.cli.common import DRY_RUN_KEY

__all__ = ["DRY_RUN_KEY", "entrypoint", "main"]
