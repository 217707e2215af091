"""Development tools: local stand-ins for the services the bridge talks to and is called by.

Nothing here runs in the Lambda; the modules are imported by tests and the CLI only:
``fake_pagerduty`` (PagerDuty's Events API and webhooks), ``function_url`` (a Lambda function URL on a
loopback port) and ``loopback`` (the HTTP plumbing both share). This package re-exports nothing, so
importing one tool never loads the others.
"""
