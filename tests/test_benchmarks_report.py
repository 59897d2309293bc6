"""The benchmark report (benchmarks/report.py): small fabricated worker results go through the
suites' own statistics (summarise, ratios, targets) into JSON reports, and from those into
RESULTS.md and its plot. Measures nothing; needs neither the `bench` extra nor a population
(the plot is checked only where matplotlib is installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import __main__ as benchmarks_main
from benchmarks import environment, report, scaling
from benchmarks.compliance import runner as compliance_runner
from benchmarks.compliance.common import WORKLOADS as COMPLIANCE_WORKLOADS
from benchmarks.protocol import runner as protocol_runner
from benchmarks.store import runner as store_runner

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
K10, K100, M1 = 10_000, 100_000, 1_000_000
VERSIONS = {
    "entrenous": "0.1.0",
    "entrenous_commit": "abcdef123456",
    "python": "3.11.7",
    "pynacl": "1.6.2",
    "cryptography": "50.0.2",
    "sqlcipher3": "0.6.4",
    "sqlcipher": "4.19.0 community",
    "sqlite": "3.53.4",
    "msgpack": "1.2.4",
    "pydantic": "2.12.0",
    "vodozemac": "0.10.0",
    "doubleratchet": "1.3.0",
    "x3dh": "1.3.0",
    "atheris": None,
    "matplotlib": "3.11.2",
}


def _machine(busy: float) -> dict[str, Any]:
    return {
        "python": "3.11.7",
        "implementation": "CPython",
        "platform": "Linux-test-x86_64",
        "cpu": "Test CPU 9000",
        "cpu_count": 2,
        "memory_bytes": 8 * 2**30,
        "cpu_busy_before_run": busy,
    }


def _envelope(mode: str, busy: float = 0.02) -> dict[str, Any]:
    return {
        "format": 1,
        "started": "2026-11-25T10:00:00+00:00",
        "mode": mode,
        "passes": 2,
        "machine": _machine(busy),
        "versions": VERSIONS,
        "command": "python -m benchmarks --quick",
    }


def _protocol_raw(impl: str, workload: str, us: list[float]) -> dict[str, Any]:
    return {
        "impl": impl,
        "workload": workload,
        "status": "ok",
        "version": "1",
        "ops_per_iteration": 1,
        "warmup": 1,
        "samples_ns": [x * 1000 for x in us],
    }


def _protocol_report() -> dict[str, Any]:
    # Two passes each; the best pass's median is the first number of the second pass.
    timings = {
        "entrenous": ([12, 12, 20], [10, 10, 11]),  # best 10 us, all-iteration median 11.5
        "vodozemac": ([8, 8, 8], [9, 9, 9]),  # 8 us: entrenous 0.80x vodozemac
        "doubleratchet": ([25, 25, 25], [26, 26, 26]),  # 25 us: 2.50x, under the 3x target
        "floor": ([4, 4, 4], [4, 4, 4]),  # 4 us: 0.40x of the floor
    }
    rows = [
        protocol_runner.summarise([_protocol_raw(impl, "one_way", us) for us in passes])
        for impl, passes in timings.items()
    ]
    rows.append(protocol_runner.summarise([_protocol_raw("entrenous", "ping_pong", [50, 50])]))
    rows.append(
        {
            "workload": "ping_pong",
            "impl": "vodozemac",
            "status": "unavailable",
            "reason": "vodozemac is not installed",
        }
    )
    protocol_runner.add_ratios(rows)
    return _envelope("quick") | {
        "results": rows,
        "targets": protocol_runner.judge(rows),
    }


def _store_rows(sizes: list[int]) -> list[dict[str, Any]]:
    # history_page: 600 us at 10k, 660 at 1M; its floor 60 us at every size.
    # send_receive 1000 us, its floor 300, its same-work floor 700 (ceiling 0.43x: a 0.4x
    # target leaves 7 %); receive_many_1000 60 us, floor 15, same-work floor 32 (ceiling 0.47x,
    # under the 0.5x target).
    medians = {("history_page", K10): 600, ("history_page", K100): 630}
    medians |= {("history_page", M1): 660}
    fixed = {"send_receive": 1000, "floor_insert_1tx": 300, "floor_send_receive": 700}
    fixed |= {"receive_many_1000": 60, "floor_insert_batch": 15, "floor_receive_batch": 32}
    rows = []
    for size in sizes:
        for name in ("history_page", "floor_select_page", *fixed):
            us = medians.get((name, size), fixed.get(name, 60))
            raw = {
                "workload": name,
                "size": size,
                "status": "ok",
                "ops_per_iteration": 1,
                "warmup": 1,
                "samples_ns": [us * 1000] * 3,
            }
            rows.append(store_runner.summarise([raw], size))
    store_runner.add_comparisons(rows, sizes)
    return rows


def _store_report() -> dict[str, Any]:
    sizes = [K10, M1]
    rows = _store_rows(sizes)
    return _envelope("quick", busy=0.5) | {
        "version": "entrenous 0.1.0, SQLCipher 4.19.0 community, SQLite 3.53.4",
        "parameters": {"page": 50, "sizes": sizes},
        "results": rows,
        "targets": store_runner.judge(rows, sizes),
        "same_work": store_runner.same_work(rows, sizes),
    }


def _compliance_rows(sizes: list[int]) -> list[dict[str, Any]]:
    # total ms: sweep 700 (1M: 720), floor_sweep 560; erase 80 (1M: 120), floor_erase 75
    # (1M: 115); the journal is a tenth of the total, excl. journal the rest.
    totals = {"sweep": 700.0, "floor_sweep": 560.0, "erase": 80.0, "floor_erase": 75.0}
    at_1m = {"sweep": 720.0, "floor_sweep": 560.0, "erase": 120.0, "floor_erase": 115.0}
    rows = []
    for size in sizes:
        for name in ("sweep", "floor_sweep", "erase", "floor_erase"):
            total = (at_1m if size == M1 else totals)[name]
            parts = {
                "total": total,
                "journal": total / 10,
                "excl_journal": total * 0.9,
                "shred": 2.0,
            }
            raw = {
                "workload": name,
                "status": "ok",
                "warmup": 1,
                "samples_ns": {
                    part: [parts[part] * 1e6] * 2 for part in COMPLIANCE_WORKLOADS[name].parts
                },
            }
            rows += compliance_runner.summarise([raw], size)
    compliance_runner.add_comparisons(rows, sizes)
    return rows


def _compliance_report() -> dict[str, Any]:
    sizes = [K100, M1]
    rows = _compliance_rows(sizes)
    return _envelope("quick") | {
        "parameters": {"layout": {}, "sizes": sizes},
        "results": rows,
        "targets": compliance_runner.judge(rows, sizes),
    }


def _scaling_report(results: Path) -> dict[str, Any]:
    """Points at three sizes: those of the suites' reports (as ``--reuse`` takes them) and the
    third size "measured" here."""
    points = []
    for name in ("store.json", "compliance.json"):
        suite, found = scaling.reusable(results / name, "quick")
        assert suite is not None
        points += found
    for row in _store_rows([K10, K100]):
        if row["size"] == K100:
            points.append(scaling.point_from_row(row, "store", "measured by this run"))
    for row in _compliance_rows([25_000, K100]):
        if row["size"] == 25_000 and (point := scaling.point_from_row(row, "compliance", "here")):
            points.append(point)
    return _envelope("quick") | {"points": points, "growth": scaling.add_growth(points)}


def _make_results(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name, content in (
        ("protocol", _protocol_report()),
        ("store", _store_report()),
        ("compliance", _compliance_report()),
    ):
        (directory / f"{name}.json").write_text(json.dumps(content), encoding="utf-8")
    (directory / "scaling.json").write_text(
        json.dumps(_scaling_report(directory)), encoding="utf-8"
    )
    return directory


def _write(results: Path, target: Path) -> tuple[str, Path, str | None]:
    out, plot = target / "doc" / "RESULTS.md", target / "doc" / "img" / "plot.png"
    written, skipped = report.write_report(results, out, plot)
    assert written == out
    return out.read_text(encoding="utf-8"), plot, skipped


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str | None]:
    """The report of the fabricated results, written once for the tests that only read it."""
    base = tmp_path_factory.mktemp("report")
    return _write(_make_results(base / "results"), base)


def _section(text: str, title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert found, title
    return found.group(1)


def _row(section: str, *cells: str) -> list[str]:
    """The cells of the first table row of ``section`` that starts with ``cells``."""
    for line in section.splitlines():
        values = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and values[: len(cells)] == list(cells):
            return values
    raise AssertionError(f"no row {cells} in:\n{section}")


def test_suites_record_both_medians() -> None:
    """The suites keep the best pass's median (``median_us``/``median_ms``, what the ratios and
    targets use) and add the median of every timed iteration."""
    row = protocol_runner.summarise(
        [_protocol_raw("entrenous", "one_way", us) for us in ([12, 12, 20], [10, 10, 11])]
    )
    assert row["median_us"] == pytest.approx(10)
    assert row["median_all_us"] == pytest.approx(11.5)
    store = store_runner.summarise(
        [
            {"workload": "history_page", "status": "ok", "ops_per_iteration": 1}
            | {"samples_ns": [us * 1000 for us in samples]}
            for samples in ([700, 700, 900], [600, 600, 650])
        ],
        K10,
    )
    assert (store["median_us"], store["median_all_us"]) == (600, 675)
    (compliance,) = compliance_runner.summarise(
        [
            {"workload": "export", "status": "ok"}
            | {"samples_ns": {"total": [ms * 1e6 for ms in samples]}}
            for samples in ([300, 300, 400], [250, 250, 260])
        ],
        K100,
    )
    assert compliance["median_ms"] == pytest.approx(250)
    assert compliance["median_all_ms"] == pytest.approx(280)


def test_protocol_table_ratios_and_targets(written: tuple[str, Path, str | None]) -> None:
    text, _, _ = written
    protocol = _section(text, "Protocol (µs per operation)")
    summary = _row(protocol, "`one_way`", "10.0")
    # entrenous, vodozemac, doubleratchet, floor; then x vodozemac, x doubleratchet, x floor.
    assert summary[1:] == ["10.0", "8.0", "25.0", "4.0", "0.80x", "2.50x", "0.40x"]
    assert _row(protocol, "`one_way`", "entrenous")[2:5] == [
        "10.0",
        "11.5",
        f"10.0{report.DASH}22.4",
    ]
    assert _row(protocol, "`ping_pong`", "vodozemac")[2] == "unavailable"
    assert "- **PASS** one-way throughput >= 0.6x vodozemac: measured 0.80x" in protocol
    assert "- **FAIL** one-way throughput >= 3x doubleratchet: measured 2.50x" in protocol
    assert "- **n/a** ping-pong throughput >= 0.8x vodozemac: measured not measured" in protocol
    assert "ping_pong / vodozemac: unavailable: vodozemac is not installed" in protocol


def test_store_and_compliance_tables_floors_growth_and_targets(
    written: tuple[str, Path, str | None],
) -> None:
    text, _, _ = written
    store = _section(text, "Store (µs per operation)")
    row = _row(store, "`history_page`", "1M")
    assert row[2] == "660.0"
    assert row[6] == "0.09x `floor_select_page`"  # 60 / 660
    assert row[7] == "1.10x"  # 660 / 600
    assert "- **PASS** history page (50 newest) under 2 ms (at 1M): measured 660 µs" in store
    assert "- **PASS** history_page cost does not grow with the store" in store
    assert _row(store, "`floor_send_receive`", "1M")[6] == "0.429x `floor_insert_1tx`"
    assert (
        "- send_receive at 1M: 0.70x its same-work floor floor_send_receive, which itself "
        "reaches 0.429x floor_insert_1tx (the ceiling): a 0.4x target leaves 6.7% of an "
        "implementation's time for everything else"
    ) in store
    assert (
        "- receive_many_1000 at 10k: 0.53x its same-work floor floor_receive_batch, which "
        "itself reaches 0.469x floor_insert_batch (the ceiling): the ceiling is 6.7% below the "
        "0.5x target: no implementation doing this work reaches it in this run"
    ) in store
    assert "- **FAIL** committed send+receive >= 0.4x" in store
    compliance = _section(text, "Compliance (ms per iteration)")
    row = _row(compliance, "`erase`", "total", "1M")
    assert row[3] == "120.0"
    assert row[6] == "0.96x `floor_erase`"  # 115 / 120
    assert row[7] == "1.50x"  # 120 / 80
    assert _row(compliance, "`erase`", "excl. journal", "1M")[3] == "108.0"
    assert "- **FAIL** erasure of a 1,000-message subject, excl. journal, < 100 ms" in compliance
    assert "measured 108.0 ms" in compliance
    assert "- **PASS** sweep of 10k expired messages (whole client.sweep())" in compliance


def test_run_machine_and_versions(written: tuple[str, Path, str | None]) -> None:
    text, _, _ = written
    run = _section(text, "The run")
    assert "Produced by `python -m benchmarks --quick`" in run
    assert _row(run, "store")[5] == "50%"
    assert "**Short run** (`--quick`" in run
    machine = _section(text, "Machine")
    assert _row(machine, "CPU")[1] == "Test CPU 9000"
    assert _row(machine, "cores")[1] == "2"
    assert _row(machine, "RAM")[1] == "8.0 GiB"
    assert _row(machine, "OS")[1] == "Linux-test-x86_64"
    assert _row(machine, "Python")[1] == "3.11.7 (CPython)"
    idle = _row(machine, "idle")[1]
    assert idle.startswith("**no**") and "store 50%" in idle
    versions = _section(text, "Versions")
    for label, version in (
        ("entrenous git commit", "abcdef123456"),
        ("PyNaCl", "1.6.2"),
        ("cryptography", "50.0.2"),
        ("sqlcipher3", "0.6.4"),
        ("SQLCipher", "4.19.0 community"),
        ("msgpack", "1.2.4"),
        ("vodozemac", "0.10.0"),
        ("doubleratchet", "1.3.0"),
        ("x3dh", "1.3.0"),
        ("atheris", "not installed"),
    ):
        assert _row(versions, label) == [label, version]


def test_scaling_table_has_three_sizes_and_growth_against_the_floor(
    written: tuple[str, Path, str | None],
) -> None:
    text, _, _ = written
    section = _section(text, "Cost against store size")
    header = _row(section, "workload")
    assert header[1:6] == ["10k", "25k", "100k", "1M", "growth"]
    # history_page (ms): 0.600 at 10k, 0.630 at 100k, 0.660 at 1M; its floor is flat.
    assert _row(section, "`history_page`") == [
        "`history_page`",
        "0.600",
        "",
        "0.630",
        "0.660",
        "1.10x (1M/10k)",
        "1.10x",
    ]
    # erase grows 120/80 = 1.50x, its floor 115/75: entrenous's own share is 0.98x.
    assert _row(section, "`erase`")[5:] == ["1.50x (1M/25k)", "0.98x"]
    assert "Fewer than three sizes" not in section


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed (bench extra)")
def test_plot_is_written_and_linked(written: tuple[str, Path, str | None]) -> None:
    text, plot, skipped = written
    assert skipped is None
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "![Cost against store size](img/plot.png)" in text


def test_without_matplotlib_the_tables_are_written_and_the_plot_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    text, plot, skipped = _write(_make_results(tmp_path / "results"), tmp_path)
    assert skipped is not None and "matplotlib is not installed" in skipped
    assert not plot.exists()
    assert "The plot was skipped: matplotlib is not installed" in text
    assert "![" not in text
    assert "## Protocol (µs per operation)" in text


def test_missing_reports_and_the_report_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _make_results(tmp_path / "results")
    (results / "protocol.json").unlink()
    (results / "scaling.json").unlink()
    out = tmp_path / "R.md"
    status = report.main(
        ["--results", str(results), "--out", str(out), "--plot", str(tmp_path / "p.png")]
    )
    assert status == 0 and "report:" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert "Not run (no JSON report): protocol, scaling." in text
    assert _section(text, "Protocol (µs per operation)").strip() == "Not run."
    # Without a scaling run the plot's points come from the two suites (two sizes each).
    section = _section(text, "Cost against store size")
    assert "from store.json and compliance.json (no scaling run)" in section
    assert "Fewer than three sizes for: history_page, sweep, erase." in section
    assert report.main(["--results", str(tmp_path / "empty")]) == 1


def test_all_runs_every_suite_then_scaling_with_fresh_reports_then_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m benchmarks --quick`` runs the suites in order, gives the scaling run only the
    store and compliance reports this run wrote, and writes the report from them."""
    results = tmp_path / "results"
    results.mkdir()
    stale = _compliance_report()
    (results / "compliance.json").write_text(json.dumps(stale), encoding="utf-8")
    os.utime(results / "compliance.json", (1, 1))  # left by an earlier run
    calls: list[tuple[str, list[str]]] = []

    def suite(name: str, content: dict[str, Any] | None) -> Any:
        def run(argv: list[str]) -> int:
            calls.append((name, argv))
            if content is not None:
                (results / f"{name}.json").write_text(json.dumps(content), encoding="utf-8")
            return 0

        return run

    monkeypatch.setattr(environment, "_command", None)  # main() records its own
    monkeypatch.setattr(report, "RESULTS_DIR", results)
    monkeypatch.setattr(report, "DEFAULT_OUT", tmp_path / "RESULTS.md")
    monkeypatch.setattr(report, "DEFAULT_PLOT", tmp_path / "plot.png")
    monkeypatch.setattr(benchmarks_main, "_protocol", suite("protocol", _protocol_report()))
    monkeypatch.setattr(benchmarks_main, "_store", suite("store", _store_report()))
    monkeypatch.setattr(benchmarks_main, "_compliance", suite("compliance", None))  # failed
    monkeypatch.setattr(benchmarks_main, "_scaling", suite("scaling", None))
    assert benchmarks_main.main(["--quick"]) == 0
    assert [name for name, _ in calls] == ["protocol", "store", "compliance", "scaling"]
    assert calls[0][1] == ["--quick"]
    assert calls[3][1] == ["--quick", f"--reuse={results / 'store.json'}"]
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "Produced by" in text and "## Store (µs per operation)" in text
    assert environment.command_line() == "python -m benchmarks --quick"


def test_environment_records_versions_and_the_command() -> None:
    found = environment.versions()
    for key, _ in report.VERSION_LABELS:
        assert key in found
    assert found["entrenous"] and found["cryptography"] and found["sqlcipher"]
    assert environment.command_line(["store", "--size", "10000"]) == (
        "python -m benchmarks store --size 10000"
    )
