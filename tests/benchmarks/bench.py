"""Benchmarks of pagerduty-bridge: cold start, per-notification cost, replay speed, memory, asset size.

Usage::

    make bench                                   # everything, with the default sample counts
    .venv/bin/python tests/benchmarks/bench.py --runs 5 --skip-asset      # quicker, without the pip build

Options: ``--runs N`` fresh processes per cold-start figure (default 9; invocations use N-2, replay
N-4, memory 3), ``--warm N`` warm invocations per process (default 40), ``--alarms N`` alarms replayed
(default 300), ``--skip-asset`` skips building the Lambda asset.

Every figure is a median over repeated fresh processes (one subprocess per sample), the kinds of sample
interleaved so background load hits them alike; the range is printed beside it. This is a report, not a
test: it prints PASS / FAIL per goal in a table at the end and always exits 0. Goals:

- cold import of the handler module ≤ 1.3 × (``import boto3`` + one DynamoDB client);
- our own CPU per warm notification ≤ 1 ms (outside the HTTP call and the store calls);
- ``replay`` ≤ 3 × the standard-library reference bridge (``tests/benchmarks/reference_bridge.py``);
- peak memory ≤ 90 MiB (so a 128 MB function fits);
- the Lambda asset ≤ 5 MB zipped.

How each figure is taken:

- Bytecode: the children run with ``PYTHONPYCACHEPREFIX`` under the cache folder (and without
  ``PYTHONDONTWRITEBYTECODE``), after one discarded warm-up, so imports load cached ``.pyc`` files as they
  do from a Lambda asset shipped with bytecode (and as the runtime's own boto3 does). Nothing is written
  into the work tree.
- Cold start: each child is a ``python -c`` program that measures from its first statement, so nothing
  this script imports is preloaded. "handler init" is what the Lambda does before its first request can
  be worked on: import the handler, build the runtime (which imports boto3 and creates the DynamoDB
  client), build the integration. The goal compares the cold import of the handler module with the
  floor, as stated; the stricter whole-init ratio (boto3 and its client inside it, so the floor plus our
  own share) is printed beside it.
- Invocations: ``lambda_handler`` on SNS ALARM notifications of distinct alarms (each really triggers),
  with the embedded SQLite store (a file, WAL) and the PagerDuty stand-in (``FakePagerDuty``) in another
  process over loopback HTTP, so its CPU is not ours. "CPU" is ``time.process_time()`` of the Lambda
  process: all of its CPU for the notification, libraries included (urllib3, sqlite3, logging).
  "Waiting" is wall minus CPU: the stand-in's answer, the loopback and SQLite's fsync. The time inside
  ``EventsClient.send_body`` (the HTTP call) and inside the store's ``get``/``put`` is measured apart;
  the goal is judged on what remains: our own code (parse, decide, render, log, metrics). For comparison, the same runs with the Lambda's own runtime and DynamoDB
  store against moto's server (in its own process) show what botocore adds; moto's server closes each
  connection, so those calls also pay a TCP connect that DynamoDB (keep-alive, but TLS) would not.
- Environment: children get a Lambda-like environment (``child_env``), not this machine's, so the
  figures do not depend on what this shell happens to export.
- Replay: ``pagerduty_bridge.cli.main(["replay", "--json", "--state", FILE, DIR])`` called in a fresh
  process (its import not timed), against ``reference_bridge.main`` on the same generated alarms, both
  writing their JSON lines to a file; the two outputs are compared line by line.
- Memory: ``ru_maxrss`` of a fresh process after init, the first and the warm invocations; the goal uses
  the process that also holds boto3 and a DynamoDB client, as the Lambda does (its runtime bootstrap
  is not included).
- Asset: built by the CDK stack's own bundler (``infra.bundling.LocalPipBundler`` with the stack's
  architecture and runtime version), pip's downloads cached under the cache folder, then zipped
  (deflate, level 9). Without network it is reported as SKIPPED.

The cache folder is ``$TMPDIR/pagerduty-bridge-bench`` (bytecode, pip downloads, the built asset).
``tests/benchmarks/storm.py`` reuses the stand-in and event helpers defined here.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
EVENTS_DIR = ROOT / "events"
CACHE_DIR = Path(tempfile.gettempdir()) / "pagerduty-bridge-bench"
RESULT_MARK = "BENCH-RESULT "
"""Children print their result as one JSON line after this mark (the literal is repeated in them)."""
ROUTING_KEY = "bench000000000000000000000000key"
REGION = "eu-west-1"
ACCOUNT = "123456789012"

GOAL_COLD_RATIO = 1.3
GOAL_WARM_CPU_MS = 1.0
GOAL_REPLAY_RATIO = 3.0
GOAL_MEMORY_MIB = 90.0
GOAL_ASSET_MB = 5.0


class BenchError(Exception):
    """A measurement could not be taken; the figure is reported as ERROR."""


# --- shared helpers (also used by storm.py) ------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured child: what a Python Lambda function gets (about 25 variables, dummy
    credentials, no AWS config files), the stack's function variables, and cached bytecode kept outside
    the work tree. Not this machine's environment: requests scans every variable on each request."""
    env = {
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "pagerduty_bridge.handler.lambda_handler",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
        "AWS_LAMBDA_FUNCTION_NAME": "pagerduty-bridge-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/pagerduty-bridge-bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/14/[$LATEST]bench",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "AWS_ACCESS_KEY_ID": "ASIABENCHMARKDUMMYID",
        "AWS_SECRET_ACCESS_KEY": "benchmark-dummy-secret",
        "AWS_SESSION_TOKEN": "benchmark-dummy-token",
        "AWS_CONFIG_FILE": str(CACHE_DIR / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(CACHE_DIR / "no-aws-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONPYCACHEPREFIX": str(CACHE_DIR / "pycache"),
        "INCIDENT_TABLE_NAME": "pagerduty-bridge-bench-incidents",
        "PAGERDUTY_INTEGRATION_KEY": ROUTING_KEY,
        "PAGERDUTY_RETRY_BUDGET_SECONDS": "30",
        "ENVIRONMENT": "production",
        "POWERTOOLS_SERVICE_NAME": "pagerduty-bridge",
        "POWERTOOLS_METRICS_NAMESPACE": "PagerDutyBridge",
    }
    env.update(extra)
    return env


def _load_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return loaded


def format_state_change_time(when: datetime) -> str:
    """CloudWatch's own format: ``2019-02-12T15:45:24.006+0000``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def alarm_event(name: str, state: str, when: datetime, *, old_state: str | None = None) -> dict[str, Any]:
    """A Lambda SNS event for one state change of an EC2 CPU alarm, from events/05 (ALARM) or 06 (OK)."""
    template = _load_event("05-ec2-cpu-alarm.json" if state == "ALARM" else "06-ec2-cpu-ok.json")
    record = template["Records"][0]
    message = json.loads(record["Sns"]["Message"])
    message.update(
        AlarmName=name,
        AlarmArn=f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        NewStateValue=state,
        OldStateValue=old_state or ("OK" if state == "ALARM" else "ALARM"),
        StateChangeTime=format_state_change_time(when),
    )
    sns = record["Sns"]
    sns["Message"] = json.dumps(message, ensure_ascii=False)
    sns["MessageId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{state}/{when.isoformat()}"))
    sns["Subject"] = f'{state}: "{name}" in EU (Ireland)'
    sns["Timestamp"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "057Z"
    return template


def distinct_alarms(prefix: str, count: int, start: datetime | None = None) -> list[dict[str, Any]]:
    """``count`` ALARM notifications of distinct alarms, a second apart."""
    start = start or datetime(2025, 1, 14, 15, 10, tzinfo=UTC)
    return [alarm_event(f"{prefix}-{i:04d}-cpu-high", "ALARM", start + timedelta(seconds=i)) for i in range(count)]


@contextlib.contextmanager
def stand_in(*, rate_limit: int | None = None, time_scale: float = 1.0) -> Iterator[str]:
    """Run ``FakePagerDuty`` in its own process (its CPU is not the bridge's); yields the events URL."""
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-stand-in", "--time-scale", str(time_scale)]
    if rate_limit is not None:
        command += ["--rate-limit", str(rate_limit)]
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, env=child_env()
        )
        try:
            assert process.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                ready = selector.select(timeout=60)
            url = process.stdout.readline().strip() if ready else ""
            if not url.startswith("http://127.0.0.1:"):
                errors.seek(0)
                raise BenchError(f"the PagerDuty stand-in did not start: {errors.read()[-500:]}")
            yield url
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def stand_in_control(url: str, name: str, *, post: bool = False) -> Any:
    """GET (or POST) one of the stand-in's control endpoints (``alerts``, ``requests``, ``reset``)."""
    base = url.removesuffix("/v2/enqueue")
    request = urllib.request.Request(
        f"{base}/_fake/{name}", data=b"" if post else None, method="POST" if post else "GET"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_dynamodb() -> Iterator[str]:
    """moto's DynamoDB server in its own process (its CPU is not the bridge's), with the incident table."""
    import boto3

    from pagerduty_bridge.store.dynamodb import create_table

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise BenchError("moto's server did not start") from None
                time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="ASIABENCHMARKDUMMYID",
            aws_secret_access_key="benchmark-dummy-secret",  # moto accepts any credentials
        )
        create_table(client, child_env()["INCIDENT_TABLE_NAME"])
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def serve_stand_in(rate_limit: int | None, time_scale: float) -> int:
    """The stand-in process: print the events URL, serve until standard input closes."""
    from pagerduty_bridge.devtools.fake_pagerduty import FakePagerDuty

    fake = FakePagerDuty(rate_limit=rate_limit, time_scale=time_scale).start()
    try:
        print(fake.url, flush=True)
        sys.stdin.read()
    finally:
        fake.stop()
    return 0


def machine_line() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    python = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.python_implementation(), platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{model}, {os.cpu_count()} cores ({usable} usable){memory}, {platform.system()} {platform.release()} "
        f"{platform.machine()}, {python}"
    )


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --- child programs: shipped by source to `python -c`, so they import nothing from this file -------------


def child_cold_start(argv: list[str]) -> None:
    """One cold start, measured from the child's first statement; prints cumulative (label, wall, cpu)."""
    import time

    marks = [("start", time.perf_counter(), time.process_time())]

    def mark(label: str) -> None:
        marks.append((label, time.perf_counter(), time.process_time()))

    what = argv[0]
    if what == "boto3":
        import boto3

        mark("import boto3")
        boto3.client("dynamodb", region_name="eu-west-1")
        mark("DynamoDB client")
    elif what in ("handler", "handler-init"):
        import pagerduty_bridge.handler as handler

        mark("import handler")
        if what == "handler-init":
            runtime = handler.get_runtime()
            mark("runtime")
            runtime.integration()
            mark("integration")
    elif what == "secrets":
        import boto3

        import pagerduty_bridge.handler  # noqa: F401

        boto3.client("dynamodb", region_name="eu-west-1")
        mark("before")
        from aws_lambda_powertools.utilities import parameters

        mark("import parameters")
        parameters.SecretsProvider()
        mark("Secrets Manager client")
    import json
    import resource

    result = {"marks": marks, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    print("BENCH-RESULT " + json.dumps(result))


def child_invoke(argv: list[str]) -> None:
    """The Lambda's init, first and warm invocations with the embedded store; timings split per invocation.

    argv: events file (JSON list, first invocation first), SQLite state file, and the store: ``-`` (SQLite),
    ``boto3`` (SQLite, and a DynamoDB client held as the Lambda does: the memory figure) or ``dynamodb``
    (the Lambda's own runtime, on the endpoint in AWS_ENDPOINT_URL_DYNAMODB). The handler builds its
    runtime itself at the first invocation (``get_runtime``); with SQLite, from a factory that puts the
    embedded store where the Lambda has DynamoDB. Everything else is the handler's own wiring.
    """
    import time

    w0, c0 = time.perf_counter(), time.process_time()
    import pagerduty_bridge.handler as handler

    clients = []
    if argv[2] == "boto3":
        import boto3

        clients.append(boto3.client("dynamodb", region_name="eu-west-1"))
    init = [time.perf_counter() - w0, time.process_time() - c0]

    import json
    import resource

    from pagerduty_bridge.events_api import EventsClient
    from pagerduty_bridge.runtime import Runtime
    from pagerduty_bridge.settings import Settings
    from pagerduty_bridge.store.sqlite import SQLiteIncidentStore

    spent = {"http": [0.0, 0.0], "store": [0.0, 0.0]}

    def timed(name, function):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            w, c = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name][0] += time.perf_counter() - w
                spent[name][1] += time.process_time() - c

        return wrapper

    lambda_runtime = handler.lambda_runtime

    def bench_runtime(*args, **kwargs):  # type: ignore[no-untyped-def]
        if argv[2] == "dynamodb":
            runtime = lambda_runtime(*args, **kwargs)
        else:
            runtime = Runtime(settings=Settings.from_env(), store=SQLiteIncidentStore(argv[1]))
        runtime.store.get = timed("store", runtime.store.get)
        runtime.store.put = timed("store", runtime.store.put)
        return runtime

    handler.lambda_runtime = bench_runtime
    EventsClient.send_body = timed("http", EventsClient.send_body)

    class Context:
        function_name = "pagerduty-bridge-bench"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:pagerduty-bridge-bench"
        memory_limit_in_mb = 256
        log_group_name = "/aws/lambda/pagerduty-bridge-bench"
        log_stream_name = "bench"
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self) -> int:
            return 60_000

    with open(argv[0], encoding="utf-8") as file:
        events = json.load(file)
    context = Context()
    rows = []
    for index, event in enumerate(events):
        spent["http"], spent["store"] = [0.0, 0.0], [0.0, 0.0]
        context.aws_request_id = f"bench-{index}"
        w, c = time.perf_counter(), time.process_time()
        answer = handler.lambda_handler(event, context)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        if answer != {"processed": 1, "failed": 0}:
            raise SystemExit(f"invocation {index} answered {answer}")
        rows.append([wall, cpu, *spent["http"], *spent["store"]])
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("BENCH-RESULT " + json.dumps({"init": init, "rows": rows, "maxrss_kb": maxrss, "clients": len(clients)}))


