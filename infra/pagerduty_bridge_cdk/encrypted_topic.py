"""An SNS topic that CloudWatch alarms can publish to, encrypted with a key of its own.

Both the alarm topic and the health topic are this construct: the same encryption, the same
``cloudwatch.amazonaws.com`` grants, the same SSL-only policy. Each has its own key so that a
problem with one (a disabled key, a broken key policy) cannot silence the other.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

CLOUDWATCH_PRINCIPAL: Final = "cloudwatch.amazonaws.com"
CLOUDWATCH_KEY_ACTIONS: Final = ("kms:Decrypt", "kms:GenerateDataKey*")
"""What CloudWatch needs on a topic's key to publish to it, exactly as the SNS documentation lists it
("Enable compatibility between event sources from AWS services and encrypted topics")."""


class CloudWatchTopic(Construct):
    """A KMS-encrypted, SSL-only SNS topic that only this account's alarms may publish to."""

    def __init__(self, scope: Construct, construct_id: str, *, description: str) -> None:
        super().__init__(scope, construct_id)
        self._description = description
        self.key = self._build_key()
        self.topic = self._build_topic()
        self._allow_cloudwatch_to_publish()

    def _build_key(self) -> kms.Key:
        key = kms.Key(
            self,
            "Key",
            description=self._description,
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
                actions=list(CLOUDWATCH_KEY_ACTIONS),
                resources=["*"],  # in a key policy, "*" means this key
                conditions=self._from_this_accounts_alarms(),
            )
        )
        return key

    def _build_topic(self) -> sns.Topic:
        return sns.Topic(
            self,
            "Topic",
            display_name=self._description,
            master_key=self.key,
            enforce_ssl=True,
        )

    def _allow_cloudwatch_to_publish(self) -> None:
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=self._from_this_accounts_alarms(),
            )
        )

    def _from_this_accounts_alarms(self) -> dict[str, dict[str, str]]:
        """Confused-deputy guard: CloudWatch acts here only for alarms of this account and region."""
        stack = Stack.of(self)
        return {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"},
        }
