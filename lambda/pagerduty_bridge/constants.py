"""Names and limits shared by the Lambda code, the CLI and the CDK stack.

Everything that two of those must agree on lives here, once: environment variable names, the incident
table's key schema and index, metric names, and PagerDuty's documented limits. This module imports
nothing, so ``infra/`` can read it without pulling in the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# --- Environment variables (read only by settings.py; set by infra/stack.py) -------------------------
ENV_INTEGRATION_KEY: Final = "PAGERDUTY_INTEGRATION_KEY"
"""Plaintext routing key: for local use only. The stack passes a secret's ARN instead."""
ENV_INTEGRATION_KEY_SECRET_ARN: Final = "PAGERDUTY_INTEGRATION_KEY_SECRET_ARN"  # noqa: S105 - a variable name
"""Secrets Manager secret holding the routing key (plain string or JSON ``{"default": "…"}``)."""
ENV_SERVICE_NAME: Final = "PAGERDUTY_SERVICE_NAME"
ENV_ESCALATION_POLICY_ID: Final = "PAGERDUTY_ESCALATION_POLICY_ID"
ENV_EVENTS_URL: Final = "PAGERDUTY_EVENTS_URL"
ENV_ENVIRONMENT: Final = "ENVIRONMENT"
ENV_TABLE_NAME: Final = "INCIDENT_TABLE_NAME"
ENV_INSUFFICIENT_DATA_ACTION: Final = "INSUFFICIENT_DATA_ACTION"
ENV_UNRECOGNIZED_MESSAGE_ACTION: Final = "UNRECOGNIZED_MESSAGE_ACTION"
ENV_DEDUP_KEY_STRATEGY: Final = "DEDUP_KEY_STRATEGY"
ENV_DEFAULT_SEVERITY: Final = "DEFAULT_SEVERITY"
ENV_RETRY_BUDGET_SECONDS: Final = "PAGERDUTY_RETRY_BUDGET_SECONDS"
ENV_RESOLVED_RETENTION_DAYS: Final = "RESOLVED_INCIDENT_RETENTION_DAYS"
ENV_ALERT_RULES: Final = "ALERT_RULES"
"""The alert rules document itself (JSON), e.g. from CDK context."""
ENV_ALERT_RULES_FILE: Final = "ALERT_RULES_FILE"
"""A path to the alert rules document (JSON, or YAML where PyYAML is installed)."""
ENV_ROUTING_KEYS: Final = "PAGERDUTY_ROUTING_KEYS"
"""Plaintext JSON ``{"alias": "routing key"}``: for local use only."""
ENV_ROUTING_KEY_SECRETS: Final = "PAGERDUTY_ROUTING_KEY_SECRETS"
"""JSON ``{"alias": "secret ARN"}``: one Secrets Manager secret per routing-key alias."""
ENV_WEBHOOK_SECRET_ARN: Final = "PAGERDUTY_WEBHOOK_SECRET_ARN"  # noqa: S105 - a variable name
"""Secrets Manager secret holding the signing secret of the PagerDuty webhook subscription."""
ENV_WEBHOOK_SECRET: Final = "PAGERDUTY_WEBHOOK_SECRET"  # noqa: S105 - a variable name
"""The webhook signing secret in plaintext: for local use only."""
ENV_WEBHOOK_SERVICE_IDS: Final = "PAGERDUTY_WEBHOOK_SERVICE_IDS"
"""The ids of the PagerDuty services the bridge pages (comma-separated): webhooks about incidents of
any other service are ignored (an account-wide subscription delivers every service's)."""
INTEGRATION_KEY_PLACEHOLDER: Final = "REPLACE-WITH-THE-PAGERDUTY-INTEGRATION-KEY"
"""What the stack's created integration-key secret holds until the key is put in: not 32 characters,
so never a valid key."""
WEBHOOK_SECRET_PLACEHOLDER: Final = "REPLACE-WITH-THE-PAGERDUTY-WEBHOOK-SIGNING-SECRET"  # noqa: S105 - not a secret
"""What the stack's created signing secret holds until the subscription's secret is put in. It is
public (here), so a signature made with it proves nothing: the receiver treats it as no secret."""
ENV_CHANGE_EVENTS_URL: Final = "PAGERDUTY_CHANGE_EVENTS_URL"
"""Change Events endpoint; by default ``/v2/change/enqueue`` on the Events URL's origin."""
ENV_RECONCILE_ROLE_ARNS: Final = "RECONCILE_ROLE_ARNS"
"""JSON ``{"account id": "role ARN"}``: a read-only role reconciliation assumes to read another
account's alarms. An incident of an account without a role is left alone, never called "gone"."""
ENV_TEMPLATE_COMPONENT: Final = "TEMPLATE_COMPONENT"
"""The seed templates' component: alarms named ``{env}-{component}-{template}`` use them."""
ENV_TEMPLATE_GROUP: Final = "TEMPLATE_GROUP"
ENV_TEMPLATE_DASHBOARD_URL: Final = "TEMPLATE_DASHBOARD_URL"
"""A dashboard the seed templates link to (none by default)."""
ENV_TEMPLATE_DASHBOARD_TEXT: Final = "TEMPLATE_DASHBOARD_TEXT"
ENV_PAGERDUTY_CLIENT: Final = "PAGERDUTY_CLIENT"
"""The seed templates' ``client`` (default: the service name)."""
ENV_PAGERDUTY_CLIENT_URL: Final = "PAGERDUTY_CLIENT_URL"
ENV_AWS_REGION: Final = "AWS_REGION"
"""Set by Lambda; the seed templates' CloudWatch dashboard link points at this region."""
ENV_POWERTOOLS_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
ENV_POWERTOOLS_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
ENV_POWERTOOLS_LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"
ENV_LOG_LEVEL: Final = "LOG_LEVEL"
"""Powertools' older name for ``POWERTOOLS_LOG_LEVEL``, which wins over it."""

