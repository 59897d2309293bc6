"""Consent end to end (CON-15 to CON-18): the controller asks in the conversation, the subject's
client answers with a record signed by the subject's identity key, the controller verifies and
keeps it, and sending for a purpose that needs consent fails without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from compliance_support import NOTICE, Parties, parties

from entrenous.errors import ConsentRequired, InvalidConsentRecord, UsageError


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Parties]:
    opened = parties(tmp_path)
    opened.bank_conv.set_subject("customer-42")
    yield opened
    opened.close()


def _ask(world: Parties) -> str:
    received = world.customer.receive(world.bank_conv.request_consent("marketing", notice=NOTICE))
    assert received.message.control == "consent_request"
    request = received.message.content["request"]
    assert request["notice_text"] == NOTICE and request["purpose"] == "marketing"
    return str(request["request_id"])


@pytest.mark.req("CON-15", "CON-17")
def test_consent_given_in_band_lets_the_controller_send(world: Parties) -> None:
    with pytest.raises(ConsentRequired):
        world.bank_conv.send("Our new savings plan", purpose="marketing")
    request_id = _ask(world)
    received = world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
    assert received.message.control == "consent_record"
    assert world.bank_conv.consent("marketing") == "given"
    assert world.customer_conv.consent("marketing") == "given"
    world.customer.receive(world.bank_conv.send("Our new savings plan", purpose="marketing"))
    # A purpose on a contract basis needs no consent.
    world.bank_conv.send("Your statement is ready", purpose="service")
    [record] = world.bank.consent_records("customer-42")
    assert record.signature is not None and record.subject_identity == world.customer.identity
    assert world.bank.verify_consent_ledger() == 1
    assert "consent.recorded" in {e.action for e in world.bank.audit_events()}


@pytest.mark.req("CON-16")
def test_withdrawal_is_one_call_and_stops_sending(world: Parties) -> None:
    request_id = _ask(world)
    world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
    world.bank.receive(world.customer_conv.withdraw_consent("marketing"))
    assert world.bank_conv.consent("marketing") == "withdrawn"
    with pytest.raises(ConsentRequired) as caught:
        world.bank_conv.send("Another offer", purpose="marketing")
    assert caught.value.reason == "withdrawn"
    with pytest.raises(UsageError):
        world.customer_conv.withdraw_consent("marketing")


@pytest.mark.req("CON-16")
def test_a_refusal_and_an_expiry_both_block(world: Parties) -> None:
    request_id = _ask(world)
    world.bank.receive(world.customer_conv.answer_consent(request_id, give=False))
    assert world.bank_conv.consent("marketing") == "refused"
    world.clock.advance(seconds=1)
    request_id = _ask(world)
    world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
    world.clock.advance(days=366)
    assert world.bank_conv.consent("marketing") == "expired"
    with pytest.raises(ConsentRequired):
        world.bank_conv.send("offer", purpose="marketing")


@pytest.mark.req("CON-18")
def test_a_forged_or_replayed_answer_is_refused_and_stores_nothing(world: Parties) -> None:
    request_id = _ask(world)
    answer = world.customer_conv.answer_consent(request_id, give=True)
    world.bank.receive(answer)
    # The same envelope again: the ratchet refuses the replay.
    from entrenous.errors import PeerError

    with pytest.raises(PeerError):
        world.bank.receive(answer)
    # An answer to a request never sent in this conversation.
    session = world.customer._session(world.customer._record(world.customer_conv._uid))
    from entrenous import payload as codec
    from entrenous.compliance.consent import ConsentRecord, ConsentRequest

    stranger = ConsentRequest.create(
        controller="Example Bank AG",
        purpose="marketing",
        notice_version="2026-01",
        notice_text=NOTICE,
        now_ms=int(world.clock.now * 1000),
    )
    record = ConsentRecord.answer(
        world.customer._identity, stranger, give=True, now_ms=int(world.clock.now * 1000)
    )
    body = codec.encode(
        b"\x02" * 16,
        int(world.clock.now * 1000),
        {"type": "consent_record", "record": record.to_content()},
        control=True,
    )
    before = len(world.bank.consent_records("customer-42"))
    with pytest.raises(InvalidConsentRecord):
        world.bank.receive(session.encrypt(body))
    assert len(world.bank.consent_records("customer-42")) == before


@pytest.mark.req("CON-17")
def test_a_consent_recorded_by_the_controller_counts(world: Parties) -> None:
    world.bank.record_consent(subject="customer-42", purpose="marketing", notice=NOTICE)
    world.bank_conv.send("offer", purpose="marketing")
    world.bank.record_consent(subject="customer-42", purpose="marketing", give=False)
    assert world.bank_conv.consent("marketing") == "withdrawn"
    with pytest.raises(ConsentRequired):
        world.bank_conv.send("offer", purpose="marketing")
    with pytest.raises(UsageError):
        world.bank_conv.send("x", purpose="no-such-purpose")


@pytest.mark.req("CON-19")
def test_a_removed_ledger_tail_is_detected_through_the_audit_checkpoint(world: Parties) -> None:
    from entrenous.errors import ConsentLedgerBroken

    world.bank.record_consent(subject="customer-42", purpose="marketing", notice=NOTICE)
    world.bank.record_consent(subject="customer-42", purpose="marketing", give=False)
    world.bank._store._connection.execute("DELETE FROM consent_ledger WHERE seq = 2")
    with pytest.raises(ConsentLedgerBroken):
        world.bank.verify_consent_ledger()
