"""The store interface: what the client needs to remember, and nothing about how.

:class:`Store` is a :class:`typing.Protocol`: the embedded default is
:class:`~entrenous.store.sqlcipher.SqlCipherStore`; a server-side deployment can implement the same
methods over a database server. Every method that changes something must run inside
:meth:`Store.transaction`, and a transaction is all or nothing: the client relies on that to
commit a ratchet state together with the message it produced (ST-01, STO-05).

Message bodies cross this interface in clear (as payload bytes) and the store encrypts them under
the conversation's data key (STO-07); everything else is stored as given.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

Direction = Literal["sent", "received"]


def conversation_setting(uid: bytes, name: str) -> str:
    """The name of a store setting that belongs to one conversation (a consent request): such
    settings are deleted with the conversation (:meth:`Store.erase_conversation`)."""
    return f"conversation:{uid.hex()}:{name}"


#: The hash-chained logs of a store.
ChainLog = Literal["audit", "consent"]


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """One conversation as stored. ``state`` is secret: the repr leaves it out."""

    uid: bytes
    session_id: bytes
    peer_identity: bytes
    peer: str | None
    state: bytes
    verified: bytes | None
    created_at: int
    updated_at: int
    category: str | None = None
    subject: str | None = None
    timer_ms: int | None = None
    key_generation: int = 0

    def __repr__(self) -> str:
        # The peer label and the subject id may be personal data: ids and flags only.
        return (
            f"ConversationRecord(uid={self.uid.hex()}, category={self.category!r}, "
            f"verified={self.verified is not None})"
        )


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message as the client sees it. ``body`` is plaintext: the repr leaves it out."""

    uid: bytes
    conversation_uid: bytes
    direction: Direction
    sent_at: int
    received_at: int | None
    body: bytes
    expires_at: int | None = None
    timer_ms: int | None = None

    @property
    def stored_at(self) -> int:
        """This side's time of the message: when we sent it, or when we received it."""
        return self.sent_at if self.received_at is None else self.received_at

    def __repr__(self) -> str:
        return (
            f"MessageRecord(uid={self.uid.hex()}, conversation={self.conversation_uid.hex()}, "
            f"{self.direction}, {len(self.body)} bytes)"
        )


