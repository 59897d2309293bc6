"""The store workloads, the populations they run on, and where populated stores are cached.

This module imports nothing from entrenous (the runner imports it; only the builder and the
workers, which run in processes of their own, import the library).

Every workload runs on a *population*: a set of files holding ``size`` stored messages
(:mod:`benchmarks.store.population` builds them):

* ``a.db`` and ``b.db``: two clients' stores (with their ``.keys`` files), each holding ``size``
  messages in :data:`CONVERSATIONS` conversations. The two clients share one real conversation
  (the *main* conversation: :data:`MAIN_MESSAGES` messages plus the few that set it up); the
  other messages are spread over filler conversations, interleaved with the main one.
* ``floor.db``: a raw SQLCipher database (no entrenous code) with a table shaped like the store's
  ``messages`` table, holding ``size`` rows of the same sizes, and a ``conversations`` table of
  :data:`CONVERSATIONS` rows holding a protocol state blob each, for the floors.
* ``floor-peer.db``: a copy of ``floor.db``, the receiving side of ``floor_send_receive`` (a
  send+receive commits to two stores).

Two kinds of floor. The floors the issue states its targets against (``floor_insert_1tx``,
``floor_insert_batch``) insert a message-sized row and nothing else. The *same-work* floors
(``floor_send_receive``, ``floor_receive_batch``) do, in raw sqlcipher3 and bare primitive calls,
no more than the writes and the cryptography the client cannot do without: the message row and
the conversation's protocol state committed together, on both stores for a send+receive; a
chain step and an AEAD seal or open of the message; the store's AEAD seal of the body under the
conversation's data key; every parameter bound the cheapest way sqlcipher3 binds (blobs as
``bytearray``, NULLs as literals, as the store binds them; a test checks it). No parsing,
padding, checks or bookkeeping, and a shorter plaintext (no padding): an implementation can
approach such a floor but not cross it, and the floor's own ratio to the issue's floor is the
most any implementation can reach.

Workloads that write (:attr:`StoreWorkload.writes`) add rows; the worker deletes every row past
the population's own before and after it measures, so each worker starts from the same store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.protocol.common import MESSAGE

ROOT = Path(__file__).resolve().parents[2]
#: Built populations live here (``benchmarks/results/`` is ignored by git).
CACHE_DIR = ROOT / "benchmarks" / "results" / "cache"
#: Bump when the way populations are built changes (the cache key also carries the store's
#: schema versions, so a new migration rebuilds them too).
POPULATION_VERSION = 3

#: The text every message carries: 1 KiB of printable ASCII (so 1 KiB of UTF-8), derived from
#: the protocol benchmarks' fixed plaintext.
TEXT: str = "".join(chr(0x20 + byte % 95) for byte in MESSAGE)
#: Conversations in each client store: the main one and ``CONVERSATIONS - 1`` fillers.
CONVERSATIONS = 1_000
#: Messages bulk-loaded into the main conversation (the history workloads page through it).
MAIN_MESSAGES = 1_000
#: Bulk-loaded rows per transaction while building.
BUILD_CHUNK = 10_000
#: Messages per history page.
PAGE = 50
#: The deep history page ends this many bulk messages after the main conversation's oldest
#: bulk message: ``history(PAGE, before=<that message>)`` returns the oldest bulk messages,
#: about 950 messages back from the newest.
DEEP_BEFORE_INDEX = PAGE
#: Rows per batch in ``floor_insert_batch`` (the floor of ``receive_many_1000``).
FLOOR_BATCH = 1_000

#: The floor databases of a population (file stems; they share the floor's key).
FLOOR_FILES = ("floor", "floor-peer")

#: Population sizes (stored messages per store) of a full and of a ``--quick`` run.
FULL_SIZES = (10_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)


def size_label(size: int) -> str:
    """``10000`` -> ``"10k"``, ``1000000`` -> ``"1M"``."""
    for unit, name in ((1_000_000, "M"), (1_000, "k")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{name}"
    return str(size)


@dataclass(frozen=True, slots=True)
class StoreWorkload:
    """One store workload: what an operation is, and how many iterations to time."""

    name: str
    #: What one reported operation is ("message", "page", "open", "row").
    unit: str
    #: Operations in one timed iteration; a reported time is an iteration's time divided by it.
    ops_per_iteration: int
    full_rounds: int
    quick_rounds: int
    #: Untimed iterations run first.
    full_warmup: int
    quick_warmup: int
    #: ``"entrenous"`` (through :class:`entrenous.Client`) or ``"floor"`` (raw sqlcipher3).
    kind: str
    #: True if it adds rows (the worker then resets the population before and after).
    writes: bool
    summary: str

    def rounds(self, *, quick: bool) -> int:
        """Timed iterations for this mode."""
        return self.quick_rounds if quick else self.full_rounds

    def warmup(self, *, quick: bool) -> int:
        """Untimed iterations for this mode."""
        return self.quick_warmup if quick else self.full_warmup


WORKLOADS: dict[str, StoreWorkload] = {
    w.name: w
    for w in (
        StoreWorkload(
            name="send_receive",
            unit="message",
            ops_per_iteration=1,
            full_rounds=1_000,
            quick_rounds=100,
            full_warmup=100,
            quick_warmup=10,
            kind="entrenous",
            writes=True,
            summary="A's conversation.send(1 KiB text) (committed), B's client.receive(envelope) "
            "(committed), in the main conversation",
        ),
        StoreWorkload(
            name="receive_many_100",
            unit="message",
            ops_per_iteration=100,
            full_rounds=30,
            quick_rounds=5,
            full_warmup=3,
            quick_warmup=1,
            kind="entrenous",
            writes=True,
            summary="B's client.receive_many(100 envelopes) in one transaction; A sending them "
            "is untimed; per message",
        ),
        StoreWorkload(
            name="receive_many_1000",
            unit="message",
            ops_per_iteration=1_000,
            full_rounds=5,
            quick_rounds=2,
            full_warmup=1,
            quick_warmup=1,
            kind="entrenous",
            writes=True,
            summary="B's client.receive_many(1000 envelopes) in one transaction; A sending them "
            "is untimed; per message",
        ),
        StoreWorkload(
            name="history_page",
            unit="page",
            ops_per_iteration=1,
            full_rounds=1_000,
            quick_rounds=100,
            full_warmup=100,
            quick_warmup=10,
            kind="entrenous",
            writes=False,
            summary=f"B's conversation.history({PAGE}): the newest {PAGE} messages of the main "
            f"conversation ({MAIN_MESSAGES}+ messages), decrypted and decoded",
        ),
        StoreWorkload(
            name="history_page_deep",
            unit="page",
            ops_per_iteration=1,
            full_rounds=1_000,
            quick_rounds=100,
            full_warmup=100,
            quick_warmup=10,
            kind="entrenous",
            writes=False,
            summary=f"B's conversation.history({PAGE}, before=id): the main conversation's "
            f"oldest {PAGE} bulk messages, about 950 back",
        ),
        StoreWorkload(
            name="open_raw_key",
            unit="open",
            ops_per_iteration=1,
            full_rounds=300,
            quick_rounds=50,
            full_warmup=30,
            quick_warmup=5,
            kind="entrenous",
            writes=False,
            summary="Client.open(B's store, key=<32 raw bytes>) then close()",
        ),
        StoreWorkload(
            name="floor_insert_1tx",
            unit="row",
            ops_per_iteration=1,
            full_rounds=1_000,
            quick_rounds=100,
            full_warmup=100,
            quick_warmup=10,
            kind="floor",
            writes=True,
            summary="raw sqlcipher3: BEGIN IMMEDIATE; INSERT one message-sized row; COMMIT",
        ),
        StoreWorkload(
            name="floor_insert_batch",
            unit="row",
            ops_per_iteration=FLOOR_BATCH,
            full_rounds=20,
            quick_rounds=4,
            full_warmup=2,
            quick_warmup=1,
            kind="floor",
            writes=True,
            summary=f"raw sqlcipher3: BEGIN IMMEDIATE; executemany INSERT of {FLOOR_BATCH} "
            "message-sized rows; COMMIT; per row",
        ),
        StoreWorkload(
            name="floor_send_receive",
            unit="message",
            ops_per_iteration=1,
            full_rounds=1_000,
            quick_rounds=100,
            full_warmup=100,
            quick_warmup=10,
            kind="floor",
            writes=True,
            summary="raw, the same work as send_receive: a chain step, AEAD seal of the payload "
            "and the store's seal of the body, then BEGIN IMMEDIATE; INSERT the row; UPDATE the "
            "conversation's state; COMMIT on floor.db; a chain step, AEAD open, the store's "
            "seal and the same commit on floor-peer.db",
        ),
        StoreWorkload(
            name="floor_receive_batch",
            unit="message",
            ops_per_iteration=FLOOR_BATCH,
            full_rounds=20,
            quick_rounds=4,
            full_warmup=2,
            quick_warmup=1,
            kind="floor",
            writes=True,
            summary=f"raw, the same work as receive_many_1000: per message a chain step, AEAD "
            f"open and the store's seal of the body; then BEGIN IMMEDIATE; executemany INSERT of "
            f"{FLOOR_BATCH} rows; UPDATE the conversation's state once; COMMIT; per message",
        ),
        StoreWorkload(
            name="floor_select_page",
            unit="page",
            ops_per_iteration=1,
            full_rounds=1_000,
            quick_rounds=100,
            full_warmup=100,
            quick_warmup=10,
            kind="floor",
            writes=False,
            summary=f"raw sqlcipher3: SELECT the newest {PAGE} rows of one conversation by "
            "index, fetchall",
        ),
        StoreWorkload(
            name="floor_open",
            unit="open",
            ops_per_iteration=1,
            full_rounds=300,
            quick_rounds=50,
            full_warmup=30,
            quick_warmup=5,
            kind="floor",
            writes=False,
            summary="raw sqlcipher3: connect, PRAGMA key (raw), the store's PRAGMAs, first "
            "query by index, close",
        ),
    )
}

#: The floor each workload is compared with: the issue's floor of each entrenous workload, and
#: for a same-work floor the issue's floor of its workload (that ratio is the ceiling).
FLOOR_OF: dict[str, str] = {
    "send_receive": "floor_insert_1tx",
    "floor_send_receive": "floor_insert_1tx",
    "receive_many_100": "floor_insert_batch",
    "receive_many_1000": "floor_insert_batch",
    "floor_receive_batch": "floor_insert_batch",
    "history_page": "floor_select_page",
    "history_page_deep": "floor_select_page",
    "open_raw_key": "floor_open",
}
#: The same-work floor of an entrenous workload (see the module doc).
SAME_WORK_OF: dict[str, str] = {
    "send_receive": "floor_send_receive",
    "receive_many_1000": "floor_receive_batch",
}
