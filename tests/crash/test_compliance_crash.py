"""SIGKILL during the compliance actions (ERA-06, AUD-01, CON-19, SWP-03): a bank keeps starting
conversations, sending, recording consent, placing holds, sweeping and erasing while it is killed
at random moments; after every kill the store is reopened and checked:

* ``PRAGMA integrity_check`` passes, the audit trail and the consent ledger verify;
* no erasure is half done: every intended erasure either has its receipt (and then no data key
  of a conversation it deleted survives the reopening, and no older key generation of one it
  re-sealed does), or has none and changed nothing, in which case erasing again finishes it;
* no data-key destruction is left pending after the reopening.

CI runs ``ENTRENOUS_COMPLIANCE_KILLS`` kills (default 15, a few seconds); the campaign of issue 6
runs it with more on demand::

    ENTRENOUS_COMPLIANCE_KILLS=200 python3 dev.py test tests/crash/test_compliance_crash.py -rP
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compliance_worker import INTENT_LOG, PHASE, intents, open_bank, setup
from crash_support import _wait_ready, _worker_env

from entrenous.compliance import audit
from entrenous.compliance.erasure import ErasureReceipt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")

KILLS = int(os.environ.get("ENTRENOUS_COMPLIANCE_KILLS", "15"))
SEED = int(os.environ.get("ENTRENOUS_CRASH_SEED", str(secrets.randbelow(2**31))))
WORKER = Path(__file__).resolve().parent / "compliance_worker.py"


def check(directory: Path, counts: Counter[str]) -> None:
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
    finally:
        bank.close()


def run(directory: Path, kills: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
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
        check(directory, counts)
    counts["erasures in all"] = len(intents(directory)[0])
    return counts


@pytest.mark.req("ERA-06", "AUD-01", "CON-19", "SWP-03")
def test_sigkill_during_compliance_actions_leaves_nothing_half_done(tmp_path: Path) -> None:
    counts = run(tmp_path / "campaign", KILLS, SEED)
    print(f"seed {SEED}: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    assert sum(v for k, v in counts.items() if k.startswith("killed")) == KILLS
