"""entrenous: end-to-end encrypted messaging, as a library.

entrenous implements the cryptographic core of a two-party messaging protocol: long-term
identities, signed and one-time prekeys, an asynchronous handshake, a double ratchet, padded
envelopes and serialisable session state.

It is *sans-IO*: there is no networking code at all. The library turns plaintext into envelope
bytes and back; carrying those bytes (a relay, a queue, a file) and storing state are the caller's
job. It is not a messenger, a server, a transport or a key directory, and it does not decide whom
to trust: comparing safety numbers out of band is up to the people using it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from entrenous.client import Client, Conversation, Message, Received, ReceiveOutcome
from entrenous.errors import EntrenousError
from entrenous.protocol import SafetyNumber

__all__ = [
    "Client",
    "Conversation",
    "EntrenousError",
    "Message",
    "ReceiveOutcome",
    "Received",
    "SafetyNumber",
    "__version__",
]
