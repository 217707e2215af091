"""Alarms wired to the bridge: both ways, each action once, everywhere in a scope, and checked at synth.

An alarm that tells the bridge ALARM but not OK opens incidents that never resolve by themselves: the
commonest way a PagerDuty bridge goes wrong. :func:`page_alarm` adds the topic as ALARM and OK action
(and INSUFFICIENT_DATA when asked) and nothing twice; :class:`PageOnAlarms` does it for every alarm of a
scope; :class:`HalfWiredAlarmsCheck` reports, at synth, each alarm still wired one way only.

"Every alarm" means L2 alarms (``cloudwatch.Alarm``, ``CompositeAlarm``) and L1 ones alike: a
``CfnAlarm`` or ``CfnCompositeAlarm`` written in the app or brought in from an existing template with
``cloudformation_include.CfnInclude``, which is how legacy alarms arrive. The ``CfnAlarm`` an L2 alarm
renders is the L2's business, never an alarm of its own: :func:`is_l1_alarm` leaves it out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase
from typing import Any, Final, Literal, Protocol, TypeGuard, TypeVar

import jsii
from aws_cdk import Annotations, IAspect, Stack, Stage, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from constructs import IConstruct, IValidation, Node

L1Alarm = cloudwatch.CfnAlarm | cloudwatch.CfnCompositeAlarm
"""An alarm as a bare CloudFormation resource: written as such, or included from a template."""
AnyAlarm = cloudwatch.AlarmBase | L1Alarm
AlarmT = TypeVar("AlarmT", bound=AnyAlarm)
AlarmFilter = str | Sequence[str] | Callable[[AnyAlarm], bool]
"""Which alarms: a construct-path glob (``fnmatch``: ``*`` also matches ``/``), several globs, or a
predicate on the alarm construct (an L2 alarm, or a ``CfnAlarm``/``CfnCompositeAlarm``)."""
State = Literal["alarm", "ok", "insufficient_data"]

HALF_WIRED_WARNING_ID: Final = "pagerduty-bridge:halfWiredAlarm"
"""The id of the warning (``half_wired_alarms="warn"``), for ``Annotations.of(alarm).acknowledge_warning``."""

DOUBLE_PAGE_WARNING_ID: Final = "pagerduty-bridge:doublePage"
"""The id of the warning that an alarm pages through the bridge beside a composite alarm built on it."""

SUPPRESSOR_PAGES_WARNING_ID: Final = "pagerduty-bridge:suppressorPages"
"""The id of the warning that an alarm pages through the bridge while it is the actions suppressor of a
composite alarm paging through it too: it is in ALARM exactly when nobody should be paged."""

UNRESOLVED_ACTIONS_WARNING_ID: Final = "pagerduty-bridge:alarmActionsUnresolved"
"""The id of the warning that :class:`PageOnAlarms` left an L1 alarm alone because its actions are a token
known only at deploy (``Fn::If``, a list parameter) that it cannot extend without guessing."""


def _actions(alarm: cloudwatch.AlarmBase, state: State) -> list[str]:
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


MAX_ACTIONS_PER_STATE: Final = 5
"""CloudWatch's limit on an alarm's actions for one state (ALARM, OK or INSUFFICIENT_DATA)."""
ACTIONS_DISABLED_WARNING_ID: Final = "pagerduty-bridge:alarmActionsDisabled"
"""The id of the warning that an alarm wired to the bridge has its actions disabled (it pages nobody)."""


def page_alarm(alarm: AlarmT, topic: sns.ITopic, *, insufficient_data: bool = False) -> AlarmT:
    """Add ``topic`` as the alarm's ALARM and OK action (and INSUFFICIENT_DATA with ``insufficient_data``),
    each only if the alarm does not have it already. An L1 alarm whose action lists are a token known
    only at deploy is a ``ValueError`` (wiring one state alone would leave it half-wired). An alarm that
    cannot publish to ``topic`` (see :func:`unreachable`) is left unwired, with an error annotation."""
    construct: IConstruct = alarm
    if is_alarm(construct) and refuse_unreachable(construct, topic):
        return alarm
    if is_l1_alarm(construct):
        unresolved = page_l1_alarm(construct, topic, insufficient_data=insufficient_data)
        if unresolved:
            raise ValueError(
                f"{construct.node.path}: its {' and '.join(unresolved)} "
                f"{'is a token' if len(unresolved) == 1 else 'are tokens'} known only at deploy (Fn::If, a "
                "list parameter), which cannot be extended here: add the bridge topic where the token is defined"
            )
        return alarm
    if not isinstance(alarm, cloudwatch.AlarmBase) or not is_own_alarm(alarm):
        raise TypeError(
            f"{getattr(getattr(alarm, 'node', None), 'path', alarm)!r} is not an alarm of this app (a "
            "cloudwatch.Alarm, CompositeAlarm, CfnAlarm or CfnCompositeAlarm): an alarm imported by ARN "
            "cannot be given actions"
        )
    action = cloudwatch_actions.SnsAction(topic)
    if topic.topic_arn not in _actions(alarm, "alarm"):
        alarm.add_alarm_action(action)
    if topic.topic_arn not in _actions(alarm, "ok"):
        alarm.add_ok_action(action)
    if insufficient_data and topic.topic_arn not in _actions(alarm, "insufficient_data"):
        alarm.add_insufficient_data_action(action)
    return alarm


def unreachable(alarm: AnyAlarm, topic: sns.ITopic) -> str | None:
    """Why ``alarm`` cannot publish to ``topic``, or None when it can (or cannot be known before deploy).

    CloudWatch alarm actions reach SNS topics of their own region only, and a topic the bridge creates
    lets CloudWatch publish for alarms of its own account only. Beyond that, CDK references a created
    topic from another stack only within one stage and one environment: an alarm of another ``Stage``
    cannot name it, nor can an alarm in a stack pinned to an account and region name the topic of an
    env-agnostic bridge (or the other way round)."""
    alarm_stack, topic_stack = Stack.of(alarm), Stack.of(topic)
    created = Token.is_unresolved(topic.topic_arn)  # an existing topic is imported by its literal ARN
    alarm_region = alarm_stack.region
    topic_region = topic_stack.region if created else topic.env.region
    path = alarm.node.path
    if not Token.is_unresolved(alarm_region) and not Token.is_unresolved(topic_region) and alarm_region != topic_region:
        return (
            f"alarm {path} is in {alarm_region}, the bridge's topic in {topic_region}: CloudWatch "
            "alarm actions reach SNS topics of their own region only. Deploy a bridge in its region."
        )
    if not created:
        return None  # the topic's owner decides which accounts' alarms may publish to it
    alarm_stage, topic_stage = _stage_path(alarm), _stage_path(topic)
    if alarm_stage != topic_stage:
        return (
            f"alarm {path} is in stage {alarm_stage or 'the app'}, the bridge's topic {topic.node.path} in "
            f"{'stage ' + topic_stage if topic_stage else 'the app'}: CDK references a created topic within "
            "its own stage only. Put a bridge in the alarm's stage, or give the bridge an existing topic "
            "(alarm_topic_arn)."
        )
    alarm_account, topic_account = alarm_stack.account, topic_stack.account
    resolved = not Token.is_unresolved(alarm_account) and not Token.is_unresolved(topic_account)
    if resolved and alarm_account != topic_account:
        return (
            f"alarm {path} is in account {alarm_account}; the bridge's topic {topic.node.path} takes alarms "
            f"of account {topic_account} only. Deploy a bridge in the alarm's account, or give the bridge "
            "an existing topic (alarm_topic_arn) whose policy lets that account's alarms publish."
        )
    if alarm_stack.environment != topic_stack.environment:
        return (
            f"alarm {path} is in a stack of {alarm_stack.environment}, the bridge's topic {topic.node.path} in "
            f"one of {topic_stack.environment}: an alarm pages only through a bridge of its own account and "
            "region, and CDK cannot tell that they are the same. Give both stacks the same env."
        )
    return None


def _stage_path(construct: IConstruct) -> str:
    """The path of the stage holding ``construct`` ("" for the app itself): a stage's stacks are
    synthesized apart from the rest of the app, and reference nothing outside it."""
    stage = Stage.of(construct)
    return "" if stage is None else stage.node.path


def refuse_unreachable(alarm: AnyAlarm, topic: sns.ITopic) -> bool:
    """Annotate an alarm that cannot publish to ``topic`` with an error saying why; whether it was one.
    Such an alarm is left unwired: naming the topic would fail the synth or the deploy, less clearly."""
    reason = unreachable(alarm, topic)
    if reason is not None:
        Annotations.of(alarm).add_error(reason)
    return reason is not None


def crowded(root: IConstruct, topic: sns.ITopic, *, skip: IConstruct) -> list[tuple[AnyAlarm, str]]:
    """(alarm, error message) for each state of an alarm under ``root`` (but not ``skip``) naming ``topic`` that
    has more actions than CloudWatch allows (the deploy fails). Counted once the app is built: actions
    added after page() count too."""
    messages: list[tuple[AnyAlarm, str]] = []
    for alarm in alarms_in(root):
        if is_within(alarm, skip) or not any(_has(alarm, state, topic) for state in _L1_PROPERTIES):
            continue
        for state, (_, name) in _L1_PROPERTIES.items():
            actions = actions_of(alarm, state)
            if actions is not None and len(actions) > MAX_ACTIONS_PER_STATE:
                messages.append(
                    (
                        alarm,
                        f"alarm {alarm.node.path} has {len(actions)} {name}, the bridge's topic among them: "
                        f"CloudWatch allows {MAX_ACTIONS_PER_STATE} per state, and the deploy fails. Drop one, or "
                        "page a composite alarm over this one.",
                    )
                )
    return messages


def silenced(root: IConstruct, topic: sns.ITopic, *, skip: IConstruct) -> list[AnyAlarm]:
    """Alarms under ``root`` (but not ``skip``) naming ``topic`` whose actions are disabled: they page
    nobody, and resolve nothing, until the actions are enabled. Looked at once the app is built."""
    found: list[AnyAlarm] = []
    for alarm in alarms_in(root):
        resource = alarm if is_l1_alarm(alarm) else alarm.node.default_child
        if is_within(alarm, skip) or not any(_has(alarm, state, topic) for state in _L1_PROPERTIES):
            continue
        if (
            isinstance(resource, cloudwatch.CfnAlarm | cloudwatch.CfnCompositeAlarm)
            and resource.actions_enabled is False
        ):
            found.append(alarm)
    return found


_L1_PROPERTIES: Final[dict[State, tuple[str, str]]] = {
    "alarm": ("alarmActions", "AlarmActions"),
    "ok": ("okActions", "OKActions"),
    "insufficient_data": ("insufficientDataActions", "InsufficientDataActions"),
}
"""Per state: the L1's property as CDK keeps it, and as the template (and the user) names it."""


