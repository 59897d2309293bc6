"""Run every (workload, size) pair of the store benchmarks in its own process; print and save.

    python -m benchmarks store [--quick] [--passes N] [--json PATH] [--only WORKLOAD]
                               [--size N] [--rebuild]

First the populations are built (or found in the cache, ``benchmarks/results/cache/``), one per
size: 10k and 1M stored messages per store (10k and 100k with ``--quick``). Then every
(workload, size) pair runs in a fresh worker process, one at a time, over several passes (five,
or three with ``--quick``); a pair is reported by its best pass (the lowest of its pass medians:
other work on the machine only adds time), with the 10th and 90th percentiles of all its timed
iterations. Each entrenous workload is compared with its raw sqlcipher3 floor at the same size::

    x floor = floor's median time per operation / the workload's median time per operation
            = the workload's throughput as a multiple of the floor's (at most about 1)

and with itself at the smallest size (``growth`` = median at the largest size / median at the
smallest: 1.00 means the cost does not grow with the store). The targets are stated in those
terms and marked PASS or FAIL.

``send_receive`` and ``receive_many_1000`` are also compared with their *same-work* floors
(``floor_send_receive``, ``floor_receive_batch``: the client's writes in raw sqlcipher3 and its
bare primitive calls; benchmarks/store/common.py), and each same-work floor with the floor of
the target: that ratio is the *ceiling*, the most any implementation doing that work can reach,
and ``1 - target / ceiling`` is the share of its time an implementation meeting the target could
spend on anything else (parsing, padding, checks, its state's encoding, Python itself).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import environment
from benchmarks.protocol.runner import add_run_options, check_idle, fmt_number, machine
from benchmarks.store.common import (
    CONVERSATIONS,
    FLOOR_OF,
    FULL_SIZES,
    MAIN_MESSAGES,
    PAGE,
    QUICK_SIZES,
    ROOT,
    SAME_WORK_OF,
    TEXT,
    WORKLOADS,
    size_label,
)

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "store.json"
#: Longest one worker may take before it is stopped and reported as an error.
WORKER_TIMEOUT = 900
#: Longest building one population may take.
BUILD_TIMEOUT = 3 * 3600
#: The order pairs run in: each entrenous workload next to its floor.
ORDER = (
    "send_receive",
    "floor_insert_1tx",
    "floor_send_receive",
    "receive_many_100",
    "receive_many_1000",
    "floor_insert_batch",
    "floor_receive_batch",
    "history_page",
    "history_page_deep",
    "floor_select_page",
    "open_raw_key",
    "floor_open",
)
assert sorted(ORDER) == sorted(WORKLOADS)
#: Largest growth (median at the largest size / at the smallest) still read as "does not grow":
#: run-to-run noise on the reference VM is of this order.
GROWTH_TOLERANCE = 1.25
#: The size the absolute targets are stated at.
TARGET_SIZE = 1_000_000


@dataclass(frozen=True, slots=True)
class FloorTarget:
    """``workload``'s throughput must be at least ``minimum`` x ``floor``'s, at every size."""

    workload: str
    floor: str
    minimum: float
    text: str


@dataclass(frozen=True, slots=True)
class TimeTarget:
    """``workload``'s median must stay under ``limit_us`` at :data:`TARGET_SIZE`."""

    workload: str
    limit_us: float
    text: str


