"""``audit``: which alarms reach the bridge's topic but are wired wrong — read-only, with each fix.

Exit 0 when nothing is wrong, 1 when something is (a finding), 2 on error.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pagerduty_bridge.alarms import parse_alarm_message
from pagerduty_bridge.audit import InsufficientDataOk, audit
from pagerduty_bridge.cli.common import (
    EXIT_FINDING,
    EXIT_OK,
    CliError,
    Streams,
    add_aws_options,
    add_json,
    aws_client,
    checked_topic_arn,
    json_line,
    load_settings,
    print_table,
    say,
)
from pagerduty_bridge.models import AlarmNotification, AlarmState, InsufficientDataAction
from pagerduty_bridge.rules import AlertRules, load_rules
from pagerduty_bridge.settings import Settings

TRIGGER_FIELDS: Final = frozenset(
    {"MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "EvaluationPeriods",
     "Threshold", "ComparisonOperator", "Unit", "TreatMissingData", "Metrics", "ThresholdMetricId"}
)  # fmt: skip
"""What a metric alarm's definition and its notification's ``Trigger`` share."""
TOPIC_OUTPUT_PREFIX: Final = "AlarmTopicArn"
"""The stack output holding the alarm topic's ARN (CDK appends a hash to the logical id)."""
TOPIC_OUTPUT_KEY: Final = re.compile(r"AlarmTopicArn[0-9A-F]{8}")
"""That output's key: the construct's id comes first in an app of one's own (``PagerAlarmTopicArn…``)."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "audit",
        help="list alarms wired wrong to the bridge's topic (read-only; exit 1 when any)",
        description="Lists the alarms whose actions reach the bridge's topic but are wired wrong: no OK "
        "action, actions disabled, INSUFFICIENT_DATA paging without a rule for it, a composite and its "
        "children both paging, another region than the topic. Each finding comes with the AWS CLI command "
        "that fixes it. Exit 0 clean, 1 findings, 2 error.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--topic-arn", metavar="ARN", help="the bridge's alarm topic (this or --stack)")
    where.add_argument(
        "--stack", metavar="NAME", help="a deployed bridge stack whose topic output is used (this or --topic-arn)"
    )
    parser.add_argument("--region", default=None, help="the alarms' region (default: the topic's)")
    add_json(parser, "an array of findings (alarm_name, problem, fix)")
    add_aws_options(parser)
    parser.set_defaults(func=audit_command)


def topic_of_stack(args: argparse.Namespace, name: str) -> str:
    """The alarm topic a bridge stack names in its outputs: the standalone stack's, or the construct's
    under whatever id an app gave it. Several bridges in one stack are an error: which one is meant?"""
    stacks = aws_client(args, "cloudformation", region=args.region).describe_stacks(StackName=name)["Stacks"]
    outputs = stacks[0].get("Outputs", []) if stacks else []
    topics = sorted(
        {
            str(o["OutputValue"])
            for o in outputs
            if TOPIC_OUTPUT_KEY.search(str(o.get("OutputKey", ""))) and "OutputValue" in o
        }
    )
    if len(topics) > 1:
        raise CliError(f"stack {name} holds {len(topics)} bridges' alarm topics: give one with --topic-arn")
    if not topics:
        raise CliError(f"stack {name} has no {TOPIC_OUTPUT_PREFIX} output: is it a pagerduty-bridge stack?")
    return topics[0]


def insufficient_data_handled(rules: AlertRules, settings: Settings) -> InsufficientDataOk:
    """Whether an alert rule (or the default) does something with an alarm's INSUFFICIENT_DATA."""

    def handled(alarm: Mapping[str, Any]) -> bool:
        if settings.insufficient_data_action is not InsufficientDataAction.IGNORE:
            return True
        notification = insufficient_data_notification(alarm, datetime.now(UTC))
        action = rules.resolve(notification, default_severity=settings.default_severity).insufficient_data
        return action not in (None, InsufficientDataAction.IGNORE)

    return handled


def insufficient_data_notification(alarm: Mapping[str, Any], now: datetime) -> AlarmNotification:
    """The INSUFFICIENT_DATA notification the alarm (as DescribeAlarms returns it) would send, read by the
    handler's own parser: a rule sees the alarm's kind and its metrics' namespaces, names and dimensions
    as it does in the Lambda. A metric alarm's definition is what its notification's ``Trigger`` holds."""
    message: dict[str, Any] = {
        "AlarmName": str(alarm.get("AlarmName", "")),
        "AlarmArn": alarm.get("AlarmArn"),
        "AlarmDescription": alarm.get("AlarmDescription"),
        "NewStateValue": AlarmState.INSUFFICIENT_DATA.value,
        "StateChangeTime": now.isoformat(),
    }
    if "AlarmRule" in alarm:
        message["AlarmRule"] = alarm["AlarmRule"]
    else:
        message["Trigger"] = {key: value for key, value in alarm.items() if key in TRIGGER_FIELDS}
    return parse_alarm_message(message, fallback_time=now)


def audit_command(args: argparse.Namespace, streams: Streams) -> int:
    settings = load_settings(args)
    topic = checked_topic_arn(args.topic_arn if args.topic_arn is not None else topic_of_stack(args, args.stack))
    parts = topic.split(":")
    region = args.region or (parts[3] if len(parts) > 3 else None)
    findings = audit(
        aws_client(args, "cloudwatch", region=region),
        topic,
        region=region,
        insufficient_data_ok=insufficient_data_handled(load_rules(settings), settings),
        sns=aws_client(args, "sns", region=region),
    )
    rows = [finding.as_dict() for finding in findings]
    if args.json:
        print(json_line(rows), file=streams.out)
    else:
        print_table([{**row, "problem": row["problem"]["code"]} for row in rows], ("alarm_name", "problem"), streams)
        for finding in findings:
            say(streams, "", f"{finding.alarm_name}: {finding.problem.message}", f"  fix: {finding.fix}")
    return EXIT_FINDING if findings else EXIT_OK
