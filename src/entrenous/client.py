"""The public API: a restart-safe, encrypted conversation in ten lines.

>>> with Client.open("bank.db", key=key) as bank:
...     bundle = bank.prekey_bundle()

:class:`Client` owns one encrypted store (SQLCipher 4) and one identity. Every call that changes
the protocol state commits it to the store *before* it returns: :meth:`Conversation.send` commits
the advanced ratchet state and the outgoing message in one transaction and only then hands back
the envelope; :meth:`Client.receive` decrypts, updates the state and stores the message in one
transaction. A crash at any point therefore loses no returned message and never reuses a key
(spec/client.md, API-05 and API-06).

Time comes from ``clock`` (seconds since the epoch, ``time.time`` by default): inject another for
tests. A ``Client`` may be shared between threads; its calls are serialised. It belongs to the
process that opened it: a child made by ``fork()`` cannot use it (spec/client.md, "Threads and
processes").
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from entrenous import payload as payload_codec
from entrenous._primitives.kdf import sha256
from entrenous._primitives.rand import random_bytes
from entrenous.compliance import audit, consent, erasure, export, holds, ledger, retention
from entrenous.compliance.erasure import ErasureReceipt, Retained
from entrenous.compliance.holds import Hold
from entrenous.compliance.policy import Policy
from entrenous.compliance.retention import SweepReport
from entrenous.errors import (
    EntrenousError,
    IdentityChanged,
    InvalidConsentRecord,
    InvalidConsentRequest,
    MalformedEnvelope,
    SafetyNumberMismatch,
    StoreCorrupt,
    StoreError,
    UnknownConversation,
    UsageError,
)
from entrenous.protocol import Identity, PrekeyPool, PublicIdentity, SafetyNumber, Session
from entrenous.protocol.envelope import ParsedEnvelope, parse_envelope
from entrenous.store.base import ConversationRecord, MessageRecord, conversation_setting
from entrenous.store.keys import check_secret, resolve_key, write_kdf_params
from entrenous.store.lock import StoreLock
from entrenous.store.sqlcipher import SqlCipherStore, creation_marker, key_file_path

_IDENTITY = "identity"
_PREKEYS = "prekeys"
_POLICY = "policy"
#: A consent request sent or received in a conversation is kept in the store setting
#: conversation_setting(uid, "consent_request:<request id>"), deleted with the conversation.
_REQUEST_PREFIX = "consent_request:"
#: The start of the consent ledger keys of conversations; no subject id or peer label has it.
_RESERVED_LABEL = "conversation:"
#: The most messages one history page returns.
MAX_PAGE = 1000
#: The longest category, subject id or peer label.
MAX_LABEL = 256
#: The longest disappearing-message timer (about 100 years), and the shortest (one second).
MAX_TIMER_MS = 100 * 365 * 86_400_000
MIN_TIMER_MS = 1000


def _clock_ms(clock: Callable[[], float]) -> int:
    """The clock's time in ms; :class:`UsageError` if it is no time of the years 1970 to 9999.

    That range is what a message carries and a ``datetime`` holds. A clock jumping anywhere
    inside it is obeyed (spec/hardening.md, FLT-07); outside, every call that reads it refuses.
    """
    now = clock()
    try:
        ms = int(now * 1000)
    except (TypeError, ValueError, OverflowError):
        raise UsageError("the clock did not return a time (seconds since the epoch)") from None
    if not 0 <= ms <= payload_codec.MAX_TIME_MS:
        raise UsageError("the clock returned a time outside the years 1970 to 9999")
    return ms


def _to_datetime(ms: int) -> datetime:
    # An expiry may lie past the year 9999 (a long retention on a late clock): no datetime holds
    # it and no clock reaches it (FLT-07), so it reads as the last millisecond of that year.
    return datetime.fromtimestamp(min(ms, payload_codec.MAX_TIME_MS) / 1000, tz=UTC)


def _new_conversation(
    session: Session,
    peer: str | None,
    now: int,
    *,
    category: str | None = None,
    subject: str | None = None,
) -> ConversationRecord:
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
        category=category,
        subject=subject,
    )


def _label_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_LABEL:
        raise ValueError(f"{name} must be a non-empty str of at most {MAX_LABEL} characters")
    if value.startswith(_RESERVED_LABEL):
        # Reserved for the consent ledger's conversation keys: a subject id or peer label so
        # named would share another conversation's ledger records (CON-21).
        raise ValueError(f"{name} must not start with {_RESERVED_LABEL!r}")
    return value


def _consent_validity(policy_ms: int | None, valid_for: timedelta | None) -> int | None:
    """How long a consent lasts (ms): the policy's ``consent_valid_for``, or a shorter one."""
    if valid_for is None:
        return policy_ms
    if not isinstance(valid_for, timedelta):
        raise TypeError("valid_for is a datetime.timedelta or None")
    valid_ms = int(valid_for.total_seconds() * 1000)
    if policy_ms is not None and valid_ms > policy_ms:
        raise UsageError("valid_for is longer than the policy's consent_valid_for for the purpose")
    return valid_ms


