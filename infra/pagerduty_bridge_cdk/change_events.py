"""Change events: CloudFormation stack operations become PagerDuty change events.

An EventBridge rule on the default bus matches "CloudFormation Stack Status Change" events whose new
status is final (``*_COMPLETE`` or ``*_FAILED``; in-progress statuses never invoke the function), of
every stack of the account or of the stacks whose names match the configured globs, and invokes the
main function, which sends each as a change event (context for responders, never a page).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.event_targets import function_target
from pagerduty_bridge_cdk.queues import dead_letter_queue

FINAL_STATUSES: Final = ("*_COMPLETE", "*_FAILED")
"""Stack statuses an operation ends in (CREATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE, DELETE_FAILED …),
as EventBridge wildcards; ``*_IN_PROGRESS`` statuses match neither."""

MAX_EVENT_AGE: Final = Duration.hours(1)
"""A change event tells responders what changed around an incident; one EventBridge could not deliver
within an hour goes to the dead-letter queue, where its alarm makes someone look."""

DEAD_LETTERS_ALARM_DESCRIPTION: Final = (
    "CloudFormation stack changes are waiting in their dead-letter queue: EventBridge could not invoke the "
    "function (its permission, or throttling), so PagerDuty has not heard of them. Fix the cause, then "
    "replay them with pagerduty-bridge redrive."
)


def stack_id_patterns(globs: Sequence[str], *, partition: str, account: str) -> list[dict[str, str]]:
    """One EventBridge wildcard per stack-name glob, over the stack ARN of any region of ``account``."""
    return [{"wildcard": f"arn:{partition}:cloudformation:*:{account}:stack/{glob}/*"} for glob in globs]


class ChangeEvents(Construct):
    """The rule, its target (the main function, or its alias) and the rule's dead-letter queue."""

    def __init__(
        self, scope: Construct, construct_id: str, *, function: lambda_.IFunction, stack_globs: Sequence[str]
    ) -> None:
        """``stack_globs`` are stack-name globs; ``("*",)`` means every stack of the account."""
        super().__init__(scope, construct_id)
        self._stack_globs = tuple(stack_globs)
        self.dead_letters = dead_letter_queue(
            self, "DeadLetters", holds="CloudFormation stack changes EventBridge could not hand to the function"
        )
        self.rule = events.Rule(
            self,
            "StackStatusChanges",
            description="pagerduty-bridge: completed and failed CloudFormation operations as PagerDuty change events",
            event_pattern=self._pattern(),
        )
        self.rule.add_target(function_target(function, dead_letters=self.dead_letters, max_event_age=MAX_EVENT_AGE))

    def _pattern(self) -> events.EventPattern:
        stack = Stack.of(self)
        detail: dict[str, Any] = {"status-details": {"status": [{"wildcard": status} for status in FINAL_STATUSES]}}
        if "*" not in self._stack_globs:
            detail["stack-id"] = stack_id_patterns(self._stack_globs, partition=stack.partition, account=stack.account)
        return events.EventPattern(
            source=[constants.CLOUDFORMATION_SOURCE],
            detail_type=[constants.STACK_STATUS_CHANGE_DETAIL_TYPE],
            account=[stack.account],
            detail=detail,
        )
