"""The audit trail: an append-only, hash-chained log of every compliance action (AUD).

Each event is ``seq`` (1, 2, ...), ``at`` (ms), ``action`` and ``details``; its hash is::

    SHA-256("entrenous/v1 audit event" || prev || canonical_json({seq, at, action, details}))

with ``prev`` the previous event's hash (32 zero bytes for the first). The store also keeps the
head (last seq and hash) in the same transaction as each append, so removing the newest entries
is detected too. :func:`verify_events` names the first entry that does not verify.

Events carry no message content and no personal data: data subjects appear only as
pseudonyms (:func:`pseudonym`, an HMAC under a key kept in the store), conversations and
messages by their random ids, and free text (hold reasons) never at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from entrenous._primitives.kdf import constant_time_equal, hmac_sha256, sha256
from entrenous._primitives.rand import random_bytes
from entrenous.compliance.consent import canonical_json
from entrenous.errors import AuditChainBroken, StoreCorrupt
from entrenous.store.base import ChainLog, ChainRow, Store

LABEL_EVENT = b"entrenous/v1 audit event"
LABEL_PSEUDONYM = b"entrenous/v1 subject pseudonym"
GENESIS = bytes(32)
#: The store setting that holds the newest event's seq and hash.
HEAD = "audit_head"
_PSEUDONYM_KEY = "pseudonym_key"
#: The actions an event may record (spec/compliance.md, AUD-02).
ACTIONS = frozenset(
    {
        "policy.applied",
        "sweep",
        "hold.placed",
        "hold.released",
        "erasure",
        "consent.recorded",
        "export",
        "timer.changed",
        "conversation.classified",
    }
)
_MAX_TEXT = 128


def _check_details(value: object, where: str = "details") -> None:
    """Details hold ids, counts, flags and short codes: nothing that could be content."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if len(value) > _MAX_TEXT:
            raise ValueError(f"{where} is longer than {_MAX_TEXT} characters")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_details(item, where)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key that is not a str")
            _check_details(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} holds a {type(value).__name__}, not an id, count or flag")


def event_hash(prev: bytes, seq: int, at: int, action: str, details: Mapping[str, Any]) -> bytes:
    """The hash of one event (AUD-03)."""
    body = {"action": action, "at": at, "details": dict(details), "seq": seq}
    return sha256(LABEL_EVENT, prev, canonical_json(body))


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One verified-shape audit event."""

    seq: int
    at: int
    action: str
    details: dict[str, Any]
    prev: bytes
    hash: bytes

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-compatible data (hashes in hex)."""
        return {
            "seq": self.seq,
            "at": self.at,
            "action": self.action,
            "details": self.details,
            "prev": self.prev.hex(),
            "hash": self.hash.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """An event from :meth:`to_dict` output (an exported trail); ``ValueError`` if malformed."""
        try:
            seq, at, action, details = data["seq"], data["at"], data["action"], data["details"]
            prev, digest = bytes.fromhex(data["prev"]), bytes.fromhex(data["hash"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an audit event ({exc.__class__.__name__})") from None
        if not (type(seq) is int and type(at) is int and isinstance(action, str)):
            raise ValueError("an audit event's seq, at or action has the wrong type")
        if not isinstance(details, dict):
            raise ValueError("an audit event's details are not a mapping")
        return cls(seq, at, action, details, prev, digest)


def _from_row(row: ChainRow) -> AuditEvent:
    try:
        details = json.loads(row.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        details = None
    if not isinstance(details, dict):
        # Kept as an unverifiable marker: verification reports the entry, it does not crash.
        details = {"__unreadable__": True}
    return AuditEvent(row.seq, row.at, row.kind, details, row.prev, row.hash)


def append(store: Store, action: str, details: Mapping[str, Any], *, at: int) -> AuditEvent:
    """Append an event; must run inside the transaction of the action it records (AUD-01)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    _check_details(dict(details))
    last = store.last_chain_row("audit")
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS if last is None else last.hash
    digest = event_hash(prev, seq, at, action, details)
    body = canonical_json(dict(details))
    store.add_chain_row("audit", ChainRow(seq, at, action, body, prev, digest))
    store.set_meta(HEAD, canonical_json({"seq": seq, "hash": digest.hex()}))
    return AuditEvent(seq, at, action, dict(details), prev, digest)


def chain(store: Store, log: ChainLog, *, page: int = 1000) -> Iterator[ChainRow]:
    """Every row of a hash-chained log in order, read a page at a time."""
    after = 0
    while True:
        rows = store.chain_rows(log, after=after, limit=page)
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def events(store: Store) -> Iterator[AuditEvent]:
    """Every event in order."""
    return map(_from_row, chain(store, "audit"))


def head(store: Store) -> tuple[int, bytes] | None:
    """The stored head (seq, hash), or ``None`` for an empty trail."""
    raw = store.meta(HEAD)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        return int(data["seq"]), bytes.fromhex(data["hash"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise AuditChainBroken(0, "the stored head of the trail is unreadable") from None


def verify_events(trail: Iterable[AuditEvent], expected_head: tuple[int, bytes] | None) -> int:
    """Check a trail from its first event; return the number of events.

    Raises :class:`AuditChainBroken` naming the first entry that is edited, missing, out of
    order, or (against ``expected_head``) cut off at the end (AUD-04).
    """
    prev = GENESIS
    expected_seq = 1
    for event in trail:
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                raise AuditChainBroken(expected_seq, "this entry is missing")
            raise AuditChainBroken(event.seq, "entries are out of order or repeated")
        if not constant_time_equal(event.prev, prev):
            raise AuditChainBroken(event.seq, "it does not follow the entry before it")
        if event.action not in ACTIONS:
            raise AuditChainBroken(event.seq, "its action is not one the library writes")
        try:
            digest = event_hash(event.prev, event.seq, event.at, event.action, event.details)
        except (ValueError, TypeError, RecursionError):
            # NaN, an infinity or a non-JSON value: nothing the library writes.
            raise AuditChainBroken(event.seq, "its details are not canonical JSON") from None
        if not constant_time_equal(digest, event.hash):
            raise AuditChainBroken(event.seq, "its content does not match its hash")
        prev = event.hash
        expected_seq += 1
    count = expected_seq - 1
    if expected_head is None:
        if count:
            raise AuditChainBroken(count, "the trail has entries but no recorded head")
        return 0
    head_seq, head_hash = expected_head
    if head_seq > count:
        raise AuditChainBroken(count + 1, f"entries {count + 1} to {head_seq} are missing")
    if head_seq < count:
        raise AuditChainBroken(head_seq + 1, "entries follow the recorded head")
    if not constant_time_equal(head_hash, prev):
        raise AuditChainBroken(count, "the last entry does not match the recorded head")
    return count


def verify(store: Store) -> int:
    """Verify the whole trail of a store; return the number of events (AUD-04)."""
    return verify_events(events(store), head(store))


def pseudonym(store: Store, subject: str) -> str:
    """The audit pseudonym of a data subject: 32 hex digits, stable within one store.

    An HMAC under a random key kept in the store's secrets, created on first use (inside the
    caller's transaction): without that key the pseudonym cannot be linked to the subject.
    """
    key = store.load_secret(_PSEUDONYM_KEY)
    if key is None:
        key = random_bytes(32)
        store.save_secret(_PSEUDONYM_KEY, key)
    elif len(key) != 32:
        raise StoreCorrupt("the stored pseudonym key is not 32 bytes")
    return hmac_sha256(key, LABEL_PSEUDONYM + subject.encode("utf-8"))[:16].hex()
