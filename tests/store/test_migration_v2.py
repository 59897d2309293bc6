"""Migration 2 (compliance) on a store that already holds data (STO-04): nothing is lost, the
data keys become generation 0, and messages stored before it never expire until a policy is
applied.

A version-1 store is rebuilt from a store the library wrote: fresh files get exactly migration 1,
then the rows are copied over with their version-1 columns, in both the store and its key file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from store_support import raw_connect, spec_key_file_key

from entrenous import Client
from entrenous.store import migrations
from entrenous.store.migrations import KEY_FILE_MIGRATIONS, MIGRATIONS, migrate

_V1_COLUMNS = {
    "store_meta": "name, value",
    "secrets": "name, value",
    "conversations": "id, uid, session_id, peer_identity, peer, state, verified, created_at, "
    "updated_at",
    "messages": "id, conversation_id, uid, direction, sent_at, received_at, nonce, body",
}


def _downgrade(path: Path, key: bytes, steps: object, tables: dict[str, str]) -> None:
    """Replace the database at ``path`` by a version-1 copy of its rows."""
    old = path.with_name(path.name + ".v2")
    shutil.move(path, old)
    connection = raw_connect(path, key)
    try:
        migrate(connection, steps, target=1)  # type: ignore[arg-type]
        connection.execute(f"ATTACH DATABASE '{old}' AS old KEY \"x'{key.hex()}'\"")
        connection.execute("BEGIN")
        for table, columns in tables.items():
            connection.execute(
                f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM old.{table}"  # noqa: S608
            )
        connection.execute("COMMIT")
        connection.execute("DETACH DATABASE old")
    finally:
        connection.close()
    old.unlink()


@pytest.mark.req("STO-04")
def test_a_version_1_store_migrates_with_its_history(tmp_path: Path) -> None:
    key_a, key_b = os.urandom(32), os.urandom(32)
    path = tmp_path / "a.db"
    with Client.open(path, key=key_a) as a, Client.open(tmp_path / "b.db", key=key_b) as b:
        conv = a.start_conversation(b.prekey_bundle(), peer="b")
        envelopes = [conv.send(f"before migration {i}") for i in range(3)]
    _downgrade(path, key_a, MIGRATIONS, _V1_COLUMNS)
    _downgrade(
        path.with_name("a.db.keys"),
        spec_key_file_key(key_a),
        KEY_FILE_MIGRATIONS,
        {"key_file_meta": "name, value", "data_keys": "conversation_uid, key"},
    )
    check = raw_connect(path, key_a)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 1
    check.close()
    with Client.open(path, key=key_a) as migrated:
        store = migrated._store
        assert store._connection.execute("PRAGMA user_version").fetchone()[0] == migrations.LATEST
        keys = store._keys._connection
        assert keys.execute("PRAGMA user_version").fetchone()[0] == migrations.KEY_FILE_LATEST
        assert keys.execute("SELECT generation FROM data_keys").fetchall() == [(0,)]
        [again] = migrated.conversations()
        assert again.peer == "b" and again.category is None and again.subject is None
        history = again.history()
        assert [m.text for m in history] == [f"before migration {i}" for i in (2, 1, 0)]
        assert all(m.expires_at is None for m in history)
        envelopes.append(again.send("after migration"))
    with Client.open(tmp_path / "b.db", key=key_b) as b:
        texts = [b.receive(e).message.text for e in envelopes]
    assert texts[-1] == "after migration"
