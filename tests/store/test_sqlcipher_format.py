"""The store on disk is standard SQLCipher 4, readable outside the library (spec/store.md).

Every check here opens the files with plain ``sqlcipher3`` and keys derived from spec/store.md by
``cryptography`` / libsodium directly: the library's own key handling is not trusted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nacl.pwhash
import pytest
from sqlcipher3 import dbapi2 as sqlcipher
from store_support import (
    PASSPHRASE,
    Template,
    kdf_file,
    key_file,
    open_pair,
    raw_connect,
    raw_store,
    spec_key_file_key,
)

from entrenous import Client
from entrenous.errors import WrongKey
from entrenous.store.migrations import LATEST


@pytest.mark.req("STO-01")
def test_plain_sqlcipher3_reads_every_table_with_the_raw_key(tmp_path: Path) -> None:
    pair = open_pair(tmp_path)
    conversation_id = pair.bank_conv.id
    customer_identity = pair.customer.identity.to_bytes()
    pair.close()

    with raw_store(pair.bank_path, pair.bank_key) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST
        meta = dict(db.execute("SELECT name, value FROM store_meta").fetchall())
        assert bytes(meta["format"]) == b"entrenous-store"
        assert len(bytes(meta["store_id"])) == 16
        conversations = db.execute(
            "SELECT uid, session_id, peer_identity, peer FROM conversations"
        ).fetchall()
        assert [(bytes(c[0]).hex(), bytes(c[2]), c[3]) for c in conversations] == [
            (conversation_id, customer_identity, None)
        ]
        assert len(bytes(conversations[0][1])) == 16
        messages = db.execute(
            "SELECT direction, length(uid), length(nonce) FROM messages ORDER BY id"
        ).fetchall()
        assert messages == [(1, 16, 12), (0, 16, 12)]  # received "hello", sent "hello back"
        secrets = {row[0] for row in db.execute("SELECT name FROM secrets")}
        assert secrets == {"identity", "prekeys"}

    # The data-key file opens the same way, with HKDF(K) as spec/store.md defines it.
    with raw_store(key_file(pair.bank_path), spec_key_file_key(pair.bank_key)) as keys:
        meta_keys = dict(keys.execute("SELECT name, value FROM key_file_meta").fetchall())
        assert bytes(meta_keys["format"]) == b"entrenous-data-keys"
        assert bytes(meta_keys["store_id"]) == bytes(meta["store_id"])
        rows = keys.execute("SELECT conversation_uid, length(key) FROM data_keys").fetchall()
        assert [(bytes(uid).hex(), size) for uid, size in rows] == [(conversation_id, 32)]


@pytest.mark.req("STO-01")
def test_plain_sqlcipher3_reads_the_store_while_the_client_has_it_open(tmp_path: Path) -> None:
    pair = open_pair(tmp_path)
    try:
        pair.bank_conv.send("committed before send returned")
        with raw_store(pair.bank_path, pair.bank_key) as db:
            assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    finally:
        pair.close()


@pytest.mark.req("STO-01")
def test_the_store_is_sqlcipher_4_and_not_3(raw_template: Template, tmp_path: Path) -> None:
    store = raw_template.copy_to(tmp_path)
    assert raw_template.key is not None
    with raw_store(store, raw_template.key) as db:
        assert db.execute("PRAGMA cipher_page_size").fetchone()[0] == "4096"
        assert db.execute("PRAGMA cipher_hmac_algorithm").fetchone()[0] == "HMAC_SHA512"
        assert db.execute("SELECT count(*) FROM conversations").fetchone()[0] == 1
    explicit = sqlcipher.connect(str(store), isolation_level=None)
    try:
        explicit.execute(f"PRAGMA key = \"x'{raw_template.key.hex()}'\"")
        explicit.execute("PRAGMA cipher_compatibility = 4")
        assert explicit.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    finally:
        explicit.close()
    legacy = sqlcipher.connect(str(store), isolation_level=None)
    try:
        legacy.execute(f"PRAGMA key = \"x'{raw_template.key.hex()}'\"")
        legacy.execute("PRAGMA cipher_compatibility = 3")
        with pytest.raises(sqlcipher.DatabaseError):
            legacy.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        legacy.close()


@pytest.mark.req("STO-01")
def test_the_raw_key_is_used_as_is_not_as_a_passphrase(
    raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    assert raw_template.key is not None
    db = sqlcipher.connect(str(store), isolation_level=None)
    try:
        # The same 64 hex digits as a *passphrase* (PBKDF2) must not open it.
        db.execute(f"PRAGMA key = '{raw_template.key.hex()}'")
        with pytest.raises(sqlcipher.DatabaseError):
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        db.close()


# --- STO-08: PRAGMAs ------------------------------------------------------------------------------


@pytest.mark.req("STO-08")
def test_store_journal_mode_is_wal_on_disk_and_key_file_is_delete(
    raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    assert raw_template.key is not None
    with raw_store(store, raw_template.key) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with raw_store(key_file(store), spec_key_file_key(raw_template.key)) as keys:
        assert keys.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.req("STO-08")
def test_connection_pragmas_of_an_open_client(tmp_path: Path) -> None:
    with Client.open(tmp_path / "s.db", key=os.urandom(32)) as client:
        store = client._store._connection
        assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert store.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        keys = client._store._keys._connection
        assert keys.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert keys.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert keys.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert not (tmp_path / "s.db.keys-wal").exists()


@pytest.mark.req("STO-08")
def test_pragmas_are_set_again_on_reopen(raw_template: Template, tmp_path: Path) -> None:
    """synchronous, secure_delete and foreign_keys are per connection: each open sets them."""
    store = raw_template.copy_to(tmp_path)
    with Client.open(store, key=raw_template.key) as client:
        connection = client._store._connection
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert connection.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        # foreign_keys is enforced: a message of no conversation is refused.
        with pytest.raises(sqlcipher.IntegrityError):
            connection.execute(
                "INSERT INTO messages (conversation_id, uid, direction, sent_at, nonce, body) "
                "VALUES (999, ?, 0, 0, ?, x'00')",
                (bytes(16), bytes(12)),
            )


# --- STO-11: passphrases --------------------------------------------------------------------------


def _kdf_params(store: Path) -> dict[str, object]:
    data = json.loads(kdf_file(store).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.req("STO-11", "STO-01")
def test_passphrase_is_stretched_with_argon2id_and_parameters_are_in_the_kdf_file(
    passphrase_template: Template, tmp_path: Path
) -> None:
    store = passphrase_template.copy_to(tmp_path)
    params = _kdf_params(store)
    assert params["algorithm"] == "argon2id"
    assert params["format"] == "entrenous-kdf"
    assert params["version"] == 1
    assert params["opslimit"] == nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    assert params["memlimit"] == nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
    assert isinstance(params["salt"], str)
    salt = bytes.fromhex(params["salt"])
    assert len(salt) == nacl.pwhash.argon2id.SALTBYTES

    derived = nacl.pwhash.argon2id.kdf(
        32,
        PASSPHRASE.encode(),
        salt,
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    )
    with raw_store(store, derived) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    with raw_store(key_file(store), spec_key_file_key(derived)) as keys:
        assert keys.execute("SELECT count(*) FROM data_keys").fetchone()[0] == 1


@pytest.mark.req("STO-11")
def test_each_passphrase_store_gets_its_own_salt(
    passphrase_template: Template, tmp_path: Path
) -> None:
    with Client.open(tmp_path / "second.db", passphrase=PASSPHRASE):
        pass
    first = _kdf_params(passphrase_template.directory / "store.db")["salt"]
    assert _kdf_params(tmp_path / "second.db")["salt"] != first


@pytest.mark.req("STO-11")
def test_raised_parameters_in_the_kdf_file_are_used_on_the_next_open(
    passphrase_template: Template, tmp_path: Path
) -> None:
    """Raising the costs later = rekey both files and rewrite <store>.kdf: the open reads them."""
    store = passphrase_template.copy_to(tmp_path)
    with Client.open(store, passphrase=PASSPHRASE) as client:
        identity = client.identity
    old = _kdf_params(store)
    old_key = nacl.pwhash.argon2id.kdf(
        32,
        PASSPHRASE.encode(),
        bytes.fromhex(str(old["salt"])),
        opslimit=int(str(old["opslimit"])),
        memlimit=int(str(old["memlimit"])),
    )
    new_salt = os.urandom(nacl.pwhash.argon2id.SALTBYTES)
    new_ops = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE + 1
    new_key = nacl.pwhash.argon2id.kdf(
        32,
        PASSPHRASE.encode(),
        new_salt,
        opslimit=new_ops,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    )
    for path, old_k, new_k in (
        (store, old_key, new_key),
        (key_file(store), spec_key_file_key(old_key), spec_key_file_key(new_key)),
    ):
        db = raw_connect(path, old_k)
        db.execute(f"PRAGMA rekey = \"x'{new_k.hex()}'\"")
        db.close()
    kdf_file(store).write_text(
        json.dumps({**old, "salt": new_salt.hex(), "opslimit": new_ops}), encoding="utf-8"
    )

    with Client.open(store, passphrase=PASSPHRASE) as client:
        assert client.identity == identity
        assert len(client.conversations()[0].history()) == 3
    # And the old parameters no longer open it: the file is what counts.
    kdf_file(store).write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(WrongKey):
        Client.open(store, passphrase=PASSPHRASE)
