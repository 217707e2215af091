"""EventBridge rules that invoke the main function: bounded retries, and a dead-letter queue for the rest."""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

TARGET_RETRY_ATTEMPTS: Final = 2
"""EventBridge's retries when it cannot hand the event to Lambda (the asynchronous Invoke call itself
failing or being throttled); what the function does with the event is Lambda's own retry policy."""


def function_target(
    function: lambda_.IFunction, *, dead_letters: sqs.IQueue, max_event_age: Duration
) -> targets.LambdaFunction:
    """``function`` (or its alias) as a rule target that keeps what it could not deliver in ``dead_letters``."""
    return targets.LambdaFunction(
        function,
        dead_letter_queue=dead_letters,
        retry_attempts=TARGET_RETRY_ATTEMPTS,
        max_event_age=max_event_age,
    )
