"""The clock is injectable and every time the client records comes from it (API-11)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_support import raw_store

from entrenous import Client
from entrenous.errors import UnknownPrekey
from entrenous.protocol import PrekeyBundle

CUSTOMER_TIME = 1_700_000_000.0
BANK_TIME = 1_700_000_123.5
DAY = 24 * 3600


@dataclass
class Clock:
    """A settable clock (seconds since the epoch)."""

    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Clocked:
    bank: Client
    customer: Client
    bank_clock: Clock
    customer_clock: Clock
    bank_key: bytes
    directory: Path


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[Clocked]:
    bank_clock, customer_clock = Clock(BANK_TIME), Clock(CUSTOMER_TIME)
    bank_key = os.urandom(32)
    with (
        Client.open(tmp_path / "bank.db", key=bank_key, clock=bank_clock) as bank,
        Client.open(tmp_path / "customer.db", key=os.urandom(32), clock=customer_clock) as cust,
    ):
        yield Clocked(bank, cust, bank_clock, customer_clock, bank_key, tmp_path)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@pytest.mark.req("API-11")
def test_message_times_come_from_the_injected_clocks(clocked: Clocked) -> None:
    conv = clocked.customer.start_conversation(clocked.bank.prekey_bundle())
    received = clocked.bank.receive(conv.send("hi"))
    sent = conv.history(limit=1)[0]
    assert sent.sent_at == at(CUSTOMER_TIME)
    assert sent.received_at is None
    assert received.message.sent_at == at(CUSTOMER_TIME)  # the sender's clock, end to end
    assert received.message.received_at == at(BANK_TIME)
    assert received.message.received_at.microsecond == 500_000  # milliseconds are kept
    assert conv.created_at == at(CUSTOMER_TIME)
    assert received.conversation.created_at == at(BANK_TIME)
    clocked.bank.close()
    with raw_store(clocked.directory / "bank.db", clocked.bank_key) as db:
        assert db.execute("SELECT sent_at, received_at FROM messages").fetchall() == [
            (1_700_000_000_000, 1_700_000_123_500)
        ]
        assert db.execute("SELECT created_at, updated_at FROM conversations").fetchall() == [
            (1_700_000_123_500, 1_700_000_123_500)
        ]


@pytest.mark.req("API-11")
def test_the_reply_carries_the_replier_clock(clocked: Clocked) -> None:
    conv = clocked.customer.start_conversation(clocked.bank.prekey_bundle())
    received = clocked.bank.receive(conv.send("hi"))
    clocked.bank_clock.now = BANK_TIME + 60
    clocked.customer_clock.now = CUSTOMER_TIME + 3600
    reply = clocked.customer.receive(received.conversation.send("reply")).message
    assert reply.sent_at == at(BANK_TIME + 60)
    assert reply.received_at == at(CUSTOMER_TIME + 3600)


@pytest.mark.req("API-11")
def test_conversation_activity_order_follows_the_clock(clocked: Clocked, tmp_path: Path) -> None:
    bank = clocked.bank
    with Client.open(tmp_path / "third.db", key=os.urandom(32)) as third:
        first = clocked.customer.start_conversation(bank.prekey_bundle())
        second = third.start_conversation(bank.prekey_bundle())
        clocked.bank_clock.now = BANK_TIME + 10
        a = bank.receive(first.send("a")).conversation
        clocked.bank_clock.now = BANK_TIME + 20
        b = bank.receive(second.send("b")).conversation
        assert bank.conversations() == [b, a]
        clocked.bank_clock.now = BANK_TIME + 30
        a.send("activity in a")
        assert bank.conversations() == [a, b]
        clocked.bank_clock.now = BANK_TIME + 5  # the order is the clock's, not the calls'
        bank.receive(second.send("b again"))
        assert bank.conversations() == [a, b]


@pytest.mark.req("API-11")
def test_prekey_rotation_and_expiry_follow_the_clock(clocked: Clocked, tmp_path: Path) -> None:
    old = PrekeyBundle.from_bytes(clocked.bank.prekey_bundle())
    clocked.bank_clock.now = BANK_TIME + 8 * DAY  # past the 7-day rotation
    new = PrekeyBundle.from_bytes(clocked.bank.prekey_bundle())
    assert new.signed_prekey_id != old.signed_prekey_id
    with (
        Client.open(tmp_path / "a.db", key=os.urandom(32)) as a,
        Client.open(tmp_path / "b.db", key=os.urandom(32)) as b,
    ):
        in_grace = a.start_conversation(old.raw).send("old bundle, in the grace period")
        assert clocked.bank.receive(in_grace).new_conversation
        late = b.start_conversation(clocked.bank.prekey_bundle()).send("fresh bundle")
        stale = old.raw
        clocked.bank_clock.now = BANK_TIME + 40 * DAY  # the old generation expired
        clocked.bank.prekey_bundle()
        with pytest.raises(UnknownPrekey):
            clocked.bank.receive(b.start_conversation(stale).send("too late"))
        assert clocked.bank.receive(late).new_conversation
