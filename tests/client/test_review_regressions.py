"""Regressions from the review of the store and client layers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entrenous import Client
from entrenous.errors import MalformedEnvelope, UsageError
from entrenous.payload import MAX_TIME_MS


@pytest.mark.req("API-03", "API-07")
def test_a_peer_clock_beyond_year_9999_is_a_typed_refusal_that_stores_nothing(
    tmp_path: Path,
) -> None:
    with Client.open(tmp_path / "bob.db", key=os.urandom(32)) as bob:
        # Our own clock that far out is refused from the open on (FLT-07).
        with pytest.raises(UsageError, match="clock"):
            Client.open(
                tmp_path / "mallory.db", key=os.urandom(32), clock=lambda: (MAX_TIME_MS + 1) / 1000
            )
        # A peer whose library was patched to send it anyway: the payload is authenticated,
        # so only the receiver's own check stands between it and a crash.
        from entrenous import payload

        original = payload.encode

        def far_future(message_id: bytes, sent_at: int, content: object, **_: object) -> bytes:
            return payload.wire.pack([1, 1, message_id, MAX_TIME_MS + 1, b"hi"])

        with Client.open(tmp_path / "eve.db", key=os.urandom(32)) as eve:
            payload.encode = far_future  # type: ignore[assignment]
            try:
                envelope = eve.start_conversation(bob.prekey_bundle()).send("hi")
            finally:
                payload.encode = original
            good_conv = eve.start_conversation(bob.prekey_bundle())
            good = good_conv.send("fine")
        keys_before = (tmp_path / "bob.db.keys").read_bytes()
        for _ in range(3):
            with pytest.raises(MalformedEnvelope):
                bob.receive(envelope)
        assert bob.conversations() == []
        assert (tmp_path / "bob.db.keys").read_bytes() == keys_before  # no orphan data keys
        outcomes = bob.receive_many([envelope, good])
        assert [o.ok for o in outcomes] == [False, True]
        assert isinstance(outcomes[0].error, MalformedEnvelope)
        assert outcomes[1].received is not None
        assert outcomes[1].received.message.text == "fine"


@pytest.mark.req("STO-09")
def test_a_symlinked_path_takes_the_same_lock(tmp_path: Path) -> None:
    from entrenous.errors import StoreLocked

    key = os.urandom(32)
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(real, target_is_directory=True)
    with Client.open(real / "s.db", key=key), pytest.raises(StoreLocked):
        Client.open(alias / "s.db", key=key)


class _FailingConnection:
    """A connection proxy that fails the statements starting with any of ``fail``."""

    def __init__(self, inner: object, fail: tuple[str, ...]) -> None:
        self._inner = inner
        self.fail = fail

    def execute(self, sql: str, *args: object) -> object:
        from sqlcipher3 import dbapi2

        if sql.startswith(self.fail):
            raise dbapi2.OperationalError("disk I/O error")
        return self._inner.execute(sql, *args)  # type: ignore[attr-defined]

    def executemany(self, sql: str, *args: object) -> object:
        from sqlcipher3 import dbapi2

        if sql.startswith(self.fail):
            raise dbapi2.OperationalError("disk I/O error")
        return self._inner.executemany(sql, *args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


@pytest.mark.req("API-06", "API-07", "STO-05")
def test_a_step_that_cannot_be_undone_rolls_back_the_whole_batch(tmp_path: Path) -> None:
    from entrenous.errors import StoreError

    with (
        Client.open(tmp_path / "a.db", key=os.urandom(32)) as alice,
        Client.open(tmp_path / "b.db", key=os.urandom(32)) as bob,
    ):
        conv = alice.start_conversation(bob.prekey_bundle())
        bob.receive(conv.send("hello"))
        m1, m2 = conv.send("one"), conv.send("two")
        store = bob._store
        inner = store._connection
        store._connection = _FailingConnection(inner, ("INSERT INTO messages", "ROLLBACK TO"))
        try:
            with pytest.raises(StoreError):
                bob.receive_many([m1, m2])
        finally:
            store._connection = inner
        # Nothing of the batch was committed, and both messages still arrive, once each.
        bob_conv = bob.conversations()[0]
        assert [m.text for m in bob_conv.history()] == ["hello"]
        assert [o.ok for o in bob.receive_many([m1, m2])] == [True, True]
        assert [m.text for m in bob_conv.history()] == ["two", "one", "hello"]


@pytest.mark.req("API-07")
def test_a_clean_batch_over_several_conversations_takes_one_write_per_conversation(
    tmp_path: Path,
) -> None:
    with (
        Client.open(tmp_path / "a.db", key=os.urandom(32)) as alice,
        Client.open(tmp_path / "c.db", key=os.urandom(32)) as carol,
        Client.open(tmp_path / "b.db", key=os.urandom(32)) as bob,
    ):
        convs = [c.start_conversation(bob.prekey_bundle()) for c in (alice, carol)]
        for conv in convs:
            bob.receive(conv.send("hello"))
        batch = [convs[i % 2].send(f"m{i}") for i in range(40)]
        store = bob._store
        inner = store._connection
        spy = _FailingConnection(inner, ())
        statements: list[str] = []
        spy_execute = spy.execute

        def execute(sql: str, *args: object) -> object:
            statements.append(sql)
            return spy_execute(sql, *args)

        spy.execute = execute  # type: ignore[method-assign]
        store._connection = spy
        try:
            outcomes = bob.receive_many(batch)
        finally:
            store._connection = inner
        assert all(o.ok for o in outcomes)
        assert [o.received.message.text for o in outcomes if o.received] == [
            f"m{i}" for i in range(40)
        ]
        assert sum(sql.startswith("UPDATE conversations") for sql in statements) == 2
        # Every message is stored once, and a replay of the batch is refused envelope by
        # envelope (the per-envelope path), storing nothing.
        again = bob.receive_many(batch)
        assert not any(o.ok for o in again)
        for conv in bob.conversations():
            assert len(conv.history(limit=100)) == 21


@pytest.mark.req("API-03")
def test_refused_garbage_does_not_reload_the_prekey_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stranger's garbage must stay cheap: no O(pool) reload per refused envelope."""
    from entrenous.errors import EntrenousError
    from entrenous.protocol import PrekeyPool

    with Client.open(tmp_path / "b.db", key=os.urandom(32)) as bob:
        for _ in range(20):
            bob.prekey_bundle()
        loads: list[int] = []
        original = PrekeyPool.from_bytes.__func__  # type: ignore[attr-defined]

        def counting(cls: type[PrekeyPool], data: bytes, identity: object) -> PrekeyPool:
            loads.append(len(data))
            return original(cls, data, identity)  # type: ignore[no-any-return]

        monkeypatch.setattr(PrekeyPool, "from_bytes", classmethod(counting))
        for _ in range(10):
            with pytest.raises(EntrenousError):
                bob.receive(os.urandom(139))
        assert loads == []
        # A refused first message (it did reach the pool) reloads it, once.
        with Client.open(tmp_path / "a.db", key=os.urandom(32)) as alice:
            envelope = bytearray(alice.start_conversation(bob.prekey_bundle()).send("hi"))
        envelope[-3] ^= 1
        with pytest.raises(EntrenousError):
            bob.receive(bytes(envelope))
        assert len(loads) == 1
