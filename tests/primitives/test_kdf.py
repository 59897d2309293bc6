"""Unit tests for :mod:`entrenous._primitives.kdf` (HKDF-SHA256, HMAC, SHA-256)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from entrenous._primitives.kdf import (
    constant_time_equal,
    hkdf_sha256,
    hmac_sha256,
    hmac_sha512,
    sha256,
)

IKM = bytes(range(32))
SALT = b"salt"


# --- PRIM-05: every HKDF call carries a non-empty info label ---------------------------------


@pytest.mark.req("PRIM-05")
@pytest.mark.parametrize("salt", [b"", SALT])
@pytest.mark.parametrize("length", [1, 32, 64])
def test_hkdf_refuses_empty_info(salt: bytes, length: int) -> None:
    with pytest.raises(ValueError, match="info label"):
        hkdf_sha256(IKM, salt=salt, info=b"", length=length)


@pytest.mark.req("PRIM-05")
def test_hkdf_info_separates_domains() -> None:
    labels = [b"a", b"b", b"entrenous root", b"entrenous chain", b"entrenous chain\x00"]
    outputs = {hkdf_sha256(IKM, salt=SALT, info=label, length=32) for label in labels}
    assert len(outputs) == len(labels)


@pytest.mark.req("PRIM-05")
def test_hkdf_info_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        hkdf_sha256(IKM, SALT, b"label", 32)  # type: ignore[misc]


def test_hkdf_is_deterministic_and_depends_on_every_input() -> None:
    base = hkdf_sha256(IKM, salt=SALT, info=b"label", length=32)
    assert base == hkdf_sha256(IKM, salt=SALT, info=b"label", length=32)
    assert base != hkdf_sha256(IKM[::-1], salt=SALT, info=b"label", length=32)
    assert base != hkdf_sha256(IKM, salt=b"other", info=b"label", length=32)


@pytest.mark.parametrize("length", [1, 16, 32, 33, 64, 255 * 32])
def test_hkdf_length(length: int) -> None:
    out = hkdf_sha256(IKM, salt=SALT, info=b"label", length=length)
    assert len(out) == length
    # A shorter output is a prefix of a longer one (RFC 5869 section 2.3).
    assert hkdf_sha256(IKM, salt=SALT, info=b"label", length=255 * 32)[:length] == out


def test_hkdf_refuses_more_than_255_blocks() -> None:
    with pytest.raises(ValueError):
        hkdf_sha256(IKM, salt=SALT, info=b"label", length=255 * 32 + 1)


# --- HMAC and SHA-256 -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"k", bytes(32), bytes(200)])
@pytest.mark.parametrize("message", [b"", b"message", bytes(1000)])
def test_hmac_matches_the_standard_library(key: bytes, message: bytes) -> None:
    tag256 = hmac_sha256(key, message)
    tag512 = hmac_sha512(key, message)
    assert len(tag256) == 32
    assert len(tag512) == 64
    assert tag256 == hmac.new(key, message, hashlib.sha256).digest()
    assert tag512 == hmac.new(key, message, hashlib.sha512).digest()


def test_sha256_of_parts_is_sha256_of_the_concatenation() -> None:
    assert sha256() == hashlib.sha256(b"").digest()
    assert sha256(b"abc") == hashlib.sha256(b"abc").digest()
    assert sha256(b"a", b"", b"bc") == hashlib.sha256(b"abc").digest()


def test_constant_time_equal() -> None:
    assert constant_time_equal(b"", b"")
    assert constant_time_equal(bytes(32), bytes(32))
    assert not constant_time_equal(bytes(32), bytes(31) + b"\x01")
    assert not constant_time_equal(bytes(32), bytes(31))
