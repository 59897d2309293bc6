"""One owner per store (STO-09): a second open, from this process or another, raises StoreLocked at
once and changes nothing; close() and the death of the owning process release the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from store_support import PASSPHRASE, Template, assert_unchanged, kdf_file, snapshot

from entrenous import Client
from entrenous.errors import JournalLost, StoreLocked
from entrenous.store.sqlcipher import SqlCipherStore

#: A child process: opens the store given in argv[1] with the key in $STORE_KEY, prints one line
#: ("opened" or the error's class name and the seconds it took) and, with argv[2] == "hold",
#: sends a message and sleeps until it is killed.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from entrenous import Client
    from entrenous.errors import StoreError
    started = time.monotonic()
    try:
        client = Client.open(sys.argv[1], key=bytes.fromhex(os.environ["STORE_KEY"]))
    except StoreError as exc:
        print(type(exc).__name__, round(time.monotonic() - started, 3), flush=True)
        sys.exit(3)
    if sys.argv[2] == "hold":
        client.conversations()[0].send("sent by the child")
        print("opened", flush=True)
        time.sleep(120)
    client.close()
    print("opened", flush=True)
    """
)


#: A child process that opens the store in argv[1], then forks (as multiprocessing's default start
#: method does). The forked grandchild tries the inherited client, closes it (as a ``with`` block
#: unwinding there would), reports and lingers. The child then checks it still owns the store,
#: sends a message, prints "<what the grandchild saw> <second open> <grandchild pid>" and sleeps.
FORKER = textwrap.dedent(
    """
    import os, sys, time
    from entrenous import Client
    from entrenous.errors import StoreLocked, UsageError
    key = bytes.fromhex(os.environ["STORE_KEY"])
    client = Client.open(sys.argv[1], key=key)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            client.conversations()
            seen = "usable"
        except UsageError:
            seen = "UsageError"
        client.close()
        os.write(write, seen.encode())
        time.sleep(120)
        os._exit(0)
    seen = os.read(read, 100).decode()
    try:
        Client.open(sys.argv[1], key=key).close()
        second = "opened"
    except StoreLocked:
        second = "StoreLocked"
    client.conversations()[0].send("sent after the fork")
    print(seen, second, pid, flush=True)
    time.sleep(120)
    """
)


