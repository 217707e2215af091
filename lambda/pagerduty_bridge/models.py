"""The bridge's data: the domain's enums, what an alarm says, what the incident table keeps.

Field names follow the wire formats they come from (CloudWatch's alarm message, PagerDuty's Events
API) in snake_case. Every model is a frozen dataclass: a new state is a new object
(``dataclasses.replace``), and building one costs next to nothing on the paging path. The seed API's
validated models (``ServiceConfig``, ``AlertMessage``) live in ``pagerduty_bridge.seed.models``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pagerduty_bridge import constants as c
from pagerduty_bridge.timeutil import utc

__all__ = [
    "AlarmKind",
    "AlarmNotification",
    "AlarmState",
    "AlertSeverity",
    "ControlMessage",
    "DedupKeyStrategy",
    "EventAction",
    "EventResponse",
    "Incident",
    "IncidentStatus",
    "InsufficientDataAction",
    "MetricQuery",
    "Origin",
    "Resolution",
    "Secret",
    "StackStatusChange",
    "UnrecognizedMessage",
    "UnrecognizedMessageAction",
    "utc",
]


class AlertSeverity(StrEnum):
    """PagerDuty's ``payload.severity`` values; the seed's CRITICAL/WARNING/INFO map onto them.

    Read in any case (``AlertSeverity("WARNING")``), wherever one is read: a rule, the seed API, a tag.
    """

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @classmethod
    def _missing_(cls, value: object) -> AlertSeverity | None:
        lowered = value.lower() if isinstance(value, str) else None
        return next((member for member in cls if member.value == lowered), None)


class AlarmState(StrEnum):
    ALARM = "ALARM"
    OK = "OK"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class AlarmKind(StrEnum):
    METRIC = "metric"
    METRIC_MATH = "metric_math"
    ANOMALY_DETECTION = "anomaly_detection"
    COMPOSITE = "composite"


class EventAction(StrEnum):
    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    """How an incident was resolved: by its alarm going OK, by a person through the bridge, by
    reconciliation, or by a responder in PagerDuty (reported back by webhook)."""

    AUTO = "auto"
    MANUAL = "manual"
    RECONCILED = "reconciled"
    PAGERDUTY = "pagerduty"


class Origin(StrEnum):
    """Where an incident came from: an alarm (reconciliation checks it against CloudWatch), a
    forwarded message that is not an alarm, or a trigger made by hand (the seed API, the CLI)."""

    ALARM = "alarm"
    MESSAGE = "message"
    MANUAL = "manual"


class InsufficientDataAction(StrEnum):
    IGNORE = "ignore"
    RESOLVE = "resolve"
    TRIGGER = "trigger"


class UnrecognizedMessageAction(StrEnum):
    FORWARD = "forward"
    DROP = "drop"


class DedupKeyStrategy(StrEnum):
    ALARM_NAME = "alarm-name"
    ALARM_ARN = "alarm-arn"


class Secret:
    """A secret string that never shows in a repr, a log line or an error (``**********``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def of(cls, value: object) -> Secret:
        """A ``Secret`` from a plain string, a ``Secret``, or anything with ``get_secret_value()``."""
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return cls(value)
        getter = getattr(value, "get_secret_value", None)
        if callable(getter):
            return cls(str(getter()))
        raise TypeError(f"a secret must be a string, not {type(value).__name__}")

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One entry of a metric-math or anomaly-detection alarm's ``Metrics[]``."""

    id: str
    expression: str | None = None
    label: str | None = None
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)
    stat: str | None = None
    period: int | None = None
    return_data: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """Its set fields, for an event's custom details."""
        return {
            name: value
            for name in self.__slots__
            if (value := getattr(self, name)) is not None and value not in ({}, "")
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmNotification:
    """Everything the bridge knows about one alarm state change, however it arrived."""

    kind: AlarmKind
    alarm_name: str
    new_state: AlarmState
    state_change_time: datetime
    alarm_arn: str | None = None
    description: str | None = None
    account_id: str | None = None
    region_code: str | None = None
    region_name: str | None = None
    partition: str = "aws"
    old_state: AlarmState | None = None
    reason: str = ""
    comparison: str | None = None
    """How the reason words the comparison ("greater than" …), read once by the parser."""
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)
    statistic: str | None = None
    period: int | None = None
    evaluation_periods: int | None = None
    threshold: float | None = None
    comparison_operator: str | None = None
    unit: str | None = None
    treat_missing_data: str | None = None
    metrics: tuple[MetricQuery, ...] = ()
    threshold_metric_id: str | None = None
    alarm_rule: str | None = None
    triggering_children: tuple[str, ...] = ()
    current_value: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    contributor_id: str | None = None
    """The time series (contributor) of a multi-time-series Metrics Insights alarm this notification is
    about; ``None`` for a notification about the alarm itself."""
    contributor_attributes: dict[str, str] = field(default_factory=dict)
    """What names that time series (its ``GROUP BY`` dimensions, e.g. ``TableName``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnrecognizedMessage:
    """A message on the alarm topic that is not an alarm (AWS Budgets text, a test message …)."""

    text: str
    received_at: datetime
    subject: str | None = None
    problem: str | None = None
    """Set when the message looked like an alarm but could not be read as one."""


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A message that needs no page: SNS (un)subscribe confirmations, alarm configuration changes."""

    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StackStatusChange:
    """A CloudFormation stack's status change (EventBridge): a completed one is a PagerDuty Change Event."""

    stack_id: str
    stack_name: str
    status: str
    status_reason: str = ""
    account_id: str | None = None
    region_code: str | None = None
    partition: str = "aws"
    time: datetime
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """The incident the bridge tracks for one dedup key (one item of the incident table).

    ``state_changed_at`` is the alarm's own ``StateChangeTime`` of the newest notification handled:
    anything not newer changes nothing. ``version`` increases with every write, and every write is
    conditional on the version it read, so two invocations can never both win.
    ``pending_action`` is set while an event is on its way to PagerDuty and cleared only once
    PagerDuty accepted it; ``lease_until`` says until when the invocation that set it may still be
    working on it. ``unconfirmed_until`` is set when a request's outcome was unknown (a read timeout, a
    connection dropped after sending): until then such a request may still land at PagerDuty, so the
    current state is asserted again afterwards. ``trigger_sent_at`` is when the bridge last sent a
    trigger for a key that had an incident before (claimed, then accepted), by its own clock: PagerDuty
    opens a new incident for a trigger after a resolution, so a PagerDuty-side change from before then
    may be about the earlier incident under the same dedup key, and changes nothing. The ``pd_*``
    fields are what PagerDuty reported back (webhooks): its incident, who acknowledged or resolved it,
    and when.
    """

    dedup_key: str
    alarm_name: str
    status: IncidentStatus
    updated_at: datetime
    severity: AlertSeverity = AlertSeverity.CRITICAL
    summary: str = ""
    routing_key_alias: str = c.DEFAULT_ROUTING_KEY_ALIAS
    routing_key_digest: str | None = None
    """A digest of the routing key the incident's last trigger went out with (never the key): only that
    key acknowledges or resolves its alert, so an alias whose key has changed since cannot."""
    origin: Origin = Origin.ALARM
    alarm_state: AlarmState | None = None
    state_changed_at: datetime | None = None
    triggered_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: Resolution | None = None
    resolution_note: str | None = None
    pending_action: EventAction | None = None
    claim_token: str | None = None
    lease_until: datetime | None = None
    unconfirmed_until: datetime | None = None
    trigger_sent_at: datetime | None = None
    last_error: str | None = None
    last_reason: str | None = None
    """Why the newest notification changed nothing at PagerDuty when it did not (``silenced`` …)."""
    silence_id: str | None = None
    alarm_arn: str | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    pd_incident_id: str | None = None
    pd_incident_number: int | None = None
    pd_html_url: str | None = None
    pd_status: str | None = None
    pd_updated_at: datetime | None = None
    pd_details: dict[str, str] = field(default_factory=dict)
    webhook_event_ids: tuple[str, ...] = ()
    version: int = 1

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    @property
    def resolution_seconds(self) -> float | None:
        if self.triggered_at is None or self.resolved_at is None:
            return None
        return (self.resolved_at - self.triggered_at).total_seconds()

    @property
    def acknowledgement_seconds(self) -> float | None:
        if self.triggered_at is None or self.acknowledged_at is None:
            return None
        return (self.acknowledged_at - self.triggered_at).total_seconds()


@dataclass(frozen=True, slots=True)
class EventResponse:
    """PagerDuty's answer to an accepted event (``202``): status, message and the dedup key.

    ``ambiguous``: an earlier attempt of the same send got no answer and may still be processed.
    """

    status: str
    message: str
    dedup_key: str | None = None
    ambiguous: bool = field(default=False, compare=False, repr=False)
