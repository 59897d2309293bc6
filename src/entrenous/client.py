"""The public API: a restart-safe, encrypted conversation in ten lines.

>>> with Client.open("bank.db", key=key) as bank:  # doctest: +SKIP
...     bundle = bank.prekey_bundle()

:class:`Client` owns one encrypted store (SQLCipher 4) and one identity. Every call that changes
the protocol state commits it to the store *before* it returns: :meth:`Conversation.send` commits
the advanced ratchet state and the outgoing message in one transaction and only then hands back
the envelope; :meth:`Client.receive` decrypts, updates the state and stores the message in one
transaction. A crash at any point therefore loses no returned message and never reuses a key
(spec/client.md, API-05 and API-06).

Time comes from ``clock`` (seconds since the epoch, ``time.time`` by default): inject another for
tests. A ``Client`` may be shared between threads; its calls are serialised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from entrenous import payload as payload_codec
from entrenous._primitives.rand import random_bytes
from entrenous.errors import (
    EntrenousError,
    IdentityChanged,
    SafetyNumberMismatch,
    StoreCorrupt,
    UnknownConversation,
    UsageError,
)
from entrenous.protocol import Identity, PrekeyPool, PublicIdentity, SafetyNumber, Session
from entrenous.protocol.envelope import ParsedEnvelope, parse_envelope
from entrenous.store.base import ConversationRecord, MessageRecord
from entrenous.store.keys import check_secret, resolve_key, write_kdf_params
from entrenous.store.lock import StoreLock
from entrenous.store.sqlcipher import SqlCipherStore, creation_marker, key_file_path

_IDENTITY = "identity"
_PREKEYS = "prekeys"
#: The most messages one history page returns.
MAX_PAGE = 1000


def _to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _new_conversation(session: Session, peer: str | None, now: int) -> ConversationRecord:
    """The record of a conversation that starts now (a fresh local uid, not yet verified)."""
    return ConversationRecord(
        uid=random_bytes(16),
        session_id=session.session_id,
        peer_identity=session.peer_identity.to_bytes(),
        peer=peer,
        state=session.to_bytes(),
        verified=None,
        created_at=now,
        updated_at=now,
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation, as stored on this side.

    ``content`` is the text (``str``) or the structured payload (``dict``). ``sent_at`` is the
    sender's clock (carried end to end), ``received_at`` ours (``None`` for messages we sent).
    The repr leaves the content out.
    """

    id: str
    conversation_id: str
    direction: Literal["sent", "received"]
    sender: PublicIdentity
    content: str | dict[str, Any]
    sent_at: datetime
    received_at: datetime | None

    @property
    def text(self) -> str | None:
        """The text of a text message, else ``None``."""
        return self.content if isinstance(self.content, str) else None

    @property
    def data(self) -> dict[str, Any] | None:
        """The mapping of a structured message, else ``None``."""
        return self.content if isinstance(self.content, dict) else None

    def __repr__(self) -> str:
        return f"Message(id={self.id}, {self.direction}, sent_at={self.sent_at.isoformat()})"


@dataclass(frozen=True, slots=True)
class Received:
    """What :meth:`Client.receive` returns: the conversation and the new message."""

    conversation: Conversation
    message: Message
    new_conversation: bool


@dataclass(frozen=True, slots=True)
class ReceiveOutcome:
    """One envelope's result in :meth:`Client.receive_many`: ``received`` or ``error``."""

    index: int
    received: Received | None
    error: EntrenousError | None

    @property
    def ok(self) -> bool:
        """True if the envelope was accepted and stored."""
        return self.error is None


