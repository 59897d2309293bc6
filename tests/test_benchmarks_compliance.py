"""Smoke test of the compliance benchmarks (benchmarks/compliance/): a tiny population built,
every worker run in this process for a couple of iterations, the population put back as built,
and the runner's statistics, targets and tables computed from the results. Keeps the suite from
rotting as the library changes; measures nothing worth reading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.compliance import population, runner, worker
from benchmarks.compliance.common import EPHEMERAL, ERASE_SUBJECT, WORKLOADS, Layout
from entrenous.client import Client
from entrenous.store.sqlcipher import SqlCipherStore

TINY = Layout(
    expired=120, expiring_conversations=3, erase_messages=40, export_messages=60, conversations=8
)
SIZE = 400


class _Rollback(Exception):
    pass


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("compliance") / f"n{SIZE}"
    return directory, population.build(SIZE, directory, TINY)


def _counts(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    with Client.open(
        directory / "c.db",
        key=bytes.fromhex(manifest["key"]),
        clock=lambda: manifest["now_ms"] / 1000,
        sweep=False,
    ) as client:
        connection = client._store._connection
        return {
            "messages": connection.execute("SELECT count(*) FROM messages").fetchone()[0],
            "expired": connection.execute(
                "SELECT count(*) FROM messages WHERE expires_at <= ?", (manifest["now_ms"],)
            ).fetchone()[0],
            "audit_events": client.verify_audit(),
            "erasures": len(client.erasure_receipts()),
            "subject": len(client._store.conversations_of_subject(ERASE_SUBJECT)),
        }


def test_population_holds_what_the_workloads_need(built: tuple[Path, dict[str, Any]]) -> None:
    directory, manifest = built
    assert manifest["counts"] == {
        "messages": SIZE,
        "expired_at_now": TINY.expired,
        "expiring": TINY.expired,
        "erase": TINY.erase_messages,
        "export": TINY.export_messages,
        "without_expiry": 0,
    }
    assert {"c.db", "c.db.keys", "floor.db", "restore.db"} <= set(manifest["files"])
    saved = population.load_saved(directory, manifest)
    assert len(saved.messages[population.EXPIRED]) == TINY.expired
    assert len(saved.messages[population.ERASED]) == TINY.erase_messages
    assert len(saved.conversations) == 1 and len(saved.data_keys) == 1


def test_expiry_is_what_the_library_computes(built: tuple[Path, dict[str, Any]]) -> None:
    """Recomputing every conversation's expiry with the store's own set_retention (what
    apply_policy runs) changes nothing."""
    directory, manifest = built
    rules = population.policy()
    store = SqlCipherStore.open(directory / "c.db", bytes.fromhex(manifest["key"]))
    try:
        connection = store._connection
        query = "SELECT id, expires_at FROM messages ORDER BY id"
        before = connection.execute(query).fetchall()
        categories = {r.category for r in store.conversations()}
        assert EPHEMERAL in categories
        with pytest.raises(_Rollback), store.transaction():
            for record in store.conversations():
                rule = rules.rule_for(record.category, record.uid.hex())
                store.set_retention(record.uid, min_ms=rule.min_age_ms, max_ms=rule.max_age_ms)
            assert connection.execute(query).fetchall() == before
            raise _Rollback
    finally:
        store.close()


@pytest.mark.parametrize("workload", runner.ORDER)
def test_worker_measures_and_puts_the_population_back(
    built: tuple[Path, dict[str, Any]], workload: str
) -> None:
    directory, manifest = built
    before = _counts(directory, manifest)
    result = worker.run(workload, directory, rounds=2, warmup=1)
    assert result["status"] == "ok", result["reason"]
    assert set(result["samples_ns"]) == set(WORKLOADS[workload].parts)
    for samples in result["samples_ns"].values():
        assert len(samples) == 2 and all(ns >= 0 for ns in samples)
    assert result["checks"]
    assert result["query_plans"]
    # The timers are off again, and the population is as built.
    assert SqlCipherStore.truncate_journal.__name__ == "truncate_journal"
    assert SqlCipherStore.shred_pending.__name__ == "shred_pending"
    built_counts = {
        "messages": SIZE,
        "expired": TINY.expired,
        "audit_events": manifest["base"]["audit_seq"],
        "erasures": 0,
        "subject": 1,
    }
    assert before == built_counts
    assert _counts(directory, manifest) == built_counts


def test_runner_reports_from_worker_results(built: tuple[Path, dict[str, Any]]) -> None:
    directory, _ = built
    results = {name: worker.run(name, directory, rounds=2, warmup=0) for name in runner.ORDER}
    # The same results at two "sizes", the second twice as slow.
    rows = []
    for size, factor in ((SIZE, 1), (2 * SIZE, 2)):
        for name in runner.ORDER:
            raw = dict(results[name])
            raw["samples_ns"] = {
                part: [ns * factor for ns in samples]
                for part, samples in results[name]["samples_ns"].items()
            }
            rows += runner.summarise([raw], size)
    sizes = [SIZE, 2 * SIZE]
    runner.add_comparisons(rows, sizes)
    verdicts = runner.judge(rows, sizes)
    assert {v["kind"] for v in verdicts} == {"growth", "time"}
    growth = [v for v in verdicts if v["kind"] == "growth"]
    assert all(v["measured"] == pytest.approx(2.0) for v in growth)
    sweep_total = next(r for r in rows if (r["workload"], r["part"]) == ("sweep", "total"))
    assert sweep_total["x_floor"] is not None and sweep_total["x_floor"] > 0
    table = runner.render_table(rows, sizes)
    assert "excl. journal" in table and "floor_export" in table
    assert "targets:" in runner.render_notes(rows, verdicts)
