"""Envelopes: the bytes one party hands the transport, and their strict parser.

Wire format (spec/envelope.md). An envelope is one canonical msgpack array, version first::

    message (kind 2):  [1, 2, session_id, ratchet_key, previous_length, n, ciphertext]
    initial (kind 1):  [1, 1, session_id, identity, ephemeral, signed_prekey_id,
                        one_time_prekey_id | nil, kem_prekey_id, kem_ciphertext,
                        ratchet_key, previous_length, n, ciphertext]

``session_id`` bin(16); ``ratchet_key`` and ``ephemeral`` bin(32); ``identity`` bin(129);
``kem_ciphertext`` bin(1088); counters and ids uint32; ``ciphertext`` bin (padded plaintext +
16-byte tag). Every byte before the ciphertext object (the *prefix*) is associated data of the
AEAD, after the session's own associated data, so every byte of an envelope is authenticated
(ENV-01). The size is checked before parsing (ENV-02) and the encoding must be canonical (ENV-04).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from entrenous._primitives import aead
from entrenous._primitives.kem import CIPHERTEXT_SIZE
from entrenous.errors import EnvelopeTooLarge, MalformedEnvelope, UnsupportedVersion
from entrenous.protocol import wire
from entrenous.protocol.constants import ENVELOPE_VERSION, MAX_ENVELOPE_SIZE, MAX_UINT32
from entrenous.protocol.identity import PublicIdentity
from entrenous.protocol.ratchet.double_ratchet import Header

KIND_INITIAL = 1
KIND_MESSAGE = 2
SESSION_ID_SIZE = 16
_MESSAGE_FIELDS = 7
_INITIAL_FIELDS = 13


class InitialFields(NamedTuple):
    """What the first messages of a conversation carry for the responder's handshake."""

    identity: bytes
    ephemeral: bytes
    signed_prekey_id: int
    one_time_prekey_id: int | None
    kem_prekey_id: int
    kem_ciphertext: bytes

    def as_list(self) -> list[object]:
        """The fields in wire order."""
        return list(self)

    @classmethod
    def from_list(cls, values: list[Any]) -> InitialFields | None:
        """The fields from their wire order, or ``None`` if any has the wrong type or size."""
        if len(values) != len(cls._fields):
            return None
        identity, ephemeral, spk_id, opk_id, kem_id, kem_ct = values
        if not (
            wire.is_bytes(identity, PublicIdentity.SIZE)
            and wire.is_bytes(ephemeral, 32)
            and wire.is_uint(spk_id, MAX_UINT32)
            and (opk_id is None or wire.is_uint(opk_id, MAX_UINT32))
            and wire.is_uint(kem_id, MAX_UINT32)
            and wire.is_bytes(kem_ct, CIPHERTEXT_SIZE)
        ):
            return None
        return cls(identity, ephemeral, spk_id, opk_id, kem_id, kem_ct)

    def __repr__(self) -> str:
        return (
            f"InitialFields(signed_prekey_id={self.signed_prekey_id}, "
            f"one_time_prekey_id={self.one_time_prekey_id}, kem_prekey_id={self.kem_prekey_id})"
        )


class ParsedEnvelope(NamedTuple):
    """A structurally valid envelope, not yet authenticated."""

    session_id: bytes
    initial: InitialFields | None
    header: Header
    ciphertext: bytes
    prefix: bytes

    @property
    def is_initial(self) -> bool:
        """True for the first messages of a conversation, which carry the handshake."""
        return self.initial is not None

    def __repr__(self) -> str:
        kind = "initial" if self.initial is not None else "message"
        return (
            f"ParsedEnvelope({kind}, session_id={self.session_id.hex()}, n={self.header.n}, "
            f"size={len(self.prefix) + len(self.ciphertext)})"
        )


def encode_prefix(session_id: bytes, initial: InitialFields | None, header: Header) -> bytes:
    """The authenticated bytes that precede the ciphertext object."""
    tail: list[object] = [header.ratchet_key, header.previous_length, header.n]
    if initial is None:
        fields: list[object] = [ENVELOPE_VERSION, KIND_MESSAGE, session_id, *tail]
    else:
        fields = [ENVELOPE_VERSION, KIND_INITIAL, session_id, *initial.as_list(), *tail]
    # fixarray header for len(fields) + 1 elements: the ciphertext follows.
    return bytes([0x90 | (len(fields) + 1)]) + wire.pack(fields)[1:]


def parse_envelope(data: bytes) -> ParsedEnvelope:
    """Parse ``data`` strictly: size first, then structure, types and canonical form.

    Raises :class:`EnvelopeTooLarge`, :class:`UnsupportedVersion` or :class:`MalformedEnvelope`.
    Nothing is decrypted here.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"an envelope must be bytes, got {type(data).__name__}")
    if len(data) > MAX_ENVELOPE_SIZE:
        raise EnvelopeTooLarge(MAX_ENVELOPE_SIZE, len(data))
    fields = wire.unpack_array(
        data, max_array_len=_INITIAL_FIELDS, what="envelope", error=MalformedEnvelope
    )
    version = fields[0] if fields else None
    if type(version) is not int:
        raise MalformedEnvelope("envelope is not well-formed")
    if version != ENVELOPE_VERSION:
        raise UnsupportedVersion("envelope", version)
    count = len(fields)
    kind = fields[1] if count > 1 else None
    initial: InitialFields | None = None
    if count == _MESSAGE_FIELDS and type(kind) is int and kind == KIND_MESSAGE:
        session_id, ratchet_key, previous_length, n, ciphertext = fields[2:]
    elif count == _INITIAL_FIELDS and type(kind) is int and kind == KIND_INITIAL:
        session_id = fields[2]
        ratchet_key, previous_length, n, ciphertext = fields[9:]
        initial = InitialFields.from_list(fields[3:9])
        if initial is None:
            raise MalformedEnvelope("initial envelope is not well-formed")
    else:
        raise MalformedEnvelope("envelope is not well-formed")
    if not (
        type(session_id) is bytes
        and len(session_id) == SESSION_ID_SIZE
        and type(ratchet_key) is bytes
        and len(ratchet_key) == 32
        and type(previous_length) is int
        and 0 <= previous_length <= MAX_UINT32
        and type(n) is int
        and 0 <= n <= MAX_UINT32
        and type(ciphertext) is bytes
        and len(ciphertext) >= aead.TAG_SIZE
    ):
        raise MalformedEnvelope("envelope is not well-formed")
    # The ciphertext object is bin8 or bin16: the whole envelope is at most 64 KiB.
    size = len(ciphertext)
    prefix = data[: len(data) - size - (2 if size < 256 else 3)]
    return ParsedEnvelope(
        session_id, initial, Header(ratchet_key, previous_length, n), ciphertext, prefix
    )


def peek_session_id(data: bytes) -> bytes:
    """The session id of an envelope (after full structural validation)."""
    return parse_envelope(data).session_id
