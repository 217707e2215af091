"""What the bridge's functions share: runtime, memory, log groups, roles and the environment limit."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from aws_cdk import Annotations, Duration, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.nag import acknowledge
from pagerduty_bridge_cdk.readers import Architecture, ConfigError

if TYPE_CHECKING:
    from pagerduty_bridge_cdk.config import BridgeConfig
    from pagerduty_bridge_cdk.incident_table import IncidentTable

PYTHON_RUNTIMES: Final[dict[str, lambda_.Runtime]] = {
    "3.12": lambda_.Runtime.PYTHON_3_12,
    "3.13": lambda_.Runtime.PYTHON_3_13,
    "3.14": lambda_.Runtime.PYTHON_3_14,
}
"""The Python runtimes the function can run on (``pythonVersion``): Lambda's current ones on Amazon
Linux 2023, for which every pinned dependency ships manylinux wheels on both architectures."""
DEFAULT_PYTHON_VERSION: Final = "3.13"
"""Python 3.13, not the newest runtime (3.14): the asset should carry bytecode for the runtime's exact
version (without it each cold start compiles every module it imports, about doubling import time),
and the machines that synthesize it (developers' and CI's, with pyenv or a distribution's Python)
have 3.13 today far more often than 3.14, or a Docker engine. 3.13 is supported by Lambda until
2029. ``pythonVersion=3.14`` selects the newest runtime where a python3.14 or Docker is at hand."""
RUNTIME: Final = PYTHON_RUNTIMES[DEFAULT_PYTHON_VERSION]
"""The default runtime."""


NEWEST_PYTHON_VERSION: Final = max(PYTHON_RUNTIMES, key=lambda version: tuple(map(int, version.split("."))))


def runtime_for(python_version: str) -> lambda_.Runtime:
    """The Lambda runtime of ``python_version`` (one of ``PYTHON_RUNTIMES``)."""
    return PYTHON_RUNTIMES[python_version]


def acknowledge_runtime(function: lambda_.Function, python_version: str) -> None:
    """cdk-nag (AwsSolutions-L1) asks for the newest runtime: a supported older one is a choice, said so."""
    if python_version != NEWEST_PYTHON_VERSION:
        acknowledge(
            function,
            "L1",
            f"Python {python_version} is a current Lambda runtime, chosen (pythonVersion) so that the machine "
            "synthesizing the asset can compile its bytecode for it: cold starts import compiled modules",
        )


ARCHITECTURES: Final[dict[Architecture, lambda_.Architecture]] = {
    "arm64": lambda_.Architecture.ARM_64,
    "x86_64": lambda_.Architecture.X86_64,
}

MEMORY_MB: Final = 256
"""Lambda allots CPU in proportion to memory (1,769 MB is one vCPU). The bridge would fit 128 MB (peak
RSS about 50 MiB after 41 invocations), but a page mostly lands on a cold container, and the cold page
is CPU-bound: about 240 ms of CPU for 20 ms of waiting (``make bench``). Modelled as CPU × 1769 /
memory + waiting, it takes about 1.7 s at 256 MB and 3.3 s at 128 MB (+99 %), far past the +10 % a
smaller default may cost, while the bill barely moves (CPU-bound work costs the same GB-seconds at any
size: $14.50 against $14.47 per million lone alarms). Every function of the bridge uses it."""

LOG_ACTIONS: Final = ("logs:CreateLogStream", "logs:PutLogEvents")
"""Each log group is created by the construct, so no function ever needs logs:CreateLogGroup."""

TABLE_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
"""What a handler's store does with an incident: read it (GetItem) and write it back conditionally
(PutItem, or UpdateItem with only what changed over an item it wrote itself). Scan and deleting are
the CLI's, run with an operator's own credentials, and no function is ever granted them."""

LIVE_ALIAS: Final = "live"
"""With SnapStart, the alias every trigger invokes: it points at the version published from the
current code and configuration, whose snapshot Lambda has taken."""

SNAP_START_WARNING: Final = "@aws-cdk/aws-lambda:snapStartRequirePublish"

ENVIRONMENT_LIMIT_BYTES: Final = 4096
"""Lambda's limit on a function's environment variables together (4 KB, not adjustable). Lambda
measures the variables serialized as one JSON object, so names, quotes and escapes count too."""
UNRESOLVED_VALUE_BYTES: Final = 256
"""What a value CloudFormation fills in at deploy time counts for: more than the table's generated name
(DynamoDB allows 255 characters) or the created secret's ARN can take."""

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


def retention(days: int) -> logs.RetentionDays:
    """CloudWatch Logs' enum member for ``days`` (the settings have already checked it is one)."""
    return _RETENTION[days]


def retention_days() -> frozenset[int]:
    return frozenset(_RETENTION)


def own_log_group(scope: Construct, construct_id: str, *, days: int) -> logs.LogGroup:
    return logs.LogGroup(scope, construct_id, retention=retention(days))


def function_role(scope: Construct, construct_id: str, *, description: str, log_group: logs.ILogGroup) -> iam.Role:
    """A role with no managed policy: logging is granted on the function's own log group alone."""
    role = iam.Role(
        scope, construct_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
    )
    allow(role, "WriteOwnLogs", LOG_ACTIONS, [log_group.log_group_arn])
    return role


def allow(role: iam.IRole, sid: str, actions: Sequence[str], resources: Sequence[str]) -> None:
    """Add one named statement to ``role``'s policy: ``actions`` on ``resources``, nothing else."""
    role.add_to_principal_policy(iam.PolicyStatement(sid=sid, actions=list(actions), resources=list(resources)))


class BridgeLambda(Construct):
    """A construct holding one of the bridge's functions (construct id ``Function``), made as every one
    is: the configured runtime and architecture, ``MEMORY_MB``, SnapStart when configured, its own log
    group (``Logs``) and role (``Role``) that may write to that log group and read and write incidents,
    and the environment every handler reads (the table, the deployment, Powertools' names) checked
    against Lambda's limit.

    ``function`` is the function itself; ``target`` is what triggers invoke: the function, or with
    SnapStart its ``live`` alias.
    """

    log_group: logs.LogGroup
    role: iam.Role
    function: lambda_.Function
    target: lambda_.IFunction

    def _build_function(
        self,
        *,
        config: BridgeConfig,
        code: lambda_.Code,
        table: IncidentTable,
        handler: str,
        description: str,
        role_description: str,
        timeout: Duration,
        reserved_concurrency: int | None,
        environment: Mapping[str, str],
        environment_hints: Mapping[str, str] | None = None,
    ) -> None:
        """Build the log group, role, function and target; ``environment`` is the handler's own variables."""
        variables = {
            constants.ENV_TABLE_NAME: table.table.table_name,
            constants.ENV_ENVIRONMENT: config.environment,
            constants.ENV_POWERTOOLS_SERVICE_NAME: constants.deployed_service_name(config.environment),
            constants.ENV_POWERTOOLS_METRICS_NAMESPACE: constants.METRICS_NAMESPACE,
            **environment,
        }
        check_environment_size(variables, hint_for=environment_hints)
        self.log_group = own_log_group(self, "Logs", days=config.log_retention_days)
        self.role = function_role(self, "Role", description=role_description, log_group=self.log_group)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=runtime_for(config.python_version),
            architecture=ARCHITECTURES[config.architecture],
            handler=handler,
            code=code,
            memory_size=MEMORY_MB,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
            environment=variables,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if config.snap_start else None,
        )
        acknowledge_runtime(self.function, config.python_version)
        self.target = live_alias(self.function, snap_start=config.snap_start)
        allow(self.role, "ReadWriteIncidents", TABLE_ACTIONS, [table.table.table_arn])


