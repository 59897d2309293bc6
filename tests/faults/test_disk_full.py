"""Disk full: every write of the library fails part way, as on a full disk (FLT-01, FLT-02).

Portable and without root: a worker process runs the operations with ``RLIMIT_FSIZE`` set and
``SIGXFSZ`` ignored, so that any write that would make a file larger than the limit fails with
``EFBIG``, as a full disk fails it with ``ENOSPC``. The limits are chosen so that different
writes fail: the write-ahead log growing past its first frames, the data-key file's rollback
journal, the checkpoint growing the store file, the creation of a store. Where ``mount`` works
(root in a container that allows it), a real 8 MiB tmpfs is filled too (ENOSPC, SQLITE_FULL).

After each run the fault is removed (the worker has exited), both stores are reopened and
:func:`fault_support.check_kept` proves that nothing committed was lost or changed, that every
envelope ``send`` returned is stored and decrypts once at the peer, and that both can talk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from compliance_support import Clock
from fault_support import (
    Outcome,
    World,
    assert_typed,
    check_kept,
    integrity,
    observe,
    python,
    run_worker,
    worker_env,
)
from store_support import StatementSpy

from entrenous import Client
from entrenous.errors import JournalLost, StoreCorrupt, StoreError
from entrenous.store import sqlcipher as sqlcipher_store

_MOUNT, _UMOUNT = shutil.which("mount") or "", shutil.which("umount") or ""
#: Every operation that writes, in an order that leaves work for the next one.
WRITES = [
    "send:bank",
    "send:customer",
    "send:customer",
    "receive:bank",
    "receive_many:bank",
    "receive:customer",
    "bundle:bank",
    "start:customer",
    "receive:bank",
    "sweep:bank",
    "apply_policy:bank",
    "record_consent:bank",
    "hold:bank",
    "erase:bank",
    "send:bank",
    "receive:customer",
    "close:bank",
    "reopen:bank",
    "send:bank",
]


def snapshots(world: World) -> tuple[dict[str, object], dict[str, object]]:
    with world.open_bank() as bank, world.open_customer() as customer:
        return observe(bank), observe(customer)


@pytest.mark.req("FLT-01", "FLT-02")
@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(8 * 1024, id="wal-2-frames"),
        pytest.param(24 * 1024, id="wal-6-frames"),
        pytest.param(72 * 1024, id="wal-17-frames"),
    ],
)
def test_writes_past_the_limit_fail_typed_and_lose_nothing(world: World, limit: int) -> None:
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(world, fsize=limit, ops=WRITES)
    assert_typed(outcome)
    assert outcome.errors(), "the limit made no write fail: the test proves nothing"
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-01", "FLT-02")
def test_the_checkpoint_cannot_grow_the_store_file(world: World) -> None:
    """The limit is the store file's size: the log may grow, the checkpoint copying it back
    into a store file that must grow fails (sweep and erase truncate the log)."""
    before_bank, before_customer = snapshots(world)
    limit = os.path.getsize(world.bank_path)
    ops = ["send:customer"] * 40 + ["receive_many:bank", "erase:bank", "sweep:bank"] + WRITES
    outcome = run_worker(world, fsize=limit, ops=ops)
    assert_typed(outcome)
    assert outcome.errors()
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-01")
@pytest.mark.parametrize("limit", [8 * 1024, 64 * 1024])
def test_a_sweep_and_an_erasure_with_work_to_do(world: World, limit: int) -> None:
    """Messages that expire (default retention, 30 days), the clock 60 days on, then the limit:
    the sweep and the erasure fail typed and whole (each batch with its audit event)."""
    before_bank, before_customer = snapshots(world)
    ops = [
        "bundle:bank",
        "start:customer",
        "receive:bank",
        *["send:customer", "receive:bank", "send:bank", "receive:customer"] * 3,
        "advance:-",
        "fault:-",
        "sweep:bank",
        "erase:bank",
        "sweep:bank",
        "close:bank",
    ]
    outcome = run_worker(world, fsize=limit, fault_later=True, ops=ops)
    assert_typed(outcome)
    assert [r["ok"] for r in outcome.results if r["op"] == "sweep"] == [False, False]
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-01", "FLT-03")
def test_a_close_that_cannot_checkpoint_keeps_the_log_and_its_protection(world: World) -> None:
    """The store file cannot grow: the log keeps the session at the close (no .closed note, the
    flag stays "open"), and losing that log afterwards is refused, never opened as it is."""
    before_bank, before_customer = snapshots(world)
    limit = os.path.getsize(world.bank_path)
    # The session grows the store past its file (in the log), then the limit comes.
    ops = ["send:customer", "receive:bank"] * 40 + ["fault:-", "close:bank"]
    outcome = run_worker(world, fsize=limit, fault_later=True, ops=ops)
    assert_typed(outcome)
    assert len(outcome.received("bank")) == 40
    log = world.bank_path.with_name("bank.db-wal")
    assert log.stat().st_size > 0, "the close checkpointed: the test proves nothing"
    assert not world.bank_path.with_name("bank.db.closed").exists()
    saved = log.read_bytes()
    log.unlink()
    # The close's checkpoint was cut short: the store file is half written, and without its
    # log it reads as damaged, or says it was left open.
    with pytest.raises(StoreCorrupt, match="restore"):
        world.open_bank()
    log.write_bytes(saved)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-01", "FLT-02")
def test_opening_when_the_index_file_cannot_grow(world: World) -> None:
    """The shared-memory index (32 KiB) cannot be created: the open is refused with a plain
    StoreError naming the file system, never WrongKey (it was WrongKey before: the regression
    test of that bug), and nothing is lost."""
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(
        world, fsize=4096, open_under_fault=True, ops=["open:bank", "open:customer", *WRITES]
    )
    assert_typed(outcome)
    refusals = outcome.results[1:3]
    assert [(r["ok"], r["error"]) for r in refusals] == [(False, "StoreError")] * 2
    assert all("disk I/O error" in r["message"] for r in refusals)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-01", "FLT-02")
def test_opening_under_the_limit(world: World) -> None:
    """A cleanly closed store opens (an open writes nothing); its first write fails typed."""
    before_bank, before_customer = snapshots(world)
    outcome = run_worker(
        world, fsize=36 * 1024, open_under_fault=True, ops=["open:bank", "open:customer", *WRITES]
    )
    assert_typed(outcome)
    assert [r["ok"] for r in outcome.results[1:3]] == [True, True]
    assert outcome.errors()
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-01", "FLT-02")
@pytest.mark.parametrize("limit", [0, 4096, 20 * 1024, 60 * 1024])
def test_creating_a_store_under_the_limit(tmp_path: Path, limit: int) -> None:
    """Creation fails typed; the next open (limit gone) creates the store from scratch."""
    key = os.urandom(32)
    path = tmp_path / "new.db"
    script = (
        "import resource, signal, sys\n"
        "from entrenous import Client\n"
        "from entrenous.errors import EntrenousError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    Client.open({str(path)!r}, key=bytes.fromhex({key.hex()!r})).close()\n"
        "except EntrenousError as exc:\n"
        "    print('typed', type(exc).__name__, exc)\n"
        "else:\n"
        "    print('created')\n"
    )
    done = subprocess.run(  # noqa: S603 - our own script
        [python(), "-c", script], capture_output=True, text=True, env=worker_env(), check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(("typed", "created")), done.stdout
    with Client.open(path, key=key) as client:
        assert client.conversations() == []
        assert client._store.integrity_check()
        client.prekey_bundle()


def _mount_tmpfs(target: Path, size: str) -> bool:
    if os.geteuid() != 0 or not _MOUNT or not _UMOUNT:
        return False
    target.mkdir()
    done = subprocess.run(  # noqa: S603 - a fixed command
        [_MOUNT, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.mark.req("FLT-01", "FLT-02")
def test_a_real_full_tmpfs(world_template: World, tmp_path: Path) -> None:
    """On an 8 MiB tmpfs, filled but for 128 KiB by a ballast file (ENOSPC: SQLITE_FULL)."""
    mount = tmp_path / "tmpfs"
    if not _mount_tmpfs(mount, "8m"):
        pytest.skip("cannot mount a tmpfs here (not root, or not allowed)")
    try:
        world = world_template.copy_to(mount / "world")
        before_bank, before_customer = snapshots(world)
        fd = os.open(mount / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) == 4096:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        os.truncate(mount / "ballast", os.path.getsize(mount / "ballast") - 128 * 1024)
        outcome = run_worker(
            world, open_under_fault=True, ops=["open:bank", "open:customer", *WRITES * 3]
        )
        assert_typed(outcome)
        assert outcome.errors(), "the full tmpfs made no write fail"
        assert any("disk is full" in e["message"] for e in outcome.errors())
        (mount / "ballast").unlink()
        check_kept(world, before_bank, before_customer, outcome)
    finally:
        subprocess.run([_UMOUNT, "-l", str(mount)], check=False)  # noqa: S603


@pytest.mark.req("FLT-01", "FLT-03")
def test_the_close_writes_closed_only_after_a_whole_checkpoint(world: World) -> None:
    """If the close's checkpoint fails, the flag is not written (a half-written store file must
    never say "closed"); the close leaves the note only once SQLite's own close removed the log."""
    bank = world.open_bank()
    bank.conversation(world.kept_bank).send("a change: the session flags the store")
    spy = StatementSpy(bank._store._connection, fail_on="PRAGMA WAL_CHECKPOINT")
    bank._store._connection = spy
    bank.close()
    assert spy.count("PRAGMA WAL_CHECKPOINT") == 1
    assert spy.count("UPDATE STORE_META") == 0
    assert world.bank_path.with_name("bank.db.closed").exists()
    check_kept(world, *snapshots(world), Outcome())


