"""``PagerDutyBridge``: the whole bridge as one construct, composed of one construct per concern."""

from __future__ import annotations

from typing import TypeVar, Unpack

from aws_cdk import CfnOutput, Stack, Tags, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge.rules import parse_rules
from pagerduty_bridge_cdk.alarm_topic import AlarmTopic
from pagerduty_bridge_cdk.bridge_function import BridgeFunction
from pagerduty_bridge_cdk.bundling import function_code
from pagerduty_bridge_cdk.change_events import DEAD_LETTERS_ALARM_DESCRIPTION as CHANGE_DEAD_LETTERS_DESCRIPTION
from pagerduty_bridge_cdk.change_events import ChangeEvents
from pagerduty_bridge_cdk.config import BridgeConfig, BridgeProps
from pagerduty_bridge_cdk.dashboard import BridgeDashboard
from pagerduty_bridge_cdk.delivery import BufferedDelivery, DirectDelivery
from pagerduty_bridge_cdk.health import HealthAlarms
from pagerduty_bridge_cdk.inbound import FilteredSubscriptionsCheck
from pagerduty_bridge_cdk.incident_table import IncidentTable
from pagerduty_bridge_cdk.missing_data import MissingDataCheck
from pagerduty_bridge_cdk.readers import ConfigError
from pagerduty_bridge_cdk.reconciliation import DEAD_LETTERS_ALARM_DESCRIPTION, Reconciliation
from pagerduty_bridge_cdk.secrets import INTEGRATION_KEY, BridgeSecret
from pagerduty_bridge_cdk.webhook import WebhookReceiver
from pagerduty_bridge_cdk.wiring import BypassedTopicCheck, HalfWiredAlarmsCheck, page_alarm

RECONCILE_DEAD_LETTERS = "ReconcileDeadLetters"
"""The schedule's dead-letter queue, by the name its alarm, output and the dashboard show."""
CHANGE_EVENT_DEAD_LETTERS = "ChangeEventDeadLetters"
"""The change-event rule's dead-letter queue, likewise."""

AlarmT = TypeVar("AlarmT", bound=cloudwatch.AlarmBase | cloudwatch.CfnAlarm | cloudwatch.CfnCompositeAlarm)


