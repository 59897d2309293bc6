"""Build, cache, reset and inspect the populated stores the store workloads run on.

    python -m benchmarks.store.population --size N [--rebuild] [--explain]

prints (last line of stdout) the population's manifest as JSON, building it first if the cache
has none. A population of ``size`` messages is built honestly but fast:

1. Two clients, A and B, are created through :class:`entrenous.Client` with raw keys; A starts
   a conversation from B's bundle and they exchange three real messages (the *main*
   conversation, on both sides).
2. Each store is then filled through the store's own code (``SqlCipherStore``, the class the
   client uses): ``CONVERSATIONS - 1`` filler conversations, each with a genuine established
   session state (a real handshake between the store's own identity and a fresh peer; their
   data keys created in the key file by ``add_conversation``), then ``size - 3`` messages added
   with ``store.add_message`` (so every body is a real payload of the 1 KiB text, encrypted
   under its conversation's data key), ``BUILD_CHUNK`` messages per transaction.
   ``MAIN_MESSAGES`` of them belong to the main conversation, spread evenly among the fillers'
   (the same message ids on both sides, as a real exchange would have). A and B are filled in
   two processes at once.
3. ``floor.db``: a raw SQLCipher database with the store's PRAGMAs and a ``messages`` table of
   the same columns and indexes (no foreign key), filled with ``size`` rows of the same sizes,
   and a ``conversations`` table of ``CONVERSATIONS`` rows, each with a state blob as long as
   the main conversation's real protocol state. ``floor-peer.db`` is a copy of it.

No ``ANALYZE`` is run: the library never runs it, so the query planner sees what it sees in a
real store. Populations are cached under ``benchmarks/results/cache/`` keyed by
:data:`~benchmarks.store.common.POPULATION_VERSION`, the store's schema versions and the size; a
build goes to a ``.partial`` directory renamed when complete, so an interrupted build is never
taken for a cached one.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sqlcipher3 import dbapi2 as sqlcipher

from benchmarks.store.common import (
    BUILD_CHUNK,
    CACHE_DIR,
    CONVERSATIONS,
    DEEP_BEFORE_INDEX,
    FLOOR_FILES,
    MAIN_MESSAGES,
    POPULATION_VERSION,
    TEXT,
    size_label,
)
from entrenous import payload
from entrenous.client import Client
from entrenous.protocol import Identity, PrekeyPool, Session
from entrenous.store import migrations
from entrenous.store.base import ConversationRecord, MessageRecord
from entrenous.store.sqlcipher import SqlCipherStore

#: The fake clock of the build (ms since the epoch): one message a second from here.
START_MS = 1_700_000_000_000
#: The "current time" (unix seconds) of the filler handshakes.
NOW = START_MS // 1000
#: Real messages exchanged through the clients before the bulk load (see the module doc).
REAL_MESSAGES = 3
#: Length of a stored body: the payload of the 1 KiB text plus the 16-byte AEAD tag.
BODY_SIZE = len(payload.encode(bytes(16), START_MS, TEXT)) + 16

_FLOOR_SCHEMA = (
    """CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    uid BLOB NOT NULL CHECK (length(uid) = 16),
    direction INTEGER NOT NULL CHECK (direction IN (0, 1)),
    sent_at INTEGER NOT NULL,
    received_at INTEGER,
    nonce BLOB NOT NULL CHECK (length(nonce) = 12),
    body BLOB NOT NULL,
    timer_ms INTEGER,
    expires_at INTEGER,
    UNIQUE (conversation_id, uid)
)""",
    "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
    "CREATE INDEX messages_by_expiry ON messages (expires_at, conversation_id) "
    "WHERE expires_at IS NOT NULL",
    # What a send or receive changes in the store's conversations row: the protocol state and
    # the time (the store's other columns are never written on that path).
    """CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    state BLOB NOT NULL,
    updated_at INTEGER NOT NULL
)""",
)
#: What the same-work floors write per message in a conversations row.
FLOOR_UPDATE_STATE = "UPDATE conversations SET state = ?, updated_at = ? WHERE id = ?"
#: The store's columns, the two compliance ones NULL as in the client's rows here (no policy).
FLOOR_INSERT = (
    "INSERT INTO messages (conversation_id, uid, direction, sent_at, received_at, nonce, body, "
    "timer_ms, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
)
#: A sent message's row (no received_at), NULLs written as literals as the store writes them.
FLOOR_INSERT_SENT = (
    "INSERT INTO messages (conversation_id, uid, direction, sent_at, received_at, nonce, body, "
    "timer_ms, expires_at) VALUES (?, ?, ?, ?, NULL, ?, ?, NULL, NULL)"
)
#: Page cache of the building connections, in KiB (the store's own default is 8 MiB).
BUILD_CACHE_KIB = 256 * 1024
#: Share of free pages above which :func:`reset` vacuums a file.
VACUUM_FREE_SHARE = 0.05
#: The floor's main conversation (the one with ``MAIN_MESSAGES`` rows).
FLOOR_MAIN = 1


def cache_key() -> str:
    """The cache directory's name: what a population depends on."""
    return f"store-p{POPULATION_VERSION}-schema{migrations.LATEST}-keys{migrations.KEY_FILE_LATEST}"


