"""The forensic reader sees every byte a SQLCipher 4 file holds, deleted data included.

These tests prove the reader (forensic_support.py) right before an erasure test relies on it: it
agrees with SQLCipher on real files, finds live rows, WAL frames and data left in free space, and
refuses a wrong key. A reader that found nothing because it read nothing would make every
"no marker is recoverable" check pass; the secure_delete=OFF cases show it does find leftovers.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from forensic_support import (
    PAGE_SIZE,
    RESERVE_SIZE,
    SQLITE_MAGIC,
    ForensicError,
    decrypt_pages,
    decrypt_wal,
    freelist_pages,
    key_file_key_independent,
    plaintext_bytes_of,
    raw_bytes_of,
    read_salt,
    store_files,
)
from sqlcipher3 import dbapi2 as sqlcipher

from entrenous import Client

MARKER = "MARKER-7c1e-forensic"
#: Long enough to spill into overflow pages (which are freed whole when the row goes).
BIG_MARKER = MARKER * 600


def _connect(path: Path, key: bytes) -> Any:
    """A plain sqlcipher3 connection with the store's PRAGMAs (spec/store.md)."""
    connection = sqlcipher.connect(str(path), isolation_level=None)
    connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    assert connection.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA secure_delete = ON")
    return connection


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, bytes, Any]]:
    """A fresh SQLCipher database with one table, checkpointed: (path, raw key, connection)."""
    path, key = tmp_path / "t.db", os.urandom(32)
    connection = _connect(path, key)
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.execute("INSERT INTO t VALUES ('unrelated row')")
    _checkpoint(connection)
    try:
        yield path, key, connection
    finally:
        connection.close()


def _checkpoint(connection: Any) -> None:
    """``wal_checkpoint(TRUNCATE)``; fails the test if a reader blocked it."""
    busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _wal_pages(path: Path, key: bytes) -> list[tuple[int, bytes]]:
    return decrypt_wal(_wal(path), key, read_salt(path))


def _found(marker: str, data: bytes) -> bool:
    return marker.encode() in data


# --- the reader agrees with SQLCipher --------------------------------------------------------


def test_the_bundled_sqlcipher_uses_the_defaults_the_reader_assumes(db: Any) -> None:
    _, _, connection = db
    settings = {row[0] for row in connection.execute("PRAGMA cipher_settings")}
    assert {
        "PRAGMA cipher_page_size = 4096;",
        "PRAGMA cipher_use_hmac = 1;",
        "PRAGMA cipher_hmac_algorithm = HMAC_SHA512;",
        "PRAGMA cipher_plaintext_header_size = 0;",
    } <= settings


