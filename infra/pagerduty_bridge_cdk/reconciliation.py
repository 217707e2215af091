"""Scheduled reconciliation: the function resolves open incidents whose OK notification never arrived.

An alarm without the topic in its OKActions, or an OK notification lost on the way, leaves an incident
open in PagerDuty for ever. On a schedule, EventBridge invokes the function with a "Scheduled Event";
the handler lists the open incidents (a Query on the table's sparse index), asks CloudWatch for their
alarms' states (DescribeAlarms) and resolves those whose alarm is OK or no longer exists.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pagerduty_bridge_cdk.event_targets import function_target
from pagerduty_bridge_cdk.nag import acknowledge
from pagerduty_bridge_cdk.queues import dead_letter_queue

ALARM_ACTIONS: Final = ("cloudwatch:DescribeAlarms",)
"""Reading the current state of the incidents' alarms, metric and composite alike. (Listing the open
incidents is a Query on the table's sparse index, which the function may always do: see
``bridge_function.INDEX_ACTIONS``.)"""

DEAD_LETTERS_ALARM_DESCRIPTION: Final = (
    "Scheduled reconciliation events are waiting in their dead-letter queue: EventBridge could not invoke "
    "the function (its permission, or throttling). Fix the cause; the next run reconciles everything "
    "anyway, so the kept events can then be deleted."
)

DESCRIBE_ALARMS_REASON: Final = (
    "cloudwatch:DescribeAlarms returns composite alarms only to a caller whose permission is scoped to "
    "'*' (CloudWatch API reference, DescribeAlarms); reconciliation asks for metric and composite alarms "
    "alike, by the names of whatever alarms publish to the bridge, so no narrower resource can serve. "
    "The action is read-only."
)
"""Why the DescribeAlarms statement names "*". IAM would accept alarm ARNs for the action, but a grant
narrowed to them silently hides every composite alarm, whose incidents would then look "gone" and be
resolved while the alarm is still in ALARM."""


class Reconciliation(Construct):
    """An EventBridge schedule invoking the function, with a dead-letter queue, and the grants it needs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        minutes: int,
    ) -> None:
        """``function`` is what the schedule invokes: the function, or its ``live`` alias."""
        super().__init__(scope, construct_id)
        self._function = function
        self.period = Duration.minutes(minutes)
        self.dead_letters = dead_letter_queue(
            self, "DeadLetters", holds="scheduled reconciliation events EventBridge could not hand to the function"
        )
        self.rule = self._build_schedule()
        self._grant()

    def _build_schedule(self) -> events.Rule:
        rule = events.Rule(
            self,
            "Schedule",
            description="pagerduty-bridge: resolve open incidents whose alarm is OK or gone",
            schedule=events.Schedule.rate(self.period),
        )
        # A reconciliation that could not start before the next one is due is superseded by it.
        rule.add_target(function_target(self._function, dead_letters=self.dead_letters, max_event_age=self.period))
        return rule

    def _grant(self) -> None:
        self._function.add_to_role_policy(
            iam.PolicyStatement(sid="ReadAlarmStates", actions=list(ALARM_ACTIONS), resources=["*"])
        )
        role = self._function.role
        policy = role.node.try_find_child("DefaultPolicy") if role is not None else None
        if policy is not None:
            acknowledge(policy, "IAM5", DESCRIBE_ALARMS_REASON, finding="Resource::*")
