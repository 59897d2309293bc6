"""Build, cache and restore the populated stores the compliance workloads run on.

    python -m benchmarks.compliance.population --size N [--rebuild]

prints (last line of stdout) the population's manifest as JSON, building it first if the cache
has none. A population of ``size`` messages (see :mod:`benchmarks.compliance.common`) is built
with the store suite's pieces, honestly but without sending every message through the client:

1. The store is created through :class:`entrenous.Client` (raw key, injected clock) with the
   benchmark policy applied (``Client.open(..., policy=...)``: the policy is kept in the store
   and audited).
2. Its conversations are added through the store's own code (``SqlCipherStore``, the class the
   client uses), each with a genuine established session state (a real handshake between the
   store's identity and a fresh peer) and its data key created in the key file: the expiring
   conversations (category ``ephemeral``), one conversation of each data subject (``subject``
   set), and fillers. Then ``size`` messages are added with ``store.add_messages``,
   ``BUILD_CHUNK`` per transaction: one a second on the population's timeline, every body the
   real payload of the 1 KiB text sealed under its conversation's data key, every ``expires_at``
   computed as the client computes it at insert (``retention.expires_at`` with the rule
   ``Policy.rule_for`` gives the conversation). The expiring, erasure and export messages are
   spread at random (fixed seed) over the whole timeline, the fillers' round-robin in between.
3. The population's clock (``now_ms`` in the manifest) is set one ``ephemeral`` lifetime after
   the last message, so that exactly ``Layout.expired`` messages are expired at it and no
   filler's (kept two years) is. The build checks these counts.
4. ``restore.db`` (SQLCipher, the store's key) keeps a copy of the rows the sweep and the
   erasure delete, the erased conversation's row and its data key; ``floor.db`` is a byte copy
   of the finished store, for the raw floors.

No ``ANALYZE`` is run (the library never runs it). Populations are cached under
``benchmarks/results/cache/`` keyed by :data:`~benchmarks.compliance.common.POPULATION_VERSION`,
the store's schema versions and the size; a build goes to a ``.partial`` directory renamed when
complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.compliance.common import (
    EPHEMERAL,
    EPHEMERAL_MS,
    ERASE_SUBJECT,
    EXPORT_SUBJECT,
    LAYOUT,
    POLICY_TEXT,
    POPULATION_VERSION,
    Layout,
)
from benchmarks.store.common import BUILD_CHUNK, CACHE_DIR, TEXT, size_label
from benchmarks.store.population import (
    BUILD_CACHE_KIB,
    START_MS,
    _filler_conversation,
    raw_connect,
)
from entrenous import payload
from entrenous.client import Client
from entrenous.compliance import audit, retention
from entrenous.compliance.policy import Policy
from entrenous.protocol import Identity
from entrenous.store import migrations
from entrenous.store.base import ConversationRecord, MessageRecord
from entrenous.store.keys import key_file_key
from entrenous.store.sqlcipher import SqlCipherStore, key_file_path

#: Seed of the random spread of the expiring and subject messages over the timeline.
SEED = 20_241_201
#: The row groups a workload deletes and the reset puts back.
EXPIRED, ERASED = "expired", "erased"
GROUPS = (EXPIRED, ERASED)


def cache_key() -> str:
    """The cache directory's name: what a population depends on."""
    return (
        f"compliance-p{POPULATION_VERSION}-schema{migrations.LATEST}"
        f"-keys{migrations.KEY_FILE_LATEST}"
    )


def population_dir(size: int) -> Path:
    """Where the population of ``size`` messages is cached."""
    return CACHE_DIR / cache_key() / f"n{size}"


def policy() -> Policy:
    """The policy the population's store applies."""
    return Policy.parse(POLICY_TEXT, source="benchmarks/compliance")


def _attach(connection: Any, path: Path, name: str, key: bytes) -> None:
    connection.execute(
        f"ATTACH DATABASE ? AS {name} KEY \"x'{key.hex()}'\"",  # fixed name, hex key
        (str(path),),
    )


