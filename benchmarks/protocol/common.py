"""The workloads, the measuring loop, and the interfaces every implementation module fills in.

Every implementation runs the same five workloads (:data:`WORKLOADS`), on the same 1 KiB message
(:data:`MESSAGE`), in a process of its own (see :mod:`~benchmarks.protocol.worker`). An
implementation module provides one :class:`Peer`:

* a protocol library subclasses :class:`RatchetPeer` (synchronous API) or
  :class:`AsyncRatchetPeer` (``async`` API) and supplies six small primitives (publish a
  bundle, run a handshake, encrypt, decrypt, save, load); the workloads themselves are written
  once, here, in terms of those primitives;
* the raw floor, which has no session object, subclasses :class:`SyncPeer` and builds each
  workload directly.

Building a workload returns a :class:`Case`: ``run(prep())`` is one timed iteration. ``prep`` is
the untimed per-iteration preparation (for the handshake: the responder issuing a fresh bundle),
``after`` an untimed check made once after the timed loop.

Timing (:func:`measure`, :func:`measure_async`): warm-up iterations first, then a full garbage
collection, then the timed iterations with the cyclic garbage collector disabled (re-enabled
afterwards, whatever happens). Each iteration is timed on its own with
:func:`time.perf_counter_ns`; only ``run`` is inside the timed section.
"""

from __future__ import annotations

import gc
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

#: Size of every plaintext, in bytes.
MESSAGE_SIZE = 1024
#: The plaintext every workload sends (fixed, so that runs are comparable).
MESSAGE: bytes = bytes((7 * i + 3) & 0xFF for i in range(MESSAGE_SIZE))
#: Messages in one out-of-order batch.
BATCH = 100
#: Seed of the fixed shuffled order in which an out-of-order batch is decrypted.
SHUFFLE_SEED = 20_240_601
#: Round trips made before a session is saved in ``state_save_load`` ("mid-conversation").
STATE_ROUND_TRIPS = 5
#: Messages sent before the save of which the receiver reads only the last one, so the saved
#: session carries ``STATE_LATE_MESSAGES - 1`` skipped message keys.
STATE_LATE_MESSAGES = 3


@dataclass(frozen=True, slots=True)
class Workload:
    """One workload: what an operation is, and how many iterations to time."""

    name: str
    #: What one reported operation is ("message", "handshake", "save+load").
    unit: str
    #: Operations in one timed iteration; a reported time is an iteration's time divided by it.
    ops_per_iteration: int
    #: Timed iterations in a full run and in a ``--quick`` run.
    full_rounds: int
    quick_rounds: int
    summary: str

    def rounds(self, *, quick: bool) -> int:
        """Timed iterations for this mode."""
        return self.quick_rounds if quick else self.full_rounds

    def warmup(self, *, quick: bool) -> int:
        """Untimed iterations run first: a tenth of the timed ones, at least three."""
        return max(3, self.rounds(quick=quick) // 10)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            name="one_way",
            unit="message",
            ops_per_iteration=1,
            full_rounds=5_000,
            quick_rounds=500,
            summary="1 KiB message A->B: A encrypts, B decrypts (no DH ratchet step)",
        ),
        Workload(
            name="ping_pong",
            unit="message",
            ops_per_iteration=2,
            full_rounds=1_500,
            quick_rounds=150,
            summary="1 KiB messages alternately A->B and B->A: every message starts a DH "
            "ratchet step",
        ),
        Workload(
            name="out_of_order",
            unit="message",
            ops_per_iteration=BATCH,
            full_rounds=80,
            quick_rounds=8,
            summary=f"A encrypts {BATCH} messages of 1 KiB, B decrypts them in a fixed "
            "shuffled order",
        ),
        Workload(
            name="handshake",
            unit="handshake",
            ops_per_iteration=1,
            full_rounds=400,
            quick_rounds=40,
            summary="B's published bundle -> A parses and verifies it, starts a session, "
            "encrypts 1 KiB; B starts its session and decrypts (B issuing the bundle is not "
            "timed)",
        ),
        Workload(
            name="state_save_load",
            unit="save+load",
            ops_per_iteration=1,
            full_rounds=5_000,
            quick_rounds=500,
            summary="serialise a session mid-conversation (with skipped message keys) to "
            "bytes and load it back",
        ),
    )
}