def is_l1_alarm(construct: IConstruct) -> TypeGuard[L1Alarm]:
    """A ``CfnAlarm`` or ``CfnCompositeAlarm`` that is an alarm of its own, not the resource an L2 alarm
    renders (the L2 keeps that one's actions and writes them at synth)."""
    if not isinstance(construct, cloudwatch.CfnAlarm | cloudwatch.CfnCompositeAlarm):
        return False
    owner = construct.node.scope
    rendered = owner.node.default_child if isinstance(owner, cloudwatch.AlarmBase) else None
    return rendered is None or rendered.node.path != construct.node.path


def is_alarm(construct: IConstruct) -> TypeGuard[AnyAlarm]:
    """An alarm of this app that can be given actions: an L2 alarm it defines, or an L1 alarm."""
    return (isinstance(construct, cloudwatch.AlarmBase) and is_own_alarm(construct)) or is_l1_alarm(construct)


def _l1_actions(alarm: L1Alarm, state: State) -> list[str] | None:
    """The L1 alarm's actions for ``state`` so far, or None when they are a single token that only
    deploy resolves (``Fn::If``, a ``CommaDelimitedList`` parameter): a list nobody can extend at synth.

    Read from the raw properties: the typed getter fails on a token that is not a list of strings."""
    value = alarm._cfn_properties.get(_L1_PROPERTIES[state][0])
    if value is None:
        return []
    if Token.is_unresolved(value) or not isinstance(value, list):
        return None
    return [str(action) for action in value]


