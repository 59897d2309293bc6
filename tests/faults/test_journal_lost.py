"""A journal file deleted between runs (FLT-03, FLT-04, STO-12).

The store runs in WAL mode: a commit is in ``<store>-wal`` until a checkpoint copies it into the
store file; a clean close checkpoints and removes the log. A process killed with commits only in
the log, whose log is then deleted, would silently come back at the last checkpoint: ratchet
states behind envelopes that left (the next send reusing their message keys) and received
messages gone. The store file carries a flag saying "open" from the first change of a session
to its clean close; an open that finds it set and no log beside the store raises ``JournalLost``
and changes nothing, and the store opens again, whole, once the log is back.

The data-key file uses a rollback journal (``.keys-journal``): after a kill in the middle of its
write, the journal repairs it at the next open; without the journal the file is torn, and the
open (which checks the key file after every unclean shutdown) raises ``StoreCorrupt``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fault_support import (
    WORKER,
    Outcome,
    World,
    check_kept,
    observe,
    python,
    run_worker,
    worker_env,
)
from store_support import assert_unchanged, raw_store, snapshot

from entrenous.errors import JournalLost, StoreCorrupt

#: Kills of the random-time campaign below; CI runs a few, ENTRENOUS_FAULT_KILLS sets more.
KILLS = int(os.environ.get("ENTRENOUS_FAULT_KILLS", "3"))
#: A session that writes in every way, then is killed with its commits in the log.
BUSY = [
    "send:bank",
    "send:customer",
    "receive:bank",
    "receive:customer",
    "send:customer",
    "receive_many:bank",
    "record_consent:bank",
    "hold:bank",
    "send:bank",
]


def wal(store: Path) -> Path:
    return store.with_name(store.name + "-wal")


def shm(store: Path) -> Path:
    return store.with_name(store.name + "-shm")


def snapshots(world: World) -> tuple[dict[str, object], dict[str, object]]:
    with world.open_bank() as bank, world.open_customer() as customer:
        return observe(bank), observe(customer)


def open_flag(store: Path, key: bytes) -> bytes | None:
    """The store file's own "open" flag, read from a copy of the store file alone."""
    alone = store.with_name("alone-" + store.name)
    shutil.copyfile(store, alone)
    try:
        with raw_store(alone, key) as db:
            row = db.execute("SELECT value FROM store_meta WHERE name = 'open'").fetchone()
    finally:
        for suffix in ("", "-wal", "-shm"):
            alone.with_name(alone.name + suffix).unlink(missing_ok=True)
    return None if row is None else bytes(row[0])


@pytest.mark.req("FLT-03")
def test_a_clean_close_leaves_no_log_and_the_flag_down(world: World) -> None:
    outcome = run_worker(world, ops=BUSY)
    assert not outcome.errors()
    assert not wal(world.bank_path).exists()
    assert open_flag(world.bank_path, world.bank_key) == b"\x00"
    shm(world.bank_path).unlink(missing_ok=True)


@pytest.mark.req("FLT-03", "STO-12")
def test_a_killed_session_whose_log_is_deleted_is_refused(world: World) -> None:
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(world, killed=True, ops=[*BUSY, "kill:-"])
    assert len(outcome.sent("bank")) == 2
    for store in (world.bank_path, world.customer_path):
        assert wal(store).stat().st_size > 0, "the kill left no commit in the log"
        assert open_flag(store, world.bank_key if store == world.bank_path else world.customer_key)
    saved = {store: wal(store).read_bytes() for store in (world.bank_path, world.customer_path)}
    for store in saved:
        wal(store).unlink()
    files = snapshot(world.directory)
    for opener in (world.open_bank, world.open_customer, world.open_bank):
        with pytest.raises(JournalLost, match="restore the -wal file"):
            opener()
    # Nothing changed; the index (-shm, rebuilt from the log at every open) may go.
    assert_unchanged(
        {k: v for k, v in files.items() if not k.endswith("-shm")},
        {k: v for k, v in snapshot(world.directory).items() if not k.endswith("-shm")},
    )
    for store, data in saved.items():
        wal(store).write_bytes(data)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-03")
def test_a_killed_session_with_its_log_opens_whole(world: World) -> None:
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(world, killed=True, ops=[*BUSY, "kill:-"])
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-03")
def test_the_index_deleted_after_a_kill_is_harmless(world: World) -> None:
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(world, killed=True, ops=[*BUSY, "kill:-"])
    for store in (world.bank_path, world.customer_path):
        shm(store).unlink()
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-03")
def test_a_killed_session_that_only_read_may_lose_its_log(world: World) -> None:
    """No change, no flag: the log of a session that wrote nothing holds nothing to lose."""
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(world, killed=True, ops=["kill:-"])
    for store in (world.bank_path, world.customer_path):
        wal(store).unlink(missing_ok=True)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-03", "STO-12")
