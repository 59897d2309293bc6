"""Syndace's ``doubleratchet`` with ``x3dh`` for the handshake, configured as OMEMO 2 uses them.

The configuration is that of python-twomemo (the OMEMO ``urn:xmpp:omemo:2`` backend by the same
author), the libraries' real deployment, built from the classes in ``doubleratchet.recommended``:

* X3DH: :class:`x3dh.BaseState` (managed by the application, as twomemo does), Ed25519 identity
  key format, SHA-256, raw 32-byte public key encoding. B keeps :data:`PRE_KEYS` one-time pre
  keys (twomemo's and ``x3dh.State``'s refill target) and publishes all of them in its bundle; A
  picks one. B deletes the used pre key when it answers (timed, as entrenous consumes its
  one-time keys in ``respond``); the refill and the new bundle are B's untimed preparation.
* Double Ratchet: Curve25519 DH ratchet, HKDF-SHA-256 root chain, separate HMAC-SHA-256 message
  chain (constant ``0x02 0x01``), AES-256-CBC + HMAC-SHA-256 AEAD, at most 1000 skipped message
  keys per session and per message.
* Wire: a bundle is ``identity key || signed pre key || signature || pre keys``, a key exchange
  ``identity key || ephemeral key || signed pre key || pre key || message``, a message
  ``ratchet key || pn || n || ciphertext`` (32-bit big-endian counters); the header is also the
  associated data's suffix, as twomemo's ``_build_associated_data`` makes it.
* State: the Double Ratchet's ``json`` (plus the session's associated data) as JSON bytes;
  loading is ``DoubleRatchet.from_json`` with the same configuration.

The libraries are ``async``: everything runs in one event loop per process.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, ClassVar, Final

from benchmarks.protocol.common import AsyncRatchetPeer, PeerUnavailable

try:
    import doubleratchet
    import x3dh
    from doubleratchet.recommended import (
        HashFunction,
        aead_aes_hmac,
        diffie_hellman_ratchet_curve25519,
        kdf_hkdf,
        kdf_separate_hmacs,
    )
except ImportError as exc:
    raise PeerUnavailable(
        f"doubleratchet/x3dh are not installed ({exc}); python3 dev.py bench installs them"
    ) from exc

#: One-time pre keys each party keeps (twomemo's and x3dh.State's refill target).
PRE_KEYS: Final = 100
#: Skipped message keys kept per session, and accepted per message (twomemo's defaults).
MAX_SKIPPED_KEYS: Final = 1000

_KEY = 32
_SIGNATURE = 64
_HEADER = struct.Struct(">32sII")  # ratchet public key, pn, n


class RootChainKDF(kdf_hkdf.KDF):
    """HKDF-SHA-256 root chain (twomemo's ``RootChainKDFImpl``)."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"entrenous-bench Root Chain"


class MessageChainKDF(kdf_separate_hmacs.KDF):
    """Separate HMAC-SHA-256 message chain (twomemo's ``MessageChainKDFImpl``)."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class AEAD(aead_aes_hmac.AEAD):
    """AES-256-CBC + HMAC-SHA-256, keys from HKDF-SHA-256 (the recommended AEAD)."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"entrenous-bench Message Key Material"


class DoubleRatchet(doubleratchet.DoubleRatchet):
    """The associated data is the session's AD followed by the encoded header."""

    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return associated_data + _HEADER.pack(
            header.ratchet_pub, header.previous_sending_chain_length, header.sending_chain_length
        )


class X3DHState(x3dh.BaseState):
    """Public keys are encoded raw (32 bytes), as twomemo's ``StateImpl`` does."""

    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return pub


#: Everything DoubleRatchet's constructors and ``from_json`` take besides the data.
CONFIG: Final[dict[str, Any]] = {
    "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
    "root_chain_kdf": RootChainKDF,
    "message_chain_kdf": MessageChainKDF,
    "message_chain_constant": b"\x02\x01",
    "dos_protection_threshold": MAX_SKIPPED_KEYS,
    "max_num_skipped_message_keys": MAX_SKIPPED_KEYS,
    "aead": AEAD,
}


def _new_state() -> X3DHState:
    state = X3DHState.create(
        x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256, b"entrenous-bench X3DH"
    )
    state.generate_pre_keys(PRE_KEYS)
    return state


@dataclass(slots=True)
class DRSession:
    """One party's session: its Double Ratchet and the X3DH associated data."""

    ratchet: DoubleRatchet
    associated_data: bytes


def _encode_message(message: doubleratchet.EncryptedMessage) -> bytes:
    header = message.header
    return (
        _HEADER.pack(
            header.ratchet_pub, header.previous_sending_chain_length, header.sending_chain_length
        )
        + message.ciphertext
    )


def _decode_message(data: bytes) -> doubleratchet.EncryptedMessage:
    return doubleratchet.EncryptedMessage(
        doubleratchet.Header(*_HEADER.unpack_from(data)), data[_HEADER.size :]
    )


def _encode_bundle(bundle: x3dh.Bundle) -> bytes:
    return b"".join(
        (bundle.identity_key, bundle.signed_pre_key, bundle.signed_pre_key_sig, *bundle.pre_keys)
    )


def _decode_bundle(data: bytes) -> x3dh.Bundle:
    keys_at = 2 * _KEY + _SIGNATURE
    return x3dh.Bundle(
        identity_key=data[:_KEY],
        signed_pre_key=data[_KEY : 2 * _KEY],
        signed_pre_key_sig=data[2 * _KEY : keys_at],
        pre_keys=frozenset(data[i : i + _KEY] for i in range(keys_at, len(data), _KEY)),
    )


class DoubleRatchetPeer(AsyncRatchetPeer[DRSession, bytes, bytes]):
    """doubleratchet + x3dh, configured as python-twomemo (OMEMO 2) configures them."""

    name: ClassVar[str] = "doubleratchet"
    configuration: ClassVar[str] = (
        f"doubleratchet + x3dh as python-twomemo (OMEMO 2) configures them: X3DH BaseState "
        f"(Ed25519 identity, SHA-256, {PRE_KEYS} one-time pre keys per party), Curve25519 DH "
        f"ratchet, HKDF-SHA-256 root chain, HMAC-SHA-256 message chain, AES-256-CBC + "
        f"HMAC-SHA-256 AEAD, {MAX_SKIPPED_KEYS} skipped keys max; state via json/from_json"
    )

    def __init__(self) -> None:
        self._alice = _new_state()
        self._bob = _new_state()

    def version(self) -> str:
        return f"doubleratchet {version('doubleratchet')}, x3dh {version('x3dh')}"

    def publish(self) -> bytes:
        bob = self._bob
        bob.generate_pre_keys(PRE_KEYS - bob.get_num_visible_pre_keys())
        return _encode_bundle(bob.bundle)

    async def handshake(
        self, published: bytes, plaintext: bytes
    ) -> tuple[DRSession, DRSession, bytes]:
        # A: parse the bundle; x3dh verifies the signed pre key's signature and picks a pre key.
        bundle = _decode_bundle(published)
        secret, ad, header = await self._alice.get_shared_secret_active(bundle)
        a_ratchet, first = await DoubleRatchet.encrypt_initial_message(
            shared_secret=secret,
            recipient_ratchet_pub=bundle.signed_pre_key,
            message=plaintext,
            associated_data=ad,
            **CONFIG,
        )
        assert header.pre_key is not None
        wire = b"".join(
            (
                header.identity_key,
                header.ephemeral_key,
                header.signed_pre_key,
                header.pre_key,
                _encode_message(first),
            )
        )
        # B: parse the key exchange, agree, decrypt, delete the used pre key.
        keys = [wire[i : i + _KEY] for i in range(0, 4 * _KEY, _KEY)]
        received_header = x3dh.Header(
            identity_key=keys[0], ephemeral_key=keys[1], signed_pre_key=keys[2], pre_key=keys[3]
        )
        bob = self._bob
        b_secret, b_ad, signed_pre_key = await bob.get_shared_secret_passive(received_header)
        b_ratchet, received = await DoubleRatchet.decrypt_initial_message(
            shared_secret=b_secret,
            own_ratchet_priv=signed_pre_key.priv,
            message=_decode_message(wire[4 * _KEY :]),
            associated_data=b_ad,
            **CONFIG,
        )
        bob.delete_pre_key(keys[3])
        return DRSession(a_ratchet, ad), DRSession(b_ratchet, b_ad), received

    async def encrypt(self, session: DRSession, plaintext: bytes) -> bytes:
        message = await session.ratchet.encrypt_message(plaintext, session.associated_data)
        return _encode_message(message)

    async def decrypt(self, session: DRSession, message: bytes) -> bytes:
        return await session.ratchet.decrypt_message(
            _decode_message(message), session.associated_data
        )

    async def save(self, session: DRSession) -> bytes:
        return json.dumps(
            {
                "double_ratchet": session.ratchet.json,
                "associated_data": base64.b64encode(session.associated_data).decode(),
            }
        ).encode()

    async def load(self, blob: bytes) -> DRSession:
        data = json.loads(blob)
        return DRSession(
            DoubleRatchet.from_json(data["double_ratchet"], **CONFIG),
            base64.b64decode(data["associated_data"]),
        )


PEER = DoubleRatchetPeer