def _fill(path: Path, key: bytes, size: int, layout: Layout, rules: Policy) -> dict[str, Any]:
    """Add the conversations and the ``size`` messages to the store (see the module doc)."""
    started = time.perf_counter()
    store = SqlCipherStore.open(path, key)
    try:
        # A bigger page cache for the build only; it changes the speed, not the file.
        store._connection.execute(f"PRAGMA cache_size = -{BUILD_CACHE_KIB}")
        secret = store.load_secret("identity")
        assert secret is not None
        owner = Identity.from_bytes(secret)

        def conversation(category: str | None, subject: str | None) -> ConversationRecord:
            record = _filler_conversation(owner, START_MS)
            return replace(record, category=category, subject=subject)

        expiring = [conversation(EPHEMERAL, None) for _ in range(layout.expiring_conversations)]
        erase = conversation(None, ERASE_SUBJECT)
        export = conversation(None, EXPORT_SUBJECT)
        fillers = [conversation(None, None) for _ in range(layout.fillers)]
        everyone = [*expiring, erase, export, *fillers]
        with store.transaction():
            for record in everyone:
                store.add_conversation(record)
            audit.pseudonym(store, ERASE_SUBJECT)  # the pseudonym key, as after a first use
        conversations_seconds = time.perf_counter() - started

        # Which conversation each position of the timeline belongs to.
        chosen = random.Random(SEED).sample(range(size), layout.special)
        owners: dict[int, ConversationRecord] = {}
        for k, position in enumerate(chosen[: layout.expired]):
            owners[position] = expiring[k % len(expiring)]
        cut = layout.expired + layout.erase_messages
        owners.update(dict.fromkeys(chosen[layout.expired : cut], erase))
        owners.update(dict.fromkeys(chosen[cut:], export))
        if size > layout.special and not fillers:
            raise ValueError("a population with filler messages needs filler conversations")
        limits = {}
        for record in everyone:
            rule = rules.rule_for(record.category, record.uid.hex())
            limits[record.uid] = (rule.min_age_ms, rule.max_age_ms)
        last: dict[bytes, int] = {}
        f = 0  # filler messages so far
        for start in range(0, size, BUILD_CHUNK):
            batch = []
            for i in range(start, min(start + BUILD_CHUNK, size)):
                found = owners.get(i)
                if found is None:
                    found = fillers[f % len(fillers)]
                    f += 1
                sent_at = START_MS + 1000 * i
                received_at = None if i % 2 == 0 else sent_at + 500
                stored_at = sent_at if received_at is None else received_at
                low, high = limits[found.uid]
                uid = os.urandom(16)
                batch.append(
                    MessageRecord(
                        uid=uid,
                        conversation_uid=found.uid,
                        direction="sent" if received_at is None else "received",
                        sent_at=sent_at,
                        received_at=received_at,
                        body=payload.encode(uid, sent_at, TEXT),
                        # As the client computes it when it stores a message (no timer set).
                        expires_at=retention.expires_at(
                            stored_at, min_ms=low, max_ms=high, timer_ms=None
                        ),
                        timer_ms=None,
                    )
                )
                last[found.uid] = stored_at
            with store.transaction():
                store.add_messages(batch)
        with store.transaction():
            for uid, at in last.items():
                store.update_conversation(uid, updated_at=at)
        store.truncate_journal()
    finally:
        store.close()
    return {
        "seconds": time.perf_counter() - started,
        "conversations_seconds": conversations_seconds,
        "uids": {
            "expiring": [r.uid.hex() for r in expiring],
            "erase": erase.uid.hex(),
            "export": export.uid.hex(),
        },
    }


