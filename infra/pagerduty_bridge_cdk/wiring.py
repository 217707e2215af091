"""Alarms wired to the bridge: both ways, each action once, everywhere in a scope, and checked at synth.

An alarm that tells the bridge ALARM but not OK opens incidents that never resolve by themselves: the
commonest way a PagerDuty bridge goes wrong. :func:`page_alarm` adds the topic as ALARM and OK action
(and INSUFFICIENT_DATA when asked) and nothing twice; :class:`PageOnAlarms` does it for every alarm of a
scope; :class:`HalfWiredAlarmsCheck` reports, at synth, each alarm still wired one way only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase
from typing import Any, Final, Literal, Protocol, TypeVar

import jsii
from aws_cdk import Annotations, IAspect
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from constructs import IConstruct, IValidation, Node

AlarmT = TypeVar("AlarmT", bound=cloudwatch.AlarmBase)
AlarmFilter = str | Sequence[str] | Callable[[cloudwatch.AlarmBase], bool]
"""Which alarms: a construct-path glob (``fnmatch``: ``*`` also matches ``/``), several globs, or a
predicate on the alarm construct."""

HALF_WIRED_WARNING_ID: Final = "pagerduty-bridge:halfWiredAlarm"
"""The id of the warning (``half_wired_alarms="warn"``), for ``Annotations.of(alarm).acknowledge_warning``."""

DOUBLE_PAGE_WARNING_ID: Final = "pagerduty-bridge:doublePage"
"""The id of the warning that an alarm pages through the bridge beside a composite alarm built on it."""


def _actions(alarm: cloudwatch.AlarmBase, state: Literal["alarm", "ok", "insufficient_data"]) -> list[str]:
    """The action ARNs the alarm has for ``state`` so far (the L2 keeps them until synth renders them)."""
    arns = {
        "alarm": alarm._alarm_action_arns,
        "ok": alarm._ok_action_arns,
        "insufficient_data": alarm._insufficient_data_action_arns,
    }[state]
    return list(arns or [])


def is_own_alarm(alarm: cloudwatch.AlarmBase) -> bool:
    """An alarm this app defines (not one imported by ARN, whose actions it cannot change)."""
    return alarm.node.default_child is not None


def page_alarm(alarm: AlarmT, topic: sns.ITopic, *, insufficient_data: bool = False) -> AlarmT:
    """Add ``topic`` as the alarm's ALARM and OK action (and INSUFFICIENT_DATA with ``insufficient_data``),
    each only if the alarm does not have it already."""
    if not isinstance(alarm, cloudwatch.AlarmBase) or not is_own_alarm(alarm):
        raise TypeError(
            f"{getattr(getattr(alarm, 'node', None), 'path', alarm)!r} is not an alarm of this app "
            "(a cloudwatch.Alarm or CompositeAlarm): an alarm imported by ARN cannot be given actions"
        )
    action = cloudwatch_actions.SnsAction(topic)
    if topic.topic_arn not in _actions(alarm, "alarm"):
        alarm.add_alarm_action(action)
    if topic.topic_arn not in _actions(alarm, "ok"):
        alarm.add_ok_action(action)
    if insufficient_data and topic.topic_arn not in _actions(alarm, "insufficient_data"):
        alarm.add_insufficient_data_action(action)
    return alarm


def alarms_in(scope: IConstruct) -> Iterator[cloudwatch.AlarmBase]:
    """Every metric and composite alarm defined in ``scope``, nested constructs included."""
    for construct in scope.node.find_all():
        if isinstance(construct, cloudwatch.AlarmBase) and is_own_alarm(construct):
            yield construct


class HasNode(Protocol):
    """A construct, or anything that has a construct node."""

    @property
    def node(self) -> Node: ...


def is_within(construct: HasNode, scope: HasNode) -> bool:
    """Whether ``construct`` is ``scope`` or one of its descendants."""
    return construct.node.path == scope.node.path or construct.node.path.startswith(f"{scope.node.path}/")


def half_wired(root: IConstruct, topic: sns.ITopic, *, skip: IConstruct) -> list[cloudwatch.AlarmBase]:
    """Alarms under ``root`` (but not ``skip``) whose ALARM action is ``topic`` and whose OK action is not."""
    return [
        alarm
        for alarm in alarms_in(root)
        if not is_within(alarm, skip)
        and topic.topic_arn in _actions(alarm, "alarm")
        and topic.topic_arn not in _actions(alarm, "ok")
    ]


def _rule(composite: cloudwatch.CompositeAlarm) -> str:
    """The composite's rule as synth renders it, each alarm it names by that alarm's ARN (a token)."""
    resource = composite.node.default_child
    return str(resource.alarm_rule) if isinstance(resource, cloudwatch.CfnCompositeAlarm) else ""


def double_pages(
    root: IConstruct, topic: sns.ITopic, *, skip: IConstruct
) -> list[tuple[cloudwatch.AlarmBase, cloudwatch.CompositeAlarm]]:
    """(alarm, composite) for each alarm under ``root`` (but not ``skip``) paging through ``topic`` while a
    composite alarm whose rule names it pages through ``topic`` too: one problem, two incidents."""
    paging = [a for a in alarms_in(root) if not is_within(a, skip) and topic.topic_arn in _actions(a, "alarm")]
    composites = [a for a in paging if isinstance(a, cloudwatch.CompositeAlarm)]
    return [
        (alarm, composite)
        for composite in composites
        for alarm in paging
        if alarm.node.path != composite.node.path and alarm.alarm_arn in _rule(composite)
    ]


class Pager(HasNode, Protocol):
    """What :class:`PageOnAlarms` needs of a bridge."""

    def page(self, alarm: Any, *, insufficient_data: bool = False) -> Any: ...


def _matches(selector: AlarmFilter, alarm: cloudwatch.AlarmBase) -> bool:
    if isinstance(selector, str):
        return fnmatchcase(alarm.node.path, selector)
    if callable(selector):
        return bool(selector(alarm))
    return any(fnmatchcase(alarm.node.path, pattern) for pattern in selector)


@jsii.implements(IAspect)
class PageOnAlarms:
    """An aspect that pages every alarm of the scope it is added to through ``bridge``.

    ``Aspects.of(stack).add(PageOnAlarms(bridge))`` wires every ``cloudwatch.Alarm`` and
    ``CompositeAlarm`` defined in the stack, however deeply nested, as :meth:`PagerDutyBridge.page` does:
    ALARM and OK (and INSUFFICIENT_DATA with ``insufficient_data``), nothing twice. ``include`` keeps only
    the alarms it matches, ``exclude`` leaves out those it matches (globs on the construct path, or a
    predicate). The bridge's own health alarms are never wired: they must not page through the bridge
    they watch. Alarms imported by ARN are left alone (their actions belong to whoever defined them).
    """

    def __init__(
        self,
        bridge: Pager,
        *,
        include: AlarmFilter | None = None,
        exclude: AlarmFilter | None = None,
        insufficient_data: bool = False,
    ) -> None:
        self._bridge = bridge
        self._include = include
        self._exclude = exclude
        self._insufficient_data = insufficient_data

    def visit(self, node: IConstruct) -> None:
        """Called by CDK for every construct of the scope."""
        if not isinstance(node, cloudwatch.AlarmBase) or not is_own_alarm(node) or is_within(node, self._bridge):
            return
        if self._include is not None and not _matches(self._include, node):
            return
        if self._exclude is not None and _matches(self._exclude, node):
            return
        self._bridge.page(node, insufficient_data=self._insufficient_data)


@jsii.implements(IValidation)
class HalfWiredAlarmsCheck:
    """A validation of the bridge: reports each alarm of the app that tells the bridge ALARM but not OK,
    and warns (id :data:`DOUBLE_PAGE_WARNING_ID`) of each alarm paging beside a composite built on it.

    Validations run after every aspect, so alarms :class:`PageOnAlarms` wires are wired by then. Each
    half-wired alarm gets an error annotation (``cdk synth`` fails), or with ``severity="warn"`` a
    warning (id :data:`HALF_WIRED_WARNING_ID`).
    """

    def __init__(self, bridge: IConstruct, topic: sns.ITopic, *, severity: Literal["error", "warn"]) -> None:
        self._bridge = bridge
        self._topic = topic
        self._severity = severity

    def validate(self) -> list[str]:
        """Annotate the half-wired alarms; the annotations are the report, so no validation error."""
        for alarm in half_wired(self._bridge.node.root, self._topic, skip=self._bridge):
            message = (
                f"alarm {alarm.node.path} pages PagerDuty through {self._bridge.node.path} on ALARM but never "
                "tells it OK, so its incidents will not resolve when it recovers: wire it with bridge.page(alarm) "
                "or PageOnAlarms(bridge), or add the bridge topic as its OK action too."
            )
            if self._severity == "warn":
                Annotations.of(alarm).add_warning_v2(HALF_WIRED_WARNING_ID, message)
            else:
                Annotations.of(alarm).add_error(message)
        for alarm, composite in double_pages(self._bridge.node.root, self._topic, skip=self._bridge):
            Annotations.of(alarm).add_warning_v2(
                DOUBLE_PAGE_WARNING_ID,
                f"alarm {alarm.node.path} pages PagerDuty through {self._bridge.node.path} while the composite "
                f"alarm {composite.node.path} built on it pages too: one problem, two incidents. Leave the paging "
                "to the composite (exclude the alarm from PageOnAlarms, or do not page() it), or acknowledge this "
                "warning if both incidents are meant.",
            )
        return []
