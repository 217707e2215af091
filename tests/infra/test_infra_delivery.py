"""Delivery safety: how notifications reach the function and where failures are kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Match

from pagerduty_bridge_cdk import nag
from pagerduty_bridge_cdk.config import BridgeConfig
from pagerduty_bridge_cdk.delivery import ASYNC_RETRY_ATTEMPTS, MAX_EVENT_AGE, VISIBILITY_TIMEOUT_FACTOR
from pagerduty_bridge_cdk.queues import DEAD_LETTER_RETENTION
from tests.infra.conftest import EXISTING_TOPIC_ARN, Synthesized, as_list, names_target, ref, synthesize

BUFFERED_WITH_TRIGGERS = "cdk-buffered-with-triggers"
"""The xdist group of the one test app here: buffered delivery beside the schedule and change events."""


@pytest.fixture(scope="module")
def buffered_with_triggers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """Buffered delivery, with the default schedule and change events invoking the function asynchronously."""
    yield synthesize(
        "buffered-with-triggers", tmp_path_factory.mktemp(BUFFERED_WITH_TRIGGERS), buffered="true", changeEvents="true"
    )


def _queue_policies(synthesized: Synthesized, queue_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in synthesized.of_type("AWS::SQS::QueuePolicy").values():
        if {"Ref": queue_id} in policy["Properties"]["Queues"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_direct_subscription_invokes_the_function_with_a_dead_letter_queue(direct: Synthesized) -> None:
    _, subscription = direct.one("AWS::SNS::Subscription")
    properties = subscription["Properties"]
    function_id = direct.logical_id(direct.bridge.bridge.function)
    dlq_id = direct.logical_id(direct.bridge.dead_letter_queues["SubscriptionDeadLetters"])
    assert properties["Protocol"] == "lambda"
    assert ref(properties["Endpoint"]) == function_id
    assert ref(properties["TopicArn"]) == direct.logical_id(direct.bridge.alarm_topic.topic)
    assert ref(properties["RedrivePolicy"]["deadLetterTargetArn"]) == dlq_id


def test_sns_may_write_to_the_subscription_dead_letter_queue_for_this_topic_only(direct: Synthesized) -> None:
    dlq_id = direct.logical_id(direct.bridge.dead_letter_queues["SubscriptionDeadLetters"])
    allows = [s for s in _queue_policies(direct, dlq_id) if s["Effect"] == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert as_list(allow["Action"]) == ["sqs:SendMessage"]
    assert ref(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == direct.logical_id(direct.bridge.alarm_topic.topic)


def test_only_the_topic_and_the_schedule_may_invoke_the_function(direct: Synthesized) -> None:
    assert direct.bridge.reconciliation is not None
    function_arn = {"Fn::GetAtt": [direct.logical_id(direct.bridge.bridge.function), "Arn"]}
    invokers = set()
    for permission in direct.of_type("AWS::Lambda::Permission").values():
        properties = permission["Properties"]
        assert properties["Action"] == "lambda:InvokeFunction"
        assert properties["FunctionName"] == function_arn
        invokers.add((properties["Principal"], ref(properties["SourceArn"])))
    assert invokers == {
        ("sns.amazonaws.com", direct.logical_id(direct.bridge.alarm_topic.topic)),
        ("events.amazonaws.com", direct.logical_id(direct.bridge.reconciliation.rule)),
    }


def test_async_invocations_retry_a_bounded_number_of_times_then_go_to_a_queue(direct: Synthesized) -> None:
    _, config = direct.one("AWS::Lambda::EventInvokeConfig")
    properties = config["Properties"]
    assert properties["MaximumRetryAttempts"] == ASYNC_RETRY_ATTEMPTS == 2
    assert properties["MaximumEventAgeInSeconds"] == MAX_EVENT_AGE.to_seconds()
    destination = properties["DestinationConfig"]["OnFailure"]["Destination"]
    failure_queue = direct.bridge.dead_letter_queues["FailedInvocations"]
    assert ref(destination) == direct.logical_id(failure_queue)
    assert direct.resources[ref(destination) or ""]["Type"] == "AWS::SQS::Queue"


def test_every_queue_is_encrypted_and_ssl_only(variant: Synthesized) -> None:
    queues = variant.of_type("AWS::SQS::Queue")
    assert queues
    for queue_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, queue_id
        denies = [s for s in _queue_policies(variant, queue_id) if s["Effect"] == "Deny"]
        assert any(
            s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "sqs:*" for s in denies
        ), queue_id


def test_dead_letter_queues_keep_messages_for_two_weeks(variant: Synthesized) -> None:
    for name, queue in variant.bridge.dead_letter_queues.items():
        properties = variant.resources[variant.logical_id(queue)]["Properties"]
        assert properties["MessageRetentionPeriod"] == DEAD_LETTER_RETENTION.to_seconds(), name


def test_every_queue_outlives_a_change_of_delivery_mode_and_the_stack(variant: Synthesized) -> None:
    """Switching ``buffered``, turning reconciliation or change events off, or deleting the stack removes
    queues from the template that may still hold pages waiting for redrive: CloudFormation keeps them
    (except when the operation that created them rolls back, when they cannot hold anything yet)."""
    queues = variant.of_type("AWS::SQS::Queue")
    assert queues
    for queue_id, queue in queues.items():
        assert queue.get("DeletionPolicy") == "RetainExceptOnCreate", queue_id
        assert queue.get("UpdateReplacePolicy") == "Retain", queue_id


def test_buffered_mode_subscribes_a_queue_with_envelopes_intact(buffered: Synthesized) -> None:
    (properties,) = [
        s["Properties"]
        for s in buffered.of_type("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] != "email"
    ]
    delivery = buffered.bridge.node.find_child("BufferedDelivery")
    assert properties["Protocol"] == "sqs"
    assert properties["TopicArn"] == EXISTING_TOPIC_ARN
    assert ref(properties["Endpoint"]) == buffered.logical_id(delivery.node.find_child("Buffer"))
    assert properties.get("RawMessageDelivery", False) is False
    assert ref(properties["RedrivePolicy"]["deadLetterTargetArn"]) == buffered.logical_id(
        delivery.node.find_child("DeadLetters")
    )


def test_buffered_mode_drains_the_queue_with_partial_batch_failures(buffered: Synthesized) -> None:
    config = buffered.bridge.config
    delivery = buffered.bridge.node.find_child("BufferedDelivery")
    buffered.assertions.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [buffered.logical_id(delivery.node.find_child("Buffer")), "Arn"]},
            "BatchSize": config.batch_size,
            "MaximumBatchingWindowInSeconds": config.max_batching_window_seconds,
            "ScalingConfig": {"MaximumConcurrency": config.max_concurrency},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    assert not buffered.of_type("AWS::Lambda::EventInvokeConfig")
    # SnapStart is on in this variant: the queue drives the live alias, not $LATEST.
    (_, mapping) = buffered.one("AWS::Lambda::EventSourceMapping")
    assert names_target(buffered, mapping["Properties"]["FunctionName"])


def test_buffered_queue_redrives_to_the_dead_letter_queue(buffered: Synthesized) -> None:
    delivery = buffered.bridge.node.find_child("BufferedDelivery")
    buffer = buffered.resources[buffered.logical_id(delivery.node.find_child("Buffer"))]["Properties"]
    assert buffer["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [buffered.logical_id(delivery.node.find_child("DeadLetters")), "Arn"]},
        "maxReceiveCount": BridgeConfig().max_receive_count,
    }
    assert BridgeConfig().max_receive_count == 5
    timeout = buffered.function["Properties"]["Timeout"]
    assert buffer["VisibilityTimeout"] == timeout * VISIBILITY_TIMEOUT_FACTOR


def test_the_buffer_keeps_messages_as_long_as_a_dead_letter_queue(buffered: Synthesized) -> None:
    """SQS's default of four days would let pages expire unseen in a buffer nobody drains; the buffer's
    age alarm (see test_infra_resources) reaches a person long before the fortnight is over."""
    assert buffered.bridge.buffer is not None
    buffer = buffered.resources[buffered.logical_id(buffered.bridge.buffer)]["Properties"]
    assert buffer["MessageRetentionPeriod"] == DEAD_LETTER_RETENTION.to_seconds() == 14 * 24 * 3600


def test_buffered_queue_accepts_only_this_topic(buffered: Synthesized) -> None:
    buffered.assertions.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "sns.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Condition": {"ArnEquals": {"aws:SourceArn": EXISTING_TOPIC_ARN}},
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.xdist_group(BUFFERED_WITH_TRIGGERS)
def test_buffered_mode_keeps_failed_scheduled_runs_and_change_events_in_a_queue(
    buffered_with_triggers: Synthesized,
) -> None:
    """The queue drives the function synchronously, but the schedule and the change-event rule invoke it
    asynchronously: what still fails after Lambda's retries must land somewhere redrive can read."""
    synthesized = buffered_with_triggers
    assert synthesized.bridge.reconciliation is not None and synthesized.bridge.change_events is not None
    _, config = synthesized.one("AWS::Lambda::EventInvokeConfig")
    properties = config["Properties"]
    assert properties["MaximumRetryAttempts"] == ASYNC_RETRY_ATTEMPTS
    assert properties["MaximumEventAgeInSeconds"] == MAX_EVENT_AGE.to_seconds()
    failure_queue = synthesized.bridge.dead_letter_queues["FailedInvocations"]
    queue_id = synthesized.logical_id(failure_queue)
    assert ref(properties["DestinationConfig"]["OnFailure"]["Destination"]) == queue_id
    queue = synthesized.resources[queue_id]
    assert queue["Properties"]["MessageRetentionPeriod"] == DEAD_LETTER_RETENTION.to_seconds()
    assert queue["DeletionPolicy"] == "RetainExceptOnCreate"
    assert "FailedInvocationsNotEmpty" in synthesized.bridge.health.alarms
    outputs = synthesized.template["Outputs"].values()
    assert any(ref(output["Value"]) == queue_id and "redrive" in output["Description"] for output in outputs)
    assert nag.unacknowledged_findings(synthesized.assembly_dir) == []


def test_buffered_mode_without_asynchronous_triggers_has_no_failure_queue(buffered: Synthesized) -> None:
    assert buffered.bridge.reconciliation is None and buffered.bridge.change_events is None
    assert "FailedInvocations" not in buffered.bridge.dead_letter_queues
    assert not buffered.of_type("AWS::Lambda::EventInvokeConfig")
