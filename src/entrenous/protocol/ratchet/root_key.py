"""The root key and the DH ratchet step (KDF_RK in Signal's specification).

``root_key', chain_key = HKDF-SHA256(ikm = DH output, salt = root_key, info = LABEL_ROOT)``,
64 bytes split in two (RAT-02).
"""

from __future__ import annotations

from entrenous._primitives.kdf import hkdf_sha256
from entrenous.protocol.constants import LABEL_ROOT


def root_step(root_key: bytes, dh_output: bytes) -> tuple[bytes, bytes]:
    """Mix a DH output into the root key: returns ``(next_root_key, chain_key)``."""
    okm = hkdf_sha256(dh_output, salt=root_key, info=LABEL_ROOT, length=64)
    return okm[:32], okm[32:]
