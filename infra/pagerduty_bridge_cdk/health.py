"""The bridge watching itself: alarms on its own failures, sent to a topic of their own.

Never through the alarm topic the bridge consumes: a broken bridge cannot page about itself. The
health topic goes to people directly (e-mail, or whatever the operators subscribe), and every alarm
also notifies on its way back to OK so a recovered bridge says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import jsii
from aws_cdk import Annotations, CfnOutput, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IValidation

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.encrypted_topic import CloudWatchTopic

PERIOD: Final = Duration.minutes(1)
"""One-minute periods: a paging path that fails should be known within minutes, not a quarter hour."""

BUFFER_AGE_THRESHOLD: Final = Duration.minutes(5)
"""How old the buffer's oldest message may get before someone is told. A healthy buffer is drained within
seconds (a batching window of at most a few seconds, then one invocation); five minutes covers a burst
worked off at ``maxConcurrency`` and a message waiting out one visibility timeout after a failed
attempt, and still tells a person about a buffer nobody drains (its mapping disabled, its permission
lost) long before SQS's retention runs out. Pages that late are worth a look in any case."""

UNSUBSCRIBED_HEALTH_WARNING_ID: Final = "pagerduty-bridge:healthTopicUnsubscribed"
"""The id of the warning that nothing in the app subscribes to the health topic, for
``Annotations.of(bridge).acknowledge_warning`` when the subscription is made outside the app."""

POWERTOOLS_SERVICE_DIMENSION: Final = "service"
"""Powertools Metrics adds the service name as this dimension to every metric it emits."""


def delivery_failed_metric(service: str, period: Duration = PERIOD) -> cloudwatch.Metric:
    """The handler's count of notifications it could not deliver to PagerDuty."""
    return bridge_metric(constants.METRIC_DELIVERY_FAILED, period, service=service)


def bridge_metric(
    name: str,
    period: Duration = PERIOD,
    *,
    service: str,
    statistic: str = cloudwatch.Stats.SUM,
    label: str | None = None,
) -> cloudwatch.Metric:
    """One of the handler's own metrics as Powertools emits it: the namespace, and the ``service``
    dimension of one bridge (``constants.deployed_service_name``); summed unless ``statistic`` says
    otherwise."""
    return cloudwatch.Metric(
        namespace=constants.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={POWERTOOLS_SERVICE_DIMENSION: service},
        statistic=statistic,
        period=period,
        label=label,
    )


