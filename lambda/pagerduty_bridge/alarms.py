"""CloudWatch alarm messages (every alarm kind, every shape) → ``AlarmNotification``.

Pure functions: a decoded message in, a model out. Two source shapes exist:
- the PascalCase JSON that SNS carries (``AlarmName``, ``NewStateValue``, ``Trigger`` …);
- the camelCase alarm data of EventBridge state-change events and of the alarm's direct Lambda action
  (``alarmName``, ``state.value``, ``configuration.metrics`` …).
Both become the same ``AlarmNotification``, so the same state change yields the same page however it
arrived. Real messages vary a lot (DESIGN.md, "seen in the wild"); every variation is handled here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pagerduty_bridge.errors import InvalidMessageError
from pagerduty_bridge.models import AlarmKind, AlarmNotification, AlarmState, MetricQuery
from pagerduty_bridge.safejson import loads
from pagerduty_bridge.timeutil import parse_time, utc

# "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:name" (also aws-us-gov, aws-cn partitions).
_ALARM_ARN = re.compile(r"^arn:(?P<partition>aws[\w-]*):cloudwatch:(?P<region>[\w-]+):(?P<account>[^:]*):alarm:")
# First datapoint inside the reason's brackets: "[85.0 (14/01/25 14:25:00), 2.0 (…)]", "2.841116672E9".
# Possessive quantifiers: a hostile reason ("[" and 100,000 digits) cannot make the match backtrack.
_NUMBER = r"[-+]?+(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][-+]?+\d++)?+"
_DATAPOINT = re.compile(rf"\[\s*+(?P<value>{_NUMBER})\s*+\(")
# Older messages: "Threshold Crossed: 1 datapoint (10.0) was greater than …".
_OLD_DATAPOINT = re.compile(rf"datapoints? \((?P<value>{_NUMBER})\)")
_COMPARISON_IN_REASON = re.compile(
    r"(?:was|were) (?P<op>greater than or equal to|less than or equal to|greater than|less than)"
    r" the (?:threshold|lower threshold|upper threshold)"
)
# An alarm on both sides of its anomaly band names both sides whichever it crossed: "[537.0 (…)] was less
# than the lower thresholds [193.3] or greater than the upper thresholds [531.4]". The side is where the
# value lies against the first (newest) bounds.
_BAND_IN_REASON = re.compile(
    rf"(?:was|were) less than the lower thresholds? \[\s*+(?P<lower>{_NUMBER})[^\]]*+\]"
    rf" or greater than the upper thresholds? \[\s*+(?P<upper>{_NUMBER})"
)
_PADDED_SETTING = re.compile(r"^-?\s*+\w++:\s*+")
# What every AWS partition's region codes look like (botocore's partitions.json): us-east-1,
# us-gov-west-1, cn-north-1, us-isob-east-1, eusc-de-east-1. A console link's host is built from it.
_AWS_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]++)+-[0-9]{1,2}")
# The region codes by the display names SNS alarm messages write in ``Region`` (botocore's endpoint
# descriptions, the newest regions included), with the older spellings messages still carry ("EU (…)"
# for "Europe (…)", "US - N. Virginia"). Only a message without an ARN needs it: the ARN's code wins.
_REGION_CODES = {
    "Africa (Cape Town)": "af-south-1",
    "Asia Pacific (Hong Kong)": "ap-east-1",
    "Asia Pacific (Taipei)": "ap-east-2",
    "Asia Pacific (Tokyo)": "ap-northeast-1",
    "Asia Pacific (Seoul)": "ap-northeast-2",
    "Asia Pacific (Osaka)": "ap-northeast-3",
    "Asia Pacific (Mumbai)": "ap-south-1",
    "Asia Pacific (Hyderabad)": "ap-south-2",
    "Asia Pacific (Singapore)": "ap-southeast-1",
    "Asia Pacific (Sydney)": "ap-southeast-2",
    "Asia Pacific (Jakarta)": "ap-southeast-3",
    "Asia Pacific (Melbourne)": "ap-southeast-4",
    "Asia Pacific (Malaysia)": "ap-southeast-5",
    "Asia Pacific (New Zealand)": "ap-southeast-6",
    "Asia Pacific (Thailand)": "ap-southeast-7",
    "Canada (Central)": "ca-central-1",
    "Canada West (Calgary)": "ca-west-1",
    "Europe (Frankfurt)": "eu-central-1",
    "Europe (Zurich)": "eu-central-2",
    "Europe (Stockholm)": "eu-north-1",
    "Europe (Milan)": "eu-south-1",
    "Europe (Spain)": "eu-south-2",
    "Europe (Ireland)": "eu-west-1",
    "Europe (London)": "eu-west-2",
    "Europe (Paris)": "eu-west-3",
    "Israel (Tel Aviv)": "il-central-1",
    "Middle East (UAE)": "me-central-1",
    "Middle East (Bahrain)": "me-south-1",
    "Mexico (Central)": "mx-central-1",
    "South America (Sao Paulo)": "sa-east-1",
    "South America (S\u00e3o Paulo)": "sa-east-1",
    "US East (N. Virginia)": "us-east-1",
    "US - N. Virginia": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (N. California)": "us-west-1",
    "US West (Oregon)": "us-west-2",
    "China (Beijing)": "cn-north-1",
    "China (Ningxia)": "cn-northwest-1",
    "AWS GovCloud (US-East)": "us-gov-east-1",
    "AWS GovCloud (US-West)": "us-gov-west-1",
    "AWS GovCloud (US)": "us-gov-west-1",
}
_REGION_CODES.update(
    {f"EU{name[len('Europe') :]}": code for name, code in _REGION_CODES.items() if name.startswith("Europe (")}
)
_REGION_BY_NAME = {" ".join(name.casefold().split()): code for name, code in _REGION_CODES.items()}
MAX_REGION_LENGTH = 32
"""Longer than any AWS region code (the longest, eusc-de-east-1 and us-isof-south-1, are 15)."""
MAX_REASON_SCAN = 8192
"""How much of a state reason is searched for a datapoint and a comparison: CloudWatch writes a few
hundred characters; a forged megabyte is not searched."""


def is_cloudwatch_alarm(message: Mapping[str, Any]) -> bool:
    """True for a CloudWatch alarm message as SNS carries it (not an Auto Scaling notification that
    merely embeds alarm names, not an EventBridge event)."""
    return isinstance(message.get("AlarmName"), str) and "NewStateValue" in message


def parse_alarm_message(message: Mapping[str, Any], *, fallback_time: datetime | None = None) -> AlarmNotification:
    """Parse the PascalCase alarm JSON that SNS carries in ``Sns.Message``."""
    new_state = _state(message.get("NewStateValue"), "NewStateValue")
    old_raw = message.get("OldStateValue")
    trigger = message.get("Trigger")
    trigger = trigger if isinstance(trigger, Mapping) else {}
    arn = _text(message.get("AlarmArn"))
    fields: dict[str, Any] = {
        "alarm_name": message["AlarmName"],
        "alarm_arn": arn,
        "description": _text(message.get("AlarmDescription")),
        "account_id": _text(message.get("AWSAccountId")),
        "region_name": _text(message.get("Region")),
        **(region_from_display_name(message.get("Region")) if arn is None else {}),
        "new_state": new_state,
        "old_state": _state(old_raw, "OldStateValue") if not _blank(old_raw) else None,
        "reason": _text(message.get("NewStateReason")) or "",
        "state_change_time": _time(message.get("StateChangeTime"), "StateChangeTime", fallback_time),
        "alarm_rule": _text(message.get("AlarmRule")),
        "tags": _tags(message.get("AlarmTags") or message.get("Tags")),
        **_arn_parts(arn),
        **_contributor(message.get("AlarmContributorId"), message.get("AlarmContributorAttributes")),
    }
    children = message.get("TriggeringChildren")
    if isinstance(children, list):
        fields["triggering_children"] = tuple(_child_name(child) for child in children if child)
    if trigger:
        fields.update(_trigger_fields(trigger))
    fields["kind"] = _kind(fields, has_trigger=bool(trigger))
    fields["current_value"] = current_value_from_reason(fields["reason"])
    fields["comparison"] = comparison_from_reason(fields["reason"])
    return _build(fields, "alarm message")


def parse_alarm_data(
    data: Mapping[str, Any],
    *,
    alarm_arn: str | None,
    account_id: str | None,
    region_code: str | None,
    fallback_time: datetime | None = None,
) -> AlarmNotification:
    """Parse camelCase alarm data: EventBridge ``detail`` or a Lambda alarm action's ``alarmData``."""
    state = data.get("state")
    if not isinstance(state, Mapping):
        raise InvalidMessageError("alarm data: 'state' is missing or not an object")
    previous = data.get("previousState")
    configuration = data.get("configuration")
    configuration = configuration if isinstance(configuration, Mapping) else {}
    reason_data = _reason_data(state.get("reasonData"))
    arn = _text(alarm_arn)
    fields: dict[str, Any] = {
        "alarm_name": data.get("alarmName"),
        "alarm_arn": arn,
        "description": _text(configuration.get("description")),
        "account_id": _text(account_id),
        "region_code": aws_region(_text(region_code)),
        "new_state": _state(state.get("value"), "state.value"),
        "old_state": _state(previous.get("value"), "previousState.value")
        if isinstance(previous, Mapping) and previous.get("value") and not _blank(previous["value"])
        else None,
        "reason": _text(state.get("reason")) or "",
        "state_change_time": _time(state.get("timestamp"), "state.timestamp", fallback_time),
        "alarm_rule": _text(configuration.get("alarmRule")),
        "tags": _tags(data.get("tags") or data.get("alarmTags")),
        **_arn_parts(arn),
    }
    contributor = data.get("alarmContributor")
    if isinstance(contributor, Mapping):
        fields.update(_contributor(contributor.get("id"), contributor.get("attributes")))
    children = reason_data.get("triggeringAlarms")
    if isinstance(children, list):
        fields["triggering_children"] = tuple(
            _child_name(child.get("arn") if isinstance(child, Mapping) else child) for child in children if child
        )
    metrics = configuration.get("metrics")
    if isinstance(metrics, list) and metrics:
        fields.update(_camel_metrics_fields(metrics, reason_data))
    threshold = _number(reason_data.get("threshold"))
    if threshold is not None:
        fields["threshold"] = threshold
    has_metrics = bool(metrics)
    fields["kind"] = _kind(fields, has_trigger=has_metrics)
    # The reason text is the same string SNS carries: read it first, so every envelope agrees.
    fields["current_value"] = current_value_from_reason(fields["reason"])
    if fields["current_value"] is None:
        fields["current_value"] = _first_evaluated(reason_data)
    fields["comparison"] = comparison_from_reason(fields["reason"])
    return _build(fields, "alarm data")


