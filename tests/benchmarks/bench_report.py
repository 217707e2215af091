"""``bench.py``'s report: the goals side by side with the reference (ratios first), then what each figure
is made of — the cold path's imports, the warm path's profile, DynamoDB calls and log bytes per
notification, the asset, the storm, Lambda's CPU share by memory size and a cost model."""

from __future__ import annotations

import math
import pstats
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOAL_COLD_RATIO = 1.2
GOAL_WARM_RATIO = 1.2
GOAL_OWN_CPU_MS = 1.0
GOAL_RSS_MIB = 90.0
GOAL_STORM_REQUESTS = 1.1

VCPU_MB = 1769
"""Lambda gives CPU in proportion to memory: 1,769 MB is one full vCPU."""
MEMORY_RULE_SLOWER = 0.10
"""The smaller memory size becomes the default only if the modelled cold page is at most 10 % slower."""

PRICES = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_gb_second_x86_64": 0.0000166667,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "secrets_manager_call": 0.05 / 10_000,
    "logs_ingested_gb": 0.50,
    "sns_publish": 0.50 / 1e6,
}
"""On-demand list prices, us-east-1, in USD (Lambda arm64/x86_64 per GB-second and per request;
DynamoDB on-demand per write/read request unit; Secrets Manager per API call; CloudWatch Logs standard
ingestion per GB; SNS per publish). Other regions differ by up to about 30 %."""
PLATFORM_LOG_BYTES = 300
"""Lambda's own START, END and REPORT lines per invocation (text format), about 300 bytes."""
SECRET_CACHE_SECONDS = 300