class PagerDutyBridge(Construct):
    """CloudWatch alarms to PagerDuty: the alarm topic, the function, the incident table and everything
    around them (secrets, delivery with dead-letter queues, reconciliation, optional webhooks and change
    events, health alarms, a dashboard).

    ``environment`` names the deployment (lowercase letters, digits, dashes). Every other prop is
    optional and validated exactly as the standalone app's context parameter of the same name in
    camelCase (see :data:`pagerduty_bridge_cdk.config.PARAMETERS`); a bad value raises
    :class:`~pagerduty_bridge_cdk.ConfigError` naming the prop.

    Page an alarm with :meth:`page`, or every alarm of a scope with
    :class:`~pagerduty_bridge_cdk.PageOnAlarms`; an alarm of the app that tells the bridge ALARM but not
    OK is reported at synth (``half_wired_alarms``: ``"error"`` or ``"warn"``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, environment: str, **props: Unpack[BridgeProps]) -> None:
        # Validated before the construct joins the tree: a bad prop leaves nothing half-built behind.
        config = BridgeConfig.from_props(environment=environment, **props)
        _check_environment_is_free(scope, config.environment)
        _check_secret_accounts(Stack.of(scope).account, config)
        super().__init__(scope, construct_id)
        self.config = config
        self.alarm_topic = AlarmTopic(self, "AlarmTopic", existing_topic_arn=config.alarm_topic_arn)
        self.incidents = IncidentTable(self, "Incidents")
        self.integration_key = BridgeSecret(
            self,
            "IntegrationKey",
            purpose=INTEGRATION_KEY,
            existing_secret_arn=config.integration_key_secret_arn,
            existing_secret_kms_key_arn=config.integration_key_secret_kms_key_arn,
        )
        # One asset for both functions: bundled once, uploaded once.
        code = function_code(self, architecture=config.architecture, python_version=config.python_version)
        self.bridge = BridgeFunction(
            self, "Bridge", config=config, code=code, table=self.incidents, integration_key=self.integration_key
        )
        self.webhooks = self._build_webhooks(code)
        self._queue_descriptions: dict[str, str] = {}
        self.buffer: sqs.IQueue | None = None
        """Buffered delivery's queue (``buffered=True``), else None."""
        self.dead_letter_queues = self._build_delivery()
        self.reconciliation = self._build_reconciliation()
        self.change_events = self._build_change_events()
        self.health = self._build_health()
        self._build_dashboard()
        self._build_outputs()
        self._build_tags()
        self.node.add_validation(HalfWiredAlarmsCheck(self, self.topic, severity=config.half_wired_alarms))
        functions = [self.function, self.bridge.target, *([] if self.webhooks is None else [self.webhooks.function])]
        self.node.add_validation(BypassedTopicCheck(self, self.topic, functions=functions))
        targets = [self.function, self.bridge.target, *([] if self.buffer is None else [self.buffer])]
        self.node.add_validation(FilteredSubscriptionsCheck(self, targets))
        if config.alert_rules:
            rules = parse_rules(config.alert_rules, where="prop alert_rules")
            self.node.add_validation(MissingDataCheck(self, self.topic, rules, severity=config.half_wired_alarms))

    # --- what users of the construct reach for ---------------------------------------------------------

    @property
    def topic(self) -> sns.ITopic:
        """The alarm topic: put it in your alarms' ALARM and OK actions (or use :meth:`page`)."""
        return self.alarm_topic.topic

    @property
    def function(self) -> lambda_.Function:
        """The main function (alarm notifications, reconciliation, change events)."""
        return self.bridge.function

    @property
    def table(self) -> dynamodb.Table:
        """The incident table."""
        return self.incidents.table

    @property
    def health_topic(self) -> sns.ITopic:
        """The topic the bridge's own health alarms publish to: subscribe its operators here (or give
        ``health_alarm_email``)."""
        return self.health.topic

    @property
    def webhook_url(self) -> str | None:
        """The webhook receiver's function URL (with ``webhooks=True``), for the PagerDuty subscription."""
        return None if self.webhooks is None else self.webhooks.url.url

    def page(self, alarm: AlarmT, *, insufficient_data: bool = False) -> AlarmT:
        """Page through the bridge when ``alarm`` (a ``cloudwatch.Alarm``, ``CompositeAlarm``, ``CfnAlarm``
        or ``CfnCompositeAlarm``) goes to ALARM, and resolve when it goes back to OK: adds the topic as
        ALARM and OK action (and as INSUFFICIENT_DATA action with ``insufficient_data``), each only once.
        An alarm in another region is an error at synth, one with its actions disabled a warning.
        Returns the alarm."""
        return page_alarm(alarm, self.topic, insufficient_data=insufficient_data)

    # --- building ---------------------------------------------------------------------------------------

    def _build_webhooks(self, code: lambda_.Code) -> WebhookReceiver | None:
        if not self.config.webhooks:
            return None
        return WebhookReceiver(self, "Webhooks", config=self.config, code=code, table=self.incidents)

    def _build_delivery(self) -> dict[str, sqs.IQueue]:
        if self.config.buffered:
            buffered = BufferedDelivery(
                self,
                "BufferedDelivery",
                topic=self.topic,
                function=self.bridge.target,
                function_timeout=self.bridge.timeout,
                config=self.config,
                async_triggers=bool(self.config.reconcile_minutes or self.config.change_events),
            )
            self._queue_descriptions.update(buffered.queue_descriptions)
            self.buffer = buffered.buffer
            return buffered.dead_letter_queues
        return DirectDelivery(self, "DirectDelivery", topic=self.topic, function=self.bridge.target).dead_letter_queues

    def _build_reconciliation(self) -> Reconciliation | None:
        if not self.config.reconcile_minutes:
            return None
        reconciliation = Reconciliation(
            self, "Reconciliation", function=self.bridge.target, minutes=self.config.reconcile_minutes
        )
        self.dead_letter_queues[RECONCILE_DEAD_LETTERS] = reconciliation.dead_letters
        self._queue_descriptions[RECONCILE_DEAD_LETTERS] = DEAD_LETTERS_ALARM_DESCRIPTION
        return reconciliation

    def _build_change_events(self) -> ChangeEvents | None:
        if not self.config.change_events:
            return None
        change_events = ChangeEvents(
            self, "ChangeEvents", function=self.bridge.target, stack_globs=self.config.change_events
        )
        self.dead_letter_queues[CHANGE_EVENT_DEAD_LETTERS] = change_events.dead_letters
        self._queue_descriptions[CHANGE_EVENT_DEAD_LETTERS] = CHANGE_DEAD_LETTERS_DESCRIPTION
        return change_events

    def _build_health(self) -> HealthAlarms:
        return HealthAlarms(
            self,
            "Health",
            function=self.function,
            service=constants.deployed_service_name(self.config.environment),
            dead_letter_queues=self.dead_letter_queues,
            email=self.config.health_alarm_email,
            queue_descriptions=self._queue_descriptions,
            webhook_function=None if self.webhooks is None else self.webhooks.function,
            buffer=self.buffer,
        )

    def _build_dashboard(self) -> None:
        BridgeDashboard(
            self,
            "Dashboard",
            environment=self.config.environment,
            function=self.function,
            dead_letter_queues=self.dead_letter_queues,
        )

    def _build_outputs(self) -> None:
        """Every queue a failed notification can end in, for ``pagerduty-bridge redrive --queue-url``."""
        for name, queue in self.dead_letter_queues.items():
            CfnOutput(
                self,
                f"{name}Url",
                value=queue.queue_url,
                description=f"Dead-letter queue {name}: replay with pagerduty-bridge redrive --queue-url <this>",
            )

    def _build_tags(self) -> None:
        Tags.of(self).add("service", constants.SERVICE_NAME)
        Tags.of(self).add("environment", self.config.environment)


