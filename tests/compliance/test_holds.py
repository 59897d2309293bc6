"""Legal holds (HOLD-01, HOLD-02): placing and releasing, what they need, what the audit trail
records of them (and what it does not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from compliance_support import Parties, parties

from entrenous.errors import UsageError


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Parties]:
    opened = parties(tmp_path)
    yield opened
    opened.close()


@pytest.mark.req("HOLD-01")
def test_a_hold_is_placed_on_exactly_one_target_with_a_reason(world: Parties) -> None:
    with pytest.raises(UsageError):
        world.bank.place_hold(reason="no target")
    with pytest.raises(UsageError):
        world.bank.place_hold(conversation=world.bank_conv, subject="s", reason="both")
    with pytest.raises(UsageError):
        world.bank.place_hold(subject="s", reason="   ")
    with pytest.raises(UsageError):
        world.bank.place_hold(subject="s", reason="x" * 1001)
    with pytest.raises(UsageError):
        world.bank.place_hold(conversation="00" * 16, reason="unknown conversation")
    with pytest.raises(UsageError):
        world.bank.place_hold(conversation=world.customer_conv, reason="another client's")
    assert world.bank.holds() == []
    assert [e.action for e in world.bank.audit_events()] == ["policy.applied"]


@pytest.mark.req("HOLD-01", "HOLD-02")
def test_placing_and_releasing_are_audited_without_the_reason(world: Parties) -> None:
    hold = world.bank.place_hold(
        subject="Jane Doe, IBAN DE00", reason="Litigation Doe v. Bank", reference="Case 17/26"
    )
    assert hold.active and hold.subject == "Jane Doe, IBAN DE00"
    assert "Jane" not in repr(hold) and "Litigation" not in repr(hold)
    assert [h.id for h in world.bank.holds()] == [hold.id]
    released = world.bank.release_hold(hold.id)
    assert not released.active and released.released_at is not None
    assert world.bank.holds() == [] and world.bank.holds(active_only=False) == [released]
    events = world.bank.audit_events()
    assert [e.action for e in events[-2:]] == ["hold.placed", "hold.released"]
    text = str([e.to_dict() for e in events])
    for secret in ("Jane", "IBAN", "Litigation", "Case 17"):
        assert secret not in text
    assert events[-1].details["hold"] == hold.id
    with pytest.raises(UsageError):
        world.bank.release_hold(hold.id)
    with pytest.raises(UsageError):
        world.bank.release_hold("not hex")
    assert world.bank.verify_audit() == 3


@pytest.mark.req("HOLD-02")
def test_holds_survive_a_restart(world: Parties) -> None:
    hold = world.bank.place_hold(conversation=world.bank_conv.id, reason="dispute")
    bank = world.reopen_bank()
    [again] = bank.holds()
    assert again == hold
