"""The bridge's main function: code, settings, log group and a role that can do only its job."""

from __future__ import annotations

import json
from typing import Final

from aws_cdk import Annotations, CfnOutput, Duration
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.config import BridgeConfig
from pagerduty_bridge_cdk.functions import BridgeLambda, allow
from pagerduty_bridge_cdk.incident_table import IncidentTable
from pagerduty_bridge_cdk.secrets import BridgeSecret, readable_secret_arn

INDEX_ACTIONS: Final = ("dynamodb:Query",)
"""Reading the sparse index, never a Scan of the table: silences on every notification, open incidents
for reconciliation."""
ASSUME_ROLE_ACTIONS: Final = ("sts:AssumeRole",)

ALERT_RULES_HINT: Final = (
    "Shorten the alert rules (alertRules or alertRulesFile): leave out fields that repeat a default."
)


class BridgeFunction(BridgeLambda):
    """The function that turns alarm notifications into PagerDuty events."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BridgeConfig,
        code: lambda_.Code,
        table: IncidentTable,
        integration_key: BridgeSecret,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._table = table
        self._integration_key = integration_key
        # The budget is what one invocation may spend retrying PagerDuty (or working through a batch);
        # Lambda must not stop the handler before that and the work around it are spent.
        self.timeout = Duration.seconds(config.function_timeout.seconds)
        self._build_function(
            config=config,
            code=code,
            table=table,
            handler=constants.HANDLER,
            description="CloudWatch alarm notifications to PagerDuty Events API v2",
            role_description="pagerduty-bridge function: its table, its secrets, its log group, its queues",
            timeout=self.timeout,
            reserved_concurrency=config.reserved_concurrency,
            environment=self._environment(),
            environment_hints={constants.ENV_ALERT_RULES: ALERT_RULES_HINT},
        )
        self._build_grants()
        self._build_outputs()
        self._explain_timeout()

    def _environment(self) -> dict[str, str]:
        config = self._config
        variables = {
            constants.ENV_INTEGRATION_KEY_SECRET_ARN: self._integration_key.secret_arn,
            constants.ENV_RETRY_BUDGET_SECONDS: str(config.retry_budget_seconds),
        }
        if config.alert_rules is not None:
            variables[constants.ENV_ALERT_RULES] = config.alert_rules
        if config.routing_key_secrets:
            variables[constants.ENV_ROUTING_KEY_SECRETS] = _compact(dict(config.routing_key_secrets))
        if config.reconcile_role_arns:
            variables[constants.ENV_RECONCILE_ROLE_ARNS] = _compact(dict(config.reconcile_role_arns))
        return variables

    def _build_grants(self) -> None:
        allow(self.role, "QueryActiveIndex", INDEX_ACTIONS, [self._table.active_index_arn])
        self._integration_key.grant_read(self.role)
        # Each alias's secret, readable by ARN; decrypted with aws/secretsmanager or the integration
        # key's KMS key (which the integration-key grant already covers).
        routing = sorted({readable_secret_arn(arn) for _, arn in self._config.routing_key_secrets})
        if routing:
            allow(self.role, "ReadRoutingKeySecrets", ("secretsmanager:GetSecretValue",), routing)
        roles = sorted(arn for _, arn in self._config.reconcile_role_arns)
        if roles:
            allow(self.role, "AssumeReconcileRoles", ASSUME_ROLE_ACTIONS, roles)

    def _build_outputs(self) -> None:
        CfnOutput(self, "FunctionName", value=self.function.function_name, description="The bridge function")
        CfnOutput(self, "LogGroupName", value=self.log_group.log_group_name, description="aws logs tail <this>")
        CfnOutput(
            self,
            "RoleArn",
            value=self.role.role_arn,
            description="The function's role: what a reconciliation role in another account must trust",
        )

    def _explain_timeout(self) -> None:
        if self._config.buffered:
            Annotations.of(self).add_info(
                f"pagerduty-bridge buffered delivery: {self._config.function_timeout.explain()}"
            )


def _compact(value: dict[str, str]) -> str:
    return json.dumps(value, separators=(",", ":"))
