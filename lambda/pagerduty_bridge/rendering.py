"""What PagerDuty is told: dedup keys, summaries, custom details, links, change events.

Pure functions: an alarm (a message, a stack change) and the settings in, an event out. The seed's
templated payloads are in ``seed.templates``; a rule that names one of them uses it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final
from urllib.parse import quote

from pagerduty_bridge.alarms import aws_region
from pagerduty_bridge.events_api import (
    ChangeEvent,
    EventPayload,
    Link,
    PagerDutyEvent,
    bounded_dedup_key,
    format_timestamp,
    name_dedup_key,
)
from pagerduty_bridge.models import (
    AlarmKind,
    AlarmNotification,
    AlarmState,
    AlertSeverity,
    DedupKeyStrategy,
    EventAction,
    StackStatusChange,
    UnrecognizedMessage,
)
from pagerduty_bridge.rules import Resolved
from pagerduty_bridge.seed.templates import SEED_TEMPLATES_BY_NAME, seed_event
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.text import fmt_number, number, printable

_OPERATOR_SYMBOLS = {
    "GreaterThanOrEqualToThreshold": "≥",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "≤",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside band",
    "LessThanLowerThreshold": "< lower band",
    "GreaterThanUpperThreshold": "> upper band",
    "greater than or equal to": "≥",
    "greater than": ">",
    "less than": "<",
    "less than or equal to": "≤",
}
# Dimensions that name the affected resource best, in order; otherwise the first by name.
_RESOURCE_DIMENSIONS = (
    "InstanceId",
    "FunctionName",
    "DBInstanceIdentifier",
    "DBClusterIdentifier",
    "TableName",
    "QueueName",
    "TopicName",
    "LoadBalancer",
    "TargetGroup",
    "ServiceName",
    "ClusterName",
    "AutoScalingGroupName",
    "ApiName",
    "BucketName",
    "StateMachineArn",
)
_CONSOLE_HOSTS = {"aws": "console.aws.amazon.com", "aws-us-gov": "console.amazonaws-us-gov.com"}
_CHINA_CONSOLE_HOST = "console.amazonaws.cn"
DEFAULT_SOURCE: Final = "aws.cloudwatch"
"""An alarm's ``payload.source`` when its resource, namespace and name are all blank: PagerDuty refuses
an event whose source is blank (400), and CloudWatch allows names and dimension values of blanks."""


# --- dedup keys ---------------------------------------------------------------------------------------


def dedup_key_for(alarm: AlarmNotification, strategy: DedupKeyStrategy) -> str:
    """``{AlarmName}-{MetricName}``, or ``{AlarmName}`` where there is no single metric; the alarm ARN
    with ``alarm-arn`` (names are reused across accounts and regions). Never over 255 characters."""
    if strategy is DedupKeyStrategy.ALARM_ARN and alarm.alarm_arn:
        return bounded_dedup_key(alarm.alarm_arn)
    if alarm.metric_name and alarm.kind is AlarmKind.METRIC:
        return bounded_dedup_key(f"{alarm.alarm_name}-{alarm.metric_name}")
    return name_dedup_key(alarm.alarm_name)


def unrecognized_dedup_key(message: UnrecognizedMessage) -> str:
    digest = hashlib.sha256(f"{message.subject or ''}\n{message.text}".encode()).hexdigest()[:24]
    return f"unrecognized-message-{digest}"


# --- alarms -------------------------------------------------------------------------------------------


def affected_resource(alarm: AlarmNotification) -> str | None:
    """The dimension value that names what is broken (an instance, a function, a table …); a blank value
    names nothing, and the next dimension is asked."""
    dims = alarm.contributor_attributes or alarm.dimensions
    if not dims and len(alarm.metrics) > 0:
        dims = next((m.dimensions for m in alarm.metrics if m.dimensions), {})
    for name in (*(n for n in _RESOURCE_DIMENSIONS if n in dims), *sorted(dims)):
        if dims[name].strip():
            return dims[name]
    return None


def alarm_source(alarm: AlarmNotification) -> str:
    """``payload.source``: the affected resource, else the namespace, else the alarm's name — the first
    that is not blank — else ``DEFAULT_SOURCE``."""
    candidates = (affected_resource(alarm), alarm.namespace, alarm.alarm_name)
    return next((text for text in candidates if text and text.strip()), DEFAULT_SOURCE)


def comparison_symbol(alarm: AlarmNotification) -> str | None:
    """How the reason words the comparison, else the alarm's operator, as a symbol (``>``, ``≤`` …)."""
    return _OPERATOR_SYMBOLS.get(alarm.comparison or "") or _OPERATOR_SYMBOLS.get(alarm.comparison_operator or "")


