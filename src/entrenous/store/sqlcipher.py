"""The embedded default store: SQLCipher 4 through sqlcipher3 (spec/store.md).

Two files, both SQLCipher databases, both created readable by the owner only:

* ``<store>``: identity, prekeys, conversations (with their ratchet state) and messages. Keyed
  with the store key as a raw key: ``PRAGMA key = "x'...'"``. WAL journal, ``synchronous=FULL``,
  ``secure_delete=ON``.
* ``<store>.keys``: one random 32-byte *data key* per conversation, under a key derived from
  the store key. Message bodies in the store are encrypted a second time under these keys, so
  destroying a data key makes every copy of that conversation's bodies unreadable, backups of
  the store included (crypto-shredding). Rollback journal (``DELETE``) and ``secure_delete=ON``:
  a destroyed key leaves no copy in a WAL.

A store file that is empty, plain SQLite, truncated or random, a wrong key, a missing or foreign
key file and a newer schema each raise a typed :class:`~entrenous.errors.StoreError` before
anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlcipher3 import dbapi2 as sqlcipher

from entrenous._primitives import aead
from entrenous._primitives.kdf import constant_time_equal
from entrenous._primitives.rand import random_bytes
from entrenous.errors import (
    AuthenticationError,
    EntrenousError,
    ReplayError,
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    UsageError,
    WrongKey,
)
from entrenous.store import migrations
from entrenous.store.base import ConversationRecord, Direction, MessageRecord
from entrenous.store.keys import KEY_SIZE, key_file_key
from entrenous.store.lock import StoreLock

FORMAT = b"entrenous-store"
KEY_FILE_FORMAT = b"entrenous-data-keys"
LABEL_BODY = b"entrenous/v1 stored body"
_PLAIN_SQLITE = b"SQLite format 3\x00"
_DIRECTIONS: dict[Direction, int] = {"sent": 0, "received": 1}
_DIRECTION_NAMES: dict[int, Direction] = {0: "sent", 1: "received"}
_COLUMNS = "uid, session_id, peer_identity, peer, state, verified, created_at, updated_at"


def key_file_path(store: Path) -> Path:
    """Where the data keys of ``store`` live."""
    return store.with_name(store.name + ".keys")


def creation_marker(store: Path) -> Path:
    """Present while ``store`` is being created: an interrupted creation is started again."""
    return store.with_name(store.name + ".creating")


#: The files of a store that an interrupted creation may have left (not the lock, not .kdf).
_PARTIAL_FILES = ("", "-wal", "-shm", "-journal", ".keys", ".keys-journal")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create {path.name} ({exc.strerror})") from None
    os.close(fd)


def _check_existing_file(path: Path, what: str) -> None:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        raise StoreCorrupt(f"the {what} is missing") from None
    except OSError as exc:
        raise StoreError(f"cannot read the {what} ({exc.strerror})") from None
    if size == 0:
        raise StoreCorrupt(
            f"the {what} is empty (an interrupted creation?); remove it to start over"
        )
    if head == _PLAIN_SQLITE:
        raise StoreCorrupt(f"the {what} is an unencrypted SQLite database, not an entrenous store")
    if size % 512:
        raise StoreCorrupt(f"the {what} is truncated or not an entrenous store")


def _connect(path: Path, key: bytes) -> Any:
    """Open ``path`` with ``key``; :class:`WrongKey` if the key does not decrypt page 1."""
    try:
        connection = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlcipher.Error as exc:
        raise StoreError(f"cannot open the store file ({exc})") from None
    try:
        connection.execute("PRAGMA cipher_log_level = NONE")
        connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher.DatabaseError as exc:
        connection.close()
        # A wrong key always reads as "not a database" (SQLITE_NOTADB); a right key on a
        # damaged or truncated file reads as SQLITE_CORRUPT.
        if getattr(exc, "sqlite_errorcode", None) == getattr(sqlcipher, "SQLITE_CORRUPT", 11):
            raise StoreCorrupt("the store file is damaged or truncated") from None
        raise WrongKey(
            "the key or passphrase does not open this store (or it is not an entrenous store)"
        ) from None
    return connection


@contextmanager
def _guard(*, duplicate: EntrenousError | None = None) -> Iterator[None]:
    """Turn database errors into typed store errors (messages carry no data, only causes).

    ``duplicate`` is raised instead when a UNIQUE constraint refuses the change (a peer reusing
    a message id is the peer's fault, not a damaged store).
    """
    try:
        yield
    except sqlcipher.IntegrityError as exc:
        if duplicate is not None and "UNIQUE" in str(exc):
            raise duplicate from None
        raise StoreCorrupt(f"the store refused an inconsistent change ({exc})") from None
    except sqlcipher.OperationalError as exc:
        text = str(exc)
        if "full" in text:
            raise StoreError("the disk is full; nothing was changed") from None
        if "readonly" in text or "read-only" in text:
            raise StoreError("the store is read-only; nothing was changed") from None
        raise StoreError(f"the store failed ({text})") from None
    except sqlcipher.DatabaseError as exc:
        raise StoreCorrupt(f"the store is damaged ({exc})") from None


class KeyFile:
    """The default data-key provider: a separate SQLCipher file beside the store."""

    __slots__ = ("_cache", "_connection", "path")

    def __init__(self, path: Path, key: bytes, *, store_id: bytes, creating: bool) -> None:
        self.path = path
        if creating:
            _create_private_file(path)
        else:
            _check_existing_file(path, "data-key file")
        try:
            self._connection = _connect(path, key)
        except WrongKey:
            raise StoreCorrupt("the data-key file does not belong to this store") from None
        self._cache: dict[bytes, bytes] = {}
        try:
            with _guard():
                self._connection.execute("PRAGMA journal_mode = DELETE")
                self._connection.execute("PRAGMA synchronous = FULL")
                self._connection.execute("PRAGMA secure_delete = ON")
                version = self._connection.execute("PRAGMA user_version").fetchone()[0]
                if version > migrations.KEY_FILE_LATEST:
                    raise SchemaTooNew(version, migrations.KEY_FILE_LATEST)
                if version == 0 and not creating:
                    raise StoreCorrupt("the data-key file is not initialised")
                migrations.migrate(self._connection, migrations.KEY_FILE_MIGRATIONS)
                if creating:
                    self._connection.executemany(
                        "INSERT INTO key_file_meta (name, value) VALUES (?, ?)",
                        [("format", KEY_FILE_FORMAT), ("store_id", store_id)],
                    )
                row = self._connection.execute(
                    "SELECT value FROM key_file_meta WHERE name = 'store_id'"
                ).fetchone()
            if row is None or not constant_time_equal(bytes(row[0]), store_id):
                raise StoreCorrupt("the data-key file belongs to another store")
        except BaseException:
            self._connection.close()
            raise

    def create(self, conversation_uid: bytes) -> bytes:
        """A fresh data key for a conversation, committed to the key file before it is used."""
        key = random_bytes(KEY_SIZE)
        with _guard():
            self._connection.execute(
                "INSERT INTO data_keys (conversation_uid, key) VALUES (?, ?)",
                (conversation_uid, key),
            )
        self._cache[conversation_uid] = key
        return key

    def get(self, conversation_uid: bytes) -> bytes:
        """The data key of a conversation; :class:`StoreCorrupt` if it is missing."""
        key = self._cache.get(conversation_uid)
        if key is None:
            with _guard():
                row = self._connection.execute(
                    "SELECT key FROM data_keys WHERE conversation_uid = ?", (conversation_uid,)
                ).fetchone()
            if row is None:
                raise StoreCorrupt("a conversation's data key is missing from the data-key file")
            key = self._cache[conversation_uid] = bytes(row[0])
        return key

    def close(self) -> None:
        """Close the key file; idempotent."""
        self._cache.clear()
        self._connection.close()

    def __repr__(self) -> str:
        return f"KeyFile(cached={len(self._cache)})"


class SqlCipherStore:
    """The SQLCipher 4 store. Open with :meth:`open`; one process at a time (STO-09)."""

    __slots__ = ("_connection", "_depth", "_keys", "_lock", "_poisoned", "path")

    def __init__(self, path: Path, connection: Any, keys: KeyFile, lock: StoreLock) -> None:
        self.path = path
        self._connection = connection
        self._keys = keys
        self._lock: StoreLock | None = lock
        self._depth = 0
        self._poisoned = False

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], store_key: bytes, *, lock: StoreLock | None = None
    ) -> SqlCipherStore:
        """Open (or create) the store at ``path`` with its raw 32-byte key.

        ``lock``: the store's lock, if the caller took it already (it is released on failure).
        """
        store = Path(path)
        if lock is None:
            lock = StoreLock(store)
        try:
            return cls._open_locked(store, store_key, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(cls, store: Path, store_key: bytes, lock: StoreLock) -> SqlCipherStore:
        marker = creation_marker(store)
        interrupted = marker.exists()
        if interrupted:
            # A creation was killed before it finished. The marker goes only once both files are
            # complete, so nothing in them was ever used: start again.
            for suffix in _PARTIAL_FILES:
                store.with_name(store.name + suffix).unlink(missing_ok=True)
        creating = not store.exists()
        if creating:
            if key_file_path(store).exists():
                raise StoreCorrupt("a data-key file exists but its store is missing")
            if not interrupted:
                _create_private_file(marker)
                _fsync_directory(store.parent)
            _create_private_file(store)
        else:
            _check_existing_file(store, "store file")
        try:
            connection = _connect(store, store_key)
        except BaseException:
            if creating:
                store.unlink(missing_ok=True)
            raise
        try:
            with _guard():
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version > migrations.LATEST:
                    raise SchemaTooNew(version, migrations.LATEST)
                if version == 0 and not creating:
                    raise StoreCorrupt("the file is an SQLCipher database without a store schema")
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = FULL")
                connection.execute("PRAGMA secure_delete = ON")
                connection.execute("PRAGMA foreign_keys = ON")
                migrations.migrate(connection, migrations.MIGRATIONS)
                if creating:
                    connection.executemany(
                        "INSERT INTO store_meta (name, value) VALUES (?, ?)",
                        [("format", FORMAT), ("store_id", random_bytes(16))],
                    )
                meta = dict(connection.execute("SELECT name, value FROM store_meta").fetchall())
            if bytes(meta.get("format", b"")) != FORMAT or "store_id" not in meta:
                raise StoreCorrupt("the file is an SQLCipher database of another kind")
            keys = KeyFile(
                key_file_path(store),
                key_file_key(store_key),
                store_id=bytes(meta["store_id"]),
                creating=creating,
            )
            if creating:
                marker.unlink()
                _fsync_directory(store.parent)
        except BaseException:
            connection.close()
            raise
        return cls(store, connection, keys, lock)

    # --- transactions --------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; a nested call joins the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with _guard():
            self._connection.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._poisoned = False
            with _guard():
                self._connection.execute("ROLLBACK")
            raise
        self._depth = 0
        if self._poisoned:
            self._poisoned = False
            with _guard():
                self._connection.execute("ROLLBACK")
            raise StoreError("a step of this transaction could not be undone; nothing was stored")
        try:
            with _guard():
                self._connection.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) can leave the transaction open: roll it
            # back so that nothing of it stays visible and the store stays usable.
            if self._connection.in_transaction:
                with _guard():
                    self._connection.execute("ROLLBACK")
            raise

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested all-or-nothing step inside a transaction (for batches).

        If undoing a failed step fails too, the whole transaction is poisoned: its commit is
        refused and everything in it rolled back, so no half-applied step is ever committed.
        """
        with _guard():
            self._connection.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            try:
                with _guard():
                    self._connection.execute("ROLLBACK TO step")
                    self._connection.execute("RELEASE step")
            except StoreError:
                self._poisoned = True
                raise
            raise
        with _guard():
            self._connection.execute("RELEASE step")

    def _write(self) -> None:
        if not self._depth:
            raise RuntimeError("store changes must run inside store.transaction()")

    # --- secrets -------------------------------------------------------------------------------

    def load_secret(self, name: str) -> bytes | None:
        """A named secret blob, or ``None``."""
        with _guard():
            row = self._connection.execute(
                "SELECT value FROM secrets WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def save_secret(self, name: str, value: bytes) -> None:
        """Create or replace a named secret blob."""
        self._write()
        with _guard():
            self._connection.execute(
                "INSERT INTO secrets (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    # --- conversations -------------------------------------------------------------------------

    @staticmethod
    def _conversation(row: Any) -> ConversationRecord:
        return ConversationRecord(
            uid=bytes(row[0]),
            session_id=bytes(row[1]),
            peer_identity=bytes(row[2]),
            peer=row[3],
            state=bytes(row[4]),
            verified=None if row[5] is None else bytes(row[5]),
            created_at=row[6],
            updated_at=row[7],
        )

    def add_conversation(self, record: ConversationRecord) -> None:
        """Store a new conversation; its data key is created (and committed) first."""
        self._write()
        self._keys.create(record.uid)
        with _guard():
            self._connection.execute(
                f"INSERT INTO conversations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    record.uid,
                    record.session_id,
                    record.peer_identity,
                    record.peer,
                    record.state,
                    record.verified,
                    record.created_at,
                    record.updated_at,
                ),
            )

    def _one_conversation(self, where: str, value: object) -> ConversationRecord | None:
        with _guard():
            row = self._connection.execute(
                f"SELECT {_COLUMNS} FROM conversations WHERE {where} = ?",  # noqa: S608 - fixed names
                (value,),
            ).fetchone()
        return None if row is None else self._conversation(row)

    def conversation(self, uid: bytes) -> ConversationRecord | None:
        """The conversation with this uid."""
        return self._one_conversation("uid", uid)

    def conversation_by_session(self, session_id: bytes) -> ConversationRecord | None:
        """The conversation whose protocol session has this id."""
        return self._one_conversation("session_id", session_id)

    def conversations(self) -> list[ConversationRecord]:
        """Every conversation, most recently active first."""
        with _guard():
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM conversations "  # noqa: S608 - fixed names
                "ORDER BY updated_at DESC, id DESC"
            ).fetchall()
        return [self._conversation(row) for row in rows]

    def conversations_with_peer(self, peer: str) -> list[ConversationRecord]:
        """The conversations labelled with this peer, most recent first."""
        with _guard():
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM conversations WHERE peer = ? "  # noqa: S608 - fixed names
                "ORDER BY id DESC",
                (peer,),
            ).fetchall()
        return [self._conversation(row) for row in rows]

    def update_conversation(
        self,
        uid: bytes,
        *,
        state: bytes | None = None,
        updated_at: int | None = None,
        peer: str | None = None,
        verified: bytes | Literal[False] | None = False,
    ) -> None:
        """Change some fields of a conversation (``verified=False`` leaves it unchanged)."""
        self._write()
        changes: dict[str, object] = {}
        if state is not None:
            changes["state"] = state
        if updated_at is not None:
            changes["updated_at"] = updated_at
        if peer is not None:
            changes["peer"] = peer
        if verified is not False:
            changes["verified"] = verified
        if not changes:
            return
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with _guard():
            self._connection.execute(
                f"UPDATE conversations SET {assignments} WHERE uid = ?",  # noqa: S608 - fixed names
                (*changes.values(), uid),
            )

    # --- messages ------------------------------------------------------------------------------

    def add_message(self, record: MessageRecord) -> None:
        """Store a message, its body encrypted under the conversation's data key (STO-07)."""
        self.add_messages([record])

    def add_messages(self, records: list[MessageRecord]) -> None:
        """Store messages in one statement (batches); a duplicate id raises ReplayError."""
        self._write()
        rows = []
        row_ids: dict[bytes, int] = {}
        for record in records:
            row_id = row_ids.get(record.conversation_uid)
            if row_id is None:
                with _guard():
                    found = self._connection.execute(
                        "SELECT id FROM conversations WHERE uid = ?", (record.conversation_uid,)
                    ).fetchone()
                if found is None:
                    raise StoreCorrupt("a message names a conversation that is not stored")
                row_id = row_ids[record.conversation_uid] = found[0]
            nonce = random_bytes(aead.NONCE_SIZE)
            body = aead.seal(
                self._keys.get(record.conversation_uid),
                nonce,
                record.body,
                LABEL_BODY + record.conversation_uid + record.uid,
            )
            rows.append(
                (
                    row_id,
                    record.uid,
                    _DIRECTIONS[record.direction],
                    record.sent_at,
                    record.received_at,
                    nonce,
                    body,
                )
            )
        with _guard(duplicate=ReplayError("a message with this id is already stored")):
            self._connection.executemany(
                "INSERT INTO messages "
                "(conversation_id, uid, direction, sent_at, received_at, nonce, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def history(
        self, conversation_uid: bytes, *, limit: int, before: bytes | None
    ) -> list[MessageRecord]:
        """Up to ``limit`` messages, newest first, older than message ``before`` if given."""
        query = (
            "SELECT m.uid, m.direction, m.sent_at, m.received_at, m.nonce, m.body "
            "FROM messages AS m JOIN conversations AS c ON m.conversation_id = c.id "
            "WHERE c.uid = ? "
        )
        params: list[object] = [conversation_uid]
        if before is not None:
            query += (
                "AND m.id < (SELECT b.id FROM messages AS b "
                "WHERE b.conversation_id = c.id AND b.uid = ?) "
            )
            params.append(before)
        query += "ORDER BY m.id DESC LIMIT ?"
        params.append(limit)
        if before is not None:
            with _guard():
                found = self._connection.execute(
                    "SELECT 1 FROM messages AS b JOIN conversations AS c "
                    "ON b.conversation_id = c.id WHERE c.uid = ? AND b.uid = ?",
                    (conversation_uid, before),
                ).fetchone()
            if found is None:
                raise UsageError("no such message in this conversation (a stale page cursor?)")
        with _guard():
            rows = self._connection.execute(query, params).fetchall()
        if not rows:
            return []
        open_body = aead.opener(self._keys.get(conversation_uid))
        out = []
        for raw_uid, direction, sent_at, received_at, nonce, body in rows:
            uid = bytes(raw_uid)
            ad = LABEL_BODY + conversation_uid + uid
            try:
                plain = open_body(bytes(nonce), bytes(body), ad)
            except AuthenticationError:
                raise StoreCorrupt("a stored message body does not authenticate") from None
            out.append(
                MessageRecord(
                    uid=uid,
                    conversation_uid=conversation_uid,
                    direction=_DIRECTION_NAMES[direction],
                    sent_at=sent_at,
                    received_at=received_at,
                    body=plain,
                )
            )
        return out

    # --- lifecycle -----------------------------------------------------------------------------

    def integrity_check(self) -> bool:
        """``PRAGMA integrity_check`` of the store file (costs a full scan: not run at open)."""
        with _guard():
            rows = self._connection.execute("PRAGMA integrity_check").fetchall()
        return bool(rows == [("ok",)])

    def close(self) -> None:
        """Close both files and release the lock; idempotent."""
        if self._lock is None:
            return
        try:
            self._keys.close()
            self._connection.close()
        finally:
            self._lock.release()
            self._lock = None

    def __repr__(self) -> str:
        return f"SqlCipherStore({self.path.name!r}, open={self._lock is not None})"