class Conversation:
    """A conversation with one peer. A light handle: state lives in the store."""

    __slots__ = ("_client", "_uid")

    def __init__(self, client: Client, uid: bytes) -> None:
        self._client = client
        self._uid = uid

    @property
    def id(self) -> str:
        """The conversation's local id (32 hex digits), stable across restarts."""
        return self._uid.hex()

    def _record(self) -> ConversationRecord:
        return self._client._record(self._uid)

    @property
    def peer_identity(self) -> PublicIdentity:
        """The peer's public identity, as authenticated by the handshake."""
        return PublicIdentity._from_trusted_bytes(self._record().peer_identity)

    @property
    def peer(self) -> str | None:
        """The application's label for the peer (see :meth:`set_peer`), if any."""
        return self._record().peer

    @property
    def created_at(self) -> datetime:
        """When this conversation was created on this side."""
        return _to_datetime(self._record().created_at)

    @property
    def is_verified(self) -> bool:
        """True once :meth:`mark_verified` accepted this conversation's safety number."""
        return self._record().verified is not None

    def safety_number(self) -> SafetyNumber:
        """The safety number both people can compare (aloud, or by QR code)."""
        return SafetyNumber.of(self._client.identity, self.peer_identity)

    def mark_verified(self, safety_number: SafetyNumber | str | bytes) -> None:
        """Record that the people compared the safety number and it matched.

        Raises :class:`SafetyNumberMismatch` (nothing recorded) if it is not this one.
        """
        ours = self.safety_number()
        if not ours.matches(safety_number):
            raise SafetyNumberMismatch("that is not this conversation's safety number")
        self._client._update(self._uid, verified=ours.qr_bytes)

    def set_peer(self, peer: str, *, accept_identity_change: bool = False) -> None:
        """Label the peer (a customer id, "bank", ...). See :meth:`Client.start_conversation`."""
        self._client._label(self._uid, peer, accept_identity_change)

    def send(self, content: str | Mapping[str, Any]) -> bytes:
        """Encrypt and store one message; return the envelope to carry to the peer.

        The new ratchet state and the message are committed before the envelope is returned.
        """
        return self._client._send(self._uid, content)

    def history(self, limit: int = 50, *, before: str | None = None) -> list[Message]:
        """Up to ``limit`` messages, newest first; pass the last id as ``before`` for more."""
        return self._client._history(self._uid, limit, before)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Conversation):
            return NotImplemented
        return self._uid == other._uid and self._client is other._client

    def __hash__(self) -> int:
        return hash(self._uid)

    def __repr__(self) -> str:
        return f"Conversation(id={self.id})"


