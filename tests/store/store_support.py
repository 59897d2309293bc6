"""Helpers shared by the store tests: plain SQLCipher access, directory snapshots, spies.

Not a test module (no ``test_`` prefix). Everything here that reads a store does it with plain
``sqlcipher3`` and keys computed from spec/store.md with ``cryptography``, never with the library's
own code, so a test fails if the library drifts from the spec.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlcipher3 import dbapi2 as sqlcipher

from entrenous import Client, Conversation

#: spec/store.md, "Keys".
KEY_FILE_LABEL = b"entrenous/v1 data-key file"
BODY_LABEL = b"entrenous/v1 stored body"

Snapshot = dict[str, tuple[bytes, int]]


def spec_key_file_key(store_key: bytes) -> bytes:
    """HKDF-SHA256(ikm = K, salt = "", info = "entrenous/v1 data-key file"), by cryptography."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=KEY_FILE_LABEL).derive(
        store_key
    )


def raw_connect(path: Path, key: bytes) -> Any:
    """A plain sqlcipher3 connection keyed as spec/store.md says (no entrenous code involved)."""
    connection = sqlcipher.connect(str(path), isolation_level=None)
    connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return connection


@contextmanager
def raw_store(path: Path, key: bytes) -> Iterator[Any]:
    """``raw_connect`` as a context manager that closes the connection."""
    connection = raw_connect(path, key)
    try:
        yield connection
    finally:
        connection.close()


def key_file(store: Path) -> Path:
    return store.with_name(store.name + ".keys")


def kdf_file(store: Path) -> Path:
    return store.with_name(store.name + ".kdf")


