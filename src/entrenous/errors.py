"""The exception hierarchy of entrenous.

Every error the library raises on purpose derives from :class:`EntrenousError`, split by fault:

* :class:`PeerError`: the input came from the other side (or an attacker on the way) and is
  unacceptable: malformed, tampered, replayed, from an unknown prekey. The caller did nothing wrong.
* :class:`LimitExceeded`: an input or a state would go beyond a documented limit. It carries the
  limit and the value so the caller can log them (numbers only, never content).
* :class:`StateError`: serialised state (a session, a prekey pool) is unreadable or from another
  version of the library.
* :class:`UsageError`: the caller asked for something the API does not allow in this state.
  :class:`PolicyError` (a retention/consent policy file is refused) is one: it carries every
  problem found, each with its location in the file.

:class:`ConsentError` groups the consent errors (never raised itself); each of them also sits in
exactly one of the branches above: :class:`ConsentRequired` is a usage error,
:class:`InvalidConsentRequest` and :class:`InvalidConsentRecord` are peer errors, and
:class:`ConsentLedgerBroken` is a state error.

Programmer mistakes of type or shape (passing ``str`` where ``bytes`` is required) stay builtin
``TypeError`` / ``ValueError``, as in the standard library.

Every authentication failure (AEAD tag, signature) is the single opaque
:class:`AuthenticationError`: its message never says which check failed, so it cannot serve as an
oracle. No message of any error in this module contains key material, plaintext or other secret
bytes.

This module imports nothing from the rest of the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "AuditChainBroken",
    "AuthenticationError",
    "ComplianceError",
    "ConsentError",
    "ConsentLedgerBroken",
    "ConsentRequired",
    "ConsentSignatureInvalid",
    "EntrenousError",
    "EnvelopeTooLarge",
    "IdentityChanged",
    "InvalidConsentRecord",
    "InvalidConsentRequest",
    "InvalidKey",
    "JournalLost",
    "LimitExceeded",
    "MalformedBundle",
    "MalformedEnvelope",
    "MessageGapTooLarge",
    "PayloadTooLarge",
    "PeerError",
    "PlaintextTooLarge",
    "PolicyError",
    "PrekeyConsumed",
    "ReplayError",
    "SafetyNumberMismatch",
    "SchemaTooNew",
    "StateError",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "UnknownConversation",
    "UnknownPrekey",
    "UnsupportedVersion",
    "UsageError",
    "WrongKey",
]


class EntrenousError(Exception):
    """Root of every error entrenous raises on purpose."""


# --- the peer sent something unacceptable -------------------------------------------------


class PeerError(EntrenousError):
    """The input came from the peer or the network and cannot be accepted."""


class MalformedEnvelope(PeerError):
    """An envelope is not well-formed: wrong types, unknown fields, truncation, trailing bytes."""


class MalformedBundle(PeerError):
    """A prekey bundle or a serialised public identity is not well-formed."""


class UnsupportedVersion(PeerError):
    """An envelope, bundle or identity carries a version this code does not know."""

    def __init__(self, what: str, version: object) -> None:
        shown = version if isinstance(version, int) and not isinstance(version, bool) else "?"
        super().__init__(f"unsupported {what} version {shown}")
        self.what = what
        self.version = version


class AuthenticationError(PeerError):
    """Authentication failed. Deliberately opaque: it never says which check failed."""

    def __init__(self, message: str = "authentication failed") -> None:
        super().__init__(message)


class InvalidKey(PeerError):
    """A public key is unusable (for example an X25519 key giving an all-zero shared secret)."""


class ReplayError(PeerError):
    """The message was already received, or its key was already used or discarded."""


class UnknownPrekey(PeerError):
    """An initial message names a prekey this party does not hold (never issued or expired)."""


class PrekeyConsumed(UnknownPrekey):
    """An initial message names a one-time prekey that was already consumed."""


# --- limits -----------------------------------------------------------------------------------


class LimitExceeded(EntrenousError):
    """A documented limit would be exceeded. ``limit`` and ``value`` carry the numbers."""

    def __init__(self, what: str, limit: int, value: int) -> None:
        super().__init__(f"{what}: {value} exceeds the limit of {limit}")
        self.what = what
        self.limit = limit
        self.value = value


class EnvelopeTooLarge(LimitExceeded, PeerError):
    """An envelope is larger than the maximum envelope size; it was not parsed."""

    def __init__(self, limit: int, value: int) -> None:
        super().__init__("envelope size in bytes", limit, value)


class PlaintextTooLarge(LimitExceeded):
    """A plaintext handed to ``encrypt`` is larger than the maximum plaintext size."""

    def __init__(self, limit: int, value: int) -> None:
        super().__init__("plaintext size in bytes", limit, value)


class MessageGapTooLarge(LimitExceeded, PeerError):
    """A message skips more messages of one chain than the ratchet keeps keys for."""

    def __init__(self, limit: int, value: int) -> None:
        super().__init__("skipped messages in one chain", limit, value)


# --- serialised state and API misuse -------------------------------------------------------


class StateError(EntrenousError):
    """Serialised state cannot be loaded: corrupt, truncated, or from an unknown version."""


class UsageError(EntrenousError):
    """The API was used in a way it does not allow in the current state."""


class SafetyNumberMismatch(UsageError):
    """``mark_verified`` was given a safety number that is not this conversation's."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem of a refused policy file: where it is and what is wrong.

    ``location`` is the dotted path of the key in the file
    (``retention.categories.contract.min_age``, ``purposes.marketing.categories[0]``), or ``""``
    for the file as a whole (unreadable, not TOML). ``line`` and ``column`` are 1-based positions
    in the file when known. The message quotes names, durations and ids from the file, never free
    text (descriptions, contacts).
    """

    location: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def format(self, source: str) -> str:
        """One line, compiler style: ``SOURCE:LINE:COLUMN: LOCATION: MESSAGE``."""
        where = source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self}"


class PolicyError(UsageError):
    """A retention/consent policy file was refused. ``problems`` lists every problem found.

    ``source`` names the file (its path as given, or ``"<string>"``). ``str()`` gives a summary
    line followed by one line per problem.
    """

    def __init__(self, source: str, problems: Iterable[PolicyProblem]) -> None:
        self.source = source
        self.problems: tuple[PolicyProblem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{source}: policy refused, {count} problem{'' if count == 1 else 's'}"
        super().__init__("\n".join([head, *(f"  {p.format(source)}" for p in self.problems)]))


# --- the store -----------------------------------------------------------------------------------


class StoreError(EntrenousError):
    """The encrypted store cannot be opened or used. Nothing on disk was changed."""


class WrongKey(StoreError):
    """The key or passphrase does not open this store."""


class StoreLocked(StoreError):
    """Another process (or another open Client) owns this store."""


class StoreCorrupt(StoreError):
    """The file is not an entrenous store, or it is damaged or truncated."""


class JournalLost(StoreCorrupt):
    """The write-ahead log of a store that was not closed cleanly is missing.

    Committed changes of the last session (ratchet states, messages) were only in
    ``<store>-wal``: opening without it would roll the conversations back, and the next send
    would reuse message keys that already left. Restore the ``-wal`` file beside the store.
    """


class SchemaTooNew(StoreError):
    """The store was written by a newer version of entrenous than this one."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"store schema version {found} is newer than this library supports ({supported})"
        )
        self.found = found
        self.supported = supported


