"""Message bodies are encrypted a second time under a per-conversation data key (STO-07).

The bodies are opened here with ``cryptography``'s ChaCha20-Poly1305, the data key read from the
data-key file with plain sqlcipher3, and the associated data built as spec/store.md says, so the
test checks the documented construction and not merely that the library can read its own data.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from store_support import (
    BODY_LABEL,
    Pair,
    key_file,
    open_pair,
    raw_store,
    spec_key_file_key,
    tables,
)

from entrenous import Client
from entrenous.errors import StoreCorrupt
from entrenous.payload import decode


def marker() -> str:
    return f"MARKER-{uuid.uuid4().hex}"


def every_value(dump: dict[str, list[tuple[Any, ...]]]) -> list[bytes]:
    out: list[bytes] = []
    for rows in dump.values():
        for row in rows:
            for value in row:
                if isinstance(value, bytes):
                    out.append(value)
                elif isinstance(value, str):
                    out.append(value.encode())
    return out


def data_keys(store: Path, store_key: bytes) -> dict[bytes, bytes]:
    with raw_store(key_file(store), spec_key_file_key(store_key)) as keys:
        return {
            bytes(uid): bytes(key)
            for uid, key in keys.execute("SELECT conversation_uid, key FROM data_keys")
        }


def message_rows(store: Path, store_key: bytes) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(conversation uid, message uid, nonce, body) of every message, oldest first."""
    with raw_store(store, store_key) as db:
        return [
            (bytes(c), bytes(m), bytes(n), bytes(b))
            for c, m, n, b in db.execute(
                "SELECT c.uid, m.uid, m.nonce, m.body FROM messages AS m "
                "JOIN conversations AS c ON c.id = m.conversation_id ORDER BY m.id"
            )
        ]


@pytest.fixture
def pair(tmp_path: Path) -> Any:
    opened = open_pair(tmp_path)
    yield opened
    opened.close()


@pytest.mark.req("STO-07")
def test_no_plaintext_in_any_file_while_open_or_after_close(pair: Pair, tmp_path: Path) -> None:
    text, key_text = marker(), marker()
    pair.customer.receive(pair.bank_conv.send(text))
    pair.customer.receive(pair.bank_conv.send({key_text: [key_text]}))
    needles = [text.encode(), key_text.encode()]
    assert (tmp_path / "bank.db-wal").stat().st_size > 0  # the WAL holds the new frames
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), path.name
    pair.close()
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), path.name


@pytest.mark.req("STO-07")
def test_inside_the_decrypted_database_bodies_are_still_ciphertext(pair: Pair) -> None:
    text = marker()
    pair.customer.receive(pair.bank_conv.send(text))
    pair.close()
    for path, key in ((pair.bank_path, pair.bank_key), (pair.customer_path, pair.customer_key)):
        with raw_store(path, key) as db:
            values = every_value(tables(db))
        assert values
        assert not any(text.encode() in value for value in values), path.name


@pytest.mark.req("STO-07")
def test_bodies_open_with_the_conversation_data_key_as_specified(pair: Pair) -> None:
    text = marker()
    pair.customer.receive(pair.bank_conv.send(text))
    pair.close()
    keys = data_keys(pair.bank_path, pair.bank_key)
    rows = message_rows(pair.bank_path, pair.bank_key)
    assert len(rows) == 3
    contents = []
    for conversation_uid, message_uid, nonce, body in rows:
        plain = ChaCha20Poly1305(keys[conversation_uid]).decrypt(
            nonce, body, BODY_LABEL + conversation_uid + message_uid
        )
        payload = decode(plain)
        assert payload.message_id == message_uid
        contents.append(payload.content)
    assert contents == ["hello", "hello back", text]
    assert len({nonce for _, _, nonce, _ in rows}) == len(rows)


@pytest.mark.req("STO-07")
def test_each_conversation_has_its_own_data_key(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "third.db", key=os.urandom(32)) as third:
        pair.bank.receive(third.start_conversation(pair.bank.prekey_bundle()).send("hi"))
    pair.close()
    keys = data_keys(pair.bank_path, pair.bank_key)
    assert len(keys) == 2
    assert len(set(keys.values())) == 2
    with raw_store(pair.bank_path, pair.bank_key) as db:
        uids = {bytes(row[0]) for row in db.execute("SELECT uid FROM conversations")}
    assert set(keys) == uids
    # The data keys are not in the store file's tables (they live in the data-key file only).
    with raw_store(pair.bank_path, pair.bank_key) as db:
        values = every_value(tables(db))
    assert not any(k in v for k in keys.values() for v in values)