def actions_of(alarm: AnyAlarm, state: State) -> list[str] | None:
    """The alarm's action ARNs for ``state`` so far (tokens included); None when they are unknowable
    before deploy."""
    return _actions(alarm, state) if isinstance(alarm, cloudwatch.AlarmBase) else _l1_actions(alarm, state)


def page_l1_alarm(alarm: L1Alarm, topic: sns.ITopic, *, insufficient_data: bool = False) -> list[str]:
    """Add ``topic`` to the L1 alarm's ALARM and OK actions (and INSUFFICIENT_DATA with
    ``insufficient_data``), after the actions it has and only where it does not have it already.

    If any of those lists is a token known only at deploy, nothing is changed (wiring ALARM alone would
    make the alarm half-wired) and the template names of those lists are returned; else ``[]``."""
    states: list[State] = ["alarm", "ok", "insufficient_data"] if insufficient_data else ["alarm", "ok"]
    current = {state: _l1_actions(alarm, state) for state in states}
    unresolved = [_L1_PROPERTIES[state][1] for state, actions in current.items() if actions is None]
    if unresolved:
        return unresolved
    for state, actions in current.items():
        if actions is not None and topic.topic_arn not in actions:
            extended = [*actions, topic.topic_arn]
            if state == "alarm":
                alarm.alarm_actions = extended
            elif state == "ok":
                alarm.ok_actions = extended
            else:
                alarm.insufficient_data_actions = extended
    return []


