"""SIGKILL while ``Client.open`` migrates a store from an older schema (STO-04, FLT-51).

For every schema version the code migrates from (1 and 2; 3 is the latest), a store holding
conversations, messages in both directions and, from version 2 on, subjects, categories,
consent, a hold, audit events and erasures (one that deleted a conversation, one that re-sealed
one under a second key generation) is built the way tests/store/test_migration_v2.py does: the
library writes it at the latest version, then its rows are copied into fresh files migrated up to
exactly the old version, the store and its data-key file alike.

A worker process (``migration_worker.py``) then opens a copy and is killed with SIGKILL, either
after a random delay drawn over the measured duration of the open (``time``), or by itself just
before or just after a statement of the migrations drawn at random (``hook``). A copy may be
killed up to three times in a row, so that a migration that resumes is killed too. After every
kill, the files are read with plain sqlcipher3 (no library code):

* the store and its data-key file each pass ``PRAGMA integrity_check`` and are each wholly at one
  version between the old one and the latest: their ``user_version`` and their schema (every
  table and index with its SQL) equal those of a fresh file migrated to exactly that version;
* every row that was there before is still there, with the same values (compared column by
  column on the old version's columns), and nothing was added.

Then the copy is opened in this process, which is not killed: it must be wholly at the latest
version, pass the same checks, and every conversation, message (decrypted through ``history``),
data key, audit event, consent record and erasure receipt that was there before must still be
there and readable; the audit trail and the consent ledger verify.

CI runs ``ENTRENOUS_MIGRATION_KILLS`` kills (default 10, shared between the old versions); the
campaign of issue 6 runs it with more on demand::

    ENTRENOUS_MIGRATION_KILLS=300 python3 dev.py test tests/crash/test_migration_crash.py -rP
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compliance"))

from compliance_support import bank_policy
from crash_support import _wait_ready, _worker_env
from migration_worker import KEYS, PHASE, STORE
from store_support import raw_connect, raw_store, spec_key_file_key, version

from entrenous import Client, Policy
from entrenous.store.migrations import (
    KEY_FILE_LATEST,
    KEY_FILE_MIGRATIONS,
    LATEST,
    MIGRATIONS,
    Migration,
    migrate,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

KILLS = int(os.environ.get("ENTRENOUS_MIGRATION_KILLS", "10"))
SEED = int(os.environ.get("ENTRENOUS_CRASH_SEED", str(secrets.randbelow(2**31))))
WORKER = Path(__file__).resolve().parent / "migration_worker.py"
#: The versions a store can be found at and migrated from.
OLD_VERSIONS = tuple(m.version for m in MIGRATIONS[:-1])
#: The data-key file's version that shipped with each store version.
KEY_FILE_VERSION_OF = {1: 1, 2: 2, 3: 2}
CONVERSATIONS = 6
MESSAGES = 30  # sent by the bank in each conversation; the customer answers a third of them
POLICY = bank_policy("Migration Bank AG", "privacy@migration.example", "10y")

Schema = list[tuple[str, str, str, str | None]]
Rows = dict[str, tuple[str, list[tuple[Any, ...]]]]


def schema(connection: Any) -> Schema:
    rows: Schema = connection.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    ).fetchall()
    return rows


def reference_schemas(directory: Path, steps: tuple[Migration, ...]) -> dict[int, Schema]:
    """The schema of a fresh file migrated to exactly each version."""
    out = {}
    for step in steps:
        with raw_store(directory / f"reference-{id(steps)}-{step.version}.db", os.urandom(32)) as c:
            migrate(c, steps, target=step.version)
            out[step.version] = schema(c)
    return out


def dump(connection: Any, columns: dict[str, str] | None = None) -> Rows:
    """Every row of every table, on ``columns`` (table -> column list; default: all columns)."""
    if columns is None:
        names = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        columns = {
            name: ", ".join(f'"{c[1]}"' for c in connection.execute(f'PRAGMA table_info("{name}")'))
            for name in names
        }
    out: Rows = {}
    for table, listed in columns.items():
        rows = connection.execute(f'SELECT {listed} FROM "{table}" ORDER BY {listed}').fetchall()  # noqa: S608
        out[table] = (
            listed,
            [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows],
        )
    return out


def columns_of(rows: Rows) -> dict[str, str]:
    return {table: listed for table, (listed, _) in rows.items()}


@dataclass(frozen=True)
class OldStore:
    """A closed store at ``version`` to copy, with what it holds."""

    directory: Path
    version: int
    key: bytes
    store_rows: Rows
    key_rows: Rows
    histories: dict[str, list[tuple[str, str, str | None]]]
    audit: list[tuple[int, str, bytes]]
    consent_records: int
    receipts: list[str]


def _downgrade(path: Path, key: bytes, steps: tuple[Migration, ...], target: int) -> None:
    """Replace the database at ``path`` by a copy of its rows in a file migrated to ``target``."""
    newer = path.with_name(path.name + ".newer")
    shutil.move(path, newer)
    connection = raw_connect(path, key)
    try:
        if steps is MIGRATIONS:
            connection.execute("PRAGMA journal_mode = WAL")  # as the store always is
        migrate(connection, steps, target=target)
        columns = {
            table: ", ".join(
                f'"{c[1]}"' for c in connection.execute(f'PRAGMA table_info("{table}")')
            )
            for (table,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).fetchall()
        }
        connection.execute(f"ATTACH DATABASE '{newer}' AS newer KEY \"x'{key.hex()}'\"")
        connection.execute("BEGIN")
        for table, listed in columns.items():
            connection.execute(
                f'INSERT INTO main."{table}" ({listed}) SELECT {listed} FROM newer."{table}"'  # noqa: S608
            )
        connection.execute("COMMIT")
        connection.execute("DETACH DATABASE newer")
    finally:
        connection.close()
    newer.unlink()


def build_old_store(directory: Path, old: int, rng: random.Random) -> OldStore:
    """A store with data at schema version ``old`` (see the module docstring)."""
    directory.mkdir(parents=True)
    key = rng.randbytes(32)
    compliance = old >= 2
    path = directory / STORE
    with (
        Client.open(path, key=key, policy=Policy.parse(POLICY) if compliance else None) as bank,
        Client.open(directory / "customer.db", key=rng.randbytes(32)) as customer,
    ):
        for number in range(CONVERSATIONS):
            if compliance:
                category = "contract" if number % 2 else None
                conversation = bank.start_conversation(
                    customer.prekey_bundle(), subject=f"subject-{number}", category=category
                )
            else:
                conversation = bank.start_conversation(
                    customer.prekey_bundle(), peer=f"peer-{number}"
                )
            envelopes = [
                conversation.send(f"{number}: to the customer {n}") for n in range(MESSAGES)
            ]
            outcomes = customer.receive_many(envelopes)
            assert outcomes[0].received is not None
            answering = outcomes[0].received.conversation
            bank.receive_many(
                [answering.send(f"{number}: to the bank {n}") for n in range(MESSAGES // 3)]
            )
        if compliance:
            bank.record_consent(subject="subject-0", purpose="marketing", notice="Offers?")
            bank.record_consent(subject="subject-2", purpose="marketing", notice="Offers?")
            bank.record_consent(subject="subject-2", purpose="marketing", give=False)
            bank.place_hold(subject="subject-3", reason="litigation", reference="case 7")
            bank.erase(subject="subject-1")  # a contract: kept, re-sealed under generation 1
            bank.erase(subject="subject-4")  # deleted with its data key
            bank.export("subject-0")
        histories = {
            c.id: [(m.id, m.direction, m.text) for m in c.history(limit=1000)]
            for c in bank.conversations()
        }
        audit = [(e.seq, e.action, e.hash) for e in bank.audit_events()]
        consent_records = bank.verify_consent_ledger() if compliance else 0
        receipts = [r.receipt_id for r in bank.erasure_receipts()]
    _downgrade(path, key, MIGRATIONS, old)
    keys = path.with_name(path.name + ".keys")
    key_version = KEY_FILE_VERSION_OF[old]
    if key_version < KEY_FILE_LATEST:
        _downgrade(keys, spec_key_file_key(key), KEY_FILE_MIGRATIONS, key_version)
    (directory / "customer.db").unlink()
    for leftover in directory.glob("customer.db*"):
        leftover.unlink()
    with raw_store(path, key) as connection:
        assert version(connection) == old
        store_rows = dump(connection)
    with raw_store(keys, spec_key_file_key(key)) as connection:
        assert version(connection) == key_version
        key_rows = dump(connection)
    secret = os.open(directory / KEYS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(secret, "w") as handle:
        json.dump({"key": key.hex()}, handle)
    return OldStore(
        directory, old, key, store_rows, key_rows, histories, audit, consent_records, receipts
    )


@dataclass(frozen=True)
class Calibration:
    seconds: float  # how long Client.open of the old store takes
    statements: int  # how many statements its migrations run


def start(directory: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(WORKER), str(directory), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_worker_env(),
    )


def calibrate(directory: Path, scratch: Path) -> Calibration:
    """Open a copy of ``directory`` in an unkilled worker: how long, how many statements."""
    shutil.copytree(directory, scratch)
    process = start(scratch, "calibrate")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode(errors="replace")
    lines = dict(line.split(" ", 1) for line in out.decode().splitlines()[1:])
    return Calibration(float(lines["opened"]), int(lines["statements"]))


class Calibrations:
    """One calibration per state of the files (a kill may leave a migration half way)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.known: dict[str, Calibration] = {}

    def of(self, directory: Path, state: str) -> Calibration:
        """What an open of ``directory``, whose files are in ``state``, runs and takes."""
        if state not in self.known:
            self.known[state] = calibrate(directory, self.scratch)
            shutil.rmtree(self.scratch)
        return self.known[state]


