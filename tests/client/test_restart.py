"""Conversations continue across restarts: close both clients, reopen, go on both ways; history,
skipped message keys and pending handshakes survive (API-05, API-06, API-08)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from store_support import Pair

from entrenous import Client


def reopen(pair: Pair) -> Pair:
    pair.close()
    bank = Client.open(pair.bank_path, key=pair.bank_key)
    customer = Client.open(pair.customer_path, key=pair.customer_key)
    return Pair(
        bank,
        customer,
        bank.conversation(pair.bank_conv.id),
        customer.conversation(pair.customer_conv.id),
        pair.bank_path,
        pair.customer_path,
        pair.bank_key,
        pair.customer_key,
    )


@pytest.mark.req("API-05", "API-06", "API-08")
def test_close_reopen_and_continue_both_ways(pair: Pair) -> None:
    texts = ["hello", "hello back"]
    identities = (pair.bank.identity, pair.customer.identity)
    for cycle in range(3):
        pair = reopen(pair)
        assert (pair.bank.identity, pair.customer.identity) == identities
        expected = texts[::-1]
        assert [m.text for m in pair.bank_conv.history(1000)] == expected
        assert [m.text for m in pair.customer_conv.history(1000)] == expected
        for n in range(2):
            text = f"customer {cycle}.{n}"
            assert pair.bank.receive(pair.customer_conv.send(text)).message.text == text
            texts.append(text)
            text = f"bank {cycle}.{n}"
            assert pair.customer.receive(pair.bank_conv.send(text)).message.text == text
            texts.append(text)
    pair.close()


@pytest.mark.req("API-06")
def test_skipped_message_keys_survive_a_restart(pair: Pair) -> None:
    envelopes = [pair.customer_conv.send(f"m{n}") for n in range(4)]
    pair.bank.receive(envelopes[3])
    pair = reopen(pair)
    assert [pair.bank.receive(e).message.text for e in envelopes[:3]] == ["m0", "m1", "m2"]
    pair.close()


@pytest.mark.req("API-05")
def test_an_unanswered_initiator_can_restart_and_keep_sending(pair: Pair, tmp_path: Path) -> None:
    key = os.urandom(32)
    with Client.open(tmp_path / "new.db", key=key) as newcomer:
        conv = newcomer.start_conversation(pair.bank.prekey_bundle())
        first = conv.send("before the restart")
    with Client.open(tmp_path / "new.db", key=key) as newcomer:
        conv = newcomer.conversation(conv.id)
        second = conv.send("after the restart")
        received = pair.bank.receive(second)  # the later one first: it carries the handshake too
        assert received.new_conversation
        assert pair.bank.receive(first).message.text == "before the restart"
        assert newcomer.receive(received.conversation.send("answer")).message.text == "answer"
        assert [m.text for m in conv.history()] == [
            "answer",
            "after the restart",
            "before the restart",
        ]