def child(store: Path, key: bytes, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - fixed command: this interpreter and CHILD
        [sys.executable, "-c", CHILD, str(store), mode],
        env={**os.environ, "STORE_KEY": key.hex()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def store(raw_template: Template, tmp_path: Path) -> Path:
    return raw_template.copy_to(tmp_path)


@pytest.mark.req("STO-09")
def test_second_open_in_the_same_process_raises_store_locked(
    raw_template: Template, store: Path
) -> None:
    with Client.open(store, key=raw_template.key) as first:
        before = snapshot(store.parent)
        started = time.monotonic()
        with pytest.raises(StoreLocked):
            Client.open(store, key=raw_template.key)
        assert time.monotonic() - started < 2.0
        assert_unchanged(before, snapshot(store.parent))
        # The owner is not disturbed.
        first.conversations()[0].send("still mine")
        assert len(first.conversations()[0].history()) == 4


@pytest.mark.req("STO-09")
def test_second_open_with_a_wrong_key_still_says_locked(
    raw_template: Template, store: Path
) -> None:
    """The lock is taken before the key is tried: a locked store reveals nothing about keys."""
    with Client.open(store, key=raw_template.key), pytest.raises(StoreLocked):
        Client.open(store, key=os.urandom(32))


@pytest.mark.req("STO-09")
def test_second_open_through_another_spelling_of_the_path(
    raw_template: Template, store: Path, tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
    with Client.open(store, key=raw_template.key):
        for spelling in (tmp_path / "sub" / ".." / "store.db", tmp_path / "alias" / "store.db"):
            with pytest.raises(StoreLocked):
                Client.open(spelling, key=raw_template.key)


@pytest.mark.req("STO-09")
def test_second_open_from_another_process_raises_store_locked(
    raw_template: Template, store: Path
) -> None:
    assert raw_template.key is not None
    with Client.open(store, key=raw_template.key):
        before = snapshot(store.parent)
        out, err = child(store, raw_template.key, "once").communicate(timeout=60)
        after = snapshot(store.parent)
    assert out.split()[0] == "StoreLocked", (out, err)
    assert float(out.split()[1]) < 2.0  # at once, not after a busy timeout
    assert_unchanged(before, after)


@pytest.mark.req("STO-09")
def test_close_releases_the_store_for_this_and_other_processes(
    raw_template: Template, store: Path
) -> None:
    assert raw_template.key is not None
    client = Client.open(store, key=raw_template.key)
    client.close()
    client.close()  # idempotent, and still released
    with Client.open(store, key=raw_template.key):
        pass
    process = child(store, raw_template.key, "once")
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out.strip()) == (0, "opened"), err


@pytest.mark.req("STO-09")
def test_leaving_the_with_block_on_an_error_releases_the_store(
    raw_template: Template, store: Path
) -> None:
    with pytest.raises(RuntimeError), Client.open(store, key=raw_template.key):
        raise RuntimeError
    with Client.open(store, key=raw_template.key):
        pass


@pytest.mark.req("STO-09")
def test_the_death_of_the_owning_process_releases_the_store(
    raw_template: Template, store: Path
) -> None:
    assert raw_template.key is not None
    holder = child(store, raw_template.key, "hold")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "opened"
        with pytest.raises(StoreLocked):
            Client.open(store, key=raw_template.key)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    with Client.open(store, key=raw_template.key) as client:
        texts = [m.text for m in client.conversations()[0].history()]
    assert texts[0] == "sent by the child"  # committed before it died, and kept


@pytest.mark.req("STO-09")
def test_a_locked_passphrase_store_refuses_and_changes_nothing(
    passphrase_template: Template, tmp_path: Path
) -> None:
    store = passphrase_template.copy_to(tmp_path)
    with Client.open(store, passphrase=PASSPHRASE):
        before = snapshot(tmp_path)
        with pytest.raises(StoreLocked):
            Client.open(store, passphrase=PASSPHRASE)
        assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.req("STO-09", "STO-11")
def test_racing_creations_with_a_passphrase_leave_one_openable_store(tmp_path: Path) -> None:
    """Four threads create the same passphrase store at once: one wins, the others get
    StoreLocked, and none of them may replace the winner's <store>.kdf (its salt) on the way,
    or the new store could never be opened again. Argon2id runs outside the GIL, so an opener
    that wrote the .kdf before taking the lock would lose this race almost every time."""
    store = tmp_path / "s.db"
    barrier = threading.Barrier(4)
    results: list[Client | BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            results.append(Client.open(store, passphrase=PASSPHRASE))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [r for r in results if isinstance(r, Client)]
    losers = [r for r in results if not isinstance(r, Client)]
    for winner in winners:
        winner.close()
    assert len(winners) == 1, results
    assert all(isinstance(r, StoreLocked) for r in losers), losers
    kdf_after_race = kdf_file(store).read_bytes()
    with Client.open(store, passphrase=PASSPHRASE) as client:
        assert client.identity == winners[0].identity
    assert kdf_file(store).read_bytes() == kdf_after_race


def cli(store: Path, key: bytes, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command line, as an administrator runs it: another process, the key in the env."""
    return subprocess.run(  # noqa: S603 - fixed command: this interpreter and the package
        [sys.executable, "-m", "entrenous", *argv, "--store", str(store), "--key-env", "K"],
        env={**os.environ, "K": key.hex()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.req("STO-09", "CLI-02")
def test_the_cli_against_a_store_an_app_holds_exits_3_and_changes_nothing(
    raw_template: Template, store: Path
) -> None:
    """An app (another process) holds the store: the command line, reading or writing, says so
    in one line and exits 3 at once, changing nothing; once the app died, it works."""
    assert raw_template.key is not None
    holder = child(store, raw_template.key, "hold")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "opened"
        before = snapshot(store.parent)
        for argv in (("hold", "list"), ("sweep",), ("audit", "verify")):
            started = time.monotonic()
            result = cli(store, raw_template.key, *argv)
            assert time.monotonic() - started < 30
            assert result.returncode == 3, (argv, result.stderr)
            assert result.stdout == ""
            assert result.stderr == (
                f"entrenous: {store}: the store is open in another process or client\n"
            )
        assert_unchanged(before, snapshot(store.parent))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)
    result = cli(store, raw_template.key, "hold", "list")
    assert result.returncode == 0, result.stderr


@pytest.mark.req("STO-09", "FLT-52")
def test_a_forked_child_neither_keeps_nor_releases_the_owners_lock(
    raw_template: Template, store: Path
) -> None:
    """Regression: a child forked from the owner shared its flock. Its close() unlocked the
    store under the living owner (a second client could open it), and while the child lived, the
    owner's death did not release the store. Now the child cannot use the client, its close()
    leaves the owner's lock alone, and the owner's death frees the store at once."""
    assert raw_template.key is not None
    owner = subprocess.Popen(  # noqa: S603 - fixed command: this interpreter and FORKER
        [sys.executable, "-c", FORKER, str(store)],
        env={**os.environ, "STORE_KEY": raw_template.key.hex()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    forked = None
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline().split()
        forked = int(line[2])
        assert line[:2] == ["UsageError", "StoreLocked"], line
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=60)  # not communicate(): the forked child holds the pipes open
        os.kill(forked, 0)  # the forked child still lives
        with Client.open(store, key=raw_template.key) as client:
            texts = [m.text for m in client.conversations()[0].history()]
        assert texts[0] == "sent after the fork"
    finally:
        if forked is not None:
            os.kill(forked, signal.SIGKILL)
        if owner.poll() is None:
            owner.kill()
        owner.communicate(timeout=60)


#: Opens a store (the low-level API) in argv[1], changes it, forks. The forked child tries a
#: change and closes its copy; the owner then checkpoints, changes the store again and is killed
#: (its last change in the log only). Prints what the child saw.
STORE_FORKER = textwrap.dedent(
    """
    import os, sys
    from entrenous.errors import UsageError
    from entrenous.store.sqlcipher import SqlCipherStore
    store = SqlCipherStore.open(sys.argv[1], b"k" * 32)
    with store.transaction():
        store.set_meta("x", b"before the fork")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with store.transaction():
                store.set_meta("x", b"written by the child")
            seen = "usable"
        except UsageError:
            seen = "UsageError"
        store.close()
        os.write(write, seen.encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(read, 100).decode(), flush=True)
    store.truncate_journal()
    with store.transaction():
        store.set_meta("x", b"after the fork")
    os.kill(os.getpid(), 9)
    """
)


@pytest.mark.req("FLT-52", "FLT-03")
def test_a_forked_child_can_neither_change_nor_close_the_owners_store(tmp_path: Path) -> None:
    """Regression: a child forked from a process holding a ``SqlCipherStore`` could still
    change the store through its copy, and its close() committed the "closed" flag into the
    owner's live store: the owner killed later, its log lost, the store opened rolled back
    without a word. Now both raise UsageError / only drop the child's copy."""
    path = tmp_path / "s.db"
    done = subprocess.run(  # noqa: S603 - fixed command: this interpreter and STORE_FORKER
        [sys.executable, "-c", STORE_FORKER, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.split() == ["UsageError"], done.stdout
    path.with_name(path.name + "-wal").unlink()
    with pytest.raises(JournalLost):
        SqlCipherStore.open(path, b"k" * 32)


#: A thread takes a store's lock (its flock slowed down) while the main thread forks in the
#: middle of it; the forked child lingers. The owner then dies without unlocking (its descriptor
#: closed, as the kernel does for a killed process) and tries the lock again.
FORK_DURING_LOCK = textwrap.dedent(
    """
    import fcntl, os, sys, threading, time
    from entrenous.errors import StoreLocked
    from entrenous.store import lock as lock_module
    real_flock = fcntl.flock
    opened = threading.Event()
    def slow_flock(fd, operation):
        opened.set()
        time.sleep(0.5)
        return real_flock(fd, operation)
    lock_module.fcntl.flock = slow_flock
    from pathlib import Path
    taken = []
    taker = threading.Thread(target=lambda: taken.append(lock_module.StoreLock(Path(sys.argv[1]))))
    taker.start()
    opened.wait()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, b"up")  # after the at-fork hooks
        time.sleep(5)
        os._exit(0)
    os.read(read, 2)
    taker.join()
    lock_module.fcntl.flock = real_flock
    os.close(taken[0]._fd)  # the owner dies without unlocking
    taken[0]._fd = None
    try:
        lock_module.StoreLock(Path(sys.argv[1])).release()
        print("free", flush=True)
    except StoreLocked:
        print("StoreLocked", flush=True)
    os.kill(pid, 9)
    """
)


@pytest.mark.req("FLT-52")
def test_a_fork_while_another_thread_takes_a_lock_leaves_the_child_without_it(
    tmp_path: Path,
) -> None:
    """Regression: a fork between the lock file's open and its registration (another thread
    taking a lock) gave the child a descriptor the at-fork hook did not know: the child kept the
    store locked after its owner died. Taking a lock and forking now exclude each other."""
    done = subprocess.run(  # noqa: S603 - fixed command: this interpreter and FORK_DURING_LOCK
        [sys.executable, "-c", FORK_DURING_LOCK, str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["free"], (done.stdout, done.stderr[-2000:])
