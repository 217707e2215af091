"""Audit: the alarms that reach the bridge's topic but are wired wrong, each with a one-line fix.

Read-only: it calls DescribeAlarms (paginated; metric and composite alarms) and, given an SNS client,
GetTopicAttributes, and changes nothing. Each :class:`Finding` names the alarm, the problem (a stable
code and a message) and the AWS CLI command that fixes it.

About the fixes. CloudWatch has no call that adds or removes one action: ``put-metric-alarm`` and
``put-composite-alarm`` replace the alarm's whole definition, and any field left out is reset. So a
fix that changes actions is the complete definition DescribeAlarms returned, with the change applied,
passed as ``--cli-input-json`` (``Finding.replaces_definition`` is then True): run it soon after the
audit, since a change made to the alarm in between would be undone. All such problems of one alarm
share one command that fixes them together. Turning actions back on has a call of its own,
``enable-alarm-actions``, which changes nothing else.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from botocore.client import BaseClient

InsufficientDataOk = Callable[[Mapping[str, Any]], bool]
"""Says, for an alarm as DescribeAlarms returns it, whether an alert rule handles its INSUFFICIENT_DATA."""

State = Literal["AlarmActions", "OKActions", "InsufficientDataActions"]
ACTION_KEYS: Final[tuple[State, ...]] = ("AlarmActions", "OKActions", "InsufficientDataActions")

PUT_METRIC_ALARM_FIELDS: Final = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
)
"""What PutMetricAlarm takes that DescribeAlarms returns (tags apply only when an alarm is created)."""
PUT_COMPOSITE_ALARM_FIELDS: Final = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "AlarmRule",
    "ActionsSuppressor",
    "ActionsSuppressorWaitPeriod",
    "ActionsSuppressorExtensionPeriod",
)
"""What PutCompositeAlarm takes that DescribeAlarms returns."""

DESCRIBE_PAGE_SIZE: Final = 100
"""DescribeAlarms returns at most 100 alarms a call."""

AWS_MANAGED_SNS_KEY: Final = "alias/aws/sns"

_RULE_CHILD = re.compile(r"""\b(?:ALARM|OK|INSUFFICIENT_DATA)\s*\(\s*(?:"([^"]+)"|'([^']+)'|([^)\s]+))\s*\)""")
"""A child alarm in a composite's AlarmRule: ``ALARM("name")``, ``OK(name)``, ``ALARM(arn:…:alarm:name)``."""


class ProblemCode(StrEnum):
    """Stable codes, for scripts; the messages may be reworded."""

    NO_OK_ACTION = "no-ok-action"
    ACTIONS_DISABLED = "actions-disabled"
    INSUFFICIENT_DATA_UNHANDLED = "insufficient-data-unhandled"
    DOUBLE_PAGE = "double-page"
    OTHER_REGION = "other-region"
    TOPIC_AWS_MANAGED_KEY = "topic-aws-managed-key"


@dataclass(frozen=True)
class Problem:
    code: ProblemCode
    message: str


