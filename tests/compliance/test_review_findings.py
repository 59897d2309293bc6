"""Findings of the adversarial review of the compliance layer, each pinned by a test.

Each test names the defect it demonstrates; all are fixed and the tests keep them fixed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compliance_support import NOTICE, Parties, parties

from entrenous import Client
from entrenous.compliance import audit
from entrenous.compliance.consent import ConsentRecord, ConsentRequest
from entrenous.compliance.erasure import ErasureReceipt
from entrenous.errors import (
    AuditChainBroken,
    ComplianceError,
    ConsentRequired,
    InvalidConsentRecord,
    InvalidConsentRequest,
    StoreError,
    UsageError,
)
from entrenous.store.sqlcipher import SqlCipherStore

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "spec" / "export.schema.json").read_text()
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Parties]:
    opened = parties(tmp_path)
    opened.bank_conv.set_subject("customer-42")
    yield opened
    opened.close()


def _now(world: Parties) -> int:
    return int(world.clock.now * 1000)


def _ask(world: Parties) -> str:
    received = world.customer.receive(world.bank_conv.request_consent("marketing", notice=NOTICE))
    return str(received.message.content["request"]["request_id"])


def _customer_sends(world: Parties, content: dict[str, Any]) -> bytes:
    """A control message the customer's client crafts by hand (a modified or hostile client)."""
    return world.customer._send(world.customer_conv._uid, content, control=True)


def _ledger_size(client: Client) -> int:
    return sum(1 for _ in client._store.chain_rows("consent", limit=2**62))


# --- export -----------------------------------------------------------------------------------


@pytest.mark.req("EXP-01")
def test_review_export_after_a_sweep_or_an_erasure_does_not_crash(world: Parties) -> None:
    """Finding 1: any audit event with a list value (every non-empty sweep, every erasure) made
    ``export`` raise a raw ``TypeError`` (a list looked up in a set)."""
    import jsonschema

    world.exchange(2)
    world.clock.advance(days=31)
    assert world.bank.sweep().deleted == 4
    exported = world.bank.export("customer-42")
    jsonschema.validate(exported, SCHEMA)
    assert "sweep" in {e["action"] for e in exported["audit_events"]}
    world.bank.erase(subject="customer-42")
    exported = world.bank.export("customer-42")
    jsonschema.validate(exported, SCHEMA)
    assert "erasure" in {e["action"] for e in exported["audit_events"]}


@pytest.mark.req("EXP-03")
def test_review_export_does_not_name_other_subjects_conversations_through_sweeps(
    world: Parties, tmp_path: Path
) -> None:
    """Finding 7: a sweep event lists every conversation of its batch; the export copied it
    whole, naming other subjects' conversations."""
    with Client.open(tmp_path / "other.db", key=b"\x07" * 32, clock=world.clock) as other:
        conv = other.start_conversation(world.bank.prekey_bundle())
        received = world.bank.receive(conv.send("someone else's message"))
    received.conversation.set_subject("customer-99")
    world.exchange(1)
    world.clock.advance(days=31)
    report = world.bank.sweep()
    assert set(report.by_conversation) == {world.bank_conv.id, received.conversation.id}
    exported = world.bank.export("customer-42")
    [sweep] = [e for e in exported["audit_events"] if e["action"] == "sweep"]
    assert sweep["details"]["conversations"] == [world.bank_conv.id]
    assert received.conversation.id not in json.dumps(exported)


@pytest.mark.req("EXP-03")
def test_review_a_peer_label_equal_to_another_subject_id_does_not_leak_that_conversation(
    world: Parties, tmp_path: Path
) -> None:
    with Client.open(tmp_path / "bob.db", key=b"\x08" * 32, clock=world.clock) as bob:
        conv = bob.start_conversation(world.bank.prekey_bundle())
        received = world.bank.receive(conv.send("Bob's private question"))
    # The app files Bob's conversation under Bob, but its peer label (a display name, a
    # device name) happens to equal customer-42's subject id.
    received.conversation.set_subject("customer-bob")
    received.conversation.set_peer("customer-42")
    exported = world.bank.export("customer-42")
    assert "Bob's private question" not in json.dumps(exported)


@pytest.mark.req("EXP-01")
def test_review_consent_given_before_the_subject_was_set_is_in_the_export(
    tmp_path: Path,
) -> None:
    world = parties(tmp_path)
    try:
        request_id = _ask(world)
        world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
        world.bank_conv.set_subject("customer-42")
        exported = world.bank.export("customer-42")
        assert len(exported["consent_records"]) == 1
    finally:
        world.close()


# --- consent ----------------------------------------------------------------------------------