def test_a_crash_recovery_puts_the_flag_into_the_store_file_first(world: World) -> None:
    """An open that finds a log (a crash) checkpoints it and the flag into the store file before
    anything else: a log that held the only copy of the flag cannot be lost afterwards."""
    before_bank, before_customer = snapshots(world)
    # The previous session wrote the flag into the log only, and died before its checkpoint:
    # the store file from before the write, the log holding the write.
    shutil.copyfile(world.bank_path, world.directory / "before.db")
    with raw_store(world.bank_path, world.bank_key) as db:
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("UPDATE store_meta SET value = x'01' WHERE name = 'open'")
        shutil.copyfile(wal(world.bank_path), world.directory / "flag-only.wal")
    shutil.copyfile(world.directory / "before.db", world.bank_path)
    shutil.copyfile(world.directory / "flag-only.wal", wal(world.bank_path))
    shm(world.bank_path).unlink(missing_ok=True)
    assert open_flag(world.bank_path, world.bank_key) == b"\x00"
    # Reopened (the log is there) and killed before writing anything: the file says open.
    run_worker(world, killed=True, ops=["kill:-"])
    assert open_flag(world.bank_path, world.bank_key) == b"\x01"
    wal(world.bank_path).unlink()
    with pytest.raises(JournalLost):
        world.open_bank()
    # The same log lost before that open: the store file says closed, nothing was lost.
    (world.directory / "flag-only.wal").unlink()
    with raw_store(world.bank_path, world.bank_key) as db:
        db.execute("UPDATE store_meta SET value = x'00' WHERE name = 'open'")
    check_kept(world, before_bank, before_customer, Outcome())


@pytest.mark.req("FLT-03")
def test_a_lost_log_after_random_kills_never_rolls_back_silently(world: World) -> None:
    """Kill the worker at random moments of a send/receive loop and delete its log: the next
    open either refuses (JournalLost), or has lost nothing (the kill came before any commit)."""
    rng = random.Random(int(os.environ.get("ENTRENOUS_FAULT_SEED", "6")))
    loop = ["send:bank", "receive:customer", "send:customer", "receive:bank"] * 200
    before_bank, before_customer = snapshots(world)
    refused = 0
    for _ in range(KILLS):
        spec = {**world.spec(), "ops": loop}
        process = subprocess.Popen(  # noqa: S603 - our own worker
            [python(), str(WORKER), __import__("json").dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=worker_env(),
        )
        assert process.stdout is not None
        process.stdout.readline()  # the worker is up: both stores are open
        time.sleep(rng.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        output = process.communicate()[0].decode()
        complete = output[: output.rfind("\n") + 1]
        outcome = Outcome.parse(complete)
        saved = wal(world.bank_path).read_bytes() if wal(world.bank_path).exists() else None
        wal(world.bank_path).unlink(missing_ok=True)
        try:
            world.open_bank().close()
        except JournalLost:
            refused += 1
            assert saved is not None
            wal(world.bank_path).write_bytes(saved)
        check_kept(world, before_bank, before_customer, outcome)
        before_bank, before_customer = snapshots(world)
    print(f"{KILLS} kills, {refused} opens refused with JournalLost")


@pytest.mark.req("FLT-04")
def test_a_torn_key_file_whose_journal_is_deleted_is_refused(world: World) -> None:
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(world, killed=True, ops=["send:bank", "spill_keys:bank"])
    journal = world.directory / "bank.db.keys-journal"
    assert journal.stat().st_size > 0
    saved = journal.read_bytes()
    journal.unlink()
    files = snapshot(world.directory)
    # A torn file either fails the check (as it does with this spill, in every run seen), or
    # is a sound file holding every key in use: then nothing is lost.
    try:
        world.open_bank().close()
    except StoreCorrupt as exc:
        assert "keys-journal" in str(exc)
        # The key file is untouched; closing the refused connection copies the store's log
        # into the store file (as SQLite does), with the flag down: the log held no loss.
        after = snapshot(world.directory)
        assert after["bank.db.keys"] == files["bank.db.keys"]
        assert "bank.db.keys-journal" not in after
        journal.write_bytes(saved)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-04")
def test_a_kill_in_a_key_file_write_is_repaired_by_its_journal(world: World) -> None:
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(world, killed=True, ops=["send:bank", "spill_keys:bank"])
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-03", "STO-12")
def test_the_command_line_reports_a_lost_log(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_support import one_error_line, run

    run_worker(world, killed=True, ops=["send:bank", "kill:-"])
    wal(world.bank_path).unlink()
    key = tmp_path / "bank.key"
    key.write_text(world.bank_key.hex() + "\n")
    key.chmod(0o600)
    result = run(capsys, "audit", "verify", "--store", world.bank_path, "--key-file", key)
    assert result.status == 3  # EXIT_STORE
    assert "restore the -wal file" in one_error_line(result)