def check_files(old: OldStore, directory: Path, references: dict[str, dict[int, Schema]]) -> str:
    """The claims after a kill, on plain sqlcipher3; returns "store vN, key file vM"."""
    path = directory / STORE
    found = []
    for name, file, key, rows, latest in (
        ("store", path, old.key, old.store_rows, LATEST),
        (
            "key file",
            path.with_name(STORE + ".keys"),
            spec_key_file_key(old.key),
            old.key_rows,
            KEY_FILE_LATEST,
        ),
    ):
        with raw_store(file, key) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)], name
            at = version(connection)
            lowest = old.version if name == "store" else KEY_FILE_VERSION_OF[old.version]
            assert lowest <= at <= latest, f"the {name} is at version {at}"
            assert schema(connection) == references[name][at], (
                f"the {name} says version {at} but its schema is not that version's"
            )
            assert dump(connection, columns_of(rows)) == rows, f"rows of the {name} changed"
            if name == "key file" and at > KEY_FILE_VERSION_OF[old.version]:
                # Keys of a version-1 file become generation 0 of their conversation.
                assert connection.execute(
                    "SELECT count(*) FROM data_keys WHERE generation != 0"
                ).fetchone() == (0,)
        found.append(f"{name} v{at}")
    return ", ".join(found)


