"""The webhook receiver: a second, least-privilege function that records what people do in PagerDuty.

PagerDuty webhooks v3 (incident acknowledged, resolved, reassigned …) arrive at a Lambda function URL.
The URL takes no AWS authentication (``AuthType: NONE``): PagerDuty cannot sign requests with SigV4.
What authenticates a delivery is its ``X-PagerDuty-Signature``, an HMAC-SHA256 of the raw body with the
subscription's signing secret, which the handler checks in constant time before it reads anything.
The function may read and write incidents (GetItem, PutItem) and read its signing secret: nothing else.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.config import BridgeConfig
from pagerduty_bridge_cdk.functions import BridgeLambda
from pagerduty_bridge_cdk.incident_table import IncidentTable
from pagerduty_bridge_cdk.secrets import WEBHOOK_SIGNING_SECRET, BridgeSecret

TIMEOUT: Final = Duration.seconds(10)
"""A webhook is one signature check and at most a read and a conditional write; PagerDuty gives a
delivery a few seconds before it counts it as failed and retries it, so a slow answer helps nobody."""

RESERVED_CONCURRENCY: Final = 2
"""Caps what a flood of unsigned requests to the public URL can cost, and keeps it from taking the
account's concurrency from the paging function. PagerDuty delivers a subscription's webhooks one at a
time; a throttled delivery is answered 429 and retried by PagerDuty. Only set where the paging function
reserves concurrency too (accounts at the default quota cannot reserve any)."""


class WebhookReceiver(BridgeLambda):
    """The signing secret, the function, its function URL, and the URL as an output."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BridgeConfig,
        code: lambda_.Code,
        table: IncidentTable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.signing_secret = BridgeSecret(
            self, "SigningSecret", purpose=WEBHOOK_SIGNING_SECRET, existing_secret_arn=config.webhook_secret_arn
        )
        self._build_function(
            config=config,
            code=code,
            table=table,
            handler=constants.WEBHOOK_HANDLER,
            description="PagerDuty webhooks v3 to the incident table",
            role_description="pagerduty-bridge webhook receiver: its table items, its signing secret, its log group",
            timeout=TIMEOUT,
            reserved_concurrency=None if config.reserved_concurrency is None else RESERVED_CONCURRENCY,
            environment={
                constants.ENV_WEBHOOK_SECRET_ARN: self.signing_secret.secret_arn,
                **(
                    {constants.ENV_WEBHOOK_SERVICE_IDS: ",".join(config.webhook_service_ids)}
                    if config.webhook_service_ids
                    else {}
                ),
            },
        )
        self.signing_secret.grant_read(self.role)
        self.url = self._build_url()

    def _build_url(self) -> lambda_.FunctionUrl:
        url = lambda_.FunctionUrl(self, "Url", function=self.target, auth_type=lambda_.FunctionUrlAuthType.NONE)
        CfnOutput(
            self,
            "WebhookUrl",
            value=url.url,
            description="The PagerDuty webhook v3 subscription's URL (requests are authenticated by signature)",
        )
        return url
