"""The seed API's validated inputs: the service config and the alert ``create_incident_from_alert`` takes.

These are pydantic models because they are a public API fed by callers' own data (camelCase keys
accepted, severities in any case, timestamps with any offset). The Lambda's paging path never imports
this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from pagerduty_bridge.models import AlertSeverity
from pagerduty_bridge.timeutil import utc


class ServiceConfig(BaseModel):
    """The PagerDuty service the bridge pages (the seed's ``ServiceConfig``).

    The integration key is a ``SecretStr``: it never shows in a repr, a log line or an error (a refused
    config's error names each field, never the value it was given).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    integration_key: SecretStr
    service_name: str
    escalation_policy_id: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _errors_without_input(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            raise without_input(exc) from None


HIDDEN_INPUT = "**********"
"""What a refused config's error holds in place of the value it was given."""


def without_input(exc: ValidationError) -> ValidationError:
    """``exc`` with the value of each error hidden, in its text and in ``errors()`` alike.

    ``hide_input_in_errors`` hides it from the text only: ``errors()`` and ``json()`` still carry it, and
    the key given under a name the model does not know (the seed's ``integrationKey``), or as a list,
    is such a value."""
    details: list[Any] = [
        {
            "type": error["type"],
            "loc": error["loc"],
            "input": HIDDEN_INPUT,
            **({"ctx": error["ctx"]} if "ctx" in error else {}),
        }
        for error in exc.errors(include_url=False)
    ]
    return ValidationError.from_exception_data(exc.title, details, hide_input=True)


class AlertMessage(BaseModel):
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

    @field_validator("timestamp")
    @classmethod
    def _utc_timestamp(cls, value: datetime) -> datetime:
        try:
            return utc(value)
        except OverflowError:  # year 1 just after midnight at a positive offset, year 9999 at a negative one
            raise ValueError(f"{value.isoformat()} has no UTC equivalent (out of the range of dates)") from None
