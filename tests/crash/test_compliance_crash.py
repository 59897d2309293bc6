"""SIGKILL during the compliance actions (ERA-06, AUD-01, CON-19, SWP-03, FLT-50): a bank keeps
starting conversations, sending, recording consent, placing holds, sweeping, exporting and erasing
while it is killed at random moments; after every kill the store is reopened and checked:

* ``PRAGMA integrity_check`` passes, the audit trail and the consent ledger verify;
* no erasure is half done: every intended erasure either has its receipt (and then no data key
  of a conversation it deleted survives the reopening, and no older key generation of one it
  re-sealed does), or has none and changed nothing, in which case erasing again finishes it;
* no data-key destruction is left pending after the reopening;
* every ``export`` audit event is whole (its four counts, nothing else); for each subject, the
  export files in place are no more than its export events, and those no more than the exports
  started; every export file in place is complete (valid JSON that validates against
  spec/export.schema.json, of the right subject) and its counts are those of one of the subject's
  export events; an export that returned has its file; a temporary file a kill left behind is
  readable by the owner only (it is counted, then removed).

CI runs ``ENTRENOUS_COMPLIANCE_KILLS`` kills (default 15, a few seconds); the campaign of issue 6
runs it with more on demand::

    ENTRENOUS_COMPLIANCE_KILLS=200 python3 dev.py test tests/crash/test_compliance_crash.py -rP
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compliance_worker import (
    INTENT_LOG,
    PHASE,
    export_file,
    export_intents,
    intents,
    open_bank,
    setup,
)
from crash_support import _wait_ready, _worker_env

from entrenous.compliance import audit
from entrenous.compliance.erasure import ErasureReceipt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")

KILLS = int(os.environ.get("ENTRENOUS_COMPLIANCE_KILLS", "15"))
SEED = int(os.environ.get("ENTRENOUS_CRASH_SEED", str(secrets.randbelow(2**31))))
WORKER = Path(__file__).resolve().parent / "compliance_worker.py"
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "spec" / "export.schema.json").read_text()
)
EXPORT_COUNTS = ("conversations", "messages", "consent_records")


def check_exports(directory: Path, bank: Any, counts: Counter[str], checked: set[str]) -> None:
    """The export claims of the module docstring (``checked``: files already validated)."""
    store: Any = bank._store
    events: dict[str, Counter[tuple[int, ...]]] = {}
    for event in bank.audit_events():
        if event.action != "export":
            continue
        assert set(event.details) == {"subject", *EXPORT_COUNTS}, "an export event is not whole"
        assert all(type(event.details[name]) is int for name in EXPORT_COUNTS)
        shown = tuple(event.details[name] for name in EXPORT_COUNTS)
        events.setdefault(event.details["subject"], Counter())[shown] += 1
    started, finished = export_intents(directory)
    by_subject: dict[str, list[str]] = {}
    for subject, export_id in started:
        by_subject.setdefault(subject, []).append(export_id)
    in_place = 0
    for subject, ids in by_subject.items():
        with store.transaction():
            pseudonym = audit.pseudonym(store, subject)
        found: Counter[tuple[int, ...]] = Counter()
        for export_id in ids:
            path = export_file(directory, subject, export_id)
            if not path.exists():
                assert (subject, export_id) not in finished, "an export returned, its file is gone"
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
            if path.name not in checked:
                jsonschema.validate(data, SCHEMA)
                checked.add(path.name)
            assert data["subject"] == {"id": subject, "pseudonym": pseudonym}
            conversations = data["conversations"]
            found[
                (
                    len(conversations),
                    sum(len(c["messages"]) for c in conversations),
                    len(data["consent_records"]),
                )
            ] += 1
        in_place += found.total()
        committed = events.get(pseudonym, Counter())
        assert not found - committed, "an export file matches no export event of its subject"
        assert committed.total() <= len(ids), "more export events than exports started"
    assert sum(c.total() for c in events.values()) <= len(started)
    for stale in directory.glob(".export-*.tmp"):
        assert stale.stat().st_mode & 0o077 == 0, "a temporary export file is readable by others"
        counts["export temporary files left by a kill"] += 1
        stale.unlink()
    counts["exports started"] = len(started)
    counts["exports returned"] = len(finished)
    counts["export events committed"] = sum(c.total() for c in events.values())
    counts["export files in place"] = in_place


def check(directory: Path, counts: Counter[str], checked: set[str]) -> None:
    """Reopen the bank's store and check every claim of the module docstring."""
    bank = open_bank(directory)
    try:
        store: Any = bank._store
        assert store.integrity_check()
        counts["audit events"] = bank.verify_audit()
        bank.verify_consent_ledger()
        connection = store._connection
        assert connection.execute("SELECT count(*) FROM pending_shreds").fetchone() == (0,)
        generations = {
            bytes(uid): generation
            for uid, generation in connection.execute(
                "SELECT uid, key_generation FROM conversations"
            )
        }
        keys = [
            (bytes(uid), generation)
            for uid, generation in store._keys._connection.execute(
                "SELECT conversation_uid, generation FROM data_keys"
            )
        ]
        receipts = bank.erasure_receipts()
        deleted = {
            bytes.fromhex(item["conversation"])
            for receipt in receipts
            for item in receipt.erased
            if item["conversation_deleted"]
        }
        for uid, generation in keys:
            assert uid not in deleted, "a data key of an erased conversation survived"
            if uid in generations:
                assert generation >= generations[uid], "an older key generation survived"
        assert not deleted & set(generations), "an erased conversation is still stored"
        intended, done = intents(directory)
        for subject in intended:
            with store.transaction():
                pseudonym = audit.pseudonym(store, subject)
            found = [r for r in receipts if r.target == pseudonym]
            if subject in done:
                assert [r.receipt_id for r in found] == [done[subject]]
            elif found:
                counts["erasures committed just before a kill"] += 1
                with (directory / INTENT_LOG).open("a") as log:
                    log.write(f"done {subject} {found[0].receipt_id}\n")
            else:
                receipt: ErasureReceipt = bank.erase(subject=subject)
                receipt.verify(bank.identity)
                with (directory / INTENT_LOG).open("a") as log:
                    log.write(f"done {subject} {receipt.receipt_id}\n")
                counts["erasures retried"] += 1
        check_exports(directory, bank, counts, checked)
    finally:
        bank.close()


def run(directory: Path, kills: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    checked: set[str] = set()
    setup(directory, seed)
    for number in range(kills):
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(WORKER), str(directory), str(seed * 7919 + number)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_worker_env(),
        )
        try:
            _wait_ready(process, None)
            try:
                process.wait(timeout=rng.uniform(0.05, 0.8))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
        assert returncode == -signal.SIGKILL, f"the worker stopped by itself ({returncode})"
        phase_file = directory / PHASE
        phase = phase_file.read_bytes().decode().strip() if phase_file.exists() else "before-open"
        counts[f"killed during {phase or 'before-open'}"] += 1
        check(directory, counts, checked)
    counts["erasures in all"] = len(intents(directory)[0])
    return counts


@pytest.mark.req("ERA-06", "AUD-01", "CON-19", "SWP-03", "FLT-50")
def test_sigkill_during_compliance_actions_leaves_nothing_half_done(tmp_path: Path) -> None:
    counts = run(tmp_path / "campaign", KILLS, SEED)
    print(f"seed {SEED}: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    assert sum(v for k, v in counts.items() if k.startswith("killed")) == KILLS
