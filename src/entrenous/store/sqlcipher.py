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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from itertools import groupby, product
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from sqlcipher3 import dbapi2 as sqlcipher

from entrenous._primitives import aead
from entrenous._primitives.kdf import constant_time_equal
from entrenous._primitives.rand import random_bytes
from entrenous.errors import (
    AuthenticationError,
    EntrenousError,
    JournalLost,
    ReplayError,
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    UsageError,
    WrongKey,
)
from entrenous.store import migrations
from entrenous.store.base import (
    ChainLog,
    ChainRow,
    ConversationRecord,
    Direction,
    ExpiredMessage,
    HoldRecord,
    MessageRecord,
    conversation_setting,
)
from entrenous.store.keys import KEY_SIZE, key_file_key
from entrenous.store.lock import StoreLock

FORMAT = b"entrenous-store"
KEY_FILE_FORMAT = b"entrenous-data-keys"
LABEL_BODY = b"entrenous/v1 stored body"
_PLAIN_SQLITE = b"SQLite format 3\x00"
_DIRECTIONS: dict[Direction, int] = {"sent": 0, "received": 1}
_DIRECTION_NAMES: dict[int, Direction] = {0: "sent", 1: "received"}
_COLUMNS = (
    "uid, session_id, peer_identity, peer, state, verified, created_at, updated_at, "
    "category, subject, timer_ms, key_generation"
)
_CHAIN_TABLES: dict[ChainLog, str] = {"audit": "audit_events", "consent": "consent_ledger"}
#: The nullable columns of a message row, in the INSERT's order after the five fixed ones.
_NULLABLE = ("received_at", "timer_ms", "expires_at")


def _insert_message(nulls: tuple[bool, ...]) -> str:
    """The message INSERT with a literal NULL for each nullable column marked True in ``nulls``.

    sqlcipher3 sends a bound ``None`` through its adapter registry, as it does a ``bytes``
    (about 1.5 µs a parameter, a tenth of the whole insert): a NULL is never bound.
    """
    values = ", ".join("NULL" if null else "?" for null in nulls)
    columns = ", ".join(_NULLABLE)
    return (
        f"INSERT INTO messages (conversation_id, uid, direction, sent_at, nonce, body, {columns}) "  # noqa: S608 - fixed names
        f"VALUES (?, ?, ?, ?, ?, ?, {values})"
    )


def _message_params(
    row_id: int, record: MessageRecord, nonce: bytes, body: bytes
) -> tuple[tuple[bool, bool, bool], tuple[object, ...]]:
    """The NULL pattern of a message row and the parameters its INSERT binds."""
    received_at, timer_ms, expires_at = record.received_at, record.timer_ms, record.expires_at
    params: tuple[object, ...] = (
        row_id,
        _param(record.uid),
        _DIRECTIONS[record.direction],
        record.sent_at,
        _param(nonce),
        _param(body),
    )
    for value in (received_at, timer_ms, expires_at):
        if value is not None:
            params += (value,)
    return (received_at is None, timer_ms is None, expires_at is None), params


#: The message INSERT for each pattern of NULLs in the nullable columns.
_INSERT_MESSAGE: dict[tuple[bool, ...], str] = {
    nulls: _insert_message(nulls) for nulls in product((False, True), repeat=len(_NULLABLE))
}
#: How the hot statements pass blobs to sqlcipher3. It binds a ``bytearray`` directly, but first
#: looks every ``bytes`` parameter up in its adapter registry (two failed attribute lookups,
#: about 3 µs per parameter, more than SQLite's own work for a small column). Same blob stored.
_param = bytearray
#: Conversations the store remembers (row id and record), so that a send or a receive does not
#: read its conversation back; a busy bot's store may hold millions, so the oldest go first.
_REMEMBERED = 4096
#: Messages deleted (or re-sealed) per statement by sweeps and erasures.
_BATCH = 500
#: A generation above every data key a conversation can have: shredding below it destroys all.
_ALL_GENERATIONS = 2**62
#: ``store_meta`` row saying whether a client has the store open: ``_OPEN`` from the open (the
#: store file itself carries it, checkpointed before the first change of the session) to the
#: clean close, which writes ``_CLOSED``. Found open with no write-ahead log beside the store,
#: the changes of the last session are lost: the open refuses (:class:`JournalLost`).
_OPEN_FLAG = "open"
_OPEN, _CLOSED = b"\x01", b"\x00"


def key_file_path(store: Path) -> Path:
    """Where the data keys of ``store`` live."""
    return store.with_name(store.name + ".keys")


def closed_note(store: Path) -> Path:
    """Present after a clean close that could not write its flag into the store (disk full)."""
    return store.with_name(store.name + ".closed")


def _note_clean_close(store: Path) -> None:
    """Leave the ``.closed`` note; best effort (without it, the next open may refuse).

    The note carries the store file's modification time as its own (setting it needs no space):
    it vouches for that file only, never for another copy put in its place before the next open.
    """
    try:
        note = closed_note(store)
        _create_private_file(note)
        modified = store.stat().st_mtime_ns
        os.utime(note, ns=(modified, modified))
        _fsync_directory(store.parent)
    except (StoreError, OSError):
        pass


def _noted_clean_close(store: Path) -> bool:
    """Whether a ``.closed`` note vouches for the store file as it is now (see above)."""
    try:
        return closed_note(store).stat().st_mtime_ns == store.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def journal_path(store: Path) -> Path:
    """The write-ahead log of ``store`` (SQLite's name for it)."""
    return store.with_name(store.name + "-wal")


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


#: SQLite's primary result codes of a failing file system: SQLITE_PERM, SQLITE_READONLY,
#: SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN (with their extended codes, low byte).
_FILE_SYSTEM_ERRORS = frozenset({3, 8, 10, 13, 14})


