"""history(limit, before=) returns messages newest first, in pages chained with `before`, and the
same after a restart (API-08)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from store_support import Pair, PairTemplate

from entrenous import Client, Conversation
from entrenous.client import MAX_PAGE
from entrenous.errors import UsageError


def converse(pair: Pair, rounds: int) -> list[str]:
    """``rounds`` messages each way, alternating; returns every text in the order sent."""
    texts = []
    for n in range(rounds):
        text = f"customer {n}"
        pair.bank.receive(pair.customer_conv.send(text))
        texts.append(text)
        text = f"bank {n}"
        pair.customer.receive(pair.bank_conv.send(text))
        texts.append(text)
    return texts


def pages(conversation: Conversation, limit: int) -> list[list[Any]]:
    out: list[list[Any]] = []
    before = None
    while True:
        page = conversation.history(limit, before=before)
        out.append(page)
        if not page:
            return out
        before = page[-1].id


@pytest.fixture
def long_pair(pair: Pair) -> tuple[Pair, list[str]]:
    texts = ["hello", "hello back", *converse(pair, 59)]  # the template's two, then 118
    assert len(texts) == 120
    return pair, texts


def check_pages(conversation: Conversation, texts: list[str]) -> list[str]:
    found = pages(conversation, 50)
    assert [len(p) for p in found] == [50, 50, 20, 0]
    flat = [m for page in found for m in page]
    assert [m.text for m in flat] == texts[::-1]  # newest first, nothing lost or repeated
    assert len({m.id for m in flat}) == 120
    assert flat == conversation.history(MAX_PAGE)
    return [m.id for m in flat]


@pytest.mark.req("API-08")
def test_120_messages_page_as_50_50_20_newest_first_on_both_sides(
    long_pair: tuple[Pair, list[str]],
) -> None:
    pair, texts = long_pair
    bank_ids = check_pages(pair.bank_conv, texts)
    customer_ids = check_pages(pair.customer_conv, texts)
    assert bank_ids == customer_ids  # message ids travel end to end


@pytest.mark.req("API-08")
def test_the_same_pages_after_a_restart(long_pair: tuple[Pair, list[str]]) -> None:
    pair, texts = long_pair
    expected = pages(pair.bank_conv, 50)
    pair.close()
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:
        conversation = bank.conversation(pair.bank_conv.id)
        assert pages(conversation, 50) == expected
        check_pages(conversation, texts)
        # Paging can resume across the restart with an id from before it.
        middle = expected[0][-1].id
        assert conversation.history(50, before=middle) == expected[1]


@pytest.mark.req("API-08")
def test_small_pages_and_a_page_starting_anywhere(long_pair: tuple[Pair, list[str]]) -> None:
    pair, texts = long_pair
    everything = pair.bank_conv.history(MAX_PAGE)
    assert [len(p) for p in pages(pair.bank_conv, 7)] == [7] * 17 + [1, 0]
    for index in (0, 1, 59, 118, 119):
        after = pair.bank_conv.history(3, before=everything[index].id)
        assert after == everything[index + 1 : index + 4]
    assert pair.bank_conv.history(1) == everything[:1]
    assert [m.text for m in everything] == texts[::-1]


@pytest.mark.req("API-08")
def test_history_keeps_conversations_apart(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "other.db", key=os.urandom(32)) as other:
        conv = other.start_conversation(pair.bank.prekey_bundle())
        second = pair.bank.receive(conv.send("other 0")).conversation
        for n in range(3):
            pair.bank.receive(pair.customer_conv.send(f"customer {n}"))
            pair.bank.receive(conv.send(f"other {n + 1}"))
    assert [m.text for m in second.history()] == [f"other {n}" for n in (3, 2, 1, 0)]
    assert [m.text for m in pair.bank_conv.history()] == [
        "customer 2",
        "customer 1",
        "customer 0",
        "hello back",
        "hello",
    ]


@pytest.mark.req("API-08", "API-11")
def test_order_is_arrival_order_whatever_the_senders_clock(
    pair_template: PairTemplate, tmp_path: Path
) -> None:
    """Newest first means newest stored here: a peer's clock (skewed, or constant) does not
    reorder the history."""
    now = [0.0]
    skewed = pair_template.open_copy(
        tmp_path / "skewed", clock=lambda: 1_700_000_000.0, customer_clock=lambda: now[0]
    )
    try:
        for text, when in (("a", 2_000_000_000), ("b", 1_000_000_000), ("c", 1_500_000_000)):
            now[0] = when
            skewed.bank.receive(skewed.customer_conv.send(text))
    finally:
        skewed.close()
    with Client.open(skewed.bank_path, key=skewed.bank_key) as bank:
        history = bank.conversation(skewed.bank_conv.id).history(3)
    assert [m.text for m in history] == ["c", "b", "a"]
    assert [m.sent_at.timestamp() for m in history] == [1_500_000_000, 1_000_000_000, 2_000_000_000]


@pytest.mark.req("API-08")
@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, 1.5, True, "50", None])
def test_a_bad_limit_is_refused(limit: object, pair: Pair) -> None:
    with pytest.raises(ValueError, match="limit"):
        pair.bank_conv.history(limit)  # type: ignore[arg-type]


@pytest.mark.req("API-08")
def test_a_bad_before_is_refused(pair: Pair) -> None:
    with pytest.raises(UsageError):
        pair.bank_conv.history(10, before="not hex")
