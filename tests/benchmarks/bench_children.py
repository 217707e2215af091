"""The programs ``bench.py`` runs in fresh interpreters (``python -c``): nothing of the benchmark is
preloaded in them. Each gets ``argv = [result file, benchmarks folder, …]`` and writes its result as
JSON to the file; standard output is left to the bridge's own log lines, which are counted.

The alarm event and the Lambda context are the same for both sides (an EC2
CPU alarm by SNS, ASCII JSON); the reference is ``reference_bridge.py``.
"""

from __future__ import annotations

EVENT = r"""
import json as _json

def event(i, prefix):
    msg = {"AlarmName": f"{prefix}-cpu-high-{i}", "AlarmDescription": "CPU above 90%", "AWSAccountId": "123456789012",
           "NewStateValue": "ALARM",
           "NewStateReason": "Threshold Crossed: 1 datapoint [97.0] was greater than the threshold (90.0).",
           "StateChangeTime": "2025-01-14T14:30:00.000+0000", "Region": "EU (Ireland)",
           "AlarmArn": f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{prefix}-cpu-high-{i}", "OldStateValue": "OK",
           "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "StatisticType": "Statistic",
                       "Statistic": "AVERAGE", "Unit": None, "Dimensions": [{"value": "i-0abc", "name": "InstanceId"}],
                       "Period": 60, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold",
                       "Threshold": 90.0, "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": ""}}
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
             "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:alarms:1",
             "Sns": {"Type": "Notification", "MessageId": f"{prefix}-m-{i}",
                     "TopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms", "Subject": "ALARM",
                     "Message": _json.dumps(msg), "Timestamp": "2025-01-14T14:30:00.100Z", "MessageAttributes": {}}}]}

class Ctx:
    function_name = "pagerduty-bridge"; function_version = "$LATEST"; memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:pagerduty-bridge"
    aws_request_id = "r"; log_group_name = "g"; log_stream_name = "s"
    def get_remaining_time_in_millis(self): return 60000
"""

_HANDLER = r"""
def handler_of(side, bench_dir):
    if side == "project":
        from pagerduty_bridge.handler import lambda_handler
        return lambda_handler
    import sys
    sys.path.insert(0, bench_dir)
    from reference_bridge import lambda_handler
    return lambda_handler
"""

COLD = (
    r"""
import time
_t0 = time.perf_counter()
import json, resource, sys
out, bench_dir, side, prefix = sys.argv[1:5]
"""
    + EVENT
    + _HANDLER
    + r"""
handler = handler_of(side, bench_dir)
imported = time.perf_counter() - _t0
answer = handler(event(0, prefix), Ctx())
paged = time.perf_counter() - _t0
usage = resource.getrusage(resource.RUSAGE_SELF)
with open(out, "w") as f:
    json.dump({"cpu": usage.ru_utime + usage.ru_stime, "imported": imported, "paged": paged, "answer": answer,
               "maxrss_kb": usage.ru_maxrss}, f)
"""
)
"""One cold page: process start → handler imported → PagerDuty's 202 for one ALARM → exit."""

