"""Unit tests for :mod:`entrenous._primitives.dh` (X25519)."""

from __future__ import annotations

from collections.abc import Callable

import nacl.bindings
import pytest

from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous.errors import InvalidKey, PeerError

h = bytes.fromhex

FIXED = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")

# The points of small order on Curve25519 and its twist (the list libsodium and RFC 7748
# section 6.1's all-zero check guard against), their non-canonical encodings (p, p + 1), and the
# same values with the top bit set (RFC 7748 section 5 masks that bit, so they are the same points).
LOW_ORDER_POINTS = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # 0
    "0100000000000000000000000000000000000000000000000000000000000000",  # 1
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",  # order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p (= 0)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1 (= 1)
    "0000000000000000000000000000000000000000000000000000000000000080",  # 0, top bit set
    "0100000000000000000000000000000000000000000000000000000000000080",  # 1, top bit set
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",  # order 8, top bit set
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",  # order 8, top bit set
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # p - 1, top bit set
]


# --- sizes and types --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_private_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="X25519 private key must be 32 bytes"):
        X25519PrivateKey.from_bytes(bytes(size))


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_public_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="X25519 public key must be 32 bytes"):
        X25519PublicKey.from_bytes(bytes(size))


@pytest.mark.parametrize("value", ["00" * 32, 32, None, [0] * 32])
def test_keys_must_be_bytes(value: object) -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        X25519PrivateKey.from_bytes(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be bytes"):
        X25519PublicKey.from_bytes(value)  # type: ignore[arg-type]


def test_bytes_like_inputs_are_copied_to_bytes() -> None:
    source = bytearray(FIXED)
    key = X25519PrivateKey.from_bytes(source)
    source[0] ^= 1
    assert key.to_bytes() == FIXED
    assert type(key.to_bytes()) is bytes
    public = X25519PublicKey.from_bytes(memoryview(key.public_key().to_bytes()))
    assert type(public.to_bytes()) is bytes
    assert public == key.public_key()


# --- round trips and agreement ----------------------------------------------------------------


def test_round_trip() -> None:
    key = X25519PrivateKey.generate()
    again = X25519PrivateKey.from_bytes(key.to_bytes())
    assert again.to_bytes() == key.to_bytes()
    assert again.public_key() == key.public_key()
    public = X25519PublicKey.from_bytes(key.public_key().to_bytes())
    assert public == key.public_key()
    assert len(key.to_bytes()) == len(public.to_bytes()) == 32


def test_exchange_agrees() -> None:
    alice, bob = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    shared = alice.exchange(bob.public_key())
    assert shared == bob.exchange(alice.public_key())
    assert len(shared) == 32
    assert shared != bytes(32)


def test_generated_keys_differ() -> None:
    keys = {X25519PrivateKey.generate().to_bytes() for _ in range(8)}
    assert len(keys) == 8


# --- equality ---------------------------------------------------------------------------------


def test_public_key_equality() -> None:
    a = X25519PrivateKey.from_bytes(FIXED).public_key()
    same = X25519PublicKey.from_bytes(a.to_bytes())
    other = X25519PrivateKey.generate().public_key()
    assert a == same
    assert (a != same) is False
    assert hash(a) == hash(same)
    assert a != other
    assert (a == other) is False
    # A key never equals its raw bytes or another type.
    assert a != a.to_bytes()
    assert a != FIXED


def test_public_key_equality_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """``==`` uses libsodium's constant-time ``sodium_memcmp``, for equal and unequal keys."""
    calls: list[tuple[bytes, bytes]] = []
    real = nacl.bindings.sodium_memcmp

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(nacl.bindings, "sodium_memcmp", spy)
    a = X25519PrivateKey.from_bytes(FIXED).public_key()
    b = X25519PrivateKey.generate().public_key()
    assert a == X25519PublicKey.from_bytes(a.to_bytes())
    assert a != b
    assert len(calls) == 2


# --- PRIM-01: all-zero output ------------------------------------------------------------------


@pytest.mark.req("PRIM-01")
@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_low_order_point_raises_invalid_key(point: str) -> None:
    key = X25519PrivateKey.generate()
    with pytest.raises(InvalidKey) as excinfo:
        key.exchange(X25519PublicKey.from_bytes(h(point)))
    assert isinstance(excinfo.value, PeerError)


@pytest.mark.req("PRIM-01")
def test_all_zero_output_raises_even_if_libsodium_returned_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: the wrapper's own all-zero check, should libsodium ever not refuse."""
    monkeypatch.setattr(nacl.bindings, "crypto_scalarmult", lambda n, p: bytes(32))
    key = X25519PrivateKey.from_bytes(FIXED)
    peer = X25519PrivateKey.generate().public_key()
    with pytest.raises(InvalidKey):
        key.exchange(peer)


@pytest.mark.req("PRIM-01")
def test_invalid_key_message_shows_no_key_material(
    assert_no_secret: Callable[[str, bytes], None],
) -> None:
    key = X25519PrivateKey.from_bytes(FIXED)
    with pytest.raises(InvalidKey) as excinfo:
        key.exchange(X25519PublicKey.from_bytes(h(LOW_ORDER_POINTS[2])))
    assert_no_secret(str(excinfo.value), FIXED)
    assert_no_secret(repr(excinfo.value), FIXED)


# --- reprs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [FIXED, bytes(range(32)), None])
def test_private_key_repr_shows_no_secret(
    secret: bytes | None, assert_no_secret: Callable[[str, bytes], None]
) -> None:
    key = X25519PrivateKey.generate() if secret is None else X25519PrivateKey.from_bytes(secret)
    raw = key.to_bytes()
    for text in (repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})):
        assert text.startswith(("X25519PrivateKey(", "[X25519PrivateKey(", "{'k': X25519P"))
        assert_no_secret(text, raw)


def test_public_key_repr_names_the_type() -> None:
    public = X25519PrivateKey.from_bytes(FIXED).public_key()
    assert repr(public).startswith("X25519PublicKey(")