ALL_SETTINGS_ENV_VARS: Final = (
    ENV_INTEGRATION_KEY,
    ENV_INTEGRATION_KEY_SECRET_ARN,
    ENV_SERVICE_NAME,
    ENV_ESCALATION_POLICY_ID,
    ENV_EVENTS_URL,
    ENV_ENVIRONMENT,
    ENV_TABLE_NAME,
    ENV_INSUFFICIENT_DATA_ACTION,
    ENV_UNRECOGNIZED_MESSAGE_ACTION,
    ENV_DEDUP_KEY_STRATEGY,
    ENV_DEFAULT_SEVERITY,
    ENV_RETRY_BUDGET_SECONDS,
    ENV_RESOLVED_RETENTION_DAYS,
    ENV_ALERT_RULES,
    ENV_ALERT_RULES_FILE,
    ENV_ROUTING_KEYS,
    ENV_ROUTING_KEY_SECRETS,
    ENV_WEBHOOK_SECRET_ARN,
    ENV_WEBHOOK_SECRET,
    ENV_WEBHOOK_SERVICE_IDS,
    ENV_CHANGE_EVENTS_URL,
    ENV_RECONCILE_ROLE_ARNS,
    ENV_TEMPLATE_COMPONENT,
    ENV_TEMPLATE_GROUP,
    ENV_TEMPLATE_DASHBOARD_URL,
    ENV_TEMPLATE_DASHBOARD_TEXT,
    ENV_PAGERDUTY_CLIENT,
    ENV_PAGERDUTY_CLIENT_URL,
)

DEFAULT_ROUTING_KEY_ALIAS: Final = "default"
"""The routing-key alias of the integration key itself (also its field in a JSON secret)."""
MAX_ROUTING_KEY_ALIAS_LENGTH: Final = 256
"""The longest routing-key alias an incident keeps (as long as a tag value): its acknowledge and resolve
go to the alias it keeps, so a longer one is not used (a rule naming one is refused at load)."""

# --- Lambda ------------------------------------------------------------------------------------------
HANDLER: Final = "pagerduty_bridge.handler.lambda_handler"
WEBHOOK_HANDLER: Final = "pagerduty_bridge.webhook.lambda_handler"
"""The PagerDuty webhook receiver: its own function, behind a function URL, with least privilege."""
PACKAGE_NAME: Final = "pagerduty_bridge"
METRICS_NAMESPACE: Final = "PagerDutyBridge"
SERVICE_NAME: Final = "pagerduty-bridge"
"""The Powertools service name (the logs' ``service``, the metrics' ``service`` dimension) where nothing
else is set: a local run. A deployed bridge's is ``deployed_service_name(environment)``."""


def deployed_service_name(environment: str) -> str:
    """The service name of the bridge deployed for ``environment`` (``pagerduty-bridge-prod``), so that
    each bridge of an account and region has its own metrics: another bridge's failures (a dev stack's
    placeholder key) must never hold this one's health alarms in ALARM, masking its own."""
    return f"{SERVICE_NAME}-{environment}"


def service_name(environ: Mapping[str, str]) -> str:
    """The service name a handler logs and emits metrics under: the deployment's, else ``SERVICE_NAME``."""
    return environ.get(ENV_POWERTOOLS_SERVICE_NAME) or SERVICE_NAME


