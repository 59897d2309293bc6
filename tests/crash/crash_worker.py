"""The process that the crash campaign kills (API-12): a send/receive loop between two clients.

Run as ``python crash_worker.py DIRECTORY SEED [MAX_CYCLES]`` (``crash_support.py`` does it), or
``python crash_worker.py --create DIRECTORY`` for the store-creation test.
The two stores (``a.db``, ``b.db``) and their raw keys (``keys.json``, owner-only: keys never go
on the command line) live in ``DIRECTORY``. The worker prints ``ready`` once its imports are done,
opens both clients and loops until it is killed:

* one side sends a burst of messages, each carrying a unique token; every envelope ``send``
  returns is appended to the *wire log* (``wire.log``: write, then fsync) before anything else is
  done with it. The wire log is the network: an envelope that is not in it never left the sender.
* each side receives what is pending for it in the wire log, one at a time or as a
  ``receive_many`` batch, sometimes out of order; every result is appended to the *received log*
  (``recv.log``: write, then fsync) once ``receive`` has returned. Sometimes an envelope already
  received is delivered again on purpose: it must raise ``ReplayError``.
* now and then a side starts another conversation from the other's prekey bundle.

A new run resumes from the stores and the logs: envelopes of the wire log without a line in the
received log are delivered (again). One that the previous run's receive committed just before the
kill, so that no line was written, then raises ``ReplayError``: that is logged as ``dup`` and the
campaign checks afterwards that its message really is in the receiver's history.

Before each step the worker writes the step's name to ``phase`` (no fsync: the page cache survives
the process), so the campaign can tell where each kill landed.

Log formats (one line each, space-separated, base64 without spaces):
``wire.log``: ``seq sender receiver token envelope``;
``recv.log``: ``seq ok|dup|redup message_id|error token|-``.
Exit codes: 0 only after ``MAX_CYCLES`` (without it the loop runs until killed), 3 an unexpected
outcome (the reason is on stderr).
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import sys
from pathlib import Path
from typing import Any

WIRE_LOG = "wire.log"
RECV_LOG = "recv.log"
PHASE = "phase"
KEYS = "keys.json"
STORES = {"A": "a.db", "B": "b.db"}
CREATED = "c.db"  # the store of the creation test
PEER = {"A": "B", "B": "A"}
MAX_SESSIONS = 4
PHASE_WIDTH = 32
#: Outcome codes of the received log.
OK, DUP, REDUP = "ok", "dup", "redup"
#: How the receiver may refuse an envelope it already accepted: ReplayError while the envelope's
#: chain is kept; AuthenticationError once the chain was evicted (MAX_RECEIVING_CHAINS), when the
#: envelope looks like one of an unknown chain. Both store nothing (API-03).
REFUSALS = ("ReplayError", "AuthenticationError")


def content_token(content: str | dict[str, Any]) -> str:
    """The token a message carries (text ``tok:<token> ...`` or a mapping with ``tok``)."""
    if isinstance(content, dict):
        return str(content["tok"])
    return content.split(" ", 1)[0].removeprefix("tok:")


def make_content(token: str, rng: random.Random) -> str | dict[str, Any]:
    """A message carrying ``token``: mostly short text, sometimes a mapping or a longer text."""
    roll = rng.random()
    if roll < 0.2:
        return {"tok": token, "n": rng.randrange(1000), "tags": ["crash", "test"]}
    if roll < 0.3:
        return f"tok:{token} " + "x" * rng.randrange(200, 4000)
    return f"tok:{token} hello"


def read_lines(path: Path) -> tuple[list[list[str]], int]:
    """The complete lines of a log (split on spaces) and the byte length they occupy.

    A kill in the middle of an append can leave a torn last line without its newline; it is not
    returned, and the caller truncates the file to the returned length before appending.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    return [line.split(" ") for line in data[:end].decode("ascii").splitlines()], end