OUTSIDE = (
    "botocore/",
    "urllib3/",
    "/http/",
    "socket.py",
    "/email/",
    "ssl.py",
    "selectors.py",
    "boto3/session",
    "boto3/__init__",
    "dateutil/",
    "jmespath/",
    "/urllib/",
    "hmac.py",
)
"""Code that is the network's, boto3's or urllib3's: both bridges run it; not our own CPU."""
CATEGORIES = (
    ("logging (Powertools Logger, stdlib logging, redaction)", ("powertools/logging", "bridge/redaction")),
    ("EMF metrics (Powertools Metrics)", ("powertools/metrics",)),
    ("parsing (envelopes, alarms, safejson, timeutil)", ("envelopes", "alarms", "safejson", "timeutil")),
    (
        "routing and rendering (rules, rendering, silences)",
        ("notifications", "rules", "rule_model", "rendering", "silences", "text"),
    ),
    ("planning (lifecycle)", ("lifecycle",)),
    ("delivery protocol (delivery, keys)", ("bridge/delivery", "bridge/keys")),
    ("model construction (dataclasses, models)", ("dataclasses", "bridge/models", "/enum")),
    ("serialization and sending (events_api, pacing)", ("events_api", "pacing")),
    ("store records (store, TypeSerializer)", ("bridge/store", "boto3/dynamodb")),
    (
        "handler and processing (Powertools' decorators too)",
        ("bridge/handler", "bridge/processing", "bridge/runtime", "powertools/"),
    ),
)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def med(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def span(values: list[float], unit: str = "ms", digits: int = 1) -> str:
    if not values:
        return "-"
    return f"{med(values):.{digits}f} {unit} ({min(values):.{digits}f}–{max(values):.{digits}f}, n={len(values)})"


def section(title: str) -> None:
    print(f"\n{title}")


def row(label: str, value: str) -> None:
    print(f"  {label:<62} {value}")


# --- figures ---------------------------------------------------------------------------------------------


@dataclass
class Figures:
    """The medians the report is made of (NaN: not measured)."""

    cold_ratio: float = math.nan
    cold_project_ms: float = math.nan
    cold_reference_ms: float = math.nan
    cold_cpu_s: float = math.nan
    cold_wait_s: float = math.nan
    warm_ratio: float = math.nan
    warm_project_ms: float = math.nan
    warm_reference_ms: float = math.nan
    warm_wait_ms: float = math.nan
    own_ms: float = math.nan
    own_reference_ms: float = math.nan
    rss_mib: float = math.nan
    rss_reference_mib: float = math.nan


def figures_of(measured: Any) -> Figures:
    f = Figures()
    if measured.cold:
        f.cold_ratio = med([p["wall"] / r["wall"] for p, r in measured.cold])
        f.cold_project_ms = ms(med([p["wall"] for p, _ in measured.cold]))
        f.cold_reference_ms = ms(med([r["wall"] for _, r in measured.cold]))
        f.cold_cpu_s = med([p["cpu"] for p, _ in measured.cold])
        f.cold_wait_s = max(0.0, med([p["wall"] - p["cpu"] for p, _ in measured.cold]))
    if measured.warm:
        f.warm_ratio = med([p["cpu_ms"] / r["cpu_ms"] for p, r in measured.warm])
        f.warm_project_ms = med([p["cpu_ms"] for p, _ in measured.warm])
        f.warm_reference_ms = med([r["cpu_ms"] for _, r in measured.warm])
        f.warm_wait_ms = max(0.0, med([p["wall_ms"] - p["cpu_ms"] for p, _ in measured.warm]))
        f.rss_mib = max(p["maxrss_kb"] for p, _ in measured.warm) / 1024
        f.rss_reference_mib = max(r["maxrss_kb"] for _, r in measured.warm) / 1024
    if measured.own:
        f.own_ms = med([own_cpu_ms(run) for run in measured.own])
        f.own_reference_ms = med([own_cpu_ms(run) for run in measured.own_reference])
    return f


def own_cpu_ms(run: dict[str, Any]) -> float:
    """The median warm invocation's CPU outside boto3 (API calls, DynamoDB types) and the HTTP client."""
    return med([ms(r["cpu"] - r["api"] - r["boto3"] - r["http"]) for r in run["warm"]])


def split_ms(run: dict[str, Any], key: str) -> float:
    return med([ms(r[key]) for r in run["warm"]])


def verdict(value: float, goal: float) -> str:
    if math.isnan(value):
        return "NOT MEASURED"
    return "PASS" if value <= goal else "FAIL"


def print_goals(f: Figures, measured: Any) -> list[str]:
    """The goals table; returns the names of the goals not met."""
    storm = measured.storm or {}
    storm_value = storm.get("requests_per_event", math.nan)
    storm_ok = storm and storm.get("lost") == 0 and storm.get("duplicated") == 0
    rows = [
        (
            "cold page ÷ reference",
            f"{f.cold_ratio:.2f} ×",
            f"≤ {GOAL_COLD_RATIO} ×",
            verdict(f.cold_ratio, GOAL_COLD_RATIO),
            f"{f.cold_project_ms:.0f} vs {f.cold_reference_ms:.0f} ms",
        ),
        (
            "warm CPU per notification ÷ reference",
            f"{f.warm_ratio:.2f} ×",
            f"≤ {GOAL_WARM_RATIO} ×",
            verdict(f.warm_ratio, GOAL_WARM_RATIO),
            f"{f.warm_project_ms:.2f} vs {f.warm_reference_ms:.2f} ms",
        ),
        (
            "our own CPU per warm notification",
            f"{f.own_ms:.2f} ms",
            f"≤ {GOAL_OWN_CPU_MS:g} ms",
            verdict(f.own_ms, GOAL_OWN_CPU_MS),
            f"reference's own: {f.own_reference_ms:.2f} ms",
        ),
        (
            "peak RSS after 41 invocations",
            f"{f.rss_mib:.0f} MiB",
            f"≤ {GOAL_RSS_MIB:g} MiB",
            verdict(f.rss_mib, GOAL_RSS_MIB),
            f"reference: {f.rss_reference_mib:.0f} MiB",
        ),
        (
            "storm: PagerDuty requests per delivered event",
            f"{storm_value:.2f}",
            f"≤ {GOAL_STORM_REQUESTS}",
            verdict(storm_value, GOAL_STORM_REQUESTS) if storm_ok or not storm else "FAIL (lost or duplicated)",
            f"{storm.get('lost', '-')} lost, {storm.get('duplicated', '-')} duplicated",
        ),
    ]
    section("Goals — ratios first (absolute figures are context: a shared, noisy machine)")
    print(f"  {'figure':<46} {'measured':<10} {'goal':<10} {'result':<14} context")
    for name, value, goal, result, context in rows:
        print(f"  {name:<46} {value:<10} {goal:<10} {result:<14} {context}")
    return [name for name, _, _, result, _ in rows if not result.startswith("PASS")]


# --- the cold path ----------------------------------------------------------------------------------------


def print_cold(f: Figures, measured: Any) -> None:
    section(
        f"1. Cold page — a fresh process, start → PagerDuty's 202 → exit; interleaved pairs, n={len(measured.cold)}"
    )
    if not measured.cold:
        row("cold page", "not measured")
        return
    ratios = [p["wall"] / r["wall"] for p, r in measured.cold]
    row("ratio project ÷ reference (median of pairs)  [goal ≤ 1.2]", span(ratios, "×", 2))
    for side, index in (("project", 0), ("reference", 1)):
        runs = [pair[index] for pair in measured.cold]
        row(f"{side}: wall, start to exit", span([ms(r["wall"]) for r in runs]))
        row("   CPU (user + system, whole process)", span([ms(r["cpu"]) for r in runs]))
        row("   handler imported (after the interpreter's own start)", span([ms(r["imported"]) for r in runs]))
        row(
            "   the first invocation (runtime, clients, the page)", span([ms(r["paged"] - r["imported"]) for r in runs])
        )
    print_importtime(measured.importtime)


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
GROUPS = (
    ("our package (pagerduty_bridge)", ("pagerduty_bridge",)),
    ("Powertools", ("aws_lambda_powertools",)),
    ("boto3 + botocore", ("boto3", "botocore", "s3transfer", "jmespath", "dateutil")),
    ("urllib3", ("urllib3",)),
    ("pydantic", ("pydantic", "pydantic_core", "annotated_types", "typing_inspection")),
    ("re2", ("re2",)),
)


def parse_importtime(stderr: str) -> dict[str, list[tuple[int, str]]]:
    """(self µs, module) per step of the cold path, from ``-X importtime`` output and the step markers."""
    steps: dict[str, list[tuple[int, str]]] = defaultdict(list)
    step = "interpreter start"
    for line in stderr.splitlines():
        if line.startswith("BENCH-STEP "):
            step = line.removeprefix("BENCH-STEP ").strip()
            continue
        match = IMPORT_LINE.match(line)
        if match:
            steps[step].append((int(match.group(1)), match.group(4)))
    return steps


def group_of(module: str) -> str:
    top = module.split(".", maxsplit=1)[0]
    return next((name for name, tops in GROUPS if top in tops), "standard library and other")


def import_groups(stderr: str) -> Counter[str]:
    """Self time (µs) of every module imported on the whole cold path, by group."""
    totals: Counter[str] = Counter()
    for modules in parse_importtime(stderr).values():
        for self_us, module in modules:
            totals[group_of(module)] += self_us
    return totals


def print_importtime(importtime: dict[str, Any] | None) -> None:
    section("   python -X importtime, per step of the cold path (self time of the modules imported, ms)")
    if not importtime:
        row("importtime", "not measured")
        return
    for side, stderr in (("project", importtime["stderr"]), ("reference", importtime["reference"]["stderr"])):
        for step, modules in parse_importtime(stderr).items():
            if step in ("end",) or not modules:
                continue
            totals: Counter[str] = Counter()
            for self_us, module in modules:
                totals[group_of(module)] += self_us
            parts = ", ".join(f"{name} {us / 1000:.1f}" for name, us in totals.most_common() if us >= 500)
            row(f"{side}, {step}: {sum(totals.values()) / 1000:.0f} ms", parts)
            if side == "project" and totals["our package (pagerduty_bridge)"]:
                ours = sorted(((us, m) for us, m in modules if m.startswith("pagerduty_bridge")), reverse=True)[:6]
                row(
                    "      our slowest modules",
                    ", ".join(f"{m.removeprefix('pagerduty_bridge.')} {us / 1000:.1f}" for us, m in ours),
                )


# --- the warm path ----------------------------------------------------------------------------------------


def print_warm(f: Figures, measured: Any) -> None:
    section(
        f"2. Warm notifications — 40 ALARMs of distinct alarms per process; interleaved pairs, n={len(measured.warm)}"
    )
    if not measured.warm:
        row("warm CPU", "not measured")
        return
    row(
        "ratio project ÷ reference, CPU per notification  [goal ≤ 1.2]",
        span([p["cpu_ms"] / r["cpu_ms"] for p, r in measured.warm], "×", 2),
    )
    row("project: CPU per notification", span([p["cpu_ms"] for p, _ in measured.warm], digits=2))
    row("reference: CPU per notification", span([r["cpu_ms"] for _, r in measured.warm], digits=2))
    if measured.quiet:
        row(
            "ratio with the project's logging and EMF switched off",
            span([q["cpu_ms"] / r["cpu_ms"] for q, r in measured.quiet], "×", 2)
            + f"; it printed {max(q['stdout_bytes'] for q, _ in measured.quiet)} bytes",
        )
    row(
        "project: wall per notification (CPU + waiting on moto, the stand-in)",
        span([p["wall_ms"] for p, _ in measured.warm], digits=2),
    )
    if measured.own:
        section(f"   where the CPU goes (instrumented runs, n={len(measured.own)} each; ms per warm notification)")
        for side, runs in (("project", measured.own), ("reference", measured.own_reference)):
            api = med([split_ms(run, "api") for run in runs])
            types = med([split_ms(run, "boto3") for run in runs])
            http = med([split_ms(run, "http") for run in runs])
            own = med([own_cpu_ms(run) for run in runs])
            row(
                f"{side}: botocore API calls / boto3 DynamoDB types / HTTP / own",
                f"{api:.2f} / {types:.2f} / {http:.2f} / {own:.2f}",
            )
    print_footprint(measured.footprint)
    row("peak RSS after the invocations: project / reference", f"{f.rss_mib:.1f} / {f.rss_reference_mib:.1f} MiB")


def print_footprint(footprint: dict[str, dict[str, Any]]) -> None:
    """The code one warm notification runs, side by side: a figure the machine's load does not move."""
    if set(footprint) != {"project", "reference"}:
        return
    distinct = {side: sum(footprint[side]["distinct"].values()) for side in footprint}
    executed = {side: sum(footprint[side]["executed"].values()) for side in footprint}
    row(
        "code run per notification, distinct lines: project / reference",
        f"{distinct['project']:,} / {distinct['reference']:,} = {distinct['project'] / distinct['reference']:.2f}×",
    )
    row(
        "code run per notification, lines executed: project / reference",
        f"{executed['project']:,} / {executed['reference']:,} = {executed['project'] / executed['reference']:.2f}×",
    )


def footprint_difference(footprint: dict[str, dict[str, Any]]) -> list[tuple[str, int]]:
    """Distinct lines per notification by package, project − reference, largest first."""
    ours, theirs = footprint["project"]["distinct"], footprint["reference"]["distinct"]
    extra = {name: ours.get(name, 0) - theirs.get(name, 0) for name in set(ours) | set(theirs)}
    return sorted(((name, lines) for name, lines in extra.items() if lines), key=lambda kv: -abs(kv[1]))


def category_of(filename: str, name: str = "") -> str | None:
    """The category of code in ``filename``; None for code judged by its callers (the standard library)."""
    if filename == "~" and "sleep" in name:
        return "outside"
    if filename == "~":
        return None
    path = filename.replace("aws_lambda_powertools", "powertools").replace("pagerduty_bridge", "bridge")
    if "boto3/dynamodb" in path:
        return "store records (store, TypeSerializer)"
    if any(part in path for part in OUTSIDE):
        return "outside"
    for name, parts in CATEGORIES:
        if any(part in path for part in parts):
            return name
    if "site-packages" in path or "/bridge/" in path:
        return "other"
    return None


def attribute(stats: dict[Any, Any]) -> Counter[str]:
    """Each function's own time, by category; standard-library and built-in code goes to its callers'."""
    memo: dict[Any, dict[str, float]] = {}

    def shares(func: Any, depth: int = 0) -> dict[str, float]:
        if func in memo:
            return memo[func]
        category = category_of(func[0], func[2])
        if category is not None or depth > 8:
            result = {category or "other": 1.0}
        else:
            callers = stats[func][4]
            total = sum(v[2] for v in callers.values()) or sum(v[1] for v in callers.values()) or 1
            weighted: Counter[str] = Counter()
            for caller, values in callers.items():
                weight = (values[2] if any(v[2] for v in callers.values()) else values[1]) / total
                for name, share in shares(caller, depth + 1).items():
                    weighted[name] += weight * share
            result = dict(weighted) or {"other": 1.0}
        memo[func] = result
        return result

    totals: Counter[str] = Counter()
    for func, (_, _, tottime, _, _) in stats.items():
        for name, share in shares(func).items():
            totals[name] += tottime * share
    return totals


def print_profile(measured: Any) -> Counter[str] | None:
    section("3. Where our own CPU goes on the warm path — cProfile of 200 warm notifications")
    if measured.profile is None or not Path(measured.profile).exists():
        row("profile", "not measured")
        return None
    stats = pstats.Stats(str(measured.profile)).stats  # type: ignore[attr-defined]
    totals = attribute(stats)
    count = 200
    ours = {name: value for name, value in totals.items() if name != "outside"}
    own_total = sum(ours.values())
    print("  (profiled times run about twice the real ones; the shares are what to read)")
    for name, value in sorted(ours.items(), key=lambda item: -item[1]):
        row(name, f"{ms(value) / count:.3f} ms  {value / own_total:5.1%}")
    row("outside (botocore, urllib3, sockets: both bridges pay it)", f"{ms(totals['outside']) / count:.3f} ms")
    top = sorted(
        ((v[2], func) for func, v in stats.items() if category_of(func[0]) not in (None, "outside")), reverse=True
    )[:10]
    print("  our own slowest functions (own time, ms per notification):")
    for tottime, (filename, line, name) in top:
        short = filename.split("site-packages/")[-1].split("lambda/")[-1]
        row(f"   {short}:{line} {name}", f"{ms(tottime) / count:.3f} ms")
    return totals


# --- DynamoDB, logs, asset, storm --------------------------------------------------------------------------


@dataclass
class Usage:
    """What one notification costs in requests to other services."""

    write_units: float
    read_units: float
    calls: dict[str, float]
    log_bytes: float


def usage_of(rows: list[dict[str, Any]], log_bytes: float) -> Usage:
    calls: Counter[str] = Counter()
    write_units = read_units = 0.0
    for row_ in rows:
        for call in row_["calls"]:
            calls[call["operation"]] += 1
            if call["operation"] in ("PutItem", "UpdateItem", "DeleteItem"):
                write_units += max(1, math.ceil(call["item_bytes"] / 1024)) + (1 if call["indexed"] else 0)
            elif call["operation"] == "GetItem":
                read_units += 1  # strongly consistent, under 4 KB
            elif call["operation"] == "Query":
                read_units += 0.5  # eventually consistent, under 4 KB
    n = max(1, len(rows))
    return Usage(write_units / n, read_units / n, {k: v / n for k, v in calls.items()}, log_bytes)


def print_usage(measured: Any) -> tuple[Usage | None, Usage | None]:
    section("4. Requests per notification (counted) and log bytes (measured)")
    if not measured.own or measured.rare is None:
        row("usage", "not measured")
        return None, None
    run = measured.own[0]
    log_bytes = med([r["stdout_bytes"] / r["count"] for r in measured.own])
    busy = usage_of(run["warm"], log_bytes)
    lone = usage_of([measured.rare["first"]], measured.rare["stdout_bytes"])
    for label, usage in (("a lone alarm (cold container)", lone), ("warm, one after another", busy)):
        calls = ", ".join(f"{name} {count:.2f}" for name, count in sorted(usage.calls.items()))
        row(f"{label}: DynamoDB calls", calls)
        row("   write / read request units (GSI writes included)", f"{usage.write_units:.2f} / {usage.read_units:.2f}")
        row("   log bytes per invocation (JSON log + EMF; Lambda adds ~300)", f"{usage.log_bytes:.0f}")
    reference = usage_of(measured.own_reference[0]["warm"], 0) if measured.own_reference else None
    if reference is not None:
        calls = ", ".join(f"{name} {count:.2f}" for name, count in sorted(reference.calls.items()))
        row(
            "reference, warm: DynamoDB calls; write / read units",
            f"{calls}; {reference.write_units:.2f} / {reference.read_units:.2f}",
        )
    return lone, busy


def print_asset(asset: dict[str, Any] | None) -> None:
    section("5. Lambda asset — the stack's own bundler, default configuration, zipped (deflate, level 9)")
    if not asset:
        row("asset", "not measured (--skip-asset or no network)")
        return
    row("built for", f"{asset['architecture']}, Python {asset['python_version']}; {asset['bytecode_note']}")
    row("unzipped", f"{asset['unzipped'] / 1e6:.1f} MB in {asset['files']} files ({asset['pyc_files']} .pyc)")
    row("zipped with bytecode / without", f"{asset['with_pyc'] / 1e6:.2f} MB / {asset['without_pyc'] / 1e6:.2f} MB")
    row("largest (zipped MB)", ", ".join(f"{name} {size / 1e6:.2f}" for name, size in asset["largest"]))


def print_storm(storm: dict[str, Any] | None) -> None:
    section("6. Storm — storm.py: 1,000 notifications, 200 alarms, 5 containers, 120 events a minute per key")
    if not storm:
        row("storm", "not measured (--skip-storm)")
        return
    row(
        "PagerDuty requests per delivered event  [goal ≤ 1.1]",
        f"{storm['requests_per_event']:.2f} ({storm['requests']} requests, {storm['throttled']} answered 429)",
    )
    row(
        "delivered / lost / duplicated / left pending",
        f"{storm['delivered']} / {storm['lost']} / {storm['duplicated']} / {storm['pending']}",
    )
    row(
        "drain time against the bound (N events ÷ 120 a minute)",
        f"{storm['drain_minutes']:.1f} vs {storm['bound_minutes']:.1f} min ({storm['drain_minutes'] / storm['bound_minutes']:.2f} ×)",
    )


# --- memory and money --------------------------------------------------------------------------------------


def modelled_seconds(cpu_seconds: float, wait_seconds: float, memory_mb: int) -> float:
    """Lambda's CPU share: CPU × 1769 / memory (at most one vCPU's speed) plus the waiting."""
    return cpu_seconds * max(1.0, VCPU_MB / memory_mb) + wait_seconds


def default_function() -> tuple[int, str]:
    """The stack's default memory size and architecture."""
    from pagerduty_bridge_cdk.config import BridgeConfig
    from pagerduty_bridge_cdk.functions import MEMORY_MB

    return MEMORY_MB, BridgeConfig().architecture


def cost_lines(
    seconds: float, memory_mb: int, architecture: str, usage: Usage, secret_calls: float
) -> list[tuple[str, float]]:
    """Dollars per million notifications, by item."""
    million = 1e6
    return [
        (
            f"Lambda compute ({memory_mb} MB × {ms(seconds):.0f} ms)",
            million * memory_mb / 1024 * seconds * PRICES[f"lambda_gb_second_{architecture}"],
        ),
        ("Lambda requests", million * PRICES["lambda_request"]),
        (f"DynamoDB writes ({usage.write_units:.2f} WRU)", million * usage.write_units * PRICES["dynamodb_write_unit"]),
        (f"DynamoDB reads ({usage.read_units:.2f} RRU)", million * usage.read_units * PRICES["dynamodb_read_unit"]),
        (f"Secrets Manager ({secret_calls:.2f} calls)", million * secret_calls * PRICES["secrets_manager_call"]),
        (
            f"CloudWatch Logs ({usage.log_bytes + PLATFORM_LOG_BYTES:.0f} bytes)",
            million * (usage.log_bytes + PLATFORM_LOG_BYTES) / 1e9 * PRICES["logs_ingested_gb"],
        ),
        ("SNS publish (the alarm to the topic)", million * PRICES["sns_publish"]),
    ]


def print_money(f: Figures, lone: Usage | None, busy: Usage | None) -> None:
    memory, architecture = default_function()
    half = memory // 2
    section("7. Memory — Lambda's CPU share (1,769 MB = one vCPU): modelled time = CPU × 1769 / memory + waiting")
    if math.isnan(f.cold_cpu_s) or math.isnan(f.warm_project_ms):
        row("memory model", "not measured")
        return
    cold = {m: modelled_seconds(f.cold_cpu_s, f.cold_wait_s, m) for m in (memory, half)}
    warm = {m: modelled_seconds(f.warm_project_ms / 1000, f.warm_wait_ms / 1000, m) for m in (memory, half)}
    row("measured cold page: CPU / waiting", f"{ms(f.cold_cpu_s):.0f} / {ms(f.cold_wait_s):.0f} ms")
    row("measured warm notification: CPU / waiting", f"{f.warm_project_ms:.2f} / {f.warm_wait_ms:.2f} ms")
    for m in (memory, half):
        row(
            f"{m} MB{' (default)' if m == memory else ''}: modelled cold page / warm notification",
            f"{ms(cold[m]):.0f} ms / {ms(warm[m]):.1f} ms",
        )
    slower = cold[half] / cold[memory] - 1
    keep = slower > MEMORY_RULE_SLOWER or f.rss_mib > GOAL_RSS_MIB * 0.8
    row(
        f"{half} MB against {memory} MB: the cold page",
        f"{slower:+.0%} (the rule: {half} MB only if ≤ +{MEMORY_RULE_SLOWER:.0%})",
    )
    row("the rule says", f"{memory} MB stays the default" if keep else f"{half} MB can be the default")
    if lone is None or busy is None:
        return
    section(f"8. Cost model — dollars per million notifications, default settings ({architecture}, {memory} MB)")
    for label, usage, seconds, secret_calls in (
        ("lone alarms: every notification a cold start (INIT is billed)", lone, cold, 1.0),
        ("busy: warm containers, one after another", busy, warm, 0.0),
    ):
        for m in (memory, half):
            lines = cost_lines(seconds[m], m, architecture, usage, secret_calls)
            total = sum(cost for _, cost in lines)
            if m == memory:
                print(f"  {label}:")
                for name, cost in lines:
                    row(f"   {name}", f"${cost:,.2f}")
            row(f"   total at {m} MB", f"${total:,.2f}")
    print(
        "  Assumptions: us-east-1 on-demand list prices (Lambda $0.0000133334 per GB-s on arm64, $0.20 per "
        "million requests;\n  DynamoDB $0.625 / $0.125 per million write / read units, items under 1 KB, a "
        "write of an item in the open-incident\n  index counted twice (table + index), the silence Query "
        "eventually consistent; Secrets Manager $0.05 per 10,000\n  calls, the key cached 5 minutes per "
        "container: one call per cold start, about none per warm notification;\n  CloudWatch Logs $0.50 per "
        "GB ingested, Lambda's START/END/REPORT about 300 bytes; SNS $0.50 per million publishes,\n  delivery "
        "to Lambda free). Fixed monthly costs (alarms, custom metrics, the secret, the table's storage) are "
        "not per\n  notification and are left out. Durations are the model's above, not this machine's."
    )


# --- where the rest goes -----------------------------------------------------------------------------------


def print_shortfalls(unmet: list[str], f: Figures, measured: Any, totals: Counter[str] | None) -> None:
    if not unmet:
        return
    section("Where the rest goes, for the goals not met")
    if any(name.startswith("cold") for name in unmet) and measured.cold:
        print_cold_shortfall(measured)
    if any(name.startswith(("warm", "our own")) for name in unmet) and measured.own:
        for key, label in (
            ("api", "in botocore API calls"),
            ("boto3", "in boto3's DynamoDB types"),
            ("http", "in the HTTP client"),
        ):
            diff = med([split_ms(r, key) for r in measured.own]) - med(
                [split_ms(r, key) for r in measured.own_reference]
            )
            row(f"warm: {label}, project − reference", f"{diff:+.2f} ms")
        row("warm: own CPU, project − reference", f"{f.own_ms - f.own_reference_ms:+.2f} ms")
        if measured.alone and measured.alone_evicted:
            alone = med([own_cpu_ms(run) for run in measured.alone])
            evicted = med([own_cpu_ms(run) for run in measured.alone_evicted])
            row("warm: own CPU alone (I/O answered in-process), caches warm", f"{alone:.2f} ms")
            row("warm: own CPU alone, caches evicted at each I/O answer", f"{evicted:.2f} ms")
            row(
                "warm: own CPU in the real run (the waits let other work evict)",
                f"{f.own_ms:.2f} ms = {(f.own_ms - alone) / (evicted - alone):.0%} of the way to evicted"
                if evicted > alone
                else f"{f.own_ms:.2f} ms",
            )
        if set(measured.footprint) == {"project", "reference"}:
            parts = [f"{name} {lines:+,}" for name, lines in footprint_difference(measured.footprint)[:8]]
            row("warm: distinct lines run, project − reference, by package", ", ".join(parts))
        if totals:
            ours = {k: v for k, v in totals.items() if k != "outside"}
            top = sorted(ours.items(), key=lambda kv: -kv[1])[:4]
            row(
                "warm: our own CPU is mostly",
                ", ".join(f"{k.split(' (')[0]} {v / sum(ours.values()):.0%}" for k, v in top),
            )


def print_cold_shortfall(measured: Any) -> None:
    project = [p for p, _ in measured.cold]
    reference = [r for _, r in measured.cold]
    diff = med([ms(p["paged"]) for p in project]) - med([ms(r["paged"]) for r in reference])
    row("cold: start → the 202, project − reference", f"{diff:+.0f} ms")
    diff = med([ms(p["wall"] - p["paged"]) for p in project]) - med([ms(r["wall"] - r["paged"]) for r in reference])
    row("cold: the exit after it, project − reference", f"{diff:+.0f} ms")
    if measured.importtime:
        ours = import_groups(measured.importtime["stderr"])
        theirs = import_groups(measured.importtime["reference"]["stderr"])
        extra = {group: ours[group] - theirs[group] for group in set(ours) | set(theirs)}
        parts = [f"{g} {us / 1000:+.0f}" for g, us in sorted(extra.items(), key=lambda kv: -kv[1]) if abs(us) >= 1000]
        row("cold: imports, project − reference (ms, -X importtime)", ", ".join(parts))
    if measured.rare is not None:
        calls = Counter(call["operation"] for call in measured.rare["first"]["calls"])
        row(
            "cold: DynamoDB calls of the first page (the reference: 2)",
            ", ".join(f"{k} {v}" for k, v in sorted(calls.items())),
        )


def print_report(measured: Any, *, start_load: str, end_load: str) -> None:
    f = figures_of(measured)
    unmet = print_goals(f, measured)
    print(f"  load average: {start_load} at the start, {end_load} at the end (1/5/15 min)")
    print_cold(f, measured)
    print_warm(f, measured)
    totals = print_profile(measured)
    lone, busy = print_usage(measured)
    print_asset(measured.asset)
    print_storm(measured.storm)
    print_money(f, lone, busy)
    print_shortfalls(unmet, f, measured, totals)
    for error in measured.errors:
        print(f"  not measured: {error}")
