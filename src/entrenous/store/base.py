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

    def __repr__(self) -> str:
        return (
            f"ConversationRecord(uid={self.uid.hex()}, peer={self.peer!r}, "
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

    def __repr__(self) -> str:
        return (
            f"MessageRecord(uid={self.uid.hex()}, conversation={self.conversation_uid.hex()}, "
            f"{self.direction}, {len(self.body)} bytes)"
        )


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

    def close(self) -> None:
        """Release the store; idempotent."""
        ...
