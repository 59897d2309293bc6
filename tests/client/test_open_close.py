"""Client.open and close (API-01)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from store_support import PASSPHRASE, Pair

from entrenous import Client, Conversation
from entrenous.errors import StoreError, UsageError
from entrenous.protocol import Identity, PrekeyBundle, PrekeyPool


@pytest.mark.req("API-01")
def test_open_creates_a_store_with_an_identity_and_prekeys(tmp_path: Path) -> None:
    key = os.urandom(32)
    with Client.open(tmp_path / "new.db", key=key) as client:
        assert client.conversations() == []
        identity = client.identity
        saved = client._store.load_secret("identity")
        pool = client._store.load_secret("prekeys")
        assert saved is not None
        assert pool is not None
        assert Identity.from_bytes(saved).public == identity
        PrekeyPool.from_bytes(pool, Identity.from_bytes(saved))
        bundle = PrekeyBundle.from_bytes(client.prekey_bundle())
        assert bundle.identity == identity
    assert {p.name for p in tmp_path.iterdir()} >= {"new.db", "new.db.keys", "new.db.lock"}
    with Client.open(tmp_path / "new.db", key=key) as again:
        assert again.identity == identity  # created once, then loaded


@pytest.mark.req("API-01")
def test_two_stores_have_two_identities(tmp_path: Path) -> None:
    with (
        Client.open(tmp_path / "a.db", key=os.urandom(32)) as a,
        Client.open(tmp_path / "b.db", key=os.urandom(32)) as b,
    ):
        assert a.identity != b.identity


@pytest.mark.req("API-01")
def test_a_bytearray_key_is_accepted(tmp_path: Path) -> None:
    key = os.urandom(32)
    with Client.open(tmp_path / "s.db", key=bytearray(key)) as client:  # type: ignore[arg-type]
        identity = client.identity
    with Client.open(tmp_path / "s.db", key=key) as client:
        assert client.identity == identity


BAD_ARGUMENTS: dict[str, tuple[dict[str, Any], type[Exception] | tuple[type[Exception], ...]]] = {
    "neither key nor passphrase": ({}, ValueError),
    "both key and passphrase": ({"key": bytes(32), "passphrase": PASSPHRASE}, ValueError),
    "key of 31 bytes": ({"key": bytes(31)}, ValueError),
    "key of 33 bytes": ({"key": bytes(33)}, ValueError),
    "empty key": ({"key": b""}, ValueError),
    "key as hex str": ({"key": "00" * 32}, TypeError),
    "key as int": ({"key": 7}, TypeError),
    "empty passphrase": ({"passphrase": ""}, ValueError),
    "passphrase as bytes": ({"passphrase": b"secret"}, (TypeError, ValueError)),
}


@pytest.mark.req("API-01")
@pytest.mark.parametrize(("arguments", "expected"), BAD_ARGUMENTS.values(), ids=list(BAD_ARGUMENTS))
def test_open_takes_exactly_one_valid_secret_and_creates_nothing_otherwise(
    arguments: dict[str, Any],
    expected: type[Exception] | tuple[type[Exception], ...],
    tmp_path: Path,
) -> None:
    with pytest.raises(expected):
        Client.open(tmp_path / "s.db", **arguments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.req("API-01")
def test_open_in_a_missing_directory_raises_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Client.open(tmp_path / "missing" / "s.db", key=os.urandom(32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.req("API-01")
def test_context_manager_returns_the_client_and_closes_it(tmp_path: Path) -> None:
    client = Client.open(tmp_path / "s.db", key=os.urandom(32))
    with client as entered:
        assert entered is client
    with pytest.raises(UsageError):
        client.conversations()
    client.close()  # idempotent after the with block
    client.close()
    assert "closed" in repr(client)


class _Closed:
    """A pair whose bank and customer are closed, with inputs that would otherwise work."""

    def __init__(self, pair: Pair) -> None:
        self.bank = pair.bank
        self.customer = pair.customer
        self.bank_conv: Conversation = pair.bank_conv
        self.bundle = pair.bank.prekey_bundle()
        self.envelope = pair.customer_conv.send("in flight")
        self.number = pair.bank_conv.safety_number()
        pair.bank.close()
        pair.customer.close()


CALLS: dict[str, Callable[[_Closed], object]] = {
    "prekey_bundle": lambda p: p.bank.prekey_bundle(),
    "start_conversation": lambda p: p.customer.start_conversation(p.bundle),
    "receive": lambda p: p.bank.receive(p.envelope),
    "receive_many": lambda p: p.bank.receive_many([p.envelope]),
    "conversations": lambda p: p.bank.conversations(),
    "conversation": lambda p: p.bank.conversation(p.bank_conv.id),
    "send": lambda p: p.bank_conv.send("x"),
    "history": lambda p: p.bank_conv.history(),
    "mark_verified": lambda p: p.bank_conv.mark_verified(p.number),
    "set_peer": lambda p: p.bank_conv.set_peer("customer-1"),
    "peer_identity": lambda p: p.bank_conv.peer_identity,
    "is_verified": lambda p: p.bank_conv.is_verified,
}


@pytest.mark.req("API-01")
@pytest.mark.parametrize("call", CALLS.values(), ids=list(CALLS))
def test_a_closed_client_raises_usage_error(call: Callable[[_Closed], object], pair: Pair) -> None:
    closed = _Closed(pair)
    with pytest.raises(UsageError):
        call(closed)


@pytest.mark.req("API-01")
def test_a_closed_client_kept_nothing_half_done(pair: Pair) -> None:
    """What the closed client was refused did not happen: the reopened store shows none of it."""
    closed = _Closed(pair)
    for call in CALLS.values():
        with pytest.raises(UsageError):
            call(closed)
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:
        conversation = bank.conversation(pair.bank_conv.id)
        assert len(conversation.history()) == 2
        assert not conversation.is_verified
        assert conversation.peer is None
        assert bank.receive(closed.envelope).message.text == "in flight"