class HealthAlarms(Construct):
    """A health topic and the alarms that publish to it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        service: str,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        email: str | None,
        queue_descriptions: Mapping[str, str] | None = None,
        webhook_function: lambda_.IFunction | None = None,
        buffer: sqs.IQueue | None = None,
    ) -> None:
        """``queue_descriptions`` overrides, by queue name, the alarm text for queues of notifications;
        ``buffer`` is buffered delivery's queue, whose oldest message's age is alarmed on."""
        super().__init__(scope, construct_id)
        self._service = service
        self.topic = self._build_topic(email)
        self._action = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._build_function_alarms(function)
        self._build_queue_alarms(dead_letter_queues, queue_descriptions or {})
        if buffer is not None:
            self._build_buffer_alarm(buffer)
        self._build_handler_alarms()
        if webhook_function is not None:
            self._build_webhook_alarms(webhook_function)

    def _build_topic(self, email: str | None) -> sns.ITopic:
        """The topic, e-mailing ``email``; a validation warns when nothing in the app subscribes to it."""
        topic = CloudWatchTopic(self, "Topic", description="pagerduty-bridge health").topic
        if email is not None:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        CfnOutput(self, "TopicArn", value=topic.topic_arn, description="Subscribe the bridge's operators here")
        self.node.add_validation(UnsubscribedTopicCheck(topic))
        return topic

    def _build_function_alarms(self, function: lambda_.IFunction) -> None:
        self._alarm(
            "FunctionErrors",
            function.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            "The bridge function failed an invocation (Lambda retries it; see its logs).",
        )
        self._alarm(
            "FunctionThrottles",
            function.metric_throttles(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            "The bridge function was throttled: alarms queue up behind its reserved concurrency.",
        )

    def _build_queue_alarms(
        self, dead_letter_queues: Mapping[str, sqs.IQueue], descriptions: Mapping[str, str]
    ) -> None:
        for name, queue in dead_letter_queues.items():
            self._alarm(
                f"{name}NotEmpty",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM),
                descriptions.get(
                    name,
                    f"Notifications are waiting in the {name} queue: they never reached PagerDuty. "
                    "Fix the cause, then replay them.",
                ),
            )

    def _build_buffer_alarm(self, buffer: sqs.IQueue) -> None:
        minutes = int(BUFFER_AGE_THRESHOLD.to_minutes())
        self._alarm(
            "BufferNotDrained",
            buffer.metric_approximate_age_of_oldest_message(period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM),
            f"A notification has waited in the buffer queue for {minutes} minutes or more: pages are late. Check "
            "that the function's SQS event source mapping is enabled and can read the queue, and the function's "
            "errors and throttles. Messages expire after 14 days.",
            threshold=BUFFER_AGE_THRESHOLD.to_seconds(),
        )

    def _build_handler_alarms(self) -> None:
        self._alarm(
            "DeliveryFailed",
            delivery_failed_metric(self._service),
            "The bridge could not deliver an event to PagerDuty (it retries; see its logs).",
        )
        self._alarm(
            "InvalidMessage",
            bridge_metric(constants.METRIC_INVALID_MESSAGE, service=self._service),
            "The bridge received input it cannot read (a malformed event or alarm message): it was not paged, "
            "and no retry will change that. Read the logged message and fix its sender.",
        )

    def _build_webhook_alarms(self, function: lambda_.IFunction) -> None:
        self._alarm(
            "WebhookErrors",
            function.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            "The webhook receiver failed a request: PagerDuty retries it, but acknowledgements and resolutions "
            "made in PagerDuty may be missing from the incident table (see its logs).",
        )
        self._alarm(
            "WebhookFailures",
            bridge_metric(constants.METRIC_WEBHOOK_FAILED, service=self._service),
            "The webhook receiver could not record a request (its table or signing secret failed) and answered "
            "PagerDuty with a 5xx: PagerDuty retries it for a while, then drops it (see the receiver's logs).",
        )

    def _alarm(self, construct_id: str, metric: cloudwatch.Metric, description: str, *, threshold: float = 1) -> None:
        """Alarm on any datapoint at ``threshold`` or above (by default any non-zero one); missing data is
        healthy (no traffic, no failures)."""
        alarm = metric.create_alarm(
            self,
            construct_id,
            alarm_description=description,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[construct_id] = alarm


@jsii.implements(IValidation)
class UnsubscribedTopicCheck:
    """A validation of the health alarms: warns when no subscription of the app reads their topic.

    Validations run after everything else is built, so a subscription the app adds after the bridge
    (``bridge.health_topic.add_subscription``) counts. A subscription made outside the app cannot be
    seen: acknowledge the warning (id :data:`UNSUBSCRIBED_HEALTH_WARNING_ID`) then.
    """

    def __init__(self, topic: sns.ITopic) -> None:
        self._topic = topic

    def validate(self) -> list[str]:
        """Annotate an unsubscribed topic; the annotation is the report, so no validation error."""
        subscribed = any(
            isinstance(construct, sns.CfnSubscription) and construct.topic_arn == self._topic.topic_arn
            for construct in self._topic.node.root.node.find_all()
        )
        if not subscribed:
            Annotations.of(self._topic).add_warning_v2(
                UNSUBSCRIBED_HEALTH_WARNING_ID,
                f"the bridge's health alarms publish to {self._topic.node.path}, which has no subscriber: nobody "
                "will hear that the bridge itself is failing. Set health_alarm_email (the context parameter "
                "healthAlarmEmail), or subscribe in the app with bridge.health_topic.add_subscription(...); if "
                "you subscribe outside the app (its TopicArn output), acknowledge this warning.",
            )
        return []