@pytest.mark.req("CON-17")
def test_review_a_withdrawal_recorded_by_the_controller_stops_a_peer_labelled_conversation(
    tmp_path: Path,
) -> None:
    """Finding 2: for a conversation whose data subject is its peer label (no subject id), the
    consent check passed no subject, so a withdrawal recorded by the controller (a phone call)
    was ignored and sending for the purpose went on; it was also recorded as a refusal."""
    world = parties(tmp_path)
    try:
        world.bank_conv.set_peer("cust-7")
        request_id = _ask(world)
        world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
        assert world.bank_conv.consent("marketing") == "given"
        world.clock.advance(seconds=5)
        # One call, no notice to find again: withdrawing is as easy as giving (Art. 7(3)).
        record = world.bank.record_consent(subject="cust-7", purpose="marketing", give=False)
        assert record.state == "withdrawn"
        assert world.bank_conv.consent("marketing") == "withdrawn"
        with pytest.raises(ConsentRequired):
            world.bank_conv.send("offer", purpose="marketing")
        # And a consent recorded by the controller counts for the peer-labelled conversation.
        world.clock.advance(seconds=5)
        world.bank.record_consent(subject="cust-7", purpose="marketing", notice=NOTICE)
        world.bank_conv.send("offer", purpose="marketing")
    finally:
        world.close()


@pytest.mark.req("CON-18")
def test_review_an_answer_to_a_request_the_peer_sent_itself_is_refused(world: Parties) -> None:
    """Finding 3: the controller took any stored request of the conversation as its own, so the
    peer could send a request of its own (any notice, any version) and then answer it: the
    controller recorded a consent to a notice it never showed."""
    fake = ConsentRequest.create(
        controller="Example Bank AG",
        purpose="marketing",
        notice_version="9999",
        notice_text="Anything goes.",
        now_ms=_now(world),
        subject="customer-42",
    )
    world.bank.receive(
        _customer_sends(world, {"type": "consent_request", "request": fake.to_content()})
    )
    answer = ConsentRecord.answer(world.customer._identity, fake, give=True, now_ms=_now(world))
    with pytest.raises(InvalidConsentRecord):
        world.bank.receive(
            _customer_sends(world, {"type": "consent_record", "record": answer.to_content()})
        )
    assert world.bank.consent_records("customer-42") == []
    assert world.bank_conv.consent("marketing") == "none"


@pytest.mark.req("CON-18", "CON-20")
def test_review_a_peer_cannot_replace_the_request_the_controller_sent(world: Parties) -> None:
    """Finding 3: a request from the peer reusing the id of the controller's request replaced
    it (store_meta upsert), and the peer's answer was then checked against the peer's notice."""
    request_id = _ask(world)
    fake = ConsentRequest.create(
        controller="Example Bank AG",
        purpose="marketing",
        notice_version="9999",
        notice_text="Anything goes.",
        now_ms=_now(world),
        subject="customer-42",
    )
    content = fake.to_content()
    content["request_id"] = request_id
    with pytest.raises(InvalidConsentRequest):
        world.bank.receive(_customer_sends(world, {"type": "consent_request", "request": content}))
    world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
    [record] = world.bank.consent_records("customer-42")
    assert record.notice_version == "2026-01"


@pytest.mark.req("CON-20")
def test_review_a_peer_cannot_grow_the_ledger_without_bound(world: Parties) -> None:
    """Finding 5: the controller appended every signed withdrawal (no request needed) and every
    answer to the same request, each append re-parsing (and re-verifying) the subject's whole
    ledger: a peer made the ledger and the audit trail grow without bound, at quadratic cost."""
    asked = world.customer.receive(world.bank_conv.request_consent("marketing", notice=NOTICE))
    pending = ConsentRequest.from_content(asked.message.content["request"])
    request_id = pending.request_id.hex()
    world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
    # A second answer to the same request, signed by the peer.
    again = ConsentRecord.answer(world.customer._identity, pending, give=True, now_ms=_now(world))
    with pytest.raises(InvalidConsentRecord):
        world.bank.receive(
            _customer_sends(world, {"type": "consent_record", "record": again.to_content()})
        )
    # A withdrawal of a consent never asked for in this conversation.
    stranger = ConsentRequest.create(
        controller="Example Bank AG",
        purpose="marketing",
        notice_version="1",
        notice_text="x",
        now_ms=_now(world),
        subject="customer-42",
    )
    given = ConsentRecord.answer(world.customer._identity, stranger, give=True, now_ms=_now(world))
    withdrawal = given.withdrawal(world.customer._identity, now_ms=_now(world))
    with pytest.raises(InvalidConsentRecord):
        world.bank.receive(
            _customer_sends(world, {"type": "consent_record", "record": withdrawal.to_content()})
        )
    # The real withdrawal counts once; a second one for the same request is refused.
    world.bank.receive(world.customer_conv.withdraw_consent("marketing"))
    assert world.bank_conv.consent("marketing") == "withdrawn"
    [given_record, _] = world.bank.consent_records("customer-42")
    repeat = given_record.withdrawal(world.customer._identity, now_ms=_now(world))
    with pytest.raises(InvalidConsentRecord):
        world.bank.receive(
            _customer_sends(world, {"type": "consent_record", "record": repeat.to_content()})
        )
    assert _ledger_size(world.bank) == 2
    # The customer's client refuses to answer a request twice as well.
    with pytest.raises(UsageError):
        world.customer_conv.answer_consent(request_id, give=True)


