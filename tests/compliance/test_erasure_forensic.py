"""The forensic erasure test (ERA-06, ERA-07): known marker plaintexts are written, erased, and
then looked for in every byte an attacker with the store key could read: the store file and its
WAL (every page decrypted, free pages and stale frames included), the data-key file and its
journal, and a copy of the store taken before the erasure. The reader is independent of the
library (tests/forensic/forensic_support.py decrypts SQLCipher 4 pages with `cryptography`).

Before the erasure the same scans find what they look for (the data key in the key file's pages,
the marker through that key in the copy), so a clean result after it is not a blind scan.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from compliance_support import Parties, parties
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from forensic_support import (
    decrypt_pages,
    key_file_key_independent,
    plaintext_bytes_of,
    raw_bytes_of,
    store_files,
)
from store_support import raw_connect

LABEL_BODY = b"entrenous/v1 stored body"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Parties]:
    opened = parties(tmp_path)
    opened.bank_conv.set_subject("customer-42")
    yield opened
    opened.close()


def _data_keys(world: Parties) -> dict[tuple[bytes, int], bytes]:
    rows = world.bank._store._keys._connection.execute(
        "SELECT conversation_uid, generation, key FROM data_keys"
    ).fetchall()
    return {(bytes(r[0]), r[1]): bytes(r[2]) for r in rows}


def _bodies(path: Path, key: bytes) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(conversation uid, message uid, nonce, body) of every message in a store file."""
    connection = raw_connect(path, key)
    try:
        rows = connection.execute(
            "SELECT c.uid, m.uid, m.nonce, m.body FROM messages AS m "
            "JOIN conversations AS c ON c.id = m.conversation_id"
        ).fetchall()
    finally:
        connection.close()
    return [(bytes(a), bytes(b), bytes(c), bytes(d)) for a, b, c, d in rows]


def _open_any(body: tuple[bytes, bytes, bytes, bytes], keys: list[bytes]) -> bytes | None:
    conversation, message, nonce, sealed = body
    for key in keys:
        try:
            return ChaCha20Poly1305(key).decrypt(nonce, sealed, LABEL_BODY + conversation + message)
        except InvalidTag:
            continue
    return None


@pytest.mark.req("ERA-06", "ERA-07")
def test_no_erased_marker_is_recoverable_anywhere(world: Parties, tmp_path: Path) -> None:
    marker = b"MARKER-" + os.urandom(8).hex().encode()
    world.exchange(20, text=marker.decode())
    world.bank_conv.send(marker.decode() + " from the bank")
    uid = world.bank_conv._uid
    destroyed = _data_keys(world)[uid, 0]

    # A copy of the store (without its key file) taken before the erasure, from a closed client.
    world.bank.close()
    copy = tmp_path / "copy" / "bank.db"
    copy.parent.mkdir()
    shutil.copy2(world.bank_path, copy)
    key_file_before = world.bank_path.with_name("bank.db.keys")
    key_file_key = key_file_key_independent(world.bank_key)
    # The scans work: before the erasure the key is in the key file's pages and opens the copy.
    assert destroyed in b"".join(decrypt_pages(key_file_before, key_file_key))
    opened = [_open_any(b, [destroyed]) for b in _bodies(copy, world.bank_key)]
    assert sum(1 for p in opened if p is not None and marker in p) == 21

    bank = world.reopen_bank()
    receipt = bank.erase(subject="customer-42")
    assert receipt.erased_messages == 23  # 20 + 1 + the two greetings
    # While the client is open (its WAL present), and after closing it.
    for phase in ("open", "closed"):
        if phase == "closed":
            bank.close()
        files = store_files(world.bank_path)
        everything_raw = raw_bytes_of(files)
        assert marker not in everything_raw and destroyed not in everything_raw
        store_plain = plaintext_bytes_of(world.bank_path, world.bank_key)
        assert marker not in store_plain and destroyed not in store_plain
        key_plain = b"".join(decrypt_pages(key_file_before, key_file_key))
        assert destroyed not in key_plain
        assert not world.bank_path.with_name("bank.db.keys-journal").exists()
    # The copy from before the erasure: its pages hold only sealed bodies, and no data key left
    # anywhere opens them.
    assert marker not in plaintext_bytes_of(copy, world.bank_key)
    remaining = list(_data_keys_in(key_file_before, key_file_key))
    for body in _bodies(copy, world.bank_key):
        if body[0] == uid:
            assert _open_any(body, remaining) is None
    world.bank = type(bank).open(world.bank_path, key=world.bank_key, clock=world.clock)


def _data_keys_in(key_file: Path, key: bytes) -> Iterator[bytes]:
    connection = raw_connect(key_file, key)
    try:
        for (value,) in connection.execute("SELECT key FROM data_keys"):
            yield bytes(value)
    finally:
        connection.close()


@pytest.mark.req("ERA-06")
def test_an_erasure_interrupted_before_the_keys_are_destroyed_finishes_at_open(
    world: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.exchange(3)
    uid = world.bank_conv._uid
    store_class = type(world.bank._store)
    # The process dies right after the erasure's transaction committed: no key destroyed yet.
    monkeypatch.setattr(store_class, "shred_pending", lambda self: 0)
    monkeypatch.setattr(store_class, "truncate_journal", lambda self: None)
    receipt = world.bank.erase(subject="customer-42")
    assert any(k[0] == uid for k in _data_keys(world))
    assert world.bank.erasure_receipts() == [receipt]
    monkeypatch.undo()
    bank = world.reopen_bank()
    keys = bank._store._keys._connection.execute(
        "SELECT count(*) FROM data_keys WHERE conversation_uid = ?", (uid,)
    ).fetchone()[0]
    assert keys == 0
    assert bank._store._connection.execute("SELECT count(*) FROM pending_shreds").fetchone() == (0,)
    assert bank.erasure_receipts() == [receipt]
