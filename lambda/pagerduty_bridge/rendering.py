"""What PagerDuty is told: dedup keys, summaries, custom details, links — and the seed's templates.

Pure functions: an alarm (or the seed API's arguments) and the settings in, a ``PagerDutyEvent`` out.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pagerduty_bridge.alarms import comparison_from_reason
from pagerduty_bridge.events_api import (
    EventPayload,
    Link,
    PagerDutyEvent,
    bounded_dedup_key,
    format_timestamp,
)
from pagerduty_bridge.models import (
    AlarmKind,
    AlarmNotification,
    AlarmState,
    AlertMessage,
    AlertSeverity,
    EventAction,
    UnrecognizedMessage,
)
from pagerduty_bridge.rules import Resolved
from pagerduty_bridge.settings import DedupKeyStrategy, EventDefaults, Settings

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


def number(value: float | None) -> float | int | None:
    """Whole numbers as ``int`` (the seed shows ``"threshold": 95``), others unchanged."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


# --- dedup keys ---------------------------------------------------------------------------------------


def dedup_key_for(alarm: AlarmNotification, strategy: DedupKeyStrategy) -> str:
    """``{AlarmName}-{MetricName}``, or ``{AlarmName}`` where there is no single metric; the alarm ARN
    with ``alarm-arn`` (names are reused across accounts and regions). Never over 255 characters."""
    if strategy is DedupKeyStrategy.ALARM_ARN and alarm.alarm_arn:
        return bounded_dedup_key(alarm.alarm_arn)
    if alarm.metric_name and alarm.kind is AlarmKind.METRIC:
        return bounded_dedup_key(f"{alarm.alarm_name}-{alarm.metric_name}")
    return bounded_dedup_key(alarm.alarm_name)


def unrecognized_dedup_key(message: UnrecognizedMessage) -> str:
    digest = hashlib.sha256(f"{message.subject or ''}\n{message.text}".encode()).hexdigest()[:24]
    return f"unrecognized-message-{digest}"


# --- the seed's templates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedTemplate:
    """One of the seed's templated incidents, matched by alarm name ``{environment}-{component}-{slug}``."""

    slug: str
    metric_name: str
    title: str
    icon: str
    severity: AlertSeverity
    event_class: str
    description: str
    recommendations: tuple[str, ...]

    def alarm_name(self, environment: str, defaults: EventDefaults) -> str:
        return f"{environment}-{defaults.component}-{self.slug}"

    def match(self, alarm_name: str, defaults: EventDefaults) -> str | None:
        """The environment named by ``alarm_name`` when it is this template's alarm, else ``None``."""
        match = re.fullmatch(rf"(?P<env>.+)-{re.escape(defaults.component)}-{re.escape(self.slug)}", alarm_name)
        return match.group("env") if match else None


HIGH_FAILURE_RATE = SeedTemplate(
    slug="high-failure-rate",
    metric_name="SupportModeSuccessRate",
    title="High Failure Rate Alert",
    icon="🚨",
    severity=AlertSeverity.CRITICAL,
    event_class="performance",
    description="Success rate has fallen below {threshold}%",
    recommendations=(
        "Check hybrid routing health status",
        "Review recent deployment changes",
        "Verify MCP and direct Bedrock connectivity",
        "Inspect error logs for the failing requests",
        "Consider failing over to direct Bedrock routing",
    ),
)
HIGH_LATENCY = SeedTemplate(
    slug="high-latency",
    metric_name="SupportModeLatency",
    title="High Latency Alert",
    icon="⚠️",
    severity=AlertSeverity.WARNING,
    event_class="performance",
    description="Latency has risen above {threshold}ms",
    recommendations=(
        "Check Bedrock and MCP response times",
        "Review recent traffic increases",
        "Verify routing decisions are not falling back unnecessarily",
        "Check downstream dependency latency",
    ),
)
COST_THRESHOLD = SeedTemplate(
    slug="cost-threshold",
    metric_name="SupportModeCostEUR",
    title="Cost Threshold Alert",
    icon="💰",
    severity=AlertSeverity.WARNING,
    event_class="cost",
    description="Cost has exceeded €{threshold}",
    recommendations=(
        "Review Bedrock usage by operation",
        "Check for unexpected request volume",
        "Verify cost controls and budgets are in place",
        "Consider routing more traffic through cheaper models",
    ),
)
SEED_TEMPLATES = (HIGH_FAILURE_RATE, HIGH_LATENCY, COST_THRESHOLD)
SEED_TEMPLATES_BY_NAME = {template.slug: template for template in SEED_TEMPLATES}


