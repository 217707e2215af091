"""The DynamoDB table of incidents, built from the store's single key-schema definition."""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from pagerduty_bridge import constants


class IncidentTable(Construct):
    """One item per dedup key; a sparse index of open incidents; resolved ones expire by TTL.

    On-demand billing because alarm traffic is bursty and mostly idle; point-in-time recovery because
    the table is the only record of which incidents are open; retained on stack deletion because
    deleting the stack must not forget open incidents.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = self._build_table()
        self._build_active_index()
        CfnOutput(self, "TableName", value=self.table.table_name, description="The incident table")

    def _build_table(self) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=constants.TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=constants.TTL_ATTRIBUTE,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _build_active_index(self) -> None:
        self.table.add_global_secondary_index(
            index_name=constants.ACTIVE_INDEX_NAME,
            partition_key=dynamodb.Attribute(
                name=constants.ACTIVE_INDEX_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(name=constants.ACTIVE_INDEX_SORT_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )

    @property
    def active_index_arn(self) -> str:
        """ARN of the open-incidents index, for IAM statements that must name it."""
        return f"{self.table.table_arn}/index/{constants.ACTIVE_INDEX_NAME}"
