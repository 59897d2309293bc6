"""Identities (ID-01, ID-02, ID-04) and safety numbers (ID-03)."""

from __future__ import annotations

import hashlib

import pytest
from protocol_support import make_parties, start

from entrenous._primitives.dh import X25519PrivateKey
from entrenous._primitives.sign import SigningKey
from entrenous.errors import AuthenticationError, MalformedBundle, StateError, UnsupportedVersion
from entrenous.protocol import Identity, PublicIdentity, SafetyNumber
from entrenous.protocol import identity as identity_module
from entrenous.protocol.constants import (
    IDENTITY_VERSION,
    LABEL_FINGERPRINT,
    LABEL_IDENTITY_BINDING,
    LABEL_SAFETY_NUMBER,
)


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


# --- ID-01: the public identity's wire form ------------------------------------------------------


@pytest.mark.req("ID-01")
def test_public_identity_round_trips_and_has_the_documented_layout() -> None:
    identity = Identity.generate()
    wire = identity.public.to_bytes()
    assert len(wire) == PublicIdentity.SIZE == 129
    assert wire[0] == IDENTITY_VERSION == 1
    assert wire[1:65] == identity.public.key_bytes
    assert wire[1:33] == identity.public.verify_key.to_bytes()
    assert wire[33:65] == identity.public.dh_key.to_bytes()
    # The binding is an Ed25519 signature over the label and the X25519 key.
    identity.public.verify_key.verify(wire[65:], LABEL_IDENTITY_BINDING + wire[33:65])
    parsed = PublicIdentity.from_bytes(wire)
    assert parsed == identity.public
    assert parsed.to_bytes() == wire


@pytest.mark.req("ID-01")
@pytest.mark.parametrize("size", [0, 1, 64, 128, 130, 200])
def test_public_identity_of_wrong_size_is_malformed(size: int) -> None:
    wire = Identity.generate().public.to_bytes()
    data = (wire * 2)[:size]
    with pytest.raises(MalformedBundle):
        PublicIdentity.from_bytes(data)


@pytest.mark.req("ID-01")
@pytest.mark.parametrize("version", [0, 2, 0x7F, 0xFF])
def test_public_identity_of_unknown_version_is_refused(version: int) -> None:
    wire = Identity.generate().public.to_bytes()
    with pytest.raises(UnsupportedVersion) as info:
        PublicIdentity.from_bytes(bytes([version]) + wire[1:])
    assert info.value.version == version


@pytest.mark.req("ID-01")
def test_public_identity_with_any_bit_of_keys_or_binding_changed_fails_authentication() -> None:
    wire = Identity.generate().public.to_bytes()
    for index in range(1, len(wire)):
        for mask in (0x01, 0x80):
            with pytest.raises(AuthenticationError):
                PublicIdentity.from_bytes(_flip(wire, index, mask))


@pytest.mark.req("ID-01")
def test_binding_made_under_another_label_or_by_another_key_is_refused() -> None:
    signing, dh = SigningKey.generate(), X25519PrivateKey.generate()
    dh_public = dh.public_key().to_bytes()
    header = bytes([IDENTITY_VERSION]) + signing.verify_key.to_bytes() + dh_public
    good = header + signing.sign(LABEL_IDENTITY_BINDING + dh_public)
    assert PublicIdentity.from_bytes(good).dh_key.to_bytes() == dh_public
    unlabelled = header + signing.sign(dh_public)
    other_signer = header + SigningKey.generate().sign(LABEL_IDENTITY_BINDING + dh_public)
    for bad in (unlabelled, other_signer):
        with pytest.raises(AuthenticationError):
            PublicIdentity.from_bytes(bad)


def test_public_identity_refuses_non_bytes() -> None:
    wire = Identity.generate().public.to_bytes()
    with pytest.raises(TypeError):
        PublicIdentity.from_bytes(bytearray(wire))  # type: ignore[arg-type]


# --- ID-02: equality ---------------------------------------------------------------------------


@pytest.mark.req("ID-02")
def test_public_identities_are_equal_exactly_when_their_keys_are() -> None:
    one, two = Identity.generate(), Identity.generate()
    same = PublicIdentity.from_bytes(one.public.to_bytes())
    assert same == one.public
    assert hash(same) == hash(one.public)
    assert same is not one.public
    assert one.public != two.public
    assert Identity.from_bytes(one.to_bytes()).public == one.public
    # Same Ed25519 key, other X25519 key (and the other way round): different identities.
    mixed_dh = Identity(SigningKey(one.to_bytes()[1:33]), X25519PrivateKey.generate())
    mixed_sign = Identity(SigningKey.generate(), X25519PrivateKey(one.to_bytes()[33:65]))
    assert mixed_dh.public != one.public
    assert mixed_sign.public != one.public
    assert one.public != one.public.to_bytes()  # not equal to its own bytes
    assert len({one.public, same, two.public}) == 2


