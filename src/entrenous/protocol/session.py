"""A conversation's protocol state: the handshake's result and its Double Ratchet.

:class:`Session` is the sans-IO facade of the protocol: bytes in, bytes out, no clock of its own
(the responder passes ``now`` for prekey expiry), randomness only from the CSPRNG. It never
touches a disk or a socket; the store layer saves :meth:`Session.to_bytes` after every change,
*before* it hands an envelope to the transport (ST-01).

The initiator keeps sending *initial* envelopes (which carry the handshake) until the first
message from the responder arrives; then plain messages.
"""

from __future__ import annotations

from entrenous._primitives import aead
from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous._primitives.kdf import constant_time_equal
from entrenous.errors import (
    MalformedEnvelope,
    PlaintextTooLarge,
    StateError,
    UsageError,
)
from entrenous.protocol import handshake, wire
from entrenous.protocol.bundle import PrekeyBundle
from entrenous.protocol.constants import (
    MAX_PLAINTEXT_SIZE,
    MAX_RECEIVING_CHAINS,
    SESSION_STATE_VERSION,
)
from entrenous.protocol.envelope import (
    SESSION_ID_SIZE,
    InitialFields,
    ParsedEnvelope,
    encode_prefix,
    parse_envelope,
)
from entrenous.protocol.identity import Identity, PublicIdentity, SafetyNumber
from entrenous.protocol.padding import pad, unpad
from entrenous.protocol.prekeys import PrekeyPool
from entrenous.protocol.ratchet.double_ratchet import DoubleRatchet

#: Largest serialised session state accepted by :meth:`Session.from_bytes` (5 chains of 2,000
#: skipped keys at 35 bytes each, plus the fixed part).
MAX_STATE_SIZE = 1 << 20
#: Arrays in a valid state: the state, the pending handshake, the ratchet, its chain list and
#: retired keys, and two per receiving chain (the chain and its skipped keys).
_MAX_STATE_ARRAYS = 5 + 2 * MAX_RECEIVING_CHAINS


def _trusted_identity(data: object) -> PublicIdentity:
    # Identities inside our own saved state were verified when first seen; the state is
    # encrypted and authenticated at rest, so only the structure is checked again here.
    if not isinstance(data, bytes):
        raise ValueError("bad identity")
    return PublicIdentity._from_trusted_bytes(data)


def _initial_fields(value: object) -> InitialFields:
    fields = InitialFields.from_list(value) if isinstance(value, list) else None
    if fields is None:
        raise ValueError("bad pending handshake fields")
    return fields


