"""The bridge's data: what an alarm says, what the seed API takes, what the incident table keeps.

Field names follow the wire formats they come from (CloudWatch's alarm message, PagerDuty's Events
API) in snake_case. All models are immutable: a new state is a new object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.alias_generators import to_camel


class AlertSeverity(StrEnum):
    """PagerDuty's ``payload.severity`` values; the seed's CRITICAL/WARNING/INFO map onto them."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


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
    """How an incident was resolved: by its alarm going OK, by a person, or by reconciliation."""

    AUTO = "auto"
    MANUAL = "manual"
    RECONCILED = "reconciled"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def utc(value: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class ServiceConfig(_Frozen):
    """The PagerDuty service the bridge pages (the seed's ``ServiceConfig``).

    The integration key is a ``SecretStr``: it never shows in a repr, a log line or an error.
    """

    integration_key: SecretStr
    service_name: str
    escalation_policy_id: str | None = None


class AlertMessage(_Frozen):
    """One alert, as the seed's ``createIncidentFromAlert`` takes it (camelCase keys accepted too)."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    severity: AlertSeverity
    alarm_name: str = Field(min_length=1)
    metric_name: str | None = None
    threshold: float | None = None
    current_value: float | None = None
    timestamp: datetime
    environment: str
    description: str = ""
    recommendations: tuple[str, ...] = ()

    @field_validator("severity", mode="before")
    @classmethod
    def _lower_severity(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("timestamp")
    @classmethod
    def _utc_timestamp(cls, value: datetime) -> datetime:
        return utc(value)


class MetricQuery(_Frozen):
    """One entry of a metric-math or anomaly-detection alarm's ``Metrics[]``."""

    id: str
    expression: str | None = None
    label: str | None = None
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: str | None = None
    period: int | None = None
    return_data: bool | None = None


class AlarmNotification(_Frozen):
    """Everything the bridge knows about one alarm state change, however it arrived."""

    kind: AlarmKind
    alarm_name: str
    alarm_arn: str | None = None
    description: str | None = None
    account_id: str | None = None
    region_code: str | None = None
    region_name: str | None = None
    partition: str = "aws"
    new_state: AlarmState
    old_state: AlarmState | None = None
    reason: str = ""
    state_change_time: datetime
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)
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
    tags: dict[str, str] = Field(default_factory=dict)


class UnrecognizedMessage(_Frozen):
    """A message on the alarm topic that is not an alarm (AWS Budgets text, a test message …)."""

    subject: str | None = None
    text: str
    received_at: datetime
    problem: str | None = None
    """Set when the message looked like an alarm but could not be read as one."""


class ControlMessage(_Frozen):
    """A message that needs no page: SNS (un)subscribe confirmations, alarm configuration changes."""

    kind: str


class Incident(_Frozen):
    """The incident the bridge tracks for one dedup key (one item of the incident table).

    ``state_changed_at`` is the alarm's own ``StateChangeTime`` of the newest notification handled:
    anything not newer changes nothing. ``version`` increases with every write, and every write is
    conditional on the version it read, so two invocations can never both win.
    ``pending_action`` is set while an event is on its way to PagerDuty and cleared only once
    PagerDuty accepted it; ``lease_until`` says until when the invocation that set it may still be
    working on it.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    dedup_key: str
    alarm_name: str
    status: IncidentStatus
    severity: AlertSeverity = AlertSeverity.CRITICAL
    summary: str = ""
    routing_key_alias: str = "default"
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
    last_error: str | None = None
    alarm_arn: str | None = None
    updated_at: datetime
    version: int = 1

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    @property
    def resolution_seconds(self) -> float | None:
        if self.triggered_at is None or self.resolved_at is None:
            return None
        return (self.resolved_at - self.triggered_at).total_seconds()


class EventResponse(_Frozen):
    """PagerDuty's answer to an accepted event (``202``): status, message and the dedup key."""

    status: str
    message: str
    dedup_key: str | None = None
