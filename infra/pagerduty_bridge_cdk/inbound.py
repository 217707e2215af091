"""Subscriptions of the app into the bridge (its function, its ``live`` alias, its buffer) that filter.

CloudWatch publishes an alarm notification with no message attributes, and the OK that resolves an
incident differs from the ALARM that opened it only in its body. So a filter policy on message
attributes (SNS's default scope) delivers nothing, and one on the body that names the state drops one
side of the lifecycle. Either is clean at synth and pages nobody after the deploy: the synth stops,
naming the subscription and its topic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jsii
from aws_cdk import Annotations, Stack
from aws_cdk import aws_sns as sns
from constructs import IConstruct, IValidation

STATE_FIELDS = ("NewStateValue", "OldStateValue")
"""The body fields of a CloudWatch alarm notification that tell ALARM from OK."""


def _arn(target: Any) -> str:
    """The ARN a subscription names ``target`` by: a function's, an alias's, or a queue's."""
    return str(getattr(target, "queue_arn", None) or target.function_arn)


def _names(endpoint: str, target: Any, subscription: sns.CfnSubscription) -> bool:
    """Whether a subscription's ``endpoint`` is ``target``: by its ARN token, or by ``Fn::GetAtt``/``Ref``
    of its resource in the subscription's stack."""
    if endpoint == _arn(target):
        return True
    resource = target.node.default_child
    stack = Stack.of(subscription)
    if resource is None or Stack.of(resource).node.path != stack.node.path:
        return False
    logical_id = stack.resolve(resource.logical_id)
    return stack.resolve(endpoint) in ({"Fn::GetAtt": [logical_id, "Arn"]}, {"Ref": logical_id})


def why_it_drops(subscription: sns.CfnSubscription) -> str | None:
    """What the subscription's filter policy drops of CloudWatch's notifications, or None."""
    policy = subscription.filter_policy
    if policy is None:
        return None
    if subscription.filter_policy_scope != "MessageBody":
        return "CloudWatch's notifications carry no message attributes, so this filter policy drops every one"
    text = json.dumps(Stack.of(subscription).resolve(policy))
    if any(f'"{field}"' in text for field in STATE_FIELDS):
        return "this filter policy on the alarm state drops the OK notifications that resolve incidents (or the pages)"
    return None


def _topic_path(root: IConstruct, topic_arn: str) -> str:
    for construct in root.node.find_all():
        if isinstance(construct, sns.Topic) and construct.topic_arn == topic_arn:
            return construct.node.path
        if isinstance(construct, sns.CfnTopic) and construct.ref == topic_arn:
            return construct.node.path
    return topic_arn


@jsii.implements(IValidation)
class FilteredSubscriptionsCheck:
    """A validation of the bridge: an error on each subscription of the app into ``targets`` (what SNS
    may deliver to: the function, its alias, the buffer) whose filter policy drops alarm notifications."""

    def __init__(self, bridge: IConstruct, targets: Sequence[Any]) -> None:
        self._bridge = bridge
        self._targets = list(targets)

    def validate(self) -> list[str]:
        """Annotate the subscriptions; the annotations are the report."""
        root = self._bridge.node.root
        for construct in root.node.find_all():
            if not isinstance(construct, sns.CfnSubscription):
                continue
            reason = why_it_drops(construct)
            if reason is None or not any(_names(construct.endpoint or "", t, construct) for t in self._targets):
                continue
            owner = construct.node.scope if isinstance(construct.node.scope, sns.Subscription) else construct
            Annotations.of(owner).add_error(
                f"subscription {owner.node.path} delivers the topic {_topic_path(root, construct.topic_arn)} to "
                f"{self._bridge.node.path} with a filter policy: {reason}. Drop the filter policy (route and "
                "silence alarms with alert rules instead), or give the bridge that topic (alarm_topic_arn)."
            )
        return []
