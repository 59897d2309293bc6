"""Randomness: the operating system's CSPRNG through libsodium, behind one private seam.

Every random byte the library uses comes from :func:`random_bytes`. The seam
:func:`_set_source` replaces the source for the vector generator and the tests only (fixed seeds
make reproducible test vectors); it is never set by the library itself.
"""

from __future__ import annotations

from collections.abc import Callable

import nacl.utils

_source: Callable[[int], bytes] | None = None


def random_bytes(n: int) -> bytes:
    """Return ``n`` bytes from the CSPRNG (or from the seam while a test has set one)."""
    if _source is not None:
        out = _source(n)
        if len(out) != n:
            raise RuntimeError("randomness seam returned the wrong number of bytes")
        return out
    return nacl.utils.random(n)


def _set_source(source: Callable[[int], bytes] | None) -> None:
    """Private seam for vectors and tests: replace the source, or restore it with ``None``."""
    global _source  # noqa: PLW0603 - the seam is this one module-level variable
    _source = source