def _connect(path: Path, key: bytes, *, immutable: bool = False) -> Any:
    """Open ``path`` with ``key``; :class:`WrongKey` if the key does not decrypt page 1.

    ``immutable``: read the store file alone, creating nothing beside it (no ``-wal``, ``-shm``).
    """
    try:
        if immutable:
            connection = sqlcipher.connect(
                path.absolute().as_uri() + "?immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        else:
            connection = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlcipher.Error as exc:
        raise StoreError(f"cannot open the store file ({exc})") from None
    try:
        connection.execute("PRAGMA cipher_log_level = NONE")
        connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except UnicodeDecodeError:
        connection.close()
        raise StoreCorrupt("the store file is damaged (a message that is not UTF-8)") from None
    except sqlcipher.DatabaseError as exc:
        connection.close()
        # A wrong key always reads as "not a database" (SQLITE_NOTADB); a right key on a
        # damaged or truncated file reads as SQLITE_CORRUPT. Anything else is the file system
        # failing (a full disk, a read-only directory, an I/O error): never a wrong key.
        code = getattr(exc, "sqlite_errorcode", None)
        if code == getattr(sqlcipher, "SQLITE_CORRUPT", 11):
            raise StoreCorrupt("the store file is damaged or truncated") from None
        if code is not None and code & 0xFF in _FILE_SYSTEM_ERRORS:
            raise StoreError(f"cannot read the store file ({exc})") from None
        raise WrongKey(
            "the key or passphrase does not open this store (or it is not an entrenous store)"
        ) from None
    return connection


# --- reading values back --------------------------------------------------------------------
# SQLite does not enforce a column's declared type, so a value read back may be of any type. A
# store written by this library never holds a wrong one; a damaged or hand-edited store (one
# written by someone holding the key) may, and must give StoreCorrupt, never a builtin error or a
# huge allocation (``bytes(3_000_000_000)`` of an integer where a BLOB belongs).


def _wrong_type() -> StoreCorrupt:
    return StoreCorrupt("the store holds a value of the wrong type (damaged or edited)")


def _not_utf8() -> StoreCorrupt:
    return StoreCorrupt("the store holds text that is not UTF-8 (damaged or edited)")


def _blob(value: object) -> bytes:
    """A BLOB column's value; :class:`StoreCorrupt` if the row holds another type."""
    if type(value) is not bytes:
        raise _wrong_type()
    return value


def _optional_blob(value: object) -> bytes | None:
    return None if value is None else _blob(value)


def _integer(value: object) -> int:
    """An INTEGER column's value; :class:`StoreCorrupt` if the row holds another type."""
    if type(value) is not int:
        raise _wrong_type()
    return value


def _optional_integer(value: object) -> int | None:
    return None if value is None else _integer(value)


def _optional_text(value: object) -> str | None:
    """A TEXT column's value (or NULL); :class:`StoreCorrupt` if the row holds another type."""
    if value is not None and type(value) is not str:
        raise _wrong_type()
    return value


def _text(value: object) -> str:
    if type(value) is not str:
        raise _wrong_type()
    return value


def _check_clean_shutdown(store: Path, key: bytes) -> None:
    """:class:`JournalLost` if the store was left open and its write-ahead log is gone.

    Called only when no ``-wal`` file is beside the store. It reads the store file alone, on a
    connection that creates nothing: a refused open must leave no empty ``-wal`` behind (one that
    a process that can only read the store cannot remove, or a kill leaves), since the next open
    would take it for the log and skip this check.
    """
    connection = _connect(store, key, immutable=True)
    try:
        with _guard():
            version = _integer(connection.execute("PRAGMA user_version").fetchone()[0])
            row = (
                connection.execute(
                    "SELECT value FROM store_meta WHERE name = ?", (_OPEN_FLAG,)
                ).fetchone()
                if version
                else None
            )
    finally:
        connection.close()
    if row is not None and row[0] == _OPEN:
        raise JournalLost(
            "the store was not closed cleanly and its write-ahead log (the -wal file beside it) "
            "is missing: opening it would roll the conversations back and reuse message keys; "
            "restore the -wal file beside the store and open again"
        )


def _clear_open_flag(connection: Any) -> None:
    """Best effort, before a refused open closes a store whose log the close copies back.

    As at a clean close, the whole log goes into the store file first: if that checkpoint
    fails (a full disk), the flag stays "open", since the close's own copy of the log is then
    cut short too and a half-written store file must never say "closed".
    """
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy is not None and busy[0]:
            return
        connection.execute("UPDATE store_meta SET value = ? WHERE name = ?", (_CLOSED, _OPEN_FLAG))
    except sqlcipher.Error:
        pass


def _mark_open(connection: Any, flag: object) -> None:
    """Make the store file itself say that a client has it open, before any change of the session.

    The flag is committed, then the log is checkpointed into the store file and truncated: from
    then on, a log lost after a crash is noticed by the next open (:func:`_check_clean_shutdown`).
    """
    with _guard():
        if flag != _OPEN:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "INSERT INTO store_meta (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (_OPEN_FLAG, _OPEN),
                )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy is not None and busy[0]:
        raise StoreError("the write-ahead log could not be checkpointed (the store is busy)")


class _Guard:
    """Turn database errors into typed store errors (messages carry no data, only causes).

    ``duplicate`` is raised instead when a UNIQUE constraint refuses the change (a peer reusing
    a message id is the peer's fault, not a damaged store). A class rather than a generator:
    it wraps every statement, and costs a fraction of a ``contextmanager`` on the hot paths.
    """

    __slots__ = ("_duplicate",)

    def __init__(self, duplicate: EntrenousError | None = None) -> None:
        self._duplicate = duplicate

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, sqlcipher.IntegrityError):
            if self._duplicate is not None and "UNIQUE" in str(exc):
                raise self._duplicate from None
            raise StoreCorrupt(f"the store refused an inconsistent change ({exc})") from None
        if isinstance(exc, sqlcipher.OperationalError):
            text = str(exc)
            if "full" in text:
                raise StoreError("the disk is full; nothing was changed") from None
            if "readonly" in text or "read-only" in text:
                raise StoreError("the store is read-only; nothing was changed") from None
            if text.startswith("Could not decode to UTF-8"):
                # The sqlite module's message quotes the value: never repeat it.
                raise _not_utf8() from None
            raise StoreError(f"the store failed ({text})") from None
        if isinstance(exc, sqlcipher.DatabaseError):
            raise StoreCorrupt(f"the store is damaged ({exc})") from None
        if isinstance(exc, UnicodeDecodeError):
            # A declared column type (or a message of SQLite's) that is not UTF-8: the sqlite
            # module cannot decode it. Only a damaged or edited store holds one.
            raise _not_utf8() from None


_GUARD = _Guard()


