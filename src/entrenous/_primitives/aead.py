"""ChaCha20-Poly1305 (RFC 8439, the IETF variant: 96-bit nonce) through cryptography (OpenSSL).

Why this AEAD and not AES-256-GCM is argued in spec/protocol.md (constant time in software on
every CPU, no dependency on AES instructions). Keys are 32 bytes, nonces 12 bytes, tags 16 bytes.
The protocol never draws nonces at random: each key is used for exactly one message.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from entrenous.errors import AuthenticationError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


def seal(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` with ``ad``; returns ciphertext || tag."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"AEAD key must be {KEY_SIZE} bytes, got {len(key)}")
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"AEAD nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)


def open_(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Check and decrypt; raises the opaque :class:`AuthenticationError` on any failure."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"AEAD key must be {KEY_SIZE} bytes, got {len(key)}")
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"AEAD nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    if len(ciphertext) < TAG_SIZE:
        raise AuthenticationError()
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, ad)
    except InvalidTag:
        raise AuthenticationError() from None


def sealer(key: bytes) -> Callable[[bytes, bytes, bytes], bytes]:
    """``seal`` for many messages under one key (the key is set up once).

    The returned function takes ``(nonce, plaintext, ad)``; the caller still owes every message
    its own nonce.
    """
    if len(key) != KEY_SIZE:
        raise ValueError(f"AEAD key must be {KEY_SIZE} bytes, got {len(key)}")
    encrypt = ChaCha20Poly1305(key).encrypt

    def seal_one(nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"AEAD nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
        return encrypt(nonce, plaintext, ad)

    return seal_one


def opener(key: bytes) -> Callable[[bytes, bytes, bytes], bytes]:
    """``open_`` for many messages under one key (the key is set up once).

    The returned function takes ``(nonce, ciphertext, ad)`` and raises the opaque
    :class:`AuthenticationError` on any failure, like :func:`open_`.
    """
    if len(key) != KEY_SIZE:
        raise ValueError(f"AEAD key must be {KEY_SIZE} bytes, got {len(key)}")
    cipher = ChaCha20Poly1305(key)

    def open_one(nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
        if len(nonce) != NONCE_SIZE or len(ciphertext) < TAG_SIZE:
            raise AuthenticationError()
        try:
            return cipher.decrypt(nonce, ciphertext, ad)
        except InvalidTag:
            raise AuthenticationError() from None

    return open_one