_SPLIT = r"""
spent = {"api": 0.0, "http": 0.0, "boto3": 0.0}
calls = []

inside = []

def _timed(name, function, note=None):
    def wrapper(*args, **kwargs):
        if inside:  # botocore's own HTTP requests are part of its API call
            return function(*args, **kwargs)
        if note is not None:
            note(args, kwargs)
        inside.append(name)
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - started
            inside.pop()
    return wrapper

def _note_call(args, kwargs):
    operation, params = args[1], args[2]
    item = params.get("Item") or {}
    calls.append({"operation": operation, "item_bytes": len(_json.dumps(item)) if item else 0,
                  "indexed": "active" in item})

def instrument():
    import botocore.client
    import urllib.request
    import urllib3.connectionpool
    botocore.client.BaseClient._make_api_call = _timed("api", botocore.client.BaseClient._make_api_call, _note_call)
    import urllib3.poolmanager
    urllib3.poolmanager.PoolManager.urlopen = _timed("http", urllib3.poolmanager.PoolManager.urlopen)
    urllib3.connectionpool.HTTPConnectionPool.urlopen = _timed("http", urllib3.connectionpool.HTTPConnectionPool.urlopen)
    urllib.request.urlopen = _timed("http", urllib.request.urlopen)
    try:
        import pagerduty_bridge.transport as transport  # the bridge's exchange with PagerDuty (http.client)
        import pagerduty_bridge.events_api as events_api
    except ImportError:  # the reference bridge's side
        pass
    else:
        events_api.exchange = transport.exchange = _timed("http", transport.exchange)
    import boto3.dynamodb.types as types
    types.TypeSerializer.serialize = _timed("boto3", types.TypeSerializer.serialize)
    types.TypeDeserializer.deserialize = _timed("boto3", types.TypeDeserializer.deserialize)

def answer_in_process(evict):
    # DynamoDB and PagerDuty answered in this process, their time (and any eviction) set apart: what is
    # left is the bridge's own code alone. ``evict`` reads a 64 MiB buffer at each answer, as the other
    # processes that run while the bridge waits on the network would, so its code and data meet cold caches.
    scratch = bytearray(64 << 20) if evict else b""  # over the L3 cache of any machine here: reading it evicts
    import botocore.client
    import socket
    import pagerduty_bridge.events_api as events_api
    from pagerduty_bridge.transport import Answer

    def accepted():
        # PagerDuty's acceptance as the bridge reads it: a real answer over a local socket pair.
        ours, theirs = socket.socketpair()
        body = b'{"status":"success","message":"Event processed"}'
        theirs.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\n\r\n" + body)
        theirs.close()
        ours.settimeout(5)
        answer = Answer(ours, method="POST")
        answer.begin()
        ours.close()
        return answer

    def api(self, operation, params):
        scratch.count(1)
        return {"Items": [], "Count": 0} if operation in ("Query", "Scan") else {}

    def exchange(*args, **kwargs):
        scratch.count(1)
        return accepted()

    botocore.client.BaseClient._make_api_call = _timed("api", api)
    events_api.exchange = _timed("http", exchange)
"""

WARM = (
    r"""
import time, json, resource, sys
out, bench_dir, side, prefix, count, mode = sys.argv[1:7]
count = int(count)
"""
    + EVENT
    + _HANDLER
    + _SPLIT
    + r"""
events = [event(i, prefix) for i in range(count)]
if mode == "split":
    instrument()
if mode.startswith("alone"):
    answer_in_process(evict=mode == "alone-evicted")
handler = handler_of(side, bench_dir)
if mode == "quiet":  # the project without its log line and its EMF record: what writing them costs
    import logging
    from pagerduty_bridge import handler as _module
    logging.disable(logging.CRITICAL)
    _module.metrics.add_metric = lambda **_: None
    _module.metrics.provider.flush_metrics = lambda *_, **__: None
rows = []
for index, ev in enumerate(events):
    spent.update(api=0.0, http=0.0, boto3=0.0)
    before = len(calls)
    wall, cpu = time.perf_counter(), time.process_time()
    handler(ev, Ctx())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rows.append({"cpu": cpu, "wall": wall, "api": spent["api"], "http": spent["http"], "boto3": spent["boto3"],
                 "calls": calls[before:]})
warm = rows[1:] or rows
usage = resource.getrusage(resource.RUSAGE_SELF)
with open(out, "w") as f:
    json.dump({"first": rows[0], "warm": warm, "cpu_ms": sum(r["cpu"] for r in warm) / len(warm) * 1000,
               "wall_ms": sum(r["wall"] for r in warm) / len(warm) * 1000, "count": count,
               "maxrss_kb": usage.ru_maxrss}, f)
"""
)
"""``count`` invocations of distinct ALARMs in one process; ``split`` also times what botocore's API calls,
boto3's DynamoDB type (de)serializer and the HTTP client take, and notes each DynamoDB call; ``quiet``
switches the project's logging and EMF metrics off; ``alone`` and ``alone-evicted`` answer DynamoDB and
PagerDuty in the process (``answer_in_process``), with the CPU caches kept warm or evicted at each answer."""

