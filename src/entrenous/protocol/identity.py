"""Long-term identities and the safety number two people compare.

An identity is two keys bound together: an Ed25519 signing key (signs prekey bundles, consent
records, erasure receipts) and an X25519 key-agreement key (used in the handshake). The binding is
an Ed25519 signature over the X25519 public key, under its own label; a public identity whose
binding does not verify is refused (ID-01).

Wire form of a public identity (129 bytes)::

    version (1 byte, 0x01) || Ed25519 public (32) || X25519 public (32) || binding signature (64)

The safety number follows Signal's numeric fingerprint: each side's fingerprint is an iterated
SHA-512 over its keys; the two 30-digit halves are sorted, so both people compute the same
60 digits whatever the order (ID-03).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous._primitives.kdf import constant_time_equal
from entrenous._primitives.sign import SigningKey, VerifyKey
from entrenous.errors import MalformedBundle, StateError, UnsupportedVersion
from entrenous.protocol.constants import (
    IDENTITY_VERSION,
    LABEL_FINGERPRINT,
    LABEL_IDENTITY_BINDING,
    LABEL_SAFETY_NUMBER,
)

#: Iterations of the fingerprint hash, as in Signal's NumericFingerprintGenerator: it makes a
#: search for a second identity with the same 30 digits cost 5200 hashes per attempt.
FINGERPRINT_ITERATIONS = 5200
SAFETY_NUMBER_VERSION = 1


class PublicIdentity:
    """The public half of an identity: what a peer sees, stores and compares.

    Two public identities are equal when their keys are equal (compared in constant time).
    """

    SIZE: ClassVar[int] = 129
    __slots__ = ("_bytes", "_dh", "_keys", "_verify")

    def __init__(self, verify_key: VerifyKey, dh_key: X25519PublicKey, binding: bytes) -> None:
        self._verify = verify_key
        self._dh = dh_key
        self._keys = verify_key.to_bytes() + dh_key.to_bytes()
        self._bytes = bytes([IDENTITY_VERSION]) + self._keys + binding

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicIdentity:
        """Parse and verify a serialised public identity.

        Raises :class:`MalformedBundle` for a wrong size, :class:`UnsupportedVersion` for an
        unknown version and :class:`AuthenticationError` when the binding signature fails.
        """
        if not isinstance(data, bytes):
            raise TypeError("a public identity must be bytes")
        if len(data) != cls.SIZE:
            raise MalformedBundle(f"a public identity must be {cls.SIZE} bytes, got {len(data)}")
        if data[0] != IDENTITY_VERSION:
            raise UnsupportedVersion("identity", data[0])
        verify_key = VerifyKey(data[1:33])
        dh_key = X25519PublicKey(data[33:65])
        binding = data[65:]
        verify_key.verify(binding, LABEL_IDENTITY_BINDING + dh_key.to_bytes())
        dh_key.check_not_low_order()
        return cls(verify_key, dh_key, binding)

    @classmethod
    def _from_trusted_bytes(cls, data: bytes) -> PublicIdentity:
        # For identities read back from our own encrypted state: already verified once.
        if len(data) != cls.SIZE or data[0] != IDENTITY_VERSION:
            raise ValueError("not a public identity")
        return cls(VerifyKey(data[1:33]), X25519PublicKey(data[33:65]), data[65:])

    def to_bytes(self) -> bytes:
        """The 129-byte wire form."""
        return self._bytes

    @property
    def verify_key(self) -> VerifyKey:
        """The Ed25519 key that signs for this identity."""
        return self._verify

    @property
    def dh_key(self) -> X25519PublicKey:
        """The X25519 key this identity agrees keys with."""
        return self._dh

    @property
    def key_bytes(self) -> bytes:
        """The 64 bytes both keys make together (what fingerprints and transcripts cover)."""
        return self._keys

    def fingerprint(self) -> bytes:
        """This identity's 32-byte fingerprint (the half of a safety number it contributes)."""
        return _fingerprint(self._keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicIdentity):
            return NotImplemented
        return constant_time_equal(self._keys, other._keys)

    def __hash__(self) -> int:
        return hash(self._keys)

    def __repr__(self) -> str:
        return f"PublicIdentity({self._keys[:4].hex()}…)"