def seed_template_for(alarm_name: str, defaults: EventDefaults) -> tuple[SeedTemplate, str] | None:
    for template in SEED_TEMPLATES:
        environment = template.match(alarm_name, defaults)
        if environment is not None:
            return template, environment
    return None


def seed_event(
    template: SeedTemplate,
    *,
    environment: str,
    current: float | None,
    threshold: float | None,
    timestamp: datetime,
    defaults: EventDefaults,
    region: str | None = None,
) -> PagerDutyEvent:
    """The seed's templated trigger, field for field."""
    alarm_name = template.alarm_name(environment, defaults)
    source = f"{environment}-{defaults.component}"
    dashboard = (
        f"https://console.aws.amazon.com/cloudwatch/home?region={region or 'eu-central-1'}"
        f"#dashboards:name={quote(source, safe='')}"
    )
    return PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=bounded_dedup_key(f"{alarm_name}-{template.metric_name}"),
        payload=EventPayload(
            summary=f"{template.icon} [{environment.upper()}] {template.title}",
            source=source,
            severity=template.severity,
            timestamp=timestamp,
            component=defaults.component,
            group=defaults.group,
            class_=template.event_class,
            custom_details={
                "alarmName": alarm_name,
                "metricName": template.metric_name,
                "threshold": number(threshold),
                "currentValue": number(current),
                "environment": environment,
                "description": template.description.format(threshold=_fmt(threshold)),
                "recommendations": list(template.recommendations),
            },
        ),
        links=(
            Link(href=dashboard, text="CloudWatch Dashboard"),
            Link(href=defaults.dashboard_url, text=defaults.dashboard_text),
        ),
        client=defaults.client,
        client_url=defaults.client_url,
    )


# --- alarms -------------------------------------------------------------------------------------------


def affected_resource(alarm: AlarmNotification) -> str | None:
    """The dimension value that names what is broken (an instance, a function, a table …)."""
    dims = alarm.dimensions
    if not dims and len(alarm.metrics) > 0:
        dims = next((m.dimensions for m in alarm.metrics if m.dimensions), {})
    for name in _RESOURCE_DIMENSIONS:
        if name in dims:
            return dims[name]
    return dims[sorted(dims)[0]] if dims else None


def comparison_symbol(alarm: AlarmNotification) -> str | None:
    words = comparison_from_reason(alarm.reason)
    return _OPERATOR_SYMBOLS.get(words or "") or _OPERATOR_SYMBOLS.get(alarm.comparison_operator or "")


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
        parts.append(_fmt(alarm.current_value))
    symbol = comparison_symbol(alarm)
    if alarm.threshold is not None:
        parts.append(f"{symbol or 'vs'} {_fmt(alarm.threshold)}")
    elif alarm.kind is AlarmKind.ANOMALY_DETECTION:
        parts.append({">": "above the band", "<": "below the band"}.get(symbol or "", "outside the band"))
    resource = affected_resource(alarm)
    tail = f" on {resource}" if resource else ""
    return f"{head}: {' '.join(parts)}{tail}"


def console_url(alarm: AlarmNotification) -> str | None:
    """The alarm in the CloudWatch console of its own region and partition."""
    if not alarm.region_code:
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
        details["metrics"] = [
            {k: v for k, v in metric.model_dump(exclude_none=True).items() if v not in ({}, "")}
            for metric in alarm.metrics
        ]
        details["thresholdMetricId"] = alarm.threshold_metric_id
    if alarm.tags:
        details["tags"] = dict(alarm.tags)
    return {key: value for key, value in details.items() if value not in (None, "", [], {})}


