"""A CloudWatch dashboard: the bridge's key figures, what it told PagerDuty, and whether it is healthy.

The key figures are the ones ``pagerduty-bridge stats`` computes from the incident table (the seed's
key metrics): incidents triggered per hour, mean time to resolve, and the shares of incidents that
were acknowledged and that resolved automatically (their alarm went back to OK). Here they come from
the metrics the handler emits as it goes, so they need no access to the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.health import bridge_metric

PERIOD: Final = Duration.minutes(5)
KEY_FIGURE_PERIOD: Final = Duration.hours(1)
"""Incidents are counted per hour, the unit the seed's creation rate is quoted in."""
GRID_WIDTH: Final = 24
"""A dashboard row is 24 columns wide."""
WIDGET_WIDTH: Final = 12
"""Half of the dashboard's 24-column grid: two graphs a row."""
KEY_FIGURE_WIDTH: Final = 8
"""A third of the grid: the three key-figure graphs share a row."""

INCIDENT_METRICS: Final = (
    constants.METRIC_INCIDENT_TRIGGERED,
    constants.METRIC_INCIDENT_ACKNOWLEDGED,
    constants.METRIC_INCIDENT_RESOLVED,
    constants.METRIC_DELIVERY_FAILED,
    constants.METRIC_INVALID_MESSAGE,
)
METRIC_INCIDENT_RESOLVED_AUTO: Final = constants.METRIC_INCIDENT_RESOLVED_BY.format(how="Auto")
"""Incidents resolved because their alarm went back to OK, named as the handler names it (the constant's
documentation lists the names: IncidentResolvedAuto, IncidentResolvedManual, IncidentResolvedReconciled)."""

ACKNOWLEDGEMENT_RATE: Final = "100 * FILL(acknowledged, 0) / triggered"
"""Acknowledgements per triggered incident, in percent; a period without acknowledgements is 0 %, one
without triggers has no value (nothing to acknowledge)."""
AUTO_RESOLUTION_RATE: Final = "100 * FILL(auto, 0) / resolved"
"""Automatic resolutions per resolved incident, in percent, likewise."""


def dashboard_name(environment: str, region: str) -> str:
    """``pagerduty-bridge-<environment>-<region>``. A dashboard's name is unique in its account across
    every region (dashboards are global), while a bridge serves the alarms of its own region only: one
    environment with a bridge in each of two regions needs two names."""
    return f"pagerduty-bridge-{environment}-{region}"


