"""The seed's three templated incidents: their data, declared once, and the event each renders.

An alarm named ``{environment}-{component}-{slug}`` (``production-hybrid-routing-high-failure-rate``)
uses its template (the built-in rules say so), as do the seed API's ``trigger_*_incident`` methods and
the CLI's ``trigger`` command. Pure: data in, a ``PagerDutyEvent`` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from pagerduty_bridge.events_api import EventPayload, Link, PagerDutyEvent, bounded_dedup_key, name_dedup_key
from pagerduty_bridge.models import AlertSeverity, EventAction
from pagerduty_bridge.text import fmt_number, number, printable

if TYPE_CHECKING:
    from pagerduty_bridge.seed.models import AlertMessage
    from pagerduty_bridge.settings import EventDefaults, Settings


@dataclass(frozen=True, slots=True)
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
        """The environment named by ``alarm_name`` when it is this template's alarm, else ``None``: any
        characters, a line break too, as the built-in rule's glob takes them (else the page would name the
        configured environment and another alarm)."""
        pattern = rf"(?P<env>.+)-{re.escape(defaults.component)}-{re.escape(self.slug)}"
        match = re.fullmatch(pattern, alarm_name, re.DOTALL)
        return match.group("env") if match else None


HIGH_FAILURE_RATE: Final = SeedTemplate(
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
HIGH_LATENCY: Final = SeedTemplate(
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
COST_THRESHOLD: Final = SeedTemplate(
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
SEED_TEMPLATES: Final = (HIGH_FAILURE_RATE, HIGH_LATENCY, COST_THRESHOLD)
"""Every template, in the seed's order: the one declaration of their names."""
SEED_TEMPLATES_BY_NAME: Final = {template.slug: template for template in SEED_TEMPLATES}
SEED_TEMPLATE_NAMES: Final = tuple(SEED_TEMPLATES_BY_NAME)


def seed_template_for(alarm_name: str, defaults: EventDefaults) -> tuple[SeedTemplate, str] | None:
    """The template an alarm name is made for, and the environment it names."""
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
    dedup_key: str | None = None,
    alarm: tuple[str, str | None] | None = None,
) -> PagerDutyEvent:
    """The seed's templated trigger, field for field; under ``dedup_key`` when the alarm (or alert) it
    answers has a key of its own, else the seed's ``{alarm name}-{metric name}``. ``alarm``: the name and
    metric of an alarm a rule pages with this template, which its details name instead of the template's
    own (nothing else on the page would say which alarm fired)."""
    seed_name = template.alarm_name(environment, defaults)
    alarm_name, metric_name = alarm or (seed_name, template.metric_name)
    source = f"{environment}-{defaults.component}"
    return PagerDutyEvent(
        event_action=EventAction.TRIGGER,
        dedup_key=dedup_key or bounded_dedup_key(f"{seed_name}-{template.metric_name}"),
        payload=EventPayload(
            # The environment comes from an alarm's name: its controls are shown, not obeyed (see rendering).
            summary=printable(f"{template.icon} [{environment.upper()}] {template.title}"),
            source=source,
            severity=template.severity,
            timestamp=timestamp,
            component=defaults.component,
            group=defaults.group,
            class_=template.event_class,
            custom_details={
                "alarmName": alarm_name,
                "metricName": metric_name,
                "threshold": number(threshold),
                "currentValue": number(current),
                "environment": environment,
                "description": template.description.format(threshold=fmt_number(threshold)),
                "recommendations": list(template.recommendations),
            },
        ),
        links=_links(source, region or defaults.region, defaults),
        client=defaults.client,
        client_url=defaults.client_url,
    )


def _links(source: str, region: str | None, defaults: EventDefaults) -> tuple[Link, ...]:
    """The CloudWatch dashboard named after the source, in the alarm's region, and the configured one."""
    links = []
    if region:
        links.append(
            Link(
                href=f"https://console.aws.amazon.com/cloudwatch/home?region={quote(region, safe='')}"
                f"#dashboards:name={quote(source, safe='')}",
                text="CloudWatch Dashboard",
            )
        )
    if defaults.dashboard_url:
        links.append(Link(href=defaults.dashboard_url, text=defaults.dashboard_text))
    return tuple(links)


def alert_event(alert: AlertMessage, settings: Settings) -> PagerDutyEvent:
    """The seed's ``createIncidentFromAlert`` event: templated when the alert is a seed alarm."""
    seed = seed_template_for(alert.alarm_name, settings.event_defaults)
    dedup_key = name_dedup_key(f"{alert.alarm_name}-{alert.metric_name}" if alert.metric_name else alert.alarm_name)
    if seed is not None:
        template, environment = seed
        return seed_event(
            template,
            environment=environment,
            current=alert.current_value,
            threshold=alert.threshold,
            timestamp=alert.timestamp,
            defaults=settings.event_defaults,
            dedup_key=dedup_key,
        )
    summary = f"[{alert.environment.upper()}] {alert.alarm_name}"
    if alert.metric_name:
        summary += f": {alert.metric_name} {fmt_number(alert.current_value)} vs {fmt_number(alert.threshold)}"
    details = {
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
            summary=printable(summary),
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
