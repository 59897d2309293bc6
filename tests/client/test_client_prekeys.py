"""prekey_bundle() issues signed bundles with fresh one-time prekeys whose private halves are
stored; a consumed one-time prekey is deleted from the store (API-02)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from store_support import Pair, tables

from entrenous import Client
from entrenous.errors import EntrenousError, PrekeyConsumed
from entrenous.protocol import Identity, PrekeyBundle, PrekeyPool


def stored_pool(client: Client) -> PrekeyPool:
    identity = client._store.load_secret("identity")
    pool = client._store.load_secret("prekeys")
    assert identity is not None
    assert pool is not None
    return PrekeyPool.from_bytes(pool, Identity.from_bytes(identity))


def one_time_private(pool: PrekeyPool, bundle: PrekeyBundle) -> tuple[bytes, bytes] | None:
    """The stored private halves of a bundle's one-time keys (X25519, ML-KEM seed), if held;
    each checked against the public key the bundle published."""
    assert bundle.one_time_prekey_id is not None
    x25519 = pool._one_time.get(bundle.one_time_prekey_id)
    kem = pool._one_time_kem.get(bundle.kem_prekey_id)
    if x25519 is None and kem is None:
        return None
    assert x25519 is not None
    assert kem is not None
    assert x25519.public_key() == bundle.one_time_prekey
    assert kem.public_key() == bundle.kem_prekey
    return x25519.to_bytes(), kem.to_seed()


def secret_values(client: Client) -> list[bytes]:
    dump = tables(client._store._connection)
    return [bytes(v) for row in dump["secrets"] for v in row if isinstance(v, bytes)]


@pytest.mark.req("API-02")
def test_bundles_are_signed_and_carry_fresh_one_time_prekeys(pair: Pair) -> None:
    first = PrekeyBundle.from_bytes(pair.bank.prekey_bundle())  # verifies the signature
    second = PrekeyBundle.from_bytes(pair.bank.prekey_bundle())
    for bundle in (first, second):
        assert bundle.identity == pair.bank.identity
        assert bundle.one_time_prekey_id is not None
        assert not bundle.kem_last_resort
    assert first.one_time_prekey_id != second.one_time_prekey_id
    assert first.one_time_prekey != second.one_time_prekey
    assert first.kem_prekey_id != second.kem_prekey_id
    assert first.kem_prekey != second.kem_prekey


@pytest.mark.req("API-02")
def test_a_bundle_with_a_broken_signature_is_refused(pair: Pair) -> None:
    raw = bytearray(pair.bank.prekey_bundle())
    raw[-10] ^= 0x01  # inside the signature
    before = [c.id for c in pair.customer.conversations()]
    with pytest.raises(EntrenousError):
        pair.customer.start_conversation(bytes(raw))
    assert [c.id for c in pair.customer.conversations()] == before


@pytest.mark.req("API-02")
def test_private_halves_of_issued_prekeys_are_in_the_store(pair: Pair, tmp_path: Path) -> None:
    bundles = [PrekeyBundle.from_bytes(pair.bank.prekey_bundle()) for _ in range(3)]
    pool = stored_pool(pair.bank)
    for bundle in bundles:
        assert one_time_private(pool, bundle) is not None
    # And they survive a restart: a conversation from the last bundle starts after reopening.
    pair.bank.close()
    with (
        Client.open(pair.bank_path, key=pair.bank_key) as bank,
        Client.open(tmp_path / "late.db", key=os.urandom(32)) as late,
    ):
        received = bank.receive(late.start_conversation(bundles[-1].raw).send("late"))
        assert received.new_conversation
        assert received.message.text == "late"


@pytest.mark.req("API-02")
def test_a_consumed_one_time_prekey_is_deleted_from_the_store(pair: Pair, tmp_path: Path) -> None:
    bundles = [PrekeyBundle.from_bytes(pair.bank.prekey_bundle()) for _ in range(3)]
    used = bundles[1]
    private = one_time_private(stored_pool(pair.bank), used)
    assert private is not None
    with Client.open(tmp_path / "third.db", key=os.urandom(32)) as third:
        pair.bank.receive(third.start_conversation(used.raw).send("hi"))
    pool = stored_pool(pair.bank)
    assert one_time_private(pool, used) is None
    assert one_time_private(pool, bundles[0]) is not None  # the others are kept
    assert one_time_private(pool, bundles[2]) is not None
    for value in secret_values(pair.bank):
        assert private[0] not in value
        assert private[1] not in value
    pair.bank.close()
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:  # and durably so
        assert one_time_private(stored_pool(bank), used) is None


@pytest.mark.req("API-02", "API-03")
def test_a_second_initiator_with_a_consumed_bundle_is_refused(pair: Pair, tmp_path: Path) -> None:
    bundle = pair.bank.prekey_bundle()
    with (
        Client.open(tmp_path / "first.db", key=os.urandom(32)) as first,
        Client.open(tmp_path / "second.db", key=os.urandom(32)) as second,
    ):
        pair.bank.receive(first.start_conversation(bundle).send("first"))
        conversations = [c.id for c in pair.bank.conversations()]
        with pytest.raises(PrekeyConsumed):
            pair.bank.receive(second.start_conversation(bundle).send("second"))
    assert [c.id for c in pair.bank.conversations()] == conversations


@pytest.mark.req("API-02")
def test_a_refused_initial_message_consumes_nothing(pair: Pair, tmp_path: Path) -> None:
    bundle = PrekeyBundle.from_bytes(pair.bank.prekey_bundle())
    with Client.open(tmp_path / "third.db", key=os.urandom(32)) as third:
        envelope = bytearray(third.start_conversation(bundle.raw).send("hi"))
        envelope[-3] ^= 0x40  # ciphertext: the handshake runs, the message fails to open
        with pytest.raises(EntrenousError):
            pair.bank.receive(bytes(envelope))
        assert one_time_private(stored_pool(pair.bank), bundle) is not None
        assert one_time_private(pair.bank._prekeys, bundle) is not None
