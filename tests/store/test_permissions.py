"""Every store file is created 0600, whatever the umask (STO-06)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import PASSPHRASE, open_pair

from entrenous import Client


@pytest.fixture(params=[0o000, 0o022], ids=["umask-000", "umask-022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """A permissive umask must not loosen the modes: the library sets them itself."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir() if p.is_file()}


@pytest.mark.req("STO-06")
def test_every_file_is_owner_only_while_open_and_after_close(umask: int, tmp_path: Path) -> None:
    pair = open_pair(tmp_path)
    try:
        pair.bank_conv.send("x")
        open_modes = modes(tmp_path)
        for store in ("bank.db", "customer.db"):
            for suffix in ("", ".keys", ".lock", "-wal", "-shm"):
                assert store + suffix in open_modes, store + suffix
    finally:
        pair.close()
    assert open_modes == dict.fromkeys(open_modes, 0o600), open_modes
    closed_modes = modes(tmp_path)
    assert closed_modes == dict.fromkeys(closed_modes, 0o600), closed_modes


@pytest.mark.req("STO-06", "STO-11")
def test_passphrase_store_files_are_owner_only(umask: int, tmp_path: Path) -> None:
    with Client.open(tmp_path / "p.db", passphrase=PASSPHRASE) as client:
        client.prekey_bundle()
        found = modes(tmp_path)
    assert set(found) >= {"p.db", "p.db.keys", "p.db.kdf", "p.db.lock", "p.db-wal", "p.db-shm"}
    assert found == dict.fromkeys(found, 0o600), found
    assert not (tmp_path / "p.db.kdf.tmp").exists()


@pytest.mark.req("STO-06")
def test_the_key_file_journal_is_owner_only(umask: int, tmp_path: Path) -> None:
    """The data-key file's rollback journal exists only during a write: look at it then."""
    with Client.open(tmp_path / "s.db", key=os.urandom(32)) as client:
        keys = client._store._keys._connection
        keys.execute("BEGIN IMMEDIATE")
        try:
            keys.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (bytes(16), 0, bytes(32)))
            during = modes(tmp_path)
        finally:
            keys.execute("ROLLBACK")
    assert "s.db.keys-journal" in during
    assert during == dict.fromkeys(during, 0o600), during
