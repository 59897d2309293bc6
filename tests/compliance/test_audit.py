"""The audit trail (AUD): every compliance action leaves an event; editing, removing or
reordering an event is detected and the first broken entry is named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from compliance_support import Parties, parties

from entrenous.compliance import audit
from entrenous.errors import AuditChainBroken


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Parties]:
    opened = parties(tmp_path)
    opened.bank_conv.set_subject("customer-42")
    hold = opened.bank.place_hold(subject="customer-42", reason="audit test")
    opened.bank.release_hold(hold.id)
    opened.clock.advance(days=31)
    opened.bank.sweep()
    yield opened
    opened.close()


def _sql(world: Parties, statement: str, params: tuple[object, ...] = ()) -> None:
    connection = world.bank._store._connection
    connection.execute(statement, params)


@pytest.mark.req("AUD-01")
def test_every_action_is_recorded_in_order(world: Parties) -> None:
    actions = [e.action for e in world.bank.audit_events()]
    assert actions == [
        "policy.applied",
        "conversation.classified",
        "hold.placed",
        "hold.released",
        "sweep",
    ]
    assert world.bank.verify_audit() == 5


@pytest.mark.req("AUD-02")
def test_events_hold_no_personal_data_or_content(world: Parties) -> None:
    text = str([e.to_dict() for e in world.bank.audit_events()])
    assert "customer-42" not in text and "audit test" not in text and "hello" not in text


@pytest.mark.req("AUD-04")
@pytest.mark.parametrize(
    ("tamper", "first_broken"),
    [
        (("UPDATE audit_events SET details = ? WHERE seq = 3", (b'{"hold":"x"}',)), 3),
        (("UPDATE audit_events SET at = at + 1 WHERE seq = 2", ()), 2),
        (("DELETE FROM audit_events WHERE seq = 2", ()), 2),
        (("DELETE FROM audit_events WHERE seq = 5", ()), 5),
        (("UPDATE audit_events SET seq = seq + 100 WHERE seq = 4", ()), 4),
    ],
)
def test_tampering_names_the_first_broken_entry(
    world: Parties, tamper: tuple[str, tuple[object, ...]], first_broken: int
) -> None:
    _sql(world, *tamper)
    with pytest.raises(AuditChainBroken) as caught:
        world.bank.verify_audit()
    assert caught.value.seq == first_broken


@pytest.mark.req("AUD-04")
def test_swapping_two_events_is_detected(world: Parties) -> None:
    rows = world.bank._store._connection.execute(
        "SELECT seq, at, action, details, prev, hash FROM audit_events WHERE seq IN (2, 3)"
    ).fetchall()
    (_, *r2), (_, *r3) = rows
    _sql(world, "DELETE FROM audit_events WHERE seq IN (2, 3)")
    for seq, row in ((2, r3), (3, r2)):
        _sql(world, "INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?)", (seq, *row))
    with pytest.raises(AuditChainBroken) as caught:
        world.bank.verify_audit()
    assert caught.value.seq == 2


@pytest.mark.req("AUD-03")
def test_an_exported_trail_verifies_offline(world: Parties) -> None:
    exported = [e.to_dict() for e in world.bank.audit_events()]
    head = audit.head(world.bank._store)
    events = [audit.AuditEvent.from_dict(item) for item in exported]
    assert audit.verify_events(events, head) == 5
    exported[1]["details"]["conversation"] = "0" * 32
    with pytest.raises(AuditChainBroken) as caught:
        audit.verify_events([audit.AuditEvent.from_dict(i) for i in exported], head)
    assert caught.value.seq == 2