@dataclass(frozen=True, slots=True)
class ExpiredMessage:
    """A message a sweep found past its expiry."""

    row_id: int
    conversation_uid: bytes
    expires_at: int


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """A legal hold on a conversation or on a data subject (exactly one of the two)."""

    uid: bytes
    conversation_uid: bytes | None
    subject: str | None
    reason: str
    reference: str | None
    placed_at: int
    released_at: int | None = None

    def __repr__(self) -> str:
        scope = "conversation" if self.conversation_uid is not None else "subject"
        return f"HoldRecord(uid={self.uid.hex()}, {scope}, active={self.released_at is None})"


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One row of a hash-chained log (the audit trail, the consent ledger)."""

    seq: int
    at: int
    kind: str
    body: bytes
    prev: bytes
    hash: bytes
    subject: str | None = None

    def __repr__(self) -> str:
        return f"ChainRow(seq={self.seq}, kind={self.kind!r})"


class Store(Protocol):
    """What :class:`~entrenous.client.Client` needs from a store."""

    def transaction(self) -> AbstractContextManager[None]:
        """All changes made inside commit together, or none does."""
        ...

    def load_secret(self, name: str) -> bytes | None:
        """A named secret blob (the identity, the prekey pool), or ``None``."""
        ...

    def save_secret(self, name: str, value: bytes) -> None:
        """Create or replace a named secret blob."""
        ...

    def add_conversation(self, record: ConversationRecord) -> None:
        """Store a new conversation (and create its data key)."""
        ...

    def conversation(self, uid: bytes) -> ConversationRecord | None:
        """The conversation with this uid."""
        ...

    def conversation_by_session(self, session_id: bytes) -> ConversationRecord | None:
        """The conversation whose protocol session has this id."""
        ...

    def conversations(self) -> list[ConversationRecord]:
        """Every conversation, most recently active first."""
        ...

    def conversations_with_peer(self, peer: str) -> list[ConversationRecord]:
        """The conversations labelled with this peer."""
        ...

    def update_conversation(
        self,
        uid: bytes,
        *,
        state: bytes | None = None,
        updated_at: int | None = None,
        peer: str | None = None,
        verified: bytes | Literal[False] | None = False,
    ) -> None:
        """Change some fields of a conversation (``verified=False`` leaves it unchanged)."""
        ...

    def add_message(self, record: MessageRecord) -> None:
        """Store a message; its body is encrypted under the conversation's data key."""
        ...

    def add_messages(self, records: list[MessageRecord]) -> None:
        """Store several messages at once (same rules as :meth:`add_message`)."""
        ...

    def history(
        self, conversation_uid: bytes, *, limit: int, before: bytes | None
    ) -> list[MessageRecord]:
        """Up to ``limit`` messages, newest first, older than message ``before`` if given."""
        ...

    # --- compliance (spec/compliance.md) ------------------------------------------------------

    def meta(self, name: str) -> bytes | None:
        """A named store setting (the applied policy, the audit head), or ``None``."""
        ...

    def set_meta(self, name: str, value: bytes | None) -> None:
        """Create, replace or (``None``) remove a named store setting."""
        ...

    def conversations_of_subject(
        self, subject: str, *, loose: bool = False
    ) -> list[ConversationRecord]:
        """The conversations of a data subject: its subject id, else its peer label, is
        ``subject`` (``loose``: or its peer label is, whatever its subject id)."""
        ...

    def set_retention(
        self, conversation_uid: bytes, *, min_ms: int, max_ms: int | None, use_timers: bool = True
    ) -> None:
        """Recompute the expiry of every message of a conversation from a retention rule.

        A message expires at its time plus ``max(min_ms, min(max_ms, its timer))``, where a
        missing maximum (keep forever) or timer (or every timer, without ``use_timers``) does
        not bound it; with neither it never expires.
        """
        ...

    def expired(self, now: int, *, limit: int) -> list[ExpiredMessage]:
        """Up to ``limit`` messages expired at ``now``, oldest expiry first, none under a hold."""
        ...

    def next_expiry(self) -> int | None:
        """The earliest expiry of a message not under a hold, or ``None``."""
        ...

    def delete_messages(self, row_ids: list[int]) -> None:
        """Delete messages found by :meth:`expired`."""
        ...

    def messages_of(
        self,
        conversation_uid: bytes,
        *,
        stored_before: int | None = None,
        stored_from: int | None = None,
    ) -> list[tuple[bytes, int]]:
        """The ids and times of a conversation's messages (all, or stored before, or from, a
        time)."""
        ...

    def erase_conversation(self, uid: bytes) -> list[tuple[bytes, int]]:
        """Delete a conversation, its messages and its settings (:func:`conversation_setting`),
        and schedule every generation of its data key for shredding; the deleted messages' ids
        and times."""
        ...

    def deferred_checkpoint(self) -> AbstractContextManager[None]:
        """No automatic journal checkpoint inside (a bulk deletion truncates it afterwards)."""
        ...

    def prune_and_reseal(self, uid: bytes, *, keep_stored_from: int) -> None:
        """Delete a conversation's messages stored before a time, re-seal the rest under a new
        data key, and schedule the old keys for shredding."""
        ...

    def shred_pending(self) -> int:
        """Destroy the data keys scheduled for shredding (after their erasure committed)."""
        ...

    def truncate_journal(self) -> None:
        """Checkpoint and truncate the write-ahead log (outside any transaction)."""
        ...

    def add_hold(self, record: HoldRecord) -> None:
        """Store a new legal hold."""
        ...

    def release_hold(self, uid: bytes, at: int) -> HoldRecord | None:
        """Release an active hold; the released record, or ``None`` if there is none active."""
        ...

    def redact_hold(self, uid: bytes, subject: str | None) -> None:
        """Strip a released hold of its reason and reference and replace its subject."""
        ...

    def holds(self, *, active_only: bool) -> list[HoldRecord]:
        """Legal holds, oldest first."""
        ...

    def held_conversations(self) -> set[bytes]:
        """The uids of the conversations under an active hold (directly or by subject)."""
        ...

    def last_chain_row(self, log: ChainLog) -> ChainRow | None:
        """The newest row of a hash-chained log."""
        ...

    def add_chain_row(self, log: ChainLog, row: ChainRow) -> None:
        """Append a row to a hash-chained log (its seq must follow the last one)."""
        ...

    def chain_rows(
        self, log: ChainLog, *, after: int = 0, limit: int = 1000, subject: str | None = None
    ) -> list[ChainRow]:
        """Rows of a log in order, after seq ``after`` (only a subject's, if given)."""
        ...

    def consent_rows(self, purpose: str, key: str) -> list[ChainRow]:
        """The consent ledger's rows of one purpose and ledger key, in order."""
        ...

    def add_erasure(self, uid: bytes, at: int, receipt: bytes) -> None:
        """Keep an erasure receipt."""
        ...

    def erasures(self) -> list[tuple[bytes, int, bytes]]:
        """Every erasure receipt (uid, time, receipt bytes), oldest first."""
        ...

    def close(self) -> None:
        """Release the store; idempotent."""
        ...
