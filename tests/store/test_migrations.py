"""Schema migrations (STO-04), in the manner of sqlite-utils' and Signal's migration tests.

Each migration is applied to a fresh SQLCipher database up to exactly its version, and the objects
it adds are compared with the list below: a new migration without an entry here fails
``test_every_migration_is_listed``. A failing migration must leave ``user_version`` and
``sqlite_master`` as they were; a rerun applies nothing twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from store_support import StatementSpy, open_pair, raw_store, snapshot, version

from entrenous import Client
from entrenous.errors import StoreError
from entrenous.store import migrations
from entrenous.store.migrations import (
    KEY_FILE_MIGRATIONS,
    LATEST,
    MIGRATIONS,
    Migration,
    migrate,
)

Objects = set[tuple[str, str]]

#: The named tables and indexes each migration adds (automatic indexes left out).
STORE_ADDS: dict[int, Objects] = {
    1: {
        ("table", "store_meta"),
        ("table", "secrets"),
        ("table", "conversations"),
        ("index", "conversations_by_peer"),
        ("index", "conversations_by_activity"),
        ("table", "messages"),
        ("index", "messages_by_conversation"),
    },
    2: {
        ("index", "conversations_by_subject"),
        ("index", "messages_by_expiry"),
        ("table", "holds"),
        ("index", "holds_active"),
        ("table", "audit_events"),
        ("table", "consent_ledger"),
        ("index", "consent_by_purpose"),
        ("table", "erasures"),
        ("table", "pending_shreds"),
    },
}
STORE_ADDS[3] = set()  # messages_by_expiry is rebuilt under the same name
#: The named tables and indexes each migration removes.
STORE_DROPS: dict[int, Objects] = {3: {("index", "conversations_by_activity")}}
KEY_FILE_ADDS: dict[int, Objects] = {
    1: {("table", "key_file_meta"), ("table", "data_keys")},
    2: set(),  # data_keys is rebuilt with a generation column: same name, nothing added
}


def objects(connection: Any) -> Objects:
    rows = connection.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex_%'"
    ).fetchall()
    return {(kind, name) for kind, name in rows}


def schema(connection: Any) -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = connection.execute(
        "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    ).fetchall()
    return rows


@pytest.fixture
def db(tmp_path: Path) -> Any:
    """A fresh, empty SQLCipher database in autocommit mode (as the store opens it)."""
    with raw_store(tmp_path / "fresh.db", os.urandom(32)) as connection:
        yield connection


@pytest.mark.req("STO-04")
@pytest.mark.parametrize(
    ("steps", "adds"), [(MIGRATIONS, STORE_ADDS), (KEY_FILE_MIGRATIONS, KEY_FILE_ADDS)]
)
def test_every_migration_is_listed(steps: tuple[Migration, ...], adds: dict[int, Objects]) -> None:
    assert [m.version for m in steps] == list(range(1, len(steps) + 1))
    assert set(adds) == {m.version for m in steps}
    assert len({m.name for m in steps}) == len(steps)


@pytest.mark.req("STO-04")
@pytest.mark.parametrize(
    ("steps", "adds", "target"),
    [pytest.param(MIGRATIONS, STORE_ADDS, m.version, id=f"store-{m.version}") for m in MIGRATIONS]
    + [
        pytest.param(KEY_FILE_MIGRATIONS, KEY_FILE_ADDS, m.version, id=f"keys-{m.version}")
        for m in KEY_FILE_MIGRATIONS
    ],
)
def test_each_migration_adds_exactly_its_objects(
    db: Any, steps: tuple[Migration, ...], adds: dict[int, Objects], target: int
) -> None:
    assert migrate(db, steps, target=target - 1) == target - 1
    before = objects(db)
    assert migrate(db, steps, target=target) == target
    assert version(db) == target
    assert objects(db) - before == adds[target]
    drops = STORE_DROPS if steps is MIGRATIONS else {}
    assert before - objects(db) == drops.get(target, set())
    assert not db.in_transaction


@pytest.mark.req("STO-04")
def test_rerunning_migrate_applies_nothing(db: Any) -> None:
    calls: list[int] = []

    def counted(step: Migration) -> Migration:
        def apply(connection: Any) -> None:
            calls.append(step.version)
            step.apply(connection)

        return Migration(step.version, step.name, apply)

    steps = tuple(counted(m) for m in MIGRATIONS)
    assert migrate(db, steps) == LATEST
    first = schema(db)
    assert migrate(db, steps) == LATEST
    assert migrate(db, steps, target=LATEST) == LATEST
    assert calls == [m.version for m in MIGRATIONS]
    assert schema(db) == first


def _failing(version: int) -> Migration:
    def apply(connection: Any) -> None:
        connection.execute("CREATE TABLE half_done (x INTEGER)")
        connection.execute("INSERT INTO half_done VALUES (1)")
        raise RuntimeError("migration failed half way")

    return Migration(version, "fails after creating a table", apply)


@pytest.mark.req("STO-04")
def test_a_failing_migration_leaves_version_and_schema_unchanged(db: Any) -> None:
    migrate(db, MIGRATIONS)
    before = schema(db)
    with pytest.raises(RuntimeError, match="half way"):
        migrate(db, (*MIGRATIONS, _failing(LATEST + 1)))
    assert version(db) == LATEST
    assert schema(db) == before
    assert not db.in_transaction


@pytest.mark.req("STO-04")
def test_after_a_failure_the_rerun_applies_each_migration_once(db: Any) -> None:
    applied: list[int] = []

    def step(number: int) -> Migration:
        def apply(connection: Any) -> None:
            applied.append(number)
            connection.execute(f"CREATE TABLE step_{number} (x INTEGER)")

        return Migration(number, f"step {number}", apply)

    with pytest.raises(RuntimeError):
        migrate(db, (step(1), _failing(2), step(3)))
    assert version(db) == 1  # step 1 committed on its own, step 2 rolled back, 3 never ran
    assert objects(db) == {("table", "step_1")}
    assert migrate(db, (step(1), step(2), step(3))) == 3
    assert migrate(db, (step(1), step(2), step(3))) == 3
    assert applied == [1, 2, 3]
    assert objects(db) == {("table", f"step_{n}") for n in (1, 2, 3)}


@pytest.mark.req("STO-04")
def test_user_version_bump_is_in_the_migration_transaction(db: Any) -> None:
    """The bump is inside BEGIN ... COMMIT with the migration's statements, not after it."""
    spy = StatementSpy(db)
    migrate(spy, MIGRATIONS)
    statements = [s.strip().upper() for s in spy.statements]
    begin = statements.index("BEGIN IMMEDIATE")
    bump = next(i for i, s in enumerate(statements) if s.startswith("PRAGMA USER_VERSION ="))
    commit = statements.index("COMMIT")
    assert begin < bump < commit
    assert statements.count("COMMIT") == len(MIGRATIONS)