def test_decrypted_pages_are_a_valid_plain_sqlite_database(db: Any, tmp_path: Path) -> None:
    path, key, connection = db
    connection.executemany("INSERT INTO t VALUES (?)", [(f"row {i} " * 40,) for i in range(60)])
    _checkpoint(connection)
    pages = decrypt_pages(path, key)

    assert len(pages) == path.stat().st_size // PAGE_SIZE > 4
    header = pages[0]
    assert header[:16] == SQLITE_MAGIC
    assert struct.unpack(">H", header[16:18])[0] == PAGE_SIZE
    assert header[20] == RESERVE_SIZE  # SQLite's own reserved-space byte: 80 (IV + HMAC)
    # The stdlib's plain SQLite reads the reader's output as an ordinary database.
    plain = tmp_path / "plain.db"
    plain.write_bytes(b"".join(pages))
    with closing(sqlite3.connect(plain)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        expected = connection.execute("SELECT x FROM t ORDER BY rowid").fetchall()
        assert copy.execute("SELECT x FROM t ORDER BY rowid").fetchall() == expected


def test_page_1_in_a_wal_frame_carries_the_salt_like_the_file(tmp_path: Path) -> None:
    path, key = tmp_path / "t.db", os.urandom(32)
    with closing(_connect(path, key)) as connection:
        connection.execute("CREATE TABLE t (x TEXT)")  # changes page 1: a frame for it
        frames = _wal_pages(path, key)
        assert _wal(path).read_bytes()[32 + 24 : 32 + 24 + 16] == read_salt(path)
    first = [page for number, page in frames if number == 1]
    assert first
    assert first[-1][:16] == SQLITE_MAGIC
    assert first[-1][20] == RESERVE_SIZE


def test_a_wrong_key_or_an_altered_page_fails_the_hmac(db: Any) -> None:
    path, key, connection = db
    connection.execute("INSERT INTO t VALUES (?)", (MARKER,))  # a frame in the WAL
    with pytest.raises(ForensicError, match="page 1"):
        decrypt_pages(path, os.urandom(32))
    with pytest.raises(ForensicError, match="frame page"):
        decrypt_wal(_wal(path), os.urandom(32), read_salt(path))
    # Without verification a wrong key gives noise, not an error (and no marker).
    wrong = os.urandom(32)
    noise = decrypt_pages(path, wrong, verify=False)
    assert noise[0][16:] != decrypt_pages(path, key)[0][16:]
    frames = decrypt_wal(_wal(path), wrong, read_salt(path), verify=False)
    assert frames
    assert not any(_found(MARKER, page) for _, page in frames)

    _checkpoint(connection)
    data = bytearray(path.read_bytes())
    data[PAGE_SIZE + 100] ^= 1  # one bit of page 2's ciphertext
    altered = path.with_name("altered.db")
    altered.write_bytes(bytes(data))
    with pytest.raises(ForensicError, match="page 2"):
        decrypt_pages(altered, key)


# --- it finds what is there ------------------------------------------------------------------


def test_a_row_is_found_in_wal_frames_before_a_checkpoint_and_in_the_file_after(db: Any) -> None:
    path, key, connection = db
    connection.execute("INSERT INTO t VALUES (?)", (MARKER,))

    assert any(_found(MARKER, page) for _, page in _wal_pages(path, key))
    assert not _found(MARKER, b"".join(decrypt_pages(path, key)))  # not checkpointed yet
    assert _found(MARKER, plaintext_bytes_of(path, key))
    assert not _found(MARKER, raw_bytes_of(store_files(path)))  # encrypted on disk

    _checkpoint(connection)
    assert _wal(path).stat().st_size == 0
    assert _found(MARKER, b"".join(decrypt_pages(path, key)))


@pytest.mark.parametrize("marker", [MARKER, BIG_MARKER], ids=["in-page", "overflow-pages"])
def test_secure_delete_then_a_truncating_checkpoint_leaves_no_trace(db: Any, marker: str) -> None:
    path, key, connection = db
    connection.execute("INSERT INTO t VALUES (?)", (marker,))
    connection.execute("DELETE FROM t WHERE x = ?", (marker,))

    # secure_delete zeroes the new version of the page; the old WAL frame keeps the row.
    assert any(_found(MARKER, page) for _, page in _wal_pages(path, key))

    _checkpoint(connection)
    assert not _found(MARKER, plaintext_bytes_of(path, key))
    assert not _found(MARKER, raw_bytes_of(store_files(path)))
    connection.close()
    assert not _wal(path).exists()
    assert not _found(MARKER, plaintext_bytes_of(path, key))


def test_without_secure_delete_the_deleted_row_stays_in_free_space(db: Any) -> None:
    path, key, connection = db
    connection.execute("INSERT INTO t VALUES (?)", (BIG_MARKER,))
    connection.execute("INSERT INTO t VALUES (?)", ("small " + MARKER,))
    _checkpoint(connection)
    connection.execute("PRAGMA secure_delete = OFF")
    connection.execute("DELETE FROM t WHERE x LIKE '%' || ? || '%'", (MARKER,))
    _checkpoint(connection)

    assert connection.execute("SELECT count(*) FROM t WHERE x LIKE 'MARKER%'").fetchone() == (0,)
    pages = decrypt_pages(path, key)
    free = freelist_pages(pages)
    holding = {number for number, page in enumerate(pages, 1) if _found(MARKER, page)}
    # The big row's overflow pages went to the freelist with their content...
    assert holding & free
    # ...and the small row stays in the unallocated space of a live page.
    live = [pages[n - 1] for n in holding - free]
    assert any(_found("small " + MARKER, page) for page in live)
    assert _found(MARKER, plaintext_bytes_of(path, key))


def test_frames_of_an_earlier_wal_generation_are_read_too(db: Any) -> None:
    path, key, connection = db
    connection.execute("INSERT INTO t VALUES (?)", (MARKER,))  # frame 1: page 2 with the row
    connection.execute("INSERT INTO t VALUES ('filler')")  # frame 2: page 2, row still there
    connection.execute("DELETE FROM t WHERE x = ?", (MARKER,))  # frame 3: page 2 without it
    busy, _, _ = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    assert busy == 0
    connection.execute("INSERT INTO t VALUES ('next')")  # the log restarts: overwrites frame 1

    frames = _wal_pages(path, key)
    assert len(frames) == 3
    assert [_found(MARKER, page) for _, page in frames] == [False, True, False]
    assert not _found(MARKER, b"".join(decrypt_pages(path, key)))  # the file itself is clean
    assert _found(MARKER, plaintext_bytes_of(path, key))


def test_a_rollback_journal_is_refused_rather_than_skipped(db: Any) -> None:
    path, key, _ = db
    path.with_name(path.name + "-journal").write_bytes(b"\x00" * 512)
    with pytest.raises(ForensicError, match="journal"):
        plaintext_bytes_of(path, key)


# --- an entrenous store, read from outside -----------------------------------------------------


@pytest.mark.req("STO-01", "STO-07")
def test_an_entrenous_store_decrypts_bodies_stay_sealed_labels_are_clear(tmp_path: Path) -> None:
    body, label = "MARKER-BODY-2f9a secret advice", "MARKER-LABEL"
    bank_key, customer_key = os.urandom(32), os.urandom(32)
    bank_path, customer_path = tmp_path / "bank.db", tmp_path / "customer.db"
    bank = Client.open(bank_path, key=bank_key)
    customer = Client.open(customer_path, key=customer_key)
    try:
        conversation = bank.start_conversation(customer.prekey_bundle(), peer=label)
        received = customer.receive(conversation.send(body))
        assert received.message.text == body
        for path, key in ((bank_path, bank_key), (customer_path, customer_key)):
            assert _wal(path).exists()  # read while open: pages in the file and in the WAL
            _check_store(path, key, body)
        assert _found(label, plaintext_bytes_of(bank_path, bank_key))
    finally:
        bank.close()
        customer.close()
    for path, key in ((bank_path, bank_key), (customer_path, customer_key)):
        assert not _wal(path).exists()
        _check_store(path, key, body)
    assert _found(label, plaintext_bytes_of(bank_path, bank_key))
    assert not _found(label, plaintext_bytes_of(customer_path, customer_key))


def _check_store(path: Path, key: bytes, body: str) -> None:
    """Every page of the store and its key file decrypts; the body is nowhere in clear."""
    pages = decrypt_pages(path, key)
    assert len(pages) == path.stat().st_size // PAGE_SIZE
    plain = plaintext_bytes_of(path, key)
    assert b"entrenous-store" in plain
    assert not _found(body, plain)
    assert not _found(body, raw_bytes_of(store_files(path)))

    key_file = path.with_name(path.name + ".keys")
    file_key = key_file_key_independent(key)
    keys_plain = plaintext_bytes_of(key_file, file_key)
    assert b"entrenous-data-keys" in keys_plain
    assert not _found(body, keys_plain)
    # The reader decrypted the real data keys: the ones SQLCipher returns are in its output.
    with closing(sqlcipher.connect(str(key_file))) as raw:
        raw.execute(f"PRAGMA key = \"x'{file_key.hex()}'\"")
        data_keys = [bytes(row[0]) for row in raw.execute("SELECT key FROM data_keys")]
    assert data_keys
    assert all(data_key in keys_plain for data_key in data_keys)
