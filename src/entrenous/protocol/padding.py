"""Length hiding: Padmé padding (Nikitin et al., PETS 2019) with an ISO/IEC 7816-4 terminator.

A plaintext of L bytes becomes ``L || 0x80 || 0x00 ...`` of length ``padme(max(L + 1, 64))``.
Padmé rounds a length up so that only its top ``floor(log2(floor(log2(n)))) + 1`` bits survive:
it leaks O(log log n) bits of the length, and costs at most 12.5% overhead for lengths of 64
bytes and more (64 pads to 72), less as messages grow (1 KiB pads to 1,088). Every plaintext
shorter than 64 bytes pads to 64 bytes, so short messages ("yes", "ok", a button press) are
indistinguishable.

See spec/envelope.md, ENV-07 and ENV-08.
"""

from __future__ import annotations

from entrenous.errors import MalformedEnvelope
from entrenous.protocol.constants import MIN_PADDED_SIZE


def padded_length(length: int) -> int:
    """The padded size of a plaintext of ``length`` bytes (terminator included)."""
    n = max(length + 1, MIN_PADDED_SIZE)
    e = n.bit_length() - 1  # floor(log2 n)
    s = e.bit_length()  # floor(log2 e) + 1
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def pad(plaintext: bytes) -> bytes:
    """Append the terminator and zero bytes up to :func:`padded_length`."""
    size = padded_length(len(plaintext))
    return plaintext + b"\x80" + bytes(size - len(plaintext) - 1)


def unpad(padded: bytes) -> bytes:
    """Strip the padding; raise :class:`MalformedEnvelope` if it is not well-formed.

    Only ever called on authenticated plaintext, so there is no padding oracle.
    """
    stripped = padded.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(padded) != padded_length(len(stripped) - 1):
        raise MalformedEnvelope("message padding is not well-formed")
    return stripped[:-1]
