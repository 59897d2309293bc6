"""Cost against store size: the history page, the sweep and the erasure at three store sizes.

    python -m benchmarks scaling [--quick] [--passes N] [--json PATH] [--reuse JSON]
                                 [--store-size N] [--compliance-size N] [--rebuild]

The question is whether what these operations cost follows their work (50 messages read, 10k
expired messages deleted, a 1,000-message subject erased) or the store (how many messages it
holds). Each suite measures at two sizes; this run measures the same workloads, with the same
workers on the same cached populations, at three or more, for the plot in
``benchmarks/RESULTS.md`` (:mod:`benchmarks.report`):

* ``history_page`` and its floor ``floor_select_page`` (the store suite's workers): 10k, 100k and
  1M stored messages (10k, 30k and 100k with ``--quick``);
* ``sweep``, ``erase`` and their floors ``floor_sweep``, ``floor_erase`` (the compliance suite's
  workers): 25k, 100k and 1M (25k, 50k and 100k with ``--quick``); a compliance population holds
  at least the 21,000 messages its workloads need, so it starts at 25k, not 10k.

Points a suite already measured in the same run (``--reuse`` its JSON report, of the same mode;
``python -m benchmarks`` does) are taken from it, not measured again, so the plot and the tables
show the same numbers; the others run here, each pair in its own worker process, one at a time,
over several passes, reported as the suites report them (the best pass's median, the median of
all timed iterations, p10-p90). The JSON report (``benchmarks/results/scaling.json``) holds one
point per (workload, part, size) in milliseconds, where it came from, and each series' growth
(the median at the largest size / at the smallest).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import environment
from benchmarks.compliance import runner as compliance_runner
from benchmarks.compliance.common import LAYOUT, TOTAL
from benchmarks.compliance.common import WORKLOADS as COMPLIANCE_WORKLOADS
from benchmarks.protocol.runner import add_run_options, check_idle, machine
from benchmarks.store import runner as store_runner
from benchmarks.store.common import ROOT, size_label
from benchmarks.store.common import WORKLOADS as STORE_WORKLOADS

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "scaling.json"


@dataclass(frozen=True, slots=True)
class Series:
    """One line of the plot: a workload (one part of it) of a suite, and its floor."""

    workload: str
    suite: str
    floor: str
    title: str


SERIES = (
    Series("history_page", "store", "floor_select_page", "history page (50 newest messages)"),
    Series("sweep", "compliance", "floor_sweep", "sweep of 10k expired messages"),
    Series("erase", "compliance", "floor_erase", "erasure of a 1,000-message subject"),
)
#: Store sizes per suite, for a full and a ``--quick`` run.
FULL_SIZES = {"store": (10_000, 100_000, 1_000_000), "compliance": (25_000, 100_000, 1_000_000)}
QUICK_SIZES = {"store": (10_000, 30_000, 100_000), "compliance": (25_000, 50_000, 100_000)}
#: The part of a compliance workload plotted (the whole call); the store suite has no parts.
PART = TOTAL


def workloads_of(suite: str) -> list[str]:
    """The workloads this run measures of ``suite``, in the order they run (each next to its
    floor)."""
    return [name for s in SERIES if s.suite == suite for name in (s.workload, s.floor)]


def point_from_row(row: dict[str, Any], suite: str, source: str) -> dict[str, Any] | None:
    """A point (milliseconds) from one row of a suite's results; None if it was not measured."""
    if row.get("status") != "ok":
        return None
    if suite == "store":
        if "median_us" not in row:
            return None
        scale, unit = 1e-3, "us"
    else:
        if row.get("part") != PART or "median_ms" not in row:
            return None
        scale, unit = 1.0, "ms"

    def ms(key: str) -> float | None:
        value = row.get(f"{key}_{unit}")
        return None if value is None else value * scale

    return {
        "workload": row["workload"],
        "suite": suite,
        "part": PART if suite == "compliance" else None,
        "size": row["size"],
        "label": size_label(row["size"]),
        "median_ms": ms("median"),
        "median_all_ms": ms("median_all"),
        "p10_ms": ms("p10"),
        "p90_ms": ms("p90"),
        "passes": row.get("passes"),
        "iterations": row.get("iterations"),
        "source": source,
    }


