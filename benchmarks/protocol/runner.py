"""Run every (implementation, workload) pair in its own process; print and save the results.

    python -m benchmarks protocol [--quick] [--passes N] [--json PATH] [--only WORKLOAD]
                                  [--impl NAME]

Pairs run one after another (never two at once: the machine has two cores and the numbers must
not share them), grouped by workload so that the implementations compared in one row group are
measured close together in time. A run makes several passes over all pairs (five, or three
with ``--quick``), a fresh process each time. Other work on the machine (on a shared virtual
machine, other guests too) only ever adds time, and comes in bursts that slow a whole pass, so
each pair is reported by its best pass: the lowest of its passes' medians. For each pair the
runner reports that median time per operation, the 10th and 90th percentiles of all timed
iterations, operations per second, and the ratio to entrenous:

    ratio = this implementation's median time / entrenous's median time

which is entrenous's throughput as a multiple of this implementation's (above 1: entrenous is
faster). The project's targets are stated in those terms and marked PASS or FAIL.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import environment
from benchmarks.protocol.common import BATCH, MESSAGE_SIZE, SHUFFLE_SEED, WORKLOADS
from benchmarks.protocol.worker import IMPLEMENTATIONS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "protocol.json"
REFERENCE = "entrenous"
#: Longest one worker may take before it is stopped and reported as an error.
WORKER_TIMEOUT = 900
#: Share of all CPUs busy with other work, just before the run, that earns a noise warning.
BUSY_FRACTION = 0.15


@dataclass(frozen=True, slots=True)
class Target:
    """entrenous's throughput on ``workload`` must be at least ``minimum`` x ``peer``'s."""

    workload: str
    peer: str
    minimum: float
    text: str


TARGETS: tuple[Target, ...] = (
    Target("one_way", "doubleratchet", 3.0, "one-way throughput >= 3x doubleratchet"),
    Target("one_way", "vodozemac", 0.6, "one-way throughput >= 0.6x vodozemac"),
    Target("ping_pong", "vodozemac", 0.8, "ping-pong throughput >= 0.8x vodozemac"),
    Target(
        "handshake",
        "vodozemac",
        0.5,
        "handshake (with ML-KEM) >= 0.5x vodozemac (no post-quantum part)",
    ),
)


def summarise(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-operation statistics (microseconds) of one pair from its workers' results.

    The median is the best pass's: the lowest of the passes' medians (other work on the machine
    only adds time); the percentiles, mean, min and max are over all timed iterations.
    """
    last = passes[-1]
    row = {key: last.get(key) for key in ("workload", "impl", "status", "reason", "version")}
    failed = next((raw for raw in passes if raw.get("status") != "ok"), None)
    if failed is not None:
        row.update(status=failed.get("status"), reason=failed.get("reason"))
    per_pass = [
        [ns / raw["ops_per_iteration"] / 1000 for ns in raw.get("samples_ns") or []]
        for raw in passes
    ]
    per_op = [us for samples in per_pass for us in samples]
    row.update(passes=len(passes), iterations=len(per_op), warmup=last.get("warmup"))
    if failed is not None or len(per_op) < 2 or not all(per_pass):
        return row
    pass_medians = [statistics.median(samples) for samples in per_pass]
    median = min(pass_medians)
    deciles = statistics.quantiles(per_op, n=10)
    row.update(
        median_us=median,
        median_all_us=statistics.median(per_op),
        p10_us=deciles[0],
        p90_us=deciles[-1],
        mean_us=statistics.fmean(per_op),
        min_us=min(per_op),
        max_us=max(per_op),
        pass_medians_us=pass_medians,
        ops_per_s=1e6 / median,
    )
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``ratio`` (its median / entrenous's median on the same workload)."""
    reference = {
        r["workload"]: r["median_us"] for r in rows if r["impl"] == REFERENCE and "median_us" in r
    }
    for row in rows:
        base = reference.get(row["workload"])
        row["ratio"] = row["median_us"] / base if base and "median_us" in row else None


def judge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with the measured ratio and PASS, FAIL or n/a."""
    ratios = {(r["workload"], r["impl"]): r.get("ratio") for r in rows}
    verdicts = []
    for target in TARGETS:
        ratio = ratios.get((target.workload, target.peer))
        verdict = "n/a" if ratio is None else ("PASS" if ratio >= target.minimum else "FAIL")
        verdicts.append(
            {
                "workload": target.workload,
                "peer": target.peer,
                "minimum": target.minimum,
                "ratio": ratio,
                "verdict": verdict,
                "target": target.text,
            }
        )
    return verdicts


def run_worker(impl: str, workload: str, rounds: int, warmup: int) -> dict[str, Any]:
    """Start one worker process and return its JSON result (or an "error" result)."""
    env = dict(os.environ)
    src = ROOT / "src"
    if src.is_dir():  # measure this checkout's entrenous, installed or not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(src), env.get("PYTHONPATH"))))
    cmd = [sys.executable, "-m", "benchmarks.protocol.worker", impl, workload]
    cmd += ["--rounds", str(rounds), "--warmup", str(warmup)]
    failure: dict[str, Any] = {"impl": impl, "workload": workload, "status": "error"}
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
            cmd,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return failure | {"reason": f"timed out after {WORKER_TIMEOUT} s"}
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return failure | {"reason": f"worker exited {done.returncode}: {tail}"}
    if result.get("status") == "error" and done.stderr:
        sys.stderr.write(done.stderr)
    return result


def fmt_number(value: float | None, digits: int = 1) -> str:
    """A number for the tables, with thousands separators; empty for ``None``."""
    return "" if value is None else f"{value:,.{digits}f}"


def render_table(rows: list[dict[str, Any]]) -> str:
    """The results as an aligned text table, one block per workload."""
    header = ("workload", "impl", "median us/op", "p10-p90 us", "ops/s", "ratio")
    lines = []
    for row in rows:
        if "median_us" in row:
            spread = f"{fmt_number(row['p10_us'])}-{fmt_number(row['p90_us'])}"
            cells = (
                fmt_number(row["median_us"]),
                spread,
                fmt_number(row["ops_per_s"], 0),
                fmt_number(row["ratio"], 2) or "-",
            )
        else:
            cells = (str(row["status"]), "", "", "")
        lines.append((row["workload"], row["impl"], *cells))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def fmt_line(line: tuple[str, ...]) -> str:
        left = [line[i].ljust(widths[i]) for i in (0, 1)]
        right = [line[i].rjust(widths[i]) for i in range(2, len(line))]
        return "  ".join(left + right).rstrip()

    out = [fmt_line(header), "  ".join("-" * w for w in widths)]
    previous = None
    for line in lines:
        if previous is not None and line[0] != previous:
            out.append("")
        out.append(fmt_line(line))
        previous = line[0]
    return "\n".join(out)


def render_notes(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> str:
    """Targets, then every n/a / unavailable / error reason."""
    out = ["ratio = impl median / entrenous median = entrenous throughput as a multiple of impl's"]
    out += ["", "targets (entrenous vs peer, same run):"]
    for v in verdicts:
        ratio = "-" if v["ratio"] is None else f"{v['ratio']:.2f}x"
        out.append(f"  [{v['verdict']:>4}] {v['target']}: measured {ratio}")
    missing: dict[str, str] = {}  # an unavailable implementation is named once
    lines = []
    for r in rows:
        if r["status"] == "unavailable":
            missing.setdefault(r["impl"], f"  {r['impl']}: unavailable: {r['reason']}")
        elif r["status"] != "ok":
            lines.append(f"  {r['workload']} / {r['impl']}: {r['status']}: {r['reason']}")
    if missing or lines:
        out += ["", "not measured:", *missing.values(), *lines]
    return "\n".join(out)


def cpu_busy(interval: float = 0.5) -> float | None:
    """Share of all CPUs busy during ``interval`` seconds (Linux ``/proc/stat``; else None)."""

    def snapshot() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return sum(ticks), idle

    try:
        total0, idle0 = snapshot()
        time.sleep(interval)
        total1, idle1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total1 - total0
    return None if elapsed <= 0 else 1 - (idle1 - idle0) / elapsed


def check_idle(host: dict[str, Any]) -> None:
    """Sample the CPUs just before measuring: record the share busy in ``host`` and warn on
    stderr when other work would make the numbers noisy."""
    host["cpu_busy_before_run"] = busy = cpu_busy()
    if busy is not None and busy > BUSY_FRACTION:
        print(
            f"  warning: the CPUs were {busy:.0%} busy with other work just before this run; "
            "the numbers will be noisy (run on an idle machine for figures worth quoting)",
            file=sys.stderr,
        )


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    try:
        memory: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        memory = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory,
    }


def passes_option(text: str) -> int:
    """``--passes N``: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_run_options(
    parser: argparse.ArgumentParser, *, quick_help: str, default_json: Path
) -> None:
    """The options every suite's runner takes: ``--quick``, ``--passes`` and ``--json``."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--passes",
        type=passes_option,
        default=None,
        metavar="N",
        help="run every pair N times, in turn, and report its best pass "
        "(default: 5, or 3 with --quick)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=default_json,
        metavar="PATH",
        help=f"where to write the JSON report (default: {default_json.relative_to(ROOT)})",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks protocol",
        description="entrenous protocol benchmarks against vodozemac, doubleratchet + x3dh "
        "and a raw floor of the primitives; one process per (implementation, workload).",
    )
    add_run_options(
        parser,
        quick_help="a short run (a tenth of the iterations, 3 passes)",
        default_json=DEFAULT_JSON,
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(WORKLOADS),
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--impl",
        action="append",
        choices=list(IMPLEMENTATIONS),
        metavar="NAME",
        help=f"run only this implementation (repeatable): {', '.join(IMPLEMENTATIONS)}",
    )
    args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [w for w in WORKLOADS if not args.only or w in args.only]
    impls = [i for i in IMPLEMENTATIONS if not args.impl or i in args.impl]
    mode = "quick" if args.quick else "full"
    started = datetime.datetime.now(datetime.UTC)
    host = machine()
    print(f"entrenous protocol benchmarks ({mode} run), {host['cpu']}", file=sys.stderr)
    check_idle(host)

    passes = args.passes if args.passes is not None else (3 if args.quick else 5)
    pairs = [(name, impl) for name in workloads for impl in impls]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {pair: [] for pair in pairs}
    unavailable: dict[str, str] = {}
    for number in range(1, passes + 1):
        if passes > 1:
            print(f" pass {number}/{passes}", file=sys.stderr)
        for name, impl in pairs:
            done = results[(name, impl)]
            if done and done[-1]["status"] != "ok":
                continue  # n/a, error: the next pass would say the same
            if impl in unavailable:
                done.append(
                    {"impl": impl, "workload": name, "status": "unavailable"}
                    | {"reason": unavailable[impl]}
                )
                continue
            workload = WORKLOADS[name]
            rounds = workload.rounds(quick=args.quick)
            raw = run_worker(impl, name, rounds, workload.warmup(quick=args.quick))
            done.append(raw)
            row = summarise([raw])
            shown = f"{row['median_us']:,.1f} us/{workload.unit}" if "median_us" in row else ""
            print(f"  {name:<16} {impl:<14} {raw['status']:<12} {shown}", file=sys.stderr)
            if raw["status"] == "unavailable":
                unavailable[impl] = str(raw.get("reason"))
                print(f"  skipping {impl}: {raw.get('reason')}", file=sys.stderr)
    raw_results = [raw for pair in pairs for raw in results[pair]]

    rows = [summarise(results[pair]) for pair in pairs]
    add_ratios(rows)
    verdicts = judge(rows)
    implementations = {
        raw["impl"]: {"version": raw.get("version"), "configuration": raw["configuration"]}
        for raw in raw_results
        if raw.get("configuration")
    }
    print()
    print(render_table(rows))
    print()
    print(render_notes(rows, verdicts))
    print("\nimplementations:")
    for impl, about in implementations.items():
        print(f"  {impl} ({about['version']}): {about['configuration']}")

    report = {
        **environment.report_header(started, mode, passes, host),
        "parameters": {
            "message_size": MESSAGE_SIZE,
            "batch": BATCH,
            "shuffle_seed": SHUFFLE_SEED,
            "median": "per operation, of the best pass (lowest of the pass medians)",
            "median_all": "per operation, the median of every timed iteration of all passes",
            "ratio": "impl median / entrenous median (entrenous throughput / impl throughput)",
        },
        "workloads": {
            name: {
                "unit": WORKLOADS[name].unit,
                "ops_per_iteration": WORKLOADS[name].ops_per_iteration,
                "rounds": WORKLOADS[name].rounds(quick=args.quick),
                "warmup": WORKLOADS[name].warmup(quick=args.quick),
                "summary": WORKLOADS[name].summary,
            }
            for name in workloads
        },
        "implementations": implementations,
        "results": rows,
        "targets": verdicts,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON report: {args.json}")
    return 1 if any(r["status"] == "error" for r in rows) else 0
