"""How notifications travel from the alarm topic to the function, and where they go when that fails.

Two shapes, chosen by the ``buffered`` context parameter:

* direct (default): SNS invokes the function asynchronously. SNS parks what it cannot deliver in a
  subscription dead-letter queue; Lambda retries a failed invocation twice, then hands the event to an
  on-failure SQS destination.
* buffered: SNS writes each notification (its envelope intact, raw delivery off) to a queue that the
  function drains in batches with bounded concurrency, reporting per-message failures; a message that
  fails ``maxReceiveCount`` times moves to a dead-letter queue. The schedule and the change-event rule
  still invoke the function asynchronously: when either is on, what fails after Lambda's retries goes
  to an on-failure queue, as in direct mode.

Either way nothing is dropped: every failure ends in a queue, and every queue's depth is alarmed on.
"""

from __future__ import annotations

from typing import Any, Final

import jsii
from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pagerduty_bridge_cdk.config import BridgeConfig
from pagerduty_bridge_cdk.nag import acknowledge_validation
from pagerduty_bridge_cdk.queues import DEAD_LETTER_RETENTION, dead_letter_queue, secure_queue

ASYNC_RETRY_ATTEMPTS: Final = 2
"""Lambda's own retries of a failed asynchronous invocation (its maximum, and its default)."""
MAX_EVENT_AGE: Final = Duration.hours(1)
"""An event Lambda could not run within an hour (throttled behind a burst, or failing) goes to the
on-failure queue, whose depth alarm reaches a person, rather than paging someone an hour late."""
ALIAS_ENDPOINT_RULE: Final = "CloudFormation-Validate::W3694"
ALIAS_ENDPOINT_REASON: Final = (
    "With SnapStart the subscription's endpoint is the function's live alias (a qualified function ARN), "
    "which SNS invokes like the function itself; invoking the unqualified function would run $LATEST, "
    "which has no snapshot."
)
BUFFER_RETENTION: Final = DEAD_LETTER_RETENTION
"""SQS's maximum, as for the dead-letter queue. A message keeps its first enqueue time when it moves to
the dead-letter queue, so one that waited long in the buffer has that much less time there; the
buffer's age alarm makes such a wait rare and never unseen."""
VISIBILITY_TIMEOUT_FACTOR: Final = 6
"""AWS's guidance for an SQS event source: visibility timeout at least six times the function
timeout, so a message is not handed out again while a throttled or retried batch still holds it."""


@jsii.implements(lambda_.IDestination)
class QueueDestination:
    """An on-failure destination that grants ``sqs:SendMessage`` and nothing else.

    ``aws_lambda_destinations.SqsDestination`` would also grant GetQueueAttributes and GetQueueUrl,
    which Lambda does not use to deliver a failure record.
    """

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(
        self, scope: Construct, fn: lambda_.IFunction, *_options: Any, **_keywords: Any
    ) -> lambda_.DestinationConfig:
        """Called by the invoke configuration: add the grant, name the queue."""
        fn.add_to_role_policy(
            iam.PolicyStatement(
                sid="SendFailedInvocationsToQueue",
                actions=["sqs:SendMessage"],
                resources=[self.queue.queue_arn],
            )
        )
        return lambda_.DestinationConfig(destination=self.queue.queue_arn)


FAILED_ASYNC_EVENTS_DESCRIPTION: Final = (
    "Scheduled reconciliation runs or CloudFormation stack changes are waiting in the FailedInvocations queue: "
    "the function failed on them after Lambda's retries. Fix the cause, then replay them with pagerduty-bridge "
    "redrive (a scheduled run is simply run once more)."
)
"""The alarm text of buffered mode's on-failure queue, which holds no notifications (the buffer's
failures go to its own dead-letter queue)."""


def send_failed_invocations_to(function: lambda_.IFunction, queue: sqs.IQueue) -> None:
    """Bounded retries of the function's asynchronous invocations, then ``queue`` for what still fails."""
    function.configure_async_invoke(
        retry_attempts=ASYNC_RETRY_ATTEMPTS,
        max_event_age=MAX_EVENT_AGE,
        on_failure=QueueDestination(queue),
    )


