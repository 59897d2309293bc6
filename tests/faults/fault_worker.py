"""Runs operations on a fault world under a fault, one JSON line per operation on stdout.

Started by the fault tests (never imported by them): ``python fault_worker.py SPEC`` where SPEC
is JSON with the world (see ``World.spec``), the fault (``fsize``: a ``RLIMIT_FSIZE`` in bytes,
with ``SIGXFSZ`` ignored so that writes past it fail with ``EFBIG``; ``uid``: drop to this user
after the imports), ``open_under_fault`` (open the clients after the fault, or before), and
``ops``: names like ``send:bank``, ``receive:customer``, ``receive_many:bank``, ``sweep:bank``,
``erase:bank``, ``apply_policy:bank``, ``record_consent:bank``, ``hold:bank``, ``bundle:bank``,
``start:customer``, ``close:bank``, ``reopen:bank``, ``kill:-`` (SIGKILL itself) and
``spill_keys:bank`` (SIGKILL itself in the middle of a write of the data-key file), ``advance:-``
(the clients' clock jumps 60 days ahead) and, with ``fault_later``, ``fault:-`` (the fault
starts there). Each line
says whether the operation returned and, if not, the class, module and bases of what it raised;
a send that returned gives its text and envelope, a receive the ids of the messages it returned.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from entrenous import Client, Conversation
from entrenous.compliance.policy import Policy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compliance"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from compliance_support import POLICY
from store_support import raw_connect, spec_key_file_key

# Imported before any fault: a worker that drops its privileges cannot read them afterwards.
import entrenous.cli
import entrenous.compliance.export
import entrenous.store.sqlcipher  # noqa: F401


def spill_key_file(path: Path, store_key: bytes) -> None:
    """Leave the data-key file as a kill in the middle of its write would: a transaction whose
    pages spilled into the file (a tiny page cache), its rollback journal hot beside it."""
    connection = raw_connect(path, spec_key_file_key(store_key))
    connection.execute("PRAGMA cache_size = 2")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("DELETE FROM data_keys")
    for _ in range(2000):
        connection.execute(
            "INSERT INTO data_keys (conversation_uid, generation, key) VALUES (?, 0, ?)",
            (os.urandom(16), os.urandom(32)),
        )
    os.kill(os.getpid(), signal.SIGKILL)


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.dir = Path(spec["dir"])
        self.clients: dict[str, Client | None] = {"bank": None, "customer": None}
        self.pending: dict[str, list[bytes]] = {"bank": [], "customer": []}  # to deliver to
        self.bundle: bytes | None = None
        self.count = 0
        self.offset = 0.0  # seconds added to the real time (``advance:-``)
        self.fault: Callable[[], None] = lambda: None
        self.run_id = os.urandom(4).hex()  # texts unique across runs on one world

    def open(self, side: str) -> None:
        old = self.clients[side]
        if old is not None:
            old.close()
            self.clients[side] = None
        self.clients[side] = Client.open(
            self.dir / f"{side}.db", key=bytes.fromhex(self.spec[f"{side}_key"]), clock=self.clock
        )

    def clock(self) -> float:
        return time.time() + self.offset

    def conv(self, side: str) -> Conversation:
        client = self.clients[side]
        assert client is not None
        return client.conversation(self.spec[f"kept_{side}"])

    def run(self, op: str) -> dict[str, Any]:
        name, side = op.split(":")
        other = "customer" if side == "bank" else "bank"
        client = self.clients.get(side)
        record: dict[str, Any] = {"op": name, "side": side}
        self.count += 1
        if name == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if name == "advance":
            self.offset += 60 * 86_400
            record["ok"] = True
            return record
        if name == "fault":
            self.fault()
            record["ok"] = True
            return record
        if client is None and name not in ("open", "reopen"):
            record["skipped"] = "no open client"
            record["ok"] = True
            return record
        if name == "spill_keys":
            spill_key_file(self.dir / f"{side}.db.keys", bytes.fromhex(self.spec[f"{side}_key"]))
        elif name in {"open", "reopen"}:
            self.open(side)
        elif name == "close":
            assert client is not None
            client.close()
        elif name == "send":
            text = f"{side} fault message {self.run_id}-{self.count}"
            record["text"] = text
            envelope = self.conv(side).send(text)
            record["envelope"] = envelope.hex()
            self.pending[other].append(envelope)
        elif name == "receive":
            assert client is not None
            if not self.pending[side]:
                record["skipped"] = True
            else:
                envelope = self.pending[side][0]
                received = client.receive(envelope)
                self.pending[side].pop(0)
                record["ids"] = [received.message.id]
        elif name == "receive_many":
            assert client is not None
            outcomes = client.receive_many(self.pending[side])
            record["ids"] = [o.received.message.id for o in outcomes if o.received is not None]
            self.pending[side] = []
        elif name == "sweep":
            assert client is not None
            client.sweep()
        elif name == "erase":
            assert client is not None
            client.erase(subject="cust-1")
        elif name == "apply_policy":
            assert client is not None
            client.apply_policy(Policy.parse(POLICY.replace('max_age = "30d"', 'max_age = "31d"')))
        elif name == "record_consent":
            assert client is not None
            client.record_consent(
                subject="cust-2",
                purpose="marketing",
                notice_version="2026-01",
                notice="offers",
                valid_for=timedelta(days=30),
            )
        elif name == "hold":
            assert client is not None
            client.place_hold(subject="cust-3", reason="audit")
        elif name == "bundle":
            assert client is not None
            self.bundle = client.prekey_bundle()
        elif name == "start":
            assert client is not None
            if self.bundle is None:
                record["skipped"] = "no bundle"
                record["ok"] = True
                return record
            started = client.start_conversation(self.bundle)
            text = f"{side} first message {self.run_id}-{self.count}"
            envelope = started.send(text)
            self.pending[other].append(envelope)
        else:
            raise AssertionError(f"unknown operation {op}")
        record["ok"] = True
        return record


def failure(op: str, side: str, exc: BaseException) -> dict[str, Any]:
    """The record of an operation that raised: what was raised, by which module, its message."""
    return {
        "op": op,
        "side": side,
        "ok": False,
        "error": type(exc).__name__,
        "module": type(exc).__module__,
        "mro": [c.__name__ for c in type(exc).__mro__],
        "message": str(exc),
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    worker = Worker(spec)

    def fault() -> None:
        if spec.get("fsize") is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], resource.RLIM_INFINITY))
        if spec.get("uid") is not None:
            os.setgroups([])
            os.setgid(spec["uid"])
            os.setuid(spec["uid"])

    if not spec.get("open_under_fault"):
        worker.open("bank")
        worker.open("customer")
    if spec.get("fault_later"):
        worker.fault = fault  # applied by the operation ``fault:-``
    else:
        fault()
    emit({"op": "fault", "side": "-", "ok": True})
    for op in spec["ops"]:
        try:
            emit(worker.run(op))
        except BaseException as exc:
            name, side = op.split(":")
            record = failure(name, side, exc)
            library = type(exc).__module__ == "entrenous.errors"
            record["trace"] = "" if library else traceback.format_exc()
            emit(record)
    for side, client in worker.clients.items():
        if client is not None:
            try:
                client.close()
            except BaseException as exc:
                emit(failure("final close", side, exc))


if __name__ == "__main__":
    main()
