"""The handshake: X3DH extended with an ML-KEM-768 encapsulation, in the manner of PQXDH.

Alice (initiator) holds Bob's verified bundle: identity IK_B, signed prekey SPK_B, optional
one-time prekey OPK_B, and an ML-KEM-768 prekey PQPK_B (one-time or last resort). She draws an
ephemeral X25519 key EK_A and computes (HS-01)::

    DH1 = X25519(IK_A, SPK_B)      DH2 = X25519(EK_A, IK_B)      DH3 = X25519(EK_A, SPK_B)
    DH4 = X25519(EK_A, OPK_B)      (only when the bundle has a one-time prekey)
    (SS, CT) = ML-KEM-768.Encaps(PQPK_B)
    TH  = SHA-256(LABEL_TRANSCRIPT || IK_A || IK_B || SPK_B || [0x01 || OPK_B | 0x00] || PQPK_B
                  || EK_A || CT)
    RK || CK = HKDF-SHA256(ikm = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4] || SS,
                           salt = TH, info = LABEL_HANDSHAKE, length = 64)
    session_id = SHA-256(LABEL_SESSION_ID || IK_A || IK_B || EK_A)[0:16]
    AD = SHA-256(LABEL_SESSION_AD || IK_A || IK_B)

(IK_* here are the 64 key bytes of each identity.) RK is the first root key, CK the chain key
of Alice's first sending chain. Bob computes the same from the initial message. The transcript
hash binds every public value, the KEM public key and ciphertext included, into the key
(defending against KEM re-encapsulation and key-substitution attacks).
"""

from __future__ import annotations

from dataclasses import dataclass

from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous._primitives.kdf import hkdf_sha256, sha256
from entrenous._primitives.kem import KemPublicKey
from entrenous.protocol.bundle import PrekeyBundle
from entrenous.protocol.constants import (
    HANDSHAKE_KDF_PREFIX,
    LABEL_HANDSHAKE,
    LABEL_SESSION_AD,
    LABEL_SESSION_ID,
    LABEL_TRANSCRIPT,
)
from entrenous.protocol.identity import Identity, PublicIdentity
from entrenous.protocol.prekeys import PrekeyLookup


@dataclass(frozen=True, slots=True, eq=False)
class HandshakeSecrets:
    """The handshake's outputs. Secret: its repr shows the session id only."""

    session_id: bytes
    root_key: bytes
    chain_key: bytes
    ad: bytes

    def __repr__(self) -> str:
        return f"HandshakeSecrets(session_id={self.session_id.hex()})"


def session_id_for(initiator: PublicIdentity, responder: PublicIdentity, ephemeral: bytes) -> bytes:
    """The public 16-byte id both parties derive for a conversation (HS-05)."""
    return sha256(LABEL_SESSION_ID, initiator.key_bytes, responder.key_bytes, ephemeral)[:16]


def session_ad(initiator: PublicIdentity, responder: PublicIdentity) -> bytes:
    """The associated data every message of the conversation carries (HS-04)."""
    return sha256(LABEL_SESSION_AD, initiator.key_bytes, responder.key_bytes)


def _derive(
    initiator: PublicIdentity,
    responder: PublicIdentity,
    signed_prekey: X25519PublicKey,
    one_time_prekey: X25519PublicKey | None,
    kem_prekey: KemPublicKey,
    ephemeral: bytes,
    kem_ciphertext: bytes,
    dh_outputs: list[bytes],
    kem_secret: bytes,
) -> HandshakeSecrets:
    opk = b"\x00" if one_time_prekey is None else b"\x01" + one_time_prekey.to_bytes()
    transcript = sha256(
        LABEL_TRANSCRIPT,
        initiator.key_bytes,
        responder.key_bytes,
        signed_prekey.to_bytes(),
        opk,
        kem_prekey.to_bytes(),
        ephemeral,
        kem_ciphertext,
    )
    okm = hkdf_sha256(
        HANDSHAKE_KDF_PREFIX + b"".join(dh_outputs) + kem_secret,
        salt=transcript,
        info=LABEL_HANDSHAKE,
        length=64,
    )
    return HandshakeSecrets(
        session_id=session_id_for(initiator, responder, ephemeral),
        root_key=okm[:32],
        chain_key=okm[32:],
        ad=session_ad(initiator, responder),
    )


def initiate(
    identity: Identity,
    bundle: PrekeyBundle,
    ephemeral: X25519PrivateKey,
    kem_secret: bytes,
    kem_ciphertext: bytes,
) -> HandshakeSecrets:
    """Alice's side, given her ephemeral key and the encapsulation already made."""
    dh = [
        identity._agree(bundle.signed_prekey),
        ephemeral.exchange(bundle.identity.dh_key),
        ephemeral.exchange(bundle.signed_prekey),
    ]
    if bundle.one_time_prekey is not None:
        dh.append(ephemeral.exchange(bundle.one_time_prekey))
    return _derive(
        identity.public,
        bundle.identity,
        bundle.signed_prekey,
        bundle.one_time_prekey,
        bundle.kem_prekey,
        ephemeral.public_key().to_bytes(),
        kem_ciphertext,
        dh,
        kem_secret,
    )


def respond(
    identity: Identity,
    initiator: PublicIdentity,
    keys: PrekeyLookup,
    ephemeral: bytes,
    kem_ciphertext: bytes,
) -> HandshakeSecrets:
    """Bob's side, from the prekeys the initial message names."""
    ephemeral_key = X25519PublicKey(ephemeral)
    dh = [
        keys.signed_prekey.exchange(initiator.dh_key),
        identity._agree(ephemeral_key),
        keys.signed_prekey.exchange(ephemeral_key),
    ]
    if keys.one_time_prekey is not None:
        dh.append(keys.one_time_prekey.exchange(ephemeral_key))
    return _derive(
        initiator,
        identity.public,
        keys.signed_prekey.public_key(),
        None if keys.one_time_prekey is None else keys.one_time_prekey.public_key(),
        keys.kem_prekey.public_key(),
        ephemeral,
        kem_ciphertext,
        dh,
        keys.kem_prekey.decapsulate(kem_ciphertext),
    )