PROFILE = (
    r"""
import cProfile, json, sys, time
out, bench_dir, prefix, count, stats = sys.argv[1:6]
"""
    + EVENT
    + r"""
events = [event(i, prefix) for i in range(int(count) + 1)]
from pagerduty_bridge import handler
from pagerduty_bridge.pacing import Pacer
lambda_handler = handler.lambda_handler
lambda_handler(events[0], Ctx())
# 200 pages in a second are over PagerDuty's 120 a minute: open the pacer, or the profile is its sleeps.
handler.get_runtime().notifications().delivery.sender.pacer = Pacer(limit=1_000_000)
profile = cProfile.Profile()
profile.enable()
for ev in events[1:]:
    lambda_handler(ev, Ctx())
profile.disable()
profile.dump_stats(stats)
with open(out, "w") as f:
    json.dump({"count": int(count)}, f)
"""
)
"""cProfile (its default, wall-clock timer: our own code never blocks, and what does block is set apart
as outside) of ``count`` warm notifications."""

FOOTPRINT = (
    r"""
import json, sys
from collections import defaultdict
out, bench_dir, side, prefix = sys.argv[1:5]
"""
    + EVENT
    + _HANDLER
    + r"""
handler = handler_of(side, bench_dir)
for i in range(3):
    handler(event(i, prefix), Ctx())
lines = defaultdict(set)
executed = defaultdict(int)

def group(filename):
    for marker in ("site-packages/", "/lambda/", "/benchmarks/"):
        if marker in filename:
            return filename.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
    return "python: " + filename.rsplit("/", 2)[-2 if filename.endswith("__init__.py") else -1].removesuffix(".py")

def trace(frame, what, arg):
    if what == "line":
        name = group(frame.f_code.co_filename)
        lines[name].add((frame.f_code.co_filename, frame.f_lineno))
        executed[name] += 1
    return trace

sys.settrace(trace)
handler(event(3, prefix), Ctx())
sys.settrace(None)
with open(out, "w") as f:
    json.dump({"side": side, "distinct": {k: len(v) for k, v in lines.items()}, "executed": dict(executed)}, f)
"""
)
"""The code one warm notification runs, traced line by line (``sys.settrace``) after three warm-up
invocations: distinct lines and lines executed, by package (standard-library modules by name). Unlike a
time it does not move with the machine's load; and since the waits on the network let other processes
evict the CPU caches, the CPU a warm notification takes grows with how much distinct code it runs."""

IMPORTTIME = (
    r"""
import json, sys, time
out, bench_dir, side, prefix = sys.argv[1:5]
"""
    + EVENT
    + _HANDLER
    + r"""
def step(name):
    print(f"BENCH-STEP {name}", file=sys.stderr, flush=True)
step("import")
handler = handler_of(side, bench_dir)
step("first invocation")
handler(event(0, prefix), Ctx())
step("end")
with open(out, "w") as f:
    json.dump({"side": side}, f)
"""
)
"""The cold page under ``python -X importtime``, with a marker on standard error between its steps."""

ASSET = r"""
import json, sys, zipfile
from pathlib import Path
out = Path(sys.argv[1])
import shutil
from pagerduty_bridge_cdk.bundling import LocalPipBundler
from pagerduty_bridge_cdk.config import BridgeConfig
config = BridgeConfig()
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
bundler = LocalPipBundler(architecture=config.architecture, python_version=config.python_version)
bundler.try_bundle(str(out))

def zipped(keep_pyc):
    archive = out.with_suffix(".pyc.zip" if keep_pyc else ".zip")
    sizes = {}
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            if not keep_pyc and path.suffix == ".pyc":
                continue
            z.write(path, path.relative_to(out).as_posix())
        for info in z.infolist():
            top = info.filename.split("/", 1)[0]
            sizes[top] = sizes.get(top, 0) + info.compress_size
    return archive.stat().st_size, sizes

with_pyc, by_top = zipped(True)
without_pyc, _ = zipped(False)
files = [p for p in out.rglob("*") if p.is_file()]
print(json.dumps({"architecture": config.architecture, "python_version": config.python_version,
                  "bytecode": bundler.bytecode.method, "bytecode_note": bundler.bytecode.describe(),
                  "with_pyc": with_pyc, "without_pyc": without_pyc, "pyc_files": sum(p.suffix == ".pyc" for p in files),
                  "files": len(files), "unzipped": sum(p.stat().st_size for p in files),
                  "largest": sorted(by_top.items(), key=lambda kv: -kv[1])[:6]}))
"""
"""The Lambda asset as the stack's own bundler builds it for the default configuration, zipped (deflate,
level 9) with and without its bytecode."""