def check_reopened(
    old: OldStore, directory: Path, references: dict[str, dict[int, Schema]]
) -> None:
    """Open in this process (not killed): wholly migrated, nothing lost, everything readable."""
    with Client.open(directory / STORE, key=old.key, sweep=False) as client:
        histories = {
            c.id: [(m.id, m.direction, m.text) for m in c.history(limit=1000)]
            for c in client.conversations()
        }
        assert histories == old.histories, "a conversation or message was lost or changed"
        assert client.verify_audit() == len(old.audit)
        assert [(e.seq, e.action, e.hash) for e in client.audit_events()] == old.audit
        assert client.verify_consent_ledger() == old.consent_records
        receipts = client.erasure_receipts()
        assert [r.receipt_id for r in receipts] == old.receipts
        for receipt in receipts:
            receipt.verify(client.identity)
    assert (
        check_files(old, directory, references) == f"store v{LATEST}, key file v{KEY_FILE_LATEST}"
    )


def kill_once(directory: Path, calibration: Calibration, rng: random.Random) -> str:
    """Start the worker on ``directory`` and SIGKILL it; return how the kill was made."""
    (directory / PHASE).unlink(missing_ok=True)
    if calibration.statements > 0 and rng.random() < 0.5:
        statement = rng.randint(1, calibration.statements)
        when = rng.choice(("before", "after"))
        process = start(directory, "hook", str(statement), when)
        how = f"hook, {when} a statement"
    else:
        process = start(directory, "time")
        how = "time"
    try:
        _wait_ready(process, None)
        if how == "time":
            time.sleep(rng.uniform(0, calibration.seconds * 1.3))
            process.send_signal(signal.SIGKILL)
        returncode = process.wait(timeout=60)
        assert process.stderr is not None
        err = process.stderr.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert returncode == -signal.SIGKILL, f"the worker stopped by itself ({returncode}): {err}"
    phase_file = directory / PHASE
    phase = phase_file.read_bytes().decode().strip() if phase_file.exists() else ""
    return f"{how}, during {phase or 'imports'}"


def campaign(root: Path, kills: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    references = {
        "store": reference_schemas(root, MIGRATIONS),
        "key file": reference_schemas(root, KEY_FILE_MIGRATIONS),
    }
    counts: Counter[str] = Counter()
    for old_version in OLD_VERSIONS:
        old = build_old_store(root / f"v{old_version}", old_version, rng)
        calibrations = Calibrations(root / f"v{old_version}-calibration")
        first = calibrations.of(old.directory, "old")
        counts[f"v{old_version}: open takes ms"] = round(first.seconds * 1000)
        counts[f"v{old_version}: migration statements"] = first.statements
        share = kills // len(OLD_VERSIONS) + (old_version <= kills % len(OLD_VERSIONS))
        done = trial = 0
        while done < share:
            directory = root / f"v{old_version}-{trial}"
            shutil.copytree(old.directory, directory)
            state = "old"
            for _ in range(min(share - done, rng.choice((1, 1, 2, 3)))):
                how = kill_once(directory, calibrations.of(directory, state), rng)
                counts[f"v{old_version}: killed by {how}"] += 1
                state = check_files(old, directory, references)
                counts[f"v{old_version}: left {state}"] += 1
                done += 1
            check_reopened(old, directory, references)
            shutil.rmtree(directory)
            trial += 1
    return counts


@pytest.mark.req("STO-04", "FLT-51")
def test_sigkill_during_migration_leaves_one_whole_version_and_loses_nothing(
    tmp_path: Path,
) -> None:
    counts = campaign(tmp_path, KILLS, SEED)
    print(f"seed {SEED}: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    assert sum(v for k, v in counts.items() if ": killed by " in k) == KILLS