def current_value_from_reason(reason: str) -> float | None:
    """The first datapoint CloudWatch lists in ``NewStateReason``, or ``None`` when it lists none."""
    head = reason[:MAX_REASON_SCAN]
    match = _DATAPOINT.search(head) or _OLD_DATAPOINT.search(head)
    return _number(match.group("value")) if match else None


def comparison_from_reason(reason: str) -> str | None:
    """ "greater than", "less than or equal to" … as the reason words it, when it does; for an alarm on
    both sides of a band, the side its value crossed (``None`` when that cannot be told)."""
    head = reason[:MAX_REASON_SCAN]
    band = _BAND_IN_REASON.search(head)
    if band is not None:
        value = current_value_from_reason(head)
        lower, upper = _number(band.group("lower")), _number(band.group("upper"))
        if value is not None and upper is not None and value > upper:
            return "greater than"
        if value is not None and lower is not None and value < lower:
            return "less than"
        return None
    match = _COMPARISON_IN_REASON.search(head)
    return match.group("op") if match else None


def aws_region(value: Any) -> str | None:
    """``value`` when it is an AWS region code, else ``None``: a region from outside (an EventBridge
    ``region``, an ARN) is believed only in that shape, so it can never make a link's host."""
    if not isinstance(value, str) or len(value) > MAX_REGION_LENGTH:
        return None
    return value if _AWS_REGION.fullmatch(value) else None


