"""A Client shared by threads serialises their calls (API-13).

Besides the end results (no errors, every message stored, the peer decrypts every envelope), a
spy on the store connection records which thread ran each statement: inside any transaction,
every statement must come from the thread that began it.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from store_support import Pair, StatementSpy

from entrenous import Client
from entrenous import client as client_module


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