@pytest.mark.req("CON-16")
def test_review_the_subject_sees_its_own_consent_in_an_unlabelled_conversation(
    world: Parties, tmp_path: Path
) -> None:
    """Finding 9: without a peer label both ledger keys of a conversation are conversation:<id>,
    and the subject's side read its own records as the peer's: "none" after giving."""
    with Client.open(tmp_path / "c2.db", key=b"\x09" * 32, clock=world.clock) as c2:
        conv = c2.start_conversation(world.bank.prekey_bundle())
        received = world.bank.receive(conv.send("hi"))
        asked = c2.receive(received.conversation.request_consent("marketing", notice=NOTICE))
        request_id = asked.message.content["request"]["request_id"]
        world.bank.receive(conv.answer_consent(request_id, give=True))
        assert received.conversation.consent("marketing") == "given"
        assert conv.consent("marketing") == "given"


# --- erasure ----------------------------------------------------------------------------------


@pytest.mark.req("ERA-02")
def test_review_erasure_removes_the_conversations_consent_requests(world: Parties) -> None:
    """Finding 4: the consent requests of a conversation (the subject id, the notice, the
    conversation id) stayed in store_meta after its erasure."""
    request_id = _ask(world)
    world.bank.receive(world.customer_conv.answer_consent(request_id, give=True))
    world.bank.erase(subject="customer-42")
    rows = world.bank._store._connection.execute("SELECT name, value FROM store_meta").fetchall()
    leftovers = [
        name for name, value in rows if request_id in name or b"customer-42" in bytes(value)
    ]
    assert leftovers == []
    # The subject's side erases its copy of the request too.
    world.customer.erase(conversation=world.customer_conv)
    rows = world.customer._store._connection.execute("SELECT name FROM store_meta").fetchall()
    assert not [name for (name,) in rows if request_id in name]