def child_replay(argv: list[str]) -> None:
    """One replay run: argv = bridge|reference, events folder, state file, output file, benchmarks folder."""
    import sys
    import time

    if argv[0] == "bridge":
        from pagerduty_bridge.cli import main

        args = ["replay", "--json", "--state", argv[2], argv[1]]
    else:
        sys.path.insert(0, argv[4])
        from reference_bridge import main  # type: ignore[no-redef]

        args = ["--state", argv[2], argv[1]]
    import json

    with open(argv[3], "w", encoding="utf-8") as out:
        w, c = time.perf_counter(), time.process_time()
        code = main(args, out=out)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
    print("BENCH-RESULT " + json.dumps({"code": code, "wall": wall, "cpu": cpu}))


def child_asset(argv: list[str]) -> None:
    """Build the Lambda asset into argv[0] with the CDK stack's own bundler and settings."""
    import json

    from infra.bridge_function import RUNTIME
    from infra.bundling import LocalPipBundler, python_version_of
    from infra.config import BridgeConfig

    architecture = BridgeConfig().architecture
    version = python_version_of(RUNTIME)
    LocalPipBundler(architecture=architecture, python_version=version).try_bundle(argv[0])
    print("BENCH-RESULT " + json.dumps({"architecture": architecture, "python_version": version}))


