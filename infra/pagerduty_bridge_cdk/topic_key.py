"""Whether CloudWatch can publish to a topic of the app the bridge is given, as far as its key goes.

A topic encrypted with a key CloudWatch may not use takes no alarm notification: CloudWatch's publish
fails and nobody sees it (the alarm's history says "Failed to execute action", nothing else). With
``alarm_topic_arn=topic.topic_arn`` the topic and its key are in the app, so the synth can tell: the
AWS-managed ``alias/aws/sns`` key can never be opened to CloudWatch, and a key of the app must let
``cloudwatch.amazonaws.com`` use :data:`CLOUDWATCH_KEY_ACTIONS` in its own policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any, Final

import jsii
from aws_cdk import Annotations, Stack, Token
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import IConstruct, IValidation

from pagerduty_bridge_cdk.encrypted_topic import CLOUDWATCH_KEY_ACTIONS, CLOUDWATCH_PRINCIPAL

AWS_MANAGED_SNS_KEY: Final = "alias/aws/sns"
"""The AWS-managed key of SNS: its policy is AWS's, and lets no service principal use it."""


def topic_of_app(root: IConstruct, topic_arn: str) -> sns.CfnTopic | None:
    """The topic resource of the app whose ARN is the token ``topic_arn``, or None (a literal ARN, or a
    topic the app only imports)."""
    for construct in root.node.find_all():
        if isinstance(construct, sns.Topic) and construct.topic_arn == topic_arn:
            child = construct.node.default_child
            return child if isinstance(child, sns.CfnTopic) else None
        if isinstance(construct, sns.CfnTopic) and construct.ref == topic_arn:
            return construct
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a resolved CloudFormation value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)


def _key_of(topic: sns.CfnTopic, key_id: Any) -> kms.CfnKey | None:
    """The key resource of the topic's stack that the resolved ``KmsMasterKeyId`` names, or None."""
    stack = Stack.of(topic)
    for construct in stack.node.find_all():
        if isinstance(construct, kms.CfnKey) and Stack.of(construct).node.path == stack.node.path:
            logical_id = stack.resolve(construct.logical_id)
            if key_id in ({"Ref": logical_id}, {"Fn::GetAtt": [logical_id, "Arn"]}):
                return construct
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants_cloudwatch(statement: dict[str, Any]) -> list[str]:
    """The patterns of ``statement``'s actions if it allows CloudWatch (or anyone), else ``[]``."""
    principal = statement.get("Principal")
    anyone = principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS")))
    service = isinstance(principal, dict) and CLOUDWATCH_PRINCIPAL in _as_list(principal.get("Service"))
    if statement.get("Effect") != "Allow" or not (anyone or service):
        return []
    return [str(action).lower() for action in _as_list(statement.get("Action", []))]


def missing_key_actions(key: kms.CfnKey) -> list[str]:
    """The actions of :data:`CLOUDWATCH_KEY_ACTIONS` that ``key``'s policy does not allow CloudWatch."""
    policy = Stack.of(key).resolve(key.key_policy)
    statements = _as_list(policy.get("Statement", [])) if isinstance(policy, dict) else []
    granted = [pattern for statement in statements for pattern in _grants_cloudwatch(statement)]
    return [action for action in CLOUDWATCH_KEY_ACTIONS if not any(fnmatchcase(action.lower(), g) for g in granted)]


def unusable_key(topic: sns.CfnTopic, bridge: str) -> str | None:
    """Why CloudWatch cannot use ``topic``'s key, or None when it can or it cannot be told at synth."""
    owner = topic.node.scope if isinstance(topic.node.scope, sns.Topic) else topic
    if topic.kms_master_key_id is None:
        return None
    key_id = Stack.of(topic).resolve(topic.kms_master_key_id)
    consequence = f"CloudWatch fails every publish to it, silently, and no alarm pages through the bridge {bridge}"
    if any(text.endswith(AWS_MANAGED_SNS_KEY) for text in _strings(key_id)):
        return (
            f"topic {owner.node.path} is encrypted with the AWS-managed key {AWS_MANAGED_SNS_KEY}, which CloudWatch "
            f"may never use: {consequence}. Encrypt it with a customer-managed key whose policy lets "
            f"{CLOUDWATCH_PRINCIPAL} use {' and '.join(CLOUDWATCH_KEY_ACTIONS)}."
        )
    key = _key_of(topic, key_id)
    missing = [] if key is None else missing_key_actions(key)
    if key is None or not missing:
        return None
    key_path = key.node.scope.node.path if isinstance(key.node.scope, kms.Key) else key.node.path
    return (
        f"topic {owner.node.path} is encrypted with the key {key_path}, whose policy does not let "
        f"{CLOUDWATCH_PRINCIPAL} use {' and '.join(missing)}: {consequence}. Add a statement to that key's policy "
        f"allowing the service principal {CLOUDWATCH_PRINCIPAL} {' and '.join(CLOUDWATCH_KEY_ACTIONS)} "
        "(key.add_to_resource_policy)."
    )


@jsii.implements(IValidation)
class TopicKeyCheck:
    """A validation of the bridge given a topic of the app: an error on that topic if CloudWatch cannot
    use its key. Run at validation, after the whole app is built: a key's policy may grow until then."""

    def __init__(self, bridge: IConstruct, topic_arn: str) -> None:
        self._bridge = bridge
        self._topic_arn = topic_arn

    def validate(self) -> list[str]:
        """Annotate the topic; the annotation is the report."""
        if not Token.is_unresolved(self._topic_arn):
            return []
        topic = topic_of_app(self._bridge.node.root, self._topic_arn)
        reason = None if topic is None else unusable_key(topic, self._bridge.node.path)
        if topic is not None and reason is not None:
            owner = topic.node.scope if isinstance(topic.node.scope, sns.Topic) else topic
            Annotations.of(owner).add_error(reason)
        return []