class BridgeDashboard(Construct):
    """Key figures, incident traffic, and the function's and the queues' health, one per environment and region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        function: lambda_.IFunction,
        dead_letter_queues: Mapping[str, sqs.IQueue],
    ) -> None:
        super().__init__(scope, construct_id)
        self._metric = partial(bridge_metric, service=constants.deployed_service_name(environment))
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name(environment, Stack.of(self).region),
            default_interval=Duration.days(1),
        )
        self.dashboard.add_widgets(self._key_figures_widget())
        self.dashboard.add_widgets(self._creation_rate_widget(), self._resolution_time_widget(), self._rates_widget())
        self.dashboard.add_widgets(self._incident_widget(), self._latency_widget())
        self.dashboard.add_widgets(self._function_widget(function), self._duration_widget(function))
        self.dashboard.add_widgets(self._queue_widget(dead_letter_queues))

    def _acknowledgement_rate(self, label: str, period: Duration) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression=ACKNOWLEDGEMENT_RATE,
            using_metrics={
                "acknowledged": self._metric(constants.METRIC_INCIDENT_ACKNOWLEDGED, period),
                "triggered": self._metric(constants.METRIC_INCIDENT_TRIGGERED, period),
            },
            label=label,
            period=period,
        )

    def _auto_resolution_rate(self, label: str, period: Duration) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression=AUTO_RESOLUTION_RATE,
            using_metrics={
                "auto": self._metric(METRIC_INCIDENT_RESOLVED_AUTO, period),
                "resolved": self._metric(constants.METRIC_INCIDENT_RESOLVED, period),
            },
            label=label,
            period=period,
        )

    def _key_figures_widget(self) -> cloudwatch.SingleValueWidget:
        """The four figures over whatever time range the dashboard shows."""
        period = KEY_FIGURE_PERIOD  # replaced by the whole time range (set_period_to_time_range)
        return cloudwatch.SingleValueWidget(
            title="Key figures over the time range shown",
            metrics=[
                self._metric(constants.METRIC_INCIDENT_TRIGGERED, period, label="Incidents triggered"),
                self._metric(
                    constants.METRIC_RESOLUTION_TIME,
                    period,
                    statistic=cloudwatch.Stats.AVERAGE,
                    label="Mean time to resolve (s)",
                ),
                self._acknowledgement_rate("Acknowledged (%)", period),
                self._auto_resolution_rate("Resolved automatically (%)", period),
            ],
            set_period_to_time_range=True,
            full_precision=False,
            width=GRID_WIDTH,
        )

    def _creation_rate_widget(self) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="Incidents triggered per hour",
            left=[self._metric(constants.METRIC_INCIDENT_TRIGGERED, KEY_FIGURE_PERIOD, label="Triggered per hour")],
            left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
            width=KEY_FIGURE_WIDTH,
        )

    def _resolution_time_widget(self) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="Mean time to resolve (seconds)",
            left=[
                self._metric(
                    constants.METRIC_RESOLUTION_TIME,
                    KEY_FIGURE_PERIOD,
                    statistic=cloudwatch.Stats.AVERAGE,
                    label="Mean time to resolve",
                )
            ],
            left_y_axis=cloudwatch.YAxisProps(min=0, label="seconds", show_units=False),
            width=KEY_FIGURE_WIDTH,
        )

    def _rates_widget(self) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="Acknowledged and resolved automatically (% per hour)",
            left=[
                self._acknowledgement_rate("Acknowledged (% of triggered)", KEY_FIGURE_PERIOD),
                self._auto_resolution_rate("Resolved automatically (% of resolved)", KEY_FIGURE_PERIOD),
            ],
            left_y_axis=cloudwatch.YAxisProps(min=0, max=100, label="%", show_units=False),
            width=KEY_FIGURE_WIDTH,
        )

    def _incident_widget(self) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="PagerDuty events",
            left=[self._metric(name, PERIOD) for name in INCIDENT_METRICS],
            width=WIDGET_WIDTH,
        )

    def _latency_widget(self) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="PagerDuty call latency (ms: p50, p99, max)",
            left=[
                self._metric(constants.METRIC_PAGERDUTY_LATENCY, PERIOD, statistic=statistic)
                for statistic in (cloudwatch.Stats.p(50), cloudwatch.Stats.p(99), cloudwatch.Stats.MAXIMUM)
            ],
            width=WIDGET_WIDTH,
        )

    def _function_widget(self, function: lambda_.IFunction) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="Invocations, errors, throttles",
            left=[
                function.metric_invocations(period=PERIOD),
                function.metric_errors(period=PERIOD),
                function.metric_throttles(period=PERIOD),
            ],
            width=WIDGET_WIDTH,
        )

    def _duration_widget(self, function: lambda_.IFunction) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="Duration (p50, p99, max)",
            left=[
                function.metric_duration(period=PERIOD, statistic=statistic)
                for statistic in (cloudwatch.Stats.p(50), cloudwatch.Stats.p(99), cloudwatch.Stats.MAXIMUM)
            ],
            width=WIDGET_WIDTH,
        )

    def _queue_widget(self, dead_letter_queues: Mapping[str, sqs.IQueue]) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title="Dead-letter queue depth",
            left=[
                queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM, label=name
                )
                for name, queue in dead_letter_queues.items()
            ],
            width=WIDGET_WIDTH,
        )