# --- Metric names (emitted by the handler, alarmed on by the stack) ---------------------------------
METRIC_NOTIFICATION_RECEIVED: Final = "NotificationReceived"
"""Every record of every event, whatever became of it: the bridge's throughput."""
METRIC_DELIVERY_FAILED: Final = "DeliveryFailed"
METRIC_INCIDENT_TRIGGERED: Final = "IncidentTriggered"
METRIC_INCIDENT_RESOLVED: Final = "IncidentResolved"
METRIC_INCIDENT_ACKNOWLEDGED: Final = "IncidentAcknowledged"
METRIC_DELIVERY_FAILED_TRANSIENT: Final = "DeliveryFailedTransient"
METRIC_DELIVERY_FAILED_PERMANENT: Final = "DeliveryFailedPermanent"
METRIC_STALE_NOTIFICATION: Final = "StaleNotification"
METRIC_DUPLICATE_NOTIFICATION: Final = "DuplicateNotification"
METRIC_INVALID_MESSAGE: Final = "InvalidMessage"
METRIC_UNRECOGNIZED_MESSAGE: Final = "UnrecognizedMessage"
METRIC_INCIDENT_RESOLVED_BY: Final = "IncidentResolved{how}"
"""Per way of resolving: IncidentResolvedAuto, IncidentResolvedManual, IncidentResolvedReconciled."""
METRIC_RESOLUTION_TIME: Final = "ResolutionTime"
METRIC_PAGERDUTY_LATENCY: Final = "PagerDutyLatency"

METRIC_SILENCED_NOTIFICATION: Final = "SilencedNotification"
METRIC_WEBHOOK_RECEIVED: Final = "WebhookReceived"
METRIC_WEBHOOK_APPLIED: Final = "WebhookApplied"
METRIC_WEBHOOK_IGNORED: Final = "WebhookIgnored"
"""A webhook about an incident the bridge did not open, a redelivery, or an older event."""
METRIC_WEBHOOK_REJECTED: Final = "WebhookRejected"
"""A webhook refused: missing or bad signature, too large, not JSON."""
METRIC_WEBHOOK_FAILED: Final = "WebhookFailed"
"""A webhook the receiver could not record (the table or the signing secret failed): answered 5xx, so
PagerDuty delivers it again; alarmed on, as the function answered and so raised no error."""
METRIC_CHANGE_EVENT_SENT: Final = "ChangeEventSent"
METRIC_RECONCILE_RACE_LOST: Final = "ReconcileRaceLost"
"""A reconciliation that found its incident changed since it read it: the newer notification wins."""

RECONCILE_SCHEDULE_DETAIL_TYPE: Final = "Scheduled Event"
"""EventBridge's detail-type for schedule rules: the handler answers it by reconciling."""

CLOUDFORMATION_SOURCE: Final = "aws.cloudformation"
STACK_STATUS_CHANGE_DETAIL_TYPE: Final = "CloudFormation Stack Status Change"
"""EventBridge's event for a stack's status: completed ones become PagerDuty Change Events."""

# --- Incident table schema (the single definition; infra/ builds the table from it) -----------------
TABLE_PARTITION_KEY: Final = "dedup_key"
"""One item per dedup key: the incident currently tracked for that alarm."""
ACTIVE_INDEX_NAME: Final = "active-incidents"
ACTIVE_INDEX_PARTITION_KEY: Final = "active"
"""Sparse index: present (value ``ACTIVE_MARKER``) only while the incident is open, so listing active
incidents is one Query on a small index instead of a Scan of the whole history."""
ACTIVE_INDEX_SORT_KEY: Final = "active_since"
"""When the incident opened (its trigger time, else its last update): orders the active list."""
ACTIVE_MARKER: Final = "open"
SILENCE_MARKER: Final = "silence"
"""Silences live in the incident table under their own key space (``SILENCE_KEY_PREFIX`` + id) and
the sparse index's partition ``silence``, so listing them is one Query and TTL expires them."""
SILENCE_KEY_PREFIX: Final = "silence#"
TTL_ATTRIBUTE: Final = "expires_at"
"""Epoch seconds; set only on resolved incidents so the table does not grow forever."""

# --- PagerDuty Events API v2 limits (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/)
DEFAULT_EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"
MAX_DEDUP_KEY_LENGTH: Final = 255
"""``dedup_key`` is limited to 255 characters; longer keys are rejected with 400."""
MAX_SUMMARY_LENGTH: Final = 1024
"""``payload.summary`` is limited to 1024 characters; PagerDuty truncates or rejects longer ones."""
MAX_EVENT_BYTES: Final = 512 * 1024
"""A whole event may be at most 512 KB; larger ones are rejected with 400."""
ROUTING_KEY_LENGTH: Final = 32
"""Integration (routing) keys are 32 characters."""
SEVERITIES: Final = ("critical", "error", "warning", "info")
