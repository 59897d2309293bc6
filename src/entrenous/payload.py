"""The message payload: what the client puts inside an envelope's plaintext.

A canonical msgpack array (spec/client.md)::

    [version (1), kind (1 text | 2 data), message_id bin(16), sent_at uint (ms since the epoch),
     content bin]

``content`` is UTF-8 text for kind 1 and canonical JSON (sorted keys, no spaces) of a mapping for
kind 2. The payload travels end to end, so the message id and the sender's clock are
authenticated; the receiver adds its own receive time. At most :data:`MAX_PAYLOAD_SIZE` bytes of
content are accepted, in both directions (API-04).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from entrenous.errors import MalformedEnvelope, PayloadTooLarge
from entrenous.protocol import wire

PAYLOAD_VERSION = 1
KIND_TEXT = 1
KIND_DATA = 2
#: A control message of the library's own (a disappearing timer, a consent request or answer):
#: canonical JSON of a mapping whose "type" names it.
KIND_CONTROL = 3
#: Largest text (UTF-8) or structured payload (as JSON) one message may carry.
MAX_PAYLOAD_SIZE = 32768
_FIELDS = 5
#: The latest time a payload may carry: 9999-12-31T23:59:59.999Z in milliseconds, the last
#: instant Python's datetime can show (a peer's absurd clock must not crash the receiver).
MAX_TIME_MS = 253402300799999

Content = str | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded payload. Its repr leaves the content out."""

    message_id: bytes
    sent_at: int
    content: Content
    control: bool = False

    @property
    def control_type(self) -> str | None:
        """The type of a control message, else ``None``."""
        if self.control and isinstance(self.content, dict):
            kind = self.content.get("type")
            return kind if isinstance(kind, str) else None
        return None

    def __repr__(self) -> str:
        return f"Payload(message_id={self.message_id.hex()}, sent_at={self.sent_at})"


def encode(
    message_id: bytes, sent_at: int, content: str | Mapping[str, Any], *, control: bool = False
) -> bytes:
    """The payload bytes for ``content``; refuses what cannot travel or is too large.

    ``control`` marks a control message of the library's (a mapping with a str "type").
    """
    if control and not (isinstance(content, Mapping) and isinstance(content.get("type"), str)):
        raise ValueError("a control message is a mapping with a str 'type'")
    # The errors below are raised outside the except blocks: the exception caught (a
    # UnicodeEncodeError holds the whole text) must not ride along as __context__ (LEAK-03).
    refused: str | None = None
    if isinstance(content, str):
        kind = KIND_TEXT
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            refused = "a message text must be valid Unicode (it has a lone surrogate)"
    elif isinstance(content, Mapping):
        _check_keys(content)
        try:
            data = json.dumps(
                content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except UnicodeEncodeError:
            refused = "structured payload is not JSON-compatible: a lone surrogate in a string"
        except (TypeError, ValueError) as exc:
            # json's own messages name types and values' kinds, never the content.
            refused = f"structured payload is not JSON-compatible: {exc}"
        kind = KIND_CONTROL if control else KIND_DATA
    else:
        raise TypeError("a message is a str or a JSON-compatible mapping")
    if refused is not None:
        raise ValueError(refused)
    if len(data) > MAX_PAYLOAD_SIZE:
        raise PayloadTooLarge(MAX_PAYLOAD_SIZE, len(data))
    if not 0 <= sent_at <= MAX_TIME_MS:
        raise ValueError("the clock is outside the years 1970 to 9999")
    return wire.pack([PAYLOAD_VERSION, kind, message_id, sent_at, data])


def _check_keys(value: object, depth: int = 0) -> None:
    """Refuse non-str mapping keys: JSON would silently turn ``{1: "a"}`` into ``{"1": "a"}``."""
    if depth > 64:
        raise ValueError("structured payload is nested too deeply")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("structured payload keys must be str")
            _check_keys(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item, depth + 1)


def decode(data: bytes, *, trusted: bool = False) -> Payload:
    """Parse a payload strictly; :class:`MalformedEnvelope` if the peer sent garbage.

    ``trusted`` skips the canonical-encoding check, for payloads read back from our own store
    (authenticated there by the body AEAD, and strictly parsed when they first arrived).
    """
    if trusted:
        try:
            fields = msgpack.unpackb(data, raw=True, use_list=True)
        except (ValueError, TypeError, msgpack.exceptions.UnpackException):
            fields = None  # raised below, without msgpack's exception (it holds the plaintext)
        if type(fields) is not list:
            raise MalformedEnvelope("message payload is not well-formed")
    else:
        fields = wire.unpack_array(
            data, max_array_len=_FIELDS, what="message payload", error=MalformedEnvelope
        )
    if len(fields) != _FIELDS or fields[0] != PAYLOAD_VERSION or type(fields[0]) is not int:
        raise MalformedEnvelope("message payload is not well-formed")
    _, kind, message_id, sent_at, content = fields
    if not (
        wire.is_bytes(message_id, 16)
        and wire.is_uint(sent_at, MAX_TIME_MS)
        and wire.is_bytes(content, max_size=MAX_PAYLOAD_SIZE)
        and type(kind) is int
    ):
        raise MalformedEnvelope("message payload is not well-formed")
    try:
        text = content.decode("utf-8")
        if kind == KIND_TEXT:
            return Payload(message_id, sent_at, text)
        if kind in (KIND_DATA, KIND_CONTROL):
            value = json.loads(text)
            if isinstance(value, dict):
                if kind == KIND_DATA:
                    return Payload(message_id, sent_at, value)
                if isinstance(value.get("type"), str):
                    return Payload(message_id, sent_at, value, control=True)
    except (UnicodeDecodeError, ValueError, RecursionError):
        pass
    raise MalformedEnvelope("message payload is not well-formed")
