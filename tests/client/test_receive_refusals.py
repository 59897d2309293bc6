"""receive() accepts every genuine envelope and refuses every other one with a typed error,
storing nothing (API-03).

"Nothing" is checked on the logical state read through the client's own connections (every row
of the store and of the data-key file, the conversation list, every history): the raw files may
change on a rolled-back transaction (WAL index), their contents may not. After each refusal the
genuine envelope is still accepted, which shows that the in-memory state did not move either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest
from store_support import Pair, logical_state

from entrenous import Client
from entrenous.errors import (
    EntrenousError,
    EnvelopeTooLarge,
    MalformedEnvelope,
    PeerError,
    ReplayError,
    UnknownConversation,
)
from entrenous.protocol import Identity, Session
from entrenous.protocol.constants import MAX_ENVELOPE_SIZE


def refused(
    client: Client, envelope: bytes, expected: type[EntrenousError] = EntrenousError
) -> EntrenousError:
    """Receive ``envelope``, expect ``expected``, and check that the client stored nothing."""
    before = logical_state(client)
    with pytest.raises(expected) as caught:
        client.receive(envelope)
    assert logical_state(client) == before
    return caught.value


@pytest.fixture
def in_flight(pair: Pair) -> list[bytes]:
    """Three customer envelopes; the bank has received the first two."""
    envelopes = [pair.customer_conv.send(f"m{n}") for n in range(3)]
    pair.bank.receive(envelopes[0])
    pair.bank.receive(envelopes[1])
    return envelopes


# --- genuine envelopes are accepted --------------------------------------------------------------


@pytest.mark.req("API-03")
def test_first_envelope_and_every_later_one_are_accepted_in_any_order(
    pair: Pair, tmp_path: Path
) -> None:
    with Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer:
        conv = newcomer.start_conversation(pair.bank.prekey_bundle())
        envelopes = [conv.send(f"n{n}") for n in range(4)]  # all initial-kind: no reply yet
        first = pair.bank.receive(envelopes[2])
        assert first.new_conversation
        later = [pair.bank.receive(e) for e in (envelopes[0], envelopes[3], envelopes[1])]
        assert all(r.conversation == first.conversation for r in later)
        assert not any(r.new_conversation for r in later)
        assert [r.message.text for r in later] == ["n0", "n3", "n1"]
        assert len(first.conversation.history()) == 4
        newcomer.receive(first.conversation.send("reply"))
        after_reply = conv.send("after reply")
        assert pair.bank.receive(after_reply).message.text == "after reply"


# --- duplicates and replays ----------------------------------------------------------------------


@pytest.mark.req("API-03")
def test_a_duplicate_delivery_is_refused(pair: Pair, in_flight: list[bytes]) -> None:
    refused(pair.bank, in_flight[1], ReplayError)
    assert pair.bank.receive(in_flight[2]).message.text == "m2"


@pytest.mark.req("API-03")
def test_a_replay_of_an_older_envelope_is_refused(pair: Pair, in_flight: list[bytes]) -> None:
    pair.bank.receive(in_flight[2])
    refused(pair.bank, in_flight[0], ReplayError)
    refused(pair.bank, in_flight[2], ReplayError)


@pytest.mark.req("API-03")
def test_a_replayed_initial_envelope_is_refused(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer:
        conv = newcomer.start_conversation(pair.bank.prekey_bundle())
        initial = conv.send("first")
        pair.bank.receive(initial)
        refused(pair.bank, initial, ReplayError)
        newcomer.receive(pair.bank.conversations()[0].send("reply"))
        pair.bank.receive(conv.send("later"))
        refused(pair.bank, initial, ReplayError)  # still, after the session moved on


@pytest.mark.req("API-03")
def test_a_reflected_envelope_is_refused(pair: Pair) -> None:
    """The bank's own envelope sent back to it."""
    envelope = pair.bank_conv.send("to the customer")
    refused(pair.bank, envelope)
    assert pair.customer.receive(envelope).message.text == "to the customer"


# --- tampering -----------------------------------------------------------------------------------