def run_child(
    function: Callable[[list[str]], None],
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> dict[str, Any]:
    """Run a child program in a fresh interpreter and return its result."""
    code = f"import sys\n{textwrap.dedent(inspect.getsource(function))}\n{function.__name__}(sys.argv[1:])\n"
    try:
        process = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or child_env(),
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{function.__name__} {' '.join(args)} timed out after {timeout:.0f} s") from None
    for line in reversed(process.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    detail = (process.stderr.strip() or process.stdout.strip())[-800:]
    raise BenchError(f"{function.__name__} {' '.join(args)} exited {process.returncode}: {detail}")


# --- statistics and printing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """Samples of one figure (milliseconds, MiB …) with its median and range."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Series:
        if not values:
            raise BenchError("no samples")
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, unit: str = "ms", digits: int = 1) -> str:
        low, high = min(self.values), max(self.values)
        return f"{self.median:.{digits}f} {unit} ({low:.{digits}f}–{high:.{digits}f}, n={len(self.values)})"


@dataclass
class Goal:
    name: str
    measured: str
    limit: str
    verdict: str


def ms(seconds: float) -> float:
    return seconds * 1000.0


def section(title: str) -> None:
    print(f"\n{title}")


def row(label: str, value: str) -> None:
    print(f"  {label:<64} {value}")


# --- 1. cold start ----------------------------------------------------------------------------------------


def phase(result: dict[str, Any], start: str, end: str) -> tuple[float, float]:
    """(wall ms, CPU ms) between two marks of a cold-start child."""
    marks = {label: (wall, cpu) for label, wall, cpu in result["marks"]}
    return ms(marks[end][0] - marks[start][0]), ms(marks[end][1] - marks[start][1])


def cold_start(runs: int, goals: list[Goal]) -> dict[str, list[dict[str, Any]]]:
    kinds = ("boto3", "handler", "handler-init", "secrets", "bare")
    for kind in kinds:  # warm-up: fills the bytecode cache and the page cache; discarded
        run_child(child_cold_start, [kind])
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            samples[kind].append(run_child(child_cold_start, [kind]))

    def series(kind: str, start: str, end: str, cpu: bool = False) -> Series:
        return Series.of([phase(s, start, end)[1 if cpu else 0] for s in samples[kind]])

    floor = series("boto3", "start", "DynamoDB client")
    floor_cpu = series("boto3", "start", "DynamoDB client", cpu=True)
    imported = series("handler", "start", "import handler")
    imported_cpu = series("handler", "start", "import handler", cpu=True)
    init = series("handler-init", "start", "integration")
    init_cpu = series("handler-init", "start", "integration", cpu=True)
    section(f"1. Cold start — wall time from the first statement of a fresh interpreter, n={runs} each")
    row("import boto3 + boto3.client('dynamodb')  [the floor]", floor.show())
    row("   of which import boto3", series("boto3", "start", "import boto3").show())
    row("   of which the DynamoDB client", series("boto3", "import boto3", "DynamoDB client").show())
    row("import pagerduty_bridge.handler  [goal]", imported.show())
    row("handler init: import + runtime + integration", init.show())
    row(
        "   of which runtime (imports boto3, creates the client)",
        series("handler-init", "import handler", "runtime").show(),
    )
    row(
        "   of which integration (settings, HTTP client objects)",
        series("handler-init", "runtime", "integration").show(),
    )
    row(
        "key from Secrets Manager: import parameters + SecretsProvider()",
        series("secrets", "before", "Secrets Manager client").show() + "  [not in the goal]",
    )
    import_ratio = imported.median / floor.median
    init_ratio = init.median / floor.median
    row("our own share of the init: handler init − floor", f"{init.median - floor.median:.0f} ms")
    row(
        "ratio import handler ÷ floor  [goal ≤ 1.3 ×]",
        f"{import_ratio:.2f} ×  (CPU: {imported_cpu.median / floor_cpu.median:.2f} ×)",
    )
    row(
        "ratio handler init ÷ floor  (stricter: boto3 and its client inside)",
        f"{init_ratio:.2f} ×  (CPU: {init_cpu.median / floor_cpu.median:.2f} ×)",
    )
    goals.append(
        Goal(
            "cold import of the handler ÷ (import boto3 + DynamoDB client)",
            f"{import_ratio:.2f} × ({imported.median:.0f} / {floor.median:.0f} ms)",
            f"≤ {GOAL_COLD_RATIO} ×",
            "PASS" if import_ratio <= GOAL_COLD_RATIO else "FAIL",
        )
    )
    return samples


# --- 2. invocations ---------------------------------------------------------------------------------------


def invoke_runs(runs: int, warm: int, work: Path, url: str, store: str, **env: str) -> list[dict[str, Any]]:
    """``runs`` fresh Lambda-like processes (after one discarded warm-up), each checked on the stand-in."""
    results = []
    for run in range(runs + 1):
        tag = f"bench-{store.strip('-') or 'sqlite'}-{run}-{uuid.uuid4().hex[:6]}"
        events_file = work / f"{tag}.json"
        events_file.write_text(json.dumps(distinct_alarms(tag, warm + 1)), encoding="utf-8")
        stand_in_control(url, "reset", post=True)
        result = run_child(
            child_invoke,
            [str(events_file), str(work / f"{tag}.db"), store],
            env=child_env(PAGERDUTY_EVENTS_URL=url, **env),
        )
        accepted = [r for r in stand_in_control(url, "requests")["requests"] if r["status"] == 202]
        if len(accepted) != warm + 1:
            raise BenchError(f"the stand-in accepted {len(accepted)} events, expected {warm + 1}")
        if run:
            results.append(result)
    return results


def invocations(runs: int, warm: int, work: Path, url: str, goals: list[Goal]) -> list[dict[str, Any]]:
    results = invoke_runs(runs, warm, work, url, "-")

    def first(column: int) -> Series:
        return Series.of([ms(r["rows"][0][column]) for r in results])

    def warm_median(column: int) -> Series:
        return Series.of([statistics.median(ms(x[column]) for x in r["rows"][1:]) for r in results])

    def warm_rest() -> Series:  # CPU outside the HTTP client and the store
        return Series.of([statistics.median(ms(x[1] - x[3] - x[5]) for x in r["rows"][1:]) for r in results])

    def warm_wait() -> Series:
        return Series.of([statistics.median(ms(x[0] - x[1]) for x in r["rows"][1:]) for r in results])

    init = Series.of([ms(r["init"][0]) for r in results])
    section(
        f"2. Invocations — lambda_handler, ALARM of a new alarm each time, SQLite store, stand-in over loopback "
        f"HTTP; n={runs} processes, {warm} warm invocations each (median per process, then across processes)"
    )
    row("init: import the handler module", init.show())
    row("first invocation (builds the runtime, opens the connection): wall", first(0).show())
    row("   CPU (our process)", first(1).show())
    row("   waiting on I/O (wall − CPU)", Series.of([ms(r["rows"][0][0] - r["rows"][0][1]) for r in results]).show())
    row("   in the HTTP call (connect + request + answer): wall / CPU", f"{first(2).show()} / {first(3).median:.2f} ms")
    row("   in the store (SQLite get/put): wall / CPU", f"{first(4).show()} / {first(5).median:.2f} ms")
    row("first invocation including init", Series.of([ms(r["init"][0] + r["rows"][0][0]) for r in results]).show())
    warm_cpu = warm_median(1)
    row("warm invocation: wall", warm_median(0).show(digits=2))
    own_cpu = warm_rest()
    row("   CPU (our process, libraries included)", warm_cpu.show(digits=2))
    row("      of which in the HTTP client (urllib3, JSON body)", warm_median(3).show(digits=2))
    row("      of which in the store (sqlite3, JSON, model validation)", warm_median(5).show(digits=2))
    row("      of which our own code (parse, decide, render, log, metrics)  [goal ≤ 1 ms]", own_cpu.show(digits=2))
    row("   waiting on I/O (wall − CPU)", warm_wait().show(digits=2))
    row("   wall in the HTTP call", warm_median(2).show(digits=2))
    row("   wall in the store", warm_median(4).show(digits=2))
    goals.append(
        Goal(
            "our own CPU per warm notification (outside the HTTP and store calls)",
            f"{own_cpu.median:.2f} ms (all CPU {warm_cpu.median:.2f} ms)",
            f"≤ {GOAL_WARM_CPU_MS:g} ms",
            verdict(own_cpu.median, GOAL_WARM_CPU_MS),
        )
    )
    try:
        with moto_dynamodb() as endpoint:
            lambda_like = invoke_runs(3, warm, work, url, "dynamodb", AWS_ENDPOINT_URL_DYNAMODB=endpoint)
    except (BenchError, OSError) as exc:
        row("with the DynamoDB store", f"not measured ({exc})")
        return results

    def dynamo(column: int) -> Series:
        return Series.of([statistics.median(ms(x[column]) for x in r["rows"][1:]) for r in lambda_like])

    print(
        "  For comparison, the Lambda's own runtime with its DynamoDB store (moto's server in its own process, "
        "which closes every connection: each call also pays a TCP connect; n=3):"
    )
    row(
        "   first invocation including init (imports boto3, creates the client)",
        Series.of([ms(r["init"][0] + r["rows"][0][0]) for r in lambda_like]).show(),
    )
    row("   warm invocation: CPU (our process)", dynamo(1).show(digits=2))
    row("      of which in the store (botocore: sign, serialise, parse)", dynamo(5).show(digits=2))
    row("      of which in the HTTP client to PagerDuty", dynamo(3).show(digits=2))
    return results


# --- 3. replay --------------------------------------------------------------------------------------------


def replay(runs: int, alarms: int, work: Path, goals: list[Goal]) -> None:
    folder = work / "replay-events"
    folder.mkdir()
    for index, event in enumerate(distinct_alarms("bench-replay", alarms)):
        (folder / f"alarm-{index:04d}.json").write_text(json.dumps(event, ensure_ascii=False), encoding="utf-8")
    env = child_env()
    for name in ("PAGERDUTY_INTEGRATION_KEY", "INCIDENT_TABLE_NAME"):  # as a local user runs replay: no key, no table
        del env[name]
    timings: dict[str, list[dict[str, Any]]] = {"bridge": [], "reference": []}
    for run in range(runs + 1):  # the first round is a discarded warm-up
        for kind, kept in timings.items():
            out = work / f"replay-{kind}.jsonl"
            result = run_child(
                child_replay,
                [kind, str(folder), str(work / f"replay-{kind}-{run}.db"), str(out), str(BENCH_DIR)],
                env=env,
            )
            if result["code"] != 0:
                raise BenchError(f"{kind} replay exited {result['code']}")
            if run:
                kept.append(result)
    ours = [json.loads(line) for line in (work / "replay-bridge.jsonl").read_text(encoding="utf-8").splitlines()]
    theirs = [json.loads(line) for line in (work / "replay-reference.jsonl").read_text(encoding="utf-8").splitlines()]
    same = sum(a == b for a, b in zip(ours, theirs, strict=False))

    def per_notification(kind: str, key: str) -> Series:
        return Series.of([ms(r[key]) / alarms for r in timings[kind]])

    bridge, reference = per_notification("bridge", "wall"), per_notification("reference", "wall")
    ratio = bridge.median / reference.median
    section(
        f"4. Replay — dry run, embedded store, {alarms} distinct alarms, cli.main in a fresh process per run "
        f"(import not timed); n={runs}"
    )
    row("pagerduty-bridge replay --json: per notification", bridge.show(digits=3))
    row(
        "   notifications per second",
        f"{1000 / bridge.median:.0f} /s  (CPU {per_notification('bridge', 'cpu').median:.3f} ms each)",
    )
    row("reference_bridge.py (standard library): per notification", reference.show(digits=3))
    row(
        "   notifications per second",
        f"{1000 / reference.median:.0f} /s  (CPU {per_notification('reference', 'cpu').median:.3f} ms each)",
    )
    cpu_ratio = per_notification("bridge", "cpu").median / per_notification("reference", "cpu").median
    row("ratio replay ÷ reference  [goal ≤ 3 ×]", f"{ratio:.2f} ×  (CPU: {cpu_ratio:.2f} ×)")
    row("outputs identical line for line", f"{same}/{len(ours)} (reference printed {len(theirs)})")
    verdict = "PASS" if ratio <= GOAL_REPLAY_RATIO else "FAIL"
    if same != len(ours) or len(ours) != len(theirs) or len(ours) != alarms:
        verdict = "FAIL (outputs differ: the reference no longer does the same work)"
    goals.append(Goal("replay ÷ standard-library reference", f"{ratio:.2f} ×", f"≤ {GOAL_REPLAY_RATIO:g} ×", verdict))


# --- 4. memory --------------------------------------------------------------------------------------------


def memory(
    cold: dict[str, list[dict[str, Any]]],
    invoked: list[dict[str, Any]],
    warm: int,
    work: Path,
    url: str,
    goals: list[Goal],
) -> None:
    with_client = []
    for run in range(3):
        events = distinct_alarms(f"bench-memory-{run}-{uuid.uuid4().hex[:6]}", warm + 1)
        events_file = work / f"memory-{run}.json"
        events_file.write_text(json.dumps(events), encoding="utf-8")
        with_client.append(
            run_child(
                child_invoke,
                [str(events_file), str(work / f"memory-{run}.db"), "boto3"],
                env=child_env(PAGERDUTY_EVENTS_URL=url),
            )
        )

    def mib(samples: list[dict[str, Any]]) -> Series:
        return Series.of([s["maxrss_kb"] / 1024 for s in samples])

    lambda_like = mib(with_client)
    section("3. Peak memory — ru_maxrss of a fresh process (MiB)")
    row("the interpreter alone", mib(cold["bare"]).show("MiB"))
    row("import boto3 + DynamoDB client", mib(cold["boto3"]).show("MiB"))
    row("import handler", mib(cold["handler"]).show("MiB"))
    row(f"handler path: init + {warm + 1} invocations, embedded store", mib(invoked).show("MiB"))
    row("the same + boto3 + DynamoDB client, as in the Lambda  [goal]", lambda_like.show("MiB"))
    goals.append(
        Goal(
            "peak memory (handler path + boto3 client)",
            f"{lambda_like.median:.1f} MiB",
            f"≤ {GOAL_MEMORY_MIB:g} MiB",
            "PASS" if lambda_like.median <= GOAL_MEMORY_MIB else "FAIL",
        )
    )


# --- 5. asset ---------------------------------------------------------------------------------------------


def asset(goals: list[Goal]) -> None:
    section("5. Lambda asset — built by the stack's bundler, zipped (deflate, level 9)")
    out = CACHE_DIR / "asset"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    env.update(PIP_CACHE_DIR=str(CACHE_DIR / "pip"), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    try:
        built = run_child(child_asset, [str(out)], env=env, timeout=900)
    except BenchError as exc:
        text = str(exc)
        network = any(
            word in text
            for word in ("NewConnectionError", "Temporary failure", "No matching distribution", "ConnectTimeout")
        )
        reason = "no network to PyPI" if network else text.splitlines()[-1][:160] if text else "build failed"
        row("zipped size", f"SKIPPED ({reason})")
        goals.append(Goal("Lambda asset, zipped", "-", f"≤ {GOAL_ASSET_MB:g} MB", f"SKIPPED ({reason})"))
        return
    build_seconds = time.perf_counter() - started
    files, raw, size, by_top = zip_folder(out, CACHE_DIR / "asset.zip")
    pyc = sum(1 for p in files if p.suffix == ".pyc")
    largest = sorted(by_top.items(), key=lambda item: item[1], reverse=True)[:6]
    version = built["python_version"]
    row(
        "built for",
        f"{built['architecture']}, Python {version} ({build_seconds:.0f} s; "
        + ("with .pyc)" if pyc else f"without .pyc: python{version} is not on this machine)"),
    )
    row("unzipped", f"{raw / 1e6:.1f} MB in {len(files)} files")
    row("zipped  [goal ≤ 5 MB]", f"{size / 1e6:.2f} MB ({size / 2**20:.2f} MiB)")
    row("largest (zipped MB)", ", ".join(f"{name} {n / 1e6:.2f}" for name, n in largest))
    goals.append(
        Goal(
            "Lambda asset, zipped",
            f"{size / 1e6:.2f} MB",
            f"≤ {GOAL_ASSET_MB:g} MB",
            verdict(size / 1e6, GOAL_ASSET_MB),
        )
    )
    if pyc:
        return
    # Where python<version> is installed (a CI runner, say) the stack ships .pyc too: estimate that asset
    # with the nearest interpreter here, bytecode being about the same size from one version to the next.
    nearest = nearest_python()
    if nearest is None:
        row("with .pyc", "n/a (no CPython 3.11+ interpreter found to estimate it)")
        return
    interpreter, found = nearest
    copy = CACHE_DIR / "asset-pyc"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(out, copy)
    compiled = subprocess.run(
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(copy)],
        check=False,
        capture_output=True,
        text=True,
    )
    if not any(copy.rglob("*.pyc")):
        row("with .pyc", f"n/a (compileall with {interpreter} wrote nothing: {compiled.stderr.strip()[-160:]})")
        return
    _, _, with_pyc, _ = zip_folder(copy, CACHE_DIR / "asset-pyc.zip")
    label = f"with .pyc, as shipped where python{version} exists (estimate: CPython {found} bytecode)"
    row(label, f"{with_pyc / 1e6:.2f} MB")
    goals.append(
        Goal(
            f"Lambda asset with .pyc, zipped (estimate, {found} bytecode)",
            f"{with_pyc / 1e6:.2f} MB",
            f"≤ {GOAL_ASSET_MB:g} MB",
            verdict(with_pyc / 1e6, GOAL_ASSET_MB),
        )
    )


def zip_folder(folder: Path, archive: Path) -> tuple[list[Path], int, int, dict[str, int]]:
    """Zip ``folder`` (deflate, level 9): its files, their total size, the archive's size, zipped bytes by top entry."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    by_top: dict[str, int] = {}
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        for path in files:
            zipped.write(path, path.relative_to(folder).as_posix())
        for info in zipped.infolist():
            top = info.filename.split("/", 1)[0]
            by_top[top] = by_top.get(top, 0) + info.compress_size
    return files, sum(p.stat().st_size for p in files), archive.stat().st_size, by_top


def nearest_python() -> tuple[str, str] | None:
    """The newest working CPython 3.11+ interpreter under pyenv or on PATH, and its version."""
    candidates: list[str] = []
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [
        str(p) for p in pyenv.glob("versions/3.*/bin/python3.*") if p.name.removeprefix("python3.").isdigit()
    ]
    candidates += [path for minor in range(11, 20) if (path := shutil.which(f"python3.{minor}"))]
    found: dict[tuple[int, int], str] = {}
    for candidate in candidates:
        try:
            answer = subprocess.run(
                [candidate, "-c", "import sys; print(*sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        parts = answer.stdout.split()
        if answer.returncode == 0 and len(parts) == 2 and parts[0] == "3" and int(parts[1]) >= 11:
            found.setdefault((3, int(parts[1])), candidate)
    if not found:
        return None
    best = max(found)
    return found[best], f"{best[0]}.{best[1]}"


def verdict(measured: float, limit: float) -> str:
    return "PASS" if measured <= limit else "FAIL"


# --- main -------------------------------------------------------------------------------------------------


def guarded(name: str, goals: list[Goal], limit: str, step: Callable[[], Any]) -> Any:
    """Run one section; a failure to measure is reported (ERROR) rather than stopping the report."""
    try:
        return step()
    except (BenchError, OSError, ValueError, KeyError) as exc:
        print(f"  ERROR: {exc}")
        goals.append(Goal(name, "-", limit, f"ERROR ({type(exc).__name__})"))
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per cold-start figure (default 9)")
    parser.add_argument("--warm", type=int, default=40, help="warm invocations per process (default 40)")
    parser.add_argument("--alarms", type=int, default=300, help="alarms replayed (default 300)")
    parser.add_argument("--skip-asset", action="store_true", help="do not build the Lambda asset")
    parser.add_argument("--serve-stand-in", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate-limit", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_stand_in:
        return serve_stand_in(args.rate_limit, args.time_scale)
    runs = max(3, args.runs)
    started = time.perf_counter()
    print("pagerduty-bridge benchmarks — medians over fresh processes (range and sample count in brackets)")
    print(f"machine: {machine_line()}")
    print(f"load average at start: {load_average()} (1/5/15 min; this machine is shared, figures move with it)")
    goals: list[Goal] = []
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pagerduty-bridge-bench-") as tmp:
        work = Path(tmp)
        cold = guarded("cold start", goals, f"≤ {GOAL_COLD_RATIO} ×", lambda: cold_start(runs, goals))
        invoked = None
        try:
            with stand_in() as url:
                invoked = guarded(
                    "our own CPU per warm notification",
                    goals,
                    f"≤ {GOAL_WARM_CPU_MS:g} ms",
                    lambda: invocations(max(3, runs - 2), args.warm, work, url, goals),
                )
                if cold and invoked:
                    guarded(
                        "peak memory",
                        goals,
                        f"≤ {GOAL_MEMORY_MIB:g} MiB",
                        lambda: memory(cold, invoked, args.warm, work, url, goals),
                    )
        except BenchError as exc:
            print(f"  ERROR: {exc}")
            goals.append(Goal("our own CPU per warm notification", "-", f"≤ {GOAL_WARM_CPU_MS:g} ms", "ERROR"))
        if invoked is None or cold is None:
            goals.append(Goal("peak memory", "-", f"≤ {GOAL_MEMORY_MIB:g} MiB", "ERROR (needs sections 1 and 2)"))
        guarded(
            "replay ÷ reference",
            goals,
            f"≤ {GOAL_REPLAY_RATIO:g} ×",
            lambda: replay(max(3, runs - 4), args.alarms, work, goals),
        )
    if args.skip_asset:
        section("5. Lambda asset")
        row("zipped size", "SKIPPED (--skip-asset)")
        goals.append(Goal("Lambda asset, zipped", "-", f"≤ {GOAL_ASSET_MB:g} MB", "SKIPPED (--skip-asset)"))
    else:
        guarded("Lambda asset, zipped", goals, f"≤ {GOAL_ASSET_MB:g} MB", lambda: asset(goals))

    section("Goals")
    width = max(len(g.name) for g in goals)
    print(f"  {'goal':<{width}}  {'measured':<28} {'limit':<12} result")
    for goal in goals:
        print(f"  {goal.name:<{width}}  {goal.measured:<28} {goal.limit:<12} {goal.verdict}")
    failed = [g for g in goals if not g.verdict.startswith(("PASS", "SKIPPED"))]
    print(
        f"\n{len(goals) - len(failed)} of {len(goals)} goals met or skipped"
        + (f"; NOT MET: {', '.join(g.name for g in failed)}" if failed else "")
        + f". Took {time.perf_counter() - started:.0f} s; load average at end: {load_average()}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
