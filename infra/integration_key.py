"""The Secrets Manager secret holding the PagerDuty integration (routing) key.

The function receives the secret's ARN, never the key: the key stays out of the template, the
environment, the console's function configuration and every log. Unless an existing secret is given,
a placeholder secret is created, encrypted with a key of its own so that reading the routing key
takes both the secret's and the key's permission.
"""

from __future__ import annotations

import re
from typing import Final

from aws_cdk import CfnOutput, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import nag

PLACEHOLDER: Final = "REPLACE-WITH-THE-PAGERDUTY-INTEGRATION-KEY"
"""What the created secret holds until the key is put in; not 32 characters, so never a valid key."""

_COMPLETE_SECRET_ARN: Final = re.compile(r"-[A-Za-z0-9]{6}$")
"""Secrets Manager appends six random characters to a secret's name in its complete ARN."""


def readable_secret_arn(secret_arn: str) -> str:
    """The IAM resource for a secret given by ARN; a partial ARN matches the random suffix."""
    return secret_arn if _COMPLETE_SECRET_ARN.search(secret_arn) else f"{secret_arn}-??????"


class IntegrationKeySecret(Construct):
    """The secret, and the one grant the function needs to read it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        existing_secret_arn: str | None,
        existing_secret_kms_key_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key_arn: str | None = existing_secret_kms_key_arn
        if existing_secret_arn is None:
            self.secret_arn, self.readable_arn = self._build_placeholder_secret()
        else:
            self.secret_arn = existing_secret_arn
            self.readable_arn = readable_secret_arn(existing_secret_arn)
        self._build_output()

    def _build_placeholder_secret(self) -> tuple[str, str]:
        key = kms.Key(
            self,
            "Key",
            description="Encrypts the PagerDuty integration key secret",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key_arn = key.key_arn
        secret = secretsmanager.Secret(
            self,
            "Secret",
            description='PagerDuty Events API v2 integration key (plain string, or JSON {"default": key})',
            encryption_key=key,
            secret_string_value=SecretValue.unsafe_plain_text(PLACEHOLDER),
            removal_policy=RemovalPolicy.DESTROY,
        )
        nag.acknowledge(
            secret,
            "SMG4",
            "The value is a PagerDuty integration key, issued by PagerDuty: no Lambda can rotate it. "
            "Rotation is done by creating a new integration in PagerDuty and putting its key here.",
        )
        return secret.secret_arn, secret.secret_arn

    def _build_output(self) -> None:
        CfnOutput(
            self,
            "Arn",
            value=self.secret_arn,
            description="Put the PagerDuty integration key into this secret",
        )

    def grant_read(self, role: iam.Role) -> None:
        """Let ``role`` read this secret's value, and decrypt it only through Secrets Manager."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadIntegrationKeySecret",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.readable_arn],
            )
        )
        if self.key_arn is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptIntegrationKeySecret",
                    actions=["kms:Decrypt"],
                    resources=[self.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"}
                    },
                )
            )
