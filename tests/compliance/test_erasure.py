"""Erasure by crypto-shredding (ERA): what is erased, what a hold or a minimum retention keeps,
the signed receipt, and what is left on disk afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from compliance_support import Parties, parties

from entrenous.compliance.erasure import ErasureReceipt
from entrenous.errors import AuthenticationError, StoreCorrupt, UsageError


@pytest.fixture
def world(tmp_path: Path) -> Parties:
    opened = parties(tmp_path)
    opened.bank_conv.set_subject("customer-42")
    yield opened
    opened.close()


def _data_keys(world: Parties) -> list[tuple[bytes, int]]:
    rows = world.bank._store._keys._connection.execute(
        "SELECT conversation_uid, generation FROM data_keys"
    ).fetchall()
    return [(bytes(r[0]), r[1]) for r in rows]


@pytest.mark.req("ERA-01", "ERA-02")
def test_erasing_a_subject_removes_its_conversations_and_keys(world: Parties) -> None:
    ids = world.exchange(3)
    uid = world.bank_conv._uid
    assert (uid, 0) in _data_keys(world)
    receipt = world.bank.erase(subject="customer-42")
    assert receipt.erased_messages == 5 and receipt.kept_messages == 0
    assert receipt.scope == "subject"
    [item] = receipt.erased
    assert item["conversation"] == world.bank_conv.id
    assert set(ids) <= set(item["message_ids"])
    assert item["conversation_deleted"] is True
    assert all(k[0] != uid for k in _data_keys(world))
    assert world.bank.conversations() == []
    with pytest.raises(UsageError):
        world.bank_conv.history()
    # The wal is truncated after the erasure.
    assert (world.bank_path.with_name("bank.db-wal")).stat().st_size == 0


@pytest.mark.req("ERA-03")
def test_the_receipt_is_signed_and_content_free(world: Parties) -> None:
    world.exchange(2, text="MARKER-TEXT")
    receipt = world.bank.erase(subject="customer-42")
    text = receipt.to_json()
    assert "customer-42" not in text and "MARKER" not in text
    receipt.verify(world.bank.identity)
    again = ErasureReceipt.from_json(text)
    again.verify(world.bank.identity)
    with pytest.raises(AuthenticationError):
        receipt.verify(world.customer.identity)
    forged = ErasureReceipt.from_json(text.replace('"messages":4', '"messages":1'))
    with pytest.raises(AuthenticationError):
        forged.verify(world.bank.identity)
    assert world.bank.erasure_receipts() == [receipt]
    [event] = [e for e in world.bank.audit_events() if e.action == "erasure"]
    assert event.details["receipt"] == receipt.receipt_id
    assert event.details["target"] == receipt.target != "customer-42"


@pytest.mark.req("ERA-04", "HOLD-04")
def test_a_hold_keeps_everything_and_the_receipt_says_so(world: Parties) -> None:
    world.exchange(2)
    hold = world.bank.place_hold(subject="customer-42", reason="litigation", reference="L-9")
    receipt = world.bank.erase(subject="customer-42")
    assert receipt.erased_messages == 0 and receipt.kept_messages == 4
    [kept] = receipt.kept
    assert kept["holds"] == [hold.id] and "hold" in kept["ground"]
    assert len(world.bank_conv.history()) == 4
    world.bank.release_hold(hold.id)
    assert world.bank.erase(subject="customer-42").erased_messages == 4


@pytest.mark.req("ERA-05")
def test_a_minimum_retention_keeps_recent_messages_under_a_new_key(world: Parties) -> None:
    world.bank_conv.set_category("contract")
    world.clock.advance(days=365 * 10 + 5)
    new_ids = world.exchange(2, text="recent")
    uid = world.bank_conv._uid
    receipt = world.bank.erase(conversation=world.bank_conv)
    assert receipt.erased_messages == 2  # the two greetings, older than ten years
    assert receipt.kept_messages == 2
    [kept] = receipt.kept
    assert "minimum retention" in kept["ground"] and "HGB" in kept["ground"]
    assert kept["until"] > receipt.at
    assert [m.id for m in world.bank_conv.history()] == new_ids[::-1]
    assert _data_keys(world).count((uid, 1)) == 1
    assert (uid, 0) not in _data_keys(world)
    bank = world.reopen_bank()
    assert [m.text for m in bank.conversation(world.bank_conv.id).history()] == [
        "recent 1",
        "recent 0",
    ]


@pytest.mark.req("ERA-01")
def test_erase_needs_exactly_one_target(world: Parties) -> None:
    with pytest.raises(UsageError):
        world.bank.erase()
    with pytest.raises(UsageError):
        world.bank.erase(subject="customer-42", conversation=world.bank_conv)
    assert world.bank.erase(subject="nobody").erased == []


@pytest.mark.req("ERA-06")
def test_a_backup_taken_before_the_erasure_cannot_be_read_afterwards(
    world: Parties, tmp_path: Path
) -> None:
    world.exchange(3, text="MARKER-SECRET")
    backup = tmp_path / "backup"
    backup.mkdir()
    world.bank.close()
    for suffix in ("", ".kdf"):
        source = world.bank_path.with_name("bank.db" + suffix)
        if source.exists():
            shutil.copy2(source, backup / ("bank.db" + suffix))
    world.reopen_bank().erase(subject="customer-42")
    world.bank.close()
    # The store copy alone, beside today's key file: the erased conversation's key is gone.
    shutil.copy2(world.bank_path.with_name("bank.db.keys"), backup / "bank.db.keys")
    from entrenous import Client

    restored = Client.open(backup / "bank.db", key=world.bank_key, sweep=False)
    try:
        [conv] = restored.conversations()
        with pytest.raises(StoreCorrupt):
            conv.history()
    finally:
        restored.close()
    world.bank = Client.open(world.bank_path, key=world.bank_key, clock=world.clock)


@pytest.mark.req("ERA-02", "SWP-03")
def test_bulk_deletions_checkpoint_once_and_restore_the_automatic_checkpoint(
    world: Parties,
) -> None:
    store = world.bank._store
    store_class = type(store)
    seen: list[tuple[str, int]] = []

    def watch(name: str) -> object:
        original = getattr(store_class, name)

        def spy(self: object, *args: object, **kwargs: object) -> object:
            seen.append(
                (name, store._connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            )
            return original(self, *args, **kwargs)

        return spy

    world.exchange(3)
    names = ("delete_messages", "erase_conversation", "truncate_journal")
    saved = {name: getattr(store_class, name) for name in names}
    try:
        for name in names:
            setattr(store_class, name, watch(name))
        world.clock.advance(days=31)
        world.bank.sweep()
        world.exchange(2)
        world.bank.erase(subject="customer-42")
    finally:
        for name, method in saved.items():
            setattr(store_class, name, method)
    # Deleting runs with the automatic checkpoint off; the truncation after, once per action,
    # with it restored.
    assert seen == [
        ("delete_messages", 0),
        ("truncate_journal", 1000),
        ("erase_conversation", 0),
        ("truncate_journal", 1000),
    ]
    assert store._connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
