"""Unit tests for :mod:`entrenous._primitives.kem` (ML-KEM-768)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from entrenous._primitives.kem import (
    CIPHERTEXT_SIZE,
    SHARED_SECRET_SIZE,
    KemPrivateKey,
    KemPublicKey,
)
from entrenous.errors import InvalidKey, PeerError

SEED = bytes(range(64))
Q = 3329  # the ML-KEM modulus (FIPS 203 section 2.4)


def _with_coefficient(ek: bytes, index: int, value: int) -> bytes:
    """``ek`` with the ``index``-th 12-bit coefficient of its ByteEncode12'd vector t set to
    ``value`` (FIPS 203 algorithm 5: two coefficients per three bytes, little-endian)."""
    out = bytearray(ek)
    pair, odd = divmod(index, 2)
    b = 3 * pair
    if odd:
        out[b + 1] = (out[b + 1] & 0x0F) | ((value & 0x0F) << 4)
        out[b + 2] = value >> 4
    else:
        out[b] = value & 0xFF
        out[b + 1] = (out[b + 1] & 0xF0) | (value >> 8)
    return bytes(out)


def _coefficient(ek: bytes, index: int) -> int:
    pair, odd = divmod(index, 2)
    b = 3 * pair
    if odd:
        return (ek[b + 1] >> 4) | (ek[b + 2] << 4)
    return ek[b] | ((ek[b + 1] & 0x0F) << 8)


# --- sizes and types --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_seed_must_be_64_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="ML-KEM-768 seed must be 64 bytes"):
        KemPrivateKey.from_seed(bytes(size))


@pytest.mark.parametrize("size", [0, 1183, 1185, 1568])
def test_public_key_must_be_1184_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="ML-KEM-768 public key must be 1184 bytes"):
        KemPublicKey.from_bytes(bytes(size))


@pytest.mark.parametrize("size", [0, 32, 1087, 1089, 1568])
def test_ciphertext_must_be_1088_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="ML-KEM-768 ciphertext must be 1088 bytes"):
        KemPrivateKey.from_seed(SEED).decapsulate(bytes(size))


def test_inputs_must_be_bytes() -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        KemPrivateKey.from_seed(SEED.hex())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be bytes"):
        KemPublicKey.from_bytes("00" * 1184)  # type: ignore[arg-type]


# --- round trips ------------------------------------------------------------------------------


def test_encapsulate_decapsulate_round_trip() -> None:
    private = KemPrivateKey.generate()
    shared, ciphertext = private.public_key().encapsulate()
    assert len(shared) == SHARED_SECRET_SIZE == 32
    assert len(ciphertext) == CIPHERTEXT_SIZE == 1088
    assert private.decapsulate(ciphertext) == shared
    # Encapsulation is randomised: a second one gives a different secret and ciphertext.
    shared2, ciphertext2 = private.public_key().encapsulate()
    assert (shared2, ciphertext2) != (shared, ciphertext)
    assert private.decapsulate(ciphertext2) == shared2


def test_seed_and_public_key_round_trip() -> None:
    private = KemPrivateKey.generate()
    again = KemPrivateKey.from_seed(private.to_seed())
    assert again.to_seed() == private.to_seed()
    assert again.public_key().to_bytes() == private.public_key().to_bytes()
    public = KemPublicKey.from_bytes(private.public_key().to_bytes())
    assert len(public.to_bytes()) == KemPublicKey.SIZE == 1184
    shared, ciphertext = public.encapsulate()
    assert private.decapsulate(ciphertext) == shared


def test_keygen_is_deterministic_from_the_seed() -> None:
    assert (
        KemPrivateKey.from_seed(SEED).public_key().to_bytes()
        == KemPrivateKey.from_seed(bytes(SEED)).public_key().to_bytes()
    )
    assert (
        KemPrivateKey.from_seed(SEED).public_key().to_bytes()
        != KemPrivateKey.from_seed(bytes(64)).public_key().to_bytes()
    )


def test_implicit_rejection_of_a_tampered_ciphertext() -> None:
    """A wrong ciphertext of the right size yields an unrelated secret, never an exception."""
    private = KemPrivateKey.from_seed(SEED)
    shared, ciphertext = private.public_key().encapsulate()
    for position in (0, 1, CIPHERTEXT_SIZE // 2, CIPHERTEXT_SIZE - 1):
        tampered = bytearray(ciphertext)
        tampered[position] ^= 0x01
        rejected = private.decapsulate(bytes(tampered))
        assert len(rejected) == SHARED_SECRET_SIZE
        assert rejected != shared
        assert private.decapsulate(bytes(tampered)) == rejected  # deterministic


# --- PRIM-03: the FIPS 203 modulus check ------------------------------------------------------


@pytest.mark.req("PRIM-03")
@pytest.mark.parametrize("index", [0, 1, 255, 256, 511, 767])
@pytest.mark.parametrize("value", [Q, Q + 1, 0xFFF])
def test_coefficient_not_reduced_mod_q_is_refused(index: int, value: int) -> None:
    ek = KemPrivateKey.from_seed(SEED).public_key().to_bytes()
    bad = _with_coefficient(ek, index, value)
    assert _coefficient(bad, index) == value
    assert bad[-32:] == ek[-32:]
    with pytest.raises(InvalidKey) as excinfo:
        KemPublicKey.from_bytes(bad)
    assert isinstance(excinfo.value, PeerError)


@pytest.mark.req("PRIM-03")
def test_largest_reduced_coefficient_is_accepted() -> None:
    ek = KemPrivateKey.from_seed(SEED).public_key().to_bytes()
    for index in (0, 767):
        edited = _with_coefficient(ek, index, Q - 1)
        assert KemPublicKey.from_bytes(edited).to_bytes() == edited


@pytest.mark.req("PRIM-03")
def test_rho_is_not_part_of_the_modulus_check() -> None:
    # The last 32 bytes are the seed rho of the matrix A: any value is allowed.
    ek = KemPrivateKey.from_seed(SEED).public_key().to_bytes()
    edited = ek[:-32] + b"\xff" * 32
    assert KemPublicKey.from_bytes(edited).to_bytes() == edited


# --- reprs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [SEED, None])
def test_private_key_repr_shows_no_secret(
    seed: bytes | None, assert_no_secret: Callable[[str, bytes], None]
) -> None:
    key = KemPrivateKey.generate() if seed is None else KemPrivateKey.from_seed(seed)
    raw = key.to_seed()
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert "KemPrivateKey(" in text
        assert_no_secret(text, raw)
        assert_no_secret(text, raw[:32])  # d
        assert_no_secret(text, raw[32:])  # z


def test_public_key_repr_names_the_type() -> None:
    assert repr(KemPrivateKey.from_seed(SEED).public_key()).startswith("KemPublicKey(")
