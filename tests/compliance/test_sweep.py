"""Retention sweeps (RET): what expires goes, what a rule or a hold keeps stays, at a cost that
follows the expired rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from compliance_support import DAY_MS, Clock, Parties, parties, policy

from entrenous import Client
from entrenous.errors import UsageError


@pytest.fixture
def world(tmp_path: Path) -> Parties:
    opened = parties(tmp_path)
    yield opened
    opened.close()


def _count(client: Client) -> int:
    return sum(len(c.history(limit=1000)) for c in client.conversations())


@pytest.mark.req("SWP-01", "SWP-03")
def test_messages_past_the_default_maximum_are_swept(world: Parties) -> None:
    world.exchange(5)
    assert _count(world.bank) == 7
    world.clock.advance(days=29)
    assert world.bank.sweep().deleted == 0
    world.clock.advance(days=2)
    report = world.bank.sweep()
    assert report.deleted == 7
    assert report.by_conversation == {world.bank_conv.id: 7}
    assert _count(world.bank) == 0
    # The customer's store has no policy: it keeps everything.
    assert world.customer.sweep().deleted == 0
    assert len(world.customer_conv.history(limit=100)) == 7
    assert world.bank.audit_events()[-1].action == "sweep"
    assert world.bank.verify_audit() >= 2


@pytest.mark.req("SWP-04")
def test_a_dry_run_reports_and_changes_nothing(world: Parties) -> None:
    world.exchange(3)
    world.clock.advance(days=31)
    events = len(world.bank.audit_events())
    dry = world.bank.sweep(dry_run=True)
    assert dry.dry_run and dry.deleted == 5
    assert _count(world.bank) == 5
    assert len(world.bank.audit_events()) == events
    assert world.bank.sweep().deleted == 5


@pytest.mark.req("SWP-03")
def test_the_sweep_runs_at_open(world: Parties) -> None:
    world.exchange(2)
    world.clock.advance(days=31)
    bank = world.reopen_bank()
    assert _count(bank) == 0


@pytest.mark.req("SWP-02")
def test_a_minimum_age_keeps_messages_the_maximum_then_removes_them(world: Parties) -> None:
    world.bank_conv.set_category("contract")
    world.exchange(2)
    world.clock.advance(days=365 * 10 + 10)
    assert world.bank.sweep().deleted == 0
    assert _count(world.bank) == 4
    world.clock.advance(days=366)
    assert world.bank.sweep().deleted == 4


@pytest.mark.req("SWP-05")
def test_next_sweep_at_is_the_earliest_expiry(world: Parties) -> None:
    first = world.bank.next_sweep_at()
    assert first is not None
    assert first.timestamp() == pytest.approx(world.clock.now + 30 * 86_400, abs=1)
    world.bank_conv.set_category("advice")
    later = world.bank.next_sweep_at()
    assert later is not None and later > first


@pytest.mark.req("SWP-06")
def test_a_new_policy_recomputes_stored_messages(world: Parties) -> None:
    world.exchange(2)
    shorter = policy(
        """\
version = 1

[controller]
name = "Example Bank AG"
contact = "privacy@bank.example"

[retention.default]
max_age = "7d"
"""
    )
    world.bank.apply_policy(shorter)
    world.clock.advance(days=8)
    assert world.bank.sweep().deleted == 4
    assert [e.action for e in world.bank.audit_events()].count("policy.applied") == 2


@pytest.mark.req("SWP-06")
def test_a_policy_without_a_category_in_use_is_refused(world: Parties) -> None:
    world.bank_conv.set_category("contract")
    no_contract = policy(
        """\
version = 1

[controller]
name = "Example Bank AG"
contact = "privacy@bank.example"