def _guard(*, duplicate: EntrenousError | None = None) -> _Guard:
    """The guard around one or more statements (see :class:`_Guard`)."""
    return _GUARD if duplicate is None else _Guard(duplicate)


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
        self._cache: dict[tuple[bytes, int], bytes] = {}
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
            if row is None or not constant_time_equal(_blob(row[0]), store_id):
                raise StoreCorrupt("the data-key file belongs to another store")
        except BaseException:
            self._connection.close()
            raise

    def check(self, conversations: Iterable[tuple[bytes, int]]) -> None:
        """:class:`StoreCorrupt` unless the file is sound (``PRAGMA quick_check``) and holds the
        current data key of every one of ``conversations`` (uid, generation).

        Run after an unclean shutdown only: it reads every conversation.
        """
        with _guard():
            sound = self._connection.execute("PRAGMA quick_check").fetchall() == [("ok",)]
            for uid, generation in conversations if sound else ():
                if (
                    self._connection.execute(
                        "SELECT 1 FROM data_keys WHERE conversation_uid = ? AND generation = ?",
                        (uid, generation),
                    ).fetchone()
                    is None
                ):
                    sound = False
                    break
        if not sound:
            raise StoreCorrupt(
                "the data-key file is damaged: a write of it was interrupted and its rollback "
                "journal (the .keys-journal file beside it) is missing; restore that file"
            )

    def create(self, conversation_uid: bytes, generation: int = 0) -> bytes:
        """A fresh data key for a conversation, committed to the key file before it is used.

        A key of that generation left by an interrupted erasure (never used) is replaced.
        """
        key = random_bytes(KEY_SIZE)
        with _guard():
            self._connection.execute(
                "INSERT INTO data_keys (conversation_uid, generation, key) VALUES (?, ?, ?) "
                "ON CONFLICT (conversation_uid, generation) DO UPDATE SET key = excluded.key",
                (conversation_uid, generation, key),
            )
        self._cache[conversation_uid, generation] = key
        return key

    def get(self, conversation_uid: bytes, generation: int = 0) -> bytes:
        """The data key of a conversation; :class:`StoreCorrupt` if it is missing."""
        key = self._cache.get((conversation_uid, generation))
        if key is None:
            with _guard():
                row = self._connection.execute(
                    "SELECT key FROM data_keys WHERE conversation_uid = ? AND generation = ?",
                    (conversation_uid, generation),
                ).fetchone()
            if row is None:
                raise StoreCorrupt(
                    "a conversation's data key is missing from the data-key file "
                    "(erased, or the key file is from another time)"
                )
            key = self._cache[conversation_uid, generation] = _blob(row[0])
        return key

    def destroy(self, conversation_uid: bytes, below_generation: int) -> None:
        """Destroy every key of a conversation below a generation (crypto-shredding).

        The rollback journal and ``secure_delete`` leave no copy of a destroyed key in the file.
        """
        with _guard():
            self._connection.execute(
                "DELETE FROM data_keys WHERE conversation_uid = ? AND generation < ?",
                (conversation_uid, below_generation),
            )
        for cached in [k for k in self._cache if k[0] == conversation_uid]:
            if cached[1] < below_generation:
                del self._cache[cached]

    def close(self) -> None:
        """Close the key file; idempotent."""
        self._cache.clear()
        self._connection.close()

    def __repr__(self) -> str:
        return f"KeyFile(cached={len(self._cache)})"


class _Transaction:
    """What :meth:`SqlCipherStore.transaction` returns: a class rather than a generator, as it
    runs twice for every message sent and received."""

    __slots__ = ("_joined", "_store")

    def __init__(self, store: SqlCipherStore) -> None:
        self._store = store
        self._joined = False

    def __enter__(self) -> None:
        store = self._store
        if store._depth:
            store._depth += 1
            self._joined = True
        else:
            store._begin()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if self._joined:
            self._store._depth -= 1
        else:
            # A failure is rolled back and re-raised (returning None), or replaced by the
            # StoreError of a rollback that failed too.
            self._store._end(failed=exc is not None)