class NotApplicable(Exception):
    """The implementation cannot run this workload; the message says why."""


class PeerUnavailable(Exception):
    """The implementation's package is not installed (or does not import); the message says so."""


class BenchmarkError(Exception):
    """A workload produced a wrong result (a plaintext that does not round-trip)."""


def _no_prep() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Case:
    """A workload ready to measure: ``run(prep())`` is one timed iteration.

    For an :class:`AsyncPeer`, ``run`` (and ``after``, when given) return awaitables; ``prep`` is
    always synchronous.
    """

    run: Callable[[Any], Any]
    prep: Callable[[], Any] = _no_prep
    after: Callable[[], Any] | None = field(default=None)


def measure(case: Case, rounds: int, warmup: int) -> list[int]:
    """Time ``rounds`` iterations of a synchronous case; nanoseconds per iteration."""
    run, prep = case.run, case.prep
    for _ in range(warmup):
        run(prep())
    samples: list[int] = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            arg = prep()
            start = clock()
            run(arg)
            samples.append(clock() - start)
    finally:
        gc.enable()
    if case.after is not None:
        case.after()
    return samples


async def measure_async(case: Case, rounds: int, warmup: int) -> list[int]:
    """Time ``rounds`` iterations of an async case inside the running event loop."""
    run, prep = case.run, case.prep
    for _ in range(warmup):
        await run(prep())
    samples: list[int] = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            arg = prep()
            start = clock()
            await run(arg)
            samples.append(clock() - start)
    finally:
        gc.enable()
    if case.after is not None:
        await case.after()
    return samples


def shuffled_order(n: int = BATCH) -> list[int]:
    """The fixed (seeded) order in which an out-of-order batch is decrypted."""
    order = list(range(n))
    random.Random(SHUFFLE_SEED).shuffle(order)
    return order


def _check(plaintext: bytes, workload: str) -> None:
    if plaintext != MESSAGE:
        raise BenchmarkError(f"{workload}: decrypted plaintext differs from the one sent")


def _batch_failure(decrypted: int, error: BaseException | None, limit: str | None) -> NotApplicable:
    reason = f"only {decrypted}/{BATCH} messages of a shuffled batch decrypted"
    if error is not None:
        reason += f" ({type(error).__name__}: {error})"
    if limit:
        reason += f"; {limit}"
    return NotApplicable(reason)


# --- peers -----------------------------------------------------------------------------------


class Peer(ABC):
    """One implementation under test."""

    #: Name used on the command line, in the table and in the JSON report.
    name: ClassVar[str]
    #: How the implementation is configured (printed under the table, stored in the JSON).
    configuration: ClassVar[str]

    @abstractmethod
    def version(self) -> str:
        """Version of the package under test."""


class SyncPeer(Peer):
    """A peer whose workloads are measured with :func:`measure`."""

    @abstractmethod
    def build(self, workload: str) -> Case:
        """Set up ``workload`` (untimed) and return the case to measure.

        Raises :class:`NotApplicable` when the implementation cannot run it.
        """


class AsyncPeer(Peer):
    """A peer whose workloads are measured with :func:`measure_async`, in one event loop."""

    @abstractmethod
    async def build(self, workload: str) -> Case:
        """Set up ``workload`` (untimed) and return the case to measure."""


S = TypeVar("S")  # a session (one party's end of a conversation)
W = TypeVar("W")  # a message as it travels: bytes, or the plain values the library's API takes
P = TypeVar("P")  # what the responder published for one handshake (its bundle)