@pytest.mark.req("ID-02")
def test_public_identity_equality_uses_the_constant_time_compare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = identity_module.constant_time_equal

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(identity_module, "constant_time_equal", recording)
    one, two = Identity.generate().public, Identity.generate().public
    assert one != two
    assert one == PublicIdentity.from_bytes(one.to_bytes())
    assert calls == [(one.key_bytes, two.key_bytes), (one.key_bytes, one.key_bytes)]


# --- ID-03: safety numbers -----------------------------------------------------------------------


def _reference_fingerprint(key_bytes: bytes) -> bytes:
    digest = hashlib.sha512(LABEL_FINGERPRINT + b"\x00\x01" + key_bytes).digest()
    for _ in range(5200):
        digest = hashlib.sha512(digest + key_bytes).digest()
    return digest[:32]


def _reference_digits(fingerprint: bytes) -> str:
    return "".join(
        f"{int.from_bytes(fingerprint[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


@pytest.mark.req("ID-03")
def test_safety_number_follows_the_spec_formula() -> None:
    a, b = Identity.generate().public, Identity.generate().public
    number = SafetyNumber.of(a, b)
    fa, fb = _reference_fingerprint(a.key_bytes), _reference_fingerprint(b.key_bytes)
    assert a.fingerprint() == fa
    assert b.fingerprint() == fb
    assert number.digits == "".join(sorted([_reference_digits(fa), _reference_digits(fb)]))
    assert number.qr_bytes == LABEL_SAFETY_NUMBER + b"\x01" + b"".join(sorted([fa, fb]))
    assert len(number.digits) == 60
    assert number.digits.isdigit()
    groups = str(number).split(" ")
    assert len(groups) == 12
    assert all(len(g) == 5 for g in groups)
    assert "".join(groups) == number.digits


@pytest.mark.req("ID-03")
def test_safety_number_is_the_same_in_either_order_and_on_both_sessions() -> None:
    parties = make_parties()
    a, b = start(parties)
    one = SafetyNumber.of(parties.alice.public, parties.bob.public)
    two = SafetyNumber.of(parties.bob.public, parties.alice.public)
    assert one == two
    assert one.matches(two)
    assert a.safety_number() == b.safety_number() == one


@pytest.mark.req("ID-03")
def test_safety_number_differs_when_either_identity_differs() -> None:
    a, b, c = (Identity.generate().public for _ in range(3))
    ab = SafetyNumber.of(a, b)
    for other in (SafetyNumber.of(a, c), SafetyNumber.of(c, b)):
        assert other.digits != ab.digits
        assert other.qr_bytes != ab.qr_bytes
        assert not ab.matches(other)
        assert not ab.matches(other.digits)
        assert not ab.matches(other.qr_bytes)


@pytest.mark.req("ID-03")
def test_safety_number_matches_digits_with_or_without_spaces_and_qr_bytes() -> None:
    number = SafetyNumber.of(Identity.generate().public, Identity.generate().public)
    assert number.matches(number.digits)
    assert number.matches(str(number))
    assert number.matches("  " + " \n".join(str(number).split(" ")) + "\t")
    assert number.matches(number.qr_bytes)
    last = number.digits[-1]
    wrong = number.digits[:-1] + ("1" if last == "0" else "0")
    assert not number.matches(wrong)
    assert not number.matches(number.digits[:-1])
    assert not number.matches(number.qr_bytes[:-1])


def test_safety_number_of_an_identity_with_itself_is_a_usage_mistake() -> None:
    a = Identity.generate().public
    with pytest.raises(ValueError):
        SafetyNumber.of(a, a)


# --- ID-04: the private identity -----------------------------------------------------------------


@pytest.mark.req("ID-04")
def test_private_identity_round_trips_through_65_versioned_bytes() -> None:
    identity = Identity.generate()
    raw = identity.to_bytes()
    assert len(raw) == 65
    assert raw[0] == IDENTITY_VERSION
    again = Identity.from_bytes(raw)
    assert again.to_bytes() == raw
    assert again.public == identity.public
    assert again.public.to_bytes() == identity.public.to_bytes()
    # The loaded identity signs for the same public key.
    signature = again._sign(b"label: message")
    identity.public.verify_key.verify(signature, b"label: message")


@pytest.mark.req("ID-04")
@pytest.mark.parametrize("size", [0, 1, 33, 64, 66, 129])
def test_private_identity_of_wrong_size_is_a_state_error(size: int) -> None:
    raw = Identity.generate().to_bytes()
    with pytest.raises(StateError):
        Identity.from_bytes((raw * 3)[:size])


@pytest.mark.req("ID-04")
@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_private_identity_of_unknown_version_is_a_state_error(version: int) -> None:
    raw = Identity.generate().to_bytes()
    with pytest.raises(StateError):
        Identity.from_bytes(bytes([version]) + raw[1:])


def test_private_identity_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        Identity.from_bytes(bytearray(Identity.generate().to_bytes()))  # type: ignore[arg-type]
