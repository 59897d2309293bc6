"""Retention: when messages expire, and the sweep that deletes them (RET, DIS, HOLD).

A message expires at its time on this side (when we sent it, or received it) plus::

    keep = max(min_age, min(max_age, timer))

where a missing maximum ("forever") or a missing disappearing timer does not bound it, and a
message with neither never expires. The minimum age (statutory retention) therefore outranks a
disappearing timer, and the policy's maximum caps it. A legal hold outranks everything: the
sweep skips every conversation under an active hold, whatever its messages' expiry.

The sweep reads the expiry index from its start, so its cost follows the expired rows (and
the held ones it skips), never the size of the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from entrenous.compliance import audit
from entrenous.errors import StoreError
from entrenous.store.base import Store

#: Messages deleted per transaction by a sweep.
SWEEP_BATCH = 20_000


def keep_ms(*, min_ms: int, max_ms: int | None, timer_ms: int | None) -> int | None:
    """How long a message is kept (ms), or ``None`` for ever (RET-05)."""
    bounds = [b for b in (max_ms, timer_ms) if b is not None]
    if not bounds:
        return None
    return max(min_ms, min(bounds))


def expires_at(
    stored_at: int, *, min_ms: int, max_ms: int | None, timer_ms: int | None
) -> int | None:
    """When a message stored at ``stored_at`` expires (ms), or ``None``."""
    keep = keep_ms(min_ms=min_ms, max_ms=max_ms, timer_ms=timer_ms)
    return None if keep is None else stored_at + keep


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What a sweep deleted (or, for a dry run, would delete). Counts and ids only."""

    at: int
    dry_run: bool
    deleted: int
    by_conversation: dict[str, int] = field(default_factory=dict)
    next_expiry: int | None = None
    held_conversations: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible data (times in ms since the epoch)."""
        return {
            "at": self.at,
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "by_conversation": dict(sorted(self.by_conversation.items())),
            "next_expiry": self.next_expiry,
            "held_conversations": self.held_conversations,
        }


def sweep(
    store: Store,
    *,
    now: int,
    dry_run: bool,
    batch: int = SWEEP_BATCH,
    progress: Callable[[int], None] | None = None,
) -> SweepReport:
    """Delete every expired message not under a hold; one audit event per batch (RET-07).

    Each batch is one transaction together with its audit event, so an interrupted sweep
    leaves whole, audited batches behind and the next sweep continues. A dry run changes
    nothing and records nothing. ``progress``, if given, is called with the number of messages
    deleted so far after each committed batch (a dry run: once, with the number it would delete).
    """
    by_conversation: dict[str, int] = {}
    total = 0
    held = len(store.held_conversations())
    if dry_run:
        for message in store.expired(now, limit=2**62):
            key = message.conversation_uid.hex()
            by_conversation[key] = by_conversation.get(key, 0) + 1
            total += 1
        if progress is not None:
            progress(total)
        return SweepReport(now, True, total, by_conversation, store.next_expiry(), held)
    if not store.expired(now, limit=1):
        # Nothing due: no transaction at all, so that an open that only sweeps writes nothing
        # (the store's first change of a session costs a checkpoint, spec/store.md).
        return SweepReport(now, False, 0, by_conversation, store.next_expiry(), held)
    # The journal is checkpointed once, by the truncation at the end (not by a commit).
    with store.deferred_checkpoint():
        while True:
            with store.transaction():
                due = store.expired(now, limit=batch)
                if not due:
                    break
                counts: dict[str, int] = {}
                for message in due:
                    key = message.conversation_uid.hex()
                    counts[key] = counts.get(key, 0) + 1
                store.delete_messages([m.row_id for m in due])
                audit.append(
                    store,
                    "sweep",
                    {"deleted": len(due), "conversations": sorted(counts), "until": now},
                    at=now,
                )
            for key, count in counts.items():
                by_conversation[key] = by_conversation.get(key, 0) + count
            total += len(due)
            if progress is not None:
                progress(total)
            if len(due) < batch:
                break
    if total:
        try:
            store.truncate_journal()
        except StoreError as exc:
            # Committed already: say so, rather than "nothing was changed" (FLT-01).
            raise StoreError(
                f"the sweep deleted {total} message{'' if total == 1 else 's'}, but the "
                "write-ahead log could not be "
                f"truncated ({exc}); closing the client truncates it"
            ) from None
    return SweepReport(now, False, total, by_conversation, store.next_expiry(), held)