def alarm_summary(alarm: AlarmNotification, environment: str) -> str:
    """One line that reads well on a phone: environment, state, alarm, then what crossed what.

    Built only from what every envelope carries, so the same state change reads the same everywhere.
    """
    head = f"[{environment.upper()}] {alarm.new_state.value} {alarm.alarm_name}"
    if alarm.kind is AlarmKind.COMPOSITE:
        children = ", ".join(alarm.triggering_children)
        return f"{head} (composite{': ' + children if children else ''})"
    what = alarm.metric_name or (alarm.kind.value.replace("_", " "))
    parts = [what]
    if alarm.current_value is not None:
        parts.append(fmt_number(alarm.current_value))
    symbol = comparison_symbol(alarm)
    if alarm.threshold is not None:
        parts.append(f"{symbol or 'vs'} {fmt_number(alarm.threshold)}")
    elif alarm.kind is AlarmKind.ANOMALY_DETECTION:
        parts.append({">": "above the band", "<": "below the band"}.get(symbol or "", "outside the band"))
    resource = affected_resource(alarm)
    tail = f" on {resource}" if resource else ""
    return f"{head}: {' '.join(parts)}{tail}"


def console_url(alarm: AlarmNotification) -> str | None:
    """The alarm in the CloudWatch console of its own region and partition; none without a region (or
    with anything else in its place: the region becomes the link's host)."""
    if aws_region(alarm.region_code) is None:
        return None
    host = _CHINA_CONSOLE_HOST if alarm.partition == "aws-cn" else _CONSOLE_HOSTS.get(alarm.partition)
    if host is None:
        return None
    if alarm.partition == "aws":
        host = f"{alarm.region_code}.{host}"
    name = quote(alarm.alarm_name, safe="")
    return f"https://{host}/cloudwatch/home?region={alarm.region_code}#alarmsV2:alarm/{name}"


def alarm_details(alarm: AlarmNotification, environment: str) -> dict[str, Any]:
    """Custom details curated for the alarm's kind: what a responder needs, nothing empty."""
    details: dict[str, Any] = {
        "alarmName": alarm.alarm_name,
        "alarmArn": alarm.alarm_arn,
        "alarmKind": alarm.kind.value,
        "environment": environment,
        "description": alarm.description,
        "accountId": alarm.account_id,
        "region": alarm.region_code or alarm.region_name,
        "newState": alarm.new_state.value,
        "oldState": alarm.old_state.value if alarm.old_state else None,
        "stateChangeTime": format_timestamp(alarm.state_change_time),
        "reason": alarm.reason,
        "currentValue": number(alarm.current_value),
    }
    if alarm.kind is AlarmKind.COMPOSITE:
        details["alarmRule"] = alarm.alarm_rule
        details["triggeringChildren"] = list(alarm.triggering_children)
    else:
        details.update(
            namespace=alarm.namespace,
            metricName=alarm.metric_name,
            dimensions=alarm.dimensions or None,
            statistic=alarm.statistic,
            period=alarm.period,
            evaluationPeriods=alarm.evaluation_periods,
            threshold=number(alarm.threshold),
            comparisonOperator=alarm.comparison_operator,
            unit=alarm.unit,
            treatMissingData=alarm.treat_missing_data,
        )
    if alarm.metrics:
        details["metrics"] = [metric.as_dict() for metric in alarm.metrics]
        details["thresholdMetricId"] = alarm.threshold_metric_id
    if alarm.contributor_id is not None:
        details["contributor"] = {"id": alarm.contributor_id, "attributes": dict(alarm.contributor_attributes)}
    if alarm.tags:
        details["tags"] = dict(alarm.tags)
    return {key: value for key, value in details.items() if value not in (None, "", [], {})}


