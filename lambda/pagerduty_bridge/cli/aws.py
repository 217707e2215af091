"""Commands that talk to AWS with the operator's credentials: ``publish-test-alarm``, ``reconcile``,
``redrive``. AWS failures end in one line and exit 2 (``cli.app``); long runs say how far they are on
stderr."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from pagerduty_bridge.cli.common import (
    EXIT_FINDING,
    EXIT_OK,
    Streams,
    Wired,
    add_aws_options,
    add_delivery_options,
    add_json,
    add_store_options,
    aws_client,
    checked_topic_arn,
    json_line,
    print_table,
    say,
    warn,
    whole_number,
    wire,
)
from pagerduty_bridge.errors import BridgeError
from pagerduty_bridge.reconcile import AlarmReader, Reconciled, Reconciliation, insufficient_data_clears
from pagerduty_bridge.redrive import RedriveReport, redrive
from pagerduty_bridge.sample_alarms import TEST_ALARM_NAME, test_alarm_message

PROGRESS_EVERY: Final = 50
"""Long runs say how far they are every this many items (on stderr; stdout stays the result)."""
T = TypeVar("T")


def register(commands: Any) -> None:
    publish = commands.add_parser("publish-test-alarm", help="publish a realistic alarm message to a topic")
    publish.add_argument("--topic-arn", required=True, metavar="ARN", help="the bridge's alarm topic (required)")
    publish.add_argument(
        "--alarm-state", choices=["ALARM", "OK"], default="ALARM", help="the state to publish (default: ALARM)"
    )
    publish.add_argument(
        "--alarm-name", default=TEST_ALARM_NAME, help=f"the test alarm's name (default: {TEST_ALARM_NAME})"
    )
    add_json(publish, '{"message_id", "topic_arn", "alarm_name", "alarm_state"}')
    add_aws_options(publish)
    publish.set_defaults(func=publish_test_alarm)

    reconcile = commands.add_parser(
        "reconcile",
        help="resolve open incidents whose alarm is OK or gone (a dry run unless --send)",
        description="Resolve open incidents whose alarm is OK or gone, confirm deliveries whose outcome was "
        "unknown, and page alarms whose silence is over — what the scheduled run does. A dry run unless "
        f"--send. Progress on stderr every {PROGRESS_EVERY} incidents. Exit 0 ok, 1 a send failed, 2 an AWS "
        "or store error.",
    )
    add_json(reconcile, "an array of results")
    add_delivery_options(reconcile)
    add_store_options(reconcile)
    reconcile.set_defaults(func=reconcile_command)

    queue = commands.add_parser(
        "redrive",
        help="re-process a dead-letter or on-failure queue (a dry run unless --send)",
        description="Re-process the messages of a dead-letter or on-failure queue through the handler's own "
        "path; with --send each fully handled message is deleted. A dry run sends nothing, deletes nothing, "
        "changes no store, and leaves every message in the queue visible again. Progress on stderr every "
        f"{PROGRESS_EVERY} messages. Exit 0 all redriven, 1 some kept, 2 an AWS or store error.",
    )
    queue.add_argument("--queue-url", required=True, metavar="URL", help="the queue, a stack output (required)")
    queue.add_argument(
        "--max-messages",
        type=whole_number(1, "reads no message: give 1 or more"),
        default=1000,
        metavar="N",
        help="at most N, 1 or more (default: 1000)",
    )
    add_json(queue, '{"received", "redriven", "schedules", "kept": [{"message_id", "reason"}]}')
    add_delivery_options(queue)
    add_store_options(queue, creates=True)
    queue.set_defaults(func=redrive_command)


def every(count: int, done: Callable[[T], int], report: Callable[[T], None]) -> Callable[[T], None]:
    """A progress callback calling ``report(state)`` once each time ``done(state)`` passes another
    multiple of ``count`` (however the items arrive: one by one, or in batches)."""
    passed = 0

    def progress(state: T) -> None:
        nonlocal passed
        if done(state) // count > passed:
            passed = done(state) // count
            report(state)

    return progress


class ProgressResults(list[Reconciled]):
    """A reconciliation's results that say how far the run is as they grow (``Reconciliation`` appends
    each result as it is decided)."""

    def __init__(self, progress: Callable[[list[Reconciled]], None]) -> None:
        super().__init__()
        self._progress = progress

    def append(self, result: Reconciled, /) -> None:
        super().append(result)
        self._progress(self)


def publish_test_alarm(args: argparse.Namespace, streams: Streams) -> int:
    checked_topic_arn(args.topic_arn)
    region = args.topic_arn.split(":")[3]
    message = test_alarm_message(args.alarm_name, args.alarm_state, args.topic_arn, datetime.now(UTC))
    subject = f'{args.alarm_state}: "{args.alarm_name}" in {message["Region"]}'[:100]
    sns = aws_client(args, "sns", region=region)
    response = sns.publish(TopicArn=args.topic_arn, Subject=subject, Message=json.dumps(message))
    published = {
        "message_id": response["MessageId"],
        "topic_arn": args.topic_arn,
        "alarm_name": args.alarm_name,
        "alarm_state": args.alarm_state,
    }
    if args.json:
        print(json_line(published), file=streams.out)
    else:
        say(
            streams,
            f"published {args.alarm_state} for {args.alarm_name} to {args.topic_arn} (message {response['MessageId']})",
        )
    return EXIT_OK


def own_account(args: argparse.Namespace) -> str | None:
    """The account the operator's credentials belong to: alarms elsewhere need a role to be read."""
    identity = aws_client(args, "sts").get_caller_identity()
    return str(identity.get("Account")) or None


