"""Secrets Manager secrets the functions read: the PagerDuty integration key, the webhook signing secret.

A function receives a secret's ARN, never its value: the value stays out of the template, the
environment, the console's function configuration and every log. Unless an existing secret is given,
a placeholder secret is created, encrypted with a key of its own so that reading the value takes both
the secret's and the key's permission.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from aws_cdk import CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from pagerduty_bridge import constants
from pagerduty_bridge_cdk.nag import acknowledge
from pagerduty_bridge_cdk.readers import arn_region

PLACEHOLDER: Final = constants.INTEGRATION_KEY_PLACEHOLDER
"""What the created integration-key secret holds until the key is put in; never a valid key."""
WEBHOOK_PLACEHOLDER: Final = constants.WEBHOOK_SECRET_PLACEHOLDER
"""What the created signing secret holds until the subscription's secret is put in: the receiver
refuses every webhook until then (a signature made with this public text proves nothing)."""

_COMPLETE_SECRET_ARN: Final = re.compile(r"-[A-Za-z0-9]{6}$")
"""Secrets Manager appends six random characters to a secret's name in its complete ARN."""


def readable_secret_arn(secret_arn: str) -> str:
    """The IAM resource for a secret given by ARN; a partial ARN matches the random suffix.

    An ARN CloudFormation fills in (a secret of the same app) is always complete, so it is used as is.
    """
    if Token.is_unresolved(secret_arn) or _COMPLETE_SECRET_ARN.search(secret_arn):
        return secret_arn
    return f"{secret_arn}-??????"


@dataclass(frozen=True)
class SecretPurpose:
    """What a secret holds, in the words its description, output and grants use."""

    sid: str
    """Names the grants: ``Read<sid>Secret`` and ``Decrypt<sid>Secret``."""
    description: str
    placeholder: str
    output_description: str
    rotation_reason: str
    """Why the secret has no rotation Lambda (cdk-nag AwsSolutions-SMG4)."""


INTEGRATION_KEY: Final = SecretPurpose(
    sid="IntegrationKey",
    description='PagerDuty Events API v2 integration key (plain string, or JSON {"default": key})',
    placeholder=PLACEHOLDER,
    output_description="Put the PagerDuty integration key into this secret",
    rotation_reason="The value is a PagerDuty integration key, issued by PagerDuty: no Lambda can rotate it. "
    "Rotation is done by creating a new integration in PagerDuty and putting its key here.",
)
WEBHOOK_SIGNING_SECRET: Final = SecretPurpose(
    sid="Webhook",
    description="Signing secret of the PagerDuty webhook v3 subscription (plain string)",
    placeholder=WEBHOOK_PLACEHOLDER,
    output_description="Put the PagerDuty webhook subscription's signing secret into this secret",
    rotation_reason="The value is the signing secret PagerDuty generates for a webhook subscription and shows "
    "once: no Lambda can rotate it. Rotation is done by recreating the subscription in PagerDuty and "
    "putting its new secret here.",
)


class BridgeSecret(Construct):
    """A secret (created or existing), and the grants a function needs to read it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        purpose: SecretPurpose,
        existing_secret_arn: str | None,
        existing_secret_kms_key_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.purpose = purpose
        self.key_arn: str | None = existing_secret_kms_key_arn
        if existing_secret_arn is None:
            self.secret_arn = self._build_placeholder_secret()
        else:
            self.secret_arn = existing_secret_arn
        self.readable_arn = readable_secret_arn(self.secret_arn)
        CfnOutput(self, "Arn", value=self.secret_arn, description=purpose.output_description)

    def _build_placeholder_secret(self) -> str:
        key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the secret: {self.purpose.description}",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key_arn = key.key_arn
        secret = secretsmanager.Secret(
            self,
            "Secret",
            description=self.purpose.description,
            encryption_key=key,
            secret_string_value=SecretValue.unsafe_plain_text(self.purpose.placeholder),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(secret, "SMG4", self.purpose.rotation_reason)
        return secret.secret_arn

    @property
    def _region(self) -> str:
        """The secret's region, where Secrets Manager decrypts it: from its ARN, else the stack's."""
        return arn_region(self.secret_arn) or Stack.of(self).region

    def grant_read(self, role: iam.IRole) -> None:
        """Let ``role`` read this secret's value, and decrypt it only through Secrets Manager."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=f"Read{self.purpose.sid}Secret",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.readable_arn],
            )
        )
        if self.key_arn is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid=f"Decrypt{self.purpose.sid}Secret",
                    actions=["kms:Decrypt"],
                    resources=[self.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{self._region}.amazonaws.com"}},
                )
            )
