"""The data-key file missing, from another store, or an older copy of itself (FLT-06).

A missing or foreign key file is refused at the open with ``StoreCorrupt`` and nothing changes
(STO-10 checks the same on the store tests' templates; here on a store with compliance content,
and the key file deleted after use). An older copy of the store's own key file cannot be told
from the right one at the open (same store id, and the check of every conversation's key runs
only after an unclean shutdown): the store opens, and each conversation whose key is not in the
copy raises ``StoreCorrupt`` at its first use (history, send, receive, export), changing
nothing; the others work. Keys destroyed after the copy come back in the key file, but the rows
they protected are gone from the store: only an old copy of the store itself could use them
(the backup limit of SECURITY.md). Putting the right key file back restores everything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fault_support import Outcome, World, check_kept, integrity, observe
from store_support import assert_unchanged, raw_store, snapshot, spec_key_file_key, tables

from entrenous import Client
from entrenous.errors import StoreCorrupt


def stored(client: Client) -> dict[str, object]:
    """Every row of the store and of its key file (no history: it needs the keys)."""
    return {
        "store": tables(client._store._connection),
        "keys": tables(client._store._keys._connection),
    }


def key_file(store: Path) -> Path:
    return store.with_name(store.name + ".keys")


@pytest.mark.req("FLT-06")
@pytest.mark.parametrize("damage", ["deleted", "foreign"])
def test_a_missing_or_foreign_key_file_is_refused(world: World, damage: str) -> None:
    with world.open_bank() as bank, world.open_customer() as customer:
        before_bank, before_customer = observe(bank), observe(customer)
    saved = key_file(world.bank_path).read_bytes()
    if damage == "deleted":
        key_file(world.bank_path).unlink()
    else:
        shutil.copyfile(key_file(world.customer_path), key_file(world.bank_path))
    files = snapshot(world.directory)
    with pytest.raises(StoreCorrupt, match="data-key file"):
        world.open_bank()
    assert_unchanged(files, snapshot(world.directory))
    key_file(world.bank_path).write_bytes(saved)
    check_kept(world, before_bank, before_customer, Outcome())


@pytest.mark.req("FLT-06")
def test_an_older_copy_of_the_key_file(world: World) -> None:
    with world.open_bank() as bank, world.open_customer() as customer:
        gone_c = customer.start_conversation(bank.prekey_bundle())
        gone_b = bank.receive(gone_c.send("erased after the copy")).conversation
        gone_uid = bytes.fromhex(gone_b.id)
    old_keys = key_file(world.bank_path).read_bytes()
    with world.open_bank() as bank, world.open_customer() as customer:
        # After the copy: a new conversation (a new key) and an erasure (a destroyed key).
        new_c = customer.start_conversation(bank.prekey_bundle())
        new_b = bank.receive(new_c.send("after the copy")).conversation
        customer.receive(new_b.send("reply after the copy"))
        bank.erase(conversation=gone_b.id)
        before_bank = observe(bank)
        pending = new_c.send("sent while the key file is old")
    current_keys = key_file(world.bank_path).read_bytes()
    key_file(world.bank_path).write_bytes(old_keys)

    with world.open_bank() as bank:
        kept = bank.conversation(world.kept_bank)
        assert kept.history(1000)
        assert kept.send("the old conversation works")
        state = stored(bank)
        new = bank.conversation(new_b.id)
        for call in (
            lambda: new.history(10),
            lambda: new.send("refused"),
            lambda: bank.receive(pending),
        ):
            with pytest.raises(StoreCorrupt, match="data key is missing"):
                call()
            assert stored(bank) == state
        assert bank.verify_audit() == before_bank["audit_verified"]
        assert bank.verify_consent_ledger() == before_bank["consent_verified"]
        assert len(bank.conversations()) == len(before_bank["conversations"])
    # The erased conversation's key is back in the old copy; its rows are not in the store.
    with raw_store(key_file(world.bank_path), spec_key_file_key(world.bank_key)) as db:
        uids = {bytes(r[0]) for r in db.execute("SELECT conversation_uid FROM data_keys")}
    assert gone_uid in uids
    with raw_store(world.bank_path, world.bank_key) as db:
        assert (
            db.execute("SELECT count(*) FROM conversations WHERE uid = ?", (gone_uid,)).fetchone()[
                0
            ]
            == 0
        )

    key_file(world.bank_path).write_bytes(current_keys)
    with world.open_bank() as bank, world.open_customer() as customer:
        integrity(bank)
        after = observe(bank)
        for uid, history in before_bank["histories"].items():
            assert set(history) <= set(after["histories"][uid])
        assert bank.receive(pending).message.content == "sent while the key file is old"
        conv = bank.conversation(new_b.id)
        assert customer.receive(conv.send("and back")).message.content == "and back"
