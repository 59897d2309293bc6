"""Unit tests for :mod:`entrenous._primitives.rand` and its private test seam."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from entrenous._primitives import rand
from entrenous._primitives.dh import X25519PrivateKey
from entrenous._primitives.kem import KemPrivateKey
from entrenous._primitives.sign import SigningKey

Source = Callable[[int], bytes]


@pytest.fixture
def set_source() -> Iterator[Callable[[Source | None], None]]:
    """The seam, restored to the CSPRNG afterwards whatever the test does."""
    assert rand._source is None
    yield rand._set_source
    rand._set_source(None)


def _counting(start: int = 0) -> Source:
    state = {"next": start}

    def source(n: int) -> bytes:
        out = bytes((state["next"] + i) % 256 for i in range(n))
        state["next"] += n
        return out

    return source


@pytest.mark.parametrize("n", [0, 1, 12, 32, 64, 1000])
def test_random_bytes_length(n: int) -> None:
    out = rand.random_bytes(n)
    assert type(out) is bytes
    assert len(out) == n


def test_random_bytes_differ() -> None:
    assert len({rand.random_bytes(32) for _ in range(16)}) == 16


def test_seam_replaces_the_source(set_source: Callable[[Source | None], None]) -> None:
    set_source(lambda n: b"\x07" * n)
    assert rand.random_bytes(5) == b"\x07" * 5
    assert rand.random_bytes(0) == b""


def test_every_generator_draws_from_the_seam(set_source: Callable[[Source | None], None]) -> None:
    set_source(_counting())
    x = X25519PrivateKey.generate()
    s = SigningKey.generate()
    k = KemPrivateKey.generate()
    assert x.to_bytes() == bytes(range(32))
    assert s.to_seed() == bytes(range(32, 64))
    assert k.to_seed() == bytes(range(64, 128))

    # Same seam, same keys: this is what makes generated vectors reproducible.
    set_source(_counting())
    assert X25519PrivateKey.generate().public_key() == x.public_key()
    assert SigningKey.generate().verify_key == s.verify_key
    assert KemPrivateKey.generate().public_key().to_bytes() == k.public_key().to_bytes()


@pytest.mark.parametrize("wrong", [lambda n: b"", lambda n: bytes(n + 1), lambda n: bytes(n - 1)])
def test_seam_returning_the_wrong_length_is_refused(
    set_source: Callable[[Source | None], None], wrong: Source
) -> None:
    set_source(wrong)
    with pytest.raises(RuntimeError, match="wrong number of bytes"):
        rand.random_bytes(32)
    with pytest.raises(RuntimeError, match="wrong number of bytes"):
        X25519PrivateKey.generate()


def test_restoring_the_seam_restores_the_csprng(
    set_source: Callable[[Source | None], None],
) -> None:
    set_source(bytes)
    assert rand.random_bytes(32) == bytes(32)
    set_source(None)
    assert rand._source is None
    assert rand.random_bytes(32) != bytes(32)
    assert rand.random_bytes(32) != rand.random_bytes(32)