class Identity:
    """A long-term identity with its private keys. Its repr shows only the public prefix.

    Keep it in the encrypted store; :meth:`to_bytes` is secret key material.
    """

    __slots__ = ("_dh", "_public", "_signing")
    _PRIVATE_SIZE: ClassVar[int] = 65

    def __init__(self, signing_key: SigningKey, dh_key: X25519PrivateKey) -> None:
        self._signing = signing_key
        self._dh = dh_key
        binding = signing_key.sign(LABEL_IDENTITY_BINDING + dh_key.public_key().to_bytes())
        self._public = PublicIdentity(signing_key.verify_key, dh_key.public_key(), binding)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity from the CSPRNG."""
        return cls(SigningKey.generate(), X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, data: bytes) -> Identity:
        """Load an identity saved with :meth:`to_bytes`; :class:`StateError` if unreadable."""
        if not isinstance(data, bytes):
            raise TypeError("a private identity must be bytes")
        if len(data) != cls._PRIVATE_SIZE or data[0] != IDENTITY_VERSION:
            raise StateError("private identity is not readable by this version")
        return cls(SigningKey(data[1:33]), X25519PrivateKey(data[33:65]))

    def to_bytes(self) -> bytes:
        """The 65-byte private form (version, Ed25519 seed, X25519 key). Secret."""
        return bytes([IDENTITY_VERSION]) + self._signing.to_seed() + self._dh.to_bytes()

    @property
    def public(self) -> PublicIdentity:
        """The public identity to publish and compare."""
        return self._public

    def _sign(self, message: bytes) -> bytes:
        """Sign ``message`` with the identity's Ed25519 key (library use only).

        Private on purpose: every caller prefixes ``message`` with a label of its own, and an
        application signing bytes it does not control could otherwise forge a bundle.
        """
        return self._signing.sign(message)

    def _agree(self, peer: X25519PublicKey) -> bytes:
        """X25519 with the identity key (the handshake's DH1 or DH2)."""
        return self._dh.exchange(peer)

    def __repr__(self) -> str:
        return f"Identity(public={self._public.key_bytes[:4].hex()}…)"


def _fingerprint(keys: bytes) -> bytes:
    digest = hashlib.sha512(
        LABEL_FINGERPRINT + SAFETY_NUMBER_VERSION.to_bytes(2, "big") + keys
    ).digest()
    for _ in range(FINGERPRINT_ITERATIONS):
        digest = hashlib.sha512(digest + keys).digest()
    return digest[:32]


def _digits(fingerprint: bytes) -> str:
    # Six 5-byte chunks, each reduced to five decimal digits, as in Signal.
    return "".join(
        f"{int.from_bytes(fingerprint[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    """A safety number: 60 digits to read aloud, and bytes to put in a QR code.

    Both people compute the same value from the two public identities, in either order. Compare
    with :meth:`matches`, which accepts the digits with or without spaces.
    """

    digits: str
    qr_bytes: bytes

    @classmethod
    def of(cls, a: PublicIdentity, b: PublicIdentity) -> SafetyNumber:
        """The safety number of the conversation between ``a`` and ``b``."""
        if a == b:
            raise ValueError("a safety number needs two different identities")
        halves = sorted([a.fingerprint(), b.fingerprint()])
        digits = "".join(sorted(_digits(h) for h in halves))
        qr = LABEL_SAFETY_NUMBER + bytes([SAFETY_NUMBER_VERSION]) + halves[0] + halves[1]
        return cls(digits, qr)

    def matches(self, other: SafetyNumber | str | bytes) -> bool:
        """True if ``other`` (a SafetyNumber, the digits, or scanned QR bytes) is this number."""
        if isinstance(other, SafetyNumber):
            return constant_time_equal(self.qr_bytes, other.qr_bytes)
        if isinstance(other, bytes):
            return constant_time_equal(self.qr_bytes, other)
        cleaned = "".join(other.split())
        return constant_time_equal(self.digits.encode(), cleaned.encode())

    def __str__(self) -> str:
        return " ".join(self.digits[i : i + 5] for i in range(0, 60, 5))


__all__ = ["Identity", "PublicIdentity", "SafetyNumber"]