def alarms_in(scope: IConstruct) -> Iterator[AnyAlarm]:
    """Every metric and composite alarm defined in ``scope``, nested constructs included: L2 alarms of
    this app, and L1 alarms (but never both an L2 alarm and the resource it renders)."""
    for construct in scope.node.find_all():
        if is_alarm(construct):
            yield construct


class HasNode(Protocol):
    """A construct, or anything that has a construct node."""

    @property
    def node(self) -> Node: ...


def is_within(construct: HasNode, scope: HasNode) -> bool:
    """Whether ``construct`` is ``scope`` or one of its descendants."""
    return construct.node.path == scope.node.path or construct.node.path.startswith(f"{scope.node.path}/")


def _has(alarm: AnyAlarm, state: State, topic: sns.ITopic) -> bool | None:
    """Whether the alarm's ``state`` actions include ``topic``; None when that is known only at deploy."""
    actions = actions_of(alarm, state)
    return None if actions is None else topic.topic_arn in actions


def half_wired(root: IConstruct, topic: sns.ITopic, *, skip: IConstruct) -> list[AnyAlarm]:
    """Alarms under ``root`` (but not ``skip``) whose ALARM action is ``topic`` and whose OK action is not
    (an alarm whose actions are a token known only at deploy is not reported: nothing is known of it)."""
    return [
        alarm
        for alarm in alarms_in(root)
        if not is_within(alarm, skip) and _has(alarm, "alarm", topic) is True and _has(alarm, "ok", topic) is False
    ]


def ok_only(root: IConstruct, topic: sns.ITopic, *, skip: IConstruct) -> list[AnyAlarm]:
    """Alarms under ``root`` (but not ``skip``) whose OK action is ``topic`` and whose ALARM action is not:
    wired for the bridge, then given an action list that replaced the one naming it (an L1's
    ``alarm_actions`` set after page()). They never page."""
    return [
        alarm
        for alarm in alarms_in(root)
        if not is_within(alarm, skip) and _has(alarm, "ok", topic) is True and _has(alarm, "alarm", topic) is False
    ]