FLOOR_TARGETS = (
    FloorTarget(
        "send_receive",
        "floor_insert_1tx",
        0.4,
        "committed send+receive >= 0.4x raw 1-transaction-per-row inserts",
    ),
    FloorTarget(
        "receive_many_1000",
        "floor_insert_batch",
        0.5,
        "receive_many (1000) >= 0.5x raw batched inserts",
    ),
)
TIME_TARGETS = (
    TimeTarget("history_page", 2_000, f"history page ({PAGE} newest) under 2 ms"),
    TimeTarget("history_page_deep", 2_000, f"history page ({PAGE}, deep, before=) under 2 ms"),
    TimeTarget("open_raw_key", 5_000, "open with a raw key under 5 ms"),
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = ROOT / "src"
    if src.is_dir():  # measure this checkout's entrenous, installed or not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(src), env.get("PYTHONPATH"))))
    return env


def _last_json(stdout: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def build_population(module: str, size: int, extra: list[str]) -> dict[str, Any]:
    """Build (or find cached) a population with ``python -m module``; its manifest."""
    cmd = [sys.executable, "-m", module, "--size", str(size), *extra]
    done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        cmd,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the {size_label(size)} population failed")
    return _last_json(done.stdout)


def ensure_population(size: int, *, rebuild: bool, explain: bool) -> dict[str, Any]:
    """Build (or find cached) the population of ``size`` in a subprocess; its manifest."""
    extra = (["--rebuild"] if rebuild else []) + (["--explain"] if explain else [])
    return build_population("benchmarks.store.population", size, extra)


def prepare_populations(
    sizes: list[int], ensure: Callable[[int], dict[str, Any]]
) -> dict[int, dict[str, Any]] | None:
    """Build or find the population of each size with ``ensure``, saying so on stderr; their
    manifests by size, or None (after saying why) if one could not be made."""
    populations: dict[int, dict[str, Any]] = {}
    for size in sizes:
        print(f"  population {size_label(size)}: ", end="", file=sys.stderr, flush=True)
        try:
            manifest = ensure(size)
        except (RuntimeError, subprocess.TimeoutExpired, IndexError, ValueError) as exc:
            print(f"failed: {exc}", file=sys.stderr)
            return None
        populations[size] = manifest
        built = manifest["build_seconds"]["total"]
        how = "built in" if manifest["built_now"] else "cached, built in"
        total_mb = sum(manifest["files"].values()) / 1e6
        print(f"{how} {built:,.1f} s ({total_mb:,.0f} MB)", file=sys.stderr)
    return populations


def run_module_worker(
    module: str,
    workload: str,
    size: int,
    directory: str,
    rounds: int,
    warmup: int,
    *,
    timeout: int,
) -> dict[str, Any]:
    """Start one ``python -m module`` worker and return its JSON result (or an "error" one)."""
    cmd = [sys.executable, "-m", module, workload, "--dir", directory]
    cmd += ["--rounds", str(rounds), "--warmup", str(warmup)]
    failure: dict[str, Any] = {"workload": workload, "size": size, "status": "error"}
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
            cmd,
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return failure | {"reason": f"timed out after {timeout} s"}
    try:
        result = _last_json(done.stdout)
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return failure | {"reason": f"worker exited {done.returncode}: {tail}"}
    if result.get("status") == "error" and done.stderr:
        sys.stderr.write(done.stderr)
    return result


def run_worker(
    workload: str, size: int, directory: str, rounds: int, warmup: int
) -> dict[str, Any]:
    """Start one store worker process and return its JSON result (or an "error" result)."""
    return run_module_worker(
        "benchmarks.store.worker",
        workload,
        size,
        directory,
        rounds,
        warmup,
        timeout=WORKER_TIMEOUT,
    )


def summarise(passes: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """Per-operation statistics (microseconds) of one pair: the best pass's median, the
    percentiles, mean, min and max over all timed iterations."""
    last = passes[-1]
    row: dict[str, Any] = {
        "workload": last["workload"],
        "size": size,
        "label": size_label(size),
        "status": last.get("status"),
        "reason": last.get("reason"),
    }
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


def add_comparisons(rows: list[dict[str, Any]], sizes: list[int]) -> None:
    """Each row's ``x_floor`` (floor median / its median, same size) and ``growth`` (its median
    at this size / at the smallest size)."""
    medians = {(r["workload"], r["size"]): r.get("median_us") for r in rows}
    smallest = min(sizes)
    for row in rows:
        median = row.get("median_us")
        floor = FLOOR_OF.get(row["workload"])
        base = medians.get((floor, row["size"])) if floor else None
        row["floor"] = floor
        row["x_floor"] = base / median if base and median else None
        first = medians.get((row["workload"], smallest))
        row["growth"] = median / first if median and first and row["size"] != smallest else None
        same = SAME_WORK_OF.get(row["workload"])
        same_base = medians.get((same, row["size"])) if same else None
        row["same_work_floor"] = same
        row["x_same_work"] = same_base / median if same_base and median else None


def same_work(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    """Per floor target and size: the workload against its same-work floor, that floor's ratio
    to the target's floor (the ceiling), and the share of time the target leaves for the rest."""
    by_pair = {(r["workload"], r["size"]): r for r in rows}
    out = []
    for target in FLOOR_TARGETS:
        same = SAME_WORK_OF.get(target.workload)
        if same is None:
            continue
        for size in sizes:
            ceiling = by_pair.get((same, size), {}).get("x_floor")
            out.append(
                {
                    "workload": target.workload,
                    "same_work_floor": same,
                    "floor": target.floor,
                    "size": size,
                    "minimum": target.minimum,
                    "x_same_work": by_pair.get((target.workload, size), {}).get("x_same_work"),
                    "ceiling": ceiling,
                    "left_at_target": 1 - target.minimum / ceiling if ceiling else None,
                }
            )
    return out


def same_work_lines(entries: list[dict[str, Any]]) -> list[str]:
    """One sentence per entry of :func:`same_work` (for the text output and RESULTS.md)."""
    lines = []
    for e in entries:
        if e["x_same_work"] is None or e["ceiling"] is None:
            continue
        left = e["left_at_target"]
        room = (
            f"a {e['minimum']}x target leaves {left:.1%} of an implementation's time for "
            "everything else"
            if left >= 0
            else f"the ceiling is {-left:.1%} below the {e['minimum']}x target: no "
            "implementation doing this work reaches it in this run"
        )
        lines.append(
            f"{e['workload']} at {size_label(e['size'])}: {e['x_same_work']:.2f}x its same-work "
            f"floor {e['same_work_floor']}, which itself reaches {e['ceiling']:.3f}x "
            f"{e['floor']} (the ceiling): {room}"
        )
    return lines


def judge(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    """Every target with what was measured and PASS, FAIL or n/a."""
    by_pair = {(r["workload"], r["size"]): r for r in rows}
    largest, smallest = max(sizes), min(sizes)
    verdicts: list[dict[str, Any]] = []
    for floor_target in FLOOR_TARGETS:
        for size in sizes:
            ratio = by_pair.get((floor_target.workload, size), {}).get("x_floor")
            verdict = (
                "n/a" if ratio is None else ("PASS" if ratio >= floor_target.minimum else "FAIL")
            )
            verdicts.append(
                {
                    "kind": "x floor",
                    "workload": floor_target.workload,
                    "floor": floor_target.floor,
                    "size": size,
                    "minimum": floor_target.minimum,
                    "measured": ratio,
                    "verdict": verdict,
                    "target": f"{floor_target.text} (at {size_label(size)})",
                }
            )
    for time_target in TIME_TARGETS:
        median = by_pair.get((time_target.workload, largest), {}).get("median_us")
        verdict = "n/a" if median is None else ("PASS" if median < time_target.limit_us else "FAIL")
        at = size_label(largest)
        if largest != TARGET_SIZE:
            at += f"; the target is stated at {size_label(TARGET_SIZE)}"
        verdicts.append(
            {
                "kind": "time",
                "workload": time_target.workload,
                "size": largest,
                "limit_us": time_target.limit_us,
                "measured": median,
                "verdict": verdict,
                "target": f"{time_target.text} (at {at})",
            }
        )
    if largest != smallest:
        for name in ORDER:
            if WORKLOADS[name].kind != "entrenous":
                continue
            growth = by_pair.get((name, largest), {}).get("growth")
            verdict = (
                "n/a" if growth is None else ("PASS" if growth <= GROWTH_TOLERANCE else "FAIL")
            )
            verdicts.append(
                {
                    "kind": "growth",
                    "workload": name,
                    "size": largest,
                    "maximum": GROWTH_TOLERANCE,
                    "measured": growth,
                    "verdict": verdict,
                    "target": f"{name} cost does not grow with the store: "
                    f"{size_label(largest)}/{size_label(smallest)} <= {GROWTH_TOLERANCE}",
                }
            )
    return verdicts


def render_table(rows: list[dict[str, Any]], sizes: list[int]) -> str:
    """The results as an aligned text table, one block per workload."""
    growth_title = f"{size_label(max(sizes))}/{size_label(min(sizes))}"
    header = ("workload", "size", "median us/op", "p10-p90 us", "ops/s", "x floor", growth_title)
    lines = []
    for row in rows:
        if "median_us" in row:
            cells = (
                fmt_number(row["median_us"]),
                f"{fmt_number(row['p10_us'])}-{fmt_number(row['p90_us'])}",
                fmt_number(row["ops_per_s"], 0),
                fmt_number(row["x_floor"], 2) or "-",
                fmt_number(row["growth"], 2) or "-",
            )
        else:
            cells = (str(row["status"]), "", "", "", "")
        lines.append((row["workload"], row["label"], *cells))
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


def render_notes(
    rows: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    ceilings: list[dict[str, Any]] | None = None,
) -> str:
    """Definitions, targets, the same-work comparison, then every error."""
    out = [
        "x floor = floor median / workload median (same size) = throughput as a multiple of "
        "the floor's",
        "growth  = median at the largest size / median at the smallest size",
        "floors: " + ", ".join(f"{w} -> {f}" for w, f in FLOOR_OF.items()),
        "",
        "targets:",
    ]
    for v in verdicts:
        measured = v["measured"]
        if measured is None:
            shown = "-"
        elif v["kind"] == "time":
            shown = f"{measured:,.0f} us"
        else:
            shown = f"{measured:.2f}x"
        out.append(f"  [{v['verdict']:>4}] {v['target']}: measured {shown}")
    same = same_work_lines(ceilings or [])
    if same:
        out += ["", "same work (raw sqlcipher3 and bare primitive calls doing the client's work):"]
        out += [f"  {line}" for line in same]
    errors = [
        f"  {r['workload']} / {r['label']}: {r['status']}: {r['reason']}"
        for r in rows
        if r["status"] != "ok"
    ]
    if errors:
        out += ["", "not measured:", *errors]
    return "\n".join(out)


def render_plans(plans: list[dict[str, Any]], label: str) -> str:
    """The store's query plans at the largest size, with anything that does not use an index."""
    out = [f"query plans of the store's statements (B's store, {label}):"]
    for plan in plans:
        problems = plan["problems"]
        out.append(f"  {plan['call']}: {'; '.join(problems) if problems else 'ok'}")
        out += [f"      {detail}" for detail in plan["plan"]]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks store",
        description="entrenous store benchmarks (Client over SQLCipher 4) against raw sqlcipher3 "
        "floors, on populated stores of two sizes; one process per (workload, size).",
    )
    add_run_options(
        parser,
        quick_help="a short run: 10k and 100k stores, fewer iterations, 3 passes",
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
        help="population size in stored messages (repeatable; default: 10000 and 1000000, "
        "or 10000 and 100000 with --quick)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="rebuild the populations even if cached"
    )
    args = parser.parse_args(argv)
    if args.size and min(args.size) < 10_000:
        parser.error("--size must be at least 10000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [w for w in ORDER if not args.only or w in args.only]
    sizes = sorted(set(args.size or (QUICK_SIZES if args.quick else FULL_SIZES)))
    mode = "quick" if args.quick else "full"
    started = datetime.datetime.now(datetime.UTC)
    host = machine()
    print(f"entrenous store benchmarks ({mode} run), {host['cpu']}", file=sys.stderr)

    populations = prepare_populations(
        sizes,
        lambda size: ensure_population(size, rebuild=args.rebuild, explain=size == max(sizes)),
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
            row = summarise([raw], size)
            shown = f"{row['median_us']:,.1f} us/{workload.unit}" if "median_us" in row else ""
            print(
                f"  {name:<19} {size_label(size):>5}  {raw['status']:<6} {shown}", file=sys.stderr
            )

    rows = [summarise(results[pair], pair[1]) for pair in pairs]
    add_comparisons(rows, sizes)
    verdicts = judge(rows, sizes)
    ceilings = same_work(rows, sizes)
    plans = populations[max(sizes)].get("query_plans", [])
    version = next(
        (raw["version"] for raw in results.get(pairs[0], []) if raw.get("version")), None
    )
    print()
    print(render_table(rows, sizes))
    print()
    print(render_notes(rows, verdicts, ceilings))
    print()
    print(render_plans(plans, size_label(max(sizes))))
    print("\npopulations:")
    for size, manifest in populations.items():
        seconds = manifest["build_seconds"]
        print(
            f"  {size_label(size)}: {manifest['messages']['b']:,} messages per store in "
            f"{manifest['conversations']} conversations; files "
            + ", ".join(f"{name} {n / 1e6:,.1f} MB" for name, n in manifest["files"].items() if n)
            + f"; built in {seconds['total']:,.1f} s"
        )
    print(f"  measured: {version}")

    report = {
        **environment.report_header(started, mode, passes, host),
        "version": version,
        "parameters": {
            "text_size": len(TEXT.encode()),
            "page": PAGE,
            "conversations": CONVERSATIONS,
            "main_messages": MAIN_MESSAGES,
            "sizes": sizes,
            "median": "per operation, of the best pass (lowest of the pass medians)",
            "median_all": "per operation, the median of every timed iteration of all passes",
            "x_floor": "floor median / workload median, same size (throughput as a multiple "
            "of the floor's)",
            "growth": "median at this size / median at the smallest size",
            "x_same_work": "same-work floor median / workload median, same size",
            "ceiling": "a same-work floor's x_floor: the most an implementation doing that "
            "work can reach against the target's floor",
            "growth_tolerance": GROWTH_TOLERANCE,
        },
        "workloads": {
            name: {
                "kind": WORKLOADS[name].kind,
                "unit": WORKLOADS[name].unit,
                "ops_per_iteration": WORKLOADS[name].ops_per_iteration,
                "rounds": WORKLOADS[name].rounds(quick=args.quick),
                "warmup": WORKLOADS[name].warmup(quick=args.quick),
                "floor": FLOOR_OF.get(name),
                "same_work_floor": SAME_WORK_OF.get(name),
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
                    "conversations",
                    "main_messages",
                    "body_size",
                    "state_size",
                    "messages",
                    "files",
                )
            }
            for size, manifest in populations.items()
        },
        "results": rows,
        "targets": verdicts,
        "same_work": ceilings,
        "query_plans": {"size": max(sizes), "plans": plans},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON report: {args.json}")
    return 1 if any(r["status"] == "error" for r in rows) else 0
