"""The consent ledger in the store: append-only and hash-chained (CON-10, CON-15 to CON-17).

Each row holds one :class:`~entrenous.compliance.consent.ConsentRecord` in its canonical bytes,
chained by :func:`~entrenous.compliance.consent.entry_hash`, under a *ledger key*: a record
signed in band goes under its conversation (``conversation:<id>:peer`` for the peer's records,
``conversation:<id>:own`` for ours), a record the controller makes (``record_consent``) under
the subject id it names. A conversation's consent is decided from its own records and its data
subject's, so a record stays found when the conversation's subject id is set or changed later.
Every append also appends a ``consent.recorded`` audit event holding the entry's seq and hash,
so the audit trail checkpoints the ledger and a removed tail is detected.
"""

from __future__ import annotations

from collections.abc import Iterator

from entrenous.compliance import audit
from entrenous.compliance.consent import (
    ConsentRecord,
    LedgerEntry,
    next_entry,
    verify_chain,
)
from entrenous.errors import AuditChainBroken, ConsentLedgerBroken, InvalidConsentRecord
from entrenous.store.base import ChainRow, Store


def conversation_key(conversation_uid: bytes, *, own: bool = False) -> str:
    """The ledger key of the records signed in band in a conversation: the peer's, or ours."""
    return f"conversation:{conversation_uid.hex()}:{'own' if own else 'peer'}"


def _entry(row: ChainRow) -> LedgerEntry:
    return LedgerEntry(row.seq, row.prev, row.body, row.hash)


def append(store: Store, record: ConsentRecord, *, key: str, at: int, source: str) -> LedgerEntry:
    """Append a record under a ledger key, with its audit event (inside the caller's transaction).

    ``source`` says how it arrived ("in-band" or "recorded"). A record id already in the ledger
    is refused (:class:`InvalidConsentRecord`): a replayed record counts once.
    """
    for row in store.consent_rows(record.purpose, key):
        if _entry(row).record().record_id == record.record_id:
            raise InvalidConsentRecord("this consent record is already in the ledger")
    last = store.last_chain_row("consent")
    entry = next_entry(None if last is None else _entry(last), record)
    store.add_chain_row(
        "consent",
        ChainRow(
            entry.seq,
            at,
            record.purpose,
            entry.record_bytes,
            entry.prev_hash,
            entry.hash,
            subject=key,
        ),
    )
    audit.append(
        store,
        "consent.recorded",
        {
            "record": record.record_id.hex(),
            "subject": audit.pseudonym(store, key),
            "purpose": record.purpose,
            "state": record.state,
            "source": source,
            "ledger_seq": entry.seq,
            "ledger_hash": entry.hash.hex(),
        },
        at=at,
    )
    return entry


def records(store: Store, *, purpose: str, key: str) -> list[ConsentRecord]:
    """The records of one purpose under one ledger key, oldest first."""
    return [_entry(row).record() for row in store.consent_rows(purpose, key)]


def entries(store: Store) -> Iterator[LedgerEntry]:
    """Every ledger entry in order."""
    return map(_entry, audit.chain(store, "consent"))


def records_under(
    store: Store, keys: list[str], *, purpose: str | None = None
) -> list[ConsentRecord]:
    """The records under any of ``keys`` (of one purpose, if given), in ledger order."""
    rows = []
    for key in dict.fromkeys(keys):
        if purpose is None:
            rows += store.chain_rows("consent", limit=2**62, subject=key)
        else:
            rows += store.consent_rows(purpose, key)
    return [_entry(row).record() for row in sorted(rows, key=lambda row: row.seq)]


def verify(store: Store) -> int:
    """Verify the ledger against the newest checkpoint in the audit trail; the entry count.

    The trail is verified first: a checkpoint is only worth what the chain that holds it is.
    """
    trail = list(audit.events(store))
    try:
        audit.verify_events(trail, audit.head(store))
    except AuditChainBroken:
        raise ConsentLedgerBroken(
            0, "the audit trail that holds the ledger's checkpoints does not verify"
        ) from None
    checkpoint: tuple[int, bytes] | None = None
    for event in trail:
        if event.action == "consent.recorded":
            try:
                checkpoint = (
                    int(event.details["ledger_seq"]),
                    bytes.fromhex(event.details["ledger_hash"]),
                )
            except (KeyError, TypeError, ValueError):
                raise ConsentLedgerBroken(0, "an audit checkpoint is unreadable") from None
    all_entries = list(entries(store))
    verify_chain(all_entries, checkpoint=checkpoint)
    return len(all_entries)