def _resource(alarm: AnyAlarm) -> L1Alarm | None:
    """The alarm's CloudFormation resource: an L1 alarm is its own, an L2 alarm renders one."""
    if isinstance(alarm, cloudwatch.AlarmBase):
        child = alarm.node.default_child
        return child if isinstance(child, cloudwatch.CfnAlarm | cloudwatch.CfnCompositeAlarm) else None
    return alarm


def _strings(value: Any) -> Iterator[str]:
    """Every string in a resolved CloudFormation value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _references(value: Any, logical_id: str) -> bool:
    """Whether a resolved CloudFormation value refers to the resource ``logical_id``: ``Ref``,
    ``Fn::GetAtt`` or a ``${…}`` of ``Fn::Sub``."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id or value.get("Fn::GetAtt") in ([logical_id, "Arn"], f"{logical_id}.Arn"):
            return True
        return any(_references(item, logical_id) for item in value.values())
    if isinstance(value, list):
        return any(_references(item, logical_id) for item in value)
    return isinstance(value, str) and any(f"${{{name}}}" in value for name in (logical_id, f"{logical_id}.Arn"))


def _names(composite: AnyAlarm, alarm: AnyAlarm) -> bool:
    """Whether the composite's rule names ``alarm``: by a token of its ARN or name (an L2 composite's
    rule, or an f-string in the app), by ``Ref``/``Fn::GetAtt``/``Fn::Sub`` of its resource (an included
    template), or by its literal name or ARN."""
    composite_resource, resource = _resource(composite), _resource(alarm)
    if not isinstance(composite_resource, cloudwatch.CfnCompositeAlarm) or resource is None:
        return False
    rule = composite_resource.alarm_rule
    tokens = [resource.attr_arn, resource.ref]
    if isinstance(alarm, cloudwatch.AlarmBase):
        tokens += [alarm.alarm_arn, alarm.alarm_name]
    if any(token in rule for token in tokens):
        return True
    stack = Stack.of(composite_resource)
    if Stack.of(resource).node.path != stack.node.path:
        return False  # another stack's logical ids mean nothing here: its alarms are named by token only
    resolved = stack.resolve(rule)
    if _references(resolved, str(stack.resolve(resource.logical_id))):
        return True
    name = resource.alarm_name
    if name is None or Token.is_unresolved(name):
        return False
    # ALARM("name"), ALARM(name) or ALARM(arn:aws:cloudwatch:…:alarm:name)
    named = re.compile(rf'(?:\(|"|:alarm:)\s*{re.escape(name)}\s*(?:"|\))')
    return any(named.search(text) for text in _strings(resolved))


def double_pages(root: IConstruct, topic: sns.ITopic, *, skip: IConstruct) -> list[tuple[AnyAlarm, AnyAlarm]]:
    """(alarm, composite) for each alarm under ``root`` (but not ``skip``) paging through ``topic`` while a
    composite alarm whose rule names it pages through ``topic`` too: one problem, two incidents."""
    paging = [a for a in alarms_in(root) if not is_within(a, skip) and _has(a, "alarm", topic)]
    composites = [a for a in paging if isinstance(a, cloudwatch.CompositeAlarm | cloudwatch.CfnCompositeAlarm)]
    return [
        (alarm, composite)
        for composite in composites
        for alarm in paging
        if alarm.node.path != composite.node.path and _names(composite, alarm)
    ]


def _names_resource(value: Any, alarm: AnyAlarm, within: IConstruct) -> bool:
    """Whether ``value`` (an action or a suppressor, as the app wrote it) names ``alarm``: by a token of its
    ARN, by ``Ref``/``Fn::GetAtt`` of its resource in the stack of ``within``, or by its literal ARN."""
    resource = _resource(alarm)
    if resource is None or value is None:
        return False
    tokens = [resource.attr_arn, resource.ref, *([alarm.alarm_arn] if isinstance(alarm, cloudwatch.AlarmBase) else [])]
    if isinstance(value, str) and value in tokens:
        return True
    stack = Stack.of(within)
    if Stack.of(resource).node.path != stack.node.path:
        return False
    resolved = stack.resolve(value)
    if _references(resolved, str(stack.resolve(resource.logical_id))):
        return True
    name = resource.alarm_name
    return (
        name is not None
        and not Token.is_unresolved(name)
        and any(text.endswith(f":alarm:{name}") for text in _strings(resolved))
    )


