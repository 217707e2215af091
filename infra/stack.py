"""The pagerduty-bridge stack: composes one construct per concern, and nothing else."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack, Tags
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.alarm_topic import AlarmTopic
from infra.bridge_function import BridgeFunction
from infra.config import BridgeConfig
from infra.dashboard import BridgeDashboard
from infra.delivery import BufferedDelivery, DirectDelivery
from infra.health import HealthAlarms
from infra.incident_table import IncidentTable
from infra.integration_key import IntegrationKeySecret
from infra.reconciliation import DEAD_LETTERS_ALARM_DESCRIPTION, Reconciliation
from pagerduty_bridge import constants

RECONCILE_DEAD_LETTERS = "ReconcileDeadLetters"
"""The schedule's dead-letter queue, by the name its alarm and the dashboard show."""


class PagerDutyBridgeStack(Stack):
    """Alarm topic → function → PagerDuty, with the incident table, the secret, the reconciliation
    schedule, the health alarms and the dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, config: BridgeConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            construct_id,
            description="pagerduty-bridge: CloudWatch alarms to PagerDuty Events API v2",
            **kwargs,
        )
        self.config = config
        self.alarm_topic = AlarmTopic(self, "AlarmTopic", existing_topic_arn=config.alarm_topic_arn)
        self.incidents = IncidentTable(self, "Incidents")
        self.integration_key = self._build_integration_key()
        self.bridge = BridgeFunction(
            self, "Bridge", config=config, table=self.incidents, integration_key=self.integration_key
        )
        self.dead_letter_queues = self._build_delivery()
        self._queue_descriptions: dict[str, str] = {}
        self.reconciliation = self._build_reconciliation()
        self.health = self._build_health()
        self._build_dashboard()
        self._build_tags()

    def _build_integration_key(self) -> IntegrationKeySecret:
        return IntegrationKeySecret(
            self,
            "IntegrationKey",
            existing_secret_arn=self.config.integration_key_secret_arn,
            existing_secret_kms_key_arn=self.config.integration_key_secret_kms_key_arn,
        )

    def _build_delivery(self) -> dict[str, sqs.IQueue]:
        topic, function = self.alarm_topic.topic, self.bridge.function
        if self.config.buffered:
            buffered = BufferedDelivery(
                self,
                "BufferedDelivery",
                topic=topic,
                function=function,
                function_timeout=self.bridge.timeout,
                config=self.config,
            )
            return buffered.dead_letter_queues
        return DirectDelivery(self, "DirectDelivery", topic=topic, function=function).dead_letter_queues

    def _build_reconciliation(self) -> Reconciliation | None:
        if not self.config.reconcile_minutes:
            return None
        reconciliation = Reconciliation(
            self,
            "Reconciliation",
            function=self.bridge.function,
            table=self.incidents,
            minutes=self.config.reconcile_minutes,
        )
        self.dead_letter_queues[RECONCILE_DEAD_LETTERS] = reconciliation.dead_letters
        self._queue_descriptions[RECONCILE_DEAD_LETTERS] = DEAD_LETTERS_ALARM_DESCRIPTION
        return reconciliation

    def _build_health(self) -> HealthAlarms:
        return HealthAlarms(
            self,
            "Health",
            function=self.bridge.function,
            dead_letter_queues=self.dead_letter_queues,
            email=self.config.health_alarm_email,
            queue_descriptions=self._queue_descriptions,
        )

    def _build_dashboard(self) -> None:
        BridgeDashboard(
            self,
            "Dashboard",
            environment=self.config.environment,
            function=self.bridge.function,
            dead_letter_queues=self.dead_letter_queues,
        )

    def _build_tags(self) -> None:
        Tags.of(self).add("service", constants.SERVICE_NAME)
        Tags.of(self).add("environment", self.config.environment)