class Client:
    """One endpoint: an identity, its prekeys and its conversations, in one encrypted store."""

    __slots__ = (
        "_clock",
        "_closed",
        "_identity",
        "_lock",
        "_prekeys",
        "_prekeys_touched",
        "_sessions",
        "_store",
        "_touched_sessions",
    )

    def __init__(
        self,
        store: SqlCipherStore,
        identity: Identity,
        prekeys: PrekeyPool,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._identity = identity
        self._prekeys = prekeys
        self._clock = clock
        self._sessions: dict[bytes, Session] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._prekeys_touched = False
        self._touched_sessions: list[bytes] = []

    # --- opening and closing -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key: bytes | None = None,
        passphrase: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Client:
        """Open the store at ``path``, creating it (and an identity) if it does not exist.

        Give exactly one of ``key`` (32 raw bytes, from the platform keystore: preferred) or
        ``passphrase`` (stretched with Argon2id). A wrong key raises
        :class:`~entrenous.errors.WrongKey`; a store from a newer version
        :class:`~entrenous.errors.SchemaTooNew`; another open client
        :class:`~entrenous.errors.StoreLocked`; a damaged file
        :class:`~entrenous.errors.StoreCorrupt`. None of them changes anything on disk.
        """
        check_secret(key, passphrase)
        # Resolved, so that a symlinked path takes the same lock as the real one (STO-09).
        store_path = Path(path).resolve()
        # The lock comes first: a second open must raise StoreLocked before it reads or writes
        # anything, the .kdf file included (STO-09).
        lock = StoreLock(store_path)
        try:
            creating = not store_path.exists()
            if (
                creating
                and key_file_path(store_path).exists()
                and not creation_marker(store_path).exists()
            ):
                raise StoreCorrupt("a data-key file exists but its store is missing")
            store_key, params = resolve_key(
                store_path, key=key, passphrase=passphrase, creating=creating
            )
            if params is not None:
                # Written first: a store must never exist without the parameters that open it.
                write_kdf_params(store_path, params)
            store = SqlCipherStore.open(store_path, store_key, lock=lock)
        except BaseException:
            lock.release()
            raise
        try:
            now = clock() if clock is not None else time.time()
            identity, prekeys = cls._load_or_create(store, int(now))
        except BaseException:
            store.close()
            raise
        return cls(store, identity, prekeys, clock or time.time)

    @staticmethod
    def _load_or_create(store: SqlCipherStore, now: int) -> tuple[Identity, PrekeyPool]:
        saved_identity = store.load_secret(_IDENTITY)
        if saved_identity is None:
            identity = Identity.generate()
            prekeys = PrekeyPool.create(identity, now=now)
            with store.transaction():
                store.save_secret(_IDENTITY, identity.to_bytes())
                store.save_secret(_PREKEYS, prekeys.to_bytes())
            return identity, prekeys
        try:
            identity = Identity.from_bytes(saved_identity)
            saved_prekeys = store.load_secret(_PREKEYS)
            if saved_prekeys is None:
                raise StoreCorrupt("the store has an identity but no prekeys")
            prekeys = PrekeyPool.from_bytes(saved_prekeys, identity)
        except StoreCorrupt:
            raise
        except EntrenousError:
            raise StoreCorrupt("the stored identity or prekeys are not readable") from None
        if prekeys.maintain(now=now):
            # Rotated on schedule: the old signed prekey stays valid for its grace period.
            with store.transaction():
                store.save_secret(_PREKEYS, prekeys.to_bytes())
        return identity, prekeys

    def close(self) -> None:
        """Close the store; idempotent. The client cannot be used afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sessions.clear()
                self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this client is closed")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- identity and prekeys ------------------------------------------------------------------

    @property
    def identity(self) -> PublicIdentity:
        """This client's public identity."""
        return self._identity.public

    def prekey_bundle(self) -> bytes:
        """A signed bundle with fresh one-time prekeys, for the app to publish.

        Give each bundle to one initiator; the private halves stay in the store and are deleted
        when a conversation consumes them.
        """
        with self._lock:
            self._check_open()
            try:
                with self._store.transaction():
                    bundle = self._prekeys.issue_bundle(now=self._now_ms() // 1000)
                    self._store.save_secret(_PREKEYS, self._prekeys.to_bytes())
            except BaseException:
                self._reload_prekeys()
                raise
            return bundle

    def _reload_prekeys(self) -> None:
        saved = self._store.load_secret(_PREKEYS)
        if saved is not None:
            self._prekeys = PrekeyPool.from_bytes(saved, self._identity)

    # --- conversations -------------------------------------------------------------------------

    def start_conversation(
        self, bundle: bytes, *, peer: str | None = None, accept_identity_change: bool = False
    ) -> Conversation:
        """Start a conversation from a peer's published bundle (no round trip).

        ``peer`` is an optional label of the application's (a customer number, "bank"). If
        earlier conversations with that label had another identity, :class:`IdentityChanged`
        is raised unless ``accept_identity_change`` is true: a changed identity is never silent.
        """
        with self._lock:
            self._check_open()
            session = Session.initiate(self._identity, bundle)
            if peer is not None:
                self._check_peer(peer, session.peer_identity, accept_identity_change)
            record = _new_conversation(session, peer, self._now_ms())
            with self._store.transaction():
                self._store.add_conversation(record)
            self._sessions[record.uid] = session
            return Conversation(self, record.uid)

    def _check_peer(self, peer: str, identity: PublicIdentity, accept: bool) -> None:
        if not peer:
            raise ValueError("peer must be a non-empty str")
        # Compared with the latest conversation under the label: once a change was accepted,
        # the new identity is the one expected.
        for earlier in self._store.conversations_with_peer(peer)[:1]:
            if PublicIdentity._from_trusted_bytes(earlier.peer_identity) != identity and not accept:
                raise IdentityChanged(
                    "this peer's identity differs from the one of an earlier conversation; "
                    "compare safety numbers, then pass accept_identity_change=True"
                )

    def _label(self, uid: bytes, peer: str, accept: bool) -> None:
        with self._lock:
            self._check_open()
            record = self._record(uid)
            self._check_peer(peer, PublicIdentity._from_trusted_bytes(record.peer_identity), accept)
            with self._store.transaction():
                self._store.update_conversation(uid, peer=peer)

    def conversations(self) -> list[Conversation]:
        """Every conversation, most recently active first."""
        with self._lock:
            self._check_open()
            return [Conversation(self, r.uid) for r in self._store.conversations()]

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation with this id; :class:`UsageError` if there is none."""
        with self._lock:
            self._check_open()
            try:
                uid = bytes.fromhex(conversation_id)
            except (ValueError, TypeError):
                raise UsageError("not a conversation id") from None
            self._record(uid)
            return Conversation(self, uid)

    def _record(self, uid: bytes) -> ConversationRecord:
        with self._lock:  # reads share the connection with other threads' transactions
            self._check_open()
            record = self._store.conversation(uid)
        if record is None:
            raise UsageError("no such conversation in this store")
        return record

    def _update(self, uid: bytes, **changes: Any) -> None:
        with self._lock:
            self._check_open()
            with self._store.transaction():
                self._store.update_conversation(uid, **changes)

    def _session(self, record: ConversationRecord) -> Session:
        session = self._sessions.get(record.uid)
        if session is None:
            try:
                session = Session.from_bytes(record.state)
            except EntrenousError:
                raise StoreCorrupt("a conversation's saved protocol state is unreadable") from None
            self._sessions[record.uid] = session
        return session

    # --- sending -------------------------------------------------------------------------------

    def _send(self, uid: bytes, content: str | Mapping[str, Any]) -> bytes:
        with self._lock:
            record = self._record(uid)
            now = self._now_ms()
            message_id = random_bytes(16)
            body = payload_codec.encode(message_id, now, content)
            session = self._session(record)
            try:
                with self._store.transaction():
                    envelope = session.encrypt(body)
                    self._store.update_conversation(uid, state=session.to_bytes(), updated_at=now)
                    self._store.add_message(MessageRecord(message_id, uid, "sent", now, None, body))
            except BaseException:
                # The in-memory state ran ahead of the store: drop it, reload on next use.
                self._sessions.pop(uid, None)
                raise
            return envelope

    # --- receiving -----------------------------------------------------------------------------

    def receive(self, envelope: bytes) -> Received:
        """Accept one envelope: the first of a new conversation or any later one.

        A duplicate, replayed, tampered, malformed or oversized envelope raises a typed
        :class:`~entrenous.errors.EntrenousError` and stores nothing.
        """
        with self._lock:
            self._check_open()
            decided = False
            try:
                with self._store.transaction():
                    received = self._receive_one(envelope)
                    decided = True
            except BaseException:
                # A refused envelope drops only what it touched (no pool reload for garbage);
                # a failed commit drops everything.
                self._forget(everything=decided)
                raise
            return received

    def receive_many(self, envelopes: Iterable[bytes]) -> list[ReceiveOutcome]:
        """Accept a batch in one transaction, with an outcome per envelope (in order).

        A refused envelope changes nothing and does not stop the batch; the accepted ones are
        committed together at the end (a bot catching up after downtime).
        """
        batch = list(envelopes)
        with self._lock:
            self._check_open()
            try:
                with self._store.transaction():
                    fast = self._receive_fast(batch)
                    if fast is not None:
                        return fast
                    outcomes: list[ReceiveOutcome] = []
                    for index, envelope in enumerate(batch):
                        try:
                            with self._store.savepoint():
                                received = self._receive_one(envelope)
                        except EntrenousError as exc:
                            self._forget(everything=False)
                            outcomes.append(ReceiveOutcome(index, None, exc))
                        else:
                            outcomes.append(ReceiveOutcome(index, received, None))
            except BaseException:
                self._forget(everything=True)
                raise
            return outcomes

    def _receive_fast(self, batch: list[bytes]) -> list[ReceiveOutcome] | None:
        """The whole batch at once, when every envelope is a good one of a known conversation.

        Decrypts everything in memory first, then writes each conversation's state once and
        all messages with one statement. Returns ``None``, having written nothing and dropped
        the sessions it advanced, as soon as anything would need the per-envelope path (a
        refusal, a new conversation, a duplicate), which then handles the batch.
        """
        now = self._now_ms()
        records: dict[bytes, ConversationRecord] = {}
        touched: dict[bytes, Session] = {}
        staged: list[MessageRecord] = []
        outcomes: list[ReceiveOutcome] = []
        seen: set[tuple[bytes, bytes]] = set()

        def give_up() -> None:
            for uid in touched:
                self._sessions.pop(uid, None)

        for index, envelope in enumerate(batch):
            try:
                parsed = parse_envelope(envelope)
                record = records.get(parsed.session_id)
                if record is None:
                    record = self._store.conversation_by_session(parsed.session_id)
                if record is None:
                    give_up()
                    return None
                records[parsed.session_id] = record
                session = self._session(record)
                touched[record.uid] = session
                plaintext = session.decrypt(parsed)
                content = payload_codec.decode(plaintext)
            except EntrenousError:
                give_up()
                return None
            key = (record.uid, content.message_id)
            if key in seen:
                give_up()
                return None
            seen.add(key)
            staged.append(
                MessageRecord(
                    content.message_id, record.uid, "received", content.sent_at, now, plaintext
                )
            )
            message = Message(
                id=content.message_id.hex(),
                conversation_id=record.uid.hex(),
                direction="received",
                sender=session.peer_identity,
                content=content.content,
                sent_at=_to_datetime(content.sent_at),
                received_at=_to_datetime(now),
            )
            outcomes.append(
                ReceiveOutcome(
                    index, Received(Conversation(self, record.uid), message, False), None
                )
            )
        try:
            with self._store.savepoint():
                for uid, session in touched.items():
                    self._store.update_conversation(uid, state=session.to_bytes(), updated_at=now)
                self._store.add_messages(staged)
        except EntrenousError:
            give_up()
            return None
        return outcomes

    def _forget(self, *, everything: bool) -> None:
        """Drop in-memory state that may have run ahead of the store.

        Cheap when nothing ran ahead: a refused envelope that never reached a session or the
        prekeys (the common attack) costs no reload. ``everything`` after a failed commit.
        """
        if everything:
            self._sessions.clear()
        else:
            for uid in self._touched_sessions:
                self._sessions.pop(uid, None)
        self._touched_sessions.clear()
        if self._prekeys_touched or everything:
            self._reload_prekeys()
        self._prekeys_touched = False

    def _receive_one(self, envelope: bytes) -> Received:
        self._touched_sessions.clear()
        self._prekeys_touched = False
        parsed: ParsedEnvelope = parse_envelope(envelope)
        record = self._store.conversation_by_session(parsed.session_id)
        now = self._now_ms()
        new = record is None
        if record is None:
            if not parsed.is_initial:
                raise UnknownConversation("the envelope belongs to no conversation of this client")
            self._prekeys_touched = True
            session, plaintext = Session.respond(
                self._identity, self._prekeys, parsed, now=now // 1000
            )
            record = _new_conversation(session, None, now)
            self._touched_sessions.append(record.uid)
            self._sessions[record.uid] = session
        else:
            session = self._session(record)
            self._touched_sessions.append(record.uid)
            plaintext = session.decrypt(parsed)
        # Everything that can refuse the message happens before the first write: a refused
        # first message must not even leave a data key behind.
        content = payload_codec.decode(plaintext)
        message = Message(
            id=content.message_id.hex(),
            conversation_id=record.uid.hex(),
            direction="received",
            sender=session.peer_identity,
            content=content.content,
            sent_at=_to_datetime(content.sent_at),
            received_at=_to_datetime(now),
        )
        if new:
            self._store.add_conversation(record)
            self._store.save_secret(_PREKEYS, self._prekeys.to_bytes())
        else:
            self._store.update_conversation(record.uid, state=session.to_bytes(), updated_at=now)
        self._store.add_message(
            MessageRecord(
                content.message_id, record.uid, "received", content.sent_at, now, plaintext
            )
        )
        return Received(Conversation(self, record.uid), message, new)

    # --- history -------------------------------------------------------------------------------

    def _history(self, uid: bytes, limit: int, before: str | None) -> list[Message]:
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be an int from 1 to {MAX_PAGE}")
        with self._lock:
            record = self._record(uid)
            cursor = None
            if before is not None:
                try:
                    cursor = bytes.fromhex(before)
                except (ValueError, TypeError):
                    raise UsageError("not a message id") from None
            peer = PublicIdentity._from_trusted_bytes(record.peer_identity)
            out = []
            for stored in self._store.history(uid, limit=limit, before=cursor):
                try:
                    content = payload_codec.decode(stored.body, trusted=True)
                except EntrenousError:
                    raise StoreCorrupt("a stored message is unreadable") from None
                out.append(
                    Message(
                        id=stored.uid.hex(),
                        conversation_id=uid.hex(),
                        direction=stored.direction,
                        sender=self._identity.public if stored.direction == "sent" else peer,
                        content=content.content,
                        sent_at=_to_datetime(stored.sent_at),
                        received_at=None
                        if stored.received_at is None
                        else _to_datetime(stored.received_at),
                    )
                )
            return out

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Client({self._store.path.name!r}, {state}, identity={self.identity!r})"