[retention.default]
max_age = "7d"
"""
    )
    before = world.bank.policy
    with pytest.raises(UsageError):
        world.bank.apply_policy(no_contract)
    assert world.bank.policy is before
    with pytest.raises(UsageError):
        world.bank_conv.set_category("no-such-category")


@pytest.mark.req("HOLD-03")
def test_a_hold_stops_the_sweep_until_released(world: Parties) -> None:
    world.exchange(2)
    hold = world.bank.place_hold(conversation=world.bank_conv, reason="dispute", reference="C-1")
    world.clock.advance(days=40)
    report = world.bank.sweep()
    assert report.deleted == 0 and report.held_conversations == 1
    assert world.bank.next_sweep_at() is None
    world.bank.release_hold(hold.id)
    assert world.bank.sweep().deleted == 4


@pytest.mark.req("HOLD-03")
def test_a_subject_hold_covers_conversations_started_later(tmp_path: Path) -> None:
    world = parties(tmp_path)
    try:
        world.bank_conv.set_subject("customer-7")
        world.bank.place_hold(subject="customer-7", reason="regulator request")
        world.clock.advance(days=40)
        assert world.bank.sweep().deleted == 0
    finally:
        world.close()


@pytest.mark.req("SWP-07")
def test_the_sweep_reads_the_expiry_index_not_the_table(world: Parties) -> None:
    store = world.bank._store
    plans = []
    inner = store._connection

    class Spy:
        def execute(self, sql: str, params: object = ()) -> object:
            if sql.startswith(("SELECT id, conversation_id", "SELECT expires_at")):
                plans.append(inner.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
            return inner.execute(sql, params)

        def __getattr__(self, name: str) -> object:
            return getattr(inner, name)

    store._connection = Spy()
    try:
        world.bank.sweep(dry_run=True)
        world.bank.next_sweep_at()
    finally:
        store._connection = inner
    assert len(plans) == 3  # the dry run (expired, next expiry), then next_sweep_at
    for plan in plans:
        text = " ".join(str(row[-1]) for row in plan)
        # Both read the expiry index alone, never the table.
        assert "COVERING INDEX messages_by_expiry" in text, text
        assert "SCAN m " not in text + " " and "SCAN messages" not in text, text


@pytest.mark.req("DIS-01", "DIS-02")
def test_a_disappearing_timer_applies_on_both_ends(world: Parties) -> None:
    envelope = world.customer_conv.set_disappearing(timedelta(days=1))
    received = world.bank.receive(envelope)
    assert received.message.control == "timer"
    assert world.bank_conv.disappearing_after == timedelta(days=1)
    assert world.customer_conv.disappearing_after == timedelta(days=1)
    world.exchange(3)
    world.clock.advance(days=1, seconds=1)
    # Both ends delete what was stored under the timer (the timer message included).
    assert world.customer.sweep().deleted == 4
    assert world.bank.sweep().deleted == 4
    assert [m.text for m in world.bank_conv.history()] == ["hello back", "hello"]
    assert "timer.changed" in {e.action for e in world.bank.audit_events()}


@pytest.mark.req("DIS-03")
def test_a_minimum_age_and_a_hold_outrank_the_timer(world: Parties) -> None:
    world.bank_conv.set_category("contract")
    world.bank.receive(world.customer_conv.set_disappearing(timedelta(hours=1)))
    world.exchange(2)
    world.clock.advance(days=2)
    assert world.customer.sweep().deleted == 3
    assert world.bank.sweep().deleted == 0
    assert len(world.bank_conv.history()) == 5


@pytest.mark.req("DIS-03")
def test_the_policy_maximum_caps_a_longer_timer(world: Parties) -> None:
    world.bank.receive(world.customer_conv.set_disappearing(timedelta(days=365)))
    world.exchange(1)
    world.clock.advance(days=31)
    # The bank's 30-day maximum applies; the customer (no policy) keeps them for the year.
    assert world.bank.sweep().deleted == 4
    assert world.customer.sweep().deleted == 0


@pytest.mark.req("DIS-04")
def test_turning_the_timer_off(world: Parties) -> None:
    world.bank.receive(world.customer_conv.set_disappearing(timedelta(days=1)))
    world.bank.receive(world.customer_conv.set_disappearing(None))
    assert world.bank_conv.disappearing_after is None
    world.exchange(1)
    world.clock.advance(days=2)
    # Only the first timer message was stored under the one-day timer.
    assert world.customer.sweep().deleted == 1


@pytest.mark.req("DIS-05")
@pytest.mark.parametrize("ms", [0, 999, -5, 10**20, "1d", 1.5, True])
def test_a_bad_timer_from_the_peer_is_refused_and_stores_nothing(
    world: Parties, ms: object
) -> None:
    from entrenous import payload as codec
    from entrenous.errors import MalformedEnvelope

    session = world.customer._session(world.customer._record(world.customer_conv._uid))
    body = codec.wire.pack(
        [1, codec.KIND_CONTROL, b"\x01" * 16, 1, _json({"type": "timer", "ms": ms})]
    )
    envelope = session.encrypt(body)
    before = len(world.bank_conv.history())
    with pytest.raises(MalformedEnvelope):
        world.bank.receive(envelope)
    assert len(world.bank_conv.history()) == before
    assert world.bank_conv.disappearing_after is None


def _json(value: object) -> bytes:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def test_clock_helper() -> None:
    clock = Clock(0)
    clock.advance(days=1)
    assert clock() * 1000 == DAY_MS