def reusable(path: Path, mode: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The points a suite's JSON report at ``path`` holds for this run's workloads, if it is a
    report of the store or compliance suite in ``mode``: (its suite, its points)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, []
    if report.get("mode") != mode:
        return None, []
    name = path.stem
    suite = "store" if "page" in report.get("parameters", {}) else "compliance"
    wanted = set(workloads_of(suite))
    points = [
        point
        for row in report.get("results", [])
        if row.get("workload") in wanted
        and (point := point_from_row(row, suite, f"{name}.json ({report.get('started')})"))
    ]
    return suite, points


def add_growth(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload: its median at each size and its growth (largest / smallest size)."""
    out = []
    for workload in dict.fromkeys(p["workload"] for p in points):
        mine = sorted((p for p in points if p["workload"] == workload), key=lambda p: p["size"])
        first, last = mine[0], mine[-1]
        growth = (
            last["median_ms"] / first["median_ms"]
            if len(mine) > 1 and first["median_ms"] and last["median_ms"]
            else None
        )
        out.append(
            {
                "workload": workload,
                "sizes": [p["size"] for p in mine],
                "smallest": first["size"],
                "largest": last["size"],
                "growth": growth,
            }
        )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks scaling",
        description="History page, sweep and erasure (and their floors) at three store sizes, "
        "with the store and compliance suites' workers; points of a --reuse'd suite report are "
        "not measured again.",
    )
    add_run_options(
        parser,
        quick_help="a short run: stores of 10k/30k/100k (history) and 25k/50k/100k (sweep, "
        "erasure), fewer iterations, 3 passes",
        default_json=DEFAULT_JSON,
    )
    parser.add_argument(
        "--reuse",
        action="append",
        type=Path,
        default=[],
        metavar="JSON",
        help="a store or compliance suite JSON report of the same mode whose points to take "
        "instead of measuring them (repeatable)",
    )
    parser.add_argument(
        "--store-size",
        action="append",
        type=int,
        metavar="N",
        help="store size for the history page (repeatable; default 10000, 100000, 1000000)",
    )
    parser.add_argument(
        "--compliance-size",
        action="append",
        type=int,
        metavar="N",
        help="store size for the sweep and the erasure (repeatable; default 25000, 100000, "
        "1000000)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="rebuild the populations even if cached"
    )
    args = parser.parse_args(argv)
    if args.store_size and min(args.store_size) < 10_000:
        parser.error("--store-size must be at least 10000")
    if args.compliance_size and min(args.compliance_size) < LAYOUT.special:
        parser.error(f"--compliance-size must be at least {LAYOUT.special}")
    return args


def _measure(suite: str, name: str, size: int, directory: str, *, quick: bool) -> dict[str, Any]:
    if suite == "store":
        workload = STORE_WORKLOADS[name]
        return store_runner.run_worker(
            name, size, directory, workload.rounds(quick=quick), workload.warmup(quick=quick)
        )
    compliance = COMPLIANCE_WORKLOADS[name]
    return compliance_runner.run_worker(
        name, size, directory, compliance.rounds(quick=quick), compliance.warmup(quick=quick)
    )


def _summarise(suite: str, passes: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    if suite == "store":
        return [store_runner.summarise(passes, size)]
    return compliance_runner.summarise(passes, size)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    defaults = QUICK_SIZES if args.quick else FULL_SIZES
    sizes = {
        "store": sorted(set(args.store_size or defaults["store"])),
        "compliance": sorted(set(args.compliance_size or defaults["compliance"])),
    }
    started = datetime.datetime.now(datetime.UTC)
    host = machine()
    print(f"entrenous scaling benchmarks ({mode} run), {host['cpu']}", file=sys.stderr)

    points: list[dict[str, Any]] = []
    for path in args.reuse:
        suite, found = reusable(path, mode)
        if suite is None:
            print(
                f"  not reused: {path} (missing, unreadable or not a {mode} run)", file=sys.stderr
            )
            continue
        found = [p for p in found if p["size"] in sizes[suite]]
        points += found
        print(f"  reused from {path.name}: {len(found)} points", file=sys.stderr)
    have = {(p["workload"], p["size"]) for p in points}
    pairs = [
        (suite, name, size)
        for suite in ("store", "compliance")
        for name in workloads_of(suite)
        for size in sizes[suite]
        if (name, size) not in have
    ]

    directories: dict[tuple[str, int], str] = {}
    built = False
    for suite, size in dict.fromkeys((suite, size) for suite, _, size in pairs):
        print(f"  {suite} population {size_label(size)}: ", end="", file=sys.stderr, flush=True)
        try:
            if suite == "store":
                manifest = store_runner.ensure_population(size, rebuild=args.rebuild, explain=False)
            else:
                manifest = compliance_runner.ensure_population(size, rebuild=args.rebuild)
        except (RuntimeError, subprocess.TimeoutExpired, IndexError, ValueError) as exc:
            print(f"failed: {exc}", file=sys.stderr)
            return 1
        directories[(suite, size)] = manifest["directory"]
        built = built or bool(manifest["built_now"])
        how = "built in" if manifest["built_now"] else "cached, built in"
        print(f"{how} {manifest['build_seconds']['total']:,.1f} s", file=sys.stderr)

    if built:
        # A population just built leaves hundreds of MB of dirty pages; written back while
        # measuring, they would slow every fsync of the workers.
        os.sync()
    check_idle(host)
    passes = args.passes if args.passes is not None else (3 if args.quick else 5)
    results: dict[tuple[str, str, int], list[dict[str, Any]]] = {pair: [] for pair in pairs}
    for number in range(1, passes + 1 if pairs else 1):
        if passes > 1:
            print(f" pass {number}/{passes}", file=sys.stderr)
        for suite, name, size in pairs:
            done = results[(suite, name, size)]
            if done and done[-1]["status"] != "ok":
                continue  # an error: the next pass would say the same
            raw = _measure(suite, name, size, directories[(suite, size)], quick=args.quick)
            done.append(raw)
            shown = ""
            for row in _summarise(suite, [raw], size):
                point = point_from_row(row, suite, "")
                if point is not None:
                    shown = f"{point['median_ms']:,.3f} ms"
            print(
                f"  {name:<17} {size_label(size):>5}  {raw['status']:<6} {shown}", file=sys.stderr
            )

    errors = []
    for (suite, name, size), done in results.items():
        for row in _summarise(suite, done, size):
            point = point_from_row(row, suite, "measured by this run")
            if point is not None:
                points.append(point)
            elif row.get("status") != "ok":
                errors.append(
                    f"{name} / {size_label(size)}: {row.get('status')}: {row.get('reason')}"
                )
    order = {
        name: i
        for i, name in enumerate(w for s in ("store", "compliance") for w in workloads_of(s))
    }
    points.sort(key=lambda p: (order[p["workload"]], p["size"]))
    growth = add_growth(points)
    print()
    for series in SERIES:
        for name in (series.workload, series.floor):
            mine = [p for p in points if p["workload"] == name]
            shown = ", ".join(f"{p['label']} {p['median_ms']:,.3f} ms" for p in mine)
            print(f"  {name:<17} {shown}")
    for g in growth:
        if g["growth"] is not None:
            print(
                f"  growth {g['workload']:<17} {size_label(g['largest'])}/"
                f"{size_label(g['smallest'])}: {g['growth']:.2f}x"
            )
    for line in errors:
        print(f"  not measured: {line}")

    report = {
        **environment.report_header(started, mode, passes, host),
        "parameters": {
            "sizes": sizes,
            "unit": "ms per iteration (a history page, a sweep, an erasure)",
            "part": f"compliance workloads: the part {PART!r} (the whole call)",
            "median": "of the best pass (lowest of the pass medians)",
            "median_all": "the median of every timed iteration of all passes",
            "growth": "median at the largest size / median at the smallest size",
        },
        "series": [
            {"workload": s.workload, "suite": s.suite, "floor": s.floor, "title": s.title}
            for s in SERIES
        ],
        "points": points,
        "growth": growth,
        "errors": errors,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON report: {args.json}")
    return 1 if errors else 0
