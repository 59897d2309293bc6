"""Access and portability (GDPR Art. 15 and 20): everything a store holds about a data subject,
as JSON that validates against spec/export.schema.json (EXP).

The export holds the subject's conversations (their messages decrypted), the consent records
about the subject, the legal holds that cover them, the retention each conversation is under,
the erasure receipts and the audit events about them. It is the one place where message content
leaves the library in clear: it is meant for the subject.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from entrenous import payload as payload_codec
from entrenous.compliance import audit, ledger
from entrenous.errors import EntrenousError, StoreCorrupt
from entrenous.store.base import ConversationRecord, Store

EXPORT_FORMAT = "entrenous-export"
EXPORT_VERSION = 1
_PAGE = 1000


def iso(ms: int | None) -> str | None:
    """An ISO 8601 UTC time with milliseconds, or ``None``."""
    if ms is None:
        return None
    # An expiry past the year 9999 (no clock reaches it) reads as the last millisecond of it.
    moment = datetime.fromtimestamp(min(ms, payload_codec.MAX_TIME_MS) / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _messages(store: Store, record: ConversationRecord) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    before: bytes | None = None
    while True:
        page = store.history(record.uid, limit=_PAGE, before=before)
        for stored in page:
            try:
                content = payload_codec.decode(stored.body, trusted=True)
            except EntrenousError:
                raise StoreCorrupt("a stored message is unreadable") from None
            if content.control:
                kind = "control"
            else:
                kind = "text" if isinstance(content.content, str) else "data"
            out.append(
                {
                    "id": stored.uid.hex(),
                    "direction": stored.direction,
                    "kind": kind,
                    "content": content.content,
                    "sent_at": iso(stored.sent_at),
                    "received_at": iso(stored.received_at),
                    "expires_at": iso(stored.expires_at),
                }
            )
        if len(page) < _PAGE:
            break
        before = page[-1].uid
    out.reverse()  # oldest first
    return out


def build(
    store: Store,
    subject: str,
    *,
    now: int,
    controller: dict[str, Any] | None,
    retention_of: Callable[[ConversationRecord], dict[str, Any]],
    consent_records: list[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The export of ``subject`` (see the module); appends an ``export`` audit event.

    Runs in one transaction, so the export is one consistent view of the store. ``progress``,
    if given, is called with the number of conversations read so far after each one.
    """
    with store.transaction():
        pseudonym = audit.pseudonym(store, subject)
        records = store.conversations_of_subject(subject)
        ids = {r.uid.hex() for r in records}
        conversations = []
        message_count = 0
        for record in records:
            messages = _messages(store, record)
            message_count += len(messages)
            conversations.append(
                {
                    "id": record.uid.hex(),
                    "peer": record.peer,
                    "subject": record.subject,
                    "category": record.category,
                    "peer_identity": record.peer_identity.hex(),
                    "verified": record.verified is not None,
                    "created_at": iso(record.created_at),
                    "disappearing_after_ms": record.timer_ms,
                    "retention": retention_of(record),
                    "messages": messages,
                }
            )
            if progress is not None:
                progress(len(conversations))
        holds = [
            {
                "id": h.uid.hex(),
                "scope": "conversation" if h.conversation_uid is not None else "subject",
                "conversation": None if h.conversation_uid is None else h.conversation_uid.hex(),
                "reason": h.reason,
                "reference": h.reference,
                "placed_at": iso(h.placed_at),
                "released_at": iso(h.released_at),
            }
            for h in store.holds(active_only=False)
            if h.subject == subject or (h.conversation_uid and h.conversation_uid.hex() in ids)
        ]
        receipts = []
        for _, _, raw in store.erasures():
            receipt = json.loads(raw)
            touched = {item.get("conversation") for item in receipt.get("erased", [])}
            if receipt.get("target") == pseudonym or touched & ids:
                receipts.append(receipt)
        # The consent records signed in the subject's conversations are audited under the
        # pseudonyms of their ledger keys: those events are about the subject too.
        names = {pseudonym} | {
            audit.pseudonym(store, ledger.conversation_key(r.uid, own=own))
            for r in records
            for own in (False, True)
        }
        events = [
            _view(e, pseudonym, ids) for e in audit.events(store) if _about(e.details, names, ids)
        ]
        audit.append(
            store,
            "export",
            {
                "subject": pseudonym,
                "conversations": len(conversations),
                "messages": message_count,
                "consent_records": len(consent_records),
            },
            at=now,
        )
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "generated_at": iso(now),
        "controller": controller,
        "subject": {"id": subject, "pseudonym": pseudonym},
        "conversations": conversations,
        "consent_records": consent_records,
        "holds": holds,
        "erasure_receipts": receipts,
        "audit_events": events,
    }


def _about(details: dict[str, Any], pseudonyms: set[str], conversation_ids: set[str]) -> bool:
    for value in details.values():
        if isinstance(value, str) and (value in pseudonyms or value in conversation_ids):
            return True
        if isinstance(value, list) and any(
            v in conversation_ids for v in value if isinstance(v, str)
        ):
            return True
    return False


def _view(event: audit.AuditEvent, pseudonym: str, conversation_ids: set[str]) -> dict[str, Any]:
    """An event as the subject sees it (EXP-03): an event about the subject is shown whole; in
    one that only touches the subject's conversations (a sweep's batch), its list of
    conversations keeps the subject's own, and ``redacted`` marks it so shortened."""
    shown = event.to_dict()
    if pseudonym in event.details.values():
        return shown
    details = dict(event.details)
    for name, value in event.details.items():
        if name == "conversations" and isinstance(value, list):
            own = [v for v in value if isinstance(v, str) and v in conversation_ids]
            if len(own) != len(value):
                details[name] = own
                details["redacted"] = True
    shown["details"] = details
    return shown