def template_values(alarm: AlarmNotification, environment: str) -> dict[str, Any]:
    """What summary and dedup-key templates may use; missing values read as ``?``."""
    return {
        "alarm_name": alarm.alarm_name,
        "metric_name": alarm.metric_name or alarm.kind.value.replace("_", " "),
        "current_value": _fmt(alarm.current_value),
        "threshold": _fmt(alarm.threshold),
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
    """The dedup key: a rule's template when it sets one, else the strategy's (``dedup_key_for``)."""
    if override:
        return bounded_dedup_key(render_template(override, alarm, environment))
    return dedup_key_for(alarm, strategy)


def alarm_event(
    alarm: AlarmNotification,
    settings: Settings,
    action: EventAction,
    *,
    dedup_key: str,
    resolved: Resolved | None = None,
) -> PagerDutyEvent:
    """The event for one alarm state change: a seed template when its rule says so, else generic,
    shaped by the rule (severity, summary, recommendations, runbook and dashboard links, details)."""
    if action is not EventAction.TRIGGER:
        return PagerDutyEvent(event_action=action, dedup_key=dedup_key)
    if resolved is None:
        resolved = settings.load_rules().resolve(
            alarm, default_severity=settings.default_severity, default_routing="default"
        )
    template = SEED_TEMPLATES_BY_NAME.get(resolved.template or "")
    if template is not None and alarm.new_state is AlarmState.ALARM:
        environment = template.match(alarm.alarm_name, settings.event_defaults) or settings.environment
        event = seed_event(
            template,
            environment=environment,
            current=alarm.current_value,
            threshold=alarm.threshold,
            timestamp=alarm.state_change_time,
            defaults=settings.event_defaults,
            region=alarm.region_code,
        )
        return event.model_copy(update={"dedup_key": dedup_key})
    links = []
    url = console_url(alarm)
    if url:
        links.append(Link(href=url, text="CloudWatch alarm"))
    if resolved.runbook_url:
        links.append(Link(href=resolved.runbook_url, text="Runbook"))
    links.extend(Link(href=link.href, text=link.text) for link in resolved.links)
    details = alarm_details(alarm, settings.environment)
    if resolved.recommendations:
        details["recommendations"] = list(resolved.recommendations)
    if resolved.runbook_url:
        details["runbook"] = resolved.runbook_url
    if resolved.rule:
        details["rule"] = resolved.rule
    details.update(resolved.custom_details)
    summary = alarm_summary(alarm, settings.environment)
    if resolved.summary:
        summary = render_template(resolved.summary, alarm, settings.environment)
    return PagerDutyEvent(
        event_action=action,
        dedup_key=dedup_key,
        payload=EventPayload(
            summary=summary,
            source=affected_resource(alarm) or alarm.namespace or alarm.alarm_name,
            severity=resolved.severity,
            timestamp=alarm.state_change_time,
            component=resolved.component or alarm.namespace,
            group=resolved.group or alarm.region_code,
            class_=resolved.event_class or alarm.metric_name or alarm.kind.value,
            custom_details=details,
        ),
        links=tuple(links),
        client=settings.service_name,
        client_url=url,
    )


def alert_event(alert: AlertMessage, settings: Settings) -> PagerDutyEvent:
    """The seed's ``createIncidentFromAlert`` event: templated when the alert is a seed alarm."""
    seed = seed_template_for(alert.alarm_name, settings.event_defaults)
    dedup_key = bounded_dedup_key(f"{alert.alarm_name}-{alert.metric_name}" if alert.metric_name else alert.alarm_name)
    if seed is not None:
        template, environment = seed
        return seed_event(
            template,
            environment=environment,
            current=alert.current_value,
            threshold=alert.threshold,
            timestamp=alert.timestamp,
            defaults=settings.event_defaults,
        ).model_copy(update={"dedup_key": dedup_key})
    summary = f"[{alert.environment.upper()}] {alert.alarm_name}"
    if alert.metric_name:
        summary += f": {alert.metric_name} {_fmt(alert.current_value)} vs {_fmt(alert.threshold)}"
    details: dict[str, Any] = {
        "alarmName": alert.alarm_name,
        "metricName": alert.metric_name,
        "threshold": number(alert.threshold),
        "currentValue": number(alert.current_value),
        "environment": alert.environment,
        "description": alert.description,
        "recommendations": list(alert.recommendations),
    }
    return PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=dedup_key,
        payload=EventPayload(
            summary=summary,
            source=f"{alert.environment}-{settings.event_defaults.component}",
            severity=alert.severity,
            timestamp=alert.timestamp,
            component=settings.event_defaults.component,
            group=settings.event_defaults.group,
            custom_details={k: v for k, v in details.items() if v not in (None, "", [])},
        ),
        client=settings.event_defaults.client,
        client_url=settings.event_defaults.client_url,
    )


def unrecognized_event(message: UnrecognizedMessage, settings: Settings, *, source: str | None) -> PagerDutyEvent:
    """An ``info`` alert carrying a non-alarm message, so nothing on the topic is silently lost."""
    first_line = next((line.strip() for line in message.text.splitlines() if line.strip()), "(empty message)")
    title = message.subject or first_line
    return PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=unrecognized_dedup_key(message),
        payload=EventPayload(
            summary=f"[{settings.environment.upper()}] Message on the alarm topic: {title}",
            source=source or "aws.sns",
            severity=AlertSeverity.INFO,
            timestamp=message.received_at,
            class_="unrecognized-message",
            custom_details={"subject": message.subject, "text": message.text}
            if message.subject
            else {"text": message.text},
        ),
        client=settings.service_name,
    )
