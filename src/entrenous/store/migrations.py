"""Numbered schema migrations of the store and of its data-key file.

The schema version lives in ``PRAGMA user_version``. Each migration runs in one transaction
together with the ``user_version`` bump, so a failing migration leaves the store exactly at the
version before it (STO-04), and a rerun applies each migration once. A store whose version is
newer than :data:`LATEST` is refused before anything is written (STO-03).

Append new migrations to :data:`MIGRATIONS`; never edit a released one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The schema of the store (spec/store.md, "Schema").
_V1 = """
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    uid BLOB NOT NULL UNIQUE CHECK (length(uid) = 16),
    session_id BLOB NOT NULL UNIQUE CHECK (length(session_id) = 16),
    peer_identity BLOB NOT NULL CHECK (length(peer_identity) = 129),
    peer TEXT,
    state BLOB NOT NULL,
    verified BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX conversations_by_peer ON conversations (peer) WHERE peer IS NOT NULL;
CREATE INDEX conversations_by_activity ON conversations (updated_at);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    uid BLOB NOT NULL CHECK (length(uid) = 16),
    direction INTEGER NOT NULL CHECK (direction IN (0, 1)),
    sent_at INTEGER NOT NULL,
    received_at INTEGER,
    nonce BLOB NOT NULL CHECK (length(nonce) = 12),
    body BLOB NOT NULL,
    UNIQUE (conversation_id, uid)
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
"""

#: The schema of the data-key file.
_KEYS_V1 = """
CREATE TABLE key_file_meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE data_keys (
    conversation_uid BLOB PRIMARY KEY CHECK (length(conversation_uid) = 16),
    key BLOB NOT NULL CHECK (length(key) = 32)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``apply`` runs inside the migration's transaction."""

    version: int
    name: str
    apply: Callable[[Any], None]


def _script(sql: str) -> Callable[[Any], None]:
    statements = [s.strip() for s in sql.split(";") if s.strip()]

    def apply(connection: Any) -> None:
        for statement in statements:
            connection.execute(statement)

    return apply


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial schema", _script(_V1)),)
KEY_FILE_MIGRATIONS: tuple[Migration, ...] = (Migration(1, "data keys", _script(_KEYS_V1)),)
LATEST = MIGRATIONS[-1].version
KEY_FILE_LATEST = KEY_FILE_MIGRATIONS[-1].version


def migrate(
    connection: Any, migrations: tuple[Migration, ...], *, target: int | None = None
) -> int:
    """Apply every migration above the store's version (up to ``target``); return the version.

    ``connection`` is a sqlcipher3 connection in autocommit mode (``isolation_level=None``).
    """
    current: int = connection.execute("PRAGMA user_version").fetchone()[0]
    for migration in migrations:
        if migration.version <= current or (target is not None and migration.version > target):
            continue
        connection.execute("BEGIN IMMEDIATE")
        try:
            migration.apply(connection)
            connection.execute(f"PRAGMA user_version = {int(migration.version)}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        current = migration.version
    return current
