"""Padmé padding (ENV-07) and its check after decryption (ENV-08)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from protocol_support import (
    established,
    forge_envelope,
    make_parties,
    refused,
    reload,
)

from entrenous.errors import MalformedEnvelope
from entrenous.protocol import Session
from entrenous.protocol.constants import MAX_PLAINTEXT_SIZE, MIN_PADDED_SIZE
from entrenous.protocol.padding import pad, padded_length, unpad


def padme_reference(length: int) -> int:
    """Padmé as published (Nikitin et al., PETS 2019, Algorithm 1), on max(L + 1, 64)."""
    n = max(length + 1, 64)
    e = math.floor(math.log2(n))
    s = math.floor(math.log2(e)) + 1
    last_bits = e - s
    mask = (1 << last_bits) - 1
    return (n + mask) & ~mask


# --- ENV-07 --------------------------------------------------------------------------------------


@pytest.mark.req("ENV-07")
def test_padded_length_is_padme_for_every_allowed_plaintext_length() -> None:
    previous = 0
    for length in range(MAX_PLAINTEXT_SIZE + 1):
        size = padded_length(length)
        assert size == padme_reference(length)
        assert size >= max(length + 1, MIN_PADDED_SIZE)
        assert size >= previous  # monotonic
        if length >= 64:
            assert size <= length + length // 8  # at most 12.5% overhead
        previous = size


@pytest.mark.req("ENV-07")
def test_padding_examples_from_the_spec() -> None:
    assert MIN_PADDED_SIZE == 64
    for length in (0, 1, 3, 62, 63):
        assert padded_length(length) == 64
    assert padded_length(64) == 72
    assert padded_length(1024) == 1088
    assert padded_length(MAX_PLAINTEXT_SIZE) == 59392


@pytest.mark.req("ENV-07")
@given(st.binary(max_size=3000))
def test_pad_appends_the_terminator_and_zeros_and_unpad_inverts_it(plaintext: bytes) -> None:
    padded = pad(plaintext)
    assert len(padded) == padded_length(len(plaintext))
    assert padded[: len(plaintext)] == plaintext
    assert padded[len(plaintext)] == 0x80
    assert padded[len(plaintext) + 1 :] == bytes(len(padded) - len(plaintext) - 1)
    assert unpad(padded) == plaintext


@pytest.mark.req("ENV-07")
def test_envelope_size_depends_only_on_the_padded_length() -> None:
    parties = make_parties()
    pending = Session.initiate(parties.alice, parties.bundle)
    _a, plain = established()
    plain.encrypt(b"")  # take the DH step once, so every size below is measured on one chain
    lengths = sorted({*range(0, 300), *range(300, MAX_PLAINTEXT_SIZE + 1, 997), MAX_PLAINTEXT_SIZE})
    for session, overhead in ((pending, 1398 - 80), (plain, 139 - 80)):
        sizes: dict[int, set[int]] = {}
        for length in lengths:
            envelope = reload(session).encrypt(bytes([0xA5]) * length)
            sizes.setdefault(padded_length(length), set()).add(len(envelope))
        for padded, seen in sizes.items():
            assert len(seen) == 1, f"padded length {padded} gave sizes {seen}"
            (size,) = seen
            tag = 16
            header = 2 if padded + tag < 256 else 3
            assert size == overhead + (header - 2) + padded + tag
        ordered = [next(iter(sizes[p])) for p in sorted(sizes)]
        assert ordered == sorted(set(ordered))


@pytest.mark.req("ENV-07")
def test_short_messages_are_indistinguishable_by_size() -> None:
    a, _b = established()
    sizes = {len(a.encrypt(bytes(length))) for length in range(64)}
    assert sizes == {139}
    parties = make_parties()
    pending = Session.initiate(parties.alice, parties.bundle)
    assert {len(pending.encrypt(b"x" * length)) for length in (0, 1, 63)} == {1398}


# --- ENV-08 --------------------------------------------------------------------------------------

BAD_PADDINGS: dict[str, bytes] = {
    "empty": b"",
    "no terminator": b"x" * 64,
    "zeros only": bytes(64),
    "terminator then non-zero": b"abc\x80\x01" + bytes(59),
    "one zero too many": pad(b"abc") + b"\x00",
    "one byte short": pad(b"abc")[:-1],
    "a whole block too long": pad(b"abc") + bytes(64),
    "below the minimum": b"abc\x80" + bytes(10),
    "terminator 0x81": b"abc\x81" + bytes(60),
    "length of another plaintext": b"x" * 64 + b"\x80" + bytes(15),
}


@pytest.mark.req("ENV-08")
@pytest.mark.parametrize("padded", BAD_PADDINGS.values(), ids=BAD_PADDINGS.keys())
def test_unpad_refuses_malformed_padding(padded: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        unpad(padded)


@pytest.mark.req("ENV-08")
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=200))
def test_unpad_refuses_extra_zero_bytes(plaintext: bytes, extra: int) -> None:
    padded = pad(plaintext) + bytes(extra)
    if len(padded) == padded_length(len(plaintext)):  # pragma: no cover - impossible
        return
    with pytest.raises(MalformedEnvelope):
        unpad(padded)


@pytest.mark.req("ENV-08", "RAT-08")
@pytest.mark.parametrize("padded", BAD_PADDINGS.values(), ids=BAD_PADDINGS.keys())
def test_authenticated_bad_padding_is_refused_without_changing_the_state(padded: bytes) -> None:
    # Three receiving paths: the next message of a known chain, a skipped key, a new chain.
    a, b = established()
    assert b.decrypt(a.encrypt(b"chain known")) == b"chain known"
    before_gap = reload(a)
    held = a.encrypt(b"held back")
    assert b.decrypt(a.encrypt(b"skips one")) == b"skips one"

    in_order = forge_envelope(a, padded)
    refused(lambda: b.decrypt(in_order), b.to_bytes, MalformedEnvelope)
    skipped = forge_envelope(before_gap, padded)  # same key as `held`
    refused(lambda: b.decrypt(skipped), b.to_bytes, MalformedEnvelope)
    assert b.decrypt(held) == b"held back"  # its key survived the refusal
    assert b.decrypt(a.encrypt(b"next")) == b"next"

    b.encrypt(b"Bob's turn")  # Bob's DH step; Alice has not read it yet
    assert a.decrypt(b.encrypt(b"to alice")) == b"to alice"
    a.encrypt(b"")  # Alice's DH step, so that her next message opens a new chain for Bob
    new_chain = forge_envelope(a, padded)
    refused(lambda: b.decrypt(new_chain), b.to_bytes, MalformedEnvelope)


@pytest.mark.req("ENV-08")
def test_bad_padding_in_the_first_envelope_creates_no_session() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    bad = forge_envelope(a, b"no padding at all, just bytes")
    refused(
        lambda: Session.respond(parties.bob, parties.pool, bad, now=0),
        parties.pool.to_bytes,
        MalformedEnvelope,
    )
    # The genuine envelope with the same message number is accepted afterwards.
    _b, plaintext = Session.respond(parties.bob, parties.pool, a.encrypt(b"good"), now=0)
    assert plaintext == b"good"