class Log:
    """An append-only, fsynced log file (one ``os.write`` per record)."""

    def __init__(self, path: Path, valid_length: int) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, valid_length)  # drop a torn last line, if any
        os.lseek(self._fd, 0, os.SEEK_END)

    def append(self, lines: list[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("ascii")
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"short write to a log ({written} of {len(data)} bytes)")
        os.fsync(self._fd)


class Worker:
    def __init__(self, directory: Path, seed: int) -> None:
        from entrenous import Client

        self.dir = directory
        self.rng = random.Random(seed)
        self._phase_fd = os.open(directory / PHASE, os.O_WRONLY | os.O_CREAT, 0o600)
        keys = json.loads((directory / KEYS).read_text())
        self.clients: dict[str, Any] = {}
        for name in ("A", "B"):
            self.phase(f"open-{name}")
            self.clients[name] = Client.open(
                directory / STORES[name], key=bytes.fromhex(keys[name])
            )
        self.phase("load-logs")
        wire_lines, wire_length = read_lines(directory / WIRE_LOG)
        recv_lines, recv_length = read_lines(directory / RECV_LOG)
        # seq -> (sender, receiver, token, envelope)
        self.wire: list[tuple[str, str, str, bytes]] = []
        for seq, (number, sender, receiver, token, envelope) in enumerate(wire_lines):
            assert int(number) == seq, "wire log out of sequence"
            self.wire.append((sender, receiver, token, base64.b64decode(envelope)))
        self.delivered: set[int] = set()
        self.received_ok: list[int] = []
        for number, outcome, *_ in recv_lines:
            self.delivered.add(int(number))
            if outcome == OK:
                self.received_ok.append(int(number))
        self.wire_log = Log(directory / WIRE_LOG, wire_length)
        self.recv_log = Log(directory / RECV_LOG, recv_length)

    def phase(self, name: str) -> None:
        os.pwrite(self._phase_fd, name.encode("ascii").ljust(PHASE_WIDTH), 0)

    def fail(self, reason: str) -> None:
        print(f"crash worker: {reason}", file=sys.stderr, flush=True)
        os._exit(3)

    # --- conversations -------------------------------------------------------------------------

    def start_conversation(self, initiator: str) -> None:
        self.phase("prekey-bundle")
        bundle = self.clients[PEER[initiator]].prekey_bundle()
        self.phase("start-conversation")
        self.clients[initiator].start_conversation(bundle)

    # --- sending -------------------------------------------------------------------------------

    def send_burst(self, sender: str) -> None:
        self.phase("list-conversations")
        conversations = self.clients[sender].conversations()
        if not conversations:
            return
        conversation = self.rng.choice(conversations)
        for _ in range(self.rng.randint(1, 4)):
            token = secrets.token_hex(8)
            content = make_content(token, self.rng)
            self.phase("send")
            envelope = conversation.send(content)
            self.phase("log-sent")
            seq = len(self.wire)
            receiver = PEER[sender]
            self.wire_log.append(
                [f"{seq} {sender} {receiver} {token} {base64.b64encode(envelope).decode()}"]
            )
            self.wire.append((sender, receiver, token, envelope))

    # --- receiving -----------------------------------------------------------------------------

    def deliver_pending(self, receiver: str) -> None:
        pending = [
            seq
            for seq, (_, to, _, _) in enumerate(self.wire)
            if to == receiver and seq not in self.delivered
        ]
        if self.rng.random() < 0.3:
            self.rng.shuffle(pending)  # out of order: skipped keys, old chains
        while pending:
            size = self.rng.randint(1, 5)
            batch, pending = pending[:size], pending[size:]
            if self.rng.random() < 0.3:
                self.receive_batch(receiver, batch)
            else:
                for seq in batch:
                    self.receive_one(receiver, seq)
        if self.received_ok and self.rng.random() < 0.1:
            seq = self.rng.choice(self.received_ok)
            if self.wire[seq][1] == receiver:
                self.redeliver(receiver, seq)

    def _accepted(self, seq: int, received: Any) -> str:
        token = self.wire[seq][2]
        got = content_token(received.message.content)
        if got != token:
            self.fail(f"envelope {seq} decrypted to token {got}, not {token}")
        return f"{seq} {OK} {received.message.id} {token}"

    def receive_one(self, receiver: str, seq: int) -> None:
        client = self.clients[receiver]
        self.phase("receive")
        try:
            received = client.receive(self.wire[seq][3])
        except Exception as exc:
            error = type(exc).__name__
            if error not in REFUSALS:
                self.fail(f"envelope {seq} refused with {error}: {exc}")
            line = f"{seq} {DUP} {error} -"
        else:
            line = self._accepted(seq, received)
        self.phase("log-received")
        self.recv_log.append([line])
        self.delivered.add(seq)
        if line.split(" ")[1] == OK:
            self.received_ok.append(seq)

    def receive_batch(self, receiver: str, batch: list[int]) -> None:
        client = self.clients[receiver]
        self.phase("receive-many")
        outcomes = client.receive_many([self.wire[seq][3] for seq in batch])
        if [o.index for o in outcomes] != list(range(len(batch))):
            self.fail("receive_many outcomes are not one per envelope, in order")
        lines = []
        for seq, outcome in zip(batch, outcomes, strict=True):
            if outcome.received is not None:
                lines.append(self._accepted(seq, outcome.received))
            elif type(outcome.error).__name__ in REFUSALS:
                lines.append(f"{seq} {DUP} {type(outcome.error).__name__} -")
            else:
                error = outcome.error
                self.fail(f"envelope {seq} refused in a batch with {type(error).__name__}: {error}")
        self.phase("log-received")
        self.recv_log.append(lines)
        for seq, line in zip(batch, lines, strict=True):
            self.delivered.add(seq)
            if line.split(" ")[1] == OK:
                self.received_ok.append(seq)

    def redeliver(self, receiver: str, seq: int) -> None:
        """Deliver an envelope already received: it must be refused, and store nothing."""
        self.phase("redeliver")
        try:
            self.clients[receiver].receive(self.wire[seq][3])
        except Exception as exc:
            error = type(exc).__name__
            if error not in REFUSALS:
                self.fail(f"duplicate of envelope {seq} refused with {error}: {exc}")
        else:
            self.fail(f"envelope {seq} was accepted twice")
        self.phase("log-received")
        self.recv_log.append([f"{seq} {REDUP} {error} -"])

    # --- the loop ------------------------------------------------------------------------------

    def cycle(self) -> None:
        if not self.clients["A"].conversations():
            self.start_conversation("A")
        elif self.rng.random() < 0.03:
            # A session counts on both sides once its first envelope arrived.
            count = len(self.clients["A"].conversations()) + len(self.clients["B"].conversations())
            if count < 2 * MAX_SESSIONS:
                self.start_conversation(self.rng.choice("AB"))
        # Deliver first: what a killed run left in flight arrives before anything new.
        for receiver in self.rng.sample(["A", "B"], 2):
            self.deliver_pending(receiver)
        self.send_burst(self.rng.choice("AB"))
        for receiver in self.rng.sample(["A", "B"], 2):
            if self.rng.random() < 0.8:
                self.deliver_pending(receiver)


def create(directory: Path) -> int:
    """Create the store ``c.db`` (the creation test kills this at random points)."""
    import time

    from entrenous import Client

    secret = json.loads((directory / KEYS).read_text())
    print("ready", flush=True)
    started = time.perf_counter()
    if "passphrase" in secret:
        client = Client.open(directory / CREATED, passphrase=secret["passphrase"])
    else:
        client = Client.open(directory / CREATED, key=bytes.fromhex(secret["key"]))
    elapsed = time.perf_counter() - started
    client.close()
    print(f"created {elapsed:.6f}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[1] == "--create":
        return create(Path(argv[2]))
    directory, seed = Path(argv[1]), int(argv[2])
    max_cycles = int(argv[3]) if len(argv) > 3 else None
    from entrenous import Client  # noqa: F401 - the imports are done before "ready"

    print("ready", flush=True)
    worker = Worker(directory, seed)
    cycles = 0
    while max_cycles is None or cycles < max_cycles:
        worker.cycle()
        cycles += 1
    worker.phase("done")
    for client in worker.clients.values():
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
