"""Opening a store that is not ours, or with the wrong secret, raises a typed StoreError and
changes nothing on disk (STO-02, STO-03, STO-10).

Each case copies a template store into ``tmp_path``, damages it, snapshots every file in the
directory (bytes and mtime), attempts the open and compares: only the (empty) lock file may
appear. ``pytest.raises`` with the exact class also proves no other exception escapes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from store_support import (
    PASSPHRASE,
    Template,
    assert_unchanged,
    kdf_file,
    key_file,
    raw_store,
    snapshot,
    spec_key_file_key,
)

from entrenous import Client
from entrenous.errors import SchemaTooNew, StoreCorrupt, StoreError, WrongKey
from entrenous.store import migrations
from entrenous.store.migrations import KEY_FILE_LATEST, LATEST


@dataclass(frozen=True)
class Case:
    template: str  # "raw" or "passphrase"
    damage: Callable[[Path, Template], None]
    expected: type[StoreError]
    key: str = "right"  # "right", "wrong", "passphrase", "wrong passphrase"


def _nothing(store: Path, template: Template) -> None:
    pass


def _replace(data: Callable[[Path], bytes]) -> Callable[[Path, Template], None]:
    def damage(store: Path, template: Template) -> None:
        store.write_bytes(data(store))

    return damage


def _plain_sqlite(store: Path, template: Template) -> None:
    store.unlink()
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY)")
    db.commit()
    db.close()


def _remove_key_file(store: Path, template: Template) -> None:
    key_file(store).unlink()


def _foreign_key_file(store: Path, template: Template) -> None:
    shutil.copyfile(key_file(store.with_name("other.db")), key_file(store))


def _kdf_text(text: str) -> Callable[[Path, Template], None]:
    def damage(store: Path, template: Template) -> None:
        kdf_file(store).write_text(text, encoding="utf-8")

    return damage


def _kdf_change(**changes: object) -> Callable[[Path, Template], None]:
    def damage(store: Path, template: Template) -> None:
        params = json.loads(kdf_file(store).read_text(encoding="utf-8"))
        params.update(changes)
        kdf_file(store).write_text(json.dumps(params), encoding="utf-8")

    return damage


def _kdf_bytes(store: Path, template: Template) -> None:
    kdf_file(store).write_bytes(b"\xff\xfe{not utf-8")


CASES: dict[str, Case] = {
    # STO-02: wrong secrets
    "wrong raw key": Case("raw", _nothing, WrongKey, key="wrong"),
    "wrong passphrase": Case("passphrase", _nothing, WrongKey, key="wrong passphrase"),
    "passphrase on a raw-key store (no .kdf)": Case("raw", _nothing, StoreCorrupt, "passphrase"),
    "raw key on a passphrase store": Case("passphrase", _nothing, WrongKey, key="wrong"),
    # STO-10: files that are not (or no longer) an entrenous store
    "empty file": Case("raw", _replace(lambda p: b""), StoreCorrupt),
    "plain SQLite file": Case("raw", _plain_sqlite, StoreCorrupt),
    "random 4096 bytes": Case("raw", _replace(lambda p: os.urandom(4096)), WrongKey),
    "random 8192 bytes": Case("raw", _replace(lambda p: os.urandom(8192)), WrongKey),
    "random 1000 bytes": Case("raw", _replace(lambda p: os.urandom(1000)), StoreCorrupt),
    "cut inside a page": Case("raw", _replace(lambda p: p.read_bytes()[:5000]), StoreCorrupt),
    "data-key file deleted": Case("raw", _remove_key_file, StoreCorrupt),
    "data-key file of another store": Case("raw", _foreign_key_file, StoreCorrupt),
    "kdf: not JSON": Case("passphrase", _kdf_text("{salt:"), StoreCorrupt, "passphrase"),
    "kdf: not UTF-8": Case("passphrase", _kdf_bytes, StoreCorrupt, "passphrase"),
    "kdf: a list": Case("passphrase", _kdf_text("[1, 2]"), StoreCorrupt, "passphrase"),
    "kdf: empty": Case("passphrase", _kdf_text(""), StoreCorrupt, "passphrase"),
    "kdf: salt too short": Case(
        "passphrase", _kdf_change(salt="00" * 8), StoreCorrupt, "passphrase"
    ),
    "kdf: salt not hex": Case(
        "passphrase", _kdf_change(salt="zz" * 16), StoreCorrupt, "passphrase"
    ),
    "kdf: absurd opslimit": Case(
        "passphrase", _kdf_change(opslimit=2**40), StoreCorrupt, "passphrase"
    ),
    "kdf: absurd memlimit": Case(
        "passphrase", _kdf_change(memlimit=2**50), StoreCorrupt, "passphrase"
    ),
    "kdf: opslimit zero": Case("passphrase", _kdf_change(opslimit=0), StoreCorrupt, "passphrase"),
    "kdf: opslimit a string": Case(
        "passphrase", _kdf_change(opslimit="2"), StoreCorrupt, "passphrase"
    ),
    "kdf: opslimit true": Case(
        "passphrase", _kdf_change(opslimit=True), StoreCorrupt, "passphrase"
    ),
    "kdf: another algorithm": Case(
        "passphrase", _kdf_change(algorithm="scrypt"), StoreCorrupt, "passphrase"
    ),
    "kdf: another version": Case("passphrase", _kdf_change(version=2), StoreCorrupt, "passphrase"),
}

STO_02_CASES = {
    "wrong raw key",
    "wrong passphrase",
    "passphrase on a raw-key store (no .kdf)",
    "raw key on a passphrase store",
}


def _secret(case: Case, template: Template) -> dict[str, object]:
    if case.key == "wrong":
        return {"key": os.urandom(32)}
    if case.key == "passphrase":
        return {"passphrase": PASSPHRASE}
    if case.key == "wrong passphrase":
        return {"passphrase": PASSPHRASE + "!"}
    if template.key is not None:
        return {"key": template.key}
    return {"passphrase": template.passphrase}


E = TypeVar("E", bound=StoreError)


def _attempt(store: Path, secret: dict[str, object], expected: type[E]) -> pytest.ExceptionInfo[E]:
    before = snapshot(store.parent)
    with pytest.raises(expected) as caught:
        Client.open(store, **secret)  # type: ignore[arg-type]
    assert_unchanged(before, snapshot(store.parent), may_appear=(store.name + ".lock",))
    return caught


def _check_case(name: str, raw: Template, passphrase: Template, tmp_path: Path) -> None:
    case = CASES[name]
    assert issubclass(case.expected, StoreError)
    template = raw if case.template == "raw" else passphrase
    store = template.copy_to(tmp_path)
    case.damage(store, template)
    _attempt(store, _secret(case, template), case.expected)


@pytest.mark.req("STO-02", "STO-10")
@pytest.mark.parametrize("name", sorted(STO_02_CASES))
def test_a_wrong_secret_raises_and_nothing_changes(
    name: str, raw_template: Template, passphrase_template: Template, tmp_path: Path
) -> None:
    _check_case(name, raw_template, passphrase_template, tmp_path)


@pytest.mark.req("STO-10")
@pytest.mark.parametrize("name", [n for n in CASES if n not in STO_02_CASES])
def test_a_file_that_is_not_a_store_raises_and_nothing_changes(
    name: str, raw_template: Template, passphrase_template: Template, tmp_path: Path
) -> None:
    _check_case(name, raw_template, passphrase_template, tmp_path)


#: Truncations at a page boundary pass the size check; SQLCipher then finds page 1 intact and
#: later pages missing (SQLITE_CORRUPT), which a wrong key never produces (SQLITE_NOTADB).
TRUNCATIONS: dict[str, Callable[[int], int]] = {
    "half": lambda size: size // 2,
    "first page only": lambda size: 4096,
    "all but the last page": lambda size: size - 4096,
}


@pytest.mark.req("STO-10")
@pytest.mark.parametrize("cut", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
def test_a_truncated_store_raises_a_store_error_and_changes_nothing(
    cut: Callable[[int], int], raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    data = store.read_bytes()
    assert len(data) >= 3 * 4096
    store.write_bytes(data[: cut(len(data))])
    _attempt(store, {"key": raw_template.key}, StoreError)


@pytest.mark.req("STO-10")
@pytest.mark.parametrize("cut", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
def test_a_truncated_store_is_reported_corrupt_not_wrong_key(
    cut: Callable[[int], int], raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    data = store.read_bytes()
    store.write_bytes(data[: cut(len(data))])
    _attempt(store, {"key": raw_template.key}, StoreCorrupt)


@pytest.mark.req("STO-10")
def test_data_key_file_of_another_store_with_the_same_key(tmp_path: Path) -> None:
    """Same store key, so the file decrypts: the store id inside it must still be checked."""
    key = os.urandom(32)
    with Client.open(tmp_path / "a.db", key=key), Client.open(tmp_path / "b.db", key=key):
        pass
    shutil.copyfile(key_file(tmp_path / "b.db"), key_file(tmp_path / "a.db"))
    caught = _attempt(tmp_path / "a.db", {"key": key}, StoreCorrupt)
    assert "another store" in str(caught.value)


@pytest.mark.req("STO-10")
def test_sqlcipher_database_of_another_kind_with_the_same_key(tmp_path: Path) -> None:
    key = os.urandom(32)
    with raw_store(tmp_path / "s.db", key) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES ('x')")
    _attempt(tmp_path / "s.db", {"key": key}, StoreCorrupt)


@pytest.mark.req("STO-10")
def test_keyed_file_without_schema_is_refused_without_writing(tmp_path: Path) -> None:
    key = os.urandom(32)
    with raw_store(tmp_path / "s.db", key) as db:
        db.execute("PRAGMA journal_mode = WAL")  # page 1 written, no schema
    _attempt(tmp_path / "s.db", {"key": key}, StoreCorrupt)


@pytest.mark.req("STO-10")
def test_orphan_data_key_file_without_store_is_refused(
    raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    store.unlink()
    _attempt(store, {"key": raw_template.key}, StoreCorrupt)


@pytest.mark.req("STO-10")
def test_orphan_data_key_file_without_store_is_refused_with_a_passphrase(
    passphrase_template: Template, tmp_path: Path
) -> None:
    store = passphrase_template.copy_to(tmp_path)
    store.unlink()
    kdf_file(store).unlink()
    _attempt(store, {"passphrase": PASSPHRASE}, StoreCorrupt)


@pytest.mark.req("STO-02")
def test_after_a_wrong_key_the_right_key_still_opens(
    raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    with pytest.raises(WrongKey):
        Client.open(store, key=os.urandom(32))
    with Client.open(store, key=raw_template.key) as client:
        assert len(client.conversations()[0].history()) == 3


# --- STO-03: a schema from the future -------------------------------------------------------------


@pytest.mark.req("STO-03")
def test_newer_store_schema_is_refused_before_anything_is_written(
    raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    assert raw_template.key is not None
    with raw_store(store, raw_template.key) as db:
        db.execute(f"PRAGMA user_version = {LATEST + 1}")
    caught = _attempt(store, {"key": raw_template.key}, SchemaTooNew)
    assert (caught.value.found, caught.value.supported) == (LATEST + 1, LATEST)
    with raw_store(store, raw_template.key) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST + 1


@pytest.mark.req("STO-03")
def test_newer_data_key_file_schema_is_refused_before_anything_is_written(
    raw_template: Template, tmp_path: Path
) -> None:
    store = raw_template.copy_to(tmp_path)
    assert raw_template.key is not None
    with raw_store(key_file(store), spec_key_file_key(raw_template.key)) as db:
        db.execute(f"PRAGMA user_version = {KEY_FILE_LATEST + 1}")
    caught = _attempt(store, {"key": raw_template.key}, SchemaTooNew)
    assert caught.value.found == KEY_FILE_LATEST + 1


@pytest.mark.req("STO-03")
def test_store_written_by_newer_code_is_refused_by_older_code(
    raw_template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check seen from the other side: code whose LATEST is lower than the store's."""
    store = raw_template.copy_to(tmp_path)
    monkeypatch.setattr(migrations, "LATEST", LATEST - 1)
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:-1])
    _attempt(store, {"key": raw_template.key}, SchemaTooNew)
