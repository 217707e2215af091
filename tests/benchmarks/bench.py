"""What a page costs: pagerduty-bridge side by side with a minimal reference bridge, in one run.

Usage::

    make bench                                          # everything (a minute or two)
    .venv/bin/python tests/benchmarks/bench.py --pairs 7 --skip-asset --skip-storm     # quicker

The reference (``reference_bridge.py``: standard library + boto3, one conditional PutItem, one POST with
urllib, one UpdateItem) does the same work against the same moto server (``python -m moto.server``, its
own process) and the same PagerDuty stand-in (its own process), with the same SNS alarm event. The
figures, ratios first (absolute times are context: this machine is shared and noisy):

1. cold page: from process start to its exit after PagerDuty's 202 for one ALARM (alarms are rare, so
   most pages land on a cold container), wall time measured by this process; the median of the ratios
   of interleaved pairs (project, reference), so load moves both sides of a pair alike;
2. warm CPU per notification: 40 ALARMs of distinct alarms in one process after a first one
   (``time.process_time``), median of interleaved pairs' ratios;
3. our own CPU per warm notification: the process's CPU outside boto3 and the network — botocore's
   API calls, boto3's DynamoDB type (de)serializer and the HTTP client's requests (timed around
   ``BaseClient._make_api_call``, ``TypeSerializer.serialize`` …, the bridge's ``transport.exchange``;
   urllib's ``urlopen`` for the reference), each shown apart;
4. peak RSS (``ru_maxrss``) after the 41 invocations;
5. the storm (``storm.py``): PagerDuty requests per delivered event, lost, duplicated, drain time.

Besides: ``python -X importtime`` per step of the cold path (our modules, Powertools, boto3); a cProfile
of 200 warm notifications grouped by what our own CPU does (logging and EMF, parsing, routing, model
construction, serialization …); the DynamoDB calls per notification (counted), log bytes per
invocation (measured); the Lambda asset zipped with and without bytecode; a cost model (dollars per
million notifications, assumptions printed) and Lambda's CPU share by memory size (1,769 MB = one
vCPU: modelled time = CPU × 1769 / memory + waiting) for the default memory and half of it. For a goal
not met, the profile of where the rest goes is printed. A report, not a test: it always exits 0.

Children run with a Lambda-like environment (``child_env``), the package's bytecode compiled in place
(``make bytecode``; the ``bench`` target depends on it) and ``PYTHONDONTWRITEBYTECODE`` set.
``storm.py`` reuses the stand-in and event helpers defined here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_children as children
import bench_report as report

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
EVENTS_DIR = ROOT / "events"
CACHE_DIR = Path(tempfile.gettempdir()) / "pagerduty-bridge-bench"
ROUTING_KEY = "bench000000000000000000000000key"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
PROJECT_TABLE = "pagerduty-bridge-bench-incidents"
REFERENCE_TABLE = "pagerduty-bridge-bench-reference"


class BenchError(Exception):
    """A measurement could not be taken; the figure is reported as not measured."""


# --- shared helpers (also used by storm.py) ------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured child: what a Python Lambda function gets (dummy credentials, no
    AWS config files), the stack's function variables; not this machine's environment."""
    env = {
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "pagerduty_bridge.handler.lambda_handler",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
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
        "PYTHONDONTWRITEBYTECODE": "1",
        "INCIDENT_TABLE_NAME": PROJECT_TABLE,
        "REFERENCE_TABLE": REFERENCE_TABLE,
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
            _stop(process, close_stdin=True)


def _stop(process: subprocess.Popen[Any], *, close_stdin: bool = False) -> None:
    if close_stdin and process.stdin is not None:
        process.stdin.close()
    else:
        process.terminate()
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
def moto_server() -> Iterator[str]:
    """moto's server in its own process, with both tables: the project's (as the stack makes it) and
    the reference's (a partition key only)."""
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
        _wait_for_port(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="ASIABENCHMARKDUMMYID",
            aws_secret_access_key="benchmark-dummy-secret",  # moto accepts any credentials
        )
        create_table(client, PROJECT_TABLE)
        client.create_table(
            TableName=REFERENCE_TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield endpoint
    finally:
        _stop(process)


def _wait_for_port(port: int, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise BenchError("moto's server did not start") from None
            time.sleep(0.2)


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
    return (
        f"{model}, {os.cpu_count()} cores ({usable} usable){memory}, {platform.system()} {platform.release()} "
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --- measuring -------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Everything one run of the benchmark measured (None or empty: not measured)."""

    cold: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    """(project, reference) results of each cold pair."""
    warm: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    quiet: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    """(project without logging and EMF, reference) results, each pair run back to back."""
    own: list[dict[str, Any]] = field(default_factory=list)
    """Instrumented warm runs of the project: CPU split, DynamoDB calls, log bytes."""
    own_reference: list[dict[str, Any]] = field(default_factory=list)
    alone: list[dict[str, Any]] = field(default_factory=list)
    """The project with DynamoDB and PagerDuty answered in-process, CPU caches warm: its own code alone."""
    alone_evicted: list[dict[str, Any]] = field(default_factory=list)
    """The same with the CPU caches evicted at each answer, as the waits on the network do."""
    rare: dict[str, Any] | None = None
    """An instrumented cold page of the project: the calls a lone alarm costs."""
    profile: Path | None = None
    footprint: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The code one warm notification runs, by side (``FOOTPRINT``)."""
    importtime: dict[str, Any] | None = None
    asset: dict[str, Any] | None = None
    storm: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)


class Runner:
    """Runs the children against one moto server and one stand-in."""

    def __init__(self, work: Path, url: str, endpoint: str) -> None:
        self.work = work
        self.env = child_env(PAGERDUTY_EVENTS_URL=url, AWS_ENDPOINT_URL=endpoint)
        self.url = url
        self._serial = 0

    def run(self, program: str, *args: str, python: Sequence[str] = ()) -> dict[str, Any]:
        """One child: its result file's JSON, with the wall time from start to exit and its output."""
        self._serial += 1
        out = self.work / f"result-{self._serial}.json"
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, *python, "-c", program, str(out), str(BENCH_DIR), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=self.env,
            cwd=self.work,
            check=False,
        )
        wall = time.perf_counter() - started
        if process.returncode != 0 or not out.exists():
            raise BenchError(f"a child failed ({process.returncode}): {process.stderr.strip()[-600:]}")
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        result.update(wall=wall, stdout_bytes=len(process.stdout.encode()), stderr=process.stderr)
        return result

    def prefix(self, kind: str) -> str:
        return f"{kind}-{uuid.uuid4().hex[:8]}"


def measure_cold(runner: Runner, pairs: int, measured: Measured) -> None:
    for side in ("project", "reference"):  # warm-up: the page cache and moto's first requests
        runner.run(children.COLD, side, runner.prefix("warmup"))
    for _ in range(pairs):
        project = runner.run(children.COLD, "project", runner.prefix("cold-p"))
        reference = runner.run(children.COLD, "reference", runner.prefix("cold-r"))
        measured.cold.append((project, reference))


def measure_warm(runner: Runner, pairs: int, invocations: int, measured: Measured) -> None:
    for _ in range(pairs):
        project = runner.run(children.WARM, "project", runner.prefix("warm-p"), str(invocations), "plain")
        reference = runner.run(children.WARM, "reference", runner.prefix("warm-r"), str(invocations), "plain")
        measured.warm.append((project, reference))
        quiet = runner.run(children.WARM, "project", runner.prefix("quiet-p"), str(invocations), "quiet")
        measured.quiet.append((quiet, reference))
    for _ in range(3):
        measured.own.append(runner.run(children.WARM, "project", runner.prefix("own-p"), str(invocations), "split"))
        measured.own_reference.append(
            runner.run(children.WARM, "reference", runner.prefix("own-r"), str(invocations), "split")
        )
        measured.alone.append(runner.run(children.WARM, "project", runner.prefix("alone"), str(invocations), "alone"))
        measured.alone_evicted.append(
            runner.run(children.WARM, "project", runner.prefix("evicted"), str(invocations), "alone-evicted")
        )
    measured.rare = runner.run(children.WARM, "project", runner.prefix("rare"), "1", "split")


def measure_profiles(runner: Runner, measured: Measured) -> None:
    stats = runner.work / "warm.prof"
    runner.run(children.PROFILE, runner.prefix("profile"), "200", str(stats))
    measured.profile = stats
    for side in ("project", "reference"):
        measured.footprint[side] = runner.run(children.FOOTPRINT, side, runner.prefix(f"footprint-{side[0]}"))
    importtime = ("-X", "importtime")
    measured.importtime = runner.run(children.IMPORTTIME, "project", runner.prefix("imports"), python=importtime)
    reference = runner.run(children.IMPORTTIME, "reference", runner.prefix("imports-r"), python=importtime)
    measured.importtime["reference"] = reference


def measure_asset(measured: Measured) -> None:
    out = CACHE_DIR / "asset"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPYCACHE")}
    env.update(PIP_CACHE_DIR=str(CACHE_DIR / "pip"))
    process = subprocess.run(
        [sys.executable, "-c", children.ASSET, str(out), str(BENCH_DIR)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if process.returncode != 0:
        raise BenchError(f"building the asset failed: {process.stderr.strip()[-300:]}")
    measured.asset = json.loads(process.stdout.strip().splitlines()[-1])


def measure_storm(measured: Measured) -> None:
    process = subprocess.run(
        [sys.executable, str(BENCH_DIR / "storm.py")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        check=False,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("STORM-SUMMARY ")]
    if not lines:
        raise BenchError(f"the storm did not finish: {(process.stderr or process.stdout).strip()[-300:]}")
    measured.storm = json.loads(lines[-1].removeprefix("STORM-SUMMARY "))


def guarded(measured: Measured, what: str, step: Any) -> None:
    """Run one measurement; a failure is reported, and the report goes on."""
    try:
        step()
    except (BenchError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
        measured.errors.append(f"{what}: {exc}")
        print(f"  ({what} not measured: {str(exc)[-300:]})", flush=True)


def measure(args: argparse.Namespace, work: Path) -> Measured:
    measured = Measured()
    with stand_in() as url, moto_server() as endpoint:
        runner = Runner(work, url, endpoint)
        print(f"measuring: {args.pairs} cold pairs …", flush=True)
        guarded(measured, "cold page", lambda: measure_cold(runner, args.pairs, measured))
        print(f"measuring: {args.warm_pairs} warm pairs of {args.invocations} invocations …", flush=True)
        guarded(measured, "warm CPU", lambda: measure_warm(runner, args.warm_pairs, args.invocations, measured))
        print("measuring: profiles (cProfile, -X importtime, the code traced) …", flush=True)
        guarded(measured, "profiles", lambda: measure_profiles(runner, measured))
    if not args.skip_asset:
        print("measuring: the Lambda asset (the stack's own bundler) …", flush=True)
        guarded(measured, "asset", lambda: measure_asset(measured))
    if not args.skip_storm:
        print("measuring: the storm (storm.py) …", flush=True)
        guarded(measured, "storm", lambda: measure_storm(measured))
    return measured


def bytecode_present() -> bool:
    tag = sys.implementation.cache_tag
    return any((ROOT / "lambda" / "pagerduty_bridge" / "__pycache__").glob(f"handler.{tag}.pyc"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=15, help="interleaved cold pairs (default 15)")
    parser.add_argument("--warm-pairs", type=int, default=5, help="interleaved warm pairs (default 5)")
    parser.add_argument("--invocations", type=int, default=41, help="invocations per warm process (default 41)")
    parser.add_argument("--skip-asset", action="store_true", help="do not build the Lambda asset")
    parser.add_argument("--skip-storm", action="store_true", help="do not run the storm")
    parser.add_argument("--serve-stand-in", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate-limit", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_stand_in:
        return serve_stand_in(args.rate_limit, args.time_scale)
    started = time.perf_counter()
    start_load = load_average()
    print("pagerduty-bridge benchmark: the project against a minimal reference bridge, side by side")
    print(f"machine: {machine_line()}")
    print(f"load average at start: {start_load} (1/5/15 min; 2 shared cores: figures move with it)")
    if not bytecode_present():
        print("WARNING: the package has no bytecode for this Python (run `make bytecode`): cold figures suffer")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pagerduty-bridge-bench-") as tmp:
        measured = measure(args, Path(tmp))
        report.print_report(measured, start_load=start_load, end_load=load_average())
    print(f"\nTook {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
