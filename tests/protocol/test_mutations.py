"""Every single-byte change and every truncation of a valid initial envelope, message envelope
and bundle is refused with a typed error, and leaves the receiver's state as it was
(ENV-05, BUN-04, HS-07, RAT-08, PK-05, ENV-01)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from protocol_support import established, make_parties

from entrenous.errors import EntrenousError
from entrenous.protocol import Identity, PrekeyBundle, Session

#: Replacement values per position (besides the exhaustive runs): flip the lowest bit, the
#: highest bit, and every bit.
MASKS = (0x01, 0x80, 0xFF)


def single_byte_changes(data: bytes, masks: tuple[int, ...] | None = MASKS) -> Iterator[bytes]:
    """``data`` with one byte changed: XOR with each mask, or (``masks=None``) every other value."""
    for index, original in enumerate(data):
        values = range(256) if masks is None else [original ^ m for m in masks]
        for value in values:
            if value != original:
                yield data[:index] + bytes([value]) + data[index + 1 :]


def truncations(data: bytes) -> Iterator[bytes]:
    for length in range(len(data)):
        yield data[:length]


def assert_all_refused(
    variants: Iterator[bytes], attempt: Callable[[bytes], object], state: Callable[[], bytes]
) -> int:
    """Each variant must raise an EntrenousError (anything else propagates and fails the test)
    and leave ``state()`` byte-for-byte unchanged. Returns how many were tried."""
    before = state()
    tried = 0
    for variant in variants:
        try:
            attempt(variant)
        except EntrenousError:
            pass
        else:
            pytest.fail(f"a mutated input was accepted (variant {tried})")
        assert state() == before, f"variant {tried} changed the state"
        tried += 1
    return tried


# --- initial envelopes --------------------------------------------------------------------------


@pytest.mark.req("ENV-05", "HS-07", "PK-05", "ENV-01")
def test_every_single_byte_change_of_an_initial_envelope_is_refused_by_respond() -> None:
    parties = make_parties()
    envelope = Session.initiate(parties.alice, parties.bundle).encrypt(b"first message")
    assert len(envelope) == 1398
    tried = assert_all_refused(
        single_byte_changes(envelope),
        lambda data: Session.respond(parties.bob, parties.pool, data, now=0),
        parties.pool.to_bytes,
    )
    assert tried == 3 * len(envelope)
    _session, plaintext = Session.respond(parties.bob, parties.pool, envelope, now=0)
    assert plaintext == b"first message"


@pytest.mark.req("ENV-05", "HS-07", "PK-05")
def test_every_truncation_of_an_initial_envelope_is_refused_by_respond() -> None:
    parties = make_parties(last_resort=True)
    envelope = Session.initiate(parties.alice, parties.bundle).encrypt(b"first message")
    tried = assert_all_refused(
        truncations(envelope),
        lambda data: Session.respond(parties.bob, parties.pool, data, now=0),
        parties.pool.to_bytes,
    )
    assert tried == len(envelope)
    Session.respond(parties.bob, parties.pool, envelope, now=0)


@pytest.mark.req("ENV-05", "HS-07", "RAT-08")
def test_every_change_of_a_later_initial_envelope_is_refused_by_the_session() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"first"), now=0)
    later = a.encrypt(b"second")
    tried = assert_all_refused(single_byte_changes(later), b.decrypt, b.to_bytes)
    tried += assert_all_refused(truncations(later), b.decrypt, b.to_bytes)
    assert tried == 4 * len(later)
    assert b.decrypt(later) == b"second"


# --- message envelopes ---------------------------------------------------------------------------


@pytest.mark.req("ENV-05", "RAT-08", "ENV-01")
def test_every_value_of_every_byte_of_a_new_chain_message_is_refused() -> None:
    a, b = established()
    envelope = a.encrypt(b"on a new chain")  # Bob takes a DH step to read it
    assert len(envelope) == 139
    tried = assert_all_refused(single_byte_changes(envelope, None), b.decrypt, b.to_bytes)
    assert tried == 255 * len(envelope)
    assert b.decrypt(envelope) == b"on a new chain"


@pytest.mark.req("ENV-05", "RAT-08")
def test_every_change_of_a_message_on_a_known_chain_or_skipped_key_is_refused() -> None:
    a, b = established()
    assert b.decrypt(a.encrypt(b"chain known")) == b"chain known"
    skipped = a.encrypt(b"skipped")
    following = a.encrypt(b"in order")
    for envelope in (following, skipped):  # first in order (skipping one), then the skipped key
        tried = assert_all_refused(single_byte_changes(envelope), b.decrypt, b.to_bytes)
        tried += assert_all_refused(truncations(envelope), b.decrypt, b.to_bytes)
        assert tried == 4 * len(envelope)
        assert b.decrypt(envelope) in (b"skipped", b"in order")


@pytest.mark.req("ENV-05", "RAT-08")
def test_every_truncation_of_a_message_envelope_is_refused_by_both_sides() -> None:
    a, b = established()
    to_bob = a.encrypt(b"x" * 300)  # a bin16 ciphertext
    to_alice = b.encrypt(b"y")
    assert_all_refused(truncations(to_bob), b.decrypt, b.to_bytes)
    assert_all_refused(truncations(to_alice), a.decrypt, a.to_bytes)
    # Appending bytes is refused too.
    for tail in (b"\x00", b"\xc0", to_bob):
        assert_all_refused(iter([to_bob + tail]), b.decrypt, b.to_bytes)
    assert b.decrypt(to_bob) == b"x" * 300
    assert a.decrypt(to_alice) == b"y"


# --- bundles -------------------------------------------------------------------------------------


@pytest.mark.req("BUN-04")
@pytest.mark.parametrize("last_resort", [False, True])
def test_every_single_byte_change_and_truncation_of_a_bundle_is_refused(last_resort: bool) -> None:
    parties = make_parties(last_resort=last_resort)
    bundle = parties.bundle
    no_state = b""

    def parse(data: bytes) -> object:
        return PrekeyBundle.from_bytes(data)

    tried = assert_all_refused(single_byte_changes(bundle), parse, lambda: no_state)
    tried += assert_all_refused(truncations(bundle), parse, lambda: no_state)
    assert tried == 4 * len(bundle)
    PrekeyBundle.from_bytes(bundle)


@pytest.mark.req("BUN-04")
def test_mutated_bundles_cannot_start_a_session() -> None:
    parties = make_parties()
    alice = Identity.generate()
    variants = [
        *single_byte_changes(parties.bundle, (0x01,)),
        *list(truncations(parties.bundle))[::7],
    ]
    for variant in variants:
        with pytest.raises(EntrenousError):
            Session.initiate(alice, variant)
    Session.initiate(alice, parties.bundle)
