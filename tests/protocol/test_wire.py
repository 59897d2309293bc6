"""The strict msgpack decoder every wire and state format shares (ENV-04, BUN-03, ST-02)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrenous.errors import MalformedBundle, MalformedEnvelope, PeerError, StateError
from entrenous.protocol import wire


def decode(data: bytes, *, depth: int = 1, length: int = 16) -> list[Any]:
    return wire.unpack_array(
        data, max_array_len=length, what="test value", error=MalformedEnvelope, max_depth=depth
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.binary(max_size=300),
)


@pytest.mark.req("ENV-04")
@given(st.lists(scalars, max_size=16))
def test_canonical_flat_arrays_decode_to_themselves(value: list[Any]) -> None:
    data = wire.pack(value)
    assert data == msgpack.packb(value, use_bin_type=True)
    assert decode(data) == value


@pytest.mark.req("ENV-04")
@given(st.lists(scalars, max_size=16), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(value: list[Any], tail: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        decode(wire.pack(value) + tail)


@pytest.mark.req("ENV-04")
@given(st.lists(scalars, min_size=1, max_size=16), st.data())
def test_every_truncation_is_refused(value: list[Any], data: st.DataObject) -> None:
    encoded = wire.pack(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(MalformedEnvelope):
        decode(encoded[:cut])


@pytest.mark.req("ENV-04", "BUN-03", "ST-02")
@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("uint8 for a fixint", b"\x91\xcc\x05"),
        ("uint16 for a uint8", b"\x91\xcd\x00\xff"),
        ("uint32 for a uint16", b"\x91\xce\x00\x00\xff\xff"),
        ("uint64 for a uint32", b"\x91\xcf\x00\x00\x00\x00\xff\xff\xff\xff"),
        ("int8 for a negative fixint", b"\x91\xd0\xff"),
        ("int8 for a positive value", b"\x91\xd0\x05"),
        ("bin16 for a bin8", b"\x91\xc5\x00\x01\x00"),
        ("bin32 for a bin8", b"\x91\xc6\x00\x00\x00\x01\x00"),
        ("array16 for a fixarray", b"\xdc\x00\x01\x01"),
        ("array32 for a fixarray", b"\xdd\x00\x00\x00\x01\x01"),
    ],
)
def test_non_canonical_encodings_are_refused(name: str, data: bytes) -> None:
    # msgpack itself decodes these: only the re-encoding check refuses them.
    assert msgpack.unpackb(data, raw=True) is not None, name
    with pytest.raises(MalformedEnvelope):
        decode(data)


@pytest.mark.req("ENV-04", "BUN-03", "ST-02")
@pytest.mark.parametrize(
    "data",
    [
        b"\x91\xa1x",  # str
        b"\x91\x81\x01\x02",  # map
        b"\x81\x01\x02",  # top-level map
        b"\x91\xca\x00\x00\x00\x00",  # float32
        b"\x91\xd4\x01\x00",  # fixext
        b"\x91\xc7\x01\x01\x00",  # ext8
        b"\x91\xc1",  # never used
        b"\x05",  # not an array
        b"\xc4\x01\x00",  # a bare bin
        b"",
    ],
)
def test_forbidden_types_and_non_arrays_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        decode(data)


@pytest.mark.req("ENV-04", "ST-02")
@pytest.mark.parametrize("value", [0.0, 1.5, -2.25])
def test_canonical_float64_is_refused(value: float) -> None:
    data = wire.pack([value])
    assert data[1] == 0xCB
    with pytest.raises(MalformedEnvelope):
        decode(data)


@pytest.mark.req("ENV-04")
def test_float_in_any_envelope_field_is_malformed() -> None:
    from protocol_support import established

    from entrenous.protocol import parse_envelope

    fields = msgpack.unpackb(established()[0].encrypt(b""), raw=True)
    for index in range(len(fields)):
        changed = list(fields)
        changed[index] = 1.0
        with pytest.raises(MalformedEnvelope):
            parse_envelope(wire.pack(changed))


@pytest.mark.req("ENV-04", "ST-02")
def test_nesting_is_bounded_by_max_depth() -> None:
    assert decode(wire.pack([1, [2]]), depth=2) == [1, [2]]
    with pytest.raises(MalformedEnvelope):
        decode(wire.pack([1, [2]]), depth=1)
    deep: list[Any] = []
    for _ in range(5):
        deep = [deep]
    assert decode(wire.pack(deep), depth=6) == deep
    with pytest.raises(MalformedEnvelope):
        decode(wire.pack(deep), depth=5)
    # Far deeper than the interpreter's recursion limit: refused, not a RecursionError.
    very_deep = b"\x91" * 100_000 + b"\x90"
    with pytest.raises(MalformedEnvelope):
        decode(very_deep, depth=5)


@pytest.mark.req("ENV-04", "ST-02")
def test_array_and_byte_string_lengths_are_capped() -> None:
    assert decode(wire.pack(list(range(16)))) == list(range(16))
    with pytest.raises(MalformedEnvelope):
        decode(wire.pack(list(range(17))))
    # A header announcing more than the input holds is refused without allocating it.
    with pytest.raises(MalformedEnvelope):
        decode(b"\x91\xc6\xff\xff\xff\xff")
    with pytest.raises(MalformedEnvelope):
        decode(b"\xdd\xff\xff\xff\xff", length=2**32)


@pytest.mark.req("ST-02", "BUN-03")
def test_the_error_class_is_the_callers() -> None:
    for error in (MalformedEnvelope, MalformedBundle, StateError):
        with pytest.raises(error):
            wire.unpack_array(b"\x91\xcc\x05", max_array_len=4, what="x", error=error)
    assert issubclass(MalformedBundle, PeerError)


def test_non_bytes_input_is_a_type_error() -> None:
    for bad in (bytearray(b"\x90"), memoryview(b"\x90"), "\x90", None):
        with pytest.raises(TypeError):
            wire.unpack_array(bad, max_array_len=1, what="x", error=StateError)  # type: ignore[arg-type]


def test_scalar_predicates() -> None:
    assert wire.is_uint(0, 5)
    assert wire.is_uint(5, 5)
    assert not wire.is_uint(6, 5)
    assert not wire.is_uint(-1, 5)
    assert not wire.is_uint(True, 5)
    assert not wire.is_uint(b"\x01", 5)
    assert wire.is_bytes(b"ab", 2)
    assert not wire.is_bytes(b"ab", 3)
    assert not wire.is_bytes(bytearray(b"ab"), 2)
    assert wire.is_bytes(b"ab", max_size=2)
    assert not wire.is_bytes(b"abc", max_size=2)
    for length in (0, 1, 255, 256, 65535, 65536):
        assert wire.bin_header_size(length) == len(wire.pack(bytes(length))) - length


def test_a_large_value_does_not_leave_its_buffer_with_the_thread() -> None:
    from entrenous.protocol import wire

    wire.pack([b"x" * 10])
    assert hasattr(wire._local, "packer")
    big = wire.pack([b"x" * (wire._KEEP_PACKER_BELOW + 1)])
    assert len(big) > wire._KEEP_PACKER_BELOW
    assert not hasattr(wire._local, "packer")
    assert wire.pack([b"x" * 10]) == wire.pack([b"x" * 10])
