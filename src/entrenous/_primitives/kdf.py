"""Key derivation: HKDF-SHA256 (RFC 5869) from cryptography, HMAC-SHA256/512 from OpenSSL.

Every caller passes its own ``info`` label (see :mod:`entrenous.protocol.constants`): no two uses
of HKDF share a label, so their outputs are independent (domain separation).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SHA256 = hashes.SHA256()


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 extract-and-expand of ``ikm`` to ``length`` bytes."""
    if not info:
        raise ValueError("every HKDF use needs its own info label")
    if not 1 <= length <= 255 * 32:
        raise ValueError(f"HKDF length must be 1..{255 * 32}, got {length}")
    return HKDF(algorithm=_SHA256, length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (32 bytes)."""
    return hmac.digest(key, message, "sha256")


def hmac_sha512(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA512 of ``message`` under ``key`` (64 bytes)."""
    return hmac.digest(key, message, "sha512")


def sha256(*parts: bytes) -> bytes:
    """SHA-256 of the concatenation of ``parts``."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time independent of their contents."""
    return hmac.compare_digest(a, b)