@pytest.mark.req("FLT-01")
def test_a_sweep_or_an_erasure_whose_log_cannot_be_truncated_says_it_committed(
    world: World,
) -> None:
    """Their deletions commit, then the log is truncated (ERA-02): a truncation that fails
    (a full disk: the store file cannot grow) must not read as "nothing was changed"."""
    clock = Clock(world.start + 400 * 86_400)  # the world's uncategorised messages expired
    with world.open_bank(clock) as bank, world.open_customer(clock) as customer:
        conv = customer.start_conversation(bank.prekey_bundle())
        started = bank.receive(conv.send("erase me")).conversation
        clock.now += 40 * 86_400
        for call, claim in (
            (bank.sweep, "the sweep deleted 1 message, but"),
            (lambda: bank.erase(conversation=started), "the erasure is committed"),
        ):
            real = bank._store._connection
            bank._store._connection = StatementSpy(real, fail_on="PRAGMA WAL_CHECKPOINT")
            with pytest.raises(StoreError, match=claim):
                call()
            bank._store._connection = real
        assert [r.target for r in bank.erasure_receipts()][-1] == started.id
        assert started.id not in [c.id for c in bank.conversations()]
    with world.open_bank() as bank:
        integrity(bank)
        assert started.id not in [c.id for c in bank.conversations()]