@pytest.mark.req("ERA-02")
def test_review_a_full_erasure_destroys_a_key_left_by_an_interrupted_one(
    world: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 6: an erasure that re-seals commits the next key generation to the key file
    first; if its transaction then fails, a later erasure of the whole conversation destroyed
    only the generations up to the current one and left that key behind."""
    world.bank_conv.set_category("contract")
    world.exchange(2)
    world.clock.advance(days=3660)  # past the ten-year minimum for the messages so far
    world.exchange(2)
    uid = world.bank_conv._uid

    def failing(self: SqlCipherStore, *args: object) -> None:
        raise StoreError("simulated failure before the erasure commits")

    with monkeypatch.context() as patch:
        patch.setattr(SqlCipherStore, "add_erasure", failing)
        with pytest.raises(StoreError):
            world.bank.erase(subject="customer-42")
    keys = world.bank._store._keys._connection
    generations = [
        g
        for (g,) in keys.execute(
            "SELECT generation FROM data_keys WHERE conversation_uid = ?", (uid,)
        )
    ]
    assert sorted(generations) == [0, 1]  # the orphan of the failed attempt
    world.clock.advance(days=3660)
    receipt = world.bank.erase(subject="customer-42")
    assert receipt.kept_messages == 0
    left = keys.execute("SELECT count(*) FROM data_keys WHERE conversation_uid = ?", (uid,))
    assert left.fetchone()[0] == 0


@pytest.mark.req("ERA-03")
def test_review_a_malformed_receipt_is_refused_with_a_typed_error() -> None:
    """Finding 11: from_json accepted erased/kept entries that are not mappings; the receipt's
    repr then raised a raw TypeError."""
    bad = {
        "version": 1,
        "receipt_id": "00" * 16,
        "at": 1,
        "scope": "subject",
        "target": "t",
        "erased": [1],
        "kept": [],
        "signer": "00" * 64,
        "signature": "00" * 64,
    }
    with pytest.raises(ComplianceError):
        ErasureReceipt.from_json(json.dumps(bad))
    bad["erased"] = [{"messages": "many"}]
    with pytest.raises(ComplianceError):
        ErasureReceipt.from_json(json.dumps(bad))


# --- audit ------------------------------------------------------------------------------------


@pytest.mark.req("AUD-01")
def test_review_relabelling_the_peer_is_audited(world: Parties) -> None:
    """Finding 8: the peer label decides which data subject a conversation belongs to (holds,
    erasure, export, consent), yet changing it left no audit event."""
    before = len(world.bank.audit_events())
    world.bank_conv.set_peer("cust-7")
    events = world.bank.audit_events()
    assert len(events) == before + 1
    event = events[-1]
    assert event.action == "conversation.classified"
    assert event.details["peer"] == audit.pseudonym(world.bank._store, "cust-7")
    assert "cust-7" not in json.dumps(event.to_dict())


@pytest.mark.req("AUD-04")
def test_review_verification_names_an_entry_that_is_not_json() -> None:
    """Finding 10: an exported (or edited) event whose details hold NaN made the offline
    verification raise a raw ValueError instead of naming the entry."""
    event = audit.AuditEvent.from_dict(
        {
            "seq": 1,
            "at": 0,
            "action": "sweep",
            "details": json.loads('{"deleted": NaN}'),
            "prev": "00" * 32,
            "hash": "00" * 32,
        }
    )
    with pytest.raises(AuditChainBroken) as caught:
        audit.verify_events([event], (1, bytes(32)))
    assert caught.value.seq == 1


# --- holds ------------------------------------------------------------------------------------


@pytest.mark.req("HOLD-03", "HOLD-05")
def test_review_a_hold_cannot_be_escaped_by_relabelling(world: Parties) -> None:
    """Finding 12: a subject hold covers the conversations whose subject id or peer label is the
    subject at the time of the sweep, so filing a held conversation under another subject (or
    relabelling its peer) took it out of the hold, and the next sweep deleted it."""
    world.exchange(2)
    world.bank.place_hold(subject="customer-42", reason="litigation")
    with pytest.raises(UsageError):
        world.bank_conv.set_subject("customer-43")
    with pytest.raises(UsageError):
        world.bank_conv.set_subject(None)
    # Held through its peer label: that label cannot go either.
    world.bank.place_hold(subject="cust-7", reason="regulator request")
    world.bank_conv.set_peer("cust-7")
    with pytest.raises(UsageError):
        world.bank_conv.set_peer("someone-else")
    world.clock.advance(days=31)
    assert world.bank.sweep().deleted == 0
    assert len(world.bank_conv.history()) == 4
    assert world.bank_conv.subject == "customer-42" and world.bank_conv.peer == "cust-7"
    # A conversation-scope erasure of a subject-held conversation keeps it too.
    receipt = world.bank.erase(conversation=world.bank_conv)
    assert receipt.erased_messages == 0 and receipt.kept_messages == 4


@pytest.mark.req("ERA-02")
def test_review_a_released_hold_does_not_keep_the_erased_subject_id(world: Parties) -> None:
    hold = world.bank.place_hold(subject="customer-42", reason="complaint")
    world.bank.release_hold(hold.id)
    world.bank.erase(subject="customer-42")
    rows = world.bank._store._connection.execute("SELECT subject FROM holds").fetchall()
    assert ("customer-42",) not in rows


# --- labels, timers, validity -----------------------------------------------------------------


@pytest.mark.req("CON-21")
def test_review_subject_ids_cannot_take_a_conversation_ledger_key(
    world: Parties, tmp_path: Path
) -> None:
    """Finding 13: a subject id or peer label "conversation:<id>" shared the ledger key of an
    unlabelled conversation, so that subject's export listed another person's consent."""
    with Client.open(tmp_path / "c2.db", key=b"\x0a" * 32, clock=world.clock) as c2:
        conv = c2.start_conversation(world.bank.prekey_bundle())
        other = world.bank.receive(conv.send("hi")).conversation
        asked = c2.receive(other.request_consent("marketing", notice=NOTICE))
        world.bank.receive(
            conv.answer_consent(asked.message.content["request"]["request_id"], give=True)
        )
    key = "conversation:" + other.id
    with pytest.raises(ValueError):
        world.bank_conv.set_subject(key)
    with pytest.raises(ValueError):
        world.bank_conv.set_peer(key)
    with pytest.raises(ValueError):
        world.bank.export(key)
    with pytest.raises(ValueError):
        world.bank.record_consent(subject=key, purpose="marketing", notice=NOTICE)


@pytest.mark.req("CON-15")
def test_review_the_app_cannot_lengthen_the_policys_consent_validity(world: Parties) -> None:
    """Finding 14: valid_for replaced the policy's consent_valid_for (365 days) with any longer
    value, so a consent could outlive what the compliance team's policy allows."""
    from datetime import timedelta

    with pytest.raises(UsageError):
        world.bank_conv.request_consent("marketing", notice=NOTICE, valid_for=timedelta(days=3650))
    with pytest.raises(UsageError):
        world.bank.record_consent(
            subject="customer-42",
            purpose="marketing",
            notice=NOTICE,
            valid_for=timedelta(days=3650),
        )
    # Shorter is fine.
    world.customer.receive(
        world.bank_conv.request_consent("marketing", notice=NOTICE, valid_for=timedelta(days=30))
    )
    with pytest.raises(TypeError):
        world.bank_conv.request_consent("marketing", notice=None)  # type: ignore[arg-type]


@pytest.mark.req("DIS-04")
def test_review_a_timer_can_be_turned_off_under_a_policy_without_timers(world: Parties) -> None:
    """Finding 15: once the policy disallowed timers, set_disappearing(None) was refused too,
    so the controller could not tell the peer to stop deleting."""
    from datetime import timedelta

    from compliance_support import POLICY, policy

    world.customer.receive(world.bank_conv.set_disappearing(timedelta(days=1)))
    assert world.customer_conv.disappearing_after == timedelta(days=1)
    world.bank.apply_policy(policy(POLICY + "\n[disappearing]\nallowed = false\n"))
    with pytest.raises(UsageError):
        world.bank_conv.set_disappearing(timedelta(days=2))
    world.customer.receive(world.bank_conv.set_disappearing(None))
    assert world.customer_conv.disappearing_after is None


# --- record of processing ---------------------------------------------------------------------


@pytest.mark.req("ROPA-01")
def test_review_list_entries_cannot_break_the_markdown_table() -> None:
    """Finding 16: list entries (data categories, recipients) went into the Markdown table
    unescaped: a "|" or a line break split the row."""
    from compliance_support import POLICY, policy

    from entrenous.compliance import ropa

    text = POLICY.replace(
        'categories = ["marketing"]\n',
        'categories = ["marketing"]\ndata_categories = ["name | address", "line\\nbreak"]\n',
    )
    record = ropa.build(policy(text))
    markdown = ropa.to_markdown(record)
    [row] = [line for line in markdown.splitlines() if "address" in line]
    assert row.count("|") - row.count("\\|") == 3
    assert "line break" in row


@pytest.mark.req("ROPA-01")
def test_review_the_record_of_processing_shows_per_conversation_limits() -> None:
    from compliance_support import POLICY, policy

    from entrenous.compliance import ropa

    text = POLICY + (
        '\n[retention.conversations."6c1f0e2d9a8b47c3b5e4d3c2b1a09f8e"]\n'
        'category = "marketing"\nmax_age = "7y"\n'
    )
    assert "7y" in json.dumps(ropa.build(policy(text)))


@pytest.mark.req("CON-19")
def test_review_the_ledger_is_not_verified_against_an_edited_checkpoint(world: Parties) -> None:
    """Finding 17: verify_consent_ledger() took the newest checkpoint from the audit trail
    without verifying the trail, so removing the ledger's last row and editing the checkpoint
    event to match passed, while the audit trail itself no longer verified."""
    from entrenous.errors import ConsentLedgerBroken

    world.bank.record_consent(subject="customer-42", purpose="marketing", notice=NOTICE)
    world.bank.record_consent(subject="customer-42", purpose="marketing", give=False)
    connection = world.bank._store._connection
    [first] = connection.execute("SELECT hash FROM consent_ledger WHERE seq = 1").fetchall()
    connection.execute("DELETE FROM consent_ledger WHERE seq = 2")
    [(seq, raw)] = connection.execute(
        "SELECT seq, details FROM audit_events WHERE action = 'consent.recorded' "
        "ORDER BY seq DESC LIMIT 1"
    ).fetchall()
    details = json.loads(bytes(raw))
    details.update(ledger_seq=1, ledger_hash=bytes(first[0]).hex())
    connection.execute(
        "UPDATE audit_events SET details = ? WHERE seq = ?",
        (audit.canonical_json(details), seq),
    )
    with pytest.raises(AuditChainBroken):
        world.bank.verify_audit()
    with pytest.raises(ConsentLedgerBroken):
        world.bank.verify_consent_ledger()
