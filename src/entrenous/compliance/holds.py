"""Legal holds (HOLD): while a hold is active, nothing of its conversation or data subject is
swept or erased (GDPR Art. 17(3)(e)); every placement and release is audited.

A hold names exactly one of a conversation or a data subject (a subject id or peer label; it
also covers the subject's conversations started after the hold). Its reason and reference are
kept in the store for the compliance team; the audit trail records only the hold's id, its
scope and a pseudonymous target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from entrenous._primitives.rand import random_bytes
from entrenous.compliance import audit
from entrenous.errors import UsageError
from entrenous.store.base import HoldRecord, Store

#: The longest reason or reference a hold keeps.
MAX_TEXT = 1000


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold. Its repr leaves out the subject, the reason and the reference."""

    id: str
    conversation_id: str | None
    subject: str | None
    reason: str
    reference: str | None
    placed_at: datetime
    released_at: datetime | None

    @property
    def active(self) -> bool:
        """True until the hold is released."""
        return self.released_at is None

    @classmethod
    def _of(cls, record: HoldRecord) -> Hold:
        conversation = record.conversation_uid
        return cls(
            id=record.uid.hex(),
            conversation_id=None if conversation is None else conversation.hex(),
            subject=record.subject,
            reason=record.reason,
            reference=record.reference,
            placed_at=_time(record.placed_at),
            released_at=None if record.released_at is None else _time(record.released_at),
        )

    def __repr__(self) -> str:
        scope = "conversation" if self.conversation_id is not None else "subject"
        return f"Hold(id={self.id}, {scope}, active={self.active})"


def _text(value: object, name: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"a hold needs a non-empty {name}")
    if len(value) > MAX_TEXT:
        raise UsageError(f"a hold's {name} is longer than {MAX_TEXT} characters")
    return value


def place(
    store: Store,
    *,
    conversation_uid: bytes | None,
    subject: str | None,
    reason: str,
    reference: str | None,
    now: int,
) -> Hold:
    """Place a hold on a conversation or a data subject (exactly one), audited (HOLD-01)."""
    if (conversation_uid is None) == (subject is None):
        raise UsageError("a hold is placed on exactly one of a conversation or a subject")
    if subject is not None:
        _text(subject, "subject", required=True)
    record = HoldRecord(
        uid=random_bytes(16),
        conversation_uid=conversation_uid,
        subject=subject,
        reason=_text(reason, "reason", required=True) or "",
        reference=_text(reference, "reference", required=False),
        placed_at=now,
    )
    with store.transaction():
        if conversation_uid is not None and store.conversation(conversation_uid) is None:
            raise UsageError("no such conversation in this store")
        store.add_hold(record)
        audit.append(store, "hold.placed", _details(store, record), at=now)
    return Hold._of(record)


def release(store: Store, hold_id: str, *, now: int) -> Hold:
    """Release an active hold, audited (HOLD-02); :class:`UsageError` if none is active."""
    try:
        uid = bytes.fromhex(hold_id)
    except (ValueError, TypeError):
        raise UsageError("not a hold id") from None
    with store.transaction():
        record = store.release_hold(uid, now)
        if record is None:
            raise UsageError("no active hold with this id")
        audit.append(store, "hold.released", _details(store, record), at=now)
    return Hold._of(record)


def _details(store: Store, record: HoldRecord) -> dict[str, object]:
    if record.conversation_uid is not None:
        return {
            "hold": record.uid.hex(),
            "scope": "conversation",
            "target": record.conversation_uid.hex(),
        }
    return {
        "hold": record.uid.hex(),
        "scope": "subject",
        "target": audit.pseudonym(store, record.subject or ""),
    }


def holds(store: Store, *, active_only: bool) -> list[Hold]:
    """The holds of a store, oldest first."""
    return [Hold._of(r) for r in store.holds(active_only=active_only)]