def template_values(alarm: AlarmNotification, environment: str) -> dict[str, Any]:
    """What summary and dedup-key templates may use; missing values read as ``?``."""
    return {
        "alarm_name": alarm.alarm_name,
        "metric_name": alarm.metric_name or alarm.kind.value.replace("_", " "),
        "current_value": fmt_number(alarm.current_value),
        "threshold": fmt_number(alarm.threshold),
        "comparison": comparison_symbol(alarm) or "vs",
        "state": alarm.new_state.value,
        "environment": environment,
        "resource": affected_resource(alarm) or alarm.namespace or alarm.alarm_name,
        "region": alarm.region_code or alarm.region_name or "?",
        "account": alarm.account_id or "?",
        "namespace": alarm.namespace or "?",
    }


def render_template(template: str, alarm: AlarmNotification, environment: str) -> str:
    return template.format_map(template_values(alarm, environment))


def alarm_dedup_key(
    alarm: AlarmNotification, strategy: DedupKeyStrategy, override: str | None, environment: str
) -> str:
    """The dedup key: a rule's template when it sets one and it renders to more than blanks, else the
    strategy's (``dedup_key_for``); a contributor's own (``contributor_key``) for one time series of a
    multi-time-series alarm."""
    key = None
    if override:
        rendered = render_template(override, alarm, environment)
        if rendered.strip():
            key = bounded_dedup_key(rendered)
    return contributor_key(key or dedup_key_for(alarm, strategy), alarm.contributor_id)


CONTRIBUTOR_KEY_MARK: Final = "#contributor:"


def contributor_key(key: str, contributor_id: str | None) -> str:
    """``key`` for the alarm itself; ``{key}#contributor:{id}`` for one of its time series: each pages
    and clears on its own, so one's OK must not resolve what another's ALARM opened."""
    if contributor_id is None:
        return key
    return bounded_dedup_key(f"{key}{CONTRIBUTOR_KEY_MARK}{contributor_id}")


def alarm_event(
    alarm: AlarmNotification,
    settings: Settings,
    action: EventAction,
    *,
    dedup_key: str,
    resolved: Resolved,
) -> PagerDutyEvent:
    """The event for one alarm state change: a seed template when its rule says so, else generic,
    shaped by the rule (severity, summary, recommendations, runbook and dashboard links, details)."""
    if action is not EventAction.TRIGGER:
        return PagerDutyEvent(event_action=action, dedup_key=dedup_key)
    template = SEED_TEMPLATES_BY_NAME.get(resolved.template or "")
    if template is not None and alarm.new_state is AlarmState.ALARM:
        own = template.match(alarm.alarm_name, settings.event_defaults)  # the environment a seed alarm names
        return seed_event(
            template,
            environment=own or settings.environment,
            current=alarm.current_value,
            threshold=alarm.threshold,
            timestamp=alarm.state_change_time,
            defaults=settings.event_defaults,
            region=alarm.region_code,
            dedup_key=dedup_key,
            alarm=None if own is not None else (alarm.alarm_name, alarm.metric_name),
        )
    url = console_url(alarm)
    summary = alarm_summary(alarm, settings.environment)
    if resolved.summary:
        rendered = render_template(resolved.summary, alarm, settings.environment)
        if rendered.strip():  # PagerDuty refuses a blank summary (``{resource}`` of a blank dimension)
            summary = rendered
    return PagerDutyEvent(
        event_action=action,
        dedup_key=dedup_key,
        payload=EventPayload(
            # Every screen a page reaches shows the summary: a name's control characters are shown, not
            # obeyed (a U+202E would show everything after it backwards).
            summary=printable(summary),
            source=alarm_source(alarm),
            severity=resolved.severity,
            timestamp=alarm.state_change_time,
            component=resolved.component or alarm.namespace,
            group=resolved.group or alarm.region_code,
            class_=resolved.event_class or alarm.metric_name or alarm.kind.value,
            custom_details=_rule_details(alarm_details(alarm, settings.environment), resolved),
        ),
        links=_links(url, resolved),
        client=settings.service_name,
        client_url=url,
    )


