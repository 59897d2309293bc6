"""Messages carry text or a JSON-compatible mapping of at most MAX_PAYLOAD_SIZE bytes, with id,
sender, direction, sent_at and received_at (API-04)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from store_support import Pair, logical_state

from entrenous import Client, Message
from entrenous.errors import PayloadTooLarge
from entrenous.payload import MAX_PAYLOAD_SIZE

STRUCTURED: dict[str, Any] = {
    "text": "Gern!",
    "buttons": ["Konto", "Karte"],
    "nested": {"ä": [1, 2.5, True, None, {"deep": "ü€😀"}]},
    "empty": {},
}


@pytest.mark.req("API-04")
def test_a_text_message_carries_its_fields_on_both_sides(pair: Pair) -> None:
    envelope = pair.customer_conv.send("Grüezi 😀")
    sent = pair.customer_conv.history(limit=1)[0]
    received = pair.bank.receive(envelope).message
    stored = pair.bank_conv.history(limit=1)[0]
    assert received == stored
    assert (sent.text, received.text) == ("Grüezi 😀", "Grüezi 😀")
    assert sent.data is None
    assert sent.id == received.id
    assert len(bytes.fromhex(sent.id)) == 16
    assert (sent.direction, received.direction) == ("sent", "received")
    assert sent.sender == received.sender == pair.customer.identity
    assert sent.conversation_id == pair.customer_conv.id
    assert received.conversation_id == pair.bank_conv.id
    assert sent.sent_at == received.sent_at  # the sender's clock, carried end to end
    assert sent.received_at is None
    assert isinstance(received.received_at, datetime)
    assert received.sent_at.tzinfo is not None


@pytest.mark.req("API-04")
def test_a_structured_message_arrives_equal(pair: Pair) -> None:
    received = pair.bank.receive(pair.customer_conv.send(STRUCTURED)).message
    assert received.data == STRUCTURED
    assert received.text is None
    assert pair.customer_conv.history(limit=1)[0].data == STRUCTURED
    assert pair.bank_conv.history(limit=1)[0].data == STRUCTURED


@pytest.mark.req("API-04")
def test_message_ids_are_unique(pair: Pair) -> None:
    envelopes = [pair.customer_conv.send("same text") for _ in range(20)]
    ids = {pair.bank.receive(e).message.id for e in envelopes}
    assert len(ids) == 20


@pytest.mark.req("API-04")
def test_the_repr_of_a_message_leaves_the_content_out(pair: Pair) -> None:
    message: Message = pair.bank.receive(pair.customer_conv.send("secret-content")).message
    assert "secret-content" not in repr(message)


def _max_text() -> str:
    return "é" * (MAX_PAYLOAD_SIZE // 2)  # two UTF-8 bytes each: exactly the limit


@pytest.mark.req("API-04")
@pytest.mark.parametrize(
    "content",
    [
        "x" * MAX_PAYLOAD_SIZE,
        _max_text(),
        {"k": "x" * (MAX_PAYLOAD_SIZE - len('{"k":""}'))},
    ],
    ids=["ascii", "two-byte", "mapping"],
)
def test_content_of_exactly_the_limit_is_carried(content: Any, pair: Pair) -> None:
    assert pair.bank.receive(pair.customer_conv.send(content)).message.content == content


@pytest.mark.req("API-04")
def test_the_largest_message_fits_a_first_envelope(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer:
        conv = newcomer.start_conversation(pair.bank.prekey_bundle())
        received = pair.bank.receive(conv.send(_max_text()))
    assert received.new_conversation
    assert received.message.text == _max_text()


@pytest.mark.req("API-04")
@pytest.mark.parametrize(
    ("content", "size"),
    [
        ("x" * (MAX_PAYLOAD_SIZE + 1), MAX_PAYLOAD_SIZE + 1),
        (_max_text() + "x", MAX_PAYLOAD_SIZE + 1),
        ("€" * MAX_PAYLOAD_SIZE, 3 * MAX_PAYLOAD_SIZE),
        ({"k": "x" * MAX_PAYLOAD_SIZE}, MAX_PAYLOAD_SIZE + len('{"k":""}')),
    ],
    ids=["ascii+1", "two-byte+1", "three-byte", "mapping"],
)
def test_too_large_content_raises_payload_too_large_and_sends_nothing(
    content: Any, size: int, pair: Pair
) -> None:
    before = logical_state(pair.customer)
    with pytest.raises(PayloadTooLarge) as caught:
        pair.customer_conv.send(content)
    assert (caught.value.limit, caught.value.value) == (MAX_PAYLOAD_SIZE, size)
    assert logical_state(pair.customer) == before
    # The ratchet did not move: the next message is the next one the bank expects.
    assert pair.bank.receive(pair.customer_conv.send("after")).message.text == "after"


class _Opaque:
    pass


NOT_JSON: dict[str, tuple[object, type[Exception]]] = {
    "list": (["a", "b"], TypeError),
    "bytes": (b"text", TypeError),
    "int": (42, TypeError),
    "None": (None, TypeError),
    "set value": ({"k": {1, 2}}, ValueError),
    "bytes value": ({"k": b"\x00"}, ValueError),
    "object value": ({"k": _Opaque()}, ValueError),
    "NaN": ({"k": float("nan")}, ValueError),
    "infinity": ({"k": float("inf")}, ValueError),
    "tuple key": ({("a", "b"): 1}, ValueError),
    "circular": (None, ValueError),  # built below
}


def _content(name: str) -> object:
    if name == "circular":
        circular: dict[str, object] = {}
        circular["self"] = circular
        return circular
    return NOT_JSON[name][0]


@pytest.mark.req("API-04")
@pytest.mark.parametrize("name", list(NOT_JSON))
def test_content_that_is_not_json_compatible_is_refused(name: str, pair: Pair) -> None:
    before = logical_state(pair.customer)
    with pytest.raises(NOT_JSON[name][1]):
        pair.customer_conv.send(_content(name))  # type: ignore[arg-type]
    assert logical_state(pair.customer) == before
    assert pair.bank.receive(pair.customer_conv.send("after")).message.text == "after"