@dataclass(frozen=True)
class Finding:
    """One problem of one alarm (``alarm_name`` is empty for a problem of the topic itself)."""

    alarm_name: str
    problem: Problem
    fix: str
    """One AWS CLI command; see the module's notes on commands that replace a definition."""
    alarm_arn: str | None = None
    replaces_definition: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``--json`` output."""
        return {
            "alarm_name": self.alarm_name,
            "alarm_arn": self.alarm_arn,
            "problem": {"code": self.problem.code.value, "message": self.problem.message},
            "fix": self.fix,
            "replaces_definition": self.replaces_definition,
        }


def audit(
    cloudwatch: BaseClient,
    topic_arn: str,
    *,
    region: str | None = None,
    insufficient_data_ok: InsufficientDataOk | None = None,
    sns: BaseClient | None = None,
) -> list[Finding]:
    """The findings for every alarm ``cloudwatch`` lists that has ``topic_arn`` among its actions.

    ``region`` is the alarms' region where an alarm's ARN does not say (default: the client's).
    ``insufficient_data_ok`` says whether an alert rule handles an alarm's INSUFFICIENT_DATA; without
    it, every INSUFFICIENT_DATA action to the topic is reported. With ``sns``, the topic itself is
    checked too.
    """
    alarms = [_Alarm(description, kind) for description, kind in describe_alarms(cloudwatch)]
    default_region = region or getattr(getattr(cloudwatch, "meta", None), "region_name", None) or ""
    auditor = _Auditor(topic_arn, default_region, insufficient_data_ok, alarms)
    findings = _topic_findings(sns, topic_arn) if sns is not None else []
    for alarm in alarms:
        if alarm.reaches(topic_arn):
            findings += auditor.findings(alarm)
    return findings


def describe_alarms(cloudwatch: BaseClient) -> Iterator[tuple[Mapping[str, Any], Literal["metric", "composite"]]]:
    """Every metric and composite alarm, following NextToken to the last page."""
    arguments: dict[str, Any] = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "MaxRecords": DESCRIBE_PAGE_SIZE}
    while True:
        page = cloudwatch.describe_alarms(**arguments)
        for description in page.get("MetricAlarms", []):
            yield description, "metric"
        for description in page.get("CompositeAlarms", []):
            yield description, "composite"
        token = page.get("NextToken")
        if not token:
            return
        arguments["NextToken"] = token


@dataclass(frozen=True)
class _Alarm:
    description: Mapping[str, Any]
    kind: Literal["metric", "composite"]

    @property
    def name(self) -> str:
        return str(self.description["AlarmName"])

    @property
    def arn(self) -> str | None:
        arn = self.description.get("AlarmArn")
        return str(arn) if arn else None

    def actions(self, state: State) -> list[str]:
        return list(self.description.get(state) or [])

    def reaches(self, topic_arn: str) -> bool:
        return any(topic_arn in self.actions(state) for state in ACTION_KEYS)

    def region(self, default: str) -> str:
        return _arn_field(self.arn, 3) or default

    def children(self) -> set[str]:
        """The names of the alarms a composite's rule reads (by name or by ARN)."""
        if self.kind != "composite":
            return set()
        found = set()
        for match in _RULE_CHILD.finditer(str(self.description.get("AlarmRule", ""))):
            reference = next(group for group in match.groups() if group)
            found.add(reference.split(":alarm:", 1)[1] if ":alarm:" in reference else reference)
        return found


@dataclass
class _Change:
    """What a definition fix does to the actions: the topic added to or removed from some states."""

    add: set[State] = field(default_factory=set)
    remove: set[State] = field(default_factory=set)
    replace_with: str | None = None

    def apply(self, actions: Mapping[State, list[str]], topic_arn: str) -> dict[State, list[str]]:
        """The actions with the change made; every other action stays where it was."""
        changed: dict[State, list[str]] = {}
        for state in ACTION_KEYS:
            current = list(actions[state])
            if state in self.remove:
                current = [arn for arn in current if arn != topic_arn]
            elif state in self.add and topic_arn not in current:
                current.append(topic_arn)
            if self.replace_with is not None:
                current = [self.replace_with if arn == topic_arn else arn for arn in current]
            changed[state] = current
        return changed


class _Auditor:
    def __init__(
        self, topic_arn: str, region: str, insufficient_data_ok: InsufficientDataOk | None, alarms: list[_Alarm]
    ) -> None:
        self._topic = topic_arn
        self._region = region
        self._insufficient_data_ok = insufficient_data_ok
        self._paging_parents: dict[str, list[str]] = {}
        for alarm in alarms:
            if alarm.kind == "composite" and self._pages(alarm):
                for child in alarm.children():
                    self._paging_parents.setdefault(child, []).append(alarm.name)

    def _pages(self, alarm: _Alarm) -> bool:
        return self._topic in alarm.actions("AlarmActions") and alarm.description.get("ActionsEnabled", True)

    def findings(self, alarm: _Alarm) -> list[Finding]:
        region = alarm.region(self._region)
        if region and region != _arn_field(self._topic, 3):
            return [self._other_region(alarm, region)]
        problems: list[Problem] = []
        change = _Change()
        self._check_ok(alarm, problems, change)
        self._check_insufficient_data(alarm, problems, change)
        self._check_double_page(alarm, problems, change)
        fix = _put_command(alarm, change, self._topic, region) if problems else ""
        findings = [Finding(alarm.name, p, fix, alarm.arn, replaces_definition=True) for p in problems]
        if alarm.description.get("ActionsEnabled") is False:
            findings.append(self._disabled(alarm, region))
        return findings

    def _check_ok(self, alarm: _Alarm, problems: list[Problem], change: _Change) -> None:
        if self._topic in alarm.actions("AlarmActions") and self._topic not in alarm.actions("OKActions"):
            problems.append(
                Problem(
                    ProblemCode.NO_OK_ACTION,
                    "pages PagerDuty on ALARM through the bridge topic but does not tell it OK: its incidents stay "
                    "open after it recovers (until reconciliation, if scheduled, resolves them)",
                )
            )
            change.add.add("OKActions")

    def _check_insufficient_data(self, alarm: _Alarm, problems: list[Problem], change: _Change) -> None:
        if self._topic not in alarm.actions("InsufficientDataActions"):
            return
        if self._insufficient_data_ok is not None and self._insufficient_data_ok(alarm.description):
            return
        problems.append(
            Problem(
                ProblemCode.INSUFFICIENT_DATA_UNHANDLED,
                "sends INSUFFICIENT_DATA to the bridge topic, but no alert rule says what to do with it: the bridge "
                "ignores it by default, or pages on missing data where INSUFFICIENT_DATA_ACTION=trigger (the fix "
                "removes the action; an alert rule with an insufficient_data policy is the other way)",
            )
        )
        change.remove.add("InsufficientDataActions")

    def _check_double_page(self, alarm: _Alarm, problems: list[Problem], change: _Change) -> None:
        parents = self._paging_parents.get(alarm.name, [])
        if not parents or not self._pages(alarm):
            return
        problems.append(
            Problem(
                ProblemCode.DOUBLE_PAGE,
                f"pages through the bridge topic while the composite alarm(s) {', '.join(sorted(parents))} built on "
                "it page too: one problem, two incidents (the fix leaves the paging to the composite)",
            )
        )
        change.remove.update(ACTION_KEYS)

    def _other_region(self, alarm: _Alarm, region: str) -> Finding:
        topic_region = _arn_field(self._topic, 3)
        placeholder = f"<the bridge topic's ARN in {region}>"
        problem = Problem(
            ProblemCode.OTHER_REGION,
            f"is in {region} but the bridge topic is in {topic_region}: an alarm's SNS actions must be in its own "
            f"region, so the bridge never hears of it (deploy a bridge in {region} and put its topic in the "
            "placeholder of the fix)",
        )
        fix = _put_command(alarm, _Change(replace_with=placeholder), self._topic, region)
        return Finding(alarm.name, problem, fix, alarm.arn, replaces_definition=True)

    def _disabled(self, alarm: _Alarm, region: str) -> Finding:
        problem = Problem(
            ProblemCode.ACTIONS_DISABLED,
            "has its actions disabled: it tells nobody, the bridge included, when its state changes",
        )
        fix = _command("enable-alarm-actions", region, _alarm_names_argument(alarm.name))
        return Finding(alarm.name, problem, fix, alarm.arn)


def _topic_findings(sns: BaseClient, topic_arn: str) -> list[Finding]:
    attributes = sns.get_topic_attributes(TopicArn=topic_arn).get("Attributes", {})
    if attributes.get("KmsMasterKeyId") != AWS_MANAGED_SNS_KEY:
        return []
    problem = Problem(
        ProblemCode.TOPIC_AWS_MANAGED_KEY,
        f"the bridge topic is encrypted with {AWS_MANAGED_SNS_KEY}, whose key policy cannot let CloudWatch use it: "
        "every alarm notification is dropped before it reaches the topic (use a customer managed key that "
        "allows cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*)",
    )
    fix = shlex.join(
        [
            "aws",
            "sns",
            "set-topic-attributes",
            "--region",
            _arn_field(topic_arn, 3),
            "--topic-arn",
            topic_arn,
            "--attribute-name",
            "KmsMasterKeyId",
            "--attribute-value",
            "<ARN of a customer managed key CloudWatch may use>",
        ]
    )
    return [Finding("", problem, fix)]


def _put_command(alarm: _Alarm, change: _Change, topic_arn: str, region: str) -> str:
    """The full put-*-alarm command that gives ``alarm`` its changed actions and keeps everything else."""
    composite = alarm.kind == "composite"
    fields = PUT_COMPOSITE_ALARM_FIELDS if composite else PUT_METRIC_ALARM_FIELDS
    definition: dict[str, Any] = {
        name: alarm.description[name] for name in fields if alarm.description.get(name) not in (None, [])
    }
    for state, arns in change.apply({state: alarm.actions(state) for state in ACTION_KEYS}, topic_arn).items():
        definition[state] = arns
    operation = "put-composite-alarm" if composite else "put-metric-alarm"
    return _command(operation, region, ["--cli-input-json", json.dumps(definition, separators=(",", ":"))])


def _alarm_names_argument(name: str) -> list[str]:
    """``--alarm-names NAME``, or the name as ``--cli-input-json`` when it holds anything but printable
    ASCII: human output shows a control character or line break escaped (``\\n``) and, under an ASCII
    locale, any other character as ``\\uXXXX``, so the quoted raw name, pasted, would name another alarm
    (which enable-alarm-actions accepts without a word). JSON's escapes carry every name in ASCII. So
    does a name starting with ``-``, which the AWS CLI takes for an option ("Unknown options")."""
    if name.isascii() and name.isprintable() and not name.startswith("-"):
        return ["--alarm-names", name]
    return ["--cli-input-json", json.dumps({"AlarmNames": [name]}, separators=(",", ":"))]


def _command(operation: str, region: str, arguments: list[str]) -> str:
    words = ["aws", "cloudwatch", operation, *(["--region", region] if region else []), *arguments]
    return shlex.join(words)


def _arn_field(arn: str | None, index: int) -> str:
    parts = (arn or "").split(":")
    return parts[index] if len(parts) > index else ""