def _links(console: str | None, resolved: Resolved) -> tuple[Link, ...]:
    """The alarm in the console, the rule's runbook, then the rule's own links."""
    links = []
    if console:
        links.append(Link(href=console, text="CloudWatch alarm"))
    if resolved.runbook_url:
        links.append(Link(href=resolved.runbook_url, text="Runbook"))
    links.extend(Link(href=link.href, text=link.text) for link in resolved.links)
    return tuple(links)


def _rule_details(details: dict[str, Any], resolved: Resolved) -> dict[str, Any]:
    """The alarm's details with what its rule adds: recommendations, runbook, its name, its details."""
    if resolved.recommendations:
        details["recommendations"] = list(resolved.recommendations)
    if resolved.runbook_url:
        details["runbook"] = resolved.runbook_url
    if resolved.rule:
        details["rule"] = resolved.rule
    details.update(resolved.custom_details)
    return details


def unrecognized_event(message: UnrecognizedMessage, settings: Settings, *, source: str | None) -> PagerDutyEvent:
    """An ``info`` alert carrying a non-alarm message, so nothing on the topic is silently lost."""
    first_line = next((line.strip() for line in message.text.splitlines() if line.strip()), "(empty message)")
    title = message.subject or first_line
    return PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=unrecognized_dedup_key(message),
        payload=EventPayload(
            summary=printable(f"[{settings.environment.upper()}] Message on the alarm topic: {title}"),
            source=source if source and source.strip() else "aws.sns",  # PagerDuty refuses a blank one
            severity=AlertSeverity.INFO,
            timestamp=message.received_at,
            class_="unrecognized-message",
            custom_details={"subject": message.subject, "text": message.text}
            if message.subject
            else {"text": message.text},
        ),
        client=settings.service_name,
    )


COMPLETED_SUFFIXES: Final = ("_COMPLETE", "_FAILED")
"""Stack statuses that end an operation; ``*_IN_PROGRESS`` ones are not a change yet."""


def is_completed(change: StackStatusChange) -> bool:
    return change.status.endswith(COMPLETED_SUFFIXES)


def change_event(change: StackStatusChange, settings: Settings) -> ChangeEvent:
    """A PagerDuty Change Event for a completed stack operation: what changed, where, and its console
    (when the stack's region is known: the region becomes the link's host)."""
    region = aws_region(change.region_code)
    console = f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/stacks/stackinfo?stackId={quote(change.stack_id, safe='')}"
    details = {
        "stackName": change.stack_name,
        "stackId": change.stack_id,
        "status": change.status,
        "statusReason": change.status_reason or None,
        "region": change.region_code,
        "account": change.account_id,
        "environment": settings.environment,
    }
    return ChangeEvent(
        summary=printable(
            f"[{settings.environment.upper()}] CloudFormation stack {change.stack_name}: {change.status}"
        ),
        source=f"cloudformation/{change.stack_name}",
        timestamp=change.time,
        custom_details={k: v for k, v in details.items() if v is not None},
        links=(Link(href=console, text=f"Stack {change.stack_name} in the console"),)
        if change.partition == "aws" and region is not None
        else (),
    )
