"""send() and receive() each commit in one transaction before they return (API-05, API-06).

The transaction boundaries are observed with a statement spy standing in for the store's
connection; durability is observed by killing a process (SIGKILL) right after the call returned
and reopening its store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import msgpack
import pytest
from store_support import Pair, StatementSpy, logical_state, raw_store

from entrenous import Client
from entrenous.errors import ReplayError, StoreError

#: A child that opens the store in argv[1] (key in $STORE_KEY) and either receives the envelope
#: in $ENVELOPE or sends argv[3] on conversation argv[4]; prints the result, then kills itself
#: before any close() or interpreter shutdown could flush anything.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from entrenous import Client
    client = Client.open(sys.argv[1], key=bytes.fromhex(os.environ["STORE_KEY"]))
    if sys.argv[2] == "receive":
        received = client.receive(bytes.fromhex(os.environ["ENVELOPE"]))
        print(received.message.id, received.conversation.id, flush=True)
    else:
        print(client.conversation(sys.argv[4]).send(sys.argv[3]).hex(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def run_child(store: Path, key: bytes, *args: str, envelope: bytes = b"") -> list[str]:
    process = subprocess.run(  # noqa: S603 - fixed command: this interpreter and CHILD
        [sys.executable, "-c", CHILD, str(store), *args],
        env={**os.environ, "STORE_KEY": key.hex(), "ENVELOPE": envelope.hex()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    return process.stdout.split()


def header_n(envelope: bytes) -> int:
    """The message number of a non-initial envelope (spec/envelope.md: field 5)."""
    fields = msgpack.unpackb(envelope, raw=True)
    assert len(fields) == 7
    n = fields[5]
    assert isinstance(n, int)
    return n


def spy_on(client: Client, **kwargs: object) -> StatementSpy:
    client._store._mark()  # the session's one-off open flag (spec/store.md) is not spied on
    spy = StatementSpy(client._store._connection, **kwargs)  # type: ignore[arg-type]
    client._store._connection = spy
    return spy


def transaction_of(spy: StatementSpy) -> list[str]:
    """The statements between the one BEGIN and the one COMMIT the spy saw (checked)."""
    upper = [s.strip().upper() for s in spy.statements]
    assert upper.count("BEGIN IMMEDIATE") == 1, upper
    assert upper.count("COMMIT") == 1, upper
    assert not any(
        s.startswith(("INSERT", "UPDATE", "DELETE"))
        for s in upper[: upper.index("BEGIN IMMEDIATE")]
    )
    assert not any(
        s.startswith(("INSERT", "UPDATE", "DELETE")) for s in upper[upper.index("COMMIT") :]
    )
    return upper[upper.index("BEGIN IMMEDIATE") : upper.index("COMMIT")]


# --- API-05: send --------------------------------------------------------------------------------


@pytest.mark.req("API-05")
def test_send_commits_state_and_message_in_one_transaction(pair: Pair) -> None:
    spy = spy_on(pair.customer)
    pair.customer_conv.send("one transaction")
    inside = transaction_of(spy)
    assert any(s.startswith("UPDATE CONVERSATIONS") for s in inside)
    assert any(s.startswith("INSERT INTO MESSAGES") for s in inside)


@pytest.mark.req("API-05")
def test_when_send_returns_the_new_state_is_already_on_disk(pair: Pair) -> None:
    uid = bytes.fromhex(pair.customer_conv.id)
    pair.customer_conv.send("warm up the session cache")
    with raw_store(pair.customer_path, pair.customer_key) as db:
        old_state = bytes(db.execute("SELECT state FROM conversations").fetchone()[0])
    pair.customer_conv.send("committed first")
    with raw_store(pair.customer_path, pair.customer_key) as db:  # another connection
        state = bytes(db.execute("SELECT state FROM conversations").fetchone()[0])
        count = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 4
    assert state != old_state
    assert state == pair.customer._sessions[uid].to_bytes()  # exactly the advanced state


@pytest.mark.req("API-05")
@pytest.mark.parametrize("failing", ["INSERT INTO MESSAGES", "UPDATE CONVERSATIONS"])
def test_a_send_that_fails_to_store_returns_nothing_and_changes_nothing(
    failing: str, pair: Pair
) -> None:
    last = pair.customer_conv.send("before")
    pair.bank.receive(last)
    before = logical_state(pair.customer)
    spy = spy_on(pair.customer, fail_on=failing)
    with pytest.raises(StoreError):
        pair.customer_conv.send("never sent")
    pair.customer._store._connection = spy._inner
    assert logical_state(pair.customer) == before
    after = pair.customer_conv.send("after")
    assert header_n(after) == header_n(last) + 1  # the failed send's key was never used
    assert pair.bank.receive(after).message.text == "after"
    assert [m.text for m in pair.customer_conv.history(limit=2)] == ["after", "before"]


@pytest.mark.req("API-05", "STO-05")
def test_a_send_whose_commit_fails_leaves_the_client_usable(pair: Pair) -> None:
    newest = pair.customer_conv.history(limit=1)[0].text
    spy = spy_on(pair.customer, fail_on="COMMIT")
    with pytest.raises(StoreError):
        pair.customer_conv.send("never sent")
    pair.customer._store._connection = spy._inner
    assert [m.text for m in pair.customer_conv.history(limit=1)] == [newest]
    assert pair.bank.receive(pair.customer_conv.send("after")).message.text == "after"
    assert [m.text for m in pair.customer_conv.history(limit=2)] == ["after", newest]


@pytest.mark.req("API-05")
def test_an_envelope_returned_before_a_crash_stays_consistent_with_the_store(pair: Pair) -> None:
    conversation = pair.customer_conv.id
    pair.customer.close()
    out = run_child(pair.customer_path, pair.customer_key, "send", "from-the-child", conversation)
    envelope = bytes.fromhex(out[0])
    assert pair.bank.receive(envelope).message.text == "from-the-child"
    with Client.open(pair.customer_path, key=pair.customer_key) as customer:
        conv = customer.conversation(conversation)
        assert conv.history(limit=1)[0].text == "from-the-child"
        following = conv.send("after the crash")
    assert header_n(following) == header_n(envelope) + 1  # no key used twice
    assert pair.bank.receive(following).message.text == "after the crash"


# --- API-06: receive -----------------------------------------------------------------------------


@pytest.mark.req("API-06")
def test_receive_stores_state_and_message_in_one_transaction(pair: Pair) -> None:
    envelope = pair.customer_conv.send("x")
    spy = spy_on(pair.bank)
    pair.bank.receive(envelope)
    inside = transaction_of(spy)
    assert any(s.startswith("UPDATE CONVERSATIONS") for s in inside)
    assert any(s.startswith("INSERT INTO MESSAGES") for s in inside)


@pytest.mark.req("API-06")
def test_a_first_envelope_stores_conversation_prekeys_and_message_in_one_transaction(
    pair: Pair, tmp_path: Path
) -> None:
    with Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer:
        envelope = newcomer.start_conversation(pair.bank.prekey_bundle()).send("first")
    spy = spy_on(pair.bank)
    pair.bank.receive(envelope)
    inside = transaction_of(spy)
    assert any(s.startswith("INSERT INTO CONVERSATIONS") for s in inside)
    assert any(s.startswith("INSERT INTO SECRETS") for s in inside)  # the consumed prekey
    assert any(s.startswith("INSERT INTO MESSAGES") for s in inside)


@pytest.mark.req("API-06")
@pytest.mark.parametrize("failing", ["INSERT INTO MESSAGES", "INSERT INTO SECRETS"])
def test_a_receive_that_fails_to_store_changes_nothing_and_can_be_retried(
    failing: str, pair: Pair, tmp_path: Path
) -> None:
    with Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer:
        envelope = newcomer.start_conversation(pair.bank.prekey_bundle()).send("first")
    before = logical_state(pair.bank)
    pool = pair.bank._prekeys.to_bytes()
    spy = spy_on(pair.bank, fail_on=failing)
    with pytest.raises(StoreError):
        pair.bank.receive(envelope)
    pair.bank._store._connection = spy._inner
    assert logical_state(pair.bank)["store"] == before["store"]
    assert logical_state(pair.bank)["conversations"] == before["conversations"]
    assert pair.bank._prekeys.to_bytes() == pool  # the in-memory pool was reloaded
    assert pair.bank.receive(envelope).message.text == "first"


@pytest.mark.req("API-06")
def test_a_message_receive_returned_survives_a_crash(pair: Pair) -> None:
    envelope = pair.customer_conv.send("must survive")
    pair.bank.close()
    message_id, conversation_id = run_child(
        pair.bank_path, pair.bank_key, "receive", envelope=envelope
    )
    with Client.open(pair.bank_path, key=pair.bank_key) as bank:
        newest = bank.conversation(conversation_id).history(limit=1)[0]
        assert (newest.id, newest.text) == (message_id, "must survive")
        with pytest.raises(ReplayError):  # and the state that consumed it survived too
            bank.receive(envelope)
        pair.customer.receive(bank.conversation(conversation_id).send("reply"))


@pytest.mark.req("API-06")
def test_a_first_message_receive_returned_survives_a_crash(pair: Pair, tmp_path: Path) -> None:
    with Client.open(tmp_path / "new.db", key=os.urandom(32)) as newcomer:
        conv = newcomer.start_conversation(pair.bank.prekey_bundle())
        envelope = conv.send("first, then crash")
        pair.bank.close()
        message_id, conversation_id = run_child(
            pair.bank_path, pair.bank_key, "receive", envelope=envelope
        )
        with Client.open(pair.bank_path, key=pair.bank_key) as bank:
            conversation = bank.conversation(conversation_id)
            assert conversation.history(limit=1)[0].id == message_id
            assert conversation.peer_identity == newcomer.identity
            with pytest.raises(ReplayError):
                bank.receive(envelope)
            assert newcomer.receive(conversation.send("hello")).message.text == "hello"


# --- API-05, API-06: the warm path writes without reading the conversation back -------------------


@pytest.mark.req("API-05", "API-06")
def test_a_warm_send_and_receive_run_only_their_writes(pair: Pair) -> None:
    """Once a conversation is in use, send and receive do not read it (nor its state) back
    from the file: a transaction is its state UPDATE and message INSERT, nothing else."""
    pair.bank.receive(pair.customer_conv.send("warm"))
    sending, receiving = spy_on(pair.customer), spy_on(pair.bank)
    envelope = pair.customer_conv.send("hot path")
    assert pair.bank.receive(envelope).message.text == "hot path"
    for spy in (sending, receiving):
        upper = [s.strip().upper() for s in spy.statements]
        assert [s.split(" ", 2)[:2] for s in upper] == [
            ["BEGIN", "IMMEDIATE"],
            ["UPDATE", "CONVERSATIONS"],
            ["INSERT", "INTO"],
            ["COMMIT"],
        ], upper
    pair.customer._store._connection = sending._inner
    pair.bank._store._connection = receiving._inner
    assert [m.text for m in pair.bank_conv.history(limit=2)] == ["hot path", "warm"]
