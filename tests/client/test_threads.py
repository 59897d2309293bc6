"""A Client shared by threads serialises their calls (API-13).

Besides the end results (no errors, every message stored, the peer decrypts every envelope), a
spy on the store connection records which thread ran each statement: inside any transaction,
every statement must come from the thread that began it.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import msgpack
import pytest
from compliance_support import bank_policy
from store_support import Pair, StatementSpy

from entrenous import Client, Policy
from entrenous import client as client_module
from entrenous.errors import UsageError

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "spec" / "export.schema.json").read_text()
)
#: Messages of the default category expire after a minute; "contract" ones are kept ten years.
POLICY = bank_policy("Thread Bank AG", "privacy@threads.example", "1min")


class ThreadSpy(StatementSpy):
    """Records (thread id, statement) for every statement."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.by_thread: list[tuple[int, str]] = []
        self._guard = threading.Lock()

    def _check(self, sql: str) -> None:
        with self._guard:
            self.by_thread.append((threading.get_ident(), sql.strip().upper()))
        super()._check(sql)

    def interleaved_transactions(self) -> list[tuple[int, int, str]]:
        """Statements run by another thread while a transaction was open."""
        owner: int | None = None
        bad = []
        for thread, sql in self.by_thread:
            if sql.startswith("BEGIN"):
                assert owner is None, "BEGIN inside a transaction"
                owner = thread
            elif owner is not None and thread != owner:
                bad.append((owner, thread, sql))
            if sql in ("COMMIT", "ROLLBACK"):
                owner = None
        return bad


