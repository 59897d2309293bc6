"""Helpers of the fault campaign (tests/faults): a world with known content, what a client
reports about it, and the checks run once a fault is removed.

Not a test module. The world is a bank (with the compliance policy of the compliance tests) and a
customer, both closed, in one directory:

* conversation "kept": messages both ways, category ``advice``, data subject ``cust-1``, under
  a legal hold;
* conversation "erased": started, used, then erased by the bank (an erasure receipt);
* a consent of ``cust-1`` for ``marketing`` recorded by the bank, valid for a year.

:func:`observe` is everything the bank's client reports (histories, conversations, holds,
receipts, the audit trail and the consent ledger, both verified). :func:`check_kept` reopens
both stores after a fault was removed and proves the claims of FLT-01: nothing committed was
lost or changed, ``PRAGMA integrity_check`` passes (store and key file), every envelope that
``send`` returned decrypts once at the peer, and both sides can still talk (no key reused).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from compliance_support import Clock, policy

from entrenous import Client

SUBJECT = "cust-1"
SRC = str(Path(__file__).resolve().parents[2] / "src")


@dataclass(frozen=True)
class World:
    """A closed bank and customer (raw keys) with the content described above."""

    directory: Path
    bank_key: bytes
    customer_key: bytes
    kept_bank: str  # the bank's id of the kept conversation
    kept_customer: str  # the customer's id of it
    start: float  # the clock when the world was built (seconds)

    @property
    def bank_path(self) -> Path:
        return self.directory / "bank.db"

    @property
    def customer_path(self) -> Path:
        return self.directory / "customer.db"

    def copy_to(self, destination: Path) -> World:
        shutil.copytree(self.directory, destination)
        return replace(self, directory=destination)

    def open_bank(self, clock: Any = None) -> Client:
        return Client.open(self.bank_path, key=self.bank_key, clock=clock)

    def open_customer(self, clock: Any = None) -> Client:
        return Client.open(self.customer_path, key=self.customer_key, clock=clock)

    def spec(self) -> dict[str, str]:
        """What a worker process needs to open the world (JSON-friendly)."""
        return {
            "dir": str(self.directory),
            "bank_key": self.bank_key.hex(),
            "customer_key": self.customer_key.hex(),
            "kept_bank": self.kept_bank,
            "kept_customer": self.kept_customer,
        }


def build_world(directory: Path) -> World:
    clock = Clock()
    bank_key, customer_key = os.urandom(32), os.urandom(32)
    directory.mkdir(parents=True, exist_ok=True)
    with (
        Client.open(directory / "bank.db", key=bank_key, clock=clock, policy=policy()) as bank,
        Client.open(directory / "customer.db", key=customer_key, clock=clock) as customer,
    ):
        kept_c = customer.start_conversation(bank.prekey_bundle(), peer="bank")
        kept_b = bank.receive(kept_c.send("kept 1")).conversation
        kept_b.set_category("advice")
        kept_b.set_subject(SUBJECT)
        for i in range(2, 5):
            clock.advance(seconds=60)
            customer.receive(kept_b.send(f"kept reply {i}"))
            bank.receive(kept_c.send(f"kept {i}"))
        bank.place_hold(conversation=kept_b, reason="litigation", reference="case 7")
        bank.record_consent(
            subject=SUBJECT,
            purpose="marketing",
            notice_version="2026-01",
            notice="offers",
            valid_for=timedelta(days=365),
        )
        gone_c = customer.start_conversation(bank.prekey_bundle(), peer="bank")
        gone_b = bank.receive(gone_c.send("to be erased")).conversation
        customer.receive(gone_b.send("erased reply"))
        bank.erase(conversation=gone_b)
        clock.advance(seconds=60)
    return World(directory, bank_key, customer_key, kept_b.id, kept_c.id, clock.now)


def observe(client: Client) -> dict[str, Any]:
    """Everything the client reports about its store (a snapshot to compare)."""
    conversations = client.conversations()
    return {
        "conversations": sorted(
            (c.id, c.peer, c.category, c.subject, c.created_at.isoformat()) for c in conversations
        ),
        "histories": {
            c.id: [
                (m.id, m.direction, m.content, m.sent_at.isoformat(), str(m.received_at))
                for m in c.history(1000)
            ]
            for c in conversations
        },
        "holds": [(h.id, h.reason, str(h.released_at)) for h in client.holds(active_only=False)],
        "receipts": [r.receipt_id for r in client.erasure_receipts()],
        "audit": [(e.seq, e.at, e.action) for e in client.audit_events()],
        "audit_verified": client.verify_audit(),
        "consent_verified": client.verify_consent_ledger(),
        "consent": [(r.record_id, r.state, r.at) for r in client.consent_records(SUBJECT)],
        "policy": None if client.policy is None else client.policy.fingerprint,
    }


def assert_contains(
    before: dict[str, Any], after: dict[str, Any], *, policy_changed: bool = False
) -> None:
    """``after`` holds everything of ``before`` unchanged (it may hold more: later commits)."""
    assert set(before["conversations"]) <= set(after["conversations"])
    for uid, history in before["histories"].items():
        kept = after["histories"][uid]
        assert set(history) <= set(kept), f"messages of {uid} lost or changed"
    for name in ("holds", "receipts", "consent"):
        assert set(before[name]) <= set(after[name]), f"{name} lost or changed"
    assert after["audit"][: len(before["audit"])] == before["audit"]
    assert after["audit_verified"] >= before["audit_verified"]
    assert after["consent_verified"] >= before["consent_verified"]
    assert policy_changed or after["policy"] == before["policy"]


def integrity(client: Client) -> None:
    """``PRAGMA integrity_check`` of the store file and of its data-key file."""
    assert client._store.integrity_check()
    rows = client._store._keys._connection.execute("PRAGMA integrity_check").fetchall()
    assert rows == [("ok",)]


@dataclass
class Outcome:
    """What a run of operations under a fault did, as the worker reports it."""

    results: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Outcome:
        return cls([json.loads(line) for line in text.splitlines() if line.startswith("{")])

    def sent(self, side: str) -> list[tuple[str, bytes]]:
        """(text, envelope) of every send of ``side`` that returned."""
        return [
            (r["text"], bytes.fromhex(r["envelope"]))
            for r in self.results
            if r["op"] == "send" and r["side"] == side and r["ok"] and "envelope" in r
        ]

    def received(self, side: str) -> list[str]:
        """Message ids that receive (or receive_many) of ``side`` returned."""
        return [m for r in self.results if r["side"] == side and r["ok"] for m in r.get("ids", [])]

    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["ok"]]


def check_kept(
    world: World,
    before_bank: dict[str, Any],
    before_customer: dict[str, Any] | None,
    outcome: Outcome,
) -> None:
    """Reopen both stores (fault removed) and check FLT-01's claims.

    ``outcome`` tells what returned under the fault: every bank send that returned must be in the
    bank's history and decrypt once at the customer (and the same the other way round); every
    message receive returned must be in the history. Then both sides exchange once more: a key
    reused by a ratchet state that went back would make the peer refuse it.
    """
    with world.open_bank() as bank, world.open_customer() as customer:
        integrity(bank)
        integrity(customer)
        after_bank = observe(bank)
        changed = any(r["op"] == "apply_policy" and r["ok"] for r in outcome.results)
        assert_contains(before_bank, after_bank, policy_changed=changed)
        if before_customer is not None:
            assert_contains(before_customer, observe(customer))
        bank_conv = bank.conversation(world.kept_bank)
        customer_conv = customer.conversation(world.kept_customer)
        for side, sender_conv, receiver, sent in (
            ("bank", bank_conv, customer, outcome.sent("bank")),
            ("customer", customer_conv, bank, outcome.sent("customer")),
        ):
            texts = [m.content for m in sender_conv.history(1000)]
            for text, envelope in sent:
                assert texts.count(text) == 1, f"a {side} send returned: stored {texts.count(text)}"
                already = [
                    m.content
                    for c in receiver.conversations()
                    for m in c.history(1000)
                    if m.content == text
                ]
                if already:
                    continue
                assert receiver.receive(envelope).message.content == text
        bank_ids = {m[0] for h in after_bank["histories"].values() for m in h}
        customer_ids = {m.id for c in customer.conversations() for m in c.history(1000)}
        for message_id in outcome.received("bank"):
            assert message_id in bank_ids, "a message receive returned was lost"
        for message_id in outcome.received("customer"):
            assert message_id in customer_ids, "a message receive returned was lost"
        assert customer.receive(bank_conv.send("after the fault")).message.content == (
            "after the fault"
        )
        assert bank.receive(customer_conv.send("after the fault too")).message.content == (
            "after the fault too"
        )


WORKER = Path(__file__).resolve().parent / "fault_worker.py"


def run_worker(world: World, *, killed: bool = False, **fault: object) -> Outcome:
    """Run fault_worker.py on ``world`` with ``fault`` (its options) and parse what it did.

    ``killed``: the operations end with a SIGKILL of the worker (``kill:-``, ``spill_keys``).
    """
    spec = {**world.spec(), **fault}
    done = subprocess.run(  # noqa: S603 - our own worker
        [python(), str(WORKER), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=120,
        check=False,
    )
    expected = -signal.SIGKILL if killed else 0
    assert done.returncode == expected, done.stderr[-3000:]
    return Outcome.parse(done.stdout)


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def python() -> str:
    return sys.executable


def assert_typed(outcome: Outcome, allowed: tuple[str, ...] = ("StoreError",)) -> None:
    """Every error the worker saw is one of the library's, of the ``allowed`` branches."""
    for error in outcome.errors():
        assert error["module"] == "entrenous.errors", f"{error['op']} leaked {error['error']}"
        assert set(error["mro"]) & set(allowed), f"{error['op']} raised {error['error']}"
