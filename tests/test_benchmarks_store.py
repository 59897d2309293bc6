"""Smoke test of the store benchmarks (benchmarks/store/): a small population built, every
worker run in this process for a couple of iterations, the population put back as built, and the
runner's comparisons with the floors computed from the results. Keeps the suite from rotting as
the library changes; measures nothing worth reading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.store import population, runner, worker
from benchmarks.store.common import (
    FLOOR_FILES,
    FLOOR_OF,
    MAIN_MESSAGES,
    SAME_WORK_OF,
    WORKLOADS,
)

#: The smallest population the builder accepts.
SIZE = 2 * MAIN_MESSAGES + population.REAL_MESSAGES
#: Filler conversations per store (1,000 in a real population: the handshakes cost seconds).
CONVERSATIONS = 12
SAME_WORK = set(SAME_WORK_OF.values())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("store") / f"n{SIZE}"
    return directory, population.build(SIZE, directory, CONVERSATIONS)


def _query(
    directory: Path, manifest: dict[str, Any], stem: str, sql: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Every row ``sql`` returns from one file of the population (``a``, ``b`` or a floor)."""
    key = manifest["keys"]["floor" if stem in FLOOR_FILES else stem]
    connection = population.raw_connect(directory / f"{stem}.db", key)
    try:
        rows: list[tuple[Any, ...]] = connection.execute(sql, params).fetchall()
        return rows
    finally:
        connection.close()


def _rows(directory: Path, manifest: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        stem: {
            table: _query(directory, manifest, stem, f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608
            for table in ("messages", "conversations")
        }
        for stem in ("a", "b", *FLOOR_FILES)
    }


def test_population_has_both_floor_files_with_conversation_states(
    built: tuple[Path, dict[str, Any]],
) -> None:
    directory, manifest = built
    assert {"floor.db", "floor-peer.db"} <= set(manifest["files"])
    sizes = manifest["state_size"]
    assert set(sizes) == {"a", "b"} and all(200 < n < 4000 for n in sizes.values())
    for stem in FLOOR_FILES:
        lengths = _query(directory, manifest, stem, "SELECT length(state) FROM conversations")
        main = _query(
            directory,
            manifest,
            stem,
            "SELECT count(*) FROM messages WHERE conversation_id = ?",
            (manifest["floor_main"],),
        )
        assert lengths == [(max(sizes.values()),)] * CONVERSATIONS
        assert main == [(MAIN_MESSAGES,)]
    counts = _rows(directory, manifest)
    assert all(counts[stem]["messages"] == SIZE for stem in counts)


@pytest.mark.parametrize("workload", runner.ORDER)
def test_worker_measures_and_puts_the_population_back(
    built: tuple[Path, dict[str, Any]], workload: str
) -> None:
    directory, manifest = built
    before = _rows(directory, manifest)
    result = worker.run(workload, directory, rounds=2, warmup=1)
    assert result["status"] == "ok", result["reason"]
    assert len(result["samples_ns"]) == 2 and all(ns > 0 for ns in result["samples_ns"])
    if WORKLOADS[workload].writes:
        added = sum(result["reset"]["after"].values())
        assert added >= 3 * WORKLOADS[workload].ops_per_iteration  # warmup and rounds were real
    assert _rows(directory, manifest) == before


def _states(directory: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    sql = "SELECT state FROM conversations WHERE id = ?"
    return {
        stem: _query(directory, manifest, stem, sql, (manifest["floor_main"],))[0][0]
        for stem in FLOOR_FILES
    }


def test_same_work_floors_write_what_the_client_writes(
    built: tuple[Path, dict[str, Any]],
) -> None:
    """An iteration of floor_send_receive adds one message row to each floor file and rewrites
    the main conversation's state in each (as long as each client's); floor_receive_batch adds
    its batch to the receiving file and rewrites that state."""
    directory, manifest = built
    before = _states(directory, manifest)
    result = worker.run("floor_send_receive", directory, rounds=2, warmup=1)
    assert result["reset"]["after"] == {"a": 0, "b": 0, "floor": 3, "floor-peer": 3}
    after = _states(directory, manifest)
    assert after["floor"] != before["floor"] and after["floor-peer"] != before["floor-peer"]
    assert len(after["floor"]) == manifest["state_size"]["a"]
    assert len(after["floor-peer"]) == manifest["state_size"]["b"]
    result = worker.run("floor_receive_batch", directory, rounds=2, warmup=1)
    batch = WORKLOADS["floor_receive_batch"].ops_per_iteration
    assert result["reset"]["after"] == {"a": 0, "b": 0, "floor": 0, "floor-peer": 3 * batch}
    final = _states(directory, manifest)
    assert final["floor"] == after["floor"] and final["floor-peer"] != after["floor-peer"]
    # Each same-work floor is compared with the floor of the target of its workload.
    for workload, same in SAME_WORK_OF.items():
        assert FLOOR_OF[same] == FLOOR_OF[workload]


def test_runner_compares_with_both_floors(built: tuple[Path, dict[str, Any]]) -> None:
    directory, _ = built
    names = ["send_receive", "floor_insert_1tx", "floor_send_receive"]
    results = {name: worker.run(name, directory, rounds=3, warmup=0) for name in names}
    rows = [runner.summarise([results[name]], SIZE) for name in names]
    runner.add_comparisons(rows, [SIZE])
    by_name = {row["workload"]: row for row in rows}
    send_receive, floor, same = (by_name[name] for name in names)
    assert send_receive["x_floor"] == pytest.approx(floor["median_us"] / send_receive["median_us"])
    assert send_receive["x_same_work"] == pytest.approx(
        same["median_us"] / send_receive["median_us"]
    )
    assert same["x_floor"] == pytest.approx(floor["median_us"] / same["median_us"])
    entries = [e for e in runner.same_work(rows, [SIZE]) if e["workload"] == "send_receive"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["ceiling"] == same["x_floor"]
    assert entry["left_at_target"] == pytest.approx(1 - 0.4 / same["x_floor"])
    notes = runner.render_notes(rows, runner.judge(rows, [SIZE]), runner.same_work(rows, [SIZE]))
    assert "its same-work floor floor_send_receive" in notes


class _BindingSpy:
    """A raw connection that records every parameter bound through it."""

    def __init__(self, inner: Any, bound: list[object]) -> None:
        self._inner, self._bound = inner, bound

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._bound.extend(params)
        return self._inner.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        rows = list(rows)
        for row in rows:
            self._bound.extend(row)
        return self._inner.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("workload", [w for w in runner.ORDER if "insert" in w or w in SAME_WORK])
def test_floors_bind_as_cheaply_as_the_store(
    built: tuple[Path, dict[str, Any]], workload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A floor must not do more than the client: it binds blobs as bytearray and never a None
    (sqlcipher3 sends bytes and None through its adapter registry), as the store does."""
    directory, _ = built
    bound: list[object] = []
    connect = population.raw_connect
    monkeypatch.setattr(population, "raw_connect", lambda *args: _BindingSpy(connect(*args), bound))
    result = worker.run(workload, directory, rounds=2, warmup=1)
    assert result["status"] == "ok", result["reason"]
    blobs = [value for value in bound if isinstance(value, (bytes, bytearray))]
    assert blobs and all(type(value) is bytearray for value in blobs)
    assert None not in bound
