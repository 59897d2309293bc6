"""Measure one compliance workload on one population in this process; print the result as JSON.

    python -m benchmarks.compliance.worker WORKLOAD --dir POPULATION_DIR --rounds N [--warmup N]

The runner starts one such process per (workload, size), so no workload warms caches,
allocators or imports for another. Every workload deletes or appends rows, so the population is
reset before, between the iterations (untimed) and after: the deleted rows are put back at
their own row ids from ``restore.db``, the audit trail and the erasure receipts are cut back to
the build's, the WAL is truncated and the connection's page cache emptied (``PRAGMA
shrink_memory``: the rows a workload is about to delete are not left decrypted in memory by
the reset that put them back).

An iteration is timed in parts (nanoseconds each): ``total`` (the whole call),
``journal`` (the WAL truncation: for the client the time spent in
``SqlCipherStore.truncate_journal``, which the worker wraps with a timer, for the floors the
``PRAGMA wal_checkpoint(TRUNCATE)`` they run after their commit), ``excl_journal`` (total
minus journal) and, for ``erase``, ``shred`` (``SqlCipherStore.shred_pending``: destroying the
data key, inside ``excl_journal``). The timers only measure: the library runs unchanged.

stdout carries exactly one JSON object: ``workload``, ``size``, ``status`` ("ok" or "error"),
``reason``, ``version``, ``rounds``, ``warmup``, ``samples_ns`` (per part, one value per timed
iteration), ``checks`` (what the last iteration did), ``query_plans`` (the store's statements
during the first warm-up iteration, with their plans) and ``reset``. The exit status is 0
unless the status is "error" (the traceback then goes to stderr).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.compliance.common import (
    EXCL_JOURNAL,
    JOURNAL,
    SHRED,
    TOTAL,
    WORKLOADS,
)
from benchmarks.protocol.common import BenchmarkError

#: The store methods the worker times (the journal truncation, the key destruction).
HOOKED = ("truncate_journal", "shred_pending")
EXPORT_COLUMNS = "uid, direction, sent_at, received_at, nonce, body, timer_ms, expires_at"


@dataclass(slots=True)
class Case:
    """A workload ready to measure.

    ``prep()`` is the untimed reset before an iteration; ``run()`` is one iteration, returning
    its parts (ns) and what to check; ``check(outcome)`` (untimed) raises if it went wrong.
    ``connection`` is the store connection whose statements are explained.
    """

    prep: Callable[[], None]
    run: Callable[[], tuple[dict[str, int], Any]]
    check: Callable[[Any], dict[str, Any]]
    connection: Any = None


class Timers:
    """Wraps :data:`HOOKED` methods of ``SqlCipherStore`` with timers (this process only)."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(HOOKED, 0)

    def install(self, stack: ExitStack) -> None:
        from entrenous.store.sqlcipher import SqlCipherStore

        clock = time.perf_counter_ns
        for name in HOOKED:
            original = getattr(SqlCipherStore, name)

            def timed(store: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
                start = clock()
                try:
                    return _original(store, *args)
                finally:
                    self.spent[_name] += clock() - start

            setattr(SqlCipherStore, name, timed)
            stack.callback(setattr, SqlCipherStore, name, original)

    def clear(self) -> None:
        for name in self.spent:
            self.spent[name] = 0


def _versions() -> str:
    from sqlcipher3 import dbapi2 as sqlcipher

    import entrenous

    connection = sqlcipher.connect(":memory:")
    try:
        cipher = connection.execute("PRAGMA cipher_version").fetchone()[0]
    finally:
        connection.close()
    return (
        f"entrenous {entrenous.__version__}, SQLCipher {cipher}, SQLite {sqlcipher.sqlite_version}"
    )


def _shrink(connection: Any) -> None:
    connection.execute("PRAGMA shrink_memory")


def _client_case(
    name: str, directory: Path, manifest: dict[str, Any], saved: Any, stack: ExitStack
) -> Case:
    from benchmarks.compliance import population
    from entrenous.client import Client

    layout = manifest["layout"]
    now_s = manifest["now_ms"] / 1000
    timers = Timers()
    timers.install(stack)
    client = stack.enter_context(
        Client.open(
            directory / "c.db",
            key=bytes.fromhex(manifest["key"]),
            clock=lambda: now_s,
            sweep=False,  # the sweep is what is measured
        )
    )
    if client.policy is None or client.policy.fingerprint != manifest["policy"]:
        raise BenchmarkError("the store does not apply the population's policy")
    store = client._store
    connection, keys = store._connection, store._keys._connection
    groups = {"sweep": (population.EXPIRED,), "erase": (population.ERASED,), "export": ()}[name]

    def prep() -> None:
        population.restore(connection, saved, manifest, groups, key_connection=keys)
        _shrink(connection)
        timers.clear()

    clock = time.perf_counter_ns
    spent = timers.spent

    def split(total: int) -> dict[str, int]:
        journal = spent["truncate_journal"]
        return {TOTAL: total, JOURNAL: journal, EXCL_JOURNAL: total - journal}

    if name == "sweep":
        sweep = client.sweep

        def run_sweep() -> tuple[dict[str, int], Any]:
            start = clock()
            report = sweep()
            return split(clock() - start), report

        def check_sweep(report: Any) -> dict[str, Any]:
            if report.deleted != layout["expired"] or report.dry_run:
                raise BenchmarkError(f"sweep deleted {report.deleted}, not {layout['expired']}")
            return {"deleted": report.deleted, "conversations": len(report.by_conversation)}

        return Case(prep, run_sweep, check_sweep, connection)

    if name == "erase":
        erase, subject = client.erase, manifest["subjects"]["erase"]

        def run_erase() -> tuple[dict[str, int], Any]:
            start = clock()
            receipt = erase(subject=subject)
            parts = split(clock() - start)
            parts[SHRED] = spent["shred_pending"]
            return parts, receipt

        def check_erase(receipt: Any) -> dict[str, Any]:
            if receipt.erased_messages != layout["erase_messages"] or receipt.kept:
                raise BenchmarkError(
                    f"erase erased {receipt.erased_messages} messages, kept {receipt.kept}"
                )
            if not all(item["conversation_deleted"] for item in receipt.erased):
                raise BenchmarkError("erase kept the subject's conversation")
            if spent["truncate_journal"] == 0 or spent["shred_pending"] == 0:
                raise BenchmarkError("erase did not truncate the journal or shred the key")
            return {
                "erased_messages": receipt.erased_messages,
                "receipt_bytes": len(receipt.to_json()),
            }

        return Case(prep, run_erase, check_erase, connection)

    assert name == "export"
    export, subject = client.export, manifest["subjects"]["export"]

    def run_export() -> tuple[dict[str, int], Any]:
        start = clock()
        data = export(subject)
        return {TOTAL: clock() - start}, data

    def check_export(data: Any) -> dict[str, Any]:
        messages = [m for c in data["conversations"] for m in c["messages"]]
        if len(messages) != layout["export_messages"]:
            raise BenchmarkError(f"export held {len(messages)} messages")
        if any(not isinstance(m["content"], str) for m in messages):
            raise BenchmarkError("export held a message that is not the text")
        return {"messages": len(messages), "json_bytes": len(json.dumps(data))}

    return Case(prep, run_export, check_export, connection)


def _floor_case(
    name: str, directory: Path, manifest: dict[str, Any], saved: Any, stack: ExitStack
) -> Case:
    from benchmarks.compliance import population
    from benchmarks.store.population import raw_connect

    layout = manifest["layout"]
    connection = raw_connect(directory / "floor.db", manifest["key"])
    stack.callback(connection.close)
    execute = connection.execute
    # As the client's sweep and erasure do: the WAL is copied back once, by the truncation
    # after the commit, not by an automatic checkpoint inside it.
    execute("PRAGMA wal_autocheckpoint = 0")
    groups = {
        "floor_sweep": (population.EXPIRED,),
        "floor_erase": (population.ERASED,),
        "floor_export": (),
    }[name]

    def prep() -> None:
        population.restore(connection, saved, manifest, groups)
        _shrink(connection)

    clock = time.perf_counter_ns

    def check_rows(expected: int) -> Callable[[Any], dict[str, Any]]:
        def check(rows: int) -> dict[str, Any]:
            if rows != expected:
                raise BenchmarkError(f"{name}: {rows} rows, not {expected}")
            return {"rows": rows}

        return check

    def commit_and_truncate(start: int, rows: int) -> tuple[dict[str, int], Any]:
        execute("COMMIT")
        committed = clock()
        busy = execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        end = clock()
        if busy[0]:
            raise BenchmarkError(f"{name}: the WAL could not be truncated")
        return {TOTAL: end - start, EXCL_JOURNAL: committed - start, JOURNAL: end - committed}, rows

    if name == "floor_sweep":
        now = manifest["now_ms"]

        def run_sweep() -> tuple[dict[str, int], Any]:
            start = clock()
            execute("BEGIN IMMEDIATE")
            rows = execute("DELETE FROM messages WHERE expires_at <= ?", (now,)).rowcount
            return commit_and_truncate(start, rows)

        return Case(prep, run_sweep, check_rows(layout["expired"]), connection)

    if name == "floor_erase":
        erased = manifest["conversation_ids"]["erase"]

        def run_erase() -> tuple[dict[str, int], Any]:
            start = clock()
            execute("BEGIN IMMEDIATE")
            rows = execute("DELETE FROM messages WHERE conversation_id = ?", (erased,)).rowcount
            execute("DELETE FROM conversations WHERE id = ?", (erased,))
            return commit_and_truncate(start, rows)

        return Case(prep, run_erase, check_rows(layout["erase_messages"]), connection)

    assert name == "floor_export"
    exported = manifest["conversation_ids"]["export"]
    select = f"SELECT {EXPORT_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id"  # noqa: S608

    def run_export() -> tuple[dict[str, int], Any]:
        start = clock()
        rows = execute(select, (exported,)).fetchall()
        return {TOTAL: clock() - start}, len(rows)

    return Case(prep, run_export, check_rows(layout["export_messages"]), connection)


_LITERALS = re.compile(r"x'[0-9a-fA-F]*'|'(?:[^']|'')*'|\b\d+\b")
_LISTS = re.compile(r"\(\?(?:, \?)+\)")


def _shape(sql: str) -> str:
    """The statement with its literals replaced by ``?`` (and a list of them by ``(?, ...)``)."""
    return _LISTS.sub("(?, ...)", _LITERALS.sub("?", " ".join(sql.split())))


def _explain(connection: Any, statements: list[str]) -> list[dict[str, Any]]:
    """EXPLAIN QUERY PLAN of each distinct data statement (by shape: the same statement with
    other values counts once, with how often it ran), with what does not use an index.

    A scan that stops at its first row (``LIMIT 1`` without a sort: the newest audit event) is
    not flagged.
    """
    from benchmarks.store.population import _flags

    plans: dict[str, dict[str, Any]] = {}
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head not in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
            continue
        shape = _shape(sql)
        if shape in plans:
            plans[shape]["runs"] += 1
            continue
        details = [str(r[-1]) for r in connection.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
        problems = _flags(details)
        if shape.endswith("LIMIT ?") and sql.rstrip().endswith("LIMIT 1"):
            problems = [p for p in problems if "temporary b-tree" in p]
        plans[shape] = {"sql": shape, "runs": 1, "plan": details, "problems": problems}
    return list(plans.values())


def measure(case: Case, rounds: int, warmup: int, parts: tuple[str, ...]) -> dict[str, Any]:
    """Warm up (the first warm-up iteration traced for the query plans), then time ``rounds``
    iterations with the cyclic garbage collector off; resets and checks are untimed."""
    plans: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    for number in range(warmup):
        case.prep()
        statements: list[str] = []
        if number == 0 and case.connection is not None:
            case.connection.set_trace_callback(statements.append)
        try:
            _, outcome = case.run()
        finally:
            if case.connection is not None:
                case.connection.set_trace_callback(None)
        checks = case.check(outcome)
        if statements:
            plans = _explain(case.connection, statements)
    samples: dict[str, list[int]] = {part: [] for part in parts}
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            case.prep()
            measured, outcome = case.run()
            checks = case.check(outcome)
            del outcome
            for part in parts:
                samples[part].append(measured[part])
    finally:
        gc.enable()
    return {"samples_ns": samples, "checks": checks, "query_plans": plans}


def run(workload: str, directory: Path, rounds: int, warmup: int) -> dict[str, Any]:
    """Reset the population, set up and measure; never raises (failures become "error")."""
    spec = WORKLOADS[workload]
    result: dict[str, Any] = {
        "workload": workload,
        "size": None,
        "status": "ok",
        "reason": None,
        "version": None,
        "parts": list(spec.parts),
        "rounds": rounds,
        "warmup": warmup,
        "samples_ns": {},
        "checks": {},
        "query_plans": [],
        "reset": {},
    }
    try:
        from benchmarks.compliance import population

        manifest = population.load(directory)
        if manifest is None:
            raise BenchmarkError(f"no population in {directory}")
        result["size"] = manifest["size"]
        result["version"] = _versions()
        saved = population.load_saved(directory, manifest)
        result["reset"]["before"] = population.reset(directory, manifest, saved)
        try:
            with ExitStack() as stack:
                build = _client_case if spec.kind == "entrenous" else _floor_case
                case = build(workload, directory, manifest, saved, stack)
                result.update(measure(case, rounds, warmup, spec.parts))
        finally:
            result["reset"]["after"] = population.reset(directory, manifest, saved)
    except Exception as exc:
        traceback.print_exc()
        result.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compliance.worker",
        description="Measure one compliance workload on one population; print JSON on stdout.",
    )
    parser.add_argument("workload", choices=list(WORKLOADS))
    parser.add_argument("--dir", type=Path, required=True, help="the population's directory")
    parser.add_argument("--rounds", type=int, required=True, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else WORKLOADS[args.workload].full_warmup
    result = run(args.workload, args.dir, args.rounds, warmup)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 1 if result["status"] == "error" else 0


if __name__ == "__main__":
    raise SystemExit(main())