def population_dir(size: int) -> Path:
    """Where the population of ``size`` messages is cached."""
    return CACHE_DIR / cache_key() / f"n{size}"


def raw_connect(path: Path, key_hex: str) -> Any:
    """A raw sqlcipher3 connection with the store's key and PRAGMAs (as an auditor opens it)."""
    connection = sqlcipher.connect(str(path), isolation_level=None)
    connection.execute(f"PRAGMA key = \"x'{key_hex}'\"")
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA secure_delete = ON")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def _plan(size: int) -> tuple[int, set[int]]:
    """Bulk rows per store and the bulk positions that belong to the main conversation."""
    bulk = size - REAL_MESSAGES
    return bulk, {k * bulk // MAIN_MESSAGES for k in range(MAIN_MESSAGES)}


def _main_uid(salt: bytes, k: int) -> bytes:
    return hashlib.blake2b(salt + k.to_bytes(4, "big"), digest_size=16).digest()


def _filler_conversation(owner: Identity, at_ms: int) -> ConversationRecord:
    """A conversation with a fresh peer: a real handshake and one reply, as a store holds it."""
    peer = Identity.generate()
    pool = PrekeyPool.create(peer, now=NOW)
    ours = Session.initiate(owner, pool.issue_bundle(now=NOW))
    theirs, _ = Session.respond(peer, pool, ours.encrypt(b"hello"), now=NOW)
    ours.decrypt(theirs.encrypt(b"hello"))
    return ConversationRecord(
        uid=os.urandom(16),
        session_id=ours.session_id,
        peer_identity=ours.peer_identity.to_bytes(),
        peer=None,
        state=ours.to_bytes(),
        verified=None,
        created_at=at_ms,
        updated_at=at_ms,
    )


def _fill_client_store(
    path: str, key_hex: str, main_hex: str, role: str, size: int, salt: bytes, conversations: int
) -> dict[str, Any]:
    """Add the filler conversations and the bulk messages to one client's store."""
    started = time.perf_counter()
    store = SqlCipherStore.open(path, bytes.fromhex(key_hex))
    try:
        # A bigger page cache for the build only (rows interleaved over 1,000 conversations
        # touch that many index leaves per transaction); it changes the speed, not the file.
        store._connection.execute(f"PRAGMA cache_size = -{BUILD_CACHE_KIB}")
        secret = store.load_secret("identity")
        assert secret is not None
        owner = Identity.from_bytes(secret)
        fillers = []
        for _ in range(conversations - 1):
            record = _filler_conversation(owner, START_MS)
            with store.transaction():
                store.add_conversation(record)
            fillers.append(record.uid)
        conversations_seconds = time.perf_counter() - started
        main = bytes.fromhex(main_hex)
        bulk, main_positions = _plan(size)
        last: dict[bytes, int] = {}
        k = 0  # main messages so far
        f = 0  # filler messages so far
        for start in range(0, bulk, BUILD_CHUNK):
            with store.transaction():
                for i in range(start, min(start + BUILD_CHUNK, bulk)):
                    sent_at = START_MS + 1000 * (REAL_MESSAGES + i)
                    if i in main_positions:
                        conversation, uid = main, _main_uid(salt, k)
                        # A sends the even ones, B the odd ones.
                        ours = (k % 2 == 0) == (role == "a")
                        k += 1
                    else:
                        conversation, uid = fillers[f % len(fillers)], os.urandom(16)
                        ours = f % 2 == 0
                        f += 1
                    store.add_message(
                        MessageRecord(
                            uid=uid,
                            conversation_uid=conversation,
                            direction="sent" if ours else "received",
                            sent_at=sent_at,
                            received_at=None if ours else sent_at + 500,
                            body=payload.encode(uid, sent_at, TEXT),
                        )
                    )
                    last[conversation] = sent_at
        with store.transaction():
            for conversation, at in last.items():
                store.update_conversation(conversation, updated_at=at)
    finally:
        store.close()
    return {
        "role": role,
        "seconds": time.perf_counter() - started,
        "conversations_seconds": conversations_seconds,
        "main_messages": k,
    }


def _fill_floor(
    path: str, key_hex: str, size: int, state_size: int, conversations: int
) -> dict[str, Any]:
    """The floor database: ``size`` message-shaped rows and ``conversations`` conversation rows
    with a ``state_size``-byte state each, by raw sqlcipher3."""
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    connection = raw_connect(Path(path), key_hex)
    try:
        connection.execute(f"PRAGMA cache_size = -{BUILD_CACHE_KIB}")
        for statement in _FLOOR_SCHEMA:
            connection.execute(statement)
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO conversations (id, state, updated_at) VALUES (?, ?, ?)",
            [(i, os.urandom(state_size), START_MS) for i in range(1, conversations + 1)],
        )
        connection.execute("COMMIT")
        _, main_positions = _plan(size + REAL_MESSAGES)
        f = 0
        for start in range(0, size, BUILD_CHUNK):
            rows = []
            for i in range(start, min(start + BUILD_CHUNK, size)):
                if i in main_positions:
                    conversation = FLOOR_MAIN
                else:
                    conversation = 2 + f % (conversations - 1)
                    f += 1
                sent_at = START_MS + 1000 * i
                received = i % 2
                rows.append(
                    (
                        conversation,
                        os.urandom(16),
                        received,
                        sent_at,
                        sent_at + 500 if received else None,
                        os.urandom(12),
                        os.urandom(BODY_SIZE),
                    )
                )
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(FLOOR_INSERT, rows)
            connection.execute("COMMIT")
    finally:
        connection.close()
    return {"role": "floor", "seconds": time.perf_counter() - started}


