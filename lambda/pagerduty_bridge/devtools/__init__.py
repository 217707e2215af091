"""Development tools: local stand-ins for the services the bridge talks to.

Nothing here runs in the Lambda; the modules are imported by tests and the CLI only. This package
re-exports nothing, so ``python -m pagerduty_bridge.devtools.fake_pagerduty`` runs without importing
the module twice.
"""
