"""Measure one store workload on one population in this process; print the result as JSON.

    python -m benchmarks.store.worker WORKLOAD --dir POPULATION_DIR --rounds N [--warmup N]

The runner starts one such process per (workload, size), so no workload warms caches,
allocators or imports for another. The population is reset first (rows added by earlier workers
deleted, WALs emptied) and, for a workload that writes, again afterwards. stdout carries exactly
one JSON object: ``workload``, ``size``, ``status`` ("ok" or "error"), ``reason``, ``version``,
``ops_per_iteration``, ``rounds``, ``warmup``, ``samples_ns`` (one
:func:`time.perf_counter_ns` difference per timed iteration) and ``reset`` (rows deleted before
and after). The exit status is 0 unless the status is "error" (the traceback then goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.protocol.common import BenchmarkError, Case, measure
from benchmarks.store.common import FLOOR_BATCH, PAGE, TEXT, WORKLOADS


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


def _client_case(name: str, directory: Path, manifest: dict[str, Any], stack: ExitStack) -> Case:
    from entrenous.client import Client

    keys = {role: bytes.fromhex(manifest["keys"][role]) for role in ("a", "b")}
    if name == "open_raw_key":
        path, key = directory / "b.db", keys["b"]

        def run_open(_: object) -> None:
            Client.open(path, key=key).close()

        return Case(run_open)

    b = stack.enter_context(Client.open(directory / "b.db", key=keys["b"]))
    if name in ("history_page", "history_page_deep"):
        conversation = b.conversation(manifest["main"]["b"])
        before = manifest["deep_before"] if name == "history_page_deep" else None
        if len(conversation.history(PAGE, before=before)) != PAGE:
            raise BenchmarkError(f"{name}: the main conversation has no full page there")

        def run_history(_: object) -> None:
            if len(conversation.history(PAGE, before=before)) != PAGE:
                raise BenchmarkError(f"{name}: short page")

        return Case(run_history)

    a = stack.enter_context(Client.open(directory / "a.db", key=keys["a"]))
    sending = a.conversation(manifest["main"]["a"])
    main_b = manifest["main"]["b"]
    first = b.receive(sending.send(TEXT))  # untimed: the envelopes reach B's main conversation
    if first.conversation.id != main_b or first.message.text != TEXT:
        raise BenchmarkError(f"{name}: a message did not land in B's main conversation")
    if name == "send_receive":
        receive = b.receive

        def run_send_receive(_: object) -> None:
            if receive(sending.send(TEXT)).message.text != TEXT:
                raise BenchmarkError("send_receive: wrong text received")

        return Case(run_send_receive)

    batch = WORKLOADS[name].ops_per_iteration
    send, receive_many = sending.send, b.receive_many

    def prep() -> list[bytes]:
        return [send(TEXT) for _ in range(batch)]

    def run_receive_many(envelopes: list[bytes]) -> None:
        outcomes = receive_many(envelopes)
        if len(outcomes) != batch or not all(outcome.ok for outcome in outcomes):
            raise BenchmarkError(f"{name}: an envelope was refused")

    return Case(run_receive_many, prep=prep)


def _floor_case(name: str, directory: Path, manifest: dict[str, Any], stack: ExitStack) -> Case:
    from benchmarks.store.population import BODY_SIZE, FLOOR_INSERT, START_MS, raw_connect

    if name in SAME_WORK_FLOORS:
        return _same_work_case(name, directory, manifest, stack)

    path, key_hex, main = directory / "floor.db", manifest["keys"]["floor"], manifest["floor_main"]
    select = (
        "SELECT uid, direction, sent_at, received_at, nonce, body FROM messages "
        "WHERE conversation_id = ? ORDER BY id DESC LIMIT ?"
    )
    if name == "floor_open":

        def run_open(_: object) -> None:
            connection = raw_connect(path, key_hex)
            connection.execute(select, (main, 1)).fetchall()
            connection.close()

        return Case(run_open)

    connection = raw_connect(path, key_hex)
    stack.callback(connection.close)
    execute = connection.execute
    if name == "floor_select_page":

        def run_select(_: object) -> None:
            if len(execute(select, (main, PAGE)).fetchall()) != PAGE:
                raise BenchmarkError("floor_select_page: short page")

        return Case(run_select)

    def row() -> tuple[object, ...]:
        # Blobs as bytearray, as the store binds them: sqlcipher3 sends a bytes parameter
        # through its adapter registry first (about 3 µs each), a bytearray straight through.
        return (
            main,
            bytearray(os.urandom(16)),
            1,
            START_MS,
            START_MS + 500,
            bytearray(os.urandom(12)),
            bytearray(os.urandom(BODY_SIZE)),
        )

    if name == "floor_insert_1tx":

        def run_insert(one: tuple[object, ...]) -> None:
            execute("BEGIN IMMEDIATE")
            execute(FLOOR_INSERT, one)
            execute("COMMIT")

        return Case(run_insert, prep=row)

    assert name == "floor_insert_batch"
    executemany = connection.executemany

    def rows() -> list[tuple[object, ...]]:
        return [row() for _ in range(FLOOR_BATCH)]

    def run_batch(batch: list[tuple[object, ...]]) -> None:
        execute("BEGIN IMMEDIATE")
        executemany(FLOOR_INSERT, batch)
        execute("COMMIT")

    return Case(run_batch, prep=rows)


#: The same-work floors (benchmarks/store/common.py says what they are).
SAME_WORK_FLOORS = ("floor_send_receive", "floor_receive_batch")


def _same_work_case(name: str, directory: Path, manifest: dict[str, Any], stack: ExitStack) -> Case:
    """A same-work floor: the client's writes in raw sqlcipher3 and its bare primitive calls.

    The message's plaintext is the stored payload of the 1 KiB text (the protocol's padding is
    left out: a floor may do less, never more). The sender's chain runs in ``prep`` for
    ``floor_receive_batch`` (A sending is untimed there too) and in the timed iteration for
    ``floor_send_receive``. Message ids, nonces and state blobs are random bytes drawn in
    ``prep``, as ``floor_insert_1tx`` draws its rows. Parameters are bound the way the store
    binds them, the cheapest sqlcipher3 has: blobs as ``bytearray``, never a ``None`` (a NULL
    is a literal in the statement).
    """
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from benchmarks.protocol.floor_impl import AD, chain_step
    from benchmarks.store.population import (
        BODY_SIZE,
        FLOOR_INSERT,
        FLOOR_INSERT_SENT,
        FLOOR_UPDATE_STATE,
        START_MS,
        raw_connect,
    )

    key_hex, main = manifest["keys"]["floor"], manifest["floor_main"]
    state_size = manifest["state_size"]
    plaintext = os.urandom(BODY_SIZE - 16)
    body_ad = os.urandom(48)  # the store binds a body to a label and both ids
    first_chain = os.urandom(32)
    chains = [first_chain, first_chain]  # the sender's and the receiver's copy of one chain
    # One data-key cipher per store, set up once (as the store keeps its keys).
    seal_a = ChaCha20Poly1305(os.urandom(32)).encrypt
    seal_b = ChaCha20Poly1305(os.urandom(32)).encrypt
    connections = {}
    for stem in ("floor", "floor-peer"):
        connection = connections[stem] = raw_connect(directory / f"{stem}.db", key_hex)
        stack.callback(connection.close)
    sender, receiver = connections["floor"].execute, connections["floor-peer"].execute

    def drawn() -> tuple[bytearray, bytearray]:
        """A message id and a body nonce."""
        return bytearray(os.urandom(16)), bytearray(os.urandom(12))

    if name == "floor_send_receive":
        Drawn = tuple[
            tuple[bytearray, bytearray], tuple[bytearray, bytearray], bytearray, bytearray
        ]

        def prep() -> Drawn:
            return (
                drawn(),
                drawn(),
                bytearray(os.urandom(state_size["a"])),
                bytearray(os.urandom(state_size["b"])),
            )

        def run_send_receive(prepared: Drawn) -> None:
            (uid_a, nonce_a), (uid_b, nonce_b), state_a, state_b = prepared
            key, nonce, chains[0] = chain_step(chains[0])
            envelope = ChaCha20Poly1305(key).encrypt(nonce, plaintext, AD)
            body = bytearray(seal_a(nonce_a, plaintext, body_ad))
            sender("BEGIN IMMEDIATE")
            sender(FLOOR_INSERT_SENT, (main, uid_a, 0, START_MS, nonce_a, body))
            sender(FLOOR_UPDATE_STATE, (state_a, START_MS, main))
            sender("COMMIT")
            key, nonce, chains[1] = chain_step(chains[1])
            opened = ChaCha20Poly1305(key).decrypt(nonce, envelope, AD)
            body = bytearray(seal_b(nonce_b, opened, body_ad))
            receiver("BEGIN IMMEDIATE")
            receiver(FLOOR_INSERT, (main, uid_b, 1, START_MS, START_MS + 500, nonce_b, body))
            receiver(FLOOR_UPDATE_STATE, (state_b, START_MS, main))
            receiver("COMMIT")

        return Case(run_send_receive, prep=prep)

    assert name == "floor_receive_batch"
    executemany = connections["floor-peer"].executemany
    Batch = tuple[list[tuple[bytes, tuple[bytearray, bytearray]]], bytearray]

    def prep_batch() -> Batch:
        sent = []
        for _ in range(FLOOR_BATCH):
            key, nonce, chains[0] = chain_step(chains[0])
            sent.append((ChaCha20Poly1305(key).encrypt(nonce, plaintext, AD), drawn()))
        return sent, bytearray(os.urandom(state_size["b"]))

    def run_receive_batch(prepared: Batch) -> None:
        sent, state = prepared
        rows = []
        for envelope, (uid, nonce_b) in sent:
            key, nonce, chains[1] = chain_step(chains[1])
            opened = ChaCha20Poly1305(key).decrypt(nonce, envelope, AD)
            body = bytearray(seal_b(nonce_b, opened, body_ad))
            rows.append((main, uid, 1, START_MS, START_MS + 500, nonce_b, body))
        receiver("BEGIN IMMEDIATE")
        executemany(FLOOR_INSERT, rows)
        receiver(FLOOR_UPDATE_STATE, (state, START_MS, main))
        receiver("COMMIT")

    return Case(run_receive_batch, prep=prep_batch)


def run(workload: str, directory: Path, rounds: int, warmup: int) -> dict[str, Any]:
    """Reset the population, set up and measure; never raises (failures become "error")."""
    spec = WORKLOADS[workload]
    result: dict[str, Any] = {
        "workload": workload,
        "size": None,
        "status": "ok",
        "reason": None,
        "version": None,
        "ops_per_iteration": spec.ops_per_iteration,
        "rounds": rounds,
        "warmup": warmup,
        "samples_ns": [],
        "reset": {},
    }
    try:
        from benchmarks.store import population

        manifest = population.load(directory)
        if manifest is None:
            raise BenchmarkError(f"no population in {directory}")
        result["size"] = manifest["size"]
        result["version"] = _versions()
        result["reset"]["before"] = population.reset(directory, manifest)
        try:
            with ExitStack() as stack:
                build = _client_case if spec.kind == "entrenous" else _floor_case
                result["samples_ns"] = measure(
                    build(workload, directory, manifest, stack), rounds, warmup
                )
        finally:
            if spec.writes:
                result["reset"]["after"] = population.reset(directory, manifest)
    except Exception as exc:
        traceback.print_exc()
        result.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.store.worker",
        description="Measure one store workload on one population; print JSON on stdout.",
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
