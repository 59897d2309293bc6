"""Run every (workload, size) pair of the compliance benchmarks in its own process; print and save.

    python -m benchmarks compliance [--quick] [--passes N] [--json PATH] [--only WORKLOAD]
                                    [--size N] [--rebuild]

First the populations are built (or found in the cache, ``benchmarks/results/cache/``), one per
size: 100k and 1M stored messages (25k and 100k with ``--quick``), each with 10k messages
expired at its clock, an erasure subject of 1,000 messages and an export subject of 10k. Then
every (workload, size) pair runs in a fresh worker process, one at a time, over several passes
(five, or three with ``--quick``). An iteration is timed in parts (the whole call, the WAL
truncation, the rest); each part of a pair is reported by its best pass (the lowest of its pass
medians: other work on the machine only adds time), with the 10th and 90th percentiles of all
its timed iterations. Each entrenous workload is compared with its raw sqlcipher3 floor, part by
part, at the same size::

    x floor = floor's median / the workload's median   (the workload's speed as a multiple of
                                                         the floor's: at most about 1)
    growth  = median at the largest size / median at the smallest size

The targets (the sweep's growth, the erasure's time) are marked PASS or FAIL.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from dataclasses import dataclass
from typing import Any

from benchmarks import environment
from benchmarks.compliance.common import (
    EXCL_JOURNAL,
    FLOOR_OF,
    FULL_SIZES,
    LAYOUT,
    PART_LABELS,
    POLICY_TEXT,
    QUICK_SIZES,
    TOTAL,
    WORKLOADS,
)
from benchmarks.protocol.runner import add_run_options, check_idle, fmt_number, machine
from benchmarks.store.common import ROOT, TEXT, size_label
from benchmarks.store.runner import build_population, prepare_populations, run_module_worker

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "compliance.json"
#: Longest one worker may take before it is stopped and reported as an error.
WORKER_TIMEOUT = 1800
#: The order pairs run in: each entrenous workload next to its floor.
ORDER = ("sweep", "floor_sweep", "erase", "floor_erase", "export", "floor_export")
assert sorted(ORDER) == sorted(WORKLOADS)
#: The sizes the targets are stated at.
TARGET_SMALL, TARGET_LARGE = 100_000, 1_000_000


@dataclass(frozen=True, slots=True)
class GrowthTarget:
    """``workload``'s ``part`` may grow at most ``maximum`` x from the smallest size to the
    largest."""

    workload: str
    part: str
    maximum: float
    text: str


@dataclass(frozen=True, slots=True)
class TimeTarget:
    """``workload``'s ``part`` must take under ``limit_ms`` at the largest size."""

    workload: str
    part: str
    limit_ms: float
    text: str


GROWTH_TARGETS = (
    GrowthTarget("sweep", TOTAL, 2.0, "sweep of 10k expired messages (whole client.sweep())"),
    GrowthTarget("sweep", EXCL_JOURNAL, 2.0, "sweep of 10k expired messages, excl. journal"),
)
TIME_TARGETS = (
    TimeTarget(
        "erase", EXCL_JOURNAL, 100.0, "erasure of a 1,000-message subject, excl. journal, < 100 ms"
    ),
)


def ensure_population(size: int, *, rebuild: bool) -> dict[str, Any]:
    """Build (or find cached) the population of ``size`` in a subprocess; its manifest."""
    return build_population(
        "benchmarks.compliance.population", size, ["--rebuild"] if rebuild else []
    )


def run_worker(
    workload: str, size: int, directory: str, rounds: int, warmup: int
) -> dict[str, Any]:
    """Start one compliance worker process and return its JSON result (or an "error" one)."""
    return run_module_worker(
        "benchmarks.compliance.worker",
        workload,
        size,
        directory,
        rounds,
        warmup,
        timeout=WORKER_TIMEOUT,
    )