def paged_suppressors(root: IConstruct, topic: sns.ITopic, *, skip: IConstruct) -> list[tuple[AnyAlarm, AnyAlarm]]:
    """(suppressor, composite) for each alarm under ``root`` (but not ``skip``) paging through ``topic``
    while it is the ``ActionsSuppressor`` of a composite alarm that pages through ``topic`` too."""
    paging = [a for a in alarms_in(root) if not is_within(a, skip) and _has(a, "alarm", topic)]
    pairs: list[tuple[AnyAlarm, AnyAlarm]] = []
    for composite in paging:
        resource = _resource(composite)
        if not isinstance(resource, cloudwatch.CfnCompositeAlarm) or resource.actions_suppressor is None:
            continue
        pairs += [
            (alarm, composite)
            for alarm in paging
            if alarm.node.path != composite.node.path and _names_resource(resource.actions_suppressor, alarm, resource)
        ]
    return pairs


def direct_invocations(root: IConstruct, functions: Sequence[Any], *, skip: IConstruct) -> list[tuple[AnyAlarm, str]]:
    """(alarm, state) for each action of an alarm under ``root`` (but not ``skip``) that invokes one of
    ``functions`` (the bridge's functions or aliases) itself, the state as the template names it."""
    found: list[tuple[AnyAlarm, str]] = []
    for alarm in alarms_in(root):
        if is_within(alarm, skip):
            continue
        for state, (_, name) in _L1_PROPERTIES.items():
            actions = actions_of(alarm, state) or []
            if any(_invokes(action, function, alarm) for action in actions for function in functions):
                found.append((alarm, name))
    return found


def _invokes(action: str, function: Any, alarm: AnyAlarm) -> bool:
    """Whether the alarm action ``action`` is ``function`` (a Lambda function or alias of the app)."""
    if action == function.function_arn:
        return True
    resource = function.node.default_child
    stack = Stack.of(alarm)
    if resource is None or Stack.of(resource).node.path != stack.node.path:
        return False
    return _references(stack.resolve(action), str(stack.resolve(resource.logical_id)))


class Pager(HasNode, Protocol):
    """What :class:`PageOnAlarms` needs of a bridge."""

    @property
    def topic(self) -> sns.ITopic: ...

    def page(self, alarm: Any, *, insufficient_data: bool = False) -> Any: ...


def _matches(selector: AlarmFilter, alarm: AnyAlarm) -> bool:
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
    ALARM and OK (and INSUFFICIENT_DATA with ``insufficient_data``), nothing twice. L1 alarms
    (``CfnAlarm``, ``CfnCompositeAlarm``, alarms included with ``CfnInclude``) are wired the same way,
    after the actions they already have; one whose actions are a token known only at deploy is left
    alone with a warning (id :data:`UNRESOLVED_ACTIONS_WARNING_ID`). ``include`` keeps only the alarms
    it matches, ``exclude`` leaves out those it matches (globs on the construct path, or a predicate,
    which sees L1 alarms too). The bridge's own health alarms are never wired: they must not page
    through the bridge they watch. Alarms imported by ARN are left alone (their actions belong to
    whoever defined them).
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
        unreached = [
            alarm
            for alarm in unreached_stage_alarms(node, type(self._bridge))
            if self._selects(alarm) and not is_within(alarm, self._bridge)
        ]
        if unreached:
            raise ValueError(
                f"PageOnAlarms({self._bridge.node.path}) cannot page "
                + "; ".join(f"alarm {a.node.path} is in stage {_stage_path(a)}" for a in unreached)
                + ": CDK applies an aspect within its own stage only, and that stage has no bridge. Put a bridge "
                "in the stage and add PageOnAlarms to the stage, or leave the alarms out with exclude."
            )
        if not is_alarm(node) or is_within(node, self._bridge):
            return
        alarm: AnyAlarm = node
        if not self._selects(alarm):
            return
        if isinstance(alarm, cloudwatch.AlarmBase):
            self._bridge.page(alarm, insufficient_data=self._insufficient_data)
            return
        if refuse_unreachable(alarm, self._bridge.topic):
            return
        unresolved = page_l1_alarm(alarm, self._bridge.topic, insufficient_data=self._insufficient_data)
        if unresolved:
            Annotations.of(alarm).add_warning_v2(
                UNRESOLVED_ACTIONS_WARNING_ID,
                f"alarm {alarm.node.path} was not wired to {self._bridge.node.path}: its "
                f"{' and '.join(unresolved)} {'is a token' if len(unresolved) == 1 else 'are tokens'} known only "
                "at deploy (Fn::If, a list parameter), which PageOnAlarms cannot extend without guessing. Add the "
                "bridge topic to its AlarmActions and OKActions where the token is defined, or exclude the alarm "
                "from PageOnAlarms and acknowledge this warning.",
            )

    def _selects(self, alarm: AnyAlarm) -> bool:
        """Whether ``include`` and ``exclude`` leave ``alarm`` to this aspect."""
        if self._include is not None and not _matches(self._include, alarm):
            return False
        return self._exclude is None or not _matches(self._exclude, alarm)


