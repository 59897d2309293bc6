"""The symmetric-key ratchet (KDF_CK in Signal's specification) and message keys.

From the chain key ``ck`` of message number ``n`` (RAT-01), one HMAC call::

    HMAC-SHA512(ck, LABEL_CHAIN_STEP) = next chain key (32) || message key (32)
    AEAD nonce = n as a 12-byte big-endian integer

The message key is used for exactly one message, and the chain key moves forward before the
message leaves, so no (key, nonce) pair ever repeats; the nonce is unique within the chain as
well, so even a (impossible) key repetition across chains would not repeat a pair.
"""

from __future__ import annotations

from entrenous._primitives.kdf import hmac_sha512
from entrenous.protocol.constants import LABEL_CHAIN_STEP

MESSAGE_KEY_SIZE = 32


def chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """One step of the chain: ``(next_chain_key, message_key)``."""
    out = hmac_sha512(chain_key, LABEL_CHAIN_STEP)
    return out[:32], out[32:]


def nonce(n: int) -> bytes:
    """The AEAD nonce of message number ``n``."""
    return n.to_bytes(12, "big")


def skip(chain_key: bytes, start: int, stop: int) -> tuple[list[tuple[int, bytes]], bytes]:
    """Message keys for numbers ``start..stop-1`` and the chain key at ``stop``.

    The caller bounds ``stop - start`` (MAX_SKIP) before calling.
    """
    keys: list[tuple[int, bytes]] = []
    for n in range(start, stop):
        chain_key, message_key = chain_step(chain_key)
        keys.append((n, message_key))
    return keys, chain_key
