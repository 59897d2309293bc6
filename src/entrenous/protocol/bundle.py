"""Prekey bundles: what a party publishes so that others can start a conversation offline.

A bundle is one signed byte string (spec/bundle.md). One Ed25519 signature by the identity key
covers every other byte of it, so the initiator verifies a single signature for all prekeys
(and the X25519 identity key, already bound by the identity's own binding signature)::

    msgpack array [
      version: uint (1),
      identity: bin(129),          # PublicIdentity wire form
      signed_prekey_id: uint32,
      signed_prekey: bin(32),      # X25519
      one_time_prekey_id: uint32 | nil,
      one_time_prekey: bin(32) | nil,
      kem_prekey_id: uint32,
      kem_prekey: bin(1184),       # ML-KEM-768 encapsulation key
      kem_last_resort: bool,
      signature: bin(64),          # Ed25519 over LABEL_BUNDLE_SIGNATURE || every byte before it
    ]

A bundle with a bad signature, a wrong size, a wrong type or an unknown version is refused
(BUN-01..BUN-04).
"""

from __future__ import annotations

from dataclasses import dataclass

from entrenous._primitives.dh import X25519PublicKey
from entrenous._primitives.kem import KemPublicKey
from entrenous._primitives.sign import SIGNATURE_SIZE
from entrenous.errors import MalformedBundle, UnsupportedVersion
from entrenous.protocol import wire
from entrenous.protocol.constants import BUNDLE_VERSION, LABEL_BUNDLE_SIGNATURE, MAX_UINT32
from entrenous.protocol.identity import Identity, PublicIdentity

#: Largest bundle accepted; a well-formed one is 1,458 bytes (1,425 without a one-time prekey).
MAX_BUNDLE_SIZE = 2048
_FIELDS = 10
_SIGNATURE_OBJECT = 2 + SIGNATURE_SIZE  # bin8 header + 64 bytes


@dataclass(frozen=True, slots=True)
class PrekeyBundle:
    """A parsed and verified prekey bundle (public values only)."""

    identity: PublicIdentity
    signed_prekey_id: int
    signed_prekey: X25519PublicKey
    one_time_prekey_id: int | None
    one_time_prekey: X25519PublicKey | None
    kem_prekey_id: int
    kem_prekey: KemPublicKey
    kem_last_resort: bool
    raw: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> PrekeyBundle:
        """Parse and verify a bundle; raise a typed error if it is not acceptable."""
        if not isinstance(data, bytes):
            raise TypeError("a prekey bundle must be bytes")
        if len(data) > MAX_BUNDLE_SIZE:
            raise MalformedBundle(f"prekey bundle larger than {MAX_BUNDLE_SIZE} bytes")
        fields = wire.unpack_array(
            data, max_array_len=_FIELDS, what="prekey bundle", error=MalformedBundle
        )
        if not fields or type(fields[0]) is not int:
            raise MalformedBundle("prekey bundle is not well-formed")
        if fields[0] != BUNDLE_VERSION:
            raise UnsupportedVersion("prekey bundle", fields[0])
        if len(fields) != _FIELDS:
            raise MalformedBundle("prekey bundle is not well-formed")
        (_, ident, spk_id, spk, opk_id, opk, kem_id, kem, last_resort, signature) = fields
        ok = (
            wire.is_bytes(ident, PublicIdentity.SIZE)
            and wire.is_uint(spk_id, MAX_UINT32)
            and wire.is_bytes(spk, X25519PublicKey.SIZE)
            and (
                (opk_id is None and opk is None)
                or (wire.is_uint(opk_id, MAX_UINT32) and wire.is_bytes(opk, X25519PublicKey.SIZE))
            )
            and wire.is_uint(kem_id, MAX_UINT32)
            and wire.is_bytes(kem, KemPublicKey.SIZE)
            and type(last_resort) is bool
            and wire.is_bytes(signature, SIGNATURE_SIZE)
        )
        if not ok:
            raise MalformedBundle("prekey bundle is not well-formed")
        identity = PublicIdentity.from_bytes(ident)
        identity.verify_key.verify(signature, LABEL_BUNDLE_SIGNATURE + data[:-_SIGNATURE_OBJECT])
        signed_prekey = X25519PublicKey(spk)
        signed_prekey.check_not_low_order()
        one_time_prekey = None if opk is None else X25519PublicKey(opk)
        if one_time_prekey is not None:
            one_time_prekey.check_not_low_order()
        return cls(
            identity=identity,
            signed_prekey_id=spk_id,
            signed_prekey=signed_prekey,
            one_time_prekey_id=opk_id,
            one_time_prekey=one_time_prekey,
            kem_prekey_id=kem_id,
            kem_prekey=KemPublicKey(kem),
            kem_last_resort=last_resort,
            raw=data,
        )

    def to_bytes(self) -> bytes:
        """The signed wire form, exactly as published."""
        return self.raw

    def __repr__(self) -> str:
        return (
            f"PrekeyBundle(identity={self.identity!r}, signed_prekey_id={self.signed_prekey_id}, "
            f"one_time_prekey_id={self.one_time_prekey_id}, kem_prekey_id={self.kem_prekey_id}, "
            f"kem_last_resort={self.kem_last_resort})"
        )


def encode_bundle(
    identity: Identity,
    *,
    signed_prekey_id: int,
    signed_prekey: X25519PublicKey,
    one_time_prekey_id: int | None,
    one_time_prekey: X25519PublicKey | None,
    kem_prekey_id: int,
    kem_prekey: KemPublicKey,
    kem_last_resort: bool,
) -> bytes:
    """Build and sign a bundle (used by :class:`~entrenous.protocol.prekeys.PrekeyPool`)."""
    fields: list[object] = [
        BUNDLE_VERSION,
        identity.public.to_bytes(),
        signed_prekey_id,
        signed_prekey.to_bytes(),
        one_time_prekey_id,
        None if one_time_prekey is None else one_time_prekey.to_bytes(),
        kem_prekey_id,
        kem_prekey.to_bytes(),
        kem_last_resort,
    ]
    # The prefix is the encoding of the whole array up to (not including) the signature: the
    # fixarray header announces all ten fields.
    prefix = bytes([0x90 | _FIELDS]) + wire.pack(fields)[1:]
    signature = identity._sign(LABEL_BUNDLE_SIGNATURE + prefix)
    return prefix + wire.pack(signature)