def region_from_display_name(name: Any) -> dict[str, str]:
    """The region code and partition a display name ("Asia Pacific (Malaysia)", "EU (Ireland)") stands
    for, or nothing for a name not known: an ARN-less message is still placed (console link, group)."""
    if not isinstance(name, str) or len(name) > 64:
        return {}
    code = _REGION_BY_NAME.get(" ".join(name.casefold().split()))
    if code is None:
        return {}
    partition = "aws-cn" if code.startswith("cn-") else "aws-us-gov" if code.startswith("us-gov-") else "aws"
    return {"region_code": code, "partition": partition}


# --- helpers ------------------------------------------------------------------------------------------


def _build(fields: dict[str, Any], what: str) -> AlarmNotification:
    name = fields.get("alarm_name")
    if name is None:
        raise InvalidMessageError(f"{what}: alarm_name: Field required")
    if not isinstance(name, str):
        raise InvalidMessageError(f"{what}: alarm_name: Input should be a valid string, not {type(name).__name__}")
    return AlarmNotification(**{k: v for k, v in fields.items() if v is not None})


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _state(value: Any, field: str) -> AlarmState:
    try:
        return AlarmState(str(value).strip().upper())
    except ValueError:
        raise InvalidMessageError(
            f"{field} is {value!r}; expected one of {', '.join(s.value for s in AlarmState)}"
        ) from None