# --- bodies moved around are refused -------------------------------------------------------------


def _tamper(path: Path, key: bytes, *statements: tuple[str, tuple[object, ...]]) -> None:
    with raw_store(path, key) as db:
        db.execute("BEGIN")
        for sql, params in statements:
            db.execute(sql, params)
        db.execute("COMMIT")


@pytest.mark.req("STO-07")
def test_swapped_bodies_raise_store_corrupt(pair: Pair) -> None:
    pair.bank_conv.send("third")
    pair.close()
    rows = message_rows(pair.bank_path, pair.bank_key)
    (_, uid_a, nonce_a, body_a), (_, uid_b, nonce_b, body_b) = rows[0], rows[1]
    update = "UPDATE messages SET nonce = ?, body = ? WHERE uid = ?"
    _tamper(
        pair.bank_path,
        pair.bank_key,
        (update, (nonce_b, body_b, uid_a)),
        (update, (nonce_a, body_a, uid_b)),
    )
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:
        conversation = bank.conversations()[0]
        assert len(conversation.history(limit=1)) == 1  # the untouched newest one still reads
        with pytest.raises(StoreCorrupt):
            conversation.history(limit=50)


@pytest.mark.req("STO-07")
def test_a_body_moved_to_another_conversation_raises_store_corrupt(
    pair: Pair, tmp_path: Path
) -> None:
    with Client.open(tmp_path / "third.db", key=os.urandom(32)) as third:
        pair.bank.receive(third.start_conversation(pair.bank.prekey_bundle()).send("other"))
    pair.close()
    rows = message_rows(pair.bank_path, pair.bank_key)
    source, target = rows[0], rows[-1]
    assert source[0] != target[0]
    _tamper(
        pair.bank_path,
        pair.bank_key,
        (
            "UPDATE messages SET nonce = ?, body = ? WHERE uid = ?",
            (source[2], source[3], target[1]),
        ),
    )
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:
        moved_to = bank.conversation(target[0].hex())
        with pytest.raises(StoreCorrupt):
            moved_to.history()
        assert len(bank.conversation(source[0].hex()).history()) == 2


@pytest.mark.req("STO-07")
def test_a_renamed_message_raises_store_corrupt(pair: Pair) -> None:
    pair.close()
    rows = message_rows(pair.bank_path, pair.bank_key)
    _tamper(
        pair.bank_path,
        pair.bank_key,
        ("UPDATE messages SET uid = ? WHERE uid = ?", (os.urandom(16), rows[0][1])),
    )
    with Client.open(pair.bank_path, key=pair.bank_key) as bank, pytest.raises(StoreCorrupt):
        bank.conversations()[0].history()


@pytest.mark.req("STO-07")
def test_a_flipped_body_bit_raises_store_corrupt(pair: Pair) -> None:
    pair.close()
    rows = message_rows(pair.bank_path, pair.bank_key)
    body = bytearray(rows[0][3])
    body[len(body) // 2] ^= 0x01
    _tamper(
        pair.bank_path,
        pair.bank_key,
        ("UPDATE messages SET body = ? WHERE uid = ?", (bytes(body), rows[0][1])),
    )
    with Client.open(pair.bank_path, key=pair.bank_key) as bank, pytest.raises(StoreCorrupt):
        bank.conversations()[0].history()


@pytest.mark.req("STO-07")
def test_swapped_data_keys_raise_store_corrupt(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "third.db", key=os.urandom(32)) as third:
        pair.bank.receive(third.start_conversation(pair.bank.prekey_bundle()).send("other"))
    pair.close()
    keys = data_keys(pair.bank_path, pair.bank_key)
    (uid_a, key_a), (uid_b, key_b) = keys.items()
    update = "UPDATE data_keys SET key = ? WHERE conversation_uid = ?"
    _tamper(
        key_file(pair.bank_path),
        spec_key_file_key(pair.bank_key),
        (update, (key_b, uid_a)),
        (update, (key_a, uid_b)),
    )
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:
        for uid in (uid_a, uid_b):
            with pytest.raises(StoreCorrupt):
                bank.conversation(uid.hex()).history()


@pytest.mark.req("STO-07")
def test_a_missing_data_key_raises_store_corrupt(pair: Pair) -> None:
    pair.close()
    _tamper(
        key_file(pair.bank_path), spec_key_file_key(pair.bank_key), ("DELETE FROM data_keys", ())
    )
    with Client.open(pair.bank_path, key=pair.bank_key) as bank, pytest.raises(StoreCorrupt):
        bank.conversations()[0].history()
