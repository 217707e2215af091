"""A local stand-in for PagerDuty's Events API v2 and webhooks v3, for tests and the ``fake-pagerduty`` command.

It checks alert and change events the way PagerDuty documents them, answers with PagerDuty's response
bodies, models alerts the way PagerDuty deduplicates them (per routing key and dedup key), rate-limits
per routing key and plays scripted faults (any status, dropped connections, delays), so the bridge's
retry and no-loss paths run against real sockets. Once subscribed, it announces each incident change
as a signed webhook v3, so the bridge's webhook receiver can be tested end to end. Standard library
only, because it must start in milliseconds and run where nothing else is installed; it binds loopback
addresses only.

Modules, one responsibility each: ``wire`` (paths and PagerDuty's answers), ``validation`` (the rules
events must follow), ``faults`` (scripted answers), ``records`` and ``alerts`` (what PagerDuty holds and
how events and responders change it), ``service`` (one request in, one answer out), ``webhook_events``
(what a webhook says, and its signature), ``webhooks`` (deliveries), ``control`` (``/_fake/``
endpoints), ``server`` (HTTP), ``fake`` (``FakePagerDuty``) and ``command`` (the CLI). Everything a
caller needs is importable from this package.

Sources: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ (fields, limits, dedup
rules), .../events-api-v2/overview/ (response codes, 512 KB), .../events-api-v2/rate-limits/ (about 120
events a minute per routing key over a sliding 60 s window), .../events-api-v2/send-change-events/,
PagerDuty's OpenAPI document for the Events API, and the webhooks v3 pages (payload, signatures,
behaviour).
"""

from __future__ import annotations

from pagerduty_bridge.devtools.fake_pagerduty.alerts import (
    RATE_LIMIT_WINDOW_SECONDS,
    RESPONDER_ACTIONS,
    AlertBook,
    RateLimiter,
    ResponderAction,
    Transition,
)
from pagerduty_bridge.devtools.fake_pagerduty.command import (
    format_request_line,
    format_webhook_line,
    main,
    serve_forever,
)
from pagerduty_bridge.devtools.fake_pagerduty.fake import FakePagerDuty
from pagerduty_bridge.devtools.fake_pagerduty.faults import (
    Delay,
    Drop,
    Fault,
    Respond,
    faults_from_json,
)
from pagerduty_bridge.devtools.fake_pagerduty.records import Alert, AlertStatus, RecordedRequest
from pagerduty_bridge.devtools.fake_pagerduty.service import ApiRequest, EventsService, Reply
from pagerduty_bridge.devtools.fake_pagerduty.validation import (
    EVENT_ACTIONS,
    KNOWN_CHANGE_EVENT_FIELDS,
    KNOWN_EVENT_FIELDS,
    validate_change_event,
    validate_event,
)
from pagerduty_bridge.devtools.fake_pagerduty.webhook_events import (
    INCIDENT_EVENT_TYPES,
    SIGNATURE_HEADER,
    incident_data,
    incident_webhook,
    service_reference,
    sign,
    signature_header,
    user_reference,
)
from pagerduty_bridge.devtools.fake_pagerduty.webhooks import (
    DeliverOutOfOrder,
    Redeliver,
    Subscription,
    WebhookDelivery,
    WebhookFault,
    WebhookSender,
    WrongSecret,
)
from pagerduty_bridge.devtools.fake_pagerduty.wire import (
    CHANGE_ACCEPTED_BODY,
    CHANGE_ENQUEUE_PATH,
    CONTROL_PREFIX,
    ENQUEUE_PATH,
    MAX_REQUEST_BYTES,
    THROTTLED_BODY,
    ResponseBody,
    accepted_body,
    default_response_body,
    invalid_body,
    unrecognized_body,
)
from pagerduty_bridge.devtools.loopback import DEFAULT_HOST

__all__ = [
    "CHANGE_ACCEPTED_BODY",
    "CHANGE_ENQUEUE_PATH",
    "CONTROL_PREFIX",
    "DEFAULT_HOST",
    "ENQUEUE_PATH",
    "EVENT_ACTIONS",
    "INCIDENT_EVENT_TYPES",
    "KNOWN_CHANGE_EVENT_FIELDS",
    "KNOWN_EVENT_FIELDS",
    "MAX_REQUEST_BYTES",
    "RATE_LIMIT_WINDOW_SECONDS",
    "RESPONDER_ACTIONS",
    "SIGNATURE_HEADER",
    "THROTTLED_BODY",
    "Alert",
    "AlertBook",
    "AlertStatus",
    "ApiRequest",
    "Delay",
    "DeliverOutOfOrder",
    "Drop",
    "EventsService",
    "FakePagerDuty",
    "Fault",
    "RateLimiter",
    "RecordedRequest",
    "Redeliver",
    "Reply",
    "Respond",
    "ResponderAction",
    "ResponseBody",
    "Subscription",
    "Transition",
    "WebhookDelivery",
    "WebhookFault",
    "WebhookSender",
    "WrongSecret",
    "accepted_body",
    "default_response_body",
    "faults_from_json",
    "format_request_line",
    "format_webhook_line",
    "incident_data",
    "incident_webhook",
    "invalid_body",
    "main",
    "serve_forever",
    "service_reference",
    "sign",
    "signature_header",
    "unrecognized_body",
    "user_reference",
    "validate_change_event",
    "validate_event",
]
