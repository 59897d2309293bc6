"""Strict, bounded msgpack decoding shared by every wire and state format.

Rules (spec/envelope.md, ENV-02..ENV-05):

* the size is checked before a byte is parsed;
* msgpack's own limits cap every container and byte string during parsing, and nested formats
  cap the number of arrays (``max_arrays``), so no input makes the decoder allocate beyond the
  size of the input or the documented caps (an array costs the decoder 56 bytes or more for each
  byte of input: a 16 MiB state of empty arrays took 1.2 GB before the cap);
* only the types a format uses are accepted; maps, strings, floats and extension types are not;
* the encoding must be canonical: re-encoding the decoded value gives back the input byte for
  byte. This refuses trailing bytes, over-long integer or length encodings and reordered or
  duplicated fields, so one value has exactly one valid encoding.

This module imports only :mod:`msgpack`, :mod:`entrenous.errors` and the standard library.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import msgpack

from entrenous.errors import PeerError, StateError

#: One packer per thread: ``msgpack.packb`` sets a new one up (and its buffer) on every call,
#: half the cost of packing a message. A packer resets itself after each value, also after one
#: it refused, and is not shared between threads.
_local = threading.local()


#: A packer whose last value was larger than this is dropped, so that a thread does not keep a
#: large buffer (holding the bytes it last packed) for its lifetime.
_KEEP_PACKER_BELOW = 64 * 1024


def pack(value: Any) -> bytes:
    """The canonical encoding of ``value`` (bin type for bytes, smallest integer form)."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    packed = cast(bytes, packer.pack(value))
    if len(packed) > _KEEP_PACKER_BELOW:
        del _local.packer
    return packed


def unpack_array(
    data: bytes,
    *,
    max_array_len: int,
    what: str,
    error: type[PeerError] | type[StateError],
    max_depth: int = 1,
    max_arrays: int | None = None,
) -> list[Any]:
    """Decode ``data`` as one canonical msgpack array, or raise ``error`` naming ``what``.

    ``max_depth`` is the deepest nesting of arrays allowed (1: a flat array of scalars).
    ``max_arrays`` (nested formats) is the most arrays a valid value holds, the outer one
    included: decoding stops as soon as the input has more. The caller has already checked
    ``len(data)`` against its format's maximum size.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"{what} must be bytes, got {type(data).__name__}")
    refused = False
    try:
        value = msgpack.unpackb(
            data,
            raw=True,
            use_list=True,
            list_hook=None if max_arrays is None else _ArrayBudget(max_arrays),
            max_bin_len=len(data),
            max_str_len=0,
            max_array_len=max_array_len,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.exceptions.UnpackException):
        # Covers truncation, trailing bytes (ExtraData), forbidden types and exceeded limits.
        refused = True
    if refused:
        # Raised here, not in the except block: msgpack's exception (ExtraData holds the whole
        # decoded value) must not ride along as __context__, for the input may be a saved state
        # with its keys, or a decrypted payload (LEAK-03).
        raise error(f"{what} is not well-formed")
    if type(value) is not list:
        raise error(f"{what} is not well-formed")
    if not _only_known_types(value, max_depth):
        raise error(f"{what} is not well-formed")
    if pack(value) != data:
        raise error(f"{what} is not in canonical form")
    return value


_SCALARS = frozenset({bytes, int, bool, type(None)})


class _ArrayBudget:
    """A ``list_hook`` that counts the arrays decoded and stops the decoder past a budget."""

    __slots__ = ("_left",)

    def __init__(self, budget: int) -> None:
        self._left = budget

    def __call__(self, items: list[Any]) -> list[Any]:
        self._left -= 1
        if self._left < 0:
            raise ValueError("too many arrays")  # caught by unpack_array: not well-formed
        return items


def _only_known_types(value: list[Any], max_depth: int) -> bool:
    """True if ``value`` holds only bytes, ints, bools, nil and arrays up to ``max_depth``."""
    if max_depth == 1:  # the envelope and bundle case, on the hot path
        return _SCALARS.issuperset(map(type, value))
    # Iterative, so that no input can exhaust the interpreter's recursion limit.
    stack: list[tuple[list[Any], int]] = [(value, 1)]
    while stack:
        items, depth = stack.pop()
        for item in items:
            if type(item) is list:
                if depth >= max_depth:
                    return False
                stack.append((item, depth + 1))
            elif type(item) not in _SCALARS:
                return False
    return True


def is_uint(value: Any, maximum: int) -> bool:
    """True for a plain ``int`` (not ``bool``) in ``0..maximum``."""
    return type(value) is int and 0 <= value <= maximum


def is_bytes(value: Any, size: int | None = None, *, max_size: int | None = None) -> bool:
    """True for ``bytes`` of exactly ``size`` bytes, or at most ``max_size`` bytes."""
    if type(value) is not bytes:
        return False
    if size is not None and len(value) != size:
        return False
    return max_size is None or len(value) <= max_size


def bin_header_size(length: int) -> int:
    """Bytes msgpack's canonical encoding puts before a byte string of ``length`` bytes."""
    if length < 2**8:
        return 2
    if length < 2**16:
        return 3
    return 5
