"""The SNS topic alarms publish to: created encrypted, or an existing one the function subscribes to."""

from __future__ import annotations

from aws_cdk import CfnOutput
from aws_cdk import aws_sns as sns
from constructs import Construct

from pagerduty_bridge_cdk.encrypted_topic import CloudWatchTopic
from pagerduty_bridge_cdk.topic_key import TopicKeyCheck


class AlarmTopic(Construct):
    """Where CloudWatch alarm notifications arrive.

    With ``existing_topic_arn`` the stack only subscribes to that topic: its key and policy stay with
    whoever owns it, and they must already let CloudWatch publish (see the Deploy guide). When that
    topic is one of the app (``alarm_topic_arn=topic.topic_arn``), a key CloudWatch cannot use is an
    error at synth (:class:`~pagerduty_bridge_cdk.topic_key.TopicKeyCheck`).
    """

    def __init__(self, scope: Construct, construct_id: str, *, existing_topic_arn: str | None) -> None:
        super().__init__(scope, construct_id)
        self.created = existing_topic_arn is None
        self.topic = self._build_topic(existing_topic_arn)
        self._build_output()
        if existing_topic_arn is not None:
            self.node.add_validation(TopicKeyCheck(scope, existing_topic_arn))

    def _build_topic(self, existing_topic_arn: str | None) -> sns.ITopic:
        if existing_topic_arn is not None:
            return sns.Topic.from_topic_arn(self, "Existing", existing_topic_arn)
        return CloudWatchTopic(self, "Encrypted", description="CloudWatch alarms for PagerDuty").topic

    def _build_output(self) -> None:
        CfnOutput(
            self,
            "Arn",
            value=self.topic.topic_arn,
            description="Put this ARN in your alarms' AlarmActions AND OKActions",
        )