def own_region() -> str:
    """The operator's region: CloudWatch is regional, and without one STS would go to its global endpoint."""
    import boto3
    from botocore.exceptions import NoRegionError

    region = boto3.session.Session().region_name
    if not region:
        raise NoRegionError
    return str(region)


def alarm_reader(args: argparse.Namespace, wired: Wired) -> AlarmReader:
    from pagerduty_bridge.runtime import cloudwatch_client

    def clients(region: str | None, role_arn: str | None) -> Any:
        return cloudwatch_client(region, role_arn, endpoint_url=getattr(args, "endpoint_url", None))

    region = own_region()
    return AlarmReader(
        clients, own_account=own_account(args), own_region=region, role_arns=wired.settings.reconcile_role_arns
    )


def run_reconciliation(args: argparse.Namespace, wired: Wired, streams: Streams) -> list[Reconciled]:
    def report(results: list[Reconciled]) -> None:
        failed = sum(result.action == "failed" for result in results)
        warn(streams, f"… {len(results)} incidents reconciled ({failed} failed)")

    results = ProgressResults(every(PROGRESS_EVERY, len, report))
    run = Reconciliation(
        wired.delivery,
        alarm_reader(args, wired),
        wired.delivery.clock,
        silences=wired.notifications.silences,
        retry_budget_seconds=wired.settings.retry_budget_seconds,
        results=results,
        insufficient_data_clears=missing_data_clears(wired),
    )
    return list(run.run())


def missing_data_clears(wired: Wired) -> bool:
    """Whether missing data resolves every alarm, by the settings and the rules; rules that cannot be
    read (reconcile needs none otherwise) say nothing for sure: no."""
    from pagerduty_bridge.rules import load_rules

    try:
        rules = load_rules(wired.settings)
    except (BridgeError, ValueError, OSError):
        return False
    return insufficient_data_clears(wired.settings.insufficient_data_action, rules.all_rules)


def reconcile_command(args: argparse.Namespace, streams: Streams) -> int:
    wired = wire(args, rules=False)
    results = run_reconciliation(args, wired, streams)
    rows = [asdict(r) for r in results]
    if args.json:
        print(json_line(rows), file=streams.out)
    else:
        print_table(rows, ("dedup_key", "alarm_state", "action", "reason"), streams)
        if not args.send:
            say(streams, "(dry run: nothing sent, the store is unchanged)")
    return EXIT_FINDING if any(r.action == "failed" for r in results) else EXIT_OK


class PeekingQueue:
    """An SQS client for a dry run: it reads messages and gives them back.

    Receiving a message hides it for the visibility timeout; a dry run must not hide dead letters from
    the ``--send`` run after it, so ``release`` makes every message it received visible again. It never
    deletes."""

    RELEASE_BATCH: Final = 10
    """``ChangeMessageVisibilityBatch`` takes at most ten entries."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handles: list[str] = []

    def receive_message(self, **request: Any) -> Any:
        response = self._sqs.receive_message(**request)
        self._handles.extend(m["ReceiptHandle"] for m in response.get("Messages", []))
        return response

    def change_message_visibility(self, **request: Any) -> None:
        self._sqs.change_message_visibility(**request)

    def delete_message(self, **request: Any) -> None:
        raise AssertionError("a dry run deletes nothing")

    def release(self) -> None:
        handles, self._handles = self._handles, []
        for start in range(0, len(handles), self.RELEASE_BATCH):
            batch = handles[start : start + self.RELEASE_BATCH]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(batch)],
            )


def redrive_command(args: argparse.Namespace, streams: Streams) -> int:
    wired = wire(args)
    sqs = aws_client(args, "sqs")
    queue = sqs if args.send else PeekingQueue(sqs, args.queue_url)

    def run_schedule() -> str | None:
        try:
            failed = [r for r in run_reconciliation(args, wired, streams) if r.action == "failed"]
        except BridgeError as exc:
            return f"the reconciliation run failed: {exc}"
        return f"the reconciliation run failed for {len(failed)} incident(s)" if failed else None

    def report(so_far: RedriveReport) -> None:
        warn(streams, f"… {so_far.received} received, {so_far.redriven} redriven, {len(so_far.kept)} kept")

    try:
        report_ = redrive(
            queue,
            args.queue_url,
            wired.notifications,
            run_schedule=run_schedule,
            max_messages=args.max_messages,
            delete=args.send,
            progress=every(PROGRESS_EVERY, lambda so_far: so_far.received, report),
        )
    finally:
        if isinstance(queue, PeekingQueue):
            queue.release()
    show_redrive(args, streams, report_)
    return EXIT_OK if not report_.kept else EXIT_FINDING


def show_redrive(args: argparse.Namespace, streams: Streams, report: RedriveReport) -> None:
    if args.json:
        print(json_line(report.as_dict()), file=streams.out)
        return
    say(
        streams,
        f"received {report.received}, redriven {report.redriven}, kept {len(report.kept)}"
        f"{'' if args.send else ' (dry run: nothing sent, nothing deleted, store unchanged, messages visible again)'}",
    )
    for message_id, why in report.kept:
        warn(streams, f"kept {message_id}: {why}")