def unreached_stage_alarms(node: IConstruct, bridge_type: type) -> list[AnyAlarm]:
    """The alarms in the stages directly under ``node`` whose own stage holds no bridge (a construct of
    ``bridge_type``): an aspect added above a stage never visits them, and no bridge of theirs pages them."""

    def has_bridge(stage: IConstruct) -> bool:
        return any(isinstance(construct, bridge_type) for construct in stage.node.find_all())

    stages = [child for child in node.node.children if isinstance(child, Stage)]
    return [alarm for stage in stages for alarm in alarms_in(stage) if not has_bridge(Stage.of(alarm) or stage)]


@jsii.implements(IValidation)
class HalfWiredAlarmsCheck:
    """A validation of the bridge: reports each alarm of the app that tells the bridge ALARM but not OK
    (or OK but not ALARM), and warns (id :data:`DOUBLE_PAGE_WARNING_ID`) of each alarm paging beside a composite built on it.

    Validations run after every aspect, so alarms :class:`PageOnAlarms` wires are wired by then. Each
    half-wired alarm gets an error annotation (``cdk synth`` fails), or with ``severity="warn"`` a
    warning (id :data:`HALF_WIRED_WARNING_ID`).
    """

    def __init__(self, bridge: IConstruct, topic: sns.ITopic, *, severity: Literal["error", "warn"]) -> None:
        self._bridge = bridge
        self._topic = topic
        self._severity = severity

    def validate(self) -> list[str]:
        """Annotate the half-wired alarms; the annotations are the report, so no validation error, except
        for an alarm of another stage than the bridge's: that stage may be synthesized already, and an
        annotation would go nowhere."""
        errors: list[str] = []
        for alarm in half_wired(self._bridge.node.root, self._topic, skip=self._bridge):
            remedy = (
                "wire it with bridge.page(alarm) or PageOnAlarms(bridge), or add the bridge topic as its OK action too"
                if isinstance(alarm, cloudwatch.AlarmBase)
                else "wire it with PageOnAlarms(bridge), or add the bridge topic to its OKActions too"
            )
            message = (
                f"alarm {alarm.node.path} pages PagerDuty through {self._bridge.node.path} on ALARM but never "
                f"tells it OK, so its incidents will not resolve when it recovers: {remedy}."
            )
            self._report(alarm, message, errors)
        for alarm in ok_only(self._bridge.node.root, self._topic, skip=self._bridge):
            self._report(
                alarm,
                f"alarm {alarm.node.path} tells {self._bridge.node.path} OK but never ALARM: its AlarmActions "
                "lost the bridge topic (an action list set after it was wired replaced the one naming it), so it "
                "pages nobody. Set its actions before page(), or add the bridge topic to its AlarmActions too.",
                errors,
            )
        for alarm, composite in double_pages(self._bridge.node.root, self._topic, skip=self._bridge):
            Annotations.of(alarm).add_warning_v2(
                DOUBLE_PAGE_WARNING_ID,
                f"alarm {alarm.node.path} pages PagerDuty through {self._bridge.node.path} while the composite "
                f"alarm {composite.node.path} built on it pages too: one problem, two incidents. Leave the paging "
                "to the composite (exclude the alarm from PageOnAlarms, or do not page() it), or acknowledge this "
                "warning if both incidents are meant.",
            )
        return errors

    def _report(self, alarm: AnyAlarm, message: str, errors: list[str]) -> None:
        """An error annotation on ``alarm`` (a warning with ``severity="warn"``); for an alarm of another
        stage than the bridge's, a validation error in ``errors``."""
        if self._severity == "error" and _stage_path(alarm) != _stage_path(self._bridge):
            errors.append(message)
        elif self._severity == "warn":
            Annotations.of(alarm).add_warning_v2(HALF_WIRED_WARNING_ID, message)
        else:
            Annotations.of(alarm).add_error(message)


