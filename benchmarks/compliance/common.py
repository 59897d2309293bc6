"""The compliance workloads, the populations they run on, and the policy those apply.

This module imports nothing from entrenous (the runner imports it; only the builder and the
workers, which run in processes of their own, import the library).

Every workload runs on a *population* of ``size`` stored messages
(:mod:`benchmarks.compliance.population` builds them):

* ``c.db`` (with its ``.keys`` file): one client's store under :data:`POLICY_TEXT`, holding
  ``size`` messages in :attr:`Layout.conversations` conversations: the *expiring* ones (category
  ``ephemeral``, :attr:`Layout.expired` messages in all, every one of them expired at the
  population's clock), the *erasure subject*'s conversation (:attr:`Layout.erase_messages`), the
  *export subject*'s (:attr:`Layout.export_messages`) and fillers that expire years later.
  All these messages are spread at random over the whole store, as a real store interleaves
  its conversations.
* ``floor.db``: a byte copy of ``c.db`` taken when the build ends, opened by raw sqlcipher3 for
  the floors: the same schema, indexes, rows and pages.
* ``restore.db``: the rows the sweep and the erasure delete (and the erased conversation's row
  and data key), so that every iteration and every worker starts from the built store.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bump when the way populations are built changes (the cache key also carries the store's
#: schema versions, so a new migration rebuilds them too).
POPULATION_VERSION = 1

#: The policy the population's store applies (``Client.open(..., policy=...)``). Fillers and
#: subjects fall under the default (kept two years); the expiring conversations under
#: ``ephemeral`` (one day).
POLICY_TEXT = """\
version = 1

[controller]
name = "Benchmark controller (fictional)"
contact = "privacy@example.invalid"

[retention.default]
max_age = "2y"

[retention.categories.ephemeral]
description = "Short-lived conversations: deleted a day after each message"
max_age = "1d"
"""
#: The category of the expiring conversations.
EPHEMERAL = "ephemeral"
#: ``max_age`` of :data:`EPHEMERAL` in ms (the population's clock is set past it).
EPHEMERAL_MS = 24 * 3600 * 1000
#: The data subject erased by ``erase`` (its conversation's ``subject``).
ERASE_SUBJECT = "subject-erase"
#: The data subject exported by ``export``.
EXPORT_SUBJECT = "subject-export"


@dataclass(frozen=True, slots=True)
class Layout:
    """What a population holds besides its fillers."""

    #: Messages expired at the population's clock (the sweep deletes exactly these).
    expired: int = 10_000
    #: Conversations the expired messages are spread over (category ``ephemeral``).
    expiring_conversations: int = 10
    #: Messages of the erasure subject (one conversation).
    erase_messages: int = 1_000
    #: Messages of the export subject (one conversation).
    export_messages: int = 10_000
    #: Conversations in all: the ones above and fillers.
    conversations: int = 1_000

    @property
    def special(self) -> int:
        """Messages that are not fillers'."""
        return self.expired + self.erase_messages + self.export_messages

    @property
    def fillers(self) -> int:
        """Filler conversations."""
        return self.conversations - self.expiring_conversations - 2


#: The layout of every population the runner builds.
LAYOUT = Layout()

#: Population sizes (stored messages) of a full and of a ``--quick`` run. A store must hold
#: the layout's 21,000 messages, so the quick run's small store is 25k, not 10k.
FULL_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (25_000, 100_000)

#: The parts of an iteration a worker reports (each in ns per iteration).
TOTAL = "total"
JOURNAL = "journal"
EXCL_JOURNAL = "excl_journal"
SHRED = "shred"
PART_LABELS = {
    TOTAL: "total",
    EXCL_JOURNAL: "excl. journal",
    JOURNAL: "journal",
    SHRED: "(key shred)",
}


@dataclass(frozen=True, slots=True)
class ComplianceWorkload:
    """One compliance workload: what an iteration is, and how many to time."""

    name: str
    #: ``"entrenous"`` (through :class:`entrenous.Client`) or ``"floor"`` (raw sqlcipher3).
    kind: str
    #: The parts reported, in the order shown.
    parts: tuple[str, ...]
    full_rounds: int
    quick_rounds: int
    #: Untimed iterations run first.
    full_warmup: int
    quick_warmup: int
    summary: str

    def rounds(self, *, quick: bool) -> int:
        """Timed iterations for this mode."""
        return self.quick_rounds if quick else self.full_rounds

    def warmup(self, *, quick: bool) -> int:
        """Untimed iterations for this mode."""
        return self.quick_warmup if quick else self.full_warmup


_SPLIT = (EXCL_JOURNAL, JOURNAL, TOTAL)

WORKLOADS: dict[str, ComplianceWorkload] = {
    w.name: w
    for w in (
        ComplianceWorkload(
            name="sweep",
            kind="entrenous",
            parts=_SPLIT,
            full_rounds=5,
            quick_rounds=2,
            full_warmup=1,
            quick_warmup=1,
            summary="client.sweep() at the population's clock: finds and deletes the 10k expired "
            "messages (one transaction with its audit event), then truncates the WAL",
        ),
        ComplianceWorkload(
            name="floor_sweep",
            kind="floor",
            parts=_SPLIT,
            full_rounds=5,
            quick_rounds=2,
            full_warmup=1,
            quick_warmup=1,
            summary="raw sqlcipher3: BEGIN IMMEDIATE; DELETE FROM messages WHERE expires_at <= "
            "now; COMMIT; then PRAGMA wal_checkpoint(TRUNCATE)",
        ),
        ComplianceWorkload(
            name="erase",
            kind="entrenous",
            parts=(EXCL_JOURNAL, SHRED, JOURNAL, TOTAL),
            full_rounds=20,
            quick_rounds=5,
            full_warmup=2,
            quick_warmup=1,
            summary="client.erase(subject=...) of a subject with one conversation of 1,000 "
            "messages: deletes, signed receipt and audit event in one transaction, data key "
            "destroyed, then the WAL truncated",
        ),
        ComplianceWorkload(
            name="floor_erase",
            kind="floor",
            parts=_SPLIT,
            full_rounds=20,
            quick_rounds=5,
            full_warmup=2,
            quick_warmup=1,
            summary="raw sqlcipher3: BEGIN IMMEDIATE; DELETE the conversation's messages; DELETE "
            "its conversation row; COMMIT; then PRAGMA wal_checkpoint(TRUNCATE)",
        ),
        ComplianceWorkload(
            name="export",
            kind="entrenous",
            parts=(TOTAL,),
            full_rounds=10,
            quick_rounds=3,
            full_warmup=1,
            quick_warmup=1,
            summary="client.export(subject) of a subject with one conversation of 10k messages: "
            "every message read and decrypted, the JSON built, an audit event committed",
        ),
        ComplianceWorkload(
            name="floor_export",
            kind="floor",
            parts=(TOTAL,),
            full_rounds=20,
            quick_rounds=5,
            full_warmup=2,
            quick_warmup=1,
            summary="raw sqlcipher3: SELECT the conversation's 10k rows (every column the export "
            "reads) by index, fetchall; no decryption, no JSON, no commit",
        ),
    )
}

#: The floor each entrenous workload is compared with.
FLOOR_OF: dict[str, str] = {
    "sweep": "floor_sweep",
    "erase": "floor_erase",
    "export": "floor_export",
}
