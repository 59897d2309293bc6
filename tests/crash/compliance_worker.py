"""The process the compliance crash campaign kills: a bank applying its policy to conversations.

Run as ``python compliance_worker.py DIRECTORY SEED`` (``compliance_crash.py`` does it). The
bank's store (``bank.db``), a customer store that only hands out prekey bundles (``cust.db``)
and their raw keys (``keys.json``, owner-only) live in ``DIRECTORY``. The worker prints ``ready``
once its imports are done and loops until it is killed, choosing at random to: start a
conversation for a new data subject (default or "contract" category, which keeps messages ten
years and so makes an erasure re-seal them under a new key), send messages, record or withdraw
consent, place or release a hold, sweep (the policy deletes after a minute of the fast clock),
export what the bank holds about a subject (``client.export``, written to ``export-SUBJECT-ID.json``
with the command line's atomic writer) or erase a subject.

Before an erasure the worker appends ``erase SUBJECT`` to ``intent.log`` (fsynced); after it
returns, ``done SUBJECT RECEIPT_ID``. A subject is never used again once an erasure of it was
intended. Around an export the worker appends ``export SUBJECT ID`` before it and ``exported
SUBJECT ID`` once the file is in place (not fsynced: what ``write`` returned survives a
SIGKILL). The clock runs 60 times faster than the wall clock, so that messages expire during
the campaign; it never goes backwards from one run to the next.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

#: The compliance tests' helpers (the bank's policy); imported with the library, in Worker.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compliance"))

INTENT_LOG = "intent.log"
KEYS = "keys.json"
PHASE = "phase"
SPEED = 60.0
NOTICE = "May we send you offers?"


def clock() -> float:
    """The campaign's clock: the wall clock, 60 times faster."""
    return time.time() * SPEED


def log_lines(directory: Path) -> list[str]:
    """The complete lines of the intent log (a kill may leave the last one torn)."""
    path = directory / INTENT_LOG
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].decode("ascii").splitlines()


def export_file(directory: Path, subject: str, export_id: str) -> Path:
    """Where the worker writes one export."""
    return directory / f"export-{subject}-{export_id}.json"


def export_intents(directory: Path) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """The exports started, as (subject, id), in order, and those whose file was in place."""
    lines = [line.split(" ") for line in log_lines(directory)]
    started = [(p[1], p[2]) for p in lines if p[0] == "export"]
    done = {(p[1], p[2]) for p in lines if p[0] == "exported"}
    return started, done


def intents(directory: Path) -> tuple[list[str], dict[str, str]]:
    """The subjects whose erasure was intended, in order, and the receipts of those done."""
    complete = log_lines(directory)
    intended = [line.split(" ")[1] for line in complete if line.startswith("erase ")]
    done = {p[1]: p[2] for p in (line.split(" ") for line in complete) if p[0] == "done"}
    return intended, done


class Worker:
    def __init__(self, directory: Path, seed: int) -> None:
        from compliance_support import bank_policy

        from entrenous import Client, Policy
        from entrenous.cli_output import json_text, write_private

        self.write_export = lambda path, data: write_private(path, json_text(data))

        self.dir = directory
        self.rng = random.Random(seed)
        self._phase = os.open(directory / PHASE, os.O_WRONLY | os.O_CREAT, 0o600)
        keys = json.loads((directory / KEYS).read_text())
        self.mark("open")
        self.bank = Client.open(
            directory / "bank.db",
            key=bytes.fromhex(keys["bank"]),
            clock=clock,
            policy=Policy.parse(bank_policy("Crash Bank AG", "privacy@crash.example", "1min")),
        )
        self.customer = Client.open(directory / "cust.db", key=bytes.fromhex(keys["cust"]))
        intended, _ = intents(directory)
        self.erased = set(intended)
        self.intent = os.open(directory / INTENT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def mark(self, name: str) -> None:
        os.pwrite(self._phase, name.encode("ascii").ljust(32), 0)

    def log(self, line: str, *, sync: bool = True) -> None:
        os.write(self.intent, (line + "\n").encode("ascii"))
        if sync:
            os.fsync(self.intent)

    def subjects(self) -> list[str]:
        found = {c.subject for c in self.bank.conversations()}
        return sorted(s for s in found if s is not None and s not in self.erased)

    def step(self) -> None:
        roll = self.rng.random()
        subjects = self.subjects()
        if roll < 0.15 or not subjects:
            self.mark("start")
            subject = f"s{self.rng.randrange(10**9)}"
            category = "contract" if self.rng.random() < 0.4 else None
            conv = self.bank.start_conversation(
                self.customer.prekey_bundle(), subject=subject, category=category
            )
            for _ in range(self.rng.randrange(1, 6)):
                conv.send("hello " + subject)
            return
        subject = self.rng.choice(subjects)
        conversations = [c for c in self.bank.conversations() if c.subject == subject]
        if roll < 0.45:
            self.mark("send")
            for _ in range(self.rng.randrange(1, 8)):
                self.rng.choice(conversations).send("message for " + subject)
        elif roll < 0.55:
            self.mark("consent")
            self.bank.record_consent(
                subject=subject, purpose="marketing", give=self.rng.random() < 0.6, notice=NOTICE
            )
        elif roll < 0.65:
            active = self.bank.holds()
            if active and self.rng.random() < 0.5:
                self.mark("hold-release")
                self.bank.release_hold(self.rng.choice(active).id)
            else:
                self.mark("hold-place")
                self.bank.place_hold(subject=subject, reason="crash campaign")
        elif roll < 0.75:
            self.mark("sweep")
            self.bank.sweep()
        elif roll < 0.85:
            export_id = str(self.rng.randrange(10**9))
            self.log(f"export {subject} {export_id}", sync=False)
            self.mark("export")
            data = self.bank.export(subject)
            self.write_export(export_file(self.dir, subject, export_id), data)
            self.log(f"exported {subject} {export_id}", sync=False)
        else:
            self.erased.add(subject)
            self.log(f"erase {subject}")
            self.mark("erase")
            receipt = self.bank.erase(subject=subject)
            self.log(f"done {subject} {receipt.receipt_id}")

    def run(self) -> None:
        print("ready", flush=True)
        while True:
            self.step()


def setup(directory: Path, seed: int) -> None:
    """Create the two stores and the key file (creation is not under the kills)."""
    from entrenous import Client

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    keys = {"bank": rng.randbytes(32).hex(), "cust": rng.randbytes(32).hex()}
    fd = os.open(directory / KEYS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keys, handle)
    for name, value in keys.items():
        Client.open(directory / f"{name}.db", key=bytes.fromhex(value)).close()


def open_bank(directory: Path) -> Any:
    """The bank's client, opened as the checker does (no sweep: nothing changes but recovery)."""
    from entrenous import Client

    keys = json.loads((directory / KEYS).read_text())
    return Client.open(
        directory / "bank.db", key=bytes.fromhex(keys["bank"]), clock=clock, sweep=False
    )


if __name__ == "__main__":
    Worker(Path(sys.argv[1]), int(sys.argv[2])).run()