def _control_timer(content: payload_codec.Payload) -> int | bool | None:
    """The timer a peer's timer control message sets (``False`` if it is not one)."""
    if content.control_type != "timer" or not isinstance(content.content, dict):
        return False
    ms = content.content.get("ms")
    if ms is None:
        return None
    if type(ms) is not int or not MIN_TIMER_MS <= ms <= MAX_TIMER_MS:
        raise MalformedEnvelope("a disappearing-timer message carries an invalid timer")
    return ms


def _timer_ms(after: timedelta | None) -> int | None:
    if after is None:
        return None
    if not isinstance(after, timedelta):
        raise TypeError("a disappearing timer is a datetime.timedelta or None")
    ms = int(after.total_seconds() * 1000)
    if not MIN_TIMER_MS <= ms <= MAX_TIMER_MS:
        raise ValueError("a disappearing timer must be between one second and 100 years")
    return ms


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
    control: str | None = None
    expires_at: datetime | None = None

    @property
    def text(self) -> str | None:
        """The text of a text message, else ``None``."""
        return self.content if isinstance(self.content, str) else None

    @property
    def data(self) -> dict[str, Any] | None:
        """The mapping of a structured message, else ``None`` (control messages included)."""
        if self.control is not None:
            return None
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


@dataclass(slots=True)
class _Arrival:
    """What the messages received at one time in one conversation share (a batch computes it
    once per conversation); :meth:`received` is the one place that builds a received message."""

    uid: bytes
    conversation: Conversation
    conversation_id: str
    sender: PublicIdentity
    now: int
    received_at: datetime
    expires: int | None
    expires_at: datetime | None
    timer_ms: int | None

    def received(
        self, content: payload_codec.Payload, plaintext: bytes
    ) -> tuple[MessageRecord, Message]:
        """What the store keeps of a received message, and what the caller gets."""
        stored = MessageRecord(
            content.message_id,
            self.uid,
            "received",
            content.sent_at,
            self.now,
            plaintext,
            expires_at=self.expires,
            timer_ms=self.timer_ms,
        )
        message = Message(
            id=content.message_id.hex(),
            conversation_id=self.conversation_id,
            direction="received",
            sender=self.sender,
            content=content.content,
            sent_at=_to_datetime(content.sent_at),
            received_at=self.received_at,
            control=content.control_type,
            expires_at=self.expires_at,
        )
        return stored, message


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

    @property
    def category(self) -> str | None:
        """The retention category (a category of the applied policy), if any."""
        return self._record().category

    @property
    def subject(self) -> str | None:
        """The application's data-subject id for this conversation, if any."""
        return self._record().subject

    @property
    def disappearing_after(self) -> timedelta | None:
        """The disappearing-message timer agreed in this conversation, if any."""
        timer = self._record().timer_ms
        return None if timer is None else timedelta(milliseconds=timer)

    def set_category(self, category: str | None) -> None:
        """File the conversation under a policy category; its messages' expiry follows."""
        self._client._classify(self._uid, category=category)

    def set_subject(self, subject: str | None) -> None:
        """Attach an app-given data-subject id (for holds, erasure and export)."""
        self._client._classify(self._uid, subject=subject)

    def set_disappearing(self, after: timedelta | None) -> bytes:
        """Agree a disappearing-message timer with the peer; return the envelope to carry.

        Both ends delete each later message ``after`` its time, capped by the policy's
        maximum age; a minimum age and a legal hold outrank it. ``None`` turns it off.
        """
        timer = _timer_ms(after)
        # Turning a timer off is always allowed: the peer must be able to stop deleting.
        if timer is not None and not self._client._timers_apply():
            raise UsageError("the applied policy does not allow disappearing messages")
        return self._client._send(
            self._uid, {"type": "timer", "ms": timer}, control=True, timer_ms=timer
        )

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

    def send(self, content: str | Mapping[str, Any], *, purpose: str | None = None) -> bytes:
        """Encrypt and store one message; return the envelope to carry to the peer.

        The new ratchet state and the message are committed before the envelope is returned.
        ``purpose`` names the processing purpose (a purpose of the policy): if the policy says
        it needs consent, :class:`~entrenous.errors.ConsentRequired` is raised (nothing sent)
        unless the peer's consent is given, unexpired and not withdrawn (CON-17).
        """
        return self._client._send(self._uid, content, purpose=purpose)

    def request_consent(
        self,
        purpose: str,
        *,
        notice: str,
        notice_version: str | None = None,
        valid_for: timedelta | None = None,
    ) -> bytes:
        """Ask the peer for consent to a purpose of the policy; return the envelope to carry.

        ``notice`` is the text the peer is shown; its SHA-256 must match the policy's
        ``notice_sha256`` for the purpose if the policy gives one. The peer's client answers
        with a record signed by the peer's identity key (see :meth:`answer_consent`).
        """
        return self._client._request_consent(self._uid, purpose, notice, notice_version, valid_for)

    def answer_consent(self, request_id: str, *, give: bool) -> bytes:
        """Give (or refuse) the consent a received request asks for; return the envelope.

        The answer is a record signed with this client's identity key and kept in its own
        ledger, so that :meth:`withdraw_consent` is one call.
        """
        return self._client._answer_consent(self._uid, request_id, give)

    def withdraw_consent(self, purpose: str) -> bytes:
        """Withdraw a consent given in this conversation (as easy as giving, Art. 7(3))."""
        return self._client._withdraw_consent(self._uid, purpose)

    def consent(self, purpose: str) -> str:
        """The state of the peer's (or, on the subject's side, our) consent to a purpose.

        One of ``"given"``, ``"refused"``, ``"withdrawn"``, ``"expired"`` or ``"none"``.
        """
        return self._client._consent_state(self._uid, purpose)

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
        "_pid",
        "_policy",
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
        self._pid = os.getpid()
        self._closed = False
        self._prekeys_touched = False
        self._touched_sessions: list[bytes] = []
        self._policy: Policy | None = None

    # --- opening and closing -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key: bytes | None = None,
        passphrase: str | None = None,
        clock: Callable[[], float] | None = None,
        policy: Policy | None = None,
        sweep: bool = True,
    ) -> Client:
        """Open the store at ``path``, creating it (and an identity) if it does not exist.

        Give exactly one of ``key`` (32 raw bytes, from the platform keystore: preferred) or
        ``passphrase`` (stretched with Argon2id). ``policy``, if given and not the one the
        store already applies, is applied (see :meth:`apply_policy`); then, unless ``sweep``
        is false, what has expired is swept (see :meth:`sweep`). A wrong key raises
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
            now = _clock_ms(clock or time.time) // 1000
            identity, prekeys = cls._load_or_create(store, now)
            client = cls(store, identity, prekeys, clock or time.time)
            stored = store.meta(_POLICY)
            if stored is not None:
                try:
                    client._policy = Policy.parse(stored.decode("utf-8"), source="the store")
                except (EntrenousError, UnicodeDecodeError):
                    raise StoreCorrupt("the store's applied policy is not readable") from None
            if policy is not None:
                client.apply_policy(policy)
            if sweep:
                client.sweep()
        except BaseException:
            store.close()
            raise
        return client

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
        """Close the store; idempotent. The client cannot be used afterwards.

        In a child process forked from the one that opened it, this only marks the child's copy
        closed: the store, its connections and its lock stay the parent's (FLT-52).
        """
        if self._pid != os.getpid():
            self._closed = True
            return
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
        if self._pid != os.getpid():
            raise UsageError(
                "this client was opened by the parent of this forked process; open the store "
                "in the process that uses it"
            )

    def _now_ms(self) -> int:
        return _clock_ms(self._clock)

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
        self,
        bundle: bytes,
        *,
        peer: str | None = None,
        accept_identity_change: bool = False,
        category: str | None = None,
        subject: str | None = None,
    ) -> Conversation:
        """Start a conversation from a peer's published bundle (no round trip).

        ``peer`` is an optional label of the application's (a customer number, "bank"). If
        earlier conversations with that label had another identity, :class:`IdentityChanged`
        is raised unless ``accept_identity_change`` is true: a changed identity is never silent.
        ``category`` files it under a retention category of the policy; ``subject`` names the
        data subject it is about (see :meth:`erase` and :meth:`export`).
        """
        with self._lock:
            self._check_open()
            self._check_category(category)
            if subject is not None:
                _label_text(subject, "subject")
            session = Session.initiate(self._identity, bundle)
            if peer is not None:
                self._check_peer(peer, session.peer_identity, accept_identity_change)
            record = _new_conversation(
                session, peer, self._now_ms(), category=category, subject=subject
            )
            with self._store.transaction():
                self._store.add_conversation(record)
            self._sessions[record.uid] = session
            return Conversation(self, record.uid)

    def _check_category(self, category: str | None) -> None:
        if category is None:
            return
        _label_text(category, "category")
        if self._policy is None:
            raise UsageError("apply a policy before filing conversations under categories")
        if category not in self._policy.categories:
            raise UsageError("this category is not one of the applied policy's")

    def _classify(
        self, uid: bytes, *, category: str | bool | None = False, subject: str | bool | None = False
    ) -> None:
        with self._lock:
            self._check_open()
            self._record(uid)
            now = self._now_ms()
            changes: dict[str, Any] = {}
            if category is not False:
                assert not isinstance(category, bool)  # noqa: S101 - narrowed for mypy
                self._check_category(category)
                changes["category"] = category
            if subject is not False:
                assert not isinstance(subject, bool)  # noqa: S101 - narrowed for mypy
                if subject is not None:
                    _label_text(subject, "subject")
                changes["subject"] = subject
            with self._store.transaction():
                before = self._record(uid)
                self._store.update_conversation(uid, **changes)
                record = self._record(uid)
                self._check_holds_kept(before, record)
                self._apply_rule(record)
                details: dict[str, Any] = {"conversation": uid.hex()}
                if "category" in changes:
                    details["category"] = category
                if "subject" in changes:
                    details["subject"] = (
                        None if subject is None else audit.pseudonym(self._store, str(subject))
                    )
                audit.append(self._store, "conversation.classified", details, at=now)

    def _retention(self, record: ConversationRecord) -> tuple[int, int | None]:
        """The (minimum, maximum) age in ms of this conversation's messages under the policy."""
        if self._policy is None:
            return 0, None
        rule = self._policy.rule_for(record.category, record.uid.hex())
        return rule.min_age_ms, rule.max_age_ms

    def _timers_apply(self) -> bool:
        return self._policy is None or self._policy.disappearing_allowed

    def _timer_of(self, record: ConversationRecord) -> int | None:
        """The timer new messages of a conversation are stored under (none if not allowed)."""
        return record.timer_ms if self._timers_apply() else None

    def _expires(self, record: ConversationRecord, stored_at: int) -> int | None:
        low, high = self._retention(record)
        return retention.expires_at(
            stored_at, min_ms=low, max_ms=high, timer_ms=self._timer_of(record)
        )

    def _apply_rule(self, record: ConversationRecord) -> None:
        low, high = self._retention(record)
        self._store.set_retention(
            record.uid, min_ms=low, max_ms=high, use_timers=self._timers_apply()
        )

    def _check_holds_kept(self, before: ConversationRecord, after: ConversationRecord) -> None:
        """Refuse a relabelling that takes a conversation out of a subject hold (HOLD-05)."""
        for hold in self._store.holds(active_only=True):
            if (
                hold.subject is not None
                and hold.subject in (before.subject, before.peer)
                and hold.subject not in (after.subject, after.peer)
            ):
                raise UsageError(
                    "a legal hold on this conversation's data subject covers it; "
                    "release the hold before filing the conversation under another subject"
                )

    def _check_peer(self, peer: str, identity: PublicIdentity, accept: bool) -> None:
        _label_text(peer, "peer")
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
                self._check_holds_kept(record, replace(record, peer=peer))
                # The peer label can name the data subject (holds, erasure, export, consent).
                audit.append(
                    self._store,
                    "conversation.classified",
                    {"conversation": uid.hex(), "peer": audit.pseudonym(self._store, peer)},
                    at=self._now_ms(),
                )

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

    def _send(
        self,
        uid: bytes,
        content: str | Mapping[str, Any],
        *,
        control: bool = False,
        timer_ms: int | bool | None = False,
        purpose: str | None = None,
        after_store: Callable[[ConversationRecord, int], None] | None = None,
    ) -> bytes:
        """Encrypt, store and return one message; ``timer_ms`` (not False) changes the timer.

        ``after_store`` runs inside the same transaction (a consent record for the ledger).
        """
        with self._lock:
            record = self._record(uid)
            now = self._now_ms()
            if purpose is not None:
                self._require_consent(record, purpose, now)
            message_id = random_bytes(16)
            body = payload_codec.encode(message_id, now, content, control=control)
            session = self._session(record)
            try:
                with self._store.transaction():
                    envelope = session.encrypt(body)
                    if timer_ms is not False:
                        record = self._set_timer(record, timer_ms, now, by="us")
                    if after_store is not None:
                        after_store(record, now)
                    self._store.update_conversation(uid, state=session.to_bytes(), updated_at=now)
                    self._store.add_message(
                        MessageRecord(
                            message_id,
                            uid,
                            "sent",
                            now,
                            None,
                            body,
                            expires_at=self._expires(record, now),
                            timer_ms=self._timer_of(record),
                        )
                    )
            except BaseException:
                # The in-memory state ran ahead of the store: drop it, reload on next use.
                self._sessions.pop(uid, None)
                raise
            return envelope

    def _set_timer(
        self, record: ConversationRecord, timer_ms: int | bool | None, now: int, *, by: str
    ) -> ConversationRecord:
        """Change a conversation's disappearing timer (inside the caller's transaction)."""
        timer = None if isinstance(timer_ms, bool) else timer_ms
        self._store.update_conversation(record.uid, timer_ms=timer)
        audit.append(
            self._store,
            "timer.changed",
            {"conversation": record.uid.hex(), "timer_ms": timer, "by": by},
            at=now,
        )
        return replace(record, timer_ms=timer)

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
        # Per session id: its conversation's session and what its messages share in this batch.
        arrivals: dict[bytes, tuple[Session, _Arrival]] = {}
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
                found = arrivals.get(parsed.session_id)
                if found is None:
                    record = self._store.conversation_by_session(parsed.session_id)
                    if record is None:
                        give_up()
                        return None
                    session = self._session(record)
                    touched[record.uid] = session
                    found = arrivals[parsed.session_id] = (
                        session,
                        self._arrival(record, session, now),
                    )
                session, arrival = found
                plaintext = session.decrypt(parsed)
                content = payload_codec.decode(plaintext)
            except EntrenousError:
                give_up()
                return None
            key = (arrival.uid, content.message_id)
            if key in seen or content.control:
                give_up()
                return None
            seen.add(key)
            stored, message = arrival.received(content, plaintext)
            staged.append(stored)
            outcomes.append(
                ReceiveOutcome(index, Received(arrival.conversation, message, False), None)
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
        timer_change = _control_timer(content)
        consent_step = self._check_consent_control(record, content, now)
        if new:
            self._store.add_conversation(record)
            self._store.save_secret(_PREKEYS, self._prekeys.to_bytes())
        else:
            self._store.update_conversation(record.uid, state=session.to_bytes(), updated_at=now)
        if timer_change is not False:
            record = self._set_timer(record, timer_change, now, by="peer")
        if consent_step is not None:
            consent_step()
        arrival = self._arrival(record, session, now)
        stored, message = arrival.received(content, plaintext)
        self._store.add_message(stored)
        return Received(arrival.conversation, message, new)

    def _arrival(self, record: ConversationRecord, session: Session, now: int) -> _Arrival:
        """What every message received now in this conversation shares."""
        expires = self._expires(record, now)
        return _Arrival(
            uid=record.uid,
            conversation=Conversation(self, record.uid),
            conversation_id=record.uid.hex(),
            sender=session.peer_identity,
            now=now,
            received_at=_to_datetime(now),
            expires=expires,
            expires_at=None if expires is None else _to_datetime(expires),
            timer_ms=self._timer_of(record),
        )

    # --- consent -------------------------------------------------------------------------------

    @staticmethod
    def _ledger_key(record: ConversationRecord, *, subject_side: bool = False) -> str:
        """The ledger key of the records signed in band in a conversation (see ledger.py)."""
        return ledger.conversation_key(record.uid, own=subject_side)

    @staticmethod
    def _data_subject(record: ConversationRecord) -> str | None:
        """The data subject of a conversation: its subject id, else its peer label."""
        return record.subject or record.peer

    def _conversation_consent(
        self, record: ConversationRecord, purpose: str
    ) -> list[consent.ConsentRecord]:
        """The records that decide the peer's consent in a conversation, in ledger order: those
        the peer signed in it and those the controller recorded for its data subject."""
        keys = [self._ledger_key(record)]
        subject = self._data_subject(record)
        if subject is not None:
            keys.append(subject)
        return ledger.records_under(self._store, keys, purpose=purpose)

    def _subject_consent(
        self, subject: str, purpose: str | None = None
    ) -> list[consent.ConsentRecord]:
        """Every record about a data subject: recorded for it, or signed in its conversations."""
        keys = [subject]
        keys += [self._ledger_key(r) for r in self._store.conversations_of_subject(subject)]
        return ledger.records_under(self._store, keys, purpose=purpose)

    def _purpose(self, name: str) -> Any:
        if self._policy is None:
            raise UsageError("apply a policy before naming processing purposes")
        return self._policy.purpose(name)

    def _require_consent(self, record: ConversationRecord, purpose: str, now: int) -> None:
        if not self._purpose(purpose).requires_consent:
            return
        consent.require_consent(
            self._conversation_consent(record, purpose),
            self._data_subject(record),
            purpose,
            now,
            identity=PublicIdentity._from_trusted_bytes(record.peer_identity),
        )

    def _consent_state(self, uid: bytes, purpose: str) -> str:
        with self._lock:
            record = self._record(uid)
            now = self._now_ms()
            peer = PublicIdentity._from_trusted_bytes(record.peer_identity)
            theirs = self._conversation_consent(record, purpose)
            state = consent.consent_state(
                theirs, self._data_subject(record), purpose, now, identity=peer
            )
            if state != "none":
                return state
            # On the subject's side: the records we signed ourselves in this conversation.
            ours = ledger.records(
                self._store, purpose=purpose, key=self._ledger_key(record, subject_side=True)
            )
            return consent.consent_state(ours, None, purpose, now, identity=self.identity)

    def _request_consent(
        self,
        uid: bytes,
        purpose: str,
        notice: str,
        notice_version: str | None,
        valid_for: timedelta | None,
    ) -> bytes:
        with self._lock:
            self._check_open()
            record = self._record(uid)
            rules = self._purpose(purpose)
            assert self._policy is not None  # noqa: S101 - _purpose checked it
            if not isinstance(notice, str):
                raise TypeError("the notice is the text (a str) the subject is shown")
            expected = rules.notice_sha256
            if expected is not None and sha256(notice.encode("utf-8")).hex() != expected:
                raise UsageError("this notice is not the one the policy names for the purpose")
            version = notice_version or rules.notice_version
            if version is None:
                raise UsageError("give the notice's version (the policy names none)")
            valid_ms = _consent_validity(rules.consent_valid_for_ms, valid_for)
            request = consent.ConsentRequest.create(
                controller=self._policy.controller.name,
                purpose=purpose,
                notice_version=version,
                notice_text=notice,
                now_ms=self._now_ms(),
                valid_for_ms=valid_ms,
                subject=record.subject,
            )

            def remember(stored: ConversationRecord, now: int) -> None:
                self._remember_request(stored.uid, request, direction="sent")

            return self._send(
                uid,
                {"type": "consent_request", "request": request.to_content()},
                control=True,
                after_store=remember,
            )

    @staticmethod
    def _request_name(uid: bytes, request_id: bytes) -> str:
        return conversation_setting(uid, _REQUEST_PREFIX + request_id.hex())

    def _remember_request(
        self, uid: bytes, request: consent.ConsentRequest, *, direction: str
    ) -> None:
        """Keep a request sent or received in a conversation (inside the caller's transaction).

        ``answered`` and ``withdrawn`` record that the answer and the withdrawal it allows
        arrived (or, for a received request, that we answered), each at most once (CON-20).
        """
        value = {"direction": direction, "request": request.to_content()}
        self._save_request(
            uid, request.request_id, {**value, "answered": False, "withdrawn": False}
        )

    def _save_request(self, uid: bytes, request_id: bytes, saved: dict[str, Any]) -> None:
        self._store.set_meta(self._request_name(uid, request_id), consent.canonical_json(saved))

    def _saved_request(
        self, uid: bytes, request_id: bytes, *, direction: str
    ) -> tuple[consent.ConsentRequest, dict[str, Any]] | None:
        """A request kept in this conversation, sent or received as asked, with its flags.

        Only this conversation's requests are found, and only those of that direction: an
        answer is checked against a request we sent, never one the peer sent us (CON-18).
        """
        raw = self._store.meta(self._request_name(uid, request_id))
        if raw is None:
            return None
        try:
            saved = json.loads(raw)
            request = consent.ConsentRequest.from_content(saved["request"])
        except (ValueError, KeyError, TypeError, InvalidConsentRequest):
            raise StoreCorrupt("a stored consent request is not readable") from None
        if saved.get("direction") != direction:
            return None
        return request, saved

    def _answer_consent(self, uid: bytes, request_id: str, give: bool) -> bytes:
        with self._lock:
            self._check_open()
            try:
                raw_id = bytes.fromhex(request_id)
            except (ValueError, TypeError):
                raise UsageError("not a consent request id") from None
            found = self._saved_request(uid, raw_id, direction="received")
            if found is None:
                raise UsageError("no consent request with this id in this conversation")
            request, saved = found
            if saved.get("answered"):
                raise UsageError("this consent request is answered already; ask for a new one")
            answer = consent.ConsentRecord.answer(
                self._identity, request, give=give, now_ms=self._now_ms()
            )
            return self._send_record(
                uid,
                answer,
                then=lambda: self._save_request(uid, raw_id, {**saved, "answered": True}),
            )

    def _withdraw_consent(self, uid: bytes, purpose: str) -> bytes:
        with self._lock:
            self._check_open()
            record = self._record(uid)
            given = consent.current_consent(
                ledger.records(
                    self._store, purpose=purpose, key=self._ledger_key(record, subject_side=True)
                ),
                None,
                purpose,
                self._now_ms(),
                identity=self.identity,
            )
            if given is None:
                raise UsageError("no consent to this purpose is given in this conversation")
            withdrawal = given.withdrawal(self._identity, now_ms=self._now_ms())
            return self._send_record(uid, withdrawal)

    def _send_record(
        self,
        uid: bytes,
        answer: consent.ConsentRecord,
        *,
        then: Callable[[], None] | None = None,
    ) -> bytes:
        def keep(stored: ConversationRecord, now: int) -> None:
            ledger.append(
                self._store,
                answer,
                key=self._ledger_key(stored, subject_side=True),
                at=now,
                source="in-band",
            )
            if then is not None:
                then()

        return self._send(
            uid,
            {"type": "consent_record", "record": answer.to_content()},
            control=True,
            after_store=keep,
        )

    def _check_consent_control(
        self, record: ConversationRecord, content: payload_codec.Payload, now: int
    ) -> Callable[[], None] | None:
        """Check a consent control message before anything is written; the step that stores it.

        A request is kept so that it can be answered; a record is verified against the peer's
        identity (and, for an answer, against the request we sent in this conversation) and
        appended to the ledger. A bad one refuses the whole envelope (a ``PeerError``).
        """
        kind = content.control_type
        if kind not in ("consent_request", "consent_record"):
            return None
        assert isinstance(content.content, dict)  # noqa: S101 - control messages are mappings
        if kind == "consent_request":
            request = consent.ConsentRequest.from_content(content.content.get("request"))
            if self._store.meta(self._request_name(record.uid, request.request_id)) is not None:
                # A peer must not replace a request (ours included) by reusing its id.
                raise InvalidConsentRequest("a consent request with this id is known already")
            return lambda: self._remember_request(record.uid, request, direction="received")
        answer = consent.ConsentRecord.from_content(content.content.get("record"))
        peer = PublicIdentity._from_trusted_bytes(record.peer_identity)
        if answer.method != consent.METHOD_SIGNED:
            raise InvalidConsentRecord("a consent record from the peer must be signed by it")
        # An answer, and a withdrawal (which repeats the answer's request id), must concern a
        # request we sent in this conversation; each comes at most once per request (CON-20),
        # so the peer cannot grow the ledger beyond the requests we make.
        found = None
        if answer.request_id is not None:
            found = self._saved_request(record.uid, answer.request_id, direction="sent")
        if found is None:
            raise InvalidConsentRecord("the record answers no request sent in this conversation")
        pending, saved = found
        flag = "withdrawn" if answer.state == "withdrawn" else "answered"
        if saved.get(flag):
            raise InvalidConsentRecord("this request was answered (or withdrawn) already")
        answer.verify(peer, pending, now_ms=now)
        key = self._ledger_key(record)
        request_id = pending.request_id

        def store_it() -> None:
            ledger.append(self._store, answer, key=key, at=now, source="in-band")
            self._save_request(record.uid, request_id, {**saved, flag: True})

        return store_it

    def record_consent(
        self,
        *,
        subject: str,
        purpose: str,
        give: bool = True,
        notice_version: str | None = None,
        notice: str | None = None,
        valid_for: timedelta | None = None,
    ) -> consent.ConsentRecord:
        """Record a consent collected through another channel (a web form, a paper form).

        Unsigned (method "recorded by controller"): the evidence is this ledger and its audit
        trail. ``subject`` is the data subject id conversations carry. Withdrawing is
        ``give=False`` after a given record: recorded as a withdrawal.
        """
        with self._lock:
            self._check_open()
            _label_text(subject, "subject")
            rules = self._purpose(purpose)
            assert self._policy is not None  # noqa: S101 - _purpose checked it
            now = self._now_ms()
            kept = self._subject_consent(subject, purpose)
            earlier = consent.current_consent(kept, subject, purpose, now)
            signers = {
                r.subject_identity.to_bytes(): r.subject_identity
                for r in kept
                if r.subject_identity is not None
            }
            for signer in signers.values():
                # A consent the subject signed in band, perhaps without the subject id.
                earlier = earlier or consent.current_consent(
                    kept, subject, purpose, now, identity=signer
                )
            state: consent.RecordState = "given" if give else "refused"
            version = notice_version or rules.notice_version
            digest = rules.notice_sha256
            if notice is not None:
                if not isinstance(notice, str):
                    raise TypeError("the notice is the text (a str) the subject was shown")
                digest = sha256(notice.encode("utf-8")).hex()
            if not give and earlier is not None:
                # A withdrawal refers to the notice the consent was given on.
                state = "withdrawn"
                version, digest = earlier.notice_version, earlier.notice_sha256.hex()
            if version is None:
                raise UsageError("give the notice's version (the policy names none)")
            if digest is None:
                raise UsageError("give the notice text (the policy names no notice hash)")
            valid_ms = _consent_validity(rules.consent_valid_for_ms, valid_for)
            record = consent.ConsentRecord.recorded(
                state=state,
                controller=self._policy.controller.name,
                purpose=purpose,
                notice_version=version,
                notice_sha256=bytes.fromhex(digest),
                at_ms=now,
                subject=subject,
                # Ending with the year 9999 at the latest (sooner than asked, never longer).
                expires_at=None
                if not give or valid_ms is None
                else min(now + valid_ms, payload_codec.MAX_TIME_MS),
            )
            with self._store.transaction():
                ledger.append(self._store, record, key=subject, at=now, source="recorded")
            return record

    def consent_records(self, subject: str) -> list[consent.ConsentRecord]:
        """Every consent record about a data subject, oldest first."""
        with self._lock:
            self._check_open()
            return self._subject_consent(subject)

    def verify_consent_ledger(self) -> int:
        """Verify the consent ledger (chain, signatures, the audit trail's checkpoint)."""
        with self._lock:
            self._check_open()
            return ledger.verify(self._store)

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
                        control=content.control_type,
                        expires_at=None
                        if stored.expires_at is None
                        else _to_datetime(stored.expires_at),
                    )
                )
            return out

    # --- compliance ----------------------------------------------------------------------------

    @property
    def policy(self) -> Policy | None:
        """The retention and consent policy this store applies, if any."""
        return self._policy

    def apply_policy(self, policy: Policy) -> None:
        """Apply a policy: keep it in the store and recompute every message's expiry.

        Refused (:class:`UsageError`, nothing changed) if a conversation is filed under a
        category the policy does not have. Audited; a no-op if it is already applied. Costs
        one pass over the stored messages.
        """
        with self._lock:
            self._check_open()
            if self._policy is not None and self._policy.fingerprint == policy.fingerprint:
                return
            records = self._store.conversations()
            unknown = {r.category for r in records if r.category is not None} - set(
                policy.categories
            )
            if unknown:
                raise UsageError(
                    f"{len(unknown)} categor{'y' if len(unknown) == 1 else 'ies'} in use "
                    "in this store are missing from the policy"
                )
            now = self._now_ms()
            previous = self._policy
            self._policy = policy
            try:
                with self._store.transaction():
                    self._store.set_meta(_POLICY, policy.text.encode("utf-8"))
                    for record in records:
                        self._apply_rule(record)
                    audit.append(
                        self._store,
                        "policy.applied",
                        {
                            "fingerprint": policy.fingerprint,
                            "previous": None if previous is None else previous.fingerprint,
                            "conversations": len(records),
                        },
                        at=now,
                    )
            except BaseException:
                self._policy = previous
                raise

    def sweep(
        self, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> SweepReport:
        """Delete every expired message that no legal hold covers (RET-07).

        ``dry_run`` reports what would go and changes nothing. The cost follows the expired
        rows, not the store. Runs at :meth:`open` too; schedule the next one with
        :meth:`next_sweep_at`. ``progress``, if given, is called with the number of messages
        deleted so far after each committed batch.
        """
        with self._lock:
            self._check_open()
            return retention.sweep(
                self._store, now=self._now_ms(), dry_run=dry_run, progress=progress
            )

    def next_sweep_at(self) -> datetime | None:
        """When the next message expires (outside holds), or ``None`` if none ever does."""
        with self._lock:
            self._check_open()
            due = self._store.next_expiry()
            return None if due is None else _to_datetime(due)

    def place_hold(
        self,
        *,
        conversation: Conversation | str | None = None,
        subject: str | None = None,
        reason: str,
        reference: str | None = None,
    ) -> Hold:
        """Place a legal hold on a conversation or a data subject (HOLD-01).

        While it is active nothing it covers is swept or erased. Audited.
        """
        with self._lock:
            self._check_open()
            uid = None
            if conversation is not None:
                uid = self._conversation_uid(conversation)
            return holds.place(
                self._store,
                conversation_uid=uid,
                subject=subject,
                reason=reason,
                reference=reference,
                now=self._now_ms(),
            )

    def release_hold(self, hold_id: str) -> Hold:
        """Release an active legal hold (HOLD-02). Audited."""
        with self._lock:
            self._check_open()
            return holds.release(self._store, hold_id, now=self._now_ms())

    def holds(self, *, active_only: bool = True) -> list[Hold]:
        """The legal holds of this store, oldest first."""
        with self._lock:
            self._check_open()
            return holds.holds(self._store, active_only=active_only)

    def erase(
        self, *, subject: str | None = None, conversation: Conversation | str | None = None
    ) -> ErasureReceipt:
        """Erase a data subject's conversations, or one conversation (GDPR Art. 17).

        Destroys the data keys of what is erased (crypto-shredding), deletes the rows and
        truncates the journal. What a legal hold or a minimum retention requires is kept, and
        the signed :class:`ErasureReceipt` says what and on which ground (ERA-01 to ERA-06).
        """
        with self._lock:
            self._check_open()
            if (subject is None) == (conversation is None):
                raise UsageError("erase exactly one of a subject or a conversation")
            now = self._now_ms()
            if conversation is not None:
                uid = self._conversation_uid(conversation)
                targets = [self._record(uid)]
                scope: erasure.Scope = "conversation"
                target = uid.hex()
            else:
                _label_text(subject, "subject")
                assert subject is not None  # noqa: S101 - checked just above
                targets = self._store.conversations_of_subject(subject)
                scope = "subject"
                with self._store.transaction():
                    target = audit.pseudonym(self._store, subject)
            # The WAL is copied back once, by the truncation at the end: not by the commit of
            # the erasure, nor by the small one that clears its pending key destruction.
            with self._store.deferred_checkpoint():
                try:
                    receipt = erasure.erase(
                        self._store,
                        self._identity,
                        targets,
                        scope=scope,
                        target=target,
                        now=now,
                        retained=self._retained,
                        subject=subject,
                    )
                finally:
                    for record in targets:
                        self._sessions.pop(record.uid, None)
                self._store.shred_pending()
            try:
                self._store.truncate_journal()
            except StoreError as exc:
                # Committed already: say so, rather than "nothing was changed" (FLT-01).
                raise StoreError(
                    "the erasure is committed and its receipt kept (erasure_receipts()), but the "
                    f"write-ahead log could not be truncated ({exc}); closing the client "
                    "truncates it"
                ) from None
            return receipt

    def _retained(self, record: ConversationRecord) -> Retained | None:
        if self._policy is None:
            return None
        rule = self._policy.rule_for(record.category, record.uid.hex())
        if rule.min_age_ms <= 0:
            return None
        ground = f"minimum retention ({rule.source}"
        ground += f": {rule.legal_ground})" if rule.legal_ground else ")"
        return Retained(rule.min_age_ms, ground)

    def export(
        self, subject: str, *, progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Everything this store holds about a data subject, as JSON-compatible data.

        Conversations (messages decrypted), consent records, holds, the retention applied,
        erasure receipts and audit events about the subject; validates against
        spec/export.schema.json (GDPR Art. 15 and 20, EXP-01). Audited. ``progress``, if given,
        is called with the number of conversations read so far after each one.
        """
        with self._lock:
            self._check_open()
            _label_text(subject, "subject")
            controller = None
            if self._policy is not None:
                controller = self._policy.controller.model_dump(mode="json")
            now = self._now_ms()
            records = [
                {**record.to_content(), "state_now": record.state_at(now)}
                for record in self._subject_consent(subject)
            ]
            return export.build(
                self._store,
                subject,
                now=now,
                controller=controller,
                retention_of=self._retention_summary,
                consent_records=records,
                progress=progress,
            )

    def _retention_summary(self, record: ConversationRecord) -> dict[str, Any]:
        if self._policy is None:
            return {
                "policy": None,
                "rule": None,
                "max_age_ms": None,
                "min_age_ms": 0,
                "legal_ground": None,
            }
        rule = self._policy.rule_for(record.category, record.uid.hex())
        return {
            "policy": self._policy.fingerprint,
            "rule": rule.source,
            "max_age_ms": rule.max_age_ms,
            "min_age_ms": rule.min_age_ms,
            "legal_ground": rule.legal_ground,
        }

    def erasure_receipts(self) -> list[ErasureReceipt]:
        """Every erasure receipt this store keeps, oldest first."""
        with self._lock:
            self._check_open()
            return [ErasureReceipt.from_json(raw) for _, _, raw in self._store.erasures()]

    def audit_events(self) -> list[audit.AuditEvent]:
        """The audit trail, oldest first (ids, counts and pseudonyms only)."""
        with self._lock:
            self._check_open()
            return list(audit.events(self._store))

    def verify_audit(self) -> int:
        """Verify the audit trail; the number of events, or :class:`AuditChainBroken`."""
        with self._lock:
            self._check_open()
            return audit.verify(self._store)

    def _conversation_uid(self, conversation: Conversation | str) -> bytes:
        if isinstance(conversation, Conversation):
            if conversation._client is not self:
                raise UsageError("that conversation belongs to another client")
            return conversation._uid
        try:
            uid = bytes.fromhex(conversation)
        except (ValueError, TypeError):
            raise UsageError("not a conversation id") from None
        self._record(uid)
        return uid

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Client({self._store.path.name!r}, {state}, identity={self.identity!r})"