def _state_size(path: Path, key_hex: str, conversation: str) -> int:
    """Bytes of a conversation's saved protocol state, as the store holds it."""
    store = SqlCipherStore.open(path, bytes.fromhex(key_hex))
    try:
        record = store.conversation(bytes.fromhex(conversation))
        assert record is not None
        return len(record.state)
    finally:
        store.close()


def _max_ids(path: Path, key_hex: str, tables: tuple[str, ...]) -> dict[str, int]:
    connection = raw_connect(path, key_hex)
    try:
        return {
            table: connection.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]  # noqa: S608
            for table in tables
        }
    finally:
        connection.close()


def _count(path: Path, key_hex: str, where: str = "") -> int:
    connection = raw_connect(path, key_hex)
    try:
        count: int = connection.execute(f"SELECT count(*) FROM messages {where}").fetchone()[0]  # noqa: S608
        return count
    finally:
        connection.close()


def build(size: int, directory: Path, conversations: int = CONVERSATIONS) -> dict[str, Any]:
    """Build the population of ``size`` messages into ``directory`` (replacing any), in
    ``conversations`` conversations per store (fewer than the benchmarks' only in tests)."""
    if conversations < 2:
        raise ValueError("a population needs the main conversation and at least one filler")
    if size < 2 * MAIN_MESSAGES + REAL_MESSAGES:
        raise ValueError(
            f"a population needs at least {2 * MAIN_MESSAGES + REAL_MESSAGES} messages"
        )
    started = time.perf_counter()
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    keys = {name: os.urandom(32).hex() for name in ("a", "b", "floor")}
    salt = os.urandom(16)
    clock_ms = [START_MS]

    def clock() -> float:
        return clock_ms[0] / 1000

    # 1. The main conversation, through the public API.
    with (
        Client.open(partial / "a.db", key=bytes.fromhex(keys["a"]), clock=clock) as a,
        Client.open(partial / "b.db", key=bytes.fromhex(keys["b"]), clock=clock) as b,
    ):
        conv_a = a.start_conversation(b.prekey_bundle(), peer="b")
        conv_b = b.receive(conv_a.send(TEXT)).conversation
        clock_ms[0] += 1000
        a.receive(conv_b.send(TEXT))
        clock_ms[0] += 1000
        b.receive(conv_a.send(TEXT))
        main = {"a": conv_a.id, "b": conv_b.id}
    real_seconds = time.perf_counter() - started
    state_size = {
        role: _state_size(partial / f"{role}.db", keys[role], main[role]) for role in main
    }

    # 2. and 3. Bulk load, two processes at once.
    with ProcessPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(
                _fill_client_store,
                str(partial / f"{role}.db"),
                keys[role],
                main[role],
                role,
                size,
                salt,
                conversations,
            )
            for role in ("a", "b")
        ]
        jobs.append(
            pool.submit(
                _fill_floor,
                str(partial / "floor.db"),
                keys["floor"],
                size,
                max(state_size.values()),
                conversations,
            )
        )
        fills = [job.result() for job in jobs]
    # The receiving side of floor_send_receive: the same file (closed, so checkpointed).
    shutil.copyfile(partial / "floor.db", partial / "floor-peer.db")
    os.chmod(partial / "floor-peer.db", 0o600)

    base = {
        role: _max_ids(partial / f"{role}.db", keys[role], ("messages", "conversations"))
        for role in ("a", "b")
    }
    base["floor"] = _max_ids(partial / "floor.db", keys["floor"], ("messages",))
    base["floor-peer"] = dict(base["floor"])
    counts = {role: _count(partial / f"{role}.db", keys[role]) for role in ("a", "b")}
    counts["floor"] = _count(partial / "floor.db", keys["floor"])
    counts["floor_main"] = _count(
        partial / "floor.db", keys["floor"], f"WHERE conversation_id = {FLOOR_MAIN}"
    )
    for role in ("a", "b", "floor"):
        if counts[role] != size:
            raise RuntimeError(f"{role}: built {counts[role]} messages, expected {size}")
    manifest: dict[str, Any] = {
        "population_version": POPULATION_VERSION,
        "cache_key": cache_key(),
        "size": size,
        "label": size_label(size),
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "build_seconds": {
            "total": time.perf_counter() - started,
            "real_messages": real_seconds,
            **{fill["role"]: fill["seconds"] for fill in fills},
            "filler_conversations": max(fill.get("conversations_seconds", 0) for fill in fills),
        },
        "keys": keys,
        "main": main,
        "main_messages": REAL_MESSAGES + MAIN_MESSAGES,
        "deep_before": _main_uid(salt, DEEP_BEFORE_INDEX).hex(),
        "conversations": conversations,
        "floor_main": FLOOR_MAIN,
        "body_size": BODY_SIZE,
        "state_size": state_size,
        "base": base,
        "messages": counts,
        "files": {p.name: p.stat().st_size for p in sorted(partial.iterdir()) if p.is_file()},
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return manifest


def load(directory: Path) -> dict[str, Any] | None:
    """The manifest of a complete cached population, or ``None``."""
    try:
        manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return manifest


def ensure(size: int, *, rebuild: bool = False) -> tuple[Path, dict[str, Any], bool]:
    """The population of ``size`` messages: ``(directory, manifest, built_now)``."""
    directory = population_dir(size)
    manifest = None if rebuild else load(directory)
    if manifest is not None:
        return directory, manifest, False
    return directory, build(size, directory), True


def reset(directory: Path, manifest: dict[str, Any]) -> dict[str, int]:
    """Delete every row a workload added (past the population's own); empty the WALs.

    A file left with more than :data:`VACUUM_FREE_SHARE` of its pages free (the small
    populations, after a workload that wrote several times their size) is vacuumed, so every
    worker meets a store that looks built, not one mostly made of free pages. Returns the rows
    deleted per file. Run only while no client has the stores open.
    """
    deleted = {}
    for role, tables in (
        ("a", ("messages", "conversations")),
        ("b", ("messages", "conversations")),
        *((name, ("messages",)) for name in FLOOR_FILES),
    ):
        key = manifest["keys"]["floor" if role in FLOOR_FILES else role]
        connection = raw_connect(directory / f"{role}.db", key)
        try:
            connection.execute("BEGIN IMMEDIATE")
            count = 0
            for table in tables:
                count += connection.execute(
                    f"DELETE FROM {table} WHERE id > ?",  # noqa: S608 - fixed names
                    (manifest["base"][role][table],),
                ).rowcount
            connection.execute("COMMIT")
            free = connection.execute("PRAGMA freelist_count").fetchone()[0]
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            if free > VACUUM_FREE_SHARE * pages:
                connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        deleted[role] = count
    return deleted


# --- query plans -------------------------------------------------------------------------------


def _flags(details: list[str]) -> list[str]:
    flags = []
    for detail in details:
        if detail.startswith("SCAN") and "INDEX" not in detail:
            flags.append(f"full scan: {detail}")
        elif detail.startswith("SCAN"):
            flags.append(f"index scan (whole index): {detail}")
        if "TEMP B-TREE" in detail:
            flags.append(f"sorts in a temporary b-tree: {detail}")
    return flags


def explain(directory: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """EXPLAIN QUERY PLAN of every statement the store runs for the client's hot paths.

    The statements are captured as the store runs them (``set_trace_callback`` on its
    connection, parameters inlined), on B's store: a receive (``conversation_by_session``,
    ``update_conversation``, ``add_message``, in a transaction rolled back), a history page and a
    deep one.
    """
    key = bytes.fromhex(manifest["keys"]["b"])
    main = bytes.fromhex(manifest["main"]["b"])
    store = SqlCipherStore.open(directory / "b.db", key)
    captured: list[tuple[str, str]] = []
    label = ["conversation"]
    try:
        connection = store._connection
        connection.set_trace_callback(lambda sql: captured.append((label[0], sql)))
        record = store.conversation(main)
        assert record is not None
        label[0] = "conversation_by_session"
        store.conversation_by_session(record.session_id)
        label[0] = "history (newest page)"
        store.history(main, limit=50, before=None)
        label[0] = "history (before=, deep page)"
        store.history(main, limit=50, before=bytes.fromhex(manifest["deep_before"]))

        class _Rollback(Exception):
            pass

        try:
            with store.transaction():
                label[0] = "update_conversation"
                store.update_conversation(main, state=record.state, updated_at=record.updated_at)
                label[0] = "add_message"
                store.add_message(
                    MessageRecord(os.urandom(16), main, "received", START_MS, START_MS, b"x")
                )
                raise _Rollback
        except _Rollback:
            pass
        connection.set_trace_callback(None)
        plans = []
        seen = set()
        for what, sql in captured:
            head = sql.lstrip().split(None, 1)[0].upper()
            if head not in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"} or sql in seen:
                continue
            seen.add(sql)
            rows = connection.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            details = [str(row[-1]) for row in rows]
            plans.append(
                {
                    "call": what,
                    "sql": _shorten(sql),
                    "plan": details,
                    "problems": _flags(details),
                }
            )
    finally:
        store.close()
    return plans


def _shorten(sql: str) -> str:
    """The statement with long blob literals abbreviated."""
    out, i = [], 0
    while True:
        j = sql.find("x'", i)
        if j < 0:
            out.append(sql[i:])
            return "".join(out)
        end = sql.find("'", j + 2)
        if end - j > 20:
            out.append(sql[i : j + 2] + sql[j + 2 : j + 10] + "..'")
        else:
            out.append(sql[i : end + 1])
        i = end + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.store.population",
        description="Build (or find in the cache) the populated stores of one size; print the "
        "manifest as JSON.",
    )
    parser.add_argument("--size", type=int, required=True, help="stored messages per store")
    parser.add_argument("--rebuild", action="store_true", help="build even if cached")
    parser.add_argument(
        "--explain", action="store_true", help="add the store's query plans to the output"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    directory, manifest, built = ensure(args.size, rebuild=args.rebuild)
    out = dict(manifest, directory=str(directory), built_now=built)
    out["ensure_seconds"] = time.perf_counter() - started
    if args.explain:
        reset(directory, manifest)
        out["query_plans"] = explain(directory, manifest)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