def _check_environment_is_free(scope: Construct, environment: str) -> None:
    """Refuse a second bridge of ``environment`` in the account and region of one already in the app: the
    two would share their dashboard's name (a deploy failure) and the metrics their health alarms watch
    (the handler's metrics carry the environment, not the bridge), so each would alarm on the other's
    failures. Env-agnostic stacks all deploy where the CLI points, so they count as one place."""
    stack = Stack.of(scope)
    for construct in scope.node.root.node.find_all():
        if not isinstance(construct, PagerDutyBridge) or construct.config.environment != environment:
            continue
        other = Stack.of(construct)
        if (other.account, other.region) == (stack.account, stack.region):
            raise ConfigError(
                f"prop environment={environment!r} is already the environment of the bridge "
                f"{construct.node.path} in the same account and region: the two would share a dashboard name "
                "and the metrics their health alarms watch. Give each bridge its own environment."
            )


def _check_secret_accounts(account: str, config: BridgeConfig) -> None:
    """Refuse a secret of another account than the bridge's that no customer-managed key of the config
    encrypts: Secrets Manager decrypts for another account only under such a key (``aws/secretsmanager``
    cannot be shared), so the function would fail every page. The webhook secret must be under
    ``aws/secretsmanager``; routing-key secrets may be under the integration key's key. An env-agnostic
    stack's account is not known before deploy."""
    if Token.is_unresolved(account):
        return
    key = config.integration_key_secret_kms_key_arn
    secrets = [
        ("integration_key_secret_arn", config.integration_key_secret_arn, key),
        ("webhook_secret_arn", config.webhook_secret_arn, None),
        *(("routing_key_secrets", arn, key) for _, arn in config.routing_key_secrets),
    ]
    for prop, arn, secret_key in secrets:
        if arn is None or Token.is_unresolved(arn) or secret_key is not None:
            continue
        owner = arn.split(":")[4]
        if owner != account:
            remedy = (
                "it must be a secret of the bridge's account, encrypted with aws/secretsmanager"
                if prop == "webhook_secret_arn"
                else "give integration_key_secret_kms_key_arn, the customer-managed key that encrypts it (its key "
                "policy and the secret's resource policy letting this account read it)"
            )
            raise ConfigError(
                f"prop {prop}: {arn} is in account {owner}, the bridge in {account}: Secrets Manager decrypts a "
                f"secret for another account only under a customer-managed key, so every page would fail: {remedy}"
            )