class Session:
    """One conversation with one peer. Secret-holding: its repr shows the id and counters only."""

    __slots__ = ("_ad", "_initial", "_is_initiator", "_ours", "_peer", "_ratchet", "_sid")

    def __init__(
        self,
        *,
        session_id: bytes,
        ours: PublicIdentity,
        peer: PublicIdentity,
        is_initiator: bool,
        ad: bytes,
        ratchet: DoubleRatchet,
        initial: InitialFields | None,
    ) -> None:
        self._sid = session_id
        self._ours = ours
        self._peer = peer
        self._is_initiator = is_initiator
        self._ad = ad
        self._ratchet = ratchet
        self._initial = initial

    # --- starting a conversation ---------------------------------------------------------------

    @classmethod
    def initiate(cls, identity: Identity, bundle: bytes | PrekeyBundle) -> Session:
        """Start a conversation from the peer's published bundle, without a round trip.

        The bundle is verified first (:class:`~entrenous.errors.MalformedBundle`,
        :class:`~entrenous.errors.AuthenticationError` ...). The first :meth:`encrypt` can
        follow at once.
        """
        parsed = bundle if isinstance(bundle, PrekeyBundle) else PrekeyBundle.from_bytes(bundle)
        kem_secret, kem_ciphertext = parsed.kem_prekey.encapsulate()
        return cls._initiate_from_parts(
            identity, parsed, X25519PrivateKey.generate(), kem_secret, kem_ciphertext
        )

    @classmethod
    def _initiate_from_parts(
        cls,
        identity: Identity,
        bundle: PrekeyBundle,
        ephemeral: X25519PrivateKey,
        kem_secret: bytes,
        kem_ciphertext: bytes,
    ) -> Session:
        # Private seam: the vector generator fixes the encapsulation, which cryptography's
        # ML-KEM API draws internally.
        if bundle.identity == identity.public:
            raise UsageError("cannot start a conversation with our own identity")
        secrets = handshake.initiate(identity, bundle, ephemeral, kem_secret, kem_ciphertext)
        initial = InitialFields(
            identity=identity.public.to_bytes(),
            ephemeral=ephemeral.public_key().to_bytes(),
            signed_prekey_id=bundle.signed_prekey_id,
            one_time_prekey_id=bundle.one_time_prekey_id,
            kem_prekey_id=bundle.kem_prekey_id,
            kem_ciphertext=kem_ciphertext,
        )
        ratchet = DoubleRatchet.initiator(
            secrets.root_key, secrets.chain_key, X25519PrivateKey.generate()
        )
        return cls(
            session_id=secrets.session_id,
            ours=identity.public,
            peer=bundle.identity,
            is_initiator=True,
            ad=secrets.ad,
            ratchet=ratchet,
            initial=initial,
        )

    @classmethod
    def respond(
        cls,
        identity: Identity,
        prekeys: PrekeyPool,
        envelope: bytes | ParsedEnvelope,
        *,
        now: int,
    ) -> tuple[Session, bytes]:
        """Accept a conversation from its first envelope; return the session and the plaintext.

        The one-time prekeys named by the envelope are consumed only after the message
        authenticated (HS-06); any failure leaves ``prekeys`` unchanged.
        """
        parsed = envelope if isinstance(envelope, ParsedEnvelope) else parse_envelope(envelope)
        initial = parsed.initial
        if initial is None:
            raise UsageError("respond() needs the initial envelope of a conversation")
        initiator = PublicIdentity.from_bytes(initial.identity)
        if initiator == identity.public:
            raise MalformedEnvelope("initial envelope claims our own identity")
        session_id = handshake.session_id_for(initiator, identity.public, initial.ephemeral)
        if not constant_time_equal(session_id, parsed.session_id):
            raise MalformedEnvelope("initial envelope has an inconsistent session id")
        found = prekeys.lookup(
            signed_prekey_id=initial.signed_prekey_id,
            one_time_prekey_id=initial.one_time_prekey_id,
            kem_prekey_id=initial.kem_prekey_id,
            session_id=session_id,
            now=now,
        )
        secrets = handshake.respond(
            identity, initiator, found, initial.ephemeral, initial.kem_ciphertext
        )
        # Our first send will take a DH step with this key: refuse a low-order one now (HS-08).
        X25519PublicKey(parsed.header.ratchet_key).check_not_low_order()
        ratchet = DoubleRatchet.responder(
            secrets.root_key, secrets.chain_key, parsed.header.ratchet_key
        )
        session = cls(
            session_id=session_id,
            ours=identity.public,
            peer=initiator,
            is_initiator=False,
            ad=secrets.ad,
            ratchet=ratchet,
            initial=None,
        )
        plaintext = session._open(parsed)
        prekeys.consume(found, session_id=session_id, now=now)
        return session, plaintext

    # --- messages --------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt one message; returns the envelope. Advances the sending chain (ENV-06)."""
        if not isinstance(plaintext, bytes):
            raise TypeError("plaintext must be bytes")
        if len(plaintext) > MAX_PLAINTEXT_SIZE:
            raise PlaintextTooLarge(MAX_PLAINTEXT_SIZE, len(plaintext))
        header, message_key, nonce = self._ratchet.next_sending()
        prefix = encode_prefix(self._sid, self._initial, header)
        ciphertext = aead.seal(message_key, nonce, pad(plaintext), self._ad + prefix)
        return prefix + wire.pack(ciphertext)

    def decrypt(self, envelope: bytes | ParsedEnvelope) -> bytes:
        """Decrypt one envelope of this conversation; the state changes only on success."""
        parsed = envelope if isinstance(envelope, ParsedEnvelope) else parse_envelope(envelope)
        if not constant_time_equal(parsed.session_id, self._sid):
            raise UsageError("envelope belongs to another conversation")
        plaintext = self._open(parsed)
        if self._is_initiator:
            # The responder has the session: no need to repeat the handshake any more.
            self._initial = None
        return plaintext

    def _open(self, parsed: ParsedEnvelope) -> bytes:
        return self._ratchet.decrypt(
            parsed.header, parsed.ciphertext, self._ad + parsed.prefix, unpad
        )

    # --- what the application sees ---------------------------------------------------------------

    @property
    def session_id(self) -> bytes:
        """The public 16-byte id that every envelope of this conversation carries."""
        return self._sid

    @property
    def peer_identity(self) -> PublicIdentity:
        """The peer's public identity, as authenticated by the handshake."""
        return self._peer

    @property
    def our_identity(self) -> PublicIdentity:
        """Our own public identity in this conversation."""
        return self._ours

    @property
    def is_initiator(self) -> bool:
        """True on the side that started the conversation from a bundle."""
        return self._is_initiator

    @property
    def handshake_pending(self) -> bool:
        """True while the initiator has not yet heard from the responder."""
        return self._initial is not None

    def safety_number(self) -> SafetyNumber:
        """The safety number of the two identities, identical on both ends."""
        return SafetyNumber.of(self._ours, self._peer)

    # --- saved state ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The versioned serialised state (ST-02). Secret: store it encrypted."""
        return wire.pack(
            [
                SESSION_STATE_VERSION,
                self._sid,
                self._is_initiator,
                self._ours.to_bytes(),
                self._peer.to_bytes(),
                self._ad,
                None if self._initial is None else self._initial.as_list(),
                self._ratchet.to_list(),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Session:
        """Load a state saved by :meth:`to_bytes`.

        Raises :class:`StateError` for corrupt data and for a state written by a newer version
        of the library (ST-02).
        """
        if not isinstance(data, bytes):
            raise TypeError("session state must be bytes")
        if len(data) > MAX_STATE_SIZE:
            raise StateError("session state is larger than any valid state")
        fields = wire.unpack_array(
            data,
            max_array_len=4001,
            what="session state",
            error=StateError,
            max_depth=5,
            max_arrays=_MAX_STATE_ARRAYS,
        )
        if not fields or not wire.is_uint(fields[0], 2**16) or fields[0] < 1:
            raise StateError("session state is not readable")
        if fields[0] > SESSION_STATE_VERSION:
            raise StateError(
                f"session state version {fields[0]} is newer than this library supports"
            )
        try:
            _, sid, is_initiator, ours, peer, ad, initial, ratchet = fields
            if not wire.is_bytes(sid, SESSION_ID_SIZE) or not wire.is_bytes(ad, 32):
                raise ValueError
            if type(is_initiator) is not bool:
                raise ValueError
            initial_fields = None if initial is None else _initial_fields(initial)
            return cls(
                session_id=sid,
                ours=_trusted_identity(ours),
                peer=_trusted_identity(peer),
                is_initiator=is_initiator,
                ad=ad,
                ratchet=DoubleRatchet.from_list(ratchet, version=fields[0]),
                initial=initial_fields,
            )
        except (ValueError, TypeError):
            pass  # raised below, without the exception caught (its frames hold the keys)
        raise StateError("session state is not readable")

    def __repr__(self) -> str:
        role = "initiator" if self._is_initiator else "responder"
        return f"Session(id={self._sid.hex()}, {role}, {self._ratchet!r})"