@jsii.implements(IValidation)
class BypassedTopicCheck:
    """A validation of the bridge: an error on each alarm of the app naming the bridge's topic with more
    actions for a state than CloudWatch allows (a validation error for one of another stage), an error on
    each alarm whose action invokes one of the bridge's functions itself (``LambdaAction(bridge.function)``),
    a warning (id :data:`ACTIONS_DISABLED_WARNING_ID`) on each alarm naming the topic with its actions
    disabled, and a warning (id :data:`SUPPRESSOR_PAGES_WARNING_ID`) on each alarm paging through the bridge while it
    suppresses a composite alarm that pages through it too.

    An alarm action on the function bypasses the topic: its dead-letter queue, the buffer, the half-wired
    check (which looks for the topic), and with SnapStart the ``live`` alias. A suppressor alarm (a
    maintenance window, a deploy in progress) is in ALARM exactly when nobody should be woken."""

    def __init__(self, bridge: IConstruct, topic: sns.ITopic, *, functions: Sequence[Any]) -> None:
        self._bridge = bridge
        self._topic = topic
        self._functions = list(functions)

    def validate(self) -> list[str]:
        """Annotate the alarms; the annotations are the report, but for an alarm of another stage."""
        root, bridge = self._bridge.node.root, self._bridge.node.path
        errors: list[str] = []
        for alarm, message in crowded(root, self._topic, skip=self._bridge):
            if _stage_path(alarm) != _stage_path(self._bridge):
                errors.append(message)  # that stage may be synthesized already: an annotation would go nowhere
            else:
                Annotations.of(alarm).add_error(message)
        for alarm in silenced(root, self._topic, skip=self._bridge):
            Annotations.of(alarm).add_warning_v2(
                ACTIONS_DISABLED_WARNING_ID,
                f"alarm {alarm.node.path} has its actions disabled (ActionsEnabled: false): it pages nobody "
                "through the bridge, and never resolves there, until they are enabled",
            )
        for alarm, state in direct_invocations(root, self._functions, skip=self._bridge):
            Annotations.of(alarm).add_error(
                f"alarm {alarm.node.path} invokes the function of {bridge} directly in its {state}: CloudWatch "
                "then bypasses the bridge's topic, its dead-letter queue and buffer, and the check that OK is "
                "wired too, so a failed page is lost and an incident may never resolve. Drop the Lambda action "
                "and page the alarm through the topic: bridge.page(alarm), or the topic as its AlarmActions "
                "and OKActions."
            )
        for alarm, composite in paged_suppressors(root, self._topic, skip=self._bridge):
            Annotations.of(alarm).add_warning_v2(
                SUPPRESSOR_PAGES_WARNING_ID,
                f"alarm {alarm.node.path} pages PagerDuty through {bridge} while it is the actions suppressor "
                f"of the composite alarm {composite.node.path}: it is in ALARM exactly when that composite must "
                "not page, and it pages. Do not page the suppressor (exclude it from PageOnAlarms, or do not "
                "page() it), or acknowledge this warning if it is meant to page.",
            )
        return errors
