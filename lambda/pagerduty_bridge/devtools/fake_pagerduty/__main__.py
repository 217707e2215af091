"""``python -m pagerduty_bridge.devtools.fake_pagerduty``: run the stand-in until Ctrl-C."""

from __future__ import annotations

from pagerduty_bridge.devtools.fake_pagerduty.command import main

raise SystemExit(main())