def _blank(value: Any) -> bool:
    """``None``, or text of blanks only: a field written so says nothing, as one left out."""
    return value is None or (isinstance(value, str) and not value.strip())


def _time(value: Any, field: str, fallback: datetime | None) -> datetime:
    if _blank(value):
        if fallback is not None:
            return utc(fallback)
        raise InvalidMessageError(f"{field} is missing")
    parsed = parse_time(value)
    if parsed is None:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidMessageError(f"{field} is {shown}, not an ISO 8601 time in range")
    return parsed


def _arn_parts(arn: str | None) -> dict[str, str]:
    match = _ALARM_ARN.match(arn or "")
    if not match:
        return {}
    parts = {"partition": match.group("partition")}
    if aws_region(match.group("region")):
        parts["region_code"] = match.group("region")
    if match.group("account"):
        parts["account_id"] = match.group("account")
    return parts


def _contributor(contributor_id: Any, attributes: Any) -> dict[str, Any]:
    """A multi-time-series alarm's contributor (SNS ``AlarmContributorId``/``…Attributes``, EventBridge
    ``alarmContributor``): each time series pages and clears on its own, so it must be told apart."""
    if isinstance(contributor_id, bool) or not isinstance(contributor_id, str | int):
        return {}
    identity = _text(contributor_id)
    if identity is None:
        return {}
    return {"contributor_id": identity, "contributor_attributes": _tags(attributes) or {}}


def _child_name(child: Any) -> str:
    """A composite's triggering child: its alarm name from the ARN, as the alarm rule names it."""
    if isinstance(child, Mapping):
        child = child.get("Arn") or child.get("arn") or ""
    text = str(child)
    return text.split(":alarm:", 1)[1] if ":alarm:" in text else text


def _number(value: Any) -> float | None:
    """A finite number, or ``None``: PagerDuty rejects ``Infinity`` and ``NaN`` (they are not JSON)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _setting(value: Any) -> str | None:
    """A setting that old messages pad (``"- TreatMissingData:   notBreaching"``) or write as "None"."""
    text = _text(value)
    if text is None:
        return None
    text = _PADDED_SETTING.sub("", text).strip()
    return None if text in ("", "None", "null") else text


def _dimensions(raw: Any) -> dict[str, str]:
    """Dimensions as a name → value map, from SNS's ``[{name, value}]`` or EventBridge's map."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    result: dict[str, str] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                name = item.get("name", item.get("Name"))
                value = item.get("value", item.get("Value"))
                if name is not None and value is not None:
                    result[str(name)] = str(value)
    return result


def _tags(raw: Any) -> dict[str, str] | None:
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        pairs = {}
        for item in raw:
            if isinstance(item, Mapping):
                key = item.get("Key", item.get("key"))
                if key is not None:
                    pairs[str(key)] = str(item.get("Value", item.get("value", "")))
        return pairs
    return None