def lock_file(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


def snapshot(directory: Path) -> Snapshot:
    """Bytes and mtime (ns) of every file in ``directory``."""
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def assert_unchanged(
    before: Snapshot, after: Snapshot, *, may_appear: tuple[str, ...] = ()
) -> None:
    """Every file of ``before`` is still there, byte for byte and with the same mtime; the only
    new files are those named in ``may_appear`` (the lock file), and those are empty."""
    for name, (data, mtime) in before.items():
        assert name in after, f"{name} was removed"
        assert after[name][0] == data, f"{name} changed"
        assert after[name][1] == mtime, f"{name} was written (mtime changed)"
    for name in set(after) - set(before):
        assert name in may_appear, f"{name} was created"
        assert after[name][0] == b"", f"{name} is not empty"


def version(connection: Any) -> int:
    """The schema version a store file says it is at (``PRAGMA user_version``)."""
    value = connection.execute("PRAGMA user_version").fetchone()[0]
    assert isinstance(value, int)
    return value


def tables(connection: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (a logical dump, ordered), through ``connection``."""
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
    ]
    return {
        name: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]
        for name in names
        for rows in [connection.execute(f'SELECT * FROM "{name}" ORDER BY 1').fetchall()]  # noqa: S608
    }


@dataclass
class Pair:
    """Two clients with one conversation each way established (the bank has received once)."""

    bank: Client
    customer: Client
    bank_conv: Conversation
    customer_conv: Conversation
    bank_path: Path
    customer_path: Path
    bank_key: bytes
    customer_key: bytes

    def close(self) -> None:
        self.bank.close()
        self.customer.close()


def open_pair(directory: Path, *, clock: Any = None) -> Pair:
    """A bank and a customer in ``directory`` (raw keys), after one message each way."""
    bank_key, customer_key = os.urandom(32), os.urandom(32)
    bank_path, customer_path = directory / "bank.db", directory / "customer.db"
    bank = Client.open(bank_path, key=bank_key, clock=clock)
    customer = Client.open(customer_path, key=customer_key, clock=clock)
    customer_conv = customer.start_conversation(bank.prekey_bundle())
    received = bank.receive(customer_conv.send("hello"))
    customer.receive(received.conversation.send("hello back"))
    return Pair(
        bank,
        customer,
        received.conversation,
        customer_conv,
        bank_path,
        customer_path,
        bank_key,
        customer_key,
    )


class StatementSpy:
    """Stands in for a store's sqlcipher3 connection: records every statement, and can make
    the next statements that start with ``fail_on`` raise as a failing disk would (without
    running them, so a transaction stays open as after a failed COMMIT)."""

    def __init__(self, inner: Any, *, fail_on: str | None = None, failures: int = 1) -> None:
        self._inner = inner
        self.statements: list[str] = []
        self.params: list[Any] = []
        self.fail_on = fail_on
        self.failures = failures

    def _check(self, sql: str) -> None:
        self.statements.append(sql)
        if (
            self.fail_on is not None
            and self.failures > 0
            and sql.lstrip().upper().startswith(self.fail_on)
        ):
            self.failures -= 1
            raise sqlcipher.OperationalError("disk I/O error")

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._check(sql)
        self.params.append(params)
        return self._inner.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        self._check(sql)
        self.params.append(rows)
        return self._inner.executemany(sql, rows)

    def count(self, prefix: str) -> int:
        return sum(1 for s in self.statements if s.lstrip().upper().startswith(prefix))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --- templates (built once per session by conftest.py) ----------------------------------------

PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True)
class Template:
    """A directory holding ``store.db`` (opened by ``key`` or ``passphrase``) and ``other.db``
    (a second, unrelated raw-key store), both closed, with one conversation and messages."""

    directory: Path
    key: bytes | None
    passphrase: str | None
    other_key: bytes

    def copy_to(self, destination: Path) -> Path:
        """Copy every file into ``destination`` (created); return the path of ``store.db``."""
        shutil.copytree(self.directory, destination, dirs_exist_ok=True)
        return destination / "store.db"


def build_template(directory: Path, *, key: bytes | None, passphrase: str | None) -> Template:
    directory.mkdir(parents=True, exist_ok=True)
    other_key = os.urandom(32)
    with (
        Client.open(directory / "store.db", key=key, passphrase=passphrase) as store,
        Client.open(directory / "other.db", key=other_key) as other,
    ):
        conv = other.start_conversation(store.prekey_bundle())
        received = store.receive(conv.send("first"))
        other.receive(received.conversation.send("second"))
        store.receive(conv.send("third"))
    return Template(directory, key, passphrase, other_key)


@dataclass(frozen=True)
class PairTemplate:
    """A closed bank/customer pair (see :func:`open_pair`) to copy: cheaper than creating."""

    directory: Path
    bank_key: bytes
    customer_key: bytes
    bank_conversation: str
    customer_conversation: str

    def open_copy(
        self, destination: Path, *, clock: Any = None, customer_clock: Any = None
    ) -> Pair:
        """Copy into ``destination`` and open both (``customer_clock`` defaults to ``clock``)."""
        shutil.copytree(self.directory, destination, dirs_exist_ok=True)
        bank_path, customer_path = destination / "bank.db", destination / "customer.db"
        bank = Client.open(bank_path, key=self.bank_key, clock=clock)
        try:
            customer = Client.open(
                customer_path, key=self.customer_key, clock=customer_clock or clock
            )
        except BaseException:
            bank.close()
            raise
        return Pair(
            bank,
            customer,
            bank.conversation(self.bank_conversation),
            customer.conversation(self.customer_conversation),
            bank_path,
            customer_path,
            self.bank_key,
            self.customer_key,
        )


def build_pair_template(directory: Path) -> PairTemplate:
    pair = open_pair(directory)
    pair.close()
    return PairTemplate(
        directory, pair.bank_key, pair.customer_key, pair.bank_conv.id, pair.customer_conv.id
    )


def logical_state(client: Client) -> dict[str, Any]:
    """Everything a client has stored, read through its own connections inside this process:
    every row of the store, the data keys of its conversations, the conversation list and
    every history.

    Compared before and after a refused call: raw file bytes are no use there, since a WAL
    and its index may legitimately change on a rolled-back transaction. A data key left by a
    rolled-back new conversation is not counted: spec/store.md commits each data key to the
    data-key file *before* its conversation's row, so such an unused key is expected.
    """
    store = tables(client._store._connection)
    # The open flag (spec/store.md) says whether a session changed the store, not what it holds:
    # the first change of a session sets it even if that change is then refused.
    store["store_meta"] = [row for row in store["store_meta"] if row[0] != "open"]
    keys = tables(client._store._keys._connection)
    uids = {row[1] for row in store["conversations"]}
    keys["data_keys"] = [row for row in keys["data_keys"] if row[0] in uids]
    return {
        "store": store,
        "keys": keys,
        "conversations": [c.id for c in client.conversations()],
        "histories": {
            c.id: [
                (m.id, m.direction, m.content, m.sent_at, m.received_at) for m in c.history(1000)
            ]
            for c in client.conversations()
        },
    }
