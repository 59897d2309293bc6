"""Regressions from the review of the store and client layers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entrenous import Client
from entrenous.errors import MalformedEnvelope
from entrenous.payload import MAX_TIME_MS


@pytest.mark.req("API-03", "API-07")
def test_a_peer_clock_beyond_year_9999_is_a_typed_refusal_that_stores_nothing(
    tmp_path: Path,
) -> None:
    with Client.open(tmp_path / "bob.db", key=os.urandom(32)) as bob:
        with (
            Client.open(
                tmp_path / "mallory.db", key=os.urandom(32), clock=lambda: (MAX_TIME_MS + 1) / 1000
            ) as mallory,
            pytest.raises(ValueError, match="clock"),
        ):
            mallory.start_conversation(bob.prekey_bundle()).send("hi")
        # A peer whose library was patched to send it anyway: the payload is authenticated,
        # so only the receiver's own check stands between it and a crash.
        from entrenous import payload

        original = payload.encode

        def far_future(message_id: bytes, sent_at: int, content: object) -> bytes:
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