def summarise(passes: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """One row per part of one pair: the part's best pass median (ms per iteration), the
    percentiles, mean, min and max over all its timed iterations."""
    last = passes[-1]
    name = last["workload"]
    failed = next((raw for raw in passes if raw.get("status") != "ok"), None)
    rows = []
    for part in WORKLOADS[name].parts:
        row: dict[str, Any] = {
            "workload": name,
            "part": part,
            "size": size,
            "label": size_label(size),
            "status": last.get("status") if failed is None else failed.get("status"),
            "reason": last.get("reason") if failed is None else failed.get("reason"),
        }
        per_pass = [
            [ns / 1e6 for ns in (raw.get("samples_ns") or {}).get(part, [])] for raw in passes
        ]
        every = [ms for samples in per_pass for ms in samples]
        row.update(passes=len(passes), iterations=len(every), warmup=last.get("warmup"))
        rows.append(row)
        if failed is not None or not every or not all(per_pass):
            continue
        pass_medians = [statistics.median(samples) for samples in per_pass]
        if len(every) >= 2:
            deciles = statistics.quantiles(every, n=10)
            p10, p90 = deciles[0], deciles[-1]
        else:
            p10 = p90 = every[0]
        row.update(
            median_ms=min(pass_medians),
            median_all_ms=statistics.median(every),
            p10_ms=p10,
            p90_ms=p90,
            mean_ms=statistics.fmean(every),
            min_ms=min(every),
            max_ms=max(every),
            pass_medians_ms=pass_medians,
        )
    return rows


def add_comparisons(rows: list[dict[str, Any]], sizes: list[int]) -> None:
    """Each row's ``x_floor`` (the floor's median for the same part and size / its median) and
    ``growth`` (its median / its median at the smallest size)."""
    medians = {(r["workload"], r["part"], r["size"]): r.get("median_ms") for r in rows}
    smallest = min(sizes)
    for row in rows:
        median = row.get("median_ms")
        floor = FLOOR_OF.get(row["workload"])
        base = medians.get((floor, row["part"], row["size"])) if floor else None
        row["floor"] = floor
        row["x_floor"] = base / median if base and median else None
        first = medians.get((row["workload"], row["part"], smallest))
        row["growth"] = median / first if median and first and row["size"] != smallest else None


def judge(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    """Every target with what was measured and PASS, FAIL or n/a."""
    by_key = {(r["workload"], r["part"], r["size"]): r for r in rows}
    largest, smallest = max(sizes), min(sizes)
    verdicts: list[dict[str, Any]] = []
    span = f"{size_label(largest)}/{size_label(smallest)}"
    if (smallest, largest) != (TARGET_SMALL, TARGET_LARGE):
        span += f"; the target is stated at {size_label(TARGET_LARGE)}/{size_label(TARGET_SMALL)}"
    for growth_target in GROWTH_TARGETS:
        growth = by_key.get((growth_target.workload, growth_target.part, largest), {}).get("growth")
        verdict = (
            "n/a"
            if growth is None or largest == smallest
            else ("PASS" if growth <= growth_target.maximum else "FAIL")
        )
        verdicts.append(
            {
                "kind": "growth",
                "workload": growth_target.workload,
                "part": growth_target.part,
                "size": largest,
                "maximum": growth_target.maximum,
                "measured": growth,
                "verdict": verdict,
                "target": f"{growth_target.text} grows at most {growth_target.maximum:g}x ({span})",
            }
        )
    at = size_label(largest)
    if largest != TARGET_LARGE:
        at += f"; the target is stated at {size_label(TARGET_LARGE)}"
    for time_target in TIME_TARGETS:
        median = by_key.get((time_target.workload, time_target.part, largest), {}).get("median_ms")
        verdict = "n/a" if median is None else ("PASS" if median < time_target.limit_ms else "FAIL")
        verdicts.append(
            {
                "kind": "time",
                "workload": time_target.workload,
                "part": time_target.part,
                "size": largest,
                "limit_ms": time_target.limit_ms,
                "measured": median,
                "verdict": verdict,
                "target": f"{time_target.text} (at {at})",
            }
        )
    return verdicts


def render_table(rows: list[dict[str, Any]], sizes: list[int]) -> str:
    """The results as an aligned text table, one block per workload."""
    growth_title = f"{size_label(max(sizes))}/{size_label(min(sizes))}"
    header = ("workload", "part", "size", "median ms", "p10-p90 ms", "x floor", growth_title)
    lines = []
    for row in rows:
        if "median_ms" in row:
            cells = (
                fmt_number(row["median_ms"], 2),
                f"{fmt_number(row['p10_ms'], 1)}-{fmt_number(row['p90_ms'], 1)}",
                fmt_number(row["x_floor"], 2) or "-",
                fmt_number(row["growth"], 2) or "-",
            )
        else:
            cells = (str(row["status"]), "", "", "")
        lines.append((row["workload"], PART_LABELS[row["part"]], row["label"], *cells))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def fmt_line(line: tuple[str, ...]) -> str:
        left = [line[i].ljust(widths[i]) for i in (0, 1, 2)]
        right = [line[i].rjust(widths[i]) for i in range(3, len(line))]
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
    """Definitions, targets, then every error."""
    out = [
        "times are per iteration: one sweep of 10k expired messages, one erasure of a subject "
        "(1,000 messages), one export of a subject (10k messages)",
        "journal = the WAL truncation after the commit; excl. journal = total - journal; "
        "(key shred) = destroying the data key, inside excl. journal",
        "x floor = floor median / workload median (same part, same size); growth = median at "
        "the largest size / at the smallest",
        "floors: " + ", ".join(f"{w} -> {f}" for w, f in FLOOR_OF.items()),
        "",
        "targets:",
    ]
    for v in verdicts:
        measured = v["measured"]
        if measured is None:
            shown = "-"
        elif v["kind"] == "time":
            shown = f"{measured:,.1f} ms"
        else:
            shown = f"{measured:.2f}x"
        out.append(f"  [{v['verdict']:>4}] {v['target']}: measured {shown}")
    errors = sorted(
        {
            f"  {r['workload']} / {r['label']}: {r['status']}: {r['reason']}"
            for r in rows
            if r["status"] != "ok"
        }
    )
    if errors:
        out += ["", "not measured:", *errors]
    return "\n".join(out)


def render_plans(plans: dict[str, list[dict[str, Any]]], label: str) -> str:
    """The statements each workload ran (first warm-up iteration, largest size) and their plans,
    with anything that does not use an index."""
    out = [f"query plans (statements of the first warm-up iteration, {label}):"]
    for workload, found in plans.items():
        out.append(f"  {workload}:")
        for plan in found:
            problems = plan["problems"]
            runs = f" (x{plan['runs']})" if plan.get("runs", 1) > 1 else ""
            out.append(f"    {plan['sql'][:100]}{runs}")
            out.append(f"        {' / '.join(plan['plan']) or '-'}")
            if problems:
                out.append(f"        note: {'; '.join(problems)}")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks compliance",
        description="entrenous compliance benchmarks (sweep, erasure, export through the Client "
        "over SQLCipher 4) against raw sqlcipher3 floors on populated stores of two sizes; one "
        "process per (workload, size).",
    )
    add_run_options(
        parser,
        quick_help="a short run: 25k and 100k stores, fewer iterations, 3 passes",
        default_json=DEFAULT_JSON,
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(WORKLOADS),
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(ORDER)}",
    )
    parser.add_argument(
        "--size",
        action="append",
        type=int,
        metavar="N",
        help="population size in stored messages (repeatable; default: 100000 and 1000000, "
        "or 25000 and 100000 with --quick)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="rebuild the populations even if cached"
    )
    args = parser.parse_args(argv)
    if args.size and min(args.size) < LAYOUT.special:
        parser.error(f"--size must be at least {LAYOUT.special}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [w for w in ORDER if not args.only or w in args.only]
    sizes = sorted(set(args.size or (QUICK_SIZES if args.quick else FULL_SIZES)))
    mode = "quick" if args.quick else "full"
    started = datetime.datetime.now(datetime.UTC)
    host = machine()
    print(f"entrenous compliance benchmarks ({mode} run), {host['cpu']}", file=sys.stderr)

    populations = prepare_populations(
        sizes, lambda size: ensure_population(size, rebuild=args.rebuild)
    )
    if populations is None:
        return 1

    check_idle(host)
    passes = args.passes if args.passes is not None else (3 if args.quick else 5)
    pairs = [(name, size) for name in workloads for size in sizes]
    results: dict[tuple[str, int], list[dict[str, Any]]] = {pair: [] for pair in pairs}
    for number in range(1, passes + 1):
        if passes > 1:
            print(f" pass {number}/{passes}", file=sys.stderr)
        for name, size in pairs:
            done = results[(name, size)]
            if done and done[-1]["status"] != "ok":
                continue  # an error: the next pass would say the same
            workload = WORKLOADS[name]
            raw = run_worker(
                name,
                size,
                populations[size]["directory"],
                workload.rounds(quick=args.quick),
                workload.warmup(quick=args.quick),
            )
            done.append(raw)
            shown = ""
            if raw["status"] == "ok":
                parts = summarise([raw], size)
                shown = ", ".join(
                    f"{PART_LABELS[p['part']]} {p['median_ms']:,.1f} ms"
                    for p in parts
                    if "median_ms" in p
                )
            print(
                f"  {name:<13} {size_label(size):>5}  {raw['status']:<6} {shown}", file=sys.stderr
            )

    rows = [row for pair in pairs for row in summarise(results[pair], pair[1])]
    add_comparisons(rows, sizes)
    verdicts = judge(rows, sizes)
    largest = max(sizes)
    plans = {
        name: results[(name, largest)][-1].get("query_plans", [])
        for name in workloads
        if results.get((name, largest))
    }
    version = next(
        (raw["version"] for pair in pairs for raw in results[pair] if raw.get("version")), None
    )
    checks = {
        f"{name}/{size_label(size)}": results[(name, size)][-1].get("checks")
        for name, size in pairs
    }
    print()
    print(render_table(rows, sizes))
    print()
    print(render_notes(rows, verdicts))
    print()
    print(render_plans(plans, size_label(largest)))
    print("\npopulations:")
    for size, manifest in populations.items():
        seconds = manifest["build_seconds"]
        print(
            f"  {size_label(size)}: {manifest['counts']['messages']:,} messages in "
            f"{manifest['layout']['conversations']} conversations; files "
            + ", ".join(f"{name} {n / 1e6:,.1f} MB" for name, n in manifest["files"].items())
            + f"; built in {seconds['total']:,.1f} s"
        )
    print(f"  measured: {version}")

    report = {
        **environment.report_header(started, mode, passes, host),
        "version": version,
        "parameters": {
            "text_size": len(TEXT.encode()),
            "layout": {
                "expired": LAYOUT.expired,
                "expiring_conversations": LAYOUT.expiring_conversations,
                "erase_messages": LAYOUT.erase_messages,
                "export_messages": LAYOUT.export_messages,
                "conversations": LAYOUT.conversations,
            },
            "policy": POLICY_TEXT,
            "sizes": sizes,
            "unit": "ms per iteration",
            "median": "per part, of the part's best pass (lowest of the pass medians)",
            "median_all": "per part, the median of every timed iteration of all passes",
            "parts": {
                "total": "the whole call",
                "journal": "the WAL truncation after the commit (client: time inside "
                "SqlCipherStore.truncate_journal; floor: PRAGMA wal_checkpoint(TRUNCATE))",
                "excl_journal": "total - journal",
                "shred": "erase only: time inside SqlCipherStore.shred_pending (data key "
                "destroyed), part of excl_journal",
            },
            "x_floor": "floor median / workload median, same part and size",
            "growth": "median at this size / median at the smallest size",
        },
        "workloads": {
            name: {
                "kind": WORKLOADS[name].kind,
                "parts": list(WORKLOADS[name].parts),
                "rounds": WORKLOADS[name].rounds(quick=args.quick),
                "warmup": WORKLOADS[name].warmup(quick=args.quick),
                "floor": FLOOR_OF.get(name),
                "summary": WORKLOADS[name].summary,
            }
            for name in workloads
        },
        "populations": {
            size_label(size): {
                key: manifest.get(key)
                for key in (
                    "size",
                    "cache_key",
                    "built",
                    "build_seconds",
                    "layout",
                    "now_ms",
                    "policy",
                    "counts",
                    "files",
                )
            }
            for size, manifest in populations.items()
        },
        "results": rows,
        "checks": checks,
        "targets": verdicts,
        "query_plans": {"size": largest, "plans": plans},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON report: {args.json}")
    return 1 if any(r["status"] == "error" for r in rows) else 0
