"""A store holding a value of the wrong type in a column raises StoreCorrupt (STO-10).

SQLite does not enforce declared column types, so a store damaged or edited by someone holding
its key can hold an integer where a BLOB belongs, text where an integer belongs. Found by the
store fuzz target (fuzz/targets/fuzz_store.py, the plain-image mode): the store used to turn such
values into builtin ``TypeError`` / ``ValueError`` and, for an integer where a BLOB belongs,
into a zero-filled allocation of that many bytes (``bytes(3_000_000_000)``). The kept inputs are
in fuzz/regressions/store/.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from store_support import Template, raw_store

from entrenous import Client
from entrenous.errors import StoreCorrupt

#: Each edit runs on a copy of a real store (one conversation, three messages), with its key.
OPEN_CASES = {
    "format is a huge integer (was a 3 GB allocation)": (
        "UPDATE store_meta SET value = 3000000000 WHERE name = 'format'"
    ),
    "format is a negative integer": "UPDATE store_meta SET value = -1 WHERE name = 'format'",
    "format is text": "UPDATE store_meta SET value = 'entrenous-store' WHERE name = 'format'",
    "store id is an integer": "UPDATE store_meta SET value = 16 WHERE name = 'store_id'",
    "identity is text": "UPDATE secrets SET value = 'x'",
    "applied policy is a float": (
        "INSERT INTO store_meta (name, value) VALUES ('policy', 1.5) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
    ),
    "pending shred generation is text": (
        "INSERT INTO pending_shreds VALUES (x'00112233445566778899aabbccddeeff', 'x')"
    ),
    "message expiry is text": "UPDATE messages SET expires_at = 'soon'",
}


def _edited(template: Template, tmp_path: Path, sql: str) -> Path:
    store = template.copy_to(tmp_path / "copy")
    assert template.key is not None
    with raw_store(store, template.key) as connection:
        connection.execute("PRAGMA ignore_check_constraints = ON")
        connection.execute(sql)
    return store


@pytest.mark.req("STO-10")
@pytest.mark.parametrize("sql", OPEN_CASES.values(), ids=OPEN_CASES.keys())
def test_open_refuses_a_value_of_the_wrong_type(
    raw_template: Template, tmp_path: Path, sql: str
) -> None:
    store = _edited(raw_template, tmp_path, sql)
    with pytest.raises(StoreCorrupt):
        Client.open(store, key=raw_template.key).close()


READ_CASES = {
    "conversation state is text": "UPDATE conversations SET state = 'abc'",
    "conversation category is a blob": "UPDATE conversations SET category = x'00'",
    "conversation peer is a blob": "UPDATE conversations SET peer = x'ff00'",
}


@pytest.mark.req("STO-10")
@pytest.mark.parametrize("sql", READ_CASES.values(), ids=READ_CASES.keys())
def test_reading_conversations_refuses_a_value_of_the_wrong_type(
    raw_template: Template, tmp_path: Path, sql: str
) -> None:
    store = _edited(raw_template, tmp_path, sql)
    with Client.open(store, key=raw_template.key) as client, pytest.raises(StoreCorrupt):
        client.conversations()


@pytest.mark.req("STO-10")
@pytest.mark.parametrize(
    "sql",
    ["UPDATE messages SET sent_at = 'then'", "UPDATE messages SET direction = 7"],
    ids=["sent_at is text", "direction is out of range"],
)
def test_history_refuses_a_value_of_the_wrong_type(
    raw_template: Template, tmp_path: Path, sql: str
) -> None:
    store = _edited(raw_template, tmp_path, sql)
    with Client.open(store, key=raw_template.key) as client:
        (conversation,) = client.conversations()
        with pytest.raises(StoreCorrupt):
            conversation.history(limit=10)


@pytest.mark.req("STO-10")
def test_an_integer_format_allocates_nothing_of_its_size(
    raw_template: Template, tmp_path: Path
) -> None:
    store = _edited(raw_template, tmp_path, OPEN_CASES[next(iter(OPEN_CASES))])
    tracemalloc.start()
    try:
        with pytest.raises(StoreCorrupt):
            Client.open(store, key=raw_template.key).close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


@pytest.mark.req("STO-10")
def test_text_that_is_not_utf8_raises_store_corrupt(raw_template: Template, tmp_path: Path) -> None:
    """A TEXT value that is not UTF-8 was reported as ``StoreError("the store failed (Could not
    decode to UTF-8 column ... with text '...')")``, quoting the value; now StoreCorrupt, without
    it."""
    store = _edited(
        raw_template,
        tmp_path,
        "INSERT INTO pending_shreds VALUES (x'00112233445566778899aabbccddeeff', "
        "CAST(x'96' AS TEXT))",
    )
    with pytest.raises(StoreCorrupt) as refused:
        Client.open(store, key=raw_template.key).close()
    assert "with text" not in str(refused.value)


@pytest.mark.req("STO-10")
def test_a_schema_that_is_not_utf8_raises_store_corrupt(
    raw_template: Template, tmp_path: Path
) -> None:
    """Found by the store fuzz target (fuzz/regressions/store/schema-type-not-utf8): one byte
    of a declared column type changed to 0x96 made opening raise UnicodeDecodeError."""
    store = raw_template.copy_to(tmp_path / "copy")
    assert raw_template.key is not None
    with raw_store(store, raw_template.key) as connection:
        connection.text_factory = bytes
        (sql,) = connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'pending_shreds'"
        ).fetchone()
        damaged = sql.replace(b"below_generation INTEGER", b"below_generation I\x96TEGER")
        assert damaged != sql
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute(
            "UPDATE sqlite_master SET sql = CAST(? AS TEXT) WHERE name = 'pending_shreds'",
            (damaged,),
        )
    with pytest.raises(StoreCorrupt):
        Client.open(store, key=raw_template.key).close()
