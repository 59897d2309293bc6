"""receive_many() commits a batch in one transaction, with one outcome per envelope in order; a
refused envelope changes nothing and does not stop the batch (API-07)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import Pair, StatementSpy, logical_state

from entrenous import Client, ReceiveOutcome
from entrenous.errors import (
    EnvelopeTooLarge,
    MalformedEnvelope,
    ReplayError,
    StoreError,
    UnknownConversation,
)


@pytest.fixture
def batch(pair: Pair, tmp_path: Path) -> Iterator[tuple[list[bytes], list[object]]]:
    """A batch mixing good and bad envelopes, with what each should give (text or error)."""
    good = [pair.customer_conv.send(f"good {n}") for n in range(3)]
    with (
        Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer,
        Client.open(tmp_path / "c.db", key=os.urandom(32)) as c,
        Client.open(tmp_path / "d.db", key=os.urandom(32)) as d,
    ):
        new_conv = newcomer.start_conversation(pair.bank.prekey_bundle())
        first_new, second_new = new_conv.send("new 1"), new_conv.send("new 2")
        stranger = d.receive(c.start_conversation(d.prekey_bundle()).send("x"))
        unknown = stranger.conversation.send("not for the bank")
    plan: list[tuple[bytes, object]] = [
        (good[0], "good 0"),
        (good[0], ReplayError),  # duplicate inside the batch
        (os.urandom(120), MalformedEnvelope),
        (first_new, "new 1"),
        (good[2], "good 2"),  # out of order: fine
        (unknown, UnknownConversation),
        (good[1], "good 1"),
        (good[2] + b"\x00", MalformedEnvelope),
        (bytes(70 * 1024), EnvelopeTooLarge),
        (second_new, "new 2"),
        (good[2], ReplayError),  # replay of one accepted earlier in the batch
    ]
    yield [e for e, _ in plan], [x for _, x in plan]


def check_outcomes(outcomes: list[ReceiveOutcome], expected: list[object]) -> None:
    assert [o.index for o in outcomes] == list(range(len(expected)))
    for outcome, want in zip(outcomes, expected, strict=True):
        if isinstance(want, str):
            assert outcome.ok
            assert outcome.error is None
            assert outcome.received is not None
            assert outcome.received.message.text == want
        else:
            assert not outcome.ok
            assert outcome.received is None
            assert type(outcome.error) is want


@pytest.mark.req("API-07")
def test_outcomes_are_in_order_and_only_good_envelopes_are_stored(
    pair: Pair, batch: tuple[list[bytes], list[object]]
) -> None:
    envelopes, expected = batch
    before = logical_state(pair.bank)
    outcomes = pair.bank.receive_many(envelopes)
    check_outcomes(outcomes, expected)

    after = logical_state(pair.bank)
    old = after["histories"][pair.bank_conv.id]
    assert [m[2] for m in old[:3]] == ["good 1", "good 2", "good 0"]  # newest first
    assert old[3:] == before["histories"][pair.bank_conv.id]
    new_ids = [c for c in after["conversations"] if c not in before["conversations"]]
    assert len(new_ids) == 1
    assert [m[2] for m in after["histories"][new_ids[0]]] == ["new 2", "new 1"]
    assert len(after["store"]["messages"]) == len(before["store"]["messages"]) + 5
    first_new = outcomes[3].received
    assert first_new is not None
    assert first_new.new_conversation
    assert outcomes[9].received is not None
    assert not outcomes[9].received.new_conversation


@pytest.mark.req("API-07")
def test_a_batch_is_one_transaction_with_a_savepoint_per_envelope(
    pair: Pair, batch: tuple[list[bytes], list[object]]
) -> None:
    envelopes, _ = batch
    pair.bank._store._mark()  # the session's one-off open flag (spec/store.md)
    spy = StatementSpy(pair.bank._store._connection)
    pair.bank._store._connection = spy
    pair.bank.receive_many(envelopes)
    pair.bank._store._connection = spy._inner
    assert spy.count("BEGIN") == 1
    assert spy.count("COMMIT") == 1
    assert spy.count("SAVEPOINT") == len(envelopes)
    upper = [s.strip().upper() for s in spy.statements]
    assert upper.index("BEGIN IMMEDIATE") < upper.index("COMMIT") == len(upper) - 1


@pytest.mark.req("API-07")
def test_the_batch_is_durable_after_reopening(
    pair: Pair, batch: tuple[list[bytes], list[object]]
) -> None:
    envelopes, _ = batch
    pair.bank.receive_many(envelopes)
    expected = logical_state(pair.bank)
    pair.bank.close()
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:
        assert logical_state(bank) == expected
        outcomes = bank.receive_many(envelopes)  # every one is now a replay
        assert not any(o.ok for o in outcomes)


@pytest.mark.req("API-07")
def test_an_error_that_is_not_a_refusal_rolls_back_the_whole_batch(
    pair: Pair, batch: tuple[list[bytes], list[object]]
) -> None:
    envelopes, expected = batch
    before = logical_state(pair.bank)

    def interrupted() -> Iterator[bytes]:
        yield from envelopes[:5]
        raise RuntimeError("the caller's iterator failed")

    with pytest.raises(RuntimeError, match="iterator failed"):
        pair.bank.receive_many(interrupted())
    assert logical_state(pair.bank) == before
    check_outcomes(pair.bank.receive_many(envelopes), expected)  # nothing was half-consumed


@pytest.mark.req("API-07", "STO-05")
def test_a_batch_whose_commit_fails_stores_nothing(
    pair: Pair, batch: tuple[list[bytes], list[object]]
) -> None:
    envelopes, expected = batch
    before = logical_state(pair.bank)
    pair.bank._store._mark()  # the session's one-off open flag (spec/store.md)
    spy = StatementSpy(pair.bank._store._connection, fail_on="COMMIT")
    pair.bank._store._connection = spy
    with pytest.raises(StoreError):
        pair.bank.receive_many(envelopes)
    pair.bank._store._connection = spy._inner
    assert logical_state(pair.bank) == before
    check_outcomes(pair.bank.receive_many(envelopes), expected)


@pytest.mark.req("API-07")
def test_an_empty_batch(pair: Pair) -> None:
    before = logical_state(pair.bank)
    assert pair.bank.receive_many([]) == []
    assert logical_state(pair.bank) == before


@pytest.mark.req("API-07")
def test_a_batch_of_only_refusals_changes_nothing(pair: Pair) -> None:
    before = logical_state(pair.bank)
    outcomes = pair.bank.receive_many([b"", os.urandom(64), bytes(70_000)])
    assert [type(o.error) for o in outcomes] == [
        MalformedEnvelope,
        MalformedEnvelope,
        EnvelopeTooLarge,
    ]
    assert logical_state(pair.bank) == before