@pytest.mark.req("API-03")
def test_every_single_bit_flip_is_refused(pair: Pair, in_flight: list[bytes]) -> None:
    genuine = in_flight[2]
    before = logical_state(pair.bank)
    for index in range(len(genuine)):
        tampered = bytearray(genuine)
        tampered[index] ^= 1 << (index % 8)
        with pytest.raises(EntrenousError):
            pair.bank.receive(bytes(tampered))
        assert pair.bank._store._connection.in_transaction is False
    assert logical_state(pair.bank) == before
    assert pair.bank.receive(genuine).message.text == "m2"


@pytest.mark.req("API-03")
def test_bit_flips_in_an_initial_envelope_are_refused(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer:
        genuine = newcomer.start_conversation(pair.bank.prekey_bundle()).send("first")
    before = logical_state(pair.bank)
    pool = pair.bank._store.load_secret("prekeys")
    for index in range(0, len(genuine), 7):
        tampered = bytearray(genuine)
        tampered[index] ^= 0x80 >> (index % 8)
        with pytest.raises(EntrenousError):
            pair.bank.receive(bytes(tampered))
    assert logical_state(pair.bank) == before
    assert pair.bank._store.load_secret("prekeys") == pool
    assert pair.bank.receive(genuine).new_conversation


CUTS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda e: b"",
    "one byte": lambda e: e[:1],
    "header only": lambda e: e[:20],
    "half": lambda e: e[: len(e) // 2],
    "all but one byte": lambda e: e[:-1],
    "all but the tag": lambda e: e[:-16],
}


@pytest.mark.req("API-03")
@pytest.mark.parametrize("cut", CUTS.values(), ids=list(CUTS))
def test_a_truncated_envelope_is_refused(
    cut: Callable[[bytes], bytes], pair: Pair, in_flight: list[bytes]
) -> None:
    refused(pair.bank, cut(in_flight[2]))
    assert pair.bank.receive(in_flight[2]).message.text == "m2"


@pytest.mark.req("API-03")
@pytest.mark.parametrize("suffix", [b"\x00", b"\xc0", os.urandom(32)], ids=["zero", "nil", "32"])
def test_an_envelope_with_trailing_bytes_is_refused(
    suffix: bytes, pair: Pair, in_flight: list[bytes]
) -> None:
    refused(pair.bank, in_flight[2] + suffix, MalformedEnvelope)
    assert pair.bank.receive(in_flight[2]).message.text == "m2"


@pytest.mark.req("API-03")
@pytest.mark.parametrize("size", [MAX_ENVELOPE_SIZE + 1, 70 * 1024, 1024 * 1024])
def test_an_oversized_envelope_is_refused_unparsed(
    size: int, pair: Pair, in_flight: list[bytes]
) -> None:
    padded = in_flight[2] + bytes(size - len(in_flight[2]))
    error = refused(pair.bank, padded, EnvelopeTooLarge)
    assert isinstance(error, EnvelopeTooLarge)
    assert (error.limit, error.value) == (MAX_ENVELOPE_SIZE, size)
    assert pair.bank.receive(in_flight[2]).message.text == "m2"


GARBAGE = {
    "random 16": os.urandom(16),
    "random 200": os.urandom(200),
    "random 4000": os.urandom(4000),
    "msgpack string": msgpack.packb("hello"),
    "msgpack empty array": msgpack.packb([]),
    "msgpack ints": msgpack.packb([1, 2, 3, 4, 5, 6, 7]),
    "msgpack map": msgpack.packb({"session": b"x" * 16}),
    "zeros": bytes(300),
}


@pytest.mark.req("API-03")
@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=list(GARBAGE))
def test_garbage_is_refused(garbage: bytes, pair: Pair) -> None:
    refused(pair.bank, garbage)


# --- envelopes of conversations we do not have ------------------------------------------------


@pytest.fixture
def strangers(tmp_path: Path) -> Iterator[tuple[Client, Client]]:
    with (
        Client.open(tmp_path / "c.db", key=os.urandom(32)) as c,
        Client.open(tmp_path / "d.db", key=os.urandom(32)) as d,
    ):
        yield c, d