class RatchetPeer(SyncPeer, Generic[S, W, P]):
    """A synchronous protocol library: the workloads are built from six primitives.

    A wire message ``W`` must be what would travel (bytes, or plain values that a library's API
    takes apart), never a live object of the sender's library: parsing it is part of decrypting.
    """

    #: Why a shuffled batch may fail (a documented limit of the library), or ``None``: a failure
    #: of the untimed trial batch then becomes an "n/a" with this reason.
    out_of_order_limit: ClassVar[str | None] = None

    @abstractmethod
    def publish(self) -> P:
        """B's untimed preparation for one handshake: issue and encode a fresh bundle."""

    @abstractmethod
    def handshake(self, published: P, plaintext: bytes) -> tuple[S, S, bytes]:
        """From ``published`` to B's first decrypted message: ``(A's, B's session, plaintext)``.

        A parses and verifies the bundle, starts its session and encrypts ``plaintext``; B starts
        its session from that first message and decrypts it.
        """

    @abstractmethod
    def encrypt(self, session: S, plaintext: bytes) -> W:
        """Encrypt ``plaintext`` in ``session``, returning what travels."""

    @abstractmethod
    def decrypt(self, session: S, message: W) -> bytes:
        """Parse and decrypt a message that travelled."""

    @abstractmethod
    def save(self, session: S) -> bytes:
        """Serialise a session to bytes (as the application would store it)."""

    @abstractmethod
    def load(self, blob: bytes) -> S:
        """Load a session saved by :meth:`save`."""

    def start(self) -> tuple[S, S]:
        """An established conversation: handshake, then one reply B->A (so A stops sending
        handshake messages)."""
        a, b, plaintext = self.handshake(self.publish(), MESSAGE)
        _check(plaintext, "handshake")
        _check(self.decrypt(a, self.encrypt(b, MESSAGE)), "reply")
        return a, b

    def build(self, workload: str) -> Case:
        builders: dict[str, Callable[[], Case]] = {
            "one_way": self._one_way,
            "ping_pong": self._ping_pong,
            "out_of_order": self._out_of_order,
            "handshake": self._handshake,
            "state_save_load": self._state_save_load,
        }
        return builders[workload]()

    def _one_way(self) -> Case:
        a, b = self.start()
        enc, dec, msg = self.encrypt, self.decrypt, MESSAGE

        def run(_: object) -> None:
            if dec(b, enc(a, msg)) != msg:
                raise BenchmarkError("one_way: wrong plaintext")

        return Case(run)

    def _ping_pong(self) -> Case:
        a, b = self.start()
        enc, dec, msg = self.encrypt, self.decrypt, MESSAGE

        def run(_: object) -> None:
            if dec(b, enc(a, msg)) != msg or dec(a, enc(b, msg)) != msg:
                raise BenchmarkError("ping_pong: wrong plaintext")

        return Case(run)

    def _out_of_order(self) -> Case:
        a, b = self.start()
        enc, dec, msg, order = self.encrypt, self.decrypt, MESSAGE, shuffled_order()

        # Untimed trial batch: a library that cannot take this order is reported "n/a".
        trial = [enc(a, msg) for _ in range(BATCH)]
        decrypted, error = 0, None
        for i in order:
            try:
                decrypted += dec(b, trial[i]) == msg
            except Exception as exc:
                error = error or exc
        if decrypted != BATCH:
            raise _batch_failure(decrypted, error, self.out_of_order_limit)

        def run(_: object) -> None:
            sent = [enc(a, msg) for _ in range(BATCH)]
            for i in order:
                if dec(b, sent[i]) != msg:
                    raise BenchmarkError("out_of_order: wrong plaintext")

        return Case(run)

    def _handshake(self) -> Case:
        handshake, msg = self.handshake, MESSAGE

        def run(published: P) -> None:
            if handshake(published, msg)[2] != msg:
                raise BenchmarkError("handshake: wrong plaintext")

        return Case(run, prep=self.publish)

    def _state_save_load(self) -> Case:
        a, b = self.start()
        enc, dec, msg = self.encrypt, self.decrypt, MESSAGE
        for _ in range(STATE_ROUND_TRIPS):
            _check(dec(b, enc(a, msg)), "state_save_load setup")
            _check(dec(a, enc(b, msg)), "state_save_load setup")
        late = [enc(a, msg) for _ in range(STATE_LATE_MESSAGES)]
        _check(dec(b, late[-1]), "state_save_load setup")
        save, load = self.save, self.load

        def run(_: object) -> None:
            load(save(b))

        def after() -> None:
            # The loaded session still holds the skipped keys and can still talk.
            loaded = load(save(b))
            for message in late[:-1]:
                _check(dec(loaded, message), "state_save_load (skipped key after load)")
            _check(dec(a, enc(loaded, msg)), "state_save_load (reply after load)")

        return Case(run, after=after)


