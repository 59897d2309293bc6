"""One report of every benchmark: ``benchmarks/RESULTS.md`` and its plot, from the JSON reports.

    python -m benchmarks report [--results DIR] [--out PATH] [--plot PATH]

``python -m benchmarks`` (all suites) ends by calling :func:`write_report`; this command writes
the report again from the JSON reports already in ``benchmarks/results/`` (``protocol.json``,
``store.json``, ``compliance.json``, ``scaling.json``) without running anything. A report that
is missing is named as not run. The Markdown holds, per suite, a table of the medians with the
ratios to the peers or to the raw floor, the suite's targets with PASS or FAIL, the machine, the
versions and the command that produced the numbers; the plot (PNG, drawn with matplotlib, the
``bench`` extra) shows the history page, the sweep and the erasure against the store's size.
Without matplotlib the tables are written and the report says the plot was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.protocol.runner import BUSY_FRACTION
from benchmarks.scaling import SERIES, point_from_row
from benchmarks.store.common import ROOT, SAME_WORK_OF, size_label
from benchmarks.store.runner import same_work_lines

RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_OUT = ROOT / "benchmarks" / "RESULTS.md"
#: Next to RESULTS.md (not in the ignored results/ folder), so a committed report shows it.
DEFAULT_PLOT = ROOT / "benchmarks" / "cost-vs-store-size.png"
SUITES = ("protocol", "store", "compliance", "scaling")
#: The peers of the protocol suite, in the order of the table's columns, and its reference.
PROTOCOL_REFERENCE = "entrenous"
PROTOCOL_PEERS = ("vodozemac", "doubleratchet", "floor")
#: (report name, label) of the versions a report names, in order.
VERSION_LABELS = (
    ("entrenous", "entrenous"),
    ("entrenous_commit", "entrenous git commit"),
    ("python", "Python"),
    ("pynacl", "PyNaCl"),
    ("cryptography", "cryptography"),
    ("sqlcipher3", "sqlcipher3"),
    ("sqlcipher", "SQLCipher"),
    ("sqlite", "SQLite (in SQLCipher)"),
    ("msgpack", "msgpack"),
    ("pydantic", "pydantic"),
    ("vodozemac", "vodozemac"),
    ("doubleratchet", "doubleratchet"),
    ("x3dh", "x3dh"),
    ("atheris", "atheris"),
    ("matplotlib", "matplotlib"),
)
#: The en dash of ranges in the tables.
DASH = "\u2013"
PART_LABELS = {"total": "total", "excl_journal": "excl. journal", "journal": "journal"}
PART_LABELS["shred"] = "(key shred)"


def load_reports(directory: Path) -> dict[str, dict[str, Any]]:
    """The suites' JSON reports found in ``directory``, by suite name."""
    reports = {}
    for suite in SUITES:
        path = directory / f"{suite}.json"
        if path.is_file():
            reports[suite] = json.loads(path.read_text(encoding="utf-8"))
    return reports


# ------------------------------------------------------------------------------------------------
# formatting