def run_together(*jobs: Callable[[], None]) -> None:
    """Run the jobs in threads started together; re-raise the first error of any."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    if errors:
        raise errors[0]


def message_number(envelope: bytes) -> int:
    fields = msgpack.unpackb(envelope, raw=True)
    n = fields[5]
    assert isinstance(n, int)
    return n


def spy(client: Client) -> ThreadSpy:
    installed = ThreadSpy(client._store._connection)
    client._store._connection = installed
    return installed


@pytest.mark.req("API-13")
def test_one_thread_sends_while_another_receives(pair: Pair) -> None:
    incoming = [pair.customer_conv.send(f"in {n}") for n in range(30)]
    outgoing: list[bytes] = []
    received: list[str] = []
    watcher = spy(pair.bank)

    def send() -> None:
        for n in range(30):
            outgoing.append(pair.bank_conv.send(f"out {n}"))

    def receive() -> None:
        for envelope in incoming:
            text = pair.bank.receive(envelope).message.text
            assert text is not None
            received.append(text)

    def read() -> None:
        for _ in range(30):
            pair.bank_conv.history(limit=10)
            pair.bank.conversations()

    run_together(send, receive, read)
    assert watcher.interleaved_transactions() == []
    assert received == [f"in {n}" for n in range(30)]
    texts = {m.text for m in pair.bank_conv.history(limit=1000)}
    assert texts >= {f"in {n}" for n in range(30)} | {f"out {n}" for n in range(30)}
    assert len(pair.bank_conv.history(limit=1000)) == 2 + 60
    decrypted = [pair.customer.receive(e).message.text for e in outgoing]
    assert decrypted == [f"out {n}" for n in range(30)]


@pytest.mark.req("API-13")
def test_two_threads_sending_on_one_conversation_never_share_a_message_key(pair: Pair) -> None:
    envelopes: list[bytes] = []
    lock = threading.Lock()
    watcher = spy(pair.bank)

    def send(name: str) -> Callable[[], None]:
        def job() -> None:
            for n in range(20):
                envelope = pair.bank_conv.send(f"{name} {n}")
                with lock:
                    envelopes.append(envelope)

        return job

    run_together(send("a"), send("b"))
    assert watcher.interleaved_transactions() == []
    numbers = [message_number(e) for e in envelopes]
    assert len(set(numbers)) == 40  # one chain, forty distinct message numbers
    random.Random(13).shuffle(envelopes)
    texts = {pair.customer.receive(e).message.text for e in envelopes}
    assert texts == {f"{name} {n}" for name in "ab" for n in range(20)}
    assert len(pair.bank_conv.history(limit=1000)) == 42


@pytest.mark.req("API-13")
def test_two_threads_receiving_from_different_peers(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "other.db", key=os.urandom(32)) as other:
        other_conv = other.start_conversation(pair.bank.prekey_bundle())
        from_other = [other_conv.send(f"other {n}") for n in range(20)]
    from_customer = [pair.customer_conv.send(f"customer {n}") for n in range(20)]
    watcher = spy(pair.bank)

    def receive(envelopes: list[bytes]) -> Callable[[], None]:
        def job() -> None:
            for envelope in envelopes:
                pair.bank.receive(envelope)

        return job

    run_together(receive(from_other), receive(from_customer), receive([]))
    assert watcher.interleaved_transactions() == []
    assert len(pair.bank.conversations()) == 2
    assert len(pair.bank_conv.history(limit=1000)) == 22
    (new,) = [c for c in pair.bank.conversations() if c != pair.bank_conv]
    assert [m.text for m in new.history(limit=1000)] == [f"other {n}" for n in range(19, -1, -1)]


@pytest.mark.req("API-13")
def test_thread_sharing_is_documented() -> None:
    assert client_module.__doc__ is not None
    assert "threads" in client_module.__doc__
    assert "serialised" in client_module.__doc__


class FastClock:
    """A clock shared by threads that moves half a second on every reading."""

    def __init__(self) -> None:
        self._now = 1_767_225_600.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self._now += 0.5
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.mark.req("API-13")
def test_compliance_calls_in_threads_beside_sends_and_receives(tmp_path: Path) -> None:
    """send, receive, receive_many, history, consent, holds, sweep, export and erase from five
    threads on one Client: no transaction interleaves, the audit trail and the consent ledger
    verify, every event is there once, and no message is lost (but what the sweeps report)."""
    clock = FastClock()
    bank = Client.open(
        tmp_path / "bank.db", key=os.urandom(32), clock=clock, policy=Policy.parse(POLICY)
    )
    customer = Client.open(tmp_path / "customer.db", key=os.urandom(32), clock=clock)
    try:
        alice = bank.start_conversation(
            customer.prekey_bundle(), subject="alice", category="contract"
        )
        bob = bank.start_conversation(customer.prekey_bundle(), subject="bob")
        carol = bank.start_conversation(customer.prekey_bundle(), subject="carol")
        from_alice = customer.receive(alice.send("hello alice")).conversation
        customer.receive(bob.send("hello bob"))
        customer.receive(carol.send("hello carol"))
        for n in range(4):
            carol.send(f"expired {n}")
        clock.advance(120)  # the first sweep deletes these five at least
        incoming = [from_alice.send(f"in {n}") for n in range(30)]
        outgoing: list[bytes] = []
        exports: list[dict[str, Any]] = []
        sweeps: list[int] = []
        watcher = spy(bank)

        def send() -> None:
            for n in range(30):
                outgoing.append(alice.send(f"out {n}"))
                if n % 3 == 0:
                    carol.send(f"to carol {n}")

        def receive() -> None:
            for envelope in incoming[:10]:
                bank.receive(envelope)
            for start in range(10, 30, 5):
                outcomes = bank.receive_many(incoming[start : start + 5])
                assert all(o.ok for o in outcomes)

        def read() -> None:
            for _ in range(20):
                alice.history(limit=10)
                bank.conversations()
                bank.holds()
                bank.consent_records("alice")
                bank.audit_events()

        def comply() -> None:
            for n in range(10):
                bank.record_consent(
                    subject="alice", purpose="marketing", give=n % 2 == 0, notice="Offers?"
                )
                hold = bank.place_hold(subject="alice", reason="thread test")
                exports.append(bank.export("alice"))
                bank.release_hold(hold.id)
                sweeps.append(bank.sweep().by_conversation.get(carol.id, 0))
                if n == 5:
                    bank.erase(subject="bob")

        run_together(send, receive, read, comply)
        assert watcher.interleaved_transactions() == []
        assert bank.verify_audit() == len(bank.audit_events())
        assert bank.verify_consent_ledger() == 10
        actions = Counter(e.action for e in bank.audit_events())
        assert actions["export"] == 10
        assert actions["consent.recorded"] == 10
        assert actions["hold.placed"] == actions["hold.released"] == 10
        assert actions["erasure"] == 1
        assert actions["sweep"] >= 1 and sum(sweeps) >= 5  # the sweeps did delete (carol's)
        texts = [m.text for m in alice.history(limit=1000)]
        expected = (
            {"hello alice"} | {f"in {n}" for n in range(30)} | {f"out {n}" for n in range(30)}
        )
        assert sorted(texts) == sorted(expected)
        assert [c.subject for c in bank.conversations()].count("bob") == 0
        assert len(bank.erasure_receipts()) == 1
        # carol's messages are all there but those the sweeps reported deleted
        assert len(carol.history(limit=1000)) + sum(sweeps) == 5 + 10
        counts = []
        for data in exports:
            jsonschema.validate(data, SCHEMA)
            [conversation] = data["conversations"]
            counts.append(len(conversation["messages"]))
        assert counts == sorted(counts)  # each a consistent view, none older than the last
        assert [customer.receive(e).message.text for e in outgoing] == [
            f"out {n}" for n in range(30)
        ]
    finally:
        bank.close()
        customer.close()


@pytest.mark.req("API-13")
def test_close_from_another_thread_waits_for_the_call_in_progress(pair: Pair) -> None:
    """close() takes the client's lock: a call already running finishes with its result, and
    every later call, from any thread, raises UsageError."""
    for n in range(5):
        pair.bank_conv.send(f"m {n}")
    pair.bank_conv.set_subject("alice")
    inside = threading.Event()
    results: list[Any] = []

    def slow_progress(_: int) -> None:
        inside.set()
        time.sleep(0.3)  # close() is called meanwhile, from the main thread

    def export() -> None:
        results.append(pair.bank.export("alice", progress=slow_progress))

    worker = threading.Thread(target=export)
    worker.start()
    assert inside.wait(timeout=30)
    started = time.monotonic()
    pair.bank.close()
    waited = time.monotonic() - started
    worker.join(timeout=30)
    [data] = results
    assert len(data["conversations"][0]["messages"]) == 7
    assert waited > 0.1  # close waited for the export
    with pytest.raises(UsageError):
        pair.bank_conv.send("after close")
    with pytest.raises(UsageError):
        pair.bank.export("alice")
