"""entrenous itself, through its public protocol API (``entrenous.protocol``).

Configuration: the library's only one. PQXDH-style handshake (X25519 + ML-KEM-768, one Ed25519
signature per bundle, one-time X25519 and ML-KEM prekeys), Double Ratchet with
ChaCha20-Poly1305, Padmé padding, session state as bytes (``Session.to_bytes``). ``now`` is a
fixed timestamp: the benchmark never ages a prekey.
"""

from __future__ import annotations

from typing import ClassVar

from benchmarks.protocol.common import PeerUnavailable, RatchetPeer

try:
    import entrenous
    from entrenous.protocol import Identity, PrekeyPool, Session
except ImportError as exc:  # the library, or its protocol layer, is not importable yet
    raise PeerUnavailable(f"entrenous.protocol does not import: {exc}") from exc

#: The fixed "current time" (unix seconds) passed to every call that takes one.
NOW = 1_700_000_000


class EntrenousPeer(RatchetPeer[Session, bytes, bytes]):
    """entrenous: envelopes and bundles are bytes already, so the primitives are one call each."""

    name: ClassVar[str] = "entrenous"
    configuration: ClassVar[str] = (
        "PQXDH (X25519 + ML-KEM-768, one-time X25519 and ML-KEM prekeys, one Ed25519 signature "
        "per bundle), Double Ratchet with HMAC-SHA512 chains and ChaCha20-Poly1305, Padme "
        "padding; state via Session.to_bytes/from_bytes"
    )

    def __init__(self) -> None:
        self._alice = Identity.generate()
        self._bob = Identity.generate()
        self._pool = PrekeyPool.create(self._bob, now=NOW)

    def version(self) -> str:
        return str(entrenous.__version__)

    def publish(self) -> bytes:
        return self._pool.issue_bundle(now=NOW)

    def handshake(self, published: bytes, plaintext: bytes) -> tuple[Session, Session, bytes]:
        a = Session.initiate(self._alice, published)
        b, received = Session.respond(self._bob, self._pool, a.encrypt(plaintext), now=NOW)
        return a, b, received

    def encrypt(self, session: Session, plaintext: bytes) -> bytes:
        return session.encrypt(plaintext)

    def decrypt(self, session: Session, message: bytes) -> bytes:
        return session.decrypt(message)

    def save(self, session: Session) -> bytes:
        return session.to_bytes()

    def load(self, blob: bytes) -> Session:
        return Session.from_bytes(blob)


PEER = EntrenousPeer
