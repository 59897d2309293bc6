"""Store transactions are all or nothing (STO-05), through the Store interface itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_support import StatementSpy, raw_store, tables

from entrenous.errors import StoreCorrupt, StoreError
from entrenous.protocol import Identity
from entrenous.store import ConversationRecord, MessageRecord, SqlCipherStore

PEER = Identity.generate().public.to_bytes()


def conversation(uid: bytes | None = None, session_id: bytes | None = None) -> ConversationRecord:
    return ConversationRecord(
        uid=uid or os.urandom(16),
        session_id=session_id or os.urandom(16),
        peer_identity=PEER,
        peer="peer",
        state=b"state-0",
        verified=None,
        created_at=1,
        updated_at=1,
    )


def message(conversation_uid: bytes, body: bytes = b"body") -> MessageRecord:
    return MessageRecord(os.urandom(16), conversation_uid, "sent", 5, None, body)


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def store(tmp_path: Path, key: bytes) -> Iterator[SqlCipherStore]:
    opened = SqlCipherStore.open(tmp_path / "s.db", key)
    try:
        yield opened
    finally:
        opened.close()


def dump(store: SqlCipherStore) -> dict[str, list[tuple[object, ...]]]:
    return tables(store._connection)


@pytest.fixture
def populated(store: SqlCipherStore) -> tuple[SqlCipherStore, ConversationRecord]:
    record = conversation()
    with store.transaction():
        store.save_secret("identity", b"id-0")
        store.add_conversation(record)
        store.add_message(message(record.uid, b"first"))
    return store, record


@pytest.mark.req("STO-05")
def test_every_change_of_a_failed_transaction_is_rolled_back(
    populated: tuple[SqlCipherStore, ConversationRecord], tmp_path: Path, key: bytes
) -> None:
    store, record = populated
    before = dump(store)
    with pytest.raises(RuntimeError, match="late failure"), store.transaction():
        store.save_secret("identity", b"id-1")
        store.save_secret("prekeys", b"pool")
        store.update_conversation(record.uid, state=b"state-1", updated_at=9, verified=b"v")
        store.add_message(message(record.uid, b"second"))
        store.add_conversation(conversation())
        raise RuntimeError("late failure")
    assert dump(store) == before
    assert store.load_secret("identity") == b"id-0"
    assert [m.body for m in store.history(record.uid, limit=10, before=None)] == [b"first"]
    store.close()
    # A clean close changes one row: the store_meta flag saying the store is open (STO-12).
    before["store_meta"] = [
        (name, b"\x00" if name == "open" else value) for name, value in before["store_meta"]
    ]
    with raw_store(tmp_path / "s.db", key) as db:
        assert tables(db) == before


@pytest.mark.req("STO-05")
def test_a_failing_statement_rolls_back_the_earlier_ones(
    populated: tuple[SqlCipherStore, ConversationRecord],
) -> None:
    store, record = populated
    before = dump(store)
    with pytest.raises(StoreCorrupt), store.transaction():
        store.update_conversation(record.uid, state=b"state-1")
        store.add_message(message(record.uid, b"second"))
        store.add_conversation(conversation(session_id=record.session_id))  # UNIQUE violation
    assert dump(store) == before
    with store.transaction():  # the store is usable afterwards
        store.add_message(message(record.uid, b"third"))
    assert len(store.history(record.uid, limit=10, before=None)) == 2


@pytest.mark.req("STO-05")
def test_a_committed_transaction_is_visible_to_another_connection(
    populated: tuple[SqlCipherStore, ConversationRecord], tmp_path: Path, key: bytes
) -> None:
    store, record = populated
    with store.transaction():
        store.update_conversation(record.uid, state=b"state-2")
        store.add_message(message(record.uid))
    with raw_store(tmp_path / "s.db", key) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 2
        assert bytes(db.execute("SELECT state FROM conversations").fetchone()[0]) == b"state-2"


@pytest.mark.req("STO-05")
def test_a_nested_transaction_joins_the_outer_one(
    populated: tuple[SqlCipherStore, ConversationRecord],
) -> None:
    store, _record = populated
    before = dump(store)
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.save_secret("identity", b"inner")
        assert store.load_secret("identity") == b"inner"  # not committed on its own...
        raise RuntimeError
    assert dump(store) == before  # ...so it went with the outer one


@pytest.mark.req("STO-05")
def test_a_failed_savepoint_undoes_only_its_step(
    populated: tuple[SqlCipherStore, ConversationRecord],
) -> None:
    store, _record = populated
    with store.transaction():
        store.save_secret("a", b"kept")
        with pytest.raises(RuntimeError), store.savepoint():
            store.save_secret("b", b"undone")
            raise RuntimeError
        store.save_secret("c", b"kept")
    assert store.load_secret("a") == b"kept"
    assert store.load_secret("b") is None
    assert store.load_secret("c") == b"kept"


@pytest.mark.req("STO-05")
@pytest.mark.parametrize(
    "change",
    [
        lambda s, uid: s.save_secret("x", b"y"),
        lambda s, uid: s.add_conversation(conversation()),
        lambda s, uid: s.update_conversation(uid, state=b"z"),
        lambda s, uid: s.add_message(message(uid)),
    ],
    ids=["save_secret", "add_conversation", "update_conversation", "add_message"],
)
def test_changes_outside_a_transaction_are_refused(
    populated: tuple[SqlCipherStore, ConversationRecord],
    change: Callable[[SqlCipherStore, bytes], None],
) -> None:
    store, record = populated
    before = dump(store)
    with pytest.raises(RuntimeError, match=r"inside store\.transaction"):
        change(store, record.uid)
    assert dump(store) == before


@pytest.mark.req("STO-05")
def test_a_failed_commit_rolls_back_and_leaves_the_store_usable(
    populated: tuple[SqlCipherStore, ConversationRecord],
) -> None:
    store, record = populated
    before = dump(store)
    spy = StatementSpy(store._connection, fail_on="COMMIT")
    store._connection = spy
    try:
        with pytest.raises(StoreError), store.transaction():
            store.update_conversation(record.uid, state=b"lost")
            store.add_message(message(record.uid, b"lost"))
    finally:
        store._connection = spy._inner
    assert not store._connection.in_transaction
    assert dump(store) == before
    with store.transaction():
        store.save_secret("after", b"ok")
    assert store.load_secret("after") == b"ok"


@pytest.mark.req("STO-05")
def test_close_is_idempotent_and_releases_the_lock(tmp_path: Path, key: bytes) -> None:
    store = SqlCipherStore.open(tmp_path / "s.db", key)
    store.close()
    store.close()
    SqlCipherStore.open(tmp_path / "s.db", key).close()


# --- the conversations the store remembers -------------------------------------------------------


@pytest.mark.req("STO-05")
@pytest.mark.parametrize("undo", ["transaction", "savepoint"])
def test_a_rolled_back_conversation_is_not_remembered(store: SqlCipherStore, undo: str) -> None:
    """Its row id may go to the next conversation: a message for it must not land there."""
    ghost = conversation()
    if undo == "transaction":
        with pytest.raises(RuntimeError, match="undo"), store.transaction():
            store.add_conversation(ghost)
            raise RuntimeError("undo")
    else:
        with store.transaction(), pytest.raises(RuntimeError, match="undo"), store.savepoint():
            store.add_conversation(ghost)
            raise RuntimeError("undo")
    assert store.conversation(ghost.uid) is None
    assert store.conversation_by_session(ghost.session_id) is None
    real = conversation()
    with store.transaction():
        store.add_conversation(real)  # takes the row id the ghost had
    before = dump(store)
    with pytest.raises(StoreCorrupt), store.transaction():
        store.add_message(message(ghost.uid, b"for the ghost"))
    with store.transaction():
        store.update_conversation(ghost.uid, state=b"ghost state", updated_at=7)
    assert dump(store) == before
    assert store.history(real.uid, limit=10, before=None) == []


@pytest.mark.req("STO-05")
def test_a_rolled_back_update_is_not_remembered(
    populated: tuple[SqlCipherStore, ConversationRecord],
) -> None:
    store, record = populated
    with pytest.raises(RuntimeError, match="undo"), store.transaction():
        store.update_conversation(record.uid, state=b"state-9", updated_at=9)
        store.update_conversation(record.uid, category="ghost", subject="ghost")
        raise RuntimeError("undo")
    assert store.conversation(record.uid) == record
    assert store.conversation_by_session(record.session_id) == record


@pytest.mark.req("STO-05")
def test_what_the_store_remembers_is_what_another_connection_reads(
    populated: tuple[SqlCipherStore, ConversationRecord], tmp_path: Path, key: bytes
) -> None:
    """Records served from memory equal the rows, after each kind of change."""
    store, record = populated

    def on_disk() -> ConversationRecord:
        with raw_store(tmp_path / "s.db", key) as db:
            row = db.execute(
                "SELECT id, uid, session_id, peer_identity, peer, state, verified, created_at, "
                "updated_at, category, subject, timer_ms, key_generation FROM conversations "
                "WHERE uid = ?",
                (record.uid,),
            ).fetchone()
        return SqlCipherStore._conversation(row)

    with store.transaction():
        store.update_conversation(record.uid, state=b"state-1", updated_at=2)
    assert store.conversation(record.uid) == on_disk()
    with store.transaction():
        store.update_conversation(record.uid, peer="other", verified=b"v", timer_ms=5000)
        store.update_conversation(record.uid, category="support", subject="s-1")
    assert store.conversation(record.uid) == on_disk()
    with store.transaction():
        store.prune_and_reseal(record.uid, keep_stored_from=0)
    assert store.conversation(record.uid) == on_disk()
    assert on_disk().key_generation == 1
    with store.transaction():  # sealed under the new generation's key
        store.add_message(message(record.uid, b"after the re-seal"))
    assert [m.body for m in store.history(record.uid, limit=10, before=None)] == [
        b"after the re-seal",
        b"first",
    ]
    with store.transaction():
        store.erase_conversation(record.uid)
    assert store.conversation(record.uid) is None
    assert store.conversation_by_session(record.session_id) is None


@pytest.mark.req("STO-05")
def test_deferred_checkpoint_restores_the_setting_before_it_nested_and_on_errors(
    tmp_path: Path,
) -> None:
    from entrenous.store.sqlcipher import SqlCipherStore

    store = SqlCipherStore.open(tmp_path / "d.db", os.urandom(32))
    try:

        def setting() -> int:
            value = store._connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            assert isinstance(value, int)
            return value

        assert setting() == 1000
        with store.deferred_checkpoint():
            assert setting() == 0
            with store.deferred_checkpoint():
                assert setting() == 0
            assert setting() == 0  # the outer block still defers
        assert setting() == 1000
        with pytest.raises(KeyError), store.deferred_checkpoint():
            raise KeyError("inside")
        assert setting() == 1000
    finally:
        store.close()


def _every_null_pattern(conversation_uid: bytes) -> list[MessageRecord]:
    """A message for each pattern of the nullable columns (received_at, timer_ms, expires_at)."""
    out = []
    for n in range(8):
        received_at = None if n & 1 else 7 + n
        out.append(
            MessageRecord(
                os.urandom(16),
                conversation_uid,
                "sent" if received_at is None else "received",
                5 + n,
                received_at,
                f"body {n}".encode(),
                expires_at=None if n & 2 else 10_000 + n,
                timer_ms=None if n & 4 else 1_000 + n,
            )
        )
    return out


@pytest.mark.parametrize("batch", [False, True], ids=["add_message", "add_messages"])
def test_every_pattern_of_nulls_is_stored_as_given_in_order_with_no_null_bound(
    store: SqlCipherStore, batch: bool
) -> None:
    """A NULL is written as a literal, never bound (a bound None costs sqlcipher3 an adapter
    lookup); whatever the mix of NULLs in a batch, the rows keep their order and values."""
    record = conversation()
    with store.transaction():
        store.add_conversation(record)
    messages = _every_null_pattern(record.uid)
    messages += list(reversed(_every_null_pattern(record.uid)))  # runs of one row each
    spy = StatementSpy(store._connection)
    store._connection = spy
    try:
        with store.transaction():
            if batch:
                store.add_messages(messages)
            else:
                for message_record in messages:
                    store.add_message(message_record)
    finally:
        store._connection = spy._inner
    bound = [
        value
        for params in spy.params
        for row in (params if isinstance(params, list) else [params])
        for value in row
    ]
    assert None not in bound
    stored = list(reversed(store.history(record.uid, limit=100, before=None)))
    assert stored == messages
