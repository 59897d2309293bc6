"""A read-only store: files or directory without write permission (FLT-05).

The library needs to write to open a store: the lock file, the write-ahead log and its index
beside the store. A store it cannot write is therefore refused at the open with a plain
``StoreError`` naming the cause (never ``WrongKey``, never an ``OSError``), and nothing on disk
changes; there is no read-only mode. A data-key file alone read-only opens (it is only read at
open) and every change that needs it raises ``StoreError``.

Root ignores file modes, so when the tests run as root (CI) the worker drops to ``nobody``
(uid 65534) after its imports, on a directory of its own outside pytest's private one;
otherwise it runs as the test's user.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_support import World, assert_typed, check_kept, observe, run_worker
from store_support import assert_unchanged, snapshot
from test_disk_full import WRITES
from test_journal_lost import BUSY, wal

from entrenous.errors import JournalLost

NOBODY = 65534
OPENS = ["open:bank", "open:customer"]


@pytest.fixture
def shared_world(world_template: World) -> Iterator[World]:
    """A copy of the world in a directory that ``nobody`` can reach (``/tmp`` itself)."""
    parent = Path(tempfile.mkdtemp(prefix="entrenous-faults-"))
    os.chmod(parent, 0o755)  # noqa: S103 - nobody must traverse it; the store dir is its own
    try:
        yield world_template.copy_to(parent / "world")
    finally:
        for path in [parent, *parent.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)
        shutil.rmtree(parent)


def protect(world: World, *, files: int, directory: int, only: str | None = None) -> int | None:
    """Set the modes (and, as root, hand everything to nobody); the uid to run as."""
    uid = NOBODY if os.geteuid() == 0 else None
    for path in [*world.directory.iterdir(), world.directory]:
        if uid is not None:
            os.chown(path, uid, uid)
        if path == world.directory:
            path.chmod(directory)
        elif only is None or path.name.endswith(only):
            path.chmod(files)
    return uid


def unprotect(world: World) -> None:
    for path in [world.directory, *world.directory.iterdir()]:
        path.chmod(0o700 if path.is_dir() else 0o600)


def snapshots(world: World) -> tuple[dict[str, object], dict[str, object]]:
    with world.open_bank() as bank, world.open_customer() as customer:
        return observe(bank), observe(customer)


@pytest.mark.req("FLT-05", "FLT-02")
@pytest.mark.parametrize(
    ("files", "directory", "cause"),
    [
        pytest.param(0o400, 0o500, "cannot create the lock file", id="everything"),
        pytest.param(0o600, 0o500, "readonly database", id="the-directory"),
    ],
)
def test_a_store_it_cannot_write_beside_is_refused_at_the_open(
    shared_world: World, files: int, directory: int, cause: str
) -> None:
    world = shared_world
    before_bank, before_customer = snapshots(world)
    uid = protect(world, files=files, directory=directory)
    files_before = snapshot(world.directory)
    outcome = run_worker(world, uid=uid, open_under_fault=True, ops=[*OPENS, *WRITES])
    assert_typed(outcome)
    refusals = [r for r in outcome.results if r["op"] in ("open", "reopen")]
    assert len(refusals) == 3
    assert all(not r["ok"] and r["error"] == "StoreError" for r in refusals), refusals
    assert all(cause in r["message"] for r in refusals), refusals
    assert_unchanged(files_before, snapshot(world.directory))
    unprotect(world)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-05")
def test_read_only_store_files_open_for_reading_and_refuse_every_change(
    shared_world: World,
) -> None:
    """The store and data-key files read-only, the directory and lock files writable: an open that
    has nothing to write succeeds (SQLite opens the files read-only), reading works, and every
    change raises StoreError("... read-only ...") and stores nothing."""
    world = shared_world
    before_bank, before_customer = snapshots(world)
    uid = protect(world, files=0o400, directory=0o700)
    for lock in world.directory.glob("*.lock"):
        lock.chmod(0o600)
    store_files = {"bank.db", "bank.db.keys", "customer.db", "customer.db.keys"}
    files_before = {k: v for k, v in snapshot(world.directory).items() if k in store_files}
    outcome = run_worker(world, uid=uid, open_under_fault=True, ops=[*OPENS, *WRITES])
    assert_typed(outcome)
    opens = [r for r in outcome.results if r["op"] in ("open", "reopen")]
    assert [r["ok"] for r in opens] == [True, True, True], opens
    sends = [r for r in outcome.results if r["op"] == "send" and "skipped" not in r]
    assert sends and all(not r["ok"] and "read-only" in r["message"] for r in sends), sends
    for name in ("apply_policy", "record_consent", "hold", "erase", "bundle"):
        assert [r["ok"] for r in outcome.results if r["op"] == name] == [False], name
    after = {k: v for k, v in snapshot(world.directory).items() if k in store_files}
    assert_unchanged(files_before, after)
    unprotect(world)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-05")
def test_a_read_only_key_file_refuses_every_change_that_needs_it(shared_world: World) -> None:
    world = shared_world
    before_bank, before_customer = snapshots(world)
    uid = protect(world, files=0o600, directory=0o700)
    (world.directory / "bank.db.keys").chmod(0o400)
    ops = [*OPENS, "bundle:bank", "start:customer", "receive:bank", "erase:bank", *WRITES]
    outcome = run_worker(world, uid=uid, open_under_fault=True, ops=ops)
    assert_typed(outcome)
    # The first message of a new conversation needs a new data key: refused, nothing stored.
    first = outcome.results[5]
    assert (first["op"], first["ok"], first["error"]) == ("receive", False, "StoreError")
    assert "read-only" in first["message"]
    unprotect(world)
    check_kept(world, before_bank, before_customer, outcome)


@pytest.mark.req("FLT-03", "FLT-05")
def test_a_refused_open_that_cannot_write_leaves_no_log_to_hide_the_loss(
    shared_world: World,
) -> None:
    """A killed session's log is deleted; a process that can only read the store files tries to
    open it and is refused (JournalLost). It must leave no empty ``-wal`` behind: SQLite creates
    one when it reads a WAL store and, read-only, cannot remove it at the close, and an empty log
    beside the store made the next open skip the check and roll the store back in silence."""
    world = shared_world
    outcome = run_worker(world, killed=True, ops=[*BUSY, "kill:-"])
    assert len(outcome.sent("bank")) == 2
    for store in (world.bank_path, world.customer_path):
        wal(store).unlink()
    uid = protect(world, files=0o400, directory=0o700)
    for lock in world.directory.glob("*.lock"):
        lock.chmod(0o600)
    refused = run_worker(world, uid=uid, open_under_fault=True, ops=OPENS)
    opens = [r for r in refused.results if r["op"] == "open"]
    assert [(r["ok"], r["error"]) for r in opens] == [(False, "JournalLost")] * 2, opens
    unprotect(world)
    for store in (world.bank_path, world.customer_path):
        assert not wal(store).exists(), "the refused open left a log beside the store"
    for opener in (world.open_bank, world.open_customer):
        with pytest.raises(JournalLost):
            opener()
