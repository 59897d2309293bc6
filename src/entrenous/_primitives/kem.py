"""ML-KEM-768 (FIPS 203) through cryptography (OpenSSL).

A private key is kept as its 64-byte seed (FIPS 203 ``d || z``), the compact form the standard
recommends for storage. Decapsulation uses implicit rejection: a wrong ciphertext of the right
length yields an unrelated shared secret, so a tampered handshake fails later, at the AEAD.
"""

from __future__ import annotations

import hmac
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import mlkem

from entrenous._primitives.dh import _check_len
from entrenous._primitives.rand import random_bytes
from entrenous.errors import InvalidKey

CIPHERTEXT_SIZE = 1088
SHARED_SECRET_SIZE = 32


class KemPublicKey:
    """An ML-KEM-768 encapsulation key (1184 bytes), checked as FIPS 203 requires."""

    SIZE: ClassVar[int] = 1184
    __slots__ = ("_key", "_raw")

    def __init__(self, raw: bytes) -> None:
        self._raw = _check_len("ML-KEM-768 public key", raw, self.SIZE)
        try:
            self._key = mlkem.MLKEM768PublicKey.from_public_bytes(self._raw)
        except ValueError:
            # The modulus check of FIPS 203 section 7.2 failed.
            raise InvalidKey("ML-KEM-768 public key fails the modulus check") from None

    @classmethod
    def from_bytes(cls, raw: bytes) -> KemPublicKey:
        """Load and check an encapsulation key."""
        return cls(raw)

    def to_bytes(self) -> bytes:
        """The 1184 raw bytes of the key."""
        return self._raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KemPublicKey):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Return ``(shared_secret, ciphertext)``: 32 bytes and 1088 bytes."""
        shared, ciphertext = self._key.encapsulate()
        return shared, ciphertext

    def __repr__(self) -> str:
        return f"KemPublicKey({self._raw[:4].hex()}…)"


class KemPrivateKey:
    """An ML-KEM-768 decapsulation key, kept as its 64-byte seed. Its repr shows no key bytes."""

    SEED_SIZE: ClassVar[int] = 64
    __slots__ = ("_key", "_public", "_seed")

    def __init__(self, seed: bytes) -> None:
        self._seed = _check_len("ML-KEM-768 seed", seed, self.SEED_SIZE)
        # Expanding the seed costs a key generation: done on first use, not on load, so that
        # loading a pool of many one-time prekeys stays cheap.
        self._key: mlkem.MLKEM768PrivateKey | None = None
        self._public: KemPublicKey | None = None

    @classmethod
    def generate(cls) -> KemPrivateKey:
        """A fresh key pair from the CSPRNG."""
        return cls(random_bytes(cls.SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> KemPrivateKey:
        """Load a key pair from its 64-byte seed."""
        return cls(seed)

    def to_seed(self) -> bytes:
        """The 64-byte secret seed. Handle with care: this is key material."""
        return self._seed

    def _expanded(self) -> mlkem.MLKEM768PrivateKey:
        if self._key is None:
            self._key = mlkem.MLKEM768PrivateKey.from_seed_bytes(self._seed)
        return self._key

    def public_key(self) -> KemPublicKey:
        """The matching encapsulation key."""
        if self._public is None:
            self._public = KemPublicKey(self._expanded().public_key().public_bytes_raw())
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """The 32-byte shared secret for ``ciphertext`` (implicit rejection on a bad one)."""
        ct = _check_len("ML-KEM-768 ciphertext", ciphertext, CIPHERTEXT_SIZE)
        return self._expanded().decapsulate(ct)

    def __repr__(self) -> str:
        return "KemPrivateKey(…)"
