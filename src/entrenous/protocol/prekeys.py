"""The responder's prekeys: signed prekeys with rotation, one-time prekeys, and replay memory.

A :class:`PrekeyPool` holds every private prekey a party has published:

* **generations**: a signed X25519 prekey and a last-resort ML-KEM-768 prekey, created together.
  The current generation is replaced after :data:`SIGNED_PREKEY_ROTATION` (or on demand); a
  replaced one is kept for :data:`SIGNED_PREKEY_GRACE` so that initial messages built from an
  older bundle still arrive, then deleted (PK-02).
* **one-time prekeys**: an X25519 key and an ML-KEM-768 key per issued bundle. Each is deleted
  when a handshake consumes it, so it serves exactly once (PK-03).
* **replay memory**: a handshake that used no one-time key (a last-resort bundle) could be
  replayed; its session id is remembered for as long as the generation it used is kept, and a
  second initial message with the same id is refused (PK-04).

The pool changes only through its methods; a handshake asks for keys with :meth:`lookup` and
commits with :meth:`consume` only after the first message authenticated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from entrenous._primitives.dh import X25519PrivateKey
from entrenous._primitives.kem import KemPrivateKey
from entrenous.errors import PrekeyConsumed, ReplayError, StateError, UnknownPrekey, UsageError
from entrenous.protocol import wire
from entrenous.protocol.bundle import encode_bundle
from entrenous.protocol.constants import (
    MAX_GENERATIONS,
    MAX_ONE_TIME_PREKEYS,
    MAX_POOL_STATE_SIZE,
    MAX_REPLAY_CACHE,
    MAX_UINT32,
    PREKEY_POOL_VERSION,
    SIGNED_PREKEY_GRACE,
    SIGNED_PREKEY_ROTATION,
)
from entrenous.protocol.identity import Identity


@dataclass(slots=True)
class _Generation:
    signed_prekey_id: int
    signed_prekey: X25519PrivateKey
    kem_prekey_id: int
    kem_prekey: KemPrivateKey
    created_at: int
    replaced_at: int | None = None
    # Insertion-ordered set of the session ids of last-resort handshakes (dict keys).
    seen_sessions: dict[bytes, None] = field(default_factory=dict)

    def retired_at(self) -> int:
        """When this generation stopped being current: replaced, or due for rotation."""
        due = self.created_at + SIGNED_PREKEY_ROTATION
        return due if self.replaced_at is None else min(self.replaced_at, due)

    def expired(self, now: int) -> bool:
        """True once the grace period after retirement is over (PK-02)."""
        return now >= self.retired_at() + SIGNED_PREKEY_GRACE


@dataclass(frozen=True, slots=True, eq=False)
class PrekeyLookup:
    """The private keys an initial message names, found but not yet consumed."""

    signed_prekey: X25519PrivateKey
    one_time_prekey: X25519PrivateKey | None
    kem_prekey: KemPrivateKey
    kem_one_time: bool
    _generation: _Generation
    _one_time_prekey_id: int | None
    _kem_prekey_id: int

    def __repr__(self) -> str:
        return (
            f"PrekeyLookup(one_time_prekey_id={self._one_time_prekey_id}, "
            f"kem_prekey_id={self._kem_prekey_id})"
        )


class PrekeyPool:
    """Private prekeys of one identity, with rotation and one-time consumption.

    Create with :meth:`create`, issue bundles with :meth:`issue_bundle` (fresh one-time keys) or
    :meth:`last_resort_bundle`, save with :meth:`to_bytes`. The repr shows counts only.
    """

    __slots__ = ("_generations", "_identity", "_next_id", "_one_time", "_one_time_kem")

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._generations: list[_Generation] = []  # current first
        self._one_time: dict[int, X25519PrivateKey] = {}
        self._one_time_kem: dict[int, KemPrivateKey] = {}
        self._next_id = 1

    @classmethod
    def create(cls, identity: Identity, *, now: int) -> PrekeyPool:
        """A new pool with a first generation of signed prekeys."""
        pool = cls(identity)
        pool.rotate(now=now)
        return pool

    # --- issuing -------------------------------------------------------------------------------

    def _new_id(self) -> int:
        if self._next_id > MAX_UINT32:
            raise UsageError("prekey ids exhausted; create a new pool")
        value = self._next_id
        self._next_id += 1
        return value

    def rotate(self, *, now: int) -> None:
        """Start a new generation now; the previous one enters its grace period."""
        _check_time(now)
        if self._generations:
            current = self._generations[0]
            current.replaced_at = min(now, current.retired_at())
        generation = _Generation(
            signed_prekey_id=self._new_id(),
            signed_prekey=X25519PrivateKey.generate(),
            kem_prekey_id=self._new_id(),
            kem_prekey=KemPrivateKey.generate(),
            created_at=now,
        )
        self._generations.insert(0, generation)
        del self._generations[MAX_GENERATIONS:]
        self.expire(now=now)

    def expire(self, *, now: int) -> None:
        """Delete replaced generations whose grace period is over (and their replay memory).

        The current generation stays until :meth:`rotate` replaces it; once it is past its
        rotation age plus the grace period, :meth:`lookup` refuses it all the same.
        """
        _check_time(now)
        current, *older = self._generations
        self._generations = [current, *(g for g in older if not g.expired(now))]

    def maintain(self, *, now: int) -> bool:
        """Rotate if the signed prekey is due, and expire old generations.

        Returns True if the pool changed (the caller saves it, and republishes bundles).
        """
        _check_time(now)
        before = [g.signed_prekey_id for g in self._generations]
        self._maintain(now)
        return [g.signed_prekey_id for g in self._generations] != before

    def _maintain(self, now: int) -> _Generation:
        _check_time(now)
        current = self._generations[0]
        if now - current.created_at >= SIGNED_PREKEY_ROTATION:
            self.rotate(now=now)
        else:
            self.expire(now=now)
        return self._generations[0]

    def issue_bundle(self, *, now: int) -> bytes:
        """A signed bundle with a fresh one-time X25519 prekey and a one-time ML-KEM prekey.

        Rotates the signed prekey first when it is older than the rotation age. Give each bundle
        to one initiator; when the directory runs out, serve :meth:`last_resort_bundle`.
        """
        generation = self._maintain(now)
        opk_id, opk = self._new_id(), X25519PrivateKey.generate()
        kem_id, kem = self._new_id(), KemPrivateKey.generate()
        self._one_time[opk_id] = opk
        self._one_time_kem[kem_id] = kem
        self._trim(self._one_time)
        self._trim(self._one_time_kem)
        return encode_bundle(
            self._identity,
            signed_prekey_id=generation.signed_prekey_id,
            signed_prekey=generation.signed_prekey.public_key(),
            one_time_prekey_id=opk_id,
            one_time_prekey=opk.public_key(),
            kem_prekey_id=kem_id,
            kem_prekey=kem.public_key(),
            kem_last_resort=False,
        )

    def last_resort_bundle(self, *, now: int) -> bytes:
        """A signed bundle without one-time keys, for when the one-time keys have run out.

        Handshakes from it lack the one-time prekey's extra forward secrecy (spec/protocol.md);
        their replays are detected by the pool's replay memory.
        """
        generation = self._maintain(now)
        return encode_bundle(
            self._identity,
            signed_prekey_id=generation.signed_prekey_id,
            signed_prekey=generation.signed_prekey.public_key(),
            one_time_prekey_id=None,
            one_time_prekey=None,
            kem_prekey_id=generation.kem_prekey_id,
            kem_prekey=generation.kem_prekey.public_key(),
            kem_last_resort=True,
        )

    @staticmethod
    def _trim(keys: dict[int, X25519PrivateKey] | dict[int, KemPrivateKey]) -> None:
        # Oldest first: dicts keep insertion order and ids only grow.
        while len(keys) > MAX_ONE_TIME_PREKEYS:
            del keys[next(iter(keys))]

    # --- the responder's side of a handshake --------------------------------------------------

    def lookup(
        self,
        *,
        signed_prekey_id: int,
        one_time_prekey_id: int | None,
        kem_prekey_id: int,
        session_id: bytes,
        now: int,
    ) -> PrekeyLookup:
        """Find the private keys an initial message names, without consuming anything.

        Raises :class:`UnknownPrekey` (never issued, or expired), :class:`PrekeyConsumed` (a
        one-time key already used) or :class:`ReplayError` (a last-resort handshake seen before).
        """
        _check_time(now)
        generation = next(
            (g for g in self._generations if g.signed_prekey_id == signed_prekey_id), None
        )
        if generation is None or generation.expired(now):
            raise UnknownPrekey("initial message names an unknown or expired signed prekey")
        one_time: X25519PrivateKey | None = None
        if one_time_prekey_id is not None:
            one_time = self._one_time.get(one_time_prekey_id)
            if one_time is None:
                raise self._missing(one_time_prekey_id)
        if kem_prekey_id == generation.kem_prekey_id:
            kem, kem_one_time = generation.kem_prekey, False
        else:
            found = self._one_time_kem.get(kem_prekey_id)
            if found is None:
                raise self._missing(kem_prekey_id)
            kem, kem_one_time = found, True
        if one_time is None and not kem_one_time:
            if session_id in generation.seen_sessions:
                raise ReplayError("initial message replayed against a last-resort prekey")
            if len(generation.seen_sessions) >= MAX_REPLAY_CACHE:
                # Bounded memory: no more last-resort handshakes on this generation; the next
                # rotation brings a fresh one.
                raise UnknownPrekey("the last-resort prekey's replay memory is full")
        return PrekeyLookup(
            signed_prekey=generation.signed_prekey,
            one_time_prekey=one_time,
            kem_prekey=kem,
            kem_one_time=kem_one_time,
            _generation=generation,
            _one_time_prekey_id=one_time_prekey_id,
            _kem_prekey_id=kem_prekey_id,
        )

    def _missing(self, prekey_id: int) -> UnknownPrekey:
        if prekey_id >= self._next_id:
            return UnknownPrekey("initial message names a prekey that was never issued")
        if any(prekey_id in (g.signed_prekey_id, g.kem_prekey_id) for g in self._generations):
            return UnknownPrekey("initial message names a prekey of the wrong kind")
        return PrekeyConsumed("initial message names a one-time prekey no longer held (consumed)")

    def consume(self, found: PrekeyLookup, *, session_id: bytes, now: int) -> None:
        """Commit a handshake that authenticated: delete its one-time keys, remember replays."""
        if found._one_time_prekey_id is not None:
            self._one_time.pop(found._one_time_prekey_id, None)
        if found.kem_one_time:
            self._one_time_kem.pop(found._kem_prekey_id, None)
        if found.one_time_prekey is None and not found.kem_one_time:
            found._generation.seen_sessions[session_id] = None
        self.expire(now=now)

    # --- state ---------------------------------------------------------------------------------

    @property
    def one_time_prekeys_left(self) -> int:
        """How many issued one-time X25519 prekeys are still unused."""
        return len(self._one_time)

    def to_bytes(self) -> bytes:
        """The versioned private form of the pool. Secret: store it encrypted."""
        return wire.pack(
            [
                PREKEY_POOL_VERSION,
                self._next_id,
                [
                    [
                        g.signed_prekey_id,
                        g.signed_prekey.to_bytes(),
                        g.kem_prekey_id,
                        g.kem_prekey.to_seed(),
                        g.created_at,
                        g.replaced_at,
                        list(g.seen_sessions),
                    ]
                    for g in self._generations
                ],
                [[k, v.to_bytes()] for k, v in self._one_time.items()],
                [[k, v.to_seed()] for k, v in self._one_time_kem.items()],
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes, identity: Identity) -> PrekeyPool:
        """Load a pool saved by :meth:`to_bytes`; raise :class:`StateError` if unreadable."""
        if not isinstance(data, bytes):
            raise TypeError("prekey pool state must be bytes")
        if len(data) > MAX_POOL_STATE_SIZE:
            raise StateError("prekey pool state is larger than any valid state")
        fields = wire.unpack_array(
            data,
            max_array_len=max(MAX_ONE_TIME_PREKEYS, MAX_REPLAY_CACHE) + 1,
            max_depth=4,
            max_arrays=_MAX_POOL_ARRAYS,
            what="prekey pool state",
            error=StateError,
        )
        if not fields or not wire.is_uint(fields[0], 2**16) or fields[0] < 1:
            raise StateError("prekey pool state is not readable")
        if fields[0] > PREKEY_POOL_VERSION:
            raise StateError(
                f"prekey pool state version {fields[0]} is newer than this library supports"
            )
        pool = cls(identity)
        refused = False
        try:
            _, next_id, generations, one_time, one_time_kem = fields
            if not wire.is_uint(next_id, MAX_UINT32 + 1):
                raise ValueError
            pool._next_id = next_id
            for spk_id, spk, kem_id, kem, created, replaced, seen in generations:
                pool._generations.append(
                    _Generation(
                        signed_prekey_id=_uint(spk_id),
                        signed_prekey=X25519PrivateKey(spk),
                        kem_prekey_id=_uint(kem_id),
                        kem_prekey=KemPrivateKey(kem),
                        created_at=_uint(created),
                        replaced_at=None if replaced is None else _uint(replaced),
                        seen_sessions=dict.fromkeys(_bytes16(s) for s in seen),
                    )
                )
            pool._one_time = {_uint(k): X25519PrivateKey(v) for k, v in one_time}
            pool._one_time_kem = {_uint(k): KemPrivateKey(v) for k, v in one_time_kem}
            ids = [
                *(i for g in pool._generations for i in (g.signed_prekey_id, g.kem_prekey_id)),
                *pool._one_time,
                *pool._one_time_kem,
            ]
            # Ids are unique and below the counter, so no id is ever issued twice.
            if len(set(ids)) != len(ids) or (ids and max(ids) >= next_id):
                raise ValueError
            if len(pool._one_time) != len(one_time) or len(pool._one_time_kem) != len(one_time_kem):
                raise ValueError
            if any(len(g.seen_sessions) > MAX_REPLAY_CACHE for g in pool._generations):
                raise ValueError
        except (ValueError, TypeError):
            # Raised below, without the exception caught (its frames hold the private keys).
            refused = True
        if refused:
            raise StateError("prekey pool state is not readable")
        if not pool._generations or len(pool._generations) > MAX_GENERATIONS:
            raise StateError("prekey pool state has no (or too many) signed prekeys")
        return pool

    def __repr__(self) -> str:
        return (
            f"PrekeyPool(generations={len(self._generations)}, "
            f"one_time={len(self._one_time)}, one_time_kem={len(self._one_time_kem)})"
        )


#: Arrays in a valid pool state: the state, its three lists, two per generation (the generation
#: and its replay memory) and one per one-time prekey of each kind.
_MAX_POOL_ARRAYS = 4 + 2 * MAX_GENERATIONS + 2 * MAX_ONE_TIME_PREKEYS


def _check_time(now: int) -> None:
    if type(now) is not int or now < 0:
        raise TypeError("now must be a non-negative int (seconds since the epoch)")


def _uint(value: object) -> int:
    if not isinstance(value, int) or not wire.is_uint(value, 2**63):
        raise ValueError("expected an unsigned integer")
    return value


def _bytes16(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != 16:
        raise ValueError("expected 16 bytes")
    return value
