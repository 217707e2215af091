"""The bridge's Lambda function: code, settings, log group and a role that can do only its job."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from aws_cdk import CfnOutput, Duration, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import function_code
from infra.config import BridgeConfig, ConfigError
from infra.incident_table import IncidentTable
from infra.integration_key import IntegrationKeySecret, readable_secret_arn
from pagerduty_bridge import constants

RUNTIME: Final = lambda_.Runtime.PYTHON_3_14
"""The newest Python runtime aws-cdk-lib 2.275 offers; pydantic-core ships cp314 manylinux wheels
for both architectures."""

ARCHITECTURES: Final = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}

MEMORY_MB: Final = 256
"""Lambda allots CPU in proportion to memory. The work is I/O-bound (a DynamoDB read and writes and
one HTTPS call per alarm, a Secrets Manager read every five minutes), but the cold import of pydantic,
Powertools and requests is CPU-bound and sits on the paging path: 256 MB gives it twice the CPU of
128 MB for a fraction of a cent per thousand alarms, and leaves room for a batch of SQS records."""

TIMEOUT_HEADROOM_SECONDS: Final = 15
"""Time on top of the retry budget: a cold start with its Secrets Manager read (a few seconds), the
DynamoDB read and conditional writes around each delivery (well under a second), and the 5 s the
handler keeps back to record the outcome and return before Lambda would stop it."""

TABLE_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:PutItem")
"""What the handler's store does: read an incident (GetItem) and write it back conditionally
(PutItem). Listing open incidents (Query, on the index alone) is granted with scheduled
reconciliation (``infra/reconciliation.py``); Scan and deleting are the CLI's, run with an operator's
own credentials, and the function is never granted them."""

LOG_ACTIONS: Final = ("logs:CreateLogStream", "logs:PutLogEvents")
"""The log group is created by the stack, so the function never needs logs:CreateLogGroup."""

ENVIRONMENT_LIMIT_BYTES: Final = 4096
"""Lambda's limit on a function's environment variables together (4 KB, not adjustable). Lambda
measures the variables serialized as one JSON object, so names, quotes and escapes count too."""
UNRESOLVED_VALUE_BYTES: Final = 256
"""What a value CloudFormation fills in at deploy time counts for: more than the table's generated name
(DynamoDB allows 255 characters) or the created secret's ARN can take."""


class BridgeFunction(Construct):
    """The function that turns alarm notifications into PagerDuty events."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BridgeConfig,
        table: IncidentTable,
        integration_key: IntegrationKeySecret,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._table = table
        self._integration_key = integration_key
        # The budget is what one invocation may spend retrying PagerDuty; Lambda must not stop the
        # handler before that budget and the work around it are spent.
        self.timeout = Duration.seconds(config.retry_budget_seconds + TIMEOUT_HEADROOM_SECONDS)
        self.log_group = self._build_log_group()
        self.role = self._build_role()
        self.function = self._build_function()
        self._grant_table()
        integration_key.grant_read(self.role)
        self._grant_routing_key_secrets()
        self._build_outputs()

    def _build_log_group(self) -> logs.LogGroup:
        return logs.LogGroup(self, "Logs", retention=_retention(self._config.log_retention_days))

    def _build_role(self) -> iam.Role:
        """A role with no managed policy: logging is granted on this function's log group alone."""
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="pagerduty-bridge function: its table, its secret, its log group, its queues",
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="WriteOwnLogs", actions=list(LOG_ACTIONS), resources=[self.log_group.log_group_arn])
        )
        return role

    def _build_function(self) -> lambda_.Function:
        return lambda_.Function(
            self,
            "Function",
            description="CloudWatch alarm notifications to PagerDuty Events API v2",
            runtime=RUNTIME,
            architecture=ARCHITECTURES[self._config.architecture],
            handler=constants.HANDLER,
            code=function_code(architecture=self._config.architecture, runtime=RUNTIME),
            memory_size=MEMORY_MB,
            timeout=self.timeout,
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=self._config.reserved_concurrency,
            environment=self._environment(),
        )

    def _environment(self) -> dict[str, str]:
        variables = {
            constants.ENV_TABLE_NAME: self._table.table.table_name,
            constants.ENV_INTEGRATION_KEY_SECRET_ARN: self._integration_key.secret_arn,
            constants.ENV_ENVIRONMENT: self._config.environment,
            constants.ENV_RETRY_BUDGET_SECONDS: str(self._config.retry_budget_seconds),
            constants.ENV_POWERTOOLS_SERVICE_NAME: constants.SERVICE_NAME,
            constants.ENV_POWERTOOLS_METRICS_NAMESPACE: constants.METRICS_NAMESPACE,
        }
        if self._config.alert_rules is not None:
            variables[constants.ENV_ALERT_RULES] = self._config.alert_rules
        if self._config.routing_key_secrets:
            variables[constants.ENV_ROUTING_KEY_SECRETS] = json.dumps(
                dict(self._config.routing_key_secrets), separators=(",", ":")
            )
        check_environment_size(variables)
        return variables

    def _build_outputs(self) -> None:
        CfnOutput(self, "FunctionName", value=self.function.function_name, description="The bridge function")
        CfnOutput(self, "LogGroupName", value=self.log_group.log_group_name, description="aws logs tail <this>")

    def _grant_routing_key_secrets(self) -> None:
        """Each alias's secret, readable by ARN; decrypted with aws/secretsmanager or the integration
        key's KMS key (which the integration-key grant already covers)."""
        arns = sorted({readable_secret_arn(arn) for _, arn in self._config.routing_key_secrets})
        if arns:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadRoutingKeySecrets", actions=["secretsmanager:GetSecretValue"], resources=arns
                )
            )

    def _grant_table(self) -> None:
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWriteIncidents", actions=list(TABLE_ACTIONS), resources=[self._table.table.table_arn]
            )
        )


_RETENTION: Final[dict[int, logs.RetentionDays]] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
}


def environment_size(variables: Mapping[str, str]) -> int:
    """The bytes Lambda counts ``variables`` as, with deploy-time values at their upper bound."""
    measured = {
        name: "x" * UNRESOLVED_VALUE_BYTES if Token.is_unresolved(value) else value for name, value in variables.items()
    }
    return len(json.dumps(measured, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def check_environment_size(variables: Mapping[str, str]) -> None:
    """Fail the synth, naming the largest variables, when Lambda would refuse the environment at deploy."""
    size = environment_size(variables)
    if size <= ENVIRONMENT_LIMIT_BYTES:
        return
    largest = sorted(variables, key=lambda name: environment_size({name: variables[name]}), reverse=True)[:2]
    shares = ", ".join(f"{name} {environment_size({name: variables[name]})}" for name in largest)
    hint = (
        " Shorten the alert rules (alertRules or alertRulesFile): leave out fields that repeat a default."
        if constants.ENV_ALERT_RULES in largest
        else ""
    )
    raise ConfigError(
        f"the function's environment variables would take {size} bytes, over Lambda's limit of "
        f"{ENVIRONMENT_LIMIT_BYTES} (largest: {shares}).{hint}"
    )


def _retention(days: int) -> logs.RetentionDays:
    """CloudWatch Logs' enum member for ``days`` (config has already checked it is one)."""
    return _RETENTION[days]
