"""Access and portability (EXP): a subject's export validates against the published schema and
holds everything about the subject, and nothing about anyone else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from compliance_support import Parties, parties

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "spec" / "export.schema.json").read_text()
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Parties]:
    opened = parties(tmp_path)
    opened.bank_conv.set_subject("customer-42")
    opened.bank_conv.set_category("advice")
    yield opened
    opened.close()


@pytest.mark.req("EXP-01", "EXP-02")
def test_the_export_validates_and_holds_the_subjects_data(world: Parties) -> None:
    world.exchange(2, text="Frage")
    world.bank_conv.send({"text": "Gern!", "buttons": ["Konto", "Karte"]})
    hold = world.bank.place_hold(subject="customer-42", reason="complaint", reference="K-1")
    from compliance_support import NOTICE

    world.bank.record_consent(subject="customer-42", purpose="marketing", notice=NOTICE)
    exported = world.bank.export("customer-42")
    jsonschema.validate(exported, SCHEMA)
    json.dumps(exported)  # JSON-compatible throughout
    [conv] = exported["conversations"]
    assert conv["id"] == world.bank_conv.id and conv["category"] == "advice"
    contents = [m["content"] for m in conv["messages"]]
    assert contents[:4] == ["hello", "hello back", "Frage 0", "Frage 1"]
    assert contents[4] == {"text": "Gern!", "buttons": ["Konto", "Karte"]}
    assert conv["retention"]["rule"] is not None
    assert [h["id"] for h in exported["holds"]] == [hold.id]
    [consent] = exported["consent_records"]
    assert consent["purpose"] == "marketing" and consent["state_now"] == "given"
    actions = {e["action"] for e in exported["audit_events"]}
    assert {"conversation.classified", "hold.placed"} <= actions
    assert world.bank.audit_events()[-1].action == "export"


@pytest.mark.req("EXP-03")
def test_the_export_leaves_out_other_subjects(world: Parties, tmp_path: Path) -> None:
    from entrenous import Client

    with Client.open(tmp_path / "other.db", key=b"\x07" * 32) as other:
        conv = other.start_conversation(world.bank.prekey_bundle())
        received = world.bank.receive(conv.send("someone else's secret"))
    received.conversation.set_subject("customer-99")
    exported = world.bank.export("customer-42")
    text = json.dumps(exported)
    assert "someone else" not in text and received.conversation.id not in text
    empty = world.bank.export("nobody")
    jsonschema.validate(empty, SCHEMA)
    assert empty["conversations"] == []


@pytest.mark.req("EXP-01")
def test_an_export_pages_through_long_conversations(world: Parties) -> None:
    world.exchange(1205)
    exported = world.bank.export("customer-42")
    messages = exported["conversations"][0]["messages"]
    assert len(messages) == 1207
    assert len({m["id"] for m in messages}) == 1207
    assert messages[-1]["content"] == "message 1204"
