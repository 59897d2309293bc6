"""The protocol layer: identities, prekeys, the PQXDH-style handshake, the Double Ratchet and
envelopes, as pure state machines (bytes in, bytes out; no I/O, no clock of their own).

Most applications use :class:`entrenous.Client`, which stores all of this encrypted. These
classes are public for applications that bring their own storage, and for auditors.
"""

from entrenous.protocol.bundle import PrekeyBundle
from entrenous.protocol.envelope import ParsedEnvelope, parse_envelope
from entrenous.protocol.identity import Identity, PublicIdentity, SafetyNumber
from entrenous.protocol.prekeys import PrekeyPool
from entrenous.protocol.session import Session

__all__ = [
    "Identity",
    "ParsedEnvelope",
    "PrekeyBundle",
    "PrekeyPool",
    "PublicIdentity",
    "SafetyNumber",
    "Session",
    "parse_envelope",
]