class UnknownConversation(PeerError):
    """An envelope belongs to no conversation this client has (and starts none)."""


class IdentityChanged(PeerError):
    """A peer known under a label came back with another identity key.

    Never silent: the application decides (and may accept with ``accept_identity_change``).
    """


class PayloadTooLarge(LimitExceeded):
    """A message's text or structured payload is larger than the maximum payload size."""

    def __init__(self, limit: int, value: int) -> None:
        super().__init__("message payload size in bytes", limit, value)


# --- consent (GDPR Art. 7) -------------------------------------------------------------------


class ConsentError(EntrenousError):
    """Base of the consent errors; never raised itself (each subclass has its own branch)."""


class ConsentRequired(ConsentError, UsageError):
    """Processing for a purpose that needs consent, without a valid, unexpired, unwithdrawn record.

    ``purpose`` is the purpose identifier (never personal data); ``reason`` says why the consent
    is not valid: ``"none recorded"``, ``"refused"``, ``"withdrawn"`` or ``"expired"``.
    """

    def __init__(self, purpose: str, reason: str) -> None:
        super().__init__(f"purpose {purpose!r} requires consent ({reason})")
        self.purpose = purpose
        self.reason = reason


class InvalidConsentRequest(ConsentError, PeerError):
    """A consent request from the peer is malformed: a missing, extra, mistyped or oversized
    field, or a notice hash that does not match the notice text. The message names the field."""


class InvalidConsentRecord(ConsentError, PeerError):
    """A consent record is malformed, forged, or does not answer the request it claims to answer.

    The message names the field or the check that failed, never a value of the record.
    """


class ConsentSignatureInvalid(InvalidConsentRecord, AuthenticationError):
    """A consent record's signature does not verify under the expected identity.

    Both an :class:`InvalidConsentRecord` and the one opaque :class:`AuthenticationError` (ERR-02):
    its message is the same as every other authentication failure's.
    """


class ConsentLedgerBroken(ConsentError, StateError):
    """The consent ledger's hash chain does not verify. ``seq`` names the first broken entry.

    ``reason`` is one of a few fixed phrases (an entry missing or out of order, a broken link, a
    hash that does not match its content, a record that is not well-formed, a checkpoint that does
    not match); never content of the ledger.
    """

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"consent ledger broken at entry {seq}: {reason}")
        self.seq = seq
        self.reason = reason


# --- the compliance layer ------------------------------------------------------------------------


class ComplianceError(EntrenousError):
    """A compliance action (retention, hold, erasure, audit) cannot be carried out."""


class AuditChainBroken(ComplianceError):
    """The audit trail fails verification; ``seq`` is the first entry that does not verify."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"audit trail broken at entry {seq}: {reason}")
        self.seq = seq
        self.reason = reason
