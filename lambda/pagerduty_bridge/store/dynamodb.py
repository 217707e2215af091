"""The Lambda's incident store: one DynamoDB item per dedup key.

Conditional writes carry the version that was read; a sparse global secondary index (present only
while an incident is open) makes "active incidents" a Query; resolved incidents get a TTL. The key
schema comes from ``constants``, which the CDK stack builds the table from.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from pagerduty_bridge import constants as c
from pagerduty_bridge.errors import StoreError, StoreTimeoutError, VersionConflictError
from pagerduty_bridge.models import Incident
from pagerduty_bridge.silences import TTL_GRACE, Silence, read_silence
from pagerduty_bridge.store import bounded, expiry_epoch, format_time, from_record, needs_watch, to_record
from pagerduty_bridge.text import truncate
from pagerduty_bridge.timeutil import epoch_seconds, shifted

UNVERSIONED: Final = 1
"""The version an item without one reads as (``Incident.version``'s default)."""
REMEMBERED_WRITES: Final = 64
"""Items the store keeps as it last wrote them, to send only what changed when it writes over them."""
WATCH_MARKER = "watch"
"""The sparse index's partition for closed incidents the scheduled run must look at (``needs_watch``)."""

if TYPE_CHECKING:
    from botocore.client import BaseClient

logger = logging.getLogger(__name__)

_AWS_ERRORS = (ClientError, BotoCoreError)
# DynamoDB error codes that say the request itself is malformed: sending it again cannot help. Every
# other error can be fixed by a retry: throttling and service-side trouble by itself, a table deleted or
# renamed, a role or KMS key a deploy got wrong once the deployment is fixed (as a ConfigurationError).
_REQUEST_ERRORS = frozenset({"ValidationException", "SerializationException"})

TABLE_KEY_SCHEMA: list[dict[str, str]] = [{"AttributeName": c.TABLE_PARTITION_KEY, "KeyType": "HASH"}]
TABLE_ATTRIBUTES: list[dict[str, str]] = [
    {"AttributeName": c.TABLE_PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": c.ACTIVE_INDEX_PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": c.ACTIVE_INDEX_SORT_KEY, "AttributeType": "S"},
]
ACTIVE_INDEX: dict[str, Any] = {
    "IndexName": c.ACTIVE_INDEX_NAME,
    "KeySchema": [
        {"AttributeName": c.ACTIVE_INDEX_PARTITION_KEY, "KeyType": "HASH"},
        {"AttributeName": c.ACTIVE_INDEX_SORT_KEY, "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}


def create_table(client: BaseClient, table_name: str, *, time_to_live: bool = True) -> None:
    """Create the incident table as the stack does (for tests and local DynamoDB endpoints).

    ``time_to_live=False`` skips the TTL setting, for DynamoDB implementations that lack it (dynalite).
    """
    client.create_table(
        TableName=table_name,
        KeySchema=TABLE_KEY_SCHEMA,
        AttributeDefinitions=TABLE_ATTRIBUTES,
        GlobalSecondaryIndexes=[ACTIVE_INDEX],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    if time_to_live:
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": c.TTL_ATTRIBUTE}
        )


def translate_client_error(
    exc: ClientError | BotoCoreError, action: str, *, current: Callable[[dict[str, Any]], Any] | None = None
) -> StoreError:
    """Map a botocore error to the bridge's errors, once: conflicts, requests DynamoDB refuses as
    malformed (not retryable), and everything else (retryable: see ``_REQUEST_ERRORS``).

    A failed conditional write carries the item as it is now when DynamoDB returned it
    (``ReturnValuesOnConditionCheckFailure``): ``current`` turns it into an incident.
    """
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", type(exc).__name__))
    message = str(response.get("Error", {}).get("Message", exc))
    if code == "ConditionalCheckFailedException":
        item = response.get("Item")
        if current is not None and isinstance(item, dict):
            return VersionConflictError(
                f"{action}: the incident changed since it was read", current=current(item), known=True
            )
        return VersionConflictError(f"{action}: the incident changed since it was read")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return StoreTimeoutError(f"{action} failed: {code}: {message}")
    return StoreError(f"{action} failed: {code}: {message}", retryable=code not in _REQUEST_ERRORS)


def version_condition(expected_version: int) -> str:
    """The condition a write conditional on ``expected_version`` makes. An item without a version (put
    in by hand or by another tool) reads as version 1 (``Incident``'s default): a write expecting 1 may
    replace it too, or no write would ever match it and its alarm could never page again. So may it an
    item whose version is not a number (text, written by hand): it reads as version 1 too."""
    if expected_version == UNVERSIONED:
        return (
            f"version = :expected OR (attribute_exists({c.TABLE_PARTITION_KEY})"
            " AND (attribute_not_exists(version) OR NOT attribute_type(version, :number)))"
        )
    return "version = :expected"


def already_written(exc: ClientError | BotoCoreError, item: dict[str, Any]) -> bool:
    """Whether a conditional write failed on the very item it writes: its first request was applied but
    its answer lost (a dropped connection, a read timeout), and botocore sent it again. The write is
    done; taking it for another writer's would make the bridge back off from its own claim (the page
    waits for a retry) or think its commit was overtaken."""
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException" and response.get("Item") == item


def exact_version(expected_version: int) -> dict[str, Any]:
    """The condition of a write that holds only over an item whose stored version is ``expected_version``."""
    return {
        "ConditionExpression": "version = :expected",
        "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
    }


def update_expression(
    before: dict[str, Any], after: dict[str, Any], condition: dict[str, Any]
) -> dict[str, Any] | None:
    """UpdateItem arguments that turn the item ``before`` into ``after`` (both whole items, same key),
    under ``condition`` (a write's ``ConditionExpression`` and its values); None when nothing changes."""
    names: dict[str, str] = {}
    values: dict[str, Any] = dict(condition.get("ExpressionAttributeValues", {}))
    sets: list[str] = []
    for n, (name, value) in enumerate(after.items()):
        if name != c.TABLE_PARTITION_KEY and before.get(name) != value:
            names[f"#s{n}"] = name
            values[f":s{n}"] = value
            sets.append(f"#s{n} = :s{n}")
    removed = [name for name in before if name not in after]
    for n, name in enumerate(removed):
        names[f"#r{n}"] = name
    clauses = [f"SET {', '.join(sets)}"] if sets else []
    if removed:
        clauses.append("REMOVE " + ", ".join(f"#r{n}" for n in range(len(removed))))
    if not clauses:
        return None
    arguments: dict[str, Any] = {
        "UpdateExpression": " ".join(clauses),
        "ConditionExpression": condition["ConditionExpression"],
    }
    if names:
        arguments["ExpressionAttributeNames"] = names
    if values:
        arguments["ExpressionAttributeValues"] = values
    return arguments


def attribute_value(value: Any) -> dict[str, Any]:
    """A stored record's value as a DynamoDB attribute value.

    Records hold strings, integers, booleans, lists and string maps only (``store.to_record``); this is
    boto3's ``TypeSerializer`` for exactly those, without its type probing on every value of every write.
    """
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, list):
        return {"L": [attribute_value(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): attribute_value(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: records hold str, int, bool, list and dict")


def _is_incident(item: dict[str, Any]) -> bool:
    """Silences share the table, marked as silences in the index's partition attribute (their key
    prefix says nothing: a dedup key may start the same way, as an alarm may be named anything)."""
    return bool(item.get(c.ACTIVE_INDEX_PARTITION_KEY, {}).get("S") != c.SILENCE_MARKER)


class DynamoDBIncidentStore:
    """Incidents in a DynamoDB table, through an injected boto3 DynamoDB client."""

    def __init__(self, client: BaseClient, table_name: str, *, retention: timedelta = timedelta(days=90)) -> None:
        from boto3.dynamodb.types import TypeDeserializer

        self._client = client
        self.table_name = table_name
        self.retention = retention
        self._deserialize = TypeDeserializer().deserialize
        self._odd_versions: dict[str, dict[str, Any]] = {}
        """The stored ``version`` of items read whose version could not be read (read as 1), by key."""
        self._written: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        """The last item this store wrote, with its version, by key (a bounded few): a write over it sends
        only what changed (``update_expression``)."""
        self._updates = True

    def __repr__(self) -> str:
        return f"DynamoDBIncidentStore({self.table_name!r})"

    def get(self, dedup_key: str) -> Incident | None:
        try:
            response = self._client.get_item(
                TableName=self.table_name,
                Key={c.TABLE_PARTITION_KEY: {"S": dedup_key}},
                ConsistentRead=True,
            )
        except _AWS_ERRORS as exc:
            raise translate_client_error(exc, f"reading incident {dedup_key}") from exc
        item = response.get("Item")
        return self._incident(item) if item else None

    def put(self, incident: Incident, *, expected_version: int | None) -> None:
        incident = bounded(incident)
        item = self._item(incident)
        try:
            if not self._update(incident.dedup_key, item, expected_version):
                if expected_version is None:
                    condition: dict[str, Any] = {
                        "ConditionExpression": f"attribute_not_exists({c.TABLE_PARTITION_KEY})"
                    }
                else:
                    condition = self._condition(incident.dedup_key, expected_version)
                self._client.put_item(
                    TableName=self.table_name, Item=item, ReturnValuesOnConditionCheckFailure="ALL_OLD", **condition
                )
        except _AWS_ERRORS as exc:
            if not already_written(exc, item):
                raise translate_client_error(
                    exc, f"writing incident {incident.dedup_key}", current=self._incident
                ) from exc
        self._written[incident.dedup_key] = (incident.version, item)
        while len(self._written) > REMEMBERED_WRITES:
            self._written.popitem(last=False)

    def _item(self, incident: Incident) -> dict[str, Any]:
        record = to_record(incident, compact=True)
        marker = c.ACTIVE_MARKER if incident.is_open else WATCH_MARKER if needs_watch(incident) else None
        if marker is not None:
            record[c.ACTIVE_INDEX_PARTITION_KEY] = marker
            record[c.ACTIVE_INDEX_SORT_KEY] = record.get("triggered_at") or record["updated_at"]
        expires = expiry_epoch(incident, self.retention)
        if expires is not None:
            record[c.TTL_ATTRIBUTE] = expires
        return {key: attribute_value(value) for key, value in record.items()}

    def _update(self, key: str, item: dict[str, Any], expected_version: int | None) -> bool:
        """Write ``item`` as an UpdateItem of what changed, if the item stored at ``expected_version`` is
        one this store wrote there (any other write changes the version); say whether it did. The
        condition is on the version alone: an item put in by hand without a number for version fails
        it, and is replaced whole after a read. A role without UpdateItem (an older stack's) gets
        whole-item writes from then on."""
        over = self._written.pop(key, None)
        if not self._updates or over is None or over[0] != expected_version or expected_version is None:
            return False
        changes = update_expression(over[1], item, exact_version(expected_version))
        if changes is None:
            return False
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={c.TABLE_PARTITION_KEY: item[c.TABLE_PARTITION_KEY]},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **changes,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "AccessDeniedException":
                raise
            logger.warning("UpdateItem is not allowed on %s: writing whole items from now on", self.table_name)
            self._updates = False
            return False
        return True

    def _condition(self, key: str, expected_version: int) -> dict[str, Any]:
        """A write's condition on ``expected_version``; on version 1, an item whose stored version could
        not be read (text, a fraction, out of range) and that has not changed since it was read matches."""
        condition: dict[str, Any] = {
            "ConditionExpression": version_condition(expected_version),
            "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
        }
        if expected_version == UNVERSIONED:
            condition["ExpressionAttributeValues"][":number"] = {"S": "N"}
            odd = self._odd_versions.pop(key, None)
            if odd is not None:
                condition["ConditionExpression"] = f"({condition['ConditionExpression']}) OR version = :odd"
                condition["ExpressionAttributeValues"][":odd"] = odd
        return condition

    def list_active(self) -> list[Incident]:
        return self._query_index(c.ACTIVE_MARKER)

    def list_watched(self) -> list[Incident]:
        return self._query_index(WATCH_MARKER)

    def _query_index(self, marker: str) -> list[Incident]:
        return self._paginate(
            "query",
            IndexName=c.ACTIVE_INDEX_NAME,
            KeyConditionExpression="#active = :marker",
            ExpressionAttributeNames={"#active": c.ACTIVE_INDEX_PARTITION_KEY},
            ExpressionAttributeValues={":marker": {"S": marker}},
        )

    def list_silences(self) -> list[Silence]:
        silences: list[Silence] = []
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self.table_name,
                IndexName=c.ACTIVE_INDEX_NAME,
                KeyConditionExpression="#active = :marker",
                ExpressionAttributeNames={"#active": c.ACTIVE_INDEX_PARTITION_KEY},
                ExpressionAttributeValues={":marker": {"S": c.SILENCE_MARKER}},
            )
            for page in pages:
                for item in page.get("Items", []):
                    key = str(item.get(c.TABLE_PARTITION_KEY, {}).get("S", "?"))[:256]
                    data = item.get("data", {}).get("S")
                    silence = read_silence(data, f"the item {key!r} in {self.table_name}")
                    if silence is not None:
                        silences.append(silence)
        except _AWS_ERRORS as exc:
            raise translate_client_error(exc, f"reading silences from {self.table_name}") from exc
        return silences

    def put_silence(self, silence: Silence) -> None:
        item = {
            c.TABLE_PARTITION_KEY: {"S": c.SILENCE_KEY_PREFIX + silence.id},
            c.ACTIVE_INDEX_PARTITION_KEY: {"S": c.SILENCE_MARKER},
            c.ACTIVE_INDEX_SORT_KEY: {"S": format_time(silence.starts_at)},
            c.TTL_ATTRIBUTE: {"N": str(epoch_seconds(shifted(silence.ends_at, TTL_GRACE)))},
            "data": {"S": json.dumps(silence.as_dict(), ensure_ascii=False)},
        }
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=item,
                # Never over an incident whose dedup key happens to read like a silence's key.
                ConditionExpression="attribute_not_exists(#key) OR #marker = :silence",
                ExpressionAttributeNames={"#key": c.TABLE_PARTITION_KEY, "#marker": c.ACTIVE_INDEX_PARTITION_KEY},
                ExpressionAttributeValues={":silence": {"S": c.SILENCE_MARKER}},
            )
        except _AWS_ERRORS as exc:
            error = translate_client_error(exc, f"writing silence {silence.id}")
            if isinstance(error, VersionConflictError):
                raise StoreError(
                    f"writing silence {silence.id} failed: its key holds an incident of that name", retryable=False
                ) from exc
            raise error from exc

    def list_all(self) -> list[Incident]:
        incidents = self._paginate("scan")
        return sorted(incidents, key=lambda i: (i.triggered_at is None, i.triggered_at or i.updated_at, i.dedup_key))

    def delete(self, dedup_key: str) -> None:
        try:
            self._client.delete_item(TableName=self.table_name, Key={c.TABLE_PARTITION_KEY: {"S": dedup_key}})
        except _AWS_ERRORS as exc:
            raise translate_client_error(exc, f"deleting incident {dedup_key}") from exc

    def clear(self) -> None:
        for incident in self.list_all():
            self.delete(incident.dedup_key)

    def ping(self) -> None:
        try:
            self._client.describe_table(TableName=self.table_name)
        except _AWS_ERRORS as exc:
            raise translate_client_error(exc, f"describing table {self.table_name}") from exc

    def _incident(self, item: dict[str, Any]) -> Incident:
        if not _is_incident(item):  # read as an incident of unknown state, a write would replace it
            key = str(item.get(c.TABLE_PARTITION_KEY, {}).get("S", "?"))[:256]
            raise StoreError(f"the item {key!r} in {self.table_name} is a silence, not an incident", retryable=True)
        try:
            incident = from_record({key: self._deserialize(value) for key, value in item.items()})
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:  # written by hand, or by something else
            key = str(item.get(c.TABLE_PARTITION_KEY, {}).get("S", "?"))[:256]
            raise StoreError(
                f"the item {key!r} in {self.table_name} is not an incident the bridge can read "
                f"({type(exc).__name__}: {truncate(str(exc), 256)})",
                retryable=True,
            ) from None
        stored = item.get("version")
        if stored is not None and stored != {"N": str(incident.version)} and len(self._odd_versions) < 1024:
            self._odd_versions[incident.dedup_key] = stored
        return incident

    def _paginate(self, operation: str, **kwargs: Any) -> list[Incident]:
        """Every incident the pages hold; an item that is none is skipped with a warning (one foreign item
        must not hide every incident from a listing, a reconciliation or ``stats``)."""
        incidents: list[Incident] = []
        try:
            for page in self._client.get_paginator(operation).paginate(TableName=self.table_name, **kwargs):
                for item in page.get("Items", []):
                    if not _is_incident(item):
                        continue
                    try:
                        incidents.append(self._incident(item))
                    except StoreError as exc:
                        logger.warning("skipped: %s", exc)
        except _AWS_ERRORS as exc:
            raise translate_client_error(exc, f"{operation} on {self.table_name}") from exc
        return incidents