@pytest.mark.req("FLT-01", "FLT-03")
def test_a_refused_recovery_writes_closed_only_after_a_whole_checkpoint(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: an open after a crash whose checkpoint failed (a full disk) was refused, and
    then committed the "closed" flag into the log before its connection's close copied that log
    into the store file: with the disk still full, that copy is cut short too, and a store file
    half written could say "closed" (its log lost afterwards: no JournalLost, a damaged or
    rolled-back store opened). As at the close, the flag is written only after a whole
    checkpoint."""
    run_worker(world, killed=True, ops=["send:customer", "receive:bank", "kill:-"])
    assert world.bank_path.with_name("bank.db-wal").stat().st_size > 0
    spies: list[StatementSpy] = []
    connect = sqlcipher_store._connect

    def spying(path: Path, key: bytes, *, immutable: bool = False) -> Any:
        connection = connect(path, key, immutable=immutable)
        if immutable or path.name != "bank.db":
            return connection
        spies.append(StatementSpy(connection, fail_on="PRAGMA WAL_CHECKPOINT", failures=9))
        return spies[-1]

    monkeypatch.setattr(sqlcipher_store, "_connect", spying)
    with pytest.raises(StoreError):
        world.open_bank()
    assert len(spies) == 1 and spies[0].count("PRAGMA WAL_CHECKPOINT") >= 1
    assert spies[0].count("UPDATE STORE_META") == 0


@pytest.mark.req("FLT-03")
def test_a_closed_note_speaks_only_for_the_store_file_it_was_left_beside(world: World) -> None:
    """Regression: the ``.closed`` note (left by a close that could not write its flag) said
    "closed cleanly" for whatever store file lay beside it at the next open: a copy of the store
    file taken while a client had it open, put back before that open, was opened rolled back
    without a word. The note now carries the store file's modification time, and only vouches for
    that file."""
    bank = world.open_bank()
    bank.conversation(world.kept_bank).send("a change: the session flags the store")
    bank._store.truncate_journal()
    taken_while_open = world.bank_path.read_bytes()
    bank.conversation(world.kept_bank).send("a change the copy does not have")
    bank._store._connection = StatementSpy(bank._store._connection, fail_on="UPDATE STORE_META")
    bank.close()
    note = world.bank_path.with_name("bank.db.closed")
    assert note.exists() and not world.bank_path.with_name("bank.db-wal").exists()
    world.bank_path.write_bytes(taken_while_open)
    with pytest.raises(JournalLost):
        world.open_bank()