class DirectDelivery(Construct):
    """SNS → Lambda, with a subscription dead-letter queue and an on-failure destination."""

    def __init__(self, scope: Construct, construct_id: str, *, topic: sns.ITopic, function: lambda_.IFunction) -> None:
        """``function`` is what SNS invokes: the function, or its ``live`` alias."""
        super().__init__(scope, construct_id)
        self._topic = topic
        self._function = function
        self.subscription_dead_letters = dead_letter_queue(
            self, "SubscriptionDeadLetters", holds="notifications SNS could not deliver to the function"
        )
        self.failed_invocations = dead_letter_queue(
            self, "FailedInvocations", holds="events the function failed on after Lambda's retries"
        )
        self._build_subscription()
        send_failed_invocations_to(self._function, self.failed_invocations)

    @property
    def dead_letter_queues(self) -> dict[str, sqs.IQueue]:
        """Every queue where a failed notification can end up, by a name for alarms and dashboards."""
        return {
            "SubscriptionDeadLetters": self.subscription_dead_letters,
            "FailedInvocations": self.failed_invocations,
        }

    def _build_subscription(self) -> None:
        subscription = self._topic.add_subscription(
            subscriptions.LambdaSubscription(self._function, dead_letter_queue=self.subscription_dead_letters)
        )
        if isinstance(self._function, lambda_.Alias):
            acknowledge_validation(subscription, ALIAS_ENDPOINT_RULE, ALIAS_ENDPOINT_REASON)


class BufferedDelivery(Construct):
    """SNS → SQS → Lambda, with partial batch failures and a redrive to a dead-letter queue; and, when
    the function has asynchronous triggers too, an on-failure queue for them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        function: lambda_.IFunction,
        function_timeout: Duration,
        config: BridgeConfig,
        async_triggers: bool,
    ) -> None:
        """``function`` is what the queue drives: the function, or its ``live`` alias. ``async_triggers``
        says whether anything else (the schedule, change events) invokes it asynchronously."""
        super().__init__(scope, construct_id)
        self._topic = topic
        self._function = function
        self._config = config
        # Redriven buffer messages and notifications SNS could not write to the buffer have the same
        # shape (an SNS envelope), so one dead-letter queue holds both and one replay handles both.
        self.dead_letters = secure_queue(self, "DeadLetters", retention=DEAD_LETTER_RETENTION)
        self.buffer = self._build_buffer(function_timeout)
        self._build_subscription()
        self._build_event_source()
        self.failed_invocations: sqs.Queue | None = None
        if async_triggers:
            self.failed_invocations = dead_letter_queue(
                self,
                "FailedInvocations",
                holds="scheduled runs and change events the function failed on after Lambda's retries",
            )
            send_failed_invocations_to(self._function, self.failed_invocations)

    @property
    def dead_letter_queues(self) -> dict[str, sqs.IQueue]:
        """Every queue where a failed notification or event can end up, by a name for alarms and dashboards."""
        queues: dict[str, sqs.IQueue] = {"DeadLetters": self.dead_letters}
        if self.failed_invocations is not None:
            queues["FailedInvocations"] = self.failed_invocations
        return queues

    @property
    def queue_descriptions(self) -> dict[str, str]:
        """Alarm texts for the queues that hold no notifications."""
        if self.failed_invocations is None:
            return {}
        return {"FailedInvocations": FAILED_ASYNC_EVENTS_DESCRIPTION}

    def _build_buffer(self, function_timeout: Duration) -> sqs.Queue:
        return secure_queue(
            self,
            "Buffer",
            # SQS's default of four days would let pages expire unseen in a buffer nobody drains; its
            # age alarm reaches a person within minutes, and the messages wait as long as SQS allows.
            retention=BUFFER_RETENTION,
            visibility_timeout=Duration.seconds(function_timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=self._config.max_receive_count
            ),
        )

    def _build_subscription(self) -> None:
        self._topic.add_subscription(
            subscriptions.SqsSubscription(
                self.buffer,
                raw_message_delivery=False,  # the handler parses SNS envelopes inside SQS bodies
                dead_letter_queue=self.dead_letters,
            )
        )

    def _build_event_source(self) -> None:
        self._function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ConsumeBufferQueue",
                actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                resources=[self.buffer.queue_arn],
            )
        )
        mapping = self._function.add_event_source_mapping(
            "BufferSource",
            event_source_arn=self.buffer.queue_arn,
            batch_size=self._config.batch_size,
            max_batching_window=(
                Duration.seconds(self._config.max_batching_window_seconds)
                if self._config.max_batching_window_seconds
                else None
            ),
            max_concurrency=self._config.max_concurrency,
            report_batch_item_failures=True,
        )
        # Lambda checks the role's queue permissions when the mapping is created.
        if self._function.role is not None:
            mapping.node.add_dependency(self._function.role)