def num(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators; ``-`` for None."""
    return "-" if value is None else f"{value:,.{digits}f}"


def times(value: float | None, digits: int = 2) -> str:
    """A ratio as ``0.79x``; ``-`` for None."""
    return "-" if value is None else f"{value:.{digits}f}x"


def spread(row: dict[str, Any], unit: str, digits: int = 1) -> str:
    """``p10-p90`` of a row in ``unit`` (``us`` or ``ms``)."""
    low, high = row.get(f"p10_{unit}"), row.get(f"p90_{unit}")
    return "-" if low is None or high is None else f"{num(low, digits)}{DASH}{num(high, digits)}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int]) -> str:
    """A Markdown table; columns whose index is in ``right`` are right-aligned."""
    aligned = set(right)
    lines = ["| " + " | ".join(header) + " |"]
    lines.append(
        "| " + " | ".join("---:" if i in aligned else "---" for i in range(len(header))) + " |"
    )
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def gib(value: int | None) -> str:
    return "-" if not value else f"{value / 2**30:.1f} GiB"


def verdict_lines(verdicts: list[dict[str, Any]], unit: str) -> list[str]:
    """One bullet per target: verdict, target, what was measured."""
    out = []
    for v in verdicts:
        measured = v.get("measured", v.get("ratio"))
        kind = v.get("kind", "ratio")
        if measured is None:
            shown = "not measured"
        elif kind == "time":
            shown = f"{num(measured, 1 if unit == 'ms' else 0)} {'ms' if unit == 'ms' else 'µs'}"
        else:
            shown = times(measured)
        out.append(f"- **{v['verdict']}** {v['target']}: measured {shown}")
    return out


def not_measured(rows: list[dict[str, Any]], key: str) -> list[str]:
    """One bullet per pair a suite did not measure, with its reason (each once)."""
    found = dict.fromkeys(
        f"- {r['workload']} / {r.get(key) or ''}: {r.get('status')}: {r.get('reason')}"
        for r in rows
        if r.get("status") != "ok"
    )
    return list(found)


# ------------------------------------------------------------------------------------------------
# sections


def run_section(reports: dict[str, dict[str, Any]]) -> list[str]:
    out = ["## The run", ""]
    commands = dict.fromkeys(r.get("command") for r in reports.values() if r.get("command"))
    if len(commands) == 1:
        out.append(
            f"Produced by `{next(iter(commands))}` (from the repository root; "
            "`python3 dev.py bench` runs the same with the project's venv)."
        )
    elif commands:
        out.append("Produced by more than one command (see the table).")
    else:
        out.append("The JSON reports do not record the command that produced them.")
    out += [
        "",
        table(
            ("suite", "command", "started (UTC)", "mode", "passes", "CPU busy before"),
            [
                (
                    suite,
                    f"`{r['command']}`" if r.get("command") else "not recorded",
                    str(r.get("started", "-")),
                    str(r.get("mode", "-")),
                    str(r.get("passes", "-")),
                    busy_text(r.get("machine", {}).get("cpu_busy_before_run")),
                )
                for suite, r in reports.items()
            ],
            (4, 5),
        ),
    ]
    quick = [suite for suite, r in reports.items() if r.get("mode") == "quick"]
    if quick:
        out += [
            "",
            f"**Short run** (`--quick`: smaller stores, fewer iterations) for: {', '.join(quick)}."
            " Its numbers check that everything runs; quote those of a full run.",
        ]
    missing = [s for s in SUITES if s not in reports]
    if missing:
        out += ["", "Not run (no JSON report): " + ", ".join(missing) + "."]
    return out


def busy_text(busy: float | None) -> str:
    return "-" if busy is None else f"{busy:.0%}"


def machine_section(reports: dict[str, dict[str, Any]]) -> list[str]:
    machines = {suite: r.get("machine", {}) for suite, r in reports.items()}
    fields: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
        ("CPU", lambda m: str(m.get("cpu", "-"))),
        ("cores", lambda m: str(m.get("cpu_count", "-"))),
        ("RAM", lambda m: gib(m.get("memory_bytes"))),
        ("OS", lambda m: str(m.get("platform", "-"))),
        ("Python", lambda m: f"{m.get('python', '-')} ({m.get('implementation', '-')})"),
    )
    out = ["## Machine", ""]
    rows: list[tuple[str, ...]] = []
    for label, get in fields:
        values = dict.fromkeys(get(m) for m in machines.values())
        if len(values) <= 1:
            rows.append((label, next(iter(values), "-")))
        else:
            rows.append((label, "; ".join(f"{s}: {get(m)}" for s, m in machines.items())))
    busy = {s: m.get("cpu_busy_before_run") for s, m in machines.items()}
    measured = [b for b in busy.values() if b is not None]
    if not measured:
        idle = "unknown (CPU use not sampled)"
    elif all(b <= BUSY_FRACTION for b in measured):
        idle = f"yes: at most {max(measured):.0%} of the CPUs busy before each suite"
    else:
        idle = "**no**: " + ", ".join(
            f"{s} {busy_text(b)}" for s, b in busy.items() if b is not None and b > BUSY_FRACTION
        )
        idle += " of the CPUs busy with other work before the suite: these numbers are noisy"
    rows.append(("idle", idle))
    out.append(table(("", "value"), rows, ()))
    out += [
        "",
        "Each runner samples CPU use for half a second just before it measures (after building "
        f"its populations) and calls the machine busy above {BUSY_FRACTION:.0%}; work that "
        "starts later in the run is not seen, but only ever adds time (each pair is reported by "
        "its best pass).",
    ]
    return out


def versions_section(reports: dict[str, dict[str, Any]]) -> list[str]:
    recorded = {s: r["versions"] for s, r in reports.items() if r.get("versions")}
    out = ["## Versions", ""]
    if not recorded:
        out.append("The JSON reports do not record versions (reports from before they did).")
        return out
    distinct = {json.dumps(v, sort_keys=True) for v in recorded.values()}
    if len(distinct) == 1:
        only = next(iter(recorded.values()))
        rows: list[tuple[str, ...]] = [
            (label, only.get(key) or "not installed") for key, label in VERSION_LABELS
        ]
        out.append(table(("package", "version"), rows, ()))
    else:
        rows = [
            (label, *(v.get(key) or "not installed" for v in recorded.values()))
            for key, label in VERSION_LABELS
        ]
        out.append(table(("package", *recorded), rows, ()))
        out += ["", "The suites ran with different versions (one column each)."]
    unrecorded = [s for s in reports if s not in recorded]
    if unrecorded:
        out += ["", f"Not recorded by: {', '.join(unrecorded)}."]
    return out


def statistics_section() -> list[str]:
    return [
        "## What the numbers are",
        "",
        "Every suite runs each pair (implementation or workload, and store size) in a fresh "
        "process, one at a time, over several passes. Per pair:",
        "",
        "* **median**: the median of the best pass (the lowest of the pass medians). Other work "
        "on the machine only ever adds time, so this is the statistic the ratios and the "
        "targets use;",
        "* **median (all)**: the median of every timed iteration of all passes;",
        f"* **p10{DASH}p90**: the 10th and 90th percentiles of every timed iteration (a wide "
        "spread shows a noisy run).",
        "",
        "Ratios are of medians: **x peer** = the peer's median / entrenous's (entrenous's "
        "throughput as a multiple of the peer's; above 1, entrenous is faster); **x floor** = "
        "the raw floor's median / the workload's (the workload's speed as a multiple of the "
        "floor's: at most about 1); **growth** = the median at the largest store / at the "
        "smallest (1.00: the cost does not grow with the store). benchmarks/README.md defines "
        "every workload and floor.",
    ]


def protocol_section(report: dict[str, Any] | None) -> list[str]:
    out = ["## Protocol (µs per operation)", ""]
    if report is None:
        return [*out, "Not run."]
    rows = report.get("results", [])
    by = {(r["workload"], r["impl"]): r for r in rows}
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    peers = [p for p in PROTOCOL_PEERS if any(r["impl"] == p for r in rows)]

    def median(workload: str, impl: str) -> str:
        row = by.get((workload, impl), {})
        if "median_us" in row:
            return num(row["median_us"])
        return "n/a" if row.get("status") == "n/a" else str(row.get("status", "-"))

    def ratio(workload: str, impl: str) -> str:
        return times(by.get((workload, impl), {}).get("ratio"))

    header = ["workload", PROTOCOL_REFERENCE, *peers]
    header += [f"x {p}" if p != "floor" else "x floor" for p in peers]
    summary = [
        (
            f"`{w}`",
            median(w, PROTOCOL_REFERENCE),
            *(median(w, p) for p in peers),
            *(ratio(w, p) for p in peers),
        )
        for w in workloads
    ]
    out += [
        f"Medians in µs per operation, and each peer's median / entrenous's ({PROTOCOL_REFERENCE}"
        "'s throughput as a multiple of the peer's). For the floor (the bare primitive calls) "
        "the same quotient is entrenous's speed as a multiple of the floor's.",
        "",
        table(header, summary, range(1, len(header))),
        "",
        "Per implementation:",
        "",
    ]
    detail: list[tuple[str, ...]] = []
    for r in rows:
        if "median_us" in r:
            detail.append(
                (
                    f"`{r['workload']}`",
                    r["impl"],
                    num(r["median_us"]),
                    num(r.get("median_all_us")),
                    spread(r, "us"),
                    num(r.get("ops_per_s"), 0),
                    times(r.get("ratio")),
                )
            )
        else:
            detail.append((f"`{r['workload']}`", r["impl"], str(r.get("status")), *["-"] * 4))
    out.append(
        table(
            (
                "workload",
                "impl",
                "median",
                "median (all)",
                f"p10{DASH}p90",
                "ops/s",
                "impl / entrenous",
            ),
            detail,
            range(2, 7),
        )
    )
    return out + _targets_and_gaps(report, rows, "us", "impl")


def _sizes_and_span(report: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[list[int], str]:
    """A suite's store sizes and the heading of its growth column (largest/smallest)."""
    sizes = report.get("parameters", {}).get("sizes") or sorted({r["size"] for r in rows})
    span = f"{size_label(max(sizes))}/{size_label(min(sizes))}" if sizes else "growth"
    return sizes, span


def _targets_and_gaps(
    report: dict[str, Any], rows: list[dict[str, Any]], unit: str, name_key: str
) -> list[str]:
    """The lines that end a suite's section: its target verdicts, then what was not measured."""
    out = ["", "Targets:", "", *verdict_lines(report.get("targets", []), unit)]
    missing = not_measured(rows, name_key)
    if missing:
        out += ["", "Not measured:", "", *missing]
    return out


def store_section(report: dict[str, Any] | None) -> list[str]:
    out = ["## Store (µs per operation)", ""]
    if report is None:
        return [*out, "Not run."]
    rows = report.get("results", [])
    sizes, span = _sizes_and_span(report, rows)
    ceilings = set(SAME_WORK_OF.values())
    body: list[tuple[str, ...]] = []
    for r in rows:
        if "median_us" in r:
            body.append(
                (
                    f"`{r['workload']}`",
                    r.get("label") or size_label(r["size"]),
                    num(r["median_us"]),
                    num(r.get("median_all_us")),
                    spread(r, "us"),
                    num(r.get("ops_per_s"), 0),
                    # A same-work floor's ratio is a ceiling a target is compared with: three
                    # decimals, so that one just under the target does not print as equal.
                    f"{times(r.get('x_floor'), 3 if r['workload'] in ceilings else 2)} "
                    f"`{r['floor']}`"
                    if r.get("x_floor")
                    else "-",
                    times(r.get("growth")),
                )
            )
        else:
            body.append(
                (f"`{r['workload']}`", size_label(r["size"]), str(r.get("status")), *["-"] * 5)
            )
    out += [
        "The client (`entrenous.Client` over SQLCipher) against raw sqlcipher3 floors, on stores "
        f"holding {', '.join(size_label(s) for s in sizes)} messages; µs per operation (a "
        "message, a page of 50, an open, or a floor's row).",
        "",
        table(
            (
                "workload",
                "size",
                "median",
                "median (all)",
                f"p10{DASH}p90",
                "ops/s",
                "x floor",
                span,
            ),
            body,
            range(2, 8),
        ),
    ]
    same = same_work_lines(report.get("same_work", []))
    if same:
        out += [
            "",
            "The same work, raw: `floor_send_receive` and `floor_receive_batch` do the client's "
            "writes in raw sqlcipher3 (the message row and the conversation's protocol state, "
            "committed together; on both stores for a send+receive) and its bare primitive "
            "calls (chain step, AEAD seal or open, the store's seal of the body), nothing else. "
            "Their own ratio to the target's floor is the ceiling: the most any implementation "
            "doing that work can reach.",
            "",
            *(f"- {line}" for line in same),
        ]
    return out + _targets_and_gaps(report, rows, "us", "label")


def compliance_section(report: dict[str, Any] | None) -> list[str]:
    out = ["## Compliance (ms per iteration)", ""]
    if report is None:
        return [*out, "Not run."]
    rows = report.get("results", [])
    sizes, span = _sizes_and_span(report, rows)
    body: list[tuple[str, ...]] = []
    for r in rows:
        part = PART_LABELS.get(r.get("part", ""), str(r.get("part")))
        if "median_ms" in r:
            body.append(
                (
                    f"`{r['workload']}`",
                    part,
                    r.get("label") or size_label(r["size"]),
                    num(r["median_ms"]),
                    num(r.get("median_all_ms")),
                    spread(r, "ms"),
                    f"{times(r.get('x_floor'))} `{r['floor']}`" if r.get("x_floor") else "-",
                    times(r.get("growth")),
                )
            )
        else:
            body.append(
                (
                    f"`{r['workload']}`",
                    part,
                    size_label(r["size"]),
                    str(r.get("status")),
                    *["-"] * 4,
                )
            )
    out += [
        "Sweep (10k expired messages), erasure (a 1,000-message subject) and export (a "
        "10k-message subject) through the client, against raw sqlcipher3 deleting and reading "
        f"the same rows, on stores holding {', '.join(size_label(s) for s in sizes)} messages; "
        "ms per iteration, in parts (`journal`: the WAL truncation after the commit; "
        "`excl. journal`: the rest; `(key shred)`: destroying the data key, inside it).",
        "",
        table(
            (
                "workload",
                "part",
                "size",
                "median",
                "median (all)",
                f"p10{DASH}p90",
                "x floor",
                span,
            ),
            body,
            range(3, 8),
        ),
    ]
    return out + _targets_and_gaps(report, rows, "ms", "label")


def scaling_points(reports: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The points of the cost-against-size plot and where they come from: the scaling run's,
    else what the store and compliance suites measured (two sizes each)."""
    scaling = reports.get("scaling")
    if scaling is not None:
        return list(scaling.get("points", [])), "scaling.json"
    wanted = {name for s in SERIES for name in (s.workload, s.floor)}
    points = []
    for suite in ("store", "compliance"):
        for row in reports.get(suite, {}).get("results", []):
            if row.get("workload") in wanted:
                point = point_from_row(row, suite, f"{suite}.json")
                if point is not None:
                    points.append(point)
    return points, "store.json and compliance.json (no scaling run)"


def short(value: float | None) -> str:
    """A time in ms with three significant digits or more (``0.649``, ``86.8``, ``716``)."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def growth_of(points: list[dict[str, Any]], workload: str) -> tuple[float | None, str]:
    """``workload``'s median at its largest size / at its smallest, and the sizes' labels."""
    mine = sorted(
        (p for p in points if p["workload"] == workload and p.get("median_ms")),
        key=lambda p: p["size"],
    )
    if len(mine) < 2:
        return None, ""
    span = f"{size_label(mine[-1]['size'])}/{size_label(mine[0]['size'])}"
    return mine[-1]["median_ms"] / mine[0]["median_ms"], span


def scaling_section(
    reports: dict[str, dict[str, Any]], plot_link: str | None, skipped: str | None
) -> list[str]:
    out = ["## Cost against store size", ""]
    points, origin = scaling_points(reports)
    if not points:
        return [*out, "Not run: no history, sweep or erasure results."]
    by = {(p["workload"], p["size"]): p for p in points}
    sizes = sorted({p["size"] for p in points})
    growths = {name: growth_of(points, name) for s in SERIES for name in (s.workload, s.floor)}
    body: list[tuple[str, ...]] = []
    for series in SERIES:
        for name in (series.workload, series.floor):
            if not any(p["workload"] == name for p in points):
                continue
            growth, span = growths[name]
            own = None
            if name == series.workload and growth is not None:
                floor_growth = growths[series.floor][0]
                own = growth / floor_growth if floor_growth else None
            body.append(
                (
                    f"`{name}`",
                    *(short(by[(name, s)]["median_ms"]) if (name, s) in by else "" for s in sizes),
                    f"{times(growth)} ({span})" if growth is not None else "-",
                    times(own) if own is not None else "",
                )
            )
    counts = {
        s.workload: len({p["size"] for p in points if p["workload"] == s.workload}) for s in SERIES
    }
    out += [
        "Median ms per iteration (a history page of 50, a sweep of 10k expired messages, an "
        "erasure of a 1,000-message subject: the whole call) against the number of messages in "
        f"the store, with each workload's raw floor; from {origin}. The work is the same at "
        "every size: if the cost follows the work, not the store, each line is flat.",
        "",
        table(
            ("workload", *(size_label(s) for s in sizes), "growth", "growth / floor's"),
            body,
            range(1, len(sizes) + 3),
        ),
        "",
        "`growth / floor's` divides entrenous's growth by its floor's over the same sizes: "
        "about 1 where the raw statements on the same rows grow as much (the growth is "
        "SQLite's, not entrenous's work).",
    ]
    few = [name for name, n in counts.items() if n < 3]
    if few:
        out += ["", f"Fewer than three sizes for: {', '.join(few)}."]
    if plot_link is not None:
        out += ["", f"![Cost against store size]({plot_link})"]
    elif skipped is not None:
        out += ["", f"The plot was skipped: {skipped}."]
    sources = dict.fromkeys(p.get("source") for p in points if p.get("source"))
    if sources:
        out += ["", "Points from: " + "; ".join(str(s) for s in sources) + "."]
    return out


# ------------------------------------------------------------------------------------------------
# the plot


def plot(points: list[dict[str, Any]], path: Path) -> str | None:
    """Draw cost against store size (one panel per series, log x, the floor dashed) into the
    PNG at ``path``. Returns None when written, else why it was skipped."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (`pip install matplotlib`, or the `bench` extra)"
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import FixedLocator, NullLocator

    shown = [s for s in SERIES if any(p["workload"] == s.workload for p in points)]
    if not shown:
        return "no history, sweep or erasure results to plot"
    figure, axes = pyplot.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.8), squeeze=False)
    for axis, series in zip(axes[0], shown, strict=True):
        top = 0.0
        for name, style, label in (
            (series.workload, "-o", "entrenous"),
            (series.floor, "--s", "raw sqlcipher3 floor"),
        ):
            mine = sorted(
                (p for p in points if p["workload"] == name and p.get("median_ms") is not None),
                key=lambda p: p["size"],
            )
            if not mine:
                continue
            xs = [p["size"] for p in mine]
            ys = [p["median_ms"] for p in mine]
            axis.plot(xs, ys, style, label=label, color="C0" if label == "entrenous" else "C7")
            top = max(top, *ys)
        growth, span = growth_of(points, series.workload)
        floor_growth, _ = growth_of(points, series.floor)
        title = series.title
        if growth is not None:
            title += f"\n{span}: entrenous {growth:.2f}x"
            title += f", floor {floor_growth:.2f}x" if floor_growth is not None else ""
        sizes = sorted(
            {p["size"] for p in points if p["workload"] in (series.workload, series.floor)}
        )
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(FixedLocator(sizes))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xticklabels([size_label(s) for s in sizes])
        axis.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)
        axis.set_ylim(0, top * 1.3 or 1)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("messages in the store (log scale)")
        axis.set_ylabel("median ms per call")
        axis.grid(visible=True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    figure.suptitle("entrenous: cost against store size (flat = the cost follows the work)")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, metadata={"Software": None})
    pyplot.close(figure)
    return None


# ------------------------------------------------------------------------------------------------


def render(reports: dict[str, dict[str, Any]], plot_link: str | None, skipped: str | None) -> str:
    """RESULTS.md from the suites' reports (``plot_link``: the plot's path relative to it)."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m benchmarks` from the JSON reports of its suites "
        "(`benchmarks/results/*.json`); regenerate it from them, without measuring again, with "
        "`python -m benchmarks report`. Do not edit by hand: benchmarks/README.md explains "
        "every suite, workload and floor, and how it measures.",
        "",
    ]
    for section in (
        run_section(reports),
        machine_section(reports),
        versions_section(reports),
        statistics_section(),
        protocol_section(reports.get("protocol")),
        store_section(reports.get("store")),
        compliance_section(reports.get("compliance")),
        scaling_section(reports, plot_link, skipped),
    ):
        lines += [*section, ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    results: Path | None = None, out: Path | None = None, plot_path: Path | None = None
) -> tuple[Path, str | None]:
    """Write ``out`` (and the plot at ``plot_path``) from the JSON reports in ``results``
    (defaults: :data:`DEFAULT_OUT`, :data:`DEFAULT_PLOT`, :data:`RESULTS_DIR`). Returns the
    report's path and why the plot was skipped (None if it was drawn)."""
    results = RESULTS_DIR if results is None else results
    out = DEFAULT_OUT if out is None else out
    plot_path = DEFAULT_PLOT if plot_path is None else plot_path
    reports = load_reports(results)
    points, _ = scaling_points(reports)
    skipped = plot(points, plot_path) if points else "no history, sweep or erasure results"
    link = None
    if skipped is None:
        link = Path(os.path.relpath(plot_path, out.parent)).as_posix()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(reports, link, skipped), encoding="utf-8")
    return out, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks report",
        description="Write benchmarks/RESULTS.md and its plot from the suites' JSON reports, "
        "without running anything.",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        metavar="DIR",
        help="where the JSON reports are (default: benchmarks/results)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="PATH",
        help="the Markdown report (default: benchmarks/RESULTS.md)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=DEFAULT_PLOT,
        metavar="PATH",
        help="the PNG plot (default: benchmarks/cost-vs-store-size.png)",
    )
    args = parser.parse_args(argv)
    reports = load_reports(args.results)
    if not reports:
        print(f"no JSON reports in {args.results}: run `python -m benchmarks` first")
        return 1
    out, skipped = write_report(args.results, args.out, args.plot)
    print(f"report: {out}")
    print(f"plot skipped: {skipped}" if skipped else f"plot: {args.plot}")
    return 0
