"""Unit tests for :mod:`entrenous._primitives.aead` (ChaCha20-Poly1305)."""

from __future__ import annotations

import pytest

from entrenous._primitives import aead
from entrenous.errors import AuthenticationError, PeerError

KEY = bytes(range(32))
NONCE = bytes(range(100, 112))
AD = b"associated data"
PLAINTEXT = b"attack at dawn, bring the good snacks"
OPAQUE = str(AuthenticationError())


def _refused(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> AuthenticationError:
    """``open_`` must raise the one opaque error, chaining nothing from the library."""
    with pytest.raises(AuthenticationError) as excinfo:
        aead.open_(key, nonce, ciphertext, ad)
    error = excinfo.value
    assert type(error) is AuthenticationError
    assert str(error) == OPAQUE
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


# --- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="AEAD key must be 32 bytes"):
        aead.seal(bytes(size), NONCE, PLAINTEXT, AD)
    with pytest.raises(ValueError, match="AEAD key must be 32 bytes"):
        aead.open_(bytes(size), NONCE, bytes(32), AD)


@pytest.mark.parametrize("size", [0, 8, 11, 13, 24])
def test_nonce_must_be_12_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="AEAD nonce must be 12 bytes"):
        aead.seal(KEY, bytes(size), PLAINTEXT, AD)
    with pytest.raises(ValueError, match="AEAD nonce must be 12 bytes"):
        aead.open_(KEY, bytes(size), bytes(32), AD)


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_a_sealer_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="AEAD key must be 32 bytes"):
        aead.sealer(bytes(size))


@pytest.mark.parametrize("size", [0, 11, 13])
def test_a_sealer_nonce_must_be_12_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="AEAD nonce must be 12 bytes"):
        aead.sealer(KEY)(bytes(size), PLAINTEXT, AD)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.req("PRIM-04")
@pytest.mark.parametrize("plaintext", [b"", b"x", PLAINTEXT, bytes(64), bytes(1000)])
@pytest.mark.parametrize("ad", [b"", AD])
def test_round_trip(plaintext: bytes, ad: bytes) -> None:
    sealed = aead.seal(KEY, NONCE, plaintext, ad)
    assert len(sealed) == len(plaintext) + aead.TAG_SIZE
    assert aead.open_(KEY, NONCE, sealed, ad) == plaintext


@pytest.mark.req("PRIM-04")
def test_a_sealer_seals_as_seal_does_for_each_nonce() -> None:
    seal = aead.sealer(KEY)
    for nonce in (NONCE, bytes(12), b"\xff" * 12):
        assert seal(nonce, PLAINTEXT, AD) == aead.seal(KEY, nonce, PLAINTEXT, AD)
        assert aead.open_(KEY, nonce, seal(nonce, PLAINTEXT, AD), AD) == PLAINTEXT


def test_sizes_are_the_rfc_8439_sizes() -> None:
    assert (aead.KEY_SIZE, aead.NONCE_SIZE, aead.TAG_SIZE) == (32, 12, 16)


# --- PRIM-04: every failure is the one opaque AuthenticationError -----------------------------


@pytest.mark.req("PRIM-04")
def test_every_single_bit_flip_is_refused_with_the_same_error() -> None:
    sealed = aead.seal(KEY, NONCE, PLAINTEXT, AD)
    messages = set()
    for bit in range(len(sealed) * 8):  # ciphertext and tag
        tampered = bytearray(sealed)
        tampered[bit // 8] ^= 1 << (bit % 8)
        messages.add(str(_refused(KEY, NONCE, bytes(tampered), AD)))
    assert messages == {OPAQUE}


@pytest.mark.req("PRIM-04")
def test_every_truncation_is_refused_with_the_same_error() -> None:
    sealed = aead.seal(KEY, NONCE, PLAINTEXT, AD)
    # Lengths below the tag size and at or above it take different paths in the wrapper: both
    # must give the same error.
    messages = {str(_refused(KEY, NONCE, sealed[:length], AD)) for length in range(len(sealed))}
    assert messages == {OPAQUE}


@pytest.mark.req("PRIM-04")
def test_empty_plaintext_tag_flips_and_truncations_are_refused() -> None:
    sealed = aead.seal(KEY, NONCE, b"", AD)
    assert len(sealed) == aead.TAG_SIZE
    for bit in range(len(sealed) * 8):
        tampered = bytearray(sealed)
        tampered[bit // 8] ^= 1 << (bit % 8)
        _refused(KEY, NONCE, bytes(tampered), AD)
    for length in range(len(sealed)):
        _refused(KEY, NONCE, sealed[:length], AD)


@pytest.mark.req("PRIM-04")
def test_extension_is_refused() -> None:
    sealed = aead.seal(KEY, NONCE, PLAINTEXT, AD)
    _refused(KEY, NONCE, sealed + b"\x00", AD)
    _refused(KEY, NONCE, b"\x00" + sealed, AD)


@pytest.mark.req("PRIM-04")
def test_wrong_key_nonce_or_ad_is_refused_with_the_same_error() -> None:
    sealed = aead.seal(KEY, NONCE, PLAINTEXT, AD)
    other_key = bytes(32)
    other_nonce = bytes(12)
    errors = [
        _refused(other_key, NONCE, sealed, AD),
        _refused(KEY, other_nonce, sealed, AD),
        _refused(KEY, NONCE, sealed, b""),
        _refused(KEY, NONCE, sealed, AD + b"\x00"),
        _refused(KEY, NONCE, sealed, AD[:-1]),
    ]
    assert {str(e) for e in errors} == {OPAQUE}
    assert {repr(e) for e in errors} == {repr(AuthenticationError())}


@pytest.mark.req("PRIM-04")
def test_authentication_error_is_a_peer_error() -> None:
    assert issubclass(AuthenticationError, PeerError)
