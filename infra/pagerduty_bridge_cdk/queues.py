"""SQS queues as every queue of the bridge is made: encrypted at rest, SSL-only, kept when removed.

SQS-managed encryption (SSE-SQS) rather than a customer-managed key: SNS and Lambda deliver to an
SSE-SQS queue without any key grant, and a dead-letter queue whose key policy forgot a service
principal silently drops exactly the messages it exists to keep.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pagerduty_bridge_cdk.nag import acknowledge

DEAD_LETTER_RETENTION: Final = Duration.days(14)
"""SQS's maximum: a failed page stays inspectable and replayable for two weeks. Longer than any
source queue's retention, since a standard queue keeps a message's original enqueue time on redrive."""

QUEUE_REMOVAL_POLICY: Final = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
"""Every queue of the bridge holds pages or events on their way (the buffer) or waiting for a redrive (the
dead-letter and on-failure queues). Switching ``buffered``, turning reconciliation or change events off,
or deleting the stack removes queues from the template; CloudFormation keeps them, messages and all,
for the operator to drain and delete (README, "Tear down"). A queue created by an operation that rolls
back is still deleted: it cannot have held anything anyone else could not see."""


def secure_queue(
    scope: Construct,
    construct_id: str,
    *,
    retention: Duration | None = None,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """A queue with server-side encryption and a policy denying any request not made over TLS, which
    CloudFormation keeps when the stack or an update removes it."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=retention,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
        removal_policy=QUEUE_REMOVAL_POLICY,
    )


def dead_letter_queue(scope: Construct, construct_id: str, *, holds: str) -> sqs.Queue:
    """A queue that is itself the last stop for failed deliveries (``holds`` says which)."""
    queue = secure_queue(scope, construct_id, retention=DEAD_LETTER_RETENTION)
    acknowledge(
        queue,
        "SQS3",
        f"This queue is the dead-letter destination for {holds}; the rule only recognises queues named "
        "in another queue's RedrivePolicy. Its depth is alarmed on, and a dead-letter queue of a "
        "dead-letter queue would only move the same messages one step further from anyone's sight.",
    )
    return queue
