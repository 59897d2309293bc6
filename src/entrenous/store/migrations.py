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

#: Version 2: the compliance layer (spec/compliance.md). Conversations gain a category, a data
#: subject, a disappearing-message timer and the generation of their data key; messages gain the
#: timer they were stored under and an expiry time, with an index that only holds messages that
#: expire (a sweep reads only what has expired). Holds, the audit trail, the consent ledger,
#: erasure receipts and the data keys waiting to be destroyed get their tables.
_V2 = """
ALTER TABLE conversations ADD COLUMN category TEXT;
ALTER TABLE conversations ADD COLUMN subject TEXT;
ALTER TABLE conversations ADD COLUMN timer_ms INTEGER CHECK (timer_ms IS NULL OR timer_ms > 0);
ALTER TABLE conversations ADD COLUMN key_generation INTEGER NOT NULL DEFAULT 0;
CREATE INDEX conversations_by_subject ON conversations (subject) WHERE subject IS NOT NULL;
ALTER TABLE messages ADD COLUMN timer_ms INTEGER CHECK (timer_ms IS NULL OR timer_ms > 0);
ALTER TABLE messages ADD COLUMN expires_at INTEGER;
CREATE INDEX messages_by_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    uid BLOB NOT NULL UNIQUE CHECK (length(uid) = 16),
    conversation_uid BLOB CHECK (conversation_uid IS NULL OR length(conversation_uid) = 16),
    subject TEXT,
    reason TEXT NOT NULL,
    reference TEXT,
    placed_at INTEGER NOT NULL,
    released_at INTEGER,
    CHECK ((conversation_uid IS NULL) <> (subject IS NULL))
);
CREATE INDEX holds_active ON holds (id) WHERE released_at IS NULL;
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    details BLOB NOT NULL,
    prev BLOB NOT NULL CHECK (length(prev) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);
CREATE TABLE consent_ledger (
    seq INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    record BLOB NOT NULL,
    prev BLOB NOT NULL CHECK (length(prev) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX consent_by_purpose ON consent_ledger (purpose, subject, seq);
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    uid BLOB NOT NULL UNIQUE CHECK (length(uid) = 16),
    at INTEGER NOT NULL,
    receipt BLOB NOT NULL
);
CREATE TABLE pending_shreds (
    conversation_uid BLOB NOT NULL CHECK (length(conversation_uid) = 16),
    below_generation INTEGER NOT NULL,
    PRIMARY KEY (conversation_uid, below_generation)
) WITHOUT ROWID;
"""

#: Version 3: leaner indexes on the hot paths. The activity index goes: every send and receive
#: rewrites the conversation's ``updated_at``, and the index on it cost one more page (one more
#: encrypted WAL frame, about a fifth of a commit's page writes) in each of those transactions,
#: only to serve ``conversations()``, which reads every row anyway and sorts them in memory. The
#: expiry index also carries the conversation, so that a sweep finds what has expired, and where,
#: from the index alone.
_V3 = """
DROP INDEX conversations_by_activity;
DROP INDEX messages_by_expiry;
CREATE INDEX messages_by_expiry ON messages (expires_at, conversation_id)
    WHERE expires_at IS NOT NULL
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

#: Version 2 of the data-key file: a conversation may hold several generations of its key while
#: an erasure re-seals what it keeps under a new one (spec/compliance.md, ERA).
_KEYS_V2 = """
CREATE TABLE data_keys_v2 (
    conversation_uid BLOB NOT NULL CHECK (length(conversation_uid) = 16),
    generation INTEGER NOT NULL CHECK (generation >= 0),
    key BLOB NOT NULL CHECK (length(key) = 32),
    PRIMARY KEY (conversation_uid, generation)
) WITHOUT ROWID;
INSERT INTO data_keys_v2 (conversation_uid, generation, key)
    SELECT conversation_uid, 0, key FROM data_keys;
DROP TABLE data_keys;
ALTER TABLE data_keys_v2 RENAME TO data_keys
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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _script(_V1)),
    Migration(2, "compliance", _script(_V2)),
    Migration(3, "leaner indexes", _script(_V3)),
)
KEY_FILE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "data keys", _script(_KEYS_V1)),
    Migration(2, "data key generations", _script(_KEYS_V2)),
)
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
