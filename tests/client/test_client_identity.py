"""Peer identities, safety numbers and verification (API-09); identity changes are explicit
events (API-10)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import Pair, logical_state, raw_store

from entrenous import Client, SafetyNumber
from entrenous.errors import IdentityChanged, PeerError, SafetyNumberMismatch


@pytest.fixture
def other_bank(tmp_path: Path) -> Iterator[Client]:
    """Another identity, standing in for the bank after a reinstall (or an impostor)."""
    with Client.open(tmp_path / "other-bank.db", key=os.urandom(32)) as client:
        yield client


# --- API-09 ---------------------------------------------------------------------------------------


@pytest.mark.req("API-09")
def test_each_side_sees_the_other_identity_and_the_same_safety_number(pair: Pair) -> None:
    assert pair.bank_conv.peer_identity == pair.customer.identity
    assert pair.customer_conv.peer_identity == pair.bank.identity
    ours, theirs = pair.customer_conv.safety_number(), pair.bank_conv.safety_number()
    assert ours == theirs
    assert re.fullmatch(r"(\d{5} ){11}\d{5}", str(ours))
    assert ours == SafetyNumber.of(pair.bank.identity, pair.customer.identity)
    newest = pair.bank_conv.history(limit=2)
    assert newest[1].sender == pair.customer.identity  # received "hello"
    assert newest[0].sender == pair.bank.identity  # sent "hello back"


@pytest.mark.req("API-09")
def test_another_peer_gives_another_safety_number(pair: Pair, other_bank: Client) -> None:
    conv = pair.customer.start_conversation(other_bank.prekey_bundle())
    assert conv.safety_number() != pair.customer_conv.safety_number()


@pytest.mark.req("API-09")
@pytest.mark.parametrize("form", ["object", "digits", "spaced digits", "qr bytes"])
def test_mark_verified_records_a_matching_number_durably(form: str, pair: Pair) -> None:
    number = pair.bank_conv.safety_number()
    forms: dict[str, SafetyNumber | str | bytes] = {
        "object": number,
        "digits": number.digits,
        "spaced digits": str(number),
        "qr bytes": number.qr_bytes,
    }
    verified_before = pair.customer_conv.is_verified
    assert not verified_before
    pair.customer_conv.mark_verified(forms[form])
    assert pair.customer_conv.is_verified
    assert not pair.bank_conv.is_verified  # each side verifies for itself
    pair.customer.close()
    with raw_store(pair.customer_path, pair.customer_key) as db:
        assert bytes(db.execute("SELECT verified FROM conversations").fetchone()[0]) == (
            number.qr_bytes
        )
    with Client.open(pair.customer_path, key=pair.customer_key) as customer:
        assert customer.conversation(pair.customer_conv.id).is_verified


def _wrong_numbers(pair: Pair, other_bank: Client) -> dict[str, object]:
    right = pair.customer_conv.safety_number()
    flipped = str(int(right.digits[-1]) ^ 1)
    return {
        "another conversation's": SafetyNumber.of(other_bank.identity, pair.customer.identity),
        "one digit off": right.digits[:-1] + flipped,
        "digits cut short": right.digits[:-5],
        "empty": "",
        "qr bytes one bit off": right.qr_bytes[:-1] + bytes([right.qr_bytes[-1] ^ 1]),
        "random qr bytes": os.urandom(len(right.qr_bytes)),
    }


@pytest.mark.req("API-09")
def test_a_wrong_number_raises_and_records_nothing(pair: Pair, other_bank: Client) -> None:
    before = logical_state(pair.customer)
    for name, wrong in _wrong_numbers(pair, other_bank).items():
        with pytest.raises(SafetyNumberMismatch):
            pair.customer_conv.mark_verified(wrong)  # type: ignore[arg-type]
        assert not pair.customer_conv.is_verified, name
    assert logical_state(pair.customer) == before


@pytest.mark.req("API-09")
def test_a_new_conversation_with_a_verified_peer_starts_unverified(pair: Pair) -> None:
    pair.customer_conv.mark_verified(pair.customer_conv.safety_number())
    second = pair.customer.start_conversation(pair.bank.prekey_bundle())
    assert second.peer_identity == pair.bank.identity
    assert not second.is_verified


# --- API-10 ---------------------------------------------------------------------------------------


@pytest.mark.req("API-10")
def test_starting_with_a_changed_identity_under_a_known_label_raises(
    pair: Pair, other_bank: Client
) -> None:
    pair.customer_conv.set_peer("bank")
    assert pair.customer_conv.peer == "bank"
    before = logical_state(pair.customer)
    with pytest.raises(IdentityChanged) as caught:
        pair.customer.start_conversation(other_bank.prekey_bundle(), peer="bank")
    assert isinstance(caught.value, PeerError)
    assert logical_state(pair.customer) == before  # no conversation was recorded

    accepted = pair.customer.start_conversation(
        other_bank.prekey_bundle(), peer="bank", accept_identity_change=True
    )
    assert accepted.peer == "bank"
    assert accepted.peer_identity == other_bank.identity
    assert other_bank.receive(accepted.send("hi")).message.text == "hi"


@pytest.mark.req("API-10")
def test_the_same_identity_under_its_label_is_no_event(pair: Pair) -> None:
    pair.customer_conv.set_peer("bank")
    again = pair.customer.start_conversation(pair.bank.prekey_bundle(), peer="bank")
    assert again.peer == "bank"
    unlabelled = pair.customer.start_conversation(pair.bank.prekey_bundle())
    unlabelled.set_peer("bank")
    assert unlabelled.peer == "bank"


@pytest.mark.req("API-10")
def test_labelling_a_conversation_with_a_changed_identity_raises(
    pair: Pair, other_bank: Client
) -> None:
    """The responder's side: the bank labels conversations with its customer number."""
    pair.bank_conv.set_peer("customer-42")
    impostor = pair.bank.receive(
        other_bank.start_conversation(pair.bank.prekey_bundle()).send("I am 42")
    ).conversation
    before = logical_state(pair.bank)
    with pytest.raises(IdentityChanged):
        impostor.set_peer("customer-42")
    assert impostor.peer is None
    assert logical_state(pair.bank) == before
    impostor.set_peer("customer-42", accept_identity_change=True)
    assert impostor.peer == "customer-42"


@pytest.mark.req("API-10")
def test_the_known_identity_survives_a_restart(pair: Pair, other_bank: Client) -> None:
    pair.customer_conv.set_peer("bank")
    pair.customer.close()
    with Client.open(pair.customer_path, key=pair.customer_key) as customer:
        assert customer.conversation(pair.customer_conv.id).peer == "bank"
        with pytest.raises(IdentityChanged):
            customer.start_conversation(other_bank.prekey_bundle(), peer="bank")


@pytest.mark.req("API-10")
def test_an_empty_label_is_refused(pair: Pair) -> None:
    with pytest.raises(ValueError, match="peer"):
        pair.customer.start_conversation(pair.bank.prekey_bundle(), peer="")
    with pytest.raises(ValueError, match="peer"):
        pair.customer_conv.set_peer("")
