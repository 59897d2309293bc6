"""Unit tests for :mod:`entrenous._primitives.sign` (Ed25519)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import nacl.bindings
import pytest

from entrenous._primitives.sign import SIGNATURE_SIZE, SigningKey, VerifyKey
from entrenous.errors import AuthenticationError, PeerError

SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
MESSAGE = b"entrenous test message"
# The order of the Ed25519 base point (RFC 8032 section 5.1).
L = 2**252 + 27742317777372353535851937790883648493
OPAQUE = str(AuthenticationError())


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _refused(key: VerifyKey, signature: bytes, message: bytes) -> None:
    with pytest.raises(AuthenticationError) as excinfo:
        key.verify(signature, message)
    assert str(excinfo.value) == OPAQUE
    assert excinfo.value.__cause__ is None


# --- sizes and types --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_seed_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="Ed25519 seed must be 32 bytes"):
        SigningKey.from_seed(bytes(size))


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_verify_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="Ed25519 public key must be 32 bytes"):
        VerifyKey.from_bytes(bytes(size))


def test_keys_must_be_bytes() -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        SigningKey.from_seed(SEED.hex())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be bytes"):
        VerifyKey.from_bytes(SEED.hex())  # type: ignore[arg-type]


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.req("PRIM-02")
def test_sign_verify_round_trip() -> None:
    key = SigningKey.generate()
    signature = key.sign(MESSAGE)
    assert len(signature) == SIGNATURE_SIZE == 64
    assert type(signature) is bytes
    assert key.verify_key.verify(signature, MESSAGE) is None
    assert VerifyKey.from_bytes(key.verify_key.to_bytes()).verify(signature, MESSAGE) is None


def test_seed_round_trip_and_determinism() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_seed(key.to_seed())
    assert again.to_seed() == key.to_seed()
    assert again.verify_key == key.verify_key
    assert again.sign(MESSAGE) == key.sign(MESSAGE)  # Ed25519 signatures are deterministic
    assert key.sign(b"") != key.sign(MESSAGE)


def test_verify_key_equality() -> None:
    a = SigningKey.from_seed(SEED).verify_key
    same = VerifyKey.from_bytes(a.to_bytes())
    other = SigningKey.generate().verify_key
    assert a == same
    assert hash(a) == hash(same)
    assert a != other
    assert (a == other) is False
    assert a != a.to_bytes()


def test_verify_key_equality_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = nacl.bindings.sodium_memcmp

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(nacl.bindings, "sodium_memcmp", spy)
    a = SigningKey.from_seed(SEED).verify_key
    assert a == VerifyKey.from_bytes(a.to_bytes())
    assert a != SigningKey.generate().verify_key
    assert len(calls) == 2


# --- PRIM-02: every failure is the one AuthenticationError ------------------------------------


@pytest.mark.req("PRIM-02")
def test_every_bit_flip_of_the_message_is_refused() -> None:
    key = SigningKey.from_seed(SEED)
    signature = key.sign(MESSAGE)
    for bit in range(len(MESSAGE) * 8):
        _refused(key.verify_key, signature, _flip(MESSAGE, bit))


@pytest.mark.req("PRIM-02")
@pytest.mark.parametrize(
    "modified", [b"", MESSAGE[:-1], MESSAGE + b"\x00", b"\x00" + MESSAGE, MESSAGE.upper()]
)
def test_modified_message_is_refused(modified: bytes) -> None:
    key = SigningKey.from_seed(SEED)
    _refused(key.verify_key, key.sign(MESSAGE), modified)


@pytest.mark.req("PRIM-02")
def test_every_bit_flip_of_the_signature_is_refused() -> None:
    key = SigningKey.from_seed(SEED)
    signature = key.sign(MESSAGE)
    for bit in range(SIGNATURE_SIZE * 8):
        _refused(key.verify_key, _flip(signature, bit), MESSAGE)


@pytest.mark.req("PRIM-02")
@pytest.mark.parametrize("length", [0, 1, 32, 63, 65, 96, 128])
def test_wrong_length_signature_is_an_authentication_error(length: int) -> None:
    key = SigningKey.from_seed(SEED)
    signature = (key.sign(MESSAGE) * 2)[:length]
    _refused(key.verify_key, signature, MESSAGE)


@pytest.mark.req("PRIM-02")
def test_signature_with_trailing_bytes_is_refused() -> None:
    key = SigningKey.from_seed(SEED)
    _refused(key.verify_key, key.sign(MESSAGE) + b"\x00", MESSAGE)


@pytest.mark.req("PRIM-02")
def test_signature_from_another_key_is_refused() -> None:
    signature = SigningKey.generate().sign(MESSAGE)
    _refused(SigningKey.from_seed(SEED).verify_key, signature, MESSAGE)


@pytest.mark.req("PRIM-02")
def test_non_canonical_s_is_refused() -> None:
    """Strict verification: S + L verifies under a lax verifier, never here (malleability)."""
    key = SigningKey.from_seed(SEED)
    signature = key.sign(MESSAGE)
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + L).to_bytes(32, "little")
    _refused(key.verify_key, malleated, MESSAGE)


@pytest.mark.req("PRIM-02")
def test_small_order_public_key_is_refused() -> None:
    """Strict verification: with the identity as public key and R, S = 0 "signs" every message
    under a cofactorless lax verifier; libsodium refuses small-order keys and R."""
    identity = bytes([1]) + bytes(31)
    _refused(VerifyKey.from_bytes(identity), identity + bytes(32), MESSAGE)
    _refused(VerifyKey.from_bytes(identity), identity + bytes(32), b"")


@pytest.mark.req("PRIM-02")
def test_public_key_not_on_the_curve_is_refused_at_verify() -> None:
    # y = 2 has no x on edwards25519: the key loads (only its size is checked) but never verifies.
    bad = bytes([2]) + bytes(31)
    key = VerifyKey.from_bytes(bad)
    _refused(key, SigningKey.from_seed(SEED).sign(MESSAGE), MESSAGE)


# --- reprs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [SEED, bytes(range(32)), None])
def test_signing_key_repr_shows_no_secret(
    seed: bytes | None, assert_no_secret: Callable[[str, bytes], None]
) -> None:
    key = SigningKey.generate() if seed is None else SigningKey.from_seed(seed)
    raw = key.to_seed()
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert "SigningKey(" in text
        assert_no_secret(text, raw)
        # Nor the secret scalar and prefix derived from it (SHA-512 of the seed, RFC 8032 5.1.5).
        assert_no_secret(text, hashlib.sha512(raw).digest())


def test_verify_key_repr_names_the_type() -> None:
    assert repr(SigningKey.from_seed(SEED).verify_key).startswith("VerifyKey(")


@pytest.mark.req("PRIM-02")
def test_authentication_error_is_a_peer_error() -> None:
    assert issubclass(AuthenticationError, PeerError)
