"""X25519 (RFC 7748) through libsodium's ``crypto_scalarmult``.

An exchange whose output is all zero (the peer sent a low-order point) raises
:class:`~entrenous.errors.InvalidKey`: the protocol never feeds such a value into a KDF.
"""

from __future__ import annotations

import hmac
from typing import ClassVar

import nacl.bindings
import nacl.exceptions

from entrenous._primitives.rand import random_bytes
from entrenous.errors import InvalidKey

_ZERO32 = bytes(32)
_P = 2**255 - 19
#: u-coordinates of the points of small order (1, 2, 4 and 8) and their non-canonical
#: encodings below 2^255: X25519 with any of them gives an all-zero output. Libsodium refuses the
#: same list (``has_small_order`` in its X25519 implementation); bit 255 is ignored by X25519.
_LOW_ORDER = frozenset(
    u.to_bytes(32, "little")
    for u in (
        0,
        1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
        _P - 1,
        _P,
        _P + 1,
    )
)


def _check_len(name: str, data: bytes, size: int) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes")
    data = bytes(data)
    if len(data) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(data)}")
    return data


class X25519PublicKey:
    """An X25519 public key (32 bytes)."""

    SIZE: ClassVar[int] = 32
    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = _check_len("X25519 public key", raw, self.SIZE)

    @classmethod
    def from_bytes(cls, raw: bytes) -> X25519PublicKey:
        """Load a public key from its 32 raw bytes."""
        return cls(raw)

    def to_bytes(self) -> bytes:
        """The 32 raw bytes of the key."""
        return self._raw

    def check_not_low_order(self) -> None:
        """Raise :class:`InvalidKey` if this key is of low order (checked without a DH).

        For keys whose exchange is deferred (the peer's first ratchet key): an exchange with a
        low-order key would give an all-zero output.
        """
        masked = self._raw[:31] + bytes([self._raw[31] & 0x7F])
        if masked in _LOW_ORDER:
            raise InvalidKey("X25519 public key of low order")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, X25519PublicKey):
            return NotImplemented
        return nacl.bindings.sodium_memcmp(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"X25519PublicKey({self._raw[:4].hex()}…)"


class X25519PrivateKey:
    """An X25519 private key. Its repr never shows key bytes."""

    SIZE: ClassVar[int] = 32
    __slots__ = ("_public", "_raw")

    def __init__(self, raw: bytes) -> None:
        self._raw = _check_len("X25519 private key", raw, self.SIZE)
        self._public = X25519PublicKey(nacl.bindings.crypto_scalarmult_base(self._raw))

    @classmethod
    def generate(cls) -> X25519PrivateKey:
        """A fresh private key from the CSPRNG."""
        return cls(random_bytes(cls.SIZE))

    @classmethod
    def from_bytes(cls, raw: bytes) -> X25519PrivateKey:
        """Load a private key from its 32 raw bytes (clamping happens inside libsodium)."""
        return cls(raw)

    def to_bytes(self) -> bytes:
        """The 32 raw secret bytes. Handle with care: this is key material."""
        return self._raw

    def public_key(self) -> X25519PublicKey:
        """The matching public key."""
        return self._public

    def exchange(self, peer: X25519PublicKey) -> bytes:
        """X25519(self, peer). Raises :class:`InvalidKey` when the result is all zero."""
        try:
            shared = nacl.bindings.crypto_scalarmult(self._raw, peer.to_bytes())
        except nacl.exceptions.RuntimeError:
            # libsodium refuses an all-zero output (a low-order peer point).
            raise InvalidKey("X25519 public key of low order") from None
        if hmac.compare_digest(shared, _ZERO32):
            raise InvalidKey("X25519 public key of low order")
        return shared

    def __repr__(self) -> str:
        return f"X25519PrivateKey(public={self._public.to_bytes()[:4].hex()}…)"
