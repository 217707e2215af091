"""``python -m pagerduty_bridge``: the same command as ``pagerduty-bridge``."""

from pagerduty_bridge.cli import entrypoint

entrypoint()