class AsyncRatchetPeer(AsyncPeer, Generic[S, W, P]):
    """An ``async`` protocol library: the same workloads as :class:`RatchetPeer`, awaited.

    The primitives mean exactly what they mean on :class:`RatchetPeer`; only ``publish`` (the
    untimed preparation) is synchronous. Keep the two classes' workloads in step.
    """

    out_of_order_limit: ClassVar[str | None] = None

    @abstractmethod
    def publish(self) -> P:
        """B's untimed preparation for one handshake: issue and encode a fresh bundle."""

    @abstractmethod
    async def handshake(self, published: P, plaintext: bytes) -> tuple[S, S, bytes]:
        """From ``published`` to B's first decrypted message: ``(A's, B's session, plaintext)``."""

    @abstractmethod
    async def encrypt(self, session: S, plaintext: bytes) -> W:
        """Encrypt ``plaintext`` in ``session``, returning what travels."""

    @abstractmethod
    async def decrypt(self, session: S, message: W) -> bytes:
        """Parse and decrypt a message that travelled."""

    @abstractmethod
    async def save(self, session: S) -> bytes:
        """Serialise a session to bytes (as the application would store it)."""

    @abstractmethod
    async def load(self, blob: bytes) -> S:
        """Load a session saved by :meth:`save`."""

    async def start(self) -> tuple[S, S]:
        """An established conversation: handshake, then one reply B->A."""
        a, b, plaintext = await self.handshake(self.publish(), MESSAGE)
        _check(plaintext, "handshake")
        _check(await self.decrypt(a, await self.encrypt(b, MESSAGE)), "reply")
        return a, b

    async def build(self, workload: str) -> Case:
        builders: dict[str, Callable[[], Any]] = {
            "one_way": self._one_way,
            "ping_pong": self._ping_pong,
            "out_of_order": self._out_of_order,
            "handshake": self._handshake,
            "state_save_load": self._state_save_load,
        }
        case: Case = await builders[workload]()
        return case

    async def _one_way(self) -> Case:
        a, b = await self.start()
        enc, dec, msg = self.encrypt, self.decrypt, MESSAGE

        async def run(_: object) -> None:
            if await dec(b, await enc(a, msg)) != msg:
                raise BenchmarkError("one_way: wrong plaintext")

        return Case(run)

    async def _ping_pong(self) -> Case:
        a, b = await self.start()
        enc, dec, msg = self.encrypt, self.decrypt, MESSAGE

        async def run(_: object) -> None:
            if await dec(b, await enc(a, msg)) != msg or await dec(a, await enc(b, msg)) != msg:
                raise BenchmarkError("ping_pong: wrong plaintext")

        return Case(run)

    async def _out_of_order(self) -> Case:
        a, b = await self.start()
        enc, dec, msg, order = self.encrypt, self.decrypt, MESSAGE, shuffled_order()

        trial = [await enc(a, msg) for _ in range(BATCH)]
        decrypted, error = 0, None
        for i in order:
            try:
                decrypted += await dec(b, trial[i]) == msg
            except Exception as exc:
                error = error or exc
        if decrypted != BATCH:
            raise _batch_failure(decrypted, error, self.out_of_order_limit)

        async def run(_: object) -> None:
            sent = [await enc(a, msg) for _ in range(BATCH)]
            for i in order:
                if await dec(b, sent[i]) != msg:
                    raise BenchmarkError("out_of_order: wrong plaintext")

        return Case(run)

    async def _handshake(self) -> Case:
        handshake, msg = self.handshake, MESSAGE

        async def run(published: P) -> None:
            if (await handshake(published, msg))[2] != msg:
                raise BenchmarkError("handshake: wrong plaintext")

        return Case(run, prep=self.publish)

    async def _state_save_load(self) -> Case:
        a, b = await self.start()
        enc, dec, msg = self.encrypt, self.decrypt, MESSAGE
        for _ in range(STATE_ROUND_TRIPS):
            _check(await dec(b, await enc(a, msg)), "state_save_load setup")
            _check(await dec(a, await enc(b, msg)), "state_save_load setup")
        late = [await enc(a, msg) for _ in range(STATE_LATE_MESSAGES)]
        _check(await dec(b, late[-1]), "state_save_load setup")
        save, load = self.save, self.load

        async def run(_: object) -> None:
            await load(await save(b))

        async def after() -> None:
            loaded = await load(await save(b))
            for message in late[:-1]:
                _check(await dec(loaded, message), "state_save_load (skipped key after load)")
            _check(await dec(a, await enc(loaded, msg)), "state_save_load (reply after load)")

        return Case(run, after=after)