def live_alias(function: lambda_.Function, *, snap_start: bool) -> lambda_.IFunction:
    """What triggers invoke: with SnapStart, the ``live`` alias of the current version; else the function."""
    if not snap_start:
        return function
    # CDK warns that SnapStart applies to published versions only; the alias publishes one.
    Annotations.of(function).acknowledge_warning(SNAP_START_WARNING, "the live alias invokes a published version")
    return lambda_.Alias(function, "Live", alias_name=LIVE_ALIAS, version=function.current_version)


def environment_size(variables: Mapping[str, str]) -> int:
    """The bytes Lambda counts ``variables`` as, with deploy-time values at their upper bound."""
    measured = {
        name: "x" * UNRESOLVED_VALUE_BYTES if Token.is_unresolved(value) else value for name, value in variables.items()
    }
    return len(json.dumps(measured, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def check_environment_size(variables: Mapping[str, str], *, hint_for: Mapping[str, str] | None = None) -> None:
    """Fail the synth, naming the largest variables, when Lambda would refuse the environment at deploy.

    ``hint_for`` maps a variable to advice shown when it is among the largest.
    """
    size = environment_size(variables)
    if size <= ENVIRONMENT_LIMIT_BYTES:
        return
    largest = sorted(variables, key=lambda name: environment_size({name: variables[name]}), reverse=True)[:2]
    shares = ", ".join(f"{name} {environment_size({name: variables[name]})}" for name in largest)
    hints = "".join(f" {advice}" for name, advice in (hint_for or {}).items() if name in largest)
    raise ConfigError(
        f"the function's environment variables would take {size} bytes, over Lambda's limit of "
        f"{ENVIRONMENT_LIMIT_BYTES} (largest: {shares}).{hints}"
    )
