"""Saved state cannot make the decoder build more arrays than a valid state holds (ST-02, PK-06).

A canonical msgpack array of empty arrays costs one byte of input per array, and each array
costs the decoder 56 bytes or more: a 16 MiB prekey pool state of empty arrays took 1.2 GB and
15 s to refuse. Decoding now stops at the number of arrays a valid state can hold. Found by
review while writing the state fuzz target (fuzz/targets/fuzz_state.py, whose inputs are
smaller than this).
"""

from __future__ import annotations

import tracemalloc

import pytest

from entrenous.errors import StateError
from entrenous.protocol import wire
from entrenous.protocol.identity import Identity
from entrenous.protocol.prekeys import PrekeyPool
from entrenous.protocol.session import Session


def _empty_arrays(count: int, per_array: int) -> list[object]:
    """``count`` empty arrays, grouped into arrays of ``per_array`` (canonical when packed)."""
    groups = [[[] for _ in range(per_array)] for _ in range(count // per_array)]
    return [1, 1, groups, [], []]


def _peak_while(call: object) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(StateError):
            call()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.req("PK-06")
def test_a_pool_state_of_empty_arrays_is_refused_without_building_them() -> None:
    data = wire.pack(_empty_arrays(4_000_000, 100_000))  # 4 MB: 4 million arrays
    identity = Identity.generate()
    peak = _peak_while(lambda: PrekeyPool.from_bytes(data, identity))
    assert peak < 16 * 2**20  # was about 300 MB


@pytest.mark.req("ST-02")
def test_a_session_state_of_empty_arrays_is_refused_without_building_them() -> None:
    data = wire.pack(_empty_arrays(1_000_000, 4_000))  # under MAX_STATE_SIZE: 1 million arrays
    assert len(data) < 2**20
    peak = _peak_while(lambda: Session.from_bytes(data))
    assert peak < 8 * 2**20  # was about 75 MB


def test_valid_states_stay_within_the_budget() -> None:
    """The budgets are not below what a real state holds (the largest shapes are in the unit
    tests of the ratchet and the pool; here the count itself)."""
    assert wire.unpack_array(
        wire.pack([[[]] * 3]),
        max_array_len=3,
        what="x",
        error=StateError,
        max_depth=3,
        max_arrays=5,
    ) == [[[], [], []]]
    with pytest.raises(StateError):
        wire.unpack_array(
            wire.pack([[[]] * 4]),
            max_array_len=4,
            what="x",
            error=StateError,
            max_depth=3,
            max_arrays=5,
        )
