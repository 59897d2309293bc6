"""Ed25519 (RFC 8032) signatures through libsodium.

libsodium's verification is strict: it refuses non-canonical encodings and small-order keys.
A failed verification raises the opaque :class:`~entrenous.errors.AuthenticationError`.
"""

from __future__ import annotations

from typing import ClassVar

import nacl.bindings
import nacl.exceptions

from entrenous._primitives.dh import _check_len
from entrenous._primitives.rand import random_bytes
from entrenous.errors import AuthenticationError

SIGNATURE_SIZE = 64


class VerifyKey:
    """An Ed25519 public key (32 bytes)."""

    SIZE: ClassVar[int] = 32
    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = _check_len("Ed25519 public key", raw, self.SIZE)

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        """Load a verify key from its 32 raw bytes."""
        return cls(raw)

    def to_bytes(self) -> bytes:
        """The 32 raw bytes of the key."""
        return self._raw

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check ``signature`` over ``message``; raise :class:`AuthenticationError` if it fails."""
        if len(signature) != SIGNATURE_SIZE:
            raise AuthenticationError()
        try:
            nacl.bindings.crypto_sign_open(bytes(signature) + bytes(message), self._raw)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.RuntimeError, ValueError):
            raise AuthenticationError() from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return nacl.bindings.sodium_memcmp(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self._raw[:4].hex()}…)"


class SigningKey:
    """An Ed25519 signing key, kept as its 32-byte seed. Its repr never shows key bytes."""

    SIZE: ClassVar[int] = 32
    __slots__ = ("_seed", "_sk", "_verify_key")

    def __init__(self, seed: bytes) -> None:
        self._seed = _check_len("Ed25519 seed", seed, self.SIZE)
        pk, self._sk = nacl.bindings.crypto_sign_seed_keypair(self._seed)
        self._verify_key = VerifyKey(pk)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh signing key from the CSPRNG."""
        return cls(random_bytes(cls.SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Load a signing key from its 32-byte seed."""
        return cls(seed)

    def to_seed(self) -> bytes:
        """The 32-byte secret seed. Handle with care: this is key material."""
        return self._seed

    @property
    def verify_key(self) -> VerifyKey:
        """The matching public key."""
        return self._verify_key

    def sign(self, message: bytes) -> bytes:
        """A 64-byte detached signature over ``message``."""
        return bytes(nacl.bindings.crypto_sign(bytes(message), self._sk)[:SIGNATURE_SIZE])

    def __repr__(self) -> str:
        return f"SigningKey(public={self._verify_key.to_bytes()[:4].hex()}…)"