def _trigger_fields(trigger: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "namespace": _text(trigger.get("Namespace")),
        "metric_name": _text(trigger.get("MetricName")),
        "dimensions": _dimensions(trigger.get("Dimensions")),
        "statistic": _text(trigger.get("Statistic") or trigger.get("ExtendedStatistic")),
        "period": _integer(trigger.get("Period")),
        "evaluation_periods": _integer(trigger.get("EvaluationPeriods")),
        "threshold": _number(trigger.get("Threshold")),
        "comparison_operator": _text(trigger.get("ComparisonOperator")),
        "unit": _setting(trigger.get("Unit")),
        "treat_missing_data": _setting(trigger.get("TreatMissingData")),
        "threshold_metric_id": _text(trigger.get("ThresholdMetricId")),
    }
    metrics = trigger.get("Metrics")
    if isinstance(metrics, list):
        fields["metrics"] = tuple(_metric_query(m, _PASCAL_KEYS) for m in metrics if isinstance(m, Mapping))
        single = _single_metric(fields["metrics"])
        if single is not None and not fields["metric_name"] and not fields["threshold_metric_id"]:
            fields.update(single)
    return fields


# The same metric query, as SNS (PascalCase) and EventBridge / alarm actions (camelCase) spell it.
_PASCAL_KEYS = {
    "id": "Id",
    "expression": "Expression",
    "label": "Label",
    "stat": "MetricStat",
    "metric": "Metric",
    "namespace": "Namespace",
    "name": "MetricName",
    "dimensions": "Dimensions",
    "statistic": "Stat",
    "period": "Period",
    "return_data": "ReturnData",
}
_CAMEL_KEYS = {
    "id": "id",
    "expression": "expression",
    "label": "label",
    "stat": "metricStat",
    "metric": "metric",
    "namespace": "namespace",
    "name": "name",
    "dimensions": "dimensions",
    "statistic": "stat",
    "period": "period",
    "return_data": "returnData",
}


def _metric_query(raw: Mapping[str, Any], keys: Mapping[str, str]) -> MetricQuery:
    stat = raw.get(keys["stat"])
    stat = stat if isinstance(stat, Mapping) else {}
    metric = stat.get(keys["metric"])
    metric = metric if isinstance(metric, Mapping) else {}
    return_data = raw.get(keys["return_data"])
    return MetricQuery(
        id=str(raw.get(keys["id"], "")),
        expression=_text(raw.get(keys["expression"])),
        label=_text(raw.get(keys["label"])),
        namespace=_text(metric.get(keys["namespace"])),
        metric_name=_text(metric.get(keys["name"])),
        dimensions=_dimensions(metric.get(keys["dimensions"])),
        stat=_text(stat.get(keys["statistic"])),
        period=_integer(stat.get(keys["period"])),
        return_data=return_data if isinstance(return_data, bool) else None,
    )


def _single_metric(metrics: tuple[MetricQuery, ...]) -> dict[str, Any] | None:
    """The fields of a plain one-metric alarm expressed as ``Metrics[]`` (EventBridge always does)."""
    if len(metrics) != 1 or metrics[0].expression or not metrics[0].metric_name:
        return None
    only = metrics[0]
    return {
        "namespace": only.namespace,
        "metric_name": only.metric_name,
        "dimensions": only.dimensions,
        "statistic": only.stat,
        "period": only.period,
        "metrics": (),
    }


def _camel_metrics_fields(metrics: list[Any], reason_data: Mapping[str, Any]) -> dict[str, Any]:
    queries = tuple(_metric_query(m, _CAMEL_KEYS) for m in metrics if isinstance(m, Mapping))
    single = _single_metric(queries)
    if single is not None:
        return single
    fields: dict[str, Any] = {"metrics": queries}
    band = next((q for q in queries if q.expression and "ANOMALY_DETECTION_BAND" in q.expression), None)
    if band is not None:
        fields["threshold_metric_id"] = band.id
    return fields


def _kind(fields: Mapping[str, Any], *, has_trigger: bool) -> AlarmKind:
    if fields.get("threshold_metric_id"):
        return AlarmKind.ANOMALY_DETECTION
    if fields.get("metrics"):
        return AlarmKind.METRIC_MATH
    if not has_trigger and (fields.get("alarm_rule") or fields.get("triggering_children")):
        return AlarmKind.COMPOSITE
    return AlarmKind.METRIC


def _reason_data(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            decoded = loads(raw)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, Mapping) else {}
    return {}


def _first_evaluated(reason_data: Mapping[str, Any]) -> float | None:
    points = reason_data.get("evaluatedDatapoints")
    if isinstance(points, list):
        for point in points:
            value = _number(point.get("value")) if isinstance(point, Mapping) else None
            if value is not None:
                return value
    return None
