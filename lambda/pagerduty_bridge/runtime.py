"""Builds the Lambda's dependencies once per container, lazily (never at import).

Settings come from the environment; the store is the DynamoDB table it names; routing keys come from
Secrets Manager (or SSM), each alias loaded when first needed (``keys.RoutingKeys``); the Events API
client keeps its connections. Nothing here runs before the first invocation, so tests can put moto in
place first, and a SnapStart snapshot holds no secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pagerduty_bridge import constants as c
from pagerduty_bridge.delivery import Delivery
from pagerduty_bridge.errors import ConfigurationError
from pagerduty_bridge.events_api import EventsClient
from pagerduty_bridge.keys import RoutingKeys
from pagerduty_bridge.notifications import Notifications
from pagerduty_bridge.rules import load_rules
from pagerduty_bridge.settings import Settings
from pagerduty_bridge.silences import SilenceCache
from pagerduty_bridge.store import IncidentStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The container's long-lived objects, each built on first use."""

    settings: Settings
    store: IncidentStore
    on_attempt: Callable[[float], None] | None = None
    """Called with each PagerDuty call's duration in seconds (the latency metric)."""
    clock: Callable[[], datetime] = utc_now
    keys: RoutingKeys = field(init=False)
    _notifications: Notifications | None = None
    _cloudwatch: dict[tuple[str | None, str | None], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = RoutingKeys(self.settings)

    def notifications(self) -> Notifications:
        """The notification path: rules (validated once), the delivery protocol, the silences."""
        if self._notifications is None:
            settings = self.settings
            sender = EventsClient(
                settings.events_url,
                retry_budget_seconds=settings.retry_budget_seconds,
                on_attempt=self.on_attempt,
            )
            delivery = Delivery(
                self.store, sender, self.keys, self.clock, retry_budget_seconds=settings.retry_budget_seconds
            )
            self._notifications = Notifications(
                settings, load_rules(settings), delivery, self.clock, silences=SilenceCache(self.store)
            )
        return self._notifications

    def cloudwatch(self, region: str | None = None, role_arn: str | None = None) -> Any:
        """A CloudWatch client for ``region``, as ``role_arn`` when given (built once each)."""
        client = self._cloudwatch.get((region, role_arn))
        if client is None:
            client = cloudwatch_client(region, role_arn)
            self._cloudwatch[(region, role_arn)] = client
        return client

    def refresh(self) -> None:
        """Forget cached secrets and open connections (after a SnapStart restore, the snapshot's may be
        stale): both are made again when next needed."""
        self.keys.clear_cache()
        if self._notifications is not None:
            sender = self._notifications.delivery.sender
            if isinstance(sender, EventsClient):
                sender.reset()


AWS_CONNECT_TIMEOUT_SECONDS: Final = 2.0
AWS_READ_TIMEOUT_SECONDS: Final = 5.0
"""DynamoDB and CloudWatch answer in milliseconds. boto3's 60 s defaults let one request on a pooled
connection that died while the container was frozen (a NAT forgets it: no FIN, no answer) outlast the
function's timeout, ending the invocation with nothing paged (or the scheduled run with nothing healed,
at every run: it comes after the container idled); given up after this, the request is retried at once
on a new connection (a write whose answer was lost is recognised: ``dynamodb.already_written``)."""


def aws_config(**options: Any) -> Any:
    """botocore's configuration for the function's AWS clients: ``options`` and the timeouts above."""
    from botocore.config import Config

    return Config(connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS, read_timeout=AWS_READ_TIMEOUT_SECONDS, **options)


ASSUMED_ROLE_SESSION = "pagerduty-bridge-reconcile"
ASSUMED_ROLE_SECONDS = 900
"""The shortest session STS grants: a reconciliation run is over well before it ends."""
AWS_MAX_ATTEMPTS: Final = 2
"""CloudWatch calls of the scheduled run: one retry (botocore's standard mode: throttling and transient
errors), not four. A region that takes requests and never answers costs the run one read timeout
twice, and every other incident waits for it."""


def cloudwatch_client(region: str | None, role_arn: str | None = None, *, endpoint_url: str | None = None) -> Any:
    """A CloudWatch client in ``region`` (``None``: the default), assuming ``role_arn`` when given.

    The assumed role's credentials renew themselves before they expire (botocore's assume-role
    fetcher): the client lives as long as the container, far longer than the 15-minute session.
    """
    import boto3
    import botocore.session
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    config = aws_config(retries={"mode": "standard", "max_attempts": AWS_MAX_ATTEMPTS})
    if role_arn is None:
        return boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url, config=config)
    source = boto3.Session()
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=lambda service, **kwargs: source.client(
            service, endpoint_url=endpoint_url, **{"config": config, **kwargs}
        ),
        source_credentials=source.get_credentials(),
        role_arn=role_arn,
        extra_args={"RoleSessionName": ASSUMED_ROLE_SESSION, "DurationSeconds": ASSUMED_ROLE_SECONDS},
    )
    assumed = botocore.session.Session()
    # botocore takes ready-made credentials on a session this way (what its own assume-role profiles do).
    assumed._credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
    return boto3.Session(botocore_session=assumed).client(
        "cloudwatch", region_name=region, endpoint_url=endpoint_url, config=config
    )


def lambda_runtime(settings: Settings | None = None) -> Runtime:
    """The Lambda's runtime: settings from the environment, the DynamoDB table it names."""
    settings = settings or Settings.from_env()
    if not settings.table_name:
        raise ConfigurationError(f"{c.ENV_TABLE_NAME} is not set: the Lambda needs its incident table")
    import boto3

    from pagerduty_bridge.store.dynamodb import DynamoDBIncidentStore

    # Every request this client makes is built by the store's own code (tested against moto's and the
    # stack's table); DynamoDB validates each on its side. botocore's client-side check of every
    # attribute of every item is a tenth of a write's CPU that finds nothing here.
    client = boto3.client("dynamodb", config=aws_config(parameter_validation=False))
    retention = timedelta(days=settings.resolved_retention_days)
    return Runtime(settings=settings, store=DynamoDBIncidentStore(client, settings.table_name, retention=retention))