@pytest.mark.req("API-03")
def test_a_later_envelope_of_an_unrelated_conversation_is_unknown(
    pair: Pair, strangers: tuple[Client, Client]
) -> None:
    c, d = strangers
    received = d.receive(c.start_conversation(d.prekey_bundle()).send("hi"))
    not_initial = received.conversation.send("reply")  # D's reply: a non-initial envelope
    refused(pair.bank, not_initial, UnknownConversation)


@pytest.mark.req("API-03")
def test_an_initial_envelope_meant_for_someone_else_is_refused(
    pair: Pair, strangers: tuple[Client, Client]
) -> None:
    c, d = strangers
    envelope = c.start_conversation(d.prekey_bundle()).send("for d")
    error = refused(pair.bank, envelope)
    assert isinstance(error, PeerError)
    assert d.receive(envelope).message.text == "for d"


# --- authentic envelopes whose content is not a valid message ----------------------------------


def payload(content: bytes, *, kind: int = 1, message_id: bytes | None = None) -> bytes:
    """A message payload as spec/client.md lays it out, encoded independently with msgpack."""
    fields = [1, kind, message_id or os.urandom(16), 1_700_000_000_000, content]
    packed = msgpack.packb(fields, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


@pytest.fixture
def raw_peer(pair: Pair) -> Session:
    """A peer speaking the protocol directly (no Client), in a conversation with the bank."""
    session = Session.initiate(Identity.generate(), pair.bank.prekey_bundle())
    assert pair.bank.receive(session.encrypt(payload(b"hello"))).new_conversation
    return session


BAD_PAYLOADS = {
    "not msgpack": b"\xc1\xc1\xc1",
    "empty": b"",
    "version 2": msgpack.packb([2, 1, bytes(16), 0, b"x"], use_bin_type=True),
    "unknown kind": payload(b"x", kind=3),
    "text not UTF-8": payload(b"\xff\xfe"),
    "data not JSON": payload(b"{", kind=2),
    "data a JSON list": payload(b"[1,2]", kind=2),
    "content too large": payload(b"x" * 40_000),
    "short message id": msgpack.packb([1, 1, bytes(8), 0, b"x"], use_bin_type=True),
    "negative time": msgpack.packb([1, 1, bytes(16), -1, b"x"], use_bin_type=True),
    "extra field": msgpack.packb([1, 1, bytes(16), 0, b"x", b"y"], use_bin_type=True),
}


@pytest.mark.req("API-03", "API-04")
@pytest.mark.parametrize("plaintext", BAD_PAYLOADS.values(), ids=list(BAD_PAYLOADS))
def test_an_authentic_envelope_with_a_bad_payload_is_refused(
    plaintext: bytes, pair: Pair, raw_peer: Session
) -> None:
    refused(pair.bank, raw_peer.encrypt(plaintext), MalformedEnvelope)
    assert pair.bank.receive(raw_peer.encrypt(payload(b"fine"))).message.text == "fine"


@pytest.mark.req("API-03")
def test_a_bad_payload_in_the_first_envelope_creates_no_conversation(pair: Pair) -> None:
    bundle = pair.bank.prekey_bundle()
    session = Session.initiate(Identity.generate(), bundle)
    refused(pair.bank, session.encrypt(b"not a payload"), MalformedEnvelope)
    retry = Session.initiate(Identity.generate(), bundle)  # the one-time prekey is still there
    assert pair.bank.receive(retry.encrypt(payload(b"hello"))).new_conversation


@pytest.mark.req("API-03")
def test_a_reused_message_id_is_a_peer_error(pair: Pair, raw_peer: Session) -> None:
    message_id = os.urandom(16)
    pair.bank.receive(raw_peer.encrypt(payload(b"one", message_id=message_id)))
    error = refused(pair.bank, raw_peer.encrypt(payload(b"two", message_id=message_id)))
    assert isinstance(error, PeerError), type(error).__name__
