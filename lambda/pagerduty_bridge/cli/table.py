"""``table create``: the incident table exactly as the stack makes it, to try ``--table`` locally.

The table comes from ``store.dynamodb.create_table`` — the key schema, the sparse index of open
incidents and silences, TTL and on-demand billing that the CDK stack builds from the same constants.
Running it again is harmless: a table that already has the right key schema is kept (exit 0, with a
note); one with another key schema is an error (exit 2), never replaced. Point-in-time recovery, which
the stack turns on for the real table, is left off: it is billed, and a table to try things on needs no
backups.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

from pagerduty_bridge.cli.common import (
    EXIT_OK,
    CliError,
    Streams,
    add_aws_options,
    add_json,
    aws_client,
    json_line,
    say,
    table_name,
)

ACTIVE_WAIT: Final = {"Delay": 1, "MaxAttempts": 60}
"""Up to a minute for the table to become active (seconds on DynamoDB, at once on moto)."""


def register(commands: Any) -> None:
    table = commands.add_parser("table", help="the DynamoDB incident table: create one to try --table locally")
    actions = table.add_subparsers(dest="table_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create the incident table as the stack does; waits until it is active",
        description="Create the incident table exactly as the stack does (key schema, index of open "
        "incidents, TTL, on-demand billing) and wait until it is active. Idempotent: an existing table "
        "with the right key schema is kept (exit 0). Exit 2 when it cannot be made, or a table of that "
        "name has another key schema.",
    )
    create.add_argument("--table", required=True, type=table_name, metavar="NAME", help="the table's name (required)")
    add_json(create, '{"table", "status", "created": true|false, "arn", "time_to_live"}')
    add_aws_options(create)
    create.set_defaults(func=create_table_command)


def expected_keys() -> dict[str, Any]:
    """The key schema and index the bridge's store reads and writes (``store.dynamodb``)."""
    from pagerduty_bridge.store.dynamodb import ACTIVE_INDEX, TABLE_KEY_SCHEMA

    return {"KeySchema": TABLE_KEY_SCHEMA, "Index": {ACTIVE_INDEX["IndexName"]: ACTIVE_INDEX["KeySchema"]}}


def key_problems(description: dict[str, Any]) -> list[str]:
    """How an existing table differs from what the store needs (empty when it will do)."""
    wanted = expected_keys()
    problems = []
    if description.get("KeySchema") != wanted["KeySchema"]:
        problems.append(f"its key schema is {description.get('KeySchema')}, not {wanted['KeySchema']}")
    indexes = {index["IndexName"]: index["KeySchema"] for index in description.get("GlobalSecondaryIndexes", [])}
    for name, schema in wanted["Index"].items():
        if indexes.get(name) != schema:
            problems.append(f"it has no index {name} keyed {schema}")
    return problems


def create_table_command(args: argparse.Namespace, streams: Streams) -> int:
    from botocore.exceptions import ClientError

    from pagerduty_bridge.store.dynamodb import create_table

    client = aws_client(args, "dynamodb")
    created = True
    try:
        create_table(client, args.table)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        created = False
        client.get_waiter("table_exists").wait(TableName=args.table, WaiterConfig=ACTIVE_WAIT)
    description = client.describe_table(TableName=args.table)["Table"]
    problems = key_problems(description)
    if problems:
        raise CliError(f"table {args.table} exists but is not an incident table: {'; '.join(problems)}")
    ttl = client.describe_time_to_live(TableName=args.table).get("TimeToLiveDescription", {})
    shown = {
        "table": args.table,
        "status": description.get("TableStatus"),
        "created": created,
        "arn": description.get("TableArn"),
        "time_to_live": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None,
    }
    if args.json:
        print(json_line(shown), file=streams.out)
    elif created:
        say(streams, f"created table {args.table} ({shown['status']}): try it with --table {args.table}")
    else:
        say(streams, f"table {args.table} already exists with the incident key schema ({shown['status']}): kept")
    return EXIT_OK