class SqlCipherStore:
    """The SQLCipher 4 store. Open with :meth:`open`; one process at a time (STO-09)."""

    __slots__ = (
        "_connection",
        "_depth",
        "_keys",
        "_lock",
        "_marked",
        "_pid",
        "_poisoned",
        "_remembered",
        "_session_uids",
        "path",
    )

    def __init__(
        self, path: Path, connection: Any, keys: KeyFile, lock: StoreLock, *, marked: bool = False
    ) -> None:
        self.path = path
        #: Whether the store file says "open" for this session (see :func:`_mark_open`).
        self._marked = marked
        #: The process that opened it: a child made by ``fork()`` may neither change nor close it.
        self._pid = os.getpid()
        self._connection = connection
        self._keys = keys
        self._lock: StoreLock | None = lock
        self._depth = 0
        self._poisoned = False
        # The conversations read or written lately, as stored: uid -> (row id, record), and
        # session id -> uid. Every statement that changes a conversation row is in this class
        # and keeps its entry exact (insert, update, re-key, erase); a rollback, of a
        # transaction or a savepoint, forgets them all; only one process writes (the lock).
        self._remembered: dict[bytes, tuple[int, ConversationRecord]] = {}
        self._session_uids: dict[bytes, bytes] = {}

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
            opened = cls._open_locked(store, store_key, lock)
        except BaseException:
            lock.release()
            raise
        try:
            # An erasure that committed but died before destroying its data keys ends here.
            if opened.shred_pending():
                opened.truncate_journal()
        except BaseException:
            opened.close()
            raise
        return opened

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
        # Looked at before connecting: reading a WAL-mode store creates an empty log.
        try:
            journal_size: int | None = journal_path(store).stat().st_size
        except FileNotFoundError:
            journal_size = None
        journal_present = journal_size is not None
        noted = _noted_clean_close(store)
        stale_note = not noted and closed_note(store).exists()
        fold = False
        try:
            if not creating and not journal_present and not noted:
                _check_clean_shutdown(store, store_key)
            connection = _connect(store, store_key)
        except JournalLost:
            raise
        except StoreCorrupt:
            if creating:
                store.unlink(missing_ok=True)
                raise
            if journal_present:
                raise
            # A checkpoint cut short (a full disk) leaves the store file half written until the
            # log completes it: without the log, it reads as damaged.
            raise StoreCorrupt(
                "the store file is damaged or truncated; if its write-ahead log (the -wal file "
                "beside it) was removed, restore it"
            ) from None
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
            if meta.get("format") != FORMAT or "store_id" not in meta:
                raise StoreCorrupt("the file is an SQLCipher database of another kind")
            # Refused from here on, the connection's close still copies the log into the store
            # file and removes it (SQLite does so): the flag must not survive that copy.
            fold = journal_present and not creating and meta.get(_OPEN_FLAG) == _OPEN
            keys = KeyFile(
                key_file_path(store),
                key_file_key(store_key),
                store_id=_blob(meta["store_id"]),
                creating=creating,
            )
            try:
                if not creating and meta.get(_OPEN_FLAG) == _OPEN:
                    # The last session did not close cleanly: it may have died in the middle of
                    # a write of the data-key file, whose rollback journal then repairs it. If
                    # that journal was removed, the file is torn: refuse rather than use it.
                    # Read whole first: a refusal must leave no statement running on the
                    # connection (it would hold back the checkpoint of _clear_open_flag).
                    keys.check(
                        (_blob(uid), _integer(generation))
                        for uid, generation in connection.execute(
                            "SELECT uid, key_generation FROM conversations"
                        ).fetchall()
                    )
                # A store file saying "open" already needs no new flag this session. After a
                # crash (a log with frames is there), the store file is made to say "open" now:
                # the log may hold a flag that never reached it. Otherwise the first change of
                # the session does it (a session that only reads costs nothing). An empty log
                # holds nothing (a store that this process can only read keeps one).
                marked = meta.get(_OPEN_FLAG) == _OPEN
                if journal_size and not creating:
                    _mark_open(connection, meta.get(_OPEN_FLAG))
                    marked = True
                if noted or stale_note:
                    # The note goes before any change of this session.
                    try:
                        closed_note(store).unlink(missing_ok=True)
                        _fsync_directory(store.parent)
                    except OSError as exc:
                        raise StoreError(
                            f"cannot remove the .closed note ({exc.strerror})"
                        ) from None
                if creating:
                    marker.unlink()
                    _fsync_directory(store.parent)
            except BaseException:
                keys.close()
                raise
        except BaseException:
            if fold:
                _clear_open_flag(connection)
            connection.close()
            raise
        return cls(store, connection, keys, lock, marked=marked)

    # --- transactions --------------------------------------------------------------------------

    def transaction(self) -> _Transaction:
        """One transaction; a nested call joins the outer one."""
        return _Transaction(self)

    def _owner(self) -> None:
        """:class:`UsageError` in a child forked from the process that opened the store."""
        if self._pid != os.getpid():
            raise UsageError(
                "this store was opened by the parent of this forked process; open it in the "
                "process that uses it"
            )

    def _mark(self) -> None:
        """Before the session's first change: the store file says it is open (JournalLost)."""
        self._owner()
        if not self._marked:
            _mark_open(self._connection, None)
            self._marked = True

    def _begin(self) -> None:
        self._mark()
        with _guard():
            self._connection.execute("BEGIN IMMEDIATE")
        self._depth = 1

    def _end(self, *, failed: bool) -> None:
        """Commit the outermost transaction, or roll it back if its body raised."""
        self._depth = 0
        if failed:
            self._poisoned = False
            self._forget_all()
            with _guard():
                self._connection.execute("ROLLBACK")
            return
        if self._poisoned:
            self._poisoned = False
            self._forget_all()
            with _guard():
                self._connection.execute("ROLLBACK")
            raise StoreError("a step of this transaction could not be undone; nothing was stored")
        try:
            with _guard():
                self._connection.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) can leave the transaction open: roll it
            # back so that nothing of it stays visible and the store stays usable.
            self._forget_all()
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
            self._forget_all()
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
        return None if row is None else _blob(row[0])

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
        """A record from ``SELECT id, <_COLUMNS>``."""
        return ConversationRecord(
            uid=_blob(row[1]),
            session_id=_blob(row[2]),
            peer_identity=_blob(row[3]),
            peer=_optional_text(row[4]),
            state=_blob(row[5]),
            verified=_optional_blob(row[6]),
            created_at=_integer(row[7]),
            updated_at=_integer(row[8]),
            category=_optional_text(row[9]),
            subject=_optional_text(row[10]),
            timer_ms=_optional_integer(row[11]),
            key_generation=_integer(row[12]),
        )

    def _remember(self, row_id: int, record: ConversationRecord) -> None:
        # Least recently used first out: an entry written again moves to the end.
        if self._remembered.pop(record.uid, None) is None and len(self._remembered) >= _REMEMBERED:
            self._forget(next(iter(self._remembered)))
        self._remembered[record.uid] = (row_id, record)
        self._session_uids[record.session_id] = record.uid

    def _forget(self, uid: bytes) -> None:
        found = self._remembered.pop(uid, None)
        if found is not None:
            self._session_uids.pop(found[1].session_id, None)

    def _forget_all(self) -> None:
        self._remembered.clear()
        self._session_uids.clear()

    def add_conversation(self, record: ConversationRecord) -> None:
        """Store a new conversation; its data key is created (and committed) first."""
        self._write()
        self._keys.create(record.uid, record.key_generation)
        with _guard():
            cursor = self._connection.execute(
                f"INSERT INTO conversations ({_COLUMNS}) "  # noqa: S608 - fixed names
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.uid,
                    record.session_id,
                    record.peer_identity,
                    record.peer,
                    record.state,
                    record.verified,
                    record.created_at,
                    record.updated_at,
                    record.category,
                    record.subject,
                    record.timer_ms,
                    record.key_generation,
                ),
            )
        self._remember(cursor.lastrowid, record)

    def _one_conversation(self, where: str, value: object) -> ConversationRecord | None:
        with _guard():
            row = self._connection.execute(
                f"SELECT id, {_COLUMNS} FROM conversations WHERE {where} = ?",  # noqa: S608
                (value,),
            ).fetchone()
        if row is None:
            return None
        record = self._conversation(row)
        self._remember(_integer(row[0]), record)
        return record

    def conversation(self, uid: bytes) -> ConversationRecord | None:
        """The conversation with this uid."""
        found = self._remembered.get(uid)
        return found[1] if found is not None else self._one_conversation("uid", uid)

    def conversation_by_session(self, session_id: bytes) -> ConversationRecord | None:
        """The conversation whose protocol session has this id."""
        uid = self._session_uids.get(session_id)
        if uid is not None:
            return self._remembered[uid][1]
        return self._one_conversation("session_id", session_id)

    def conversations(self) -> list[ConversationRecord]:
        """Every conversation, most recently active first."""
        with _guard():
            rows = self._connection.execute(
                f"SELECT id, {_COLUMNS} FROM conversations "  # noqa: S608 - fixed names
                "ORDER BY updated_at DESC, id DESC"
            ).fetchall()
        return [self._conversation(row) for row in rows]

    def conversations_with_peer(self, peer: str) -> list[ConversationRecord]:
        """The conversations labelled with this peer, most recent first."""
        with _guard():
            rows = self._connection.execute(
                f"SELECT id, {_COLUMNS} FROM conversations WHERE peer = ? "  # noqa: S608 - fixed names
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
        category: str | Literal[False] | None = False,
        subject: str | Literal[False] | None = False,
        timer_ms: int | Literal[False] | None = False,
    ) -> None:
        """Change some fields of a conversation (``False`` leaves a field unchanged)."""
        self._write()
        found = self._remembered.get(uid)
        if (
            found is not None
            and state is not None
            and updated_at is not None
            and peer is None
            and verified is False
            and category is False
            and subject is False
            and timer_ms is False
        ):
            # Every send and receive: the ratchet state and the time, by row id.
            row_id, record = found
            with _guard():
                cursor = self._connection.execute(
                    "UPDATE conversations SET state = ?, updated_at = ? WHERE id = ? AND uid = ?",
                    (_param(state), updated_at, row_id, _param(uid)),
                )
            if cursor.rowcount == 1:
                self._remember(row_id, replace(record, state=state, updated_at=updated_at))
                return
            self._forget_all()  # cannot happen; if it did, nothing remembered is trusted
        changes: dict[str, object] = {}
        for column, value in (("category", category), ("subject", subject), ("timer_ms", timer_ms)):
            if value is not False:
                changes[column] = value
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
        found = self._remembered.get(uid)
        if found is not None:
            self._remembered[uid] = (found[0], replace(found[1], **changes))  # type: ignore[arg-type]

    # --- messages ------------------------------------------------------------------------------

    def add_message(self, record: MessageRecord) -> None:
        """Store a message, its body encrypted under the conversation's data key (STO-07)."""
        self._write()
        uid = record.conversation_uid
        row_id, generation = self._row_of(uid)
        nonce = random_bytes(aead.NONCE_SIZE)
        body = aead.seal(
            self._keys.get(uid, generation), nonce, record.body, LABEL_BODY + uid + record.uid
        )
        nulls, params = _message_params(row_id, record, nonce, body)
        with _guard(duplicate=ReplayError("a message with this id is already stored")):
            self._connection.execute(_INSERT_MESSAGE[nulls], params)

    def add_messages(self, records: list[MessageRecord]) -> None:
        """Store messages in order, one statement per run of rows with the same NULL columns
        (a batch is usually one run); a duplicate id raises ReplayError."""
        self._write()
        if not records:
            return
        rows = []
        # One cipher per conversation for the whole call (the key set up once), and the
        # random nonces drawn at once: the same 96-bit random nonce per body as one by one.
        sealers: dict[bytes, tuple[int, Callable[[bytes, bytes, bytes], bytes]]] = {}
        nonces = random_bytes(aead.NONCE_SIZE * len(records))
        for index, record in enumerate(records):
            uid = record.conversation_uid
            found = sealers.get(uid)
            if found is None:
                row_id, generation = self._row_of(uid)
                found = sealers[uid] = (row_id, aead.sealer(self._keys.get(uid, generation)))
            row_id, seal = found
            nonce = nonces[index * aead.NONCE_SIZE : (index + 1) * aead.NONCE_SIZE]
            body = seal(nonce, record.body, LABEL_BODY + uid + record.uid)
            rows.append(_message_params(row_id, record, nonce, body))
        with _guard(duplicate=ReplayError("a message with this id is already stored")):
            # One statement per run of rows with the same NULLs (a batch is usually one run),
            # in order: row ids follow arrival.
            for nulls, run in groupby(rows, key=itemgetter(0)):
                self._connection.executemany(_INSERT_MESSAGE[nulls], [params for _, params in run])

    def _row_of(self, conversation_uid: bytes) -> tuple[int, int]:
        """A conversation's row id and data-key generation."""
        found = self._remembered.get(conversation_uid)
        if found is not None:
            return found[0], found[1].key_generation
        with _guard():
            row = self._connection.execute(
                "SELECT id, key_generation FROM conversations WHERE uid = ?", (conversation_uid,)
            ).fetchone()
        if row is None:
            raise StoreCorrupt("a message names a conversation that is not stored")
        return _integer(row[0]), _integer(row[1])

    def history(
        self, conversation_uid: bytes, *, limit: int, before: bytes | None
    ) -> list[MessageRecord]:
        """Up to ``limit`` messages, newest first, older than message ``before`` if given."""
        row_id, generation = self._row_of(conversation_uid)
        query = (
            "SELECT uid, direction, sent_at, received_at, nonce, body, timer_ms, expires_at "
            "FROM messages WHERE conversation_id = ? "
        )
        params: list[object] = [row_id]
        if before is not None:
            with _guard():
                found = self._connection.execute(
                    "SELECT id FROM messages WHERE conversation_id = ? AND uid = ?",
                    (row_id, before),
                ).fetchone()
            if found is None:
                raise UsageError("no such message in this conversation (a stale page cursor?)")
            query += "AND id < ? "
            params.append(found[0])
        query += "ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with _guard():
            rows = self._connection.execute(query, params).fetchall()
        if not rows:
            return []
        open_body = aead.opener(self._keys.get(conversation_uid, generation))
        out = []
        for raw_uid, direction, sent_at, received_at, nonce, body, timer_ms, expires_at in rows:
            uid = _blob(raw_uid)
            if direction not in _DIRECTION_NAMES:
                raise _wrong_type()
            try:
                plain = open_body(_blob(nonce), _blob(body), LABEL_BODY + conversation_uid + uid)
            except AuthenticationError:
                raise StoreCorrupt("a stored message body does not authenticate") from None
            out.append(
                MessageRecord(
                    uid=uid,
                    conversation_uid=conversation_uid,
                    direction=_DIRECTION_NAMES[direction],
                    sent_at=_integer(sent_at),
                    received_at=_optional_integer(received_at),
                    body=plain,
                    expires_at=_optional_integer(expires_at),
                    timer_ms=_optional_integer(timer_ms),
                )
            )
        return out

    # --- compliance: settings, subjects, retention ------------------------------------------

    def meta(self, name: str) -> bytes | None:
        """A named store setting, or ``None``."""
        with _guard():
            row = self._connection.execute(
                "SELECT value FROM store_meta WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else _blob(row[0])

    def set_meta(self, name: str, value: bytes | None) -> None:
        """Create, replace or (``None``) remove a named store setting."""
        self._write()
        if name in ("format", "store_id", _OPEN_FLAG):
            raise UsageError("the store's format, id and open flag cannot be changed")
        with _guard():
            if value is None:
                self._connection.execute("DELETE FROM store_meta WHERE name = ?", (name,))
            else:
                self._connection.execute(
                    "INSERT INTO store_meta (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, value),
                )

    def conversations_of_subject(
        self, subject: str, *, loose: bool = False
    ) -> list[ConversationRecord]:
        """The conversations of a data subject, oldest first.

        A conversation's data subject is its subject id, else its peer label. ``loose`` also
        takes conversations whose peer label is ``subject`` whatever their subject id (holds:
        keeping more is the safe side).
        """
        peer_rule = "peer = ?" if loose else "subject IS NULL AND peer = ?"
        with _guard():
            rows = self._connection.execute(
                f"SELECT id, {_COLUMNS} FROM conversations WHERE subject = ? "  # noqa: S608
                f"UNION SELECT id, {_COLUMNS} FROM conversations WHERE {peer_rule} "
                "ORDER BY created_at",
                (subject, subject),
            ).fetchall()
        return [self._conversation(row) for row in rows]

    def set_retention(
        self, conversation_uid: bytes, *, min_ms: int, max_ms: int | None, use_timers: bool = True
    ) -> None:
        """Recompute the expiry of every message of a conversation (see :class:`Store`)."""
        self._write()
        row_id, _ = self._row_of(conversation_uid)
        timer = "timer_ms" if use_timers else "NULL"
        with _guard():
            # keep = max(min, min(max, timer)), where a NULL max or timer does not bound it.
            self._connection.execute(
                "UPDATE messages SET expires_at = CASE "  # noqa: S608 - fixed names
                f"WHEN ?1 IS NULL AND {timer} IS NULL THEN NULL "
                "ELSE coalesce(received_at, sent_at) + max(?2, "
                f"min(coalesce(?1, {timer}), coalesce({timer}, ?1))) END "
                "WHERE conversation_id = ?3",
                (max_ms, min_ms, row_id),
            )

    def held_conversations(self) -> set[bytes]:
        """The uids of the conversations under an active hold (directly or by subject)."""
        held: set[bytes] = set()
        for hold in self.holds(active_only=True):
            if hold.conversation_uid is not None:
                held.add(hold.conversation_uid)
            elif hold.subject is not None:
                held.update(r.uid for r in self.conversations_of_subject(hold.subject, loose=True))
        return held

    def _held_row_ids(self) -> list[int]:
        held = self.held_conversations()
        if not held:
            return []
        marks = ", ".join("?" for _ in held)
        with _guard():
            rows = self._connection.execute(
                f"SELECT id FROM conversations WHERE uid IN ({marks})",  # noqa: S608 - placeholders
                list(held),
            ).fetchall()
        return [_integer(row[0]) for row in rows]

    def expired(self, now: int, *, limit: int) -> list[ExpiredMessage]:
        """Up to ``limit`` messages expired at ``now``, oldest expiry first, none under a hold.

        Reads the expiry index alone from its start (it carries the conversation and the row
        id): the cost follows the expired (and held) rows, not the store.
        """
        held = self._held_row_ids()
        skip = f"AND conversation_id NOT IN ({', '.join('?' for _ in held)}) " if held else ""
        query = (
            "SELECT id, conversation_id, expires_at FROM messages "  # noqa: S608
            f"WHERE expires_at IS NOT NULL AND expires_at <= ? {skip}"
            "ORDER BY expires_at LIMIT ?"
        )
        with _guard():
            rows = self._connection.execute(query, [now, *held, limit]).fetchall()
        uids = self._conversation_uids({_integer(r[1]) for r in rows})
        return [ExpiredMessage(_integer(r[0]), uids[_integer(r[1])], _integer(r[2])) for r in rows]

    def _conversation_uids(self, row_ids: set[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        ordered = sorted(row_ids)
        with _guard():
            for start in range(0, len(ordered), _BATCH):
                chunk = ordered[start : start + _BATCH]
                marks = ", ".join("?" for _ in chunk)
                for row_id, uid in self._connection.execute(
                    f"SELECT id, uid FROM conversations WHERE id IN ({marks})",  # noqa: S608
                    chunk,
                ):
                    found[_integer(row_id)] = _blob(uid)
        missing = row_ids - found.keys()
        if missing:
            raise StoreCorrupt("an expired message names a conversation that is not stored")
        return found

    def next_expiry(self) -> int | None:
        """The earliest expiry of a message not under a hold, or ``None``."""
        held = self._held_row_ids()
        skip = f"AND conversation_id NOT IN ({', '.join('?' for _ in held)}) " if held else ""
        query = (
            f"SELECT expires_at FROM messages WHERE expires_at IS NOT NULL {skip}"  # noqa: S608
            "ORDER BY expires_at LIMIT 1"
        )
        with _guard():
            row = self._connection.execute(query, held).fetchone()
        return None if row is None else _integer(row[0])

    def delete_messages(self, row_ids: list[int]) -> None:
        """Delete messages by their row ids (found by :meth:`expired`)."""
        self._write()
        with _guard():
            for start in range(0, len(row_ids), _BATCH):
                chunk = row_ids[start : start + _BATCH]
                marks = ", ".join("?" for _ in chunk)
                self._connection.execute(
                    f"DELETE FROM messages WHERE id IN ({marks})",  # noqa: S608 - placeholders
                    chunk,
                )

    def messages_of(
        self,
        conversation_uid: bytes,
        *,
        stored_before: int | None = None,
        stored_from: int | None = None,
    ) -> list[tuple[bytes, int]]:
        """The ids and times of a conversation's messages (all, or stored before, or from, a
        time)."""
        row_id, _ = self._row_of(conversation_uid)
        query = "SELECT uid, coalesce(received_at, sent_at) FROM messages WHERE conversation_id = ?"
        params: list[object] = [row_id]
        if stored_before is not None:
            query += " AND coalesce(received_at, sent_at) < ?"
            params.append(stored_before)
        if stored_from is not None:
            query += " AND coalesce(received_at, sent_at) >= ?"
            params.append(stored_from)
        with _guard():
            rows = self._connection.execute(query + " ORDER BY id", params).fetchall()
        return [(_blob(r[0]), _integer(r[1])) for r in rows]

    # --- compliance: erasure ----------------------------------------------------------------

    def erase_conversation(self, uid: bytes) -> list[tuple[bytes, int]]:
        """Delete a conversation, its messages and its settings; schedule all its data keys for
        shredding (every generation: a key an interrupted erasure committed above the current
        one included). Returns the deleted messages' ids and times (read as they are deleted)."""
        self._write()
        row_id, _ = self._row_of(uid)
        self._forget(uid)
        # Settings named "conversation:<id>:..." sort between these two bounds (":" < ";").
        low = conversation_setting(uid, "")
        with _guard():
            deleted = self._connection.execute(
                "DELETE FROM messages WHERE conversation_id = ? "
                "RETURNING uid, coalesce(received_at, sent_at)",
                (row_id,),
            ).fetchall()
            self._connection.execute("DELETE FROM conversations WHERE id = ?", (row_id,))
            self._connection.execute(
                "DELETE FROM store_meta WHERE name >= ? AND name < ?", (low, low[:-1] + ";")
            )
            self._schedule_shred(uid, _ALL_GENERATIONS)
        return sorted(((_blob(m), _integer(t)) for m, t in deleted), key=lambda m: (m[1], m[0]))

    def prune_and_reseal(self, uid: bytes, *, keep_stored_from: int) -> None:
        """Delete the messages stored before a time; re-seal the rest under a new data key.

        The new key is committed to the key file first (an interrupted erasure leaves at most
        an unused key, replaced when the erasure is retried); the old ones are only scheduled
        here and destroyed by :meth:`shred_pending` once this transaction has committed.
        """
        self._write()
        row_id, generation = self._row_of(uid)
        self._forget(uid)  # its key generation changes below
        old_key = self._keys.get(uid, generation)
        new_key = self._keys.create(uid, generation + 1)
        open_body = aead.opener(old_key)
        with _guard():
            self._connection.execute(
                "DELETE FROM messages WHERE conversation_id = ? "
                "AND coalesce(received_at, sent_at) < ?",
                (row_id, keep_stored_from),
            )
            kept = self._connection.execute(
                "SELECT id, uid, nonce, body FROM messages WHERE conversation_id = ?", (row_id,)
            ).fetchall()
        updates = []
        for message_row, raw_uid, nonce, body in kept:
            ad = LABEL_BODY + uid + _blob(raw_uid)
            try:
                plain = open_body(_blob(nonce), _blob(body), ad)
            except AuthenticationError:
                raise StoreCorrupt("a stored message body does not authenticate") from None
            fresh = random_bytes(aead.NONCE_SIZE)
            updates.append((fresh, aead.seal(new_key, fresh, plain, ad), message_row))
        with _guard():
            self._connection.executemany(
                "UPDATE messages SET nonce = ?, body = ? WHERE id = ?", updates
            )
            self._connection.execute(
                "UPDATE conversations SET key_generation = ? WHERE id = ?",
                (generation + 1, row_id),
            )
            self._schedule_shred(uid, generation + 1)

    def _schedule_shred(self, uid: bytes, below_generation: int) -> None:
        self._connection.execute(
            "INSERT OR IGNORE INTO pending_shreds (conversation_uid, below_generation) "
            "VALUES (?, ?)",
            (uid, below_generation),
        )

    def shred_pending(self) -> int:
        """Destroy the data keys scheduled by committed erasures; return how many were due.

        Runs outside a transaction: each key is destroyed (and committed in the key file)
        before its schedule entry is removed, so a crash in between repeats a harmless destroy.
        """
        if self._depth:
            raise RuntimeError("shred_pending runs after the erasure's transaction commits")
        with _guard():
            due = self._connection.execute(
                "SELECT conversation_uid, below_generation FROM pending_shreds"
            ).fetchall()
        if due:
            self._mark()  # the key file changes first, before any transaction of the store
        for raw_uid, below in due:
            self._keys.destroy(_blob(raw_uid), _integer(below))
            with self.transaction(), _guard():
                self._connection.execute(
                    "DELETE FROM pending_shreds WHERE conversation_uid = ? "
                    "AND below_generation = ?",
                    (raw_uid, below),
                )
        return len(due)

    @contextmanager
    def deferred_checkpoint(self) -> Iterator[None]:
        """No automatic checkpoint inside: the caller ends with :meth:`truncate_journal`.

        SQLite copies the write-ahead log back into the store inside the first commit that
        leaves more than 1,000 pages in it; a bulk deletion (a sweep, an erasure) that truncates
        the log afterwards anyway does that copy once, in the truncation. The setting in force
        before is restored on every exit (so nested uses compose); a failure to restore it does
        not hide the error that ended the block.
        """
        with _guard():
            before = _integer(self._connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            self._connection.execute("PRAGMA wal_autocheckpoint = 0")
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            try:
                with _guard():
                    self._connection.execute(f"PRAGMA wal_autocheckpoint = {before}")
            except StoreError:
                if not failed:
                    raise

    def truncate_journal(self) -> None:
        """Checkpoint the write-ahead log into the store and truncate it to zero bytes."""
        self._owner()
        if self._depth:
            raise RuntimeError("the journal can only be truncated outside a transaction")
        with _guard():
            busy = self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy is not None and busy[0]:
            raise StoreError("the write-ahead log could not be truncated (the store is busy)")

    def add_erasure(self, uid: bytes, at: int, receipt: bytes) -> None:
        """Keep an erasure receipt."""
        self._write()
        with _guard():
            self._connection.execute(
                "INSERT INTO erasures (uid, at, receipt) VALUES (?, ?, ?)", (uid, at, receipt)
            )

    def erasures(self) -> list[tuple[bytes, int, bytes]]:
        """Every erasure receipt (uid, time, receipt bytes), oldest first."""
        with _guard():
            rows = self._connection.execute(
                "SELECT uid, at, receipt FROM erasures ORDER BY id"
            ).fetchall()
        return [(_blob(r[0]), _integer(r[1]), _blob(r[2])) for r in rows]

    # --- compliance: holds ------------------------------------------------------------------

    @staticmethod
    def _hold(row: Any) -> HoldRecord:
        return HoldRecord(
            uid=_blob(row[0]),
            conversation_uid=_optional_blob(row[1]),
            subject=_optional_text(row[2]),
            reason=_text(row[3]),
            reference=_optional_text(row[4]),
            placed_at=_integer(row[5]),
            released_at=_optional_integer(row[6]),
        )

    def add_hold(self, record: HoldRecord) -> None:
        """Store a new legal hold."""
        self._write()
        with _guard():
            self._connection.execute(
                "INSERT INTO holds (uid, conversation_uid, subject, reason, reference, "
                "placed_at, released_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.uid,
                    record.conversation_uid,
                    record.subject,
                    record.reason,
                    record.reference,
                    record.placed_at,
                    record.released_at,
                ),
            )

    def release_hold(self, uid: bytes, at: int) -> HoldRecord | None:
        """Release an active hold; the released record, or ``None`` if none is active."""
        self._write()
        with _guard():
            self._connection.execute(
                "UPDATE holds SET released_at = ? WHERE uid = ? AND released_at IS NULL",
                (at, uid),
            )
            changed = self._connection.execute("SELECT changes()").fetchone()[0]
            row = self._connection.execute(
                "SELECT uid, conversation_uid, subject, reason, reference, placed_at, released_at "
                "FROM holds WHERE uid = ?",
                (uid,),
            ).fetchone()
        return self._hold(row) if changed and row is not None else None

    def redact_hold(self, uid: bytes, subject: str | None) -> None:
        """Strip a released hold of what may name a person (after its subject was erased)."""
        self._write()
        with _guard():
            self._connection.execute(
                "UPDATE holds SET subject = CASE WHEN subject IS NULL THEN NULL ELSE ? END, "
                "reason = '(erased with its data subject)', reference = NULL "
                "WHERE uid = ? AND released_at IS NOT NULL",
                (subject, uid),
            )

    def holds(self, *, active_only: bool) -> list[HoldRecord]:
        """Legal holds, oldest first (only the active ones if asked)."""
        query = (
            "SELECT uid, conversation_uid, subject, reason, reference, placed_at, released_at "
            "FROM holds "
        )
        if active_only:
            query += "WHERE released_at IS NULL "
        with _guard():
            rows = self._connection.execute(query + "ORDER BY id").fetchall()
        return [self._hold(row) for row in rows]

    # --- compliance: hash-chained logs ------------------------------------------------------

    def last_chain_row(self, log: ChainLog) -> ChainRow | None:
        """The newest row of a hash-chained log."""
        rows = self._chain_query(log, "ORDER BY seq DESC LIMIT 1", [])
        return rows[0] if rows else None

    def add_chain_row(self, log: ChainLog, row: ChainRow) -> None:
        """Append a row to a hash-chained log."""
        self._write()
        with _guard():
            if log == "audit":
                self._connection.execute(
                    "INSERT INTO audit_events (seq, at, action, details, prev, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (row.seq, row.at, row.kind, row.body, row.prev, row.hash),
                )
            else:
                self._connection.execute(
                    "INSERT INTO consent_ledger (seq, subject, purpose, record, prev, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (row.seq, row.subject, row.kind, row.body, row.prev, row.hash),
                )

    def chain_rows(
        self, log: ChainLog, *, after: int = 0, limit: int = 1000, subject: str | None = None
    ) -> list[ChainRow]:
        """Rows of a log in order, after seq ``after`` (only a subject's, if given)."""
        where = "WHERE seq > ? "
        params: list[object] = [after]
        if subject is not None:
            if log != "audit":
                where += "AND subject = ? "
                params.append(subject)
            else:
                raise UsageError("audit events carry pseudonyms, not subject ids")
        return self._chain_query(log, where + "ORDER BY seq LIMIT ?", [*params, limit])

    def consent_rows(self, purpose: str, key: str) -> list[ChainRow]:
        """The consent ledger's rows of one purpose and ledger key, in order."""
        return self._chain_query(
            "consent", "WHERE purpose = ? AND subject = ? ORDER BY seq", [purpose, key]
        )

    def _chain_query(self, log: ChainLog, tail: str, params: list[object]) -> list[ChainRow]:
        if log == "audit":
            columns = "seq, at, action, details, prev, hash, NULL"
        else:
            columns = "seq, 0, purpose, record, prev, hash, subject"
        table = _CHAIN_TABLES[log]
        with _guard():
            rows = self._connection.execute(
                f"SELECT {columns} FROM {table} {tail}",  # noqa: S608 - fixed names
                params,
            ).fetchall()
        return [
            ChainRow(
                seq=_integer(r[0]),
                at=_integer(r[1]),
                kind=_text(r[2]),
                body=_blob(r[3]),
                prev=_blob(r[4]),
                hash=_blob(r[5]),
                subject=_optional_text(r[6]),
            )
            for r in rows
        ]

    # --- lifecycle -----------------------------------------------------------------------------

    def integrity_check(self) -> bool:
        """``PRAGMA integrity_check`` of the store file (costs a full scan: not run at open)."""
        with _guard():
            rows = self._connection.execute("PRAGMA integrity_check").fetchall()
        return bool(rows == [("ok",)])

    def close(self) -> None:
        """Close both files and release the lock; idempotent.

        In a child forked from the process that opened the store, only the child's copy of the
        lock's descriptor is closed: the store, its files and its flag stay the owner's (FLT-52).
        """
        if self._lock is None:
            return
        if self._pid != os.getpid():
            self._lock.release()
            self._lock = None
            return
        try:
            self._forget_all()
            flagged = self._mark_closed()
            self._keys.close()
            self._connection.close()
            if not flagged and not journal_path(self.path).exists():
                # The flag could not be written (a full disk), but closing checkpointed the log
                # into the store file and removed it: the store file is complete. An empty file
                # says so (creating one needs no space); the next open removes it. A log still
                # there holds the session: no note, so that losing it is still noticed.
                _note_clean_close(self.path)
        finally:
            self._lock.release()
            self._lock = None

    def _mark_closed(self) -> bool:
        """Say in the store file that it was closed cleanly; ``False`` if that failed.

        Never raises: if the flag cannot be written (a full disk), :meth:`close` leaves the
        ``.closed`` note instead.
        """
        if not self._marked:
            return True
        if self._depth:
            return False
        try:
            # Everything of the session into the store file first: a flag saying "closed" must
            # never reach a store file that a failing checkpoint left half written.
            self.truncate_journal()
            with self.transaction(), _guard():
                self._connection.execute(
                    "UPDATE store_meta SET value = ? WHERE name = ?", (_CLOSED, _OPEN_FLAG)
                )
        except StoreError:
            return False
        return True

    def __repr__(self) -> str:
        return f"SqlCipherStore({self.path.name!r}, open={self._lock is not None})"