@pytest.mark.req("STO-04")
def test_a_failing_migration_through_client_open_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    with Client.open(tmp_path / "s.db", key=key):
        pass
    with raw_store(tmp_path / "s.db", key) as connection:
        before_schema = schema(connection)
    before = snapshot(tmp_path)

    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, _failing(LATEST + 1)))
    monkeypatch.setattr(migrations, "LATEST", LATEST + 1)
    with pytest.raises(RuntimeError, match="half way"):
        Client.open(tmp_path / "s.db", key=key)
    assert snapshot(tmp_path) == before

    def bad_sql(connection: Any) -> None:
        connection.execute("CREATE TABLE half_done (x INTEGER)")
        connection.execute("THIS IS NOT SQL")

    monkeypatch.setattr(
        migrations, "MIGRATIONS", (*MIGRATIONS, Migration(LATEST + 1, "x", bad_sql))
    )
    with pytest.raises(StoreError):
        Client.open(tmp_path / "s.db", key=key)
    assert snapshot(tmp_path) == before

    monkeypatch.undo()
    with Client.open(tmp_path / "s.db", key=key):
        pass
    with raw_store(tmp_path / "s.db", key) as connection:
        assert version(connection) == LATEST
        assert schema(connection) == before_schema


@pytest.mark.req("STO-04")
def test_a_new_migration_is_applied_once_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    with Client.open(tmp_path / "s.db", key=key):
        pass
    applied: list[int] = []

    def add_column(connection: Any) -> None:
        applied.append(1)
        connection.execute("ALTER TABLE conversations ADD COLUMN archived INTEGER")

    monkeypatch.setattr(
        migrations, "MIGRATIONS", (*MIGRATIONS, Migration(LATEST + 1, "archive", add_column))
    )
    monkeypatch.setattr(migrations, "LATEST", LATEST + 1)
    for _ in range(2):
        with Client.open(tmp_path / "s.db", key=key):
            pass
    assert applied == [1]
    with raw_store(tmp_path / "s.db", key) as connection:
        assert version(connection) == LATEST + 1


@pytest.mark.req("STO-04")
def test_a_failed_creation_does_not_make_the_path_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    monkeypatch.setattr(migrations, "MIGRATIONS", (_failing(1),))
    with pytest.raises(RuntimeError):
        Client.open(tmp_path / "s.db", key=key)
    monkeypatch.undo()
    with Client.open(tmp_path / "s.db", key=key) as client:
        assert client.conversations() == []


# --- the history query uses its index -------------------------------------------------------------


def _history_queries(tmp_path: Path) -> list[tuple[Any, str, Any]]:
    """The SQL the store really runs for history pages (first page and a `before` page)."""
    pair = open_pair(tmp_path)
    try:
        for n in range(5):
            pair.bank_conv.send(f"m{n}")
        store = pair.bank._store
        spy = StatementSpy(store._connection)
        store._connection = spy
        try:
            page = pair.bank_conv.history(limit=3)
            pair.bank_conv.history(limit=3, before=page[-1].id)
        finally:
            store._connection = spy._inner
        found = [
            (sql, params)
            for sql, params in zip(spy.statements, spy.params, strict=True)
            if "FROM messages" in sql
            and "ORDER BY" in sql  # the page queries, not the cursor check
        ]
        plans = [
            (
                store._connection.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall(),
                sql,
                params,
            )
            for sql, params in found
        ]
    finally:
        pair.close()
    return plans


@pytest.mark.req("STO-04")
def test_history_query_plan_uses_messages_by_conversation(tmp_path: Path) -> None:
    plans = _history_queries(tmp_path)
    assert len(plans) == 2
    for plan, sql, _params in plans:
        details = [row[3] for row in plan]
        uses = [d for d in details if "messages_by_conversation" in d]
        assert uses, (sql, details)
        assert all("TEMP B-TREE" not in d for d in details), details  # no sort step
        assert all(not d.startswith("SCAN") for d in details), details  # no full scan