def build(size: int, directory: Path, layout: Layout = LAYOUT) -> dict[str, Any]:
    """Build the population of ``size`` messages into ``directory`` (replacing any)."""
    if size < layout.special:
        raise ValueError(f"a population needs at least {layout.special} messages")
    if layout.expiring_conversations < 1 or layout.fillers < 0:
        raise ValueError("a layout needs an expiring conversation and room for the subjects")
    started = time.perf_counter()
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    key = os.urandom(32)
    store_path = partial / "c.db"
    rules = policy()

    # 1. The store, through the public API, with the policy applied.
    Client.open(store_path, key=key, clock=lambda: START_MS / 1000, policy=rules).close()
    # 2. Conversations and messages through the store's own code.
    filled = _fill(store_path, key, size, layout, rules)
    # 3. The clock: one ephemeral lifetime after the last message was stored.
    now_ms = START_MS + 1000 * size + EPHEMERAL_MS

    connection = raw_connect(store_path, key.hex())
    try:
        ids = {}
        for name, uid in (("erase", filled["uids"]["erase"]), ("export", filled["uids"]["export"])):
            ids[name] = connection.execute(
                "SELECT id FROM conversations WHERE uid = ?", (bytes.fromhex(uid),)
            ).fetchone()[0]
        ids["expiring"] = [
            connection.execute(
                "SELECT id FROM conversations WHERE uid = ?", (bytes.fromhex(uid),)
            ).fetchone()[0]
            for uid in filled["uids"]["expiring"]
        ]

        def count(where: str = "", params: tuple[object, ...] = ()) -> int:
            query = f"SELECT count(*) FROM messages {where}"  # noqa: S608 - fixed text
            found: int = connection.execute(query, params).fetchone()[0]
            return found

        counts = {
            "messages": count(),
            "expired_at_now": count("WHERE expires_at <= ?", (now_ms,)),
            "expiring": count(
                f"WHERE conversation_id IN ({', '.join('?' for _ in ids['expiring'])})",
                tuple(ids["expiring"]),
            ),
            "erase": count("WHERE conversation_id = ?", (ids["erase"],)),
            "export": count("WHERE conversation_id = ?", (ids["export"],)),
            "without_expiry": count("WHERE expires_at IS NULL"),
        }
        expected = {
            "messages": size,
            "expired_at_now": layout.expired,
            "expiring": layout.expired,
            "erase": layout.erase_messages,
            "export": layout.export_messages,
            "without_expiry": 0,
        }
        if counts != expected:
            raise RuntimeError(f"built {counts}, expected {expected}")
        head = connection.execute(
            "SELECT value FROM store_meta WHERE name = ?", (audit.HEAD,)
        ).fetchone()
        base = {
            "audit_seq": connection.execute(
                "SELECT coalesce(max(seq), 0) FROM audit_events"
            ).fetchone()[0],
            "audit_head": None if head is None else bytes(head[0]).hex(),
            "erasures": connection.execute("SELECT coalesce(max(id), 0) FROM erasures").fetchone()[
                0
            ],
        }
        # 4. What the workloads delete, kept aside to put back.
        _attach(connection, partial / "restore.db", "r", key)
        _attach(connection, key_file_path(store_path), "k", key_file_key(key))
        deleted = [*ids["expiring"], ids["erase"]]
        marks = ", ".join("?" for _ in deleted)
        connection.execute(
            "CREATE TABLE r.messages AS SELECT * FROM main.messages "  # noqa: S608
            f"WHERE conversation_id IN ({marks}) ORDER BY id",
            deleted,
        )
        connection.execute(
            "CREATE TABLE r.conversations AS SELECT * FROM main.conversations WHERE id = ?",
            (ids["erase"],),
        )
        connection.execute(
            "CREATE TABLE r.data_keys AS SELECT * FROM k.data_keys WHERE conversation_uid = ?",
            (bytes.fromhex(filled["uids"]["erase"]),),
        )
        connection.execute("DETACH DATABASE k")
        connection.execute("DETACH DATABASE r")
        busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy[0]:
            raise RuntimeError("the store's WAL could not be truncated after the build")
    finally:
        connection.close()
    shutil.copyfile(store_path, partial / "floor.db")

    manifest: dict[str, Any] = {
        "population_version": POPULATION_VERSION,
        "cache_key": cache_key(),
        "size": size,
        "label": size_label(size),
        "layout": dataclasses.asdict(layout),
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "build_seconds": {
            "total": time.perf_counter() - started,
            "store": filled["seconds"],
            "conversations": filled["conversations_seconds"],
        },
        "key": key.hex(),
        "now_ms": now_ms,
        "policy": rules.fingerprint,
        "subjects": {"erase": ERASE_SUBJECT, "export": EXPORT_SUBJECT},
        "conversation_ids": ids,
        "conversation_uids": filled["uids"],
        "base": base,
        "counts": counts,
        "files": {
            p.name: p.stat().st_size
            for p in sorted(partial.iterdir())
            if p.is_file() and p.stat().st_size
        },
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


# --- putting deleted rows back -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Saved:
    """The rows kept in ``restore.db``, read once per worker."""

    message_columns: tuple[str, ...]
    #: The deleted messages by group (``expired``, ``erased``), every column, in id order.
    messages: dict[str, list[tuple[Any, ...]]]
    conversation_columns: tuple[str, ...]
    #: The erasure subject's conversation row.
    conversations: list[tuple[Any, ...]]
    #: Its data key(s): ``(conversation_uid, generation, key)``.
    data_keys: list[tuple[Any, ...]]


def load_saved(directory: Path, manifest: dict[str, Any]) -> Saved:
    """Read ``restore.db``."""
    connection = raw_connect(directory / "restore.db", manifest["key"])
    try:

        def columns(table: str) -> tuple[str, ...]:
            rows = connection.execute(f"PRAGMA table_info({table})").fetchall()
            return tuple(str(row[1]) for row in rows)

        message_columns = columns("messages")
        conversation_id = message_columns.index("conversation_id")
        erased = manifest["conversation_ids"]["erase"]
        groups: dict[str, list[tuple[Any, ...]]] = {EXPIRED: [], ERASED: []}
        for row in connection.execute("SELECT * FROM messages ORDER BY id"):
            groups[ERASED if row[conversation_id] == erased else EXPIRED].append(tuple(row))
        return Saved(
            message_columns=message_columns,
            messages=groups,
            conversation_columns=columns("conversations"),
            conversations=[tuple(r) for r in connection.execute("SELECT * FROM conversations")],
            data_keys=[
                tuple(r)
                for r in connection.execute(
                    "SELECT conversation_uid, generation, key FROM data_keys"
                )
            ],
        )
    finally:
        connection.close()


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return (
        f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "  # noqa: S608 - schema names
        f"VALUES ({', '.join('?' for _ in columns)})"
    )


def restore(
    connection: Any,
    saved: Saved,
    manifest: dict[str, Any],
    groups: tuple[str, ...] = GROUPS,
    *,
    key_connection: Any | None = None,
) -> int:
    """Put back what the workloads delete or add; return the rows put back.

    On ``connection`` (a store's, or a raw one to ``floor.db``, outside any transaction), in
    one transaction: the erased conversation's row (if ``erased`` is asked), the deleted
    messages of ``groups`` at their own row ids (so they sit where the build put them, not
    appended at the end of the table), and the compliance tables cut back to the build (audit
    events past its last, with the trail's recorded head; erasure receipts; pending key
    destructions). Then the WAL is truncated. ``key_connection`` (the store's data-key file):
    its destroyed data key is put back first, as ``add_conversation`` creates the key first.
    """
    if key_connection is not None and ERASED in groups:
        key_connection.executemany(
            _insert("data_keys", ("conversation_uid", "generation", "key")), saved.data_keys
        )
    before = connection.total_changes
    connection.execute("BEGIN IMMEDIATE")
    try:
        if ERASED in groups:
            connection.executemany(
                _insert("conversations", saved.conversation_columns), saved.conversations
            )
        insert = _insert("messages", saved.message_columns)
        for group in groups:
            connection.executemany(insert, saved.messages[group])
        restored = int(connection.total_changes - before)
        base = manifest["base"]
        connection.execute("DELETE FROM audit_events WHERE seq > ?", (base["audit_seq"],))
        if base["audit_head"] is not None:
            connection.execute(
                "UPDATE store_meta SET value = ? WHERE name = ?",
                (bytes.fromhex(base["audit_head"]), audit.HEAD),
            )
        connection.execute("DELETE FROM erasures WHERE id > ?", (base["erasures"],))
        connection.execute("DELETE FROM pending_shreds")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy[0]:
        raise RuntimeError("the WAL could not be truncated after a reset")
    return restored


def reset(directory: Path, manifest: dict[str, Any], saved: Saved | None = None) -> dict[str, int]:
    """Put back everything any workload deleted, in the store and in the floor database.

    Run only while no client has the store open. Returns the rows put back per file.
    """
    saved = saved or load_saved(directory, manifest)
    key = bytes.fromhex(manifest["key"])
    store = SqlCipherStore.open(directory / "c.db", key)
    try:
        put_back = {
            "c.db": restore(
                store._connection, saved, manifest, key_connection=store._keys._connection
            )
        }
    finally:
        store.close()
    connection = raw_connect(directory / "floor.db", manifest["key"])
    try:
        put_back["floor.db"] = restore(connection, saved, manifest)
    finally:
        connection.close()
    return put_back


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compliance.population",
        description="Build (or find in the cache) the compliance population of one size; print "
        "the manifest as JSON.",
    )
    parser.add_argument("--size", type=int, required=True, help="stored messages")
    parser.add_argument("--rebuild", action="store_true", help="build even if cached")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    directory, manifest, built = ensure(args.size, rebuild=args.rebuild)
    out = dict(manifest, directory=str(directory), built_now=built)
    out["ensure_seconds"] = time.perf_counter() - started
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
