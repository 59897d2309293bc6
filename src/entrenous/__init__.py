"""entrenous: end-to-end encrypted, GDPR-compliant messaging, as a library.

entrenous implements a two-party messaging protocol (long-term identities, signed and one-time
prekeys, an asynchronous post-quantum hybrid handshake, a double ratchet, padded envelopes), an
encrypted store for it, and a compliance layer on that store: retention policies and sweeps,
legal holds, disappearing messages, erasure by crypto-shredding with signed receipts, consent
records, access exports and a hash-chained audit trail.

It is *sans-IO*: there is no networking code at all. The library turns plaintext into envelope
bytes and back; carrying those bytes (a relay, a queue, a file) and storing state are the caller's
job. It is not a messenger, a server, a transport or a key directory, and it does not decide whom
to trust: comparing safety numbers out of band is up to the people using it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from entrenous.client import Client, Conversation, Message, Received, ReceiveOutcome
from entrenous.compliance.consent import ConsentRecord
from entrenous.compliance.erasure import ErasureReceipt
from entrenous.compliance.holds import Hold
from entrenous.compliance.policy import Policy
from entrenous.compliance.retention import SweepReport
from entrenous.errors import EntrenousError
from entrenous.protocol import SafetyNumber

__all__ = [
    "Client",
    "ConsentRecord",
    "Conversation",
    "EntrenousError",
    "ErasureReceipt",
    "Hold",
    "Message",
    "Policy",
    "ReceiveOutcome",
    "Received",
    "SafetyNumber",
    "SweepReport",
    "__version__",
]
