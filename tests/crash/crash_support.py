"""The crash campaign of API-12: kill a send/receive loop with SIGKILL many times, then check.

:func:`run_campaign` creates two stores in a directory, then starts ``crash_worker.py`` on them
again and again, each time killing it with SIGKILL after a random delay (counted from the moment
its imports are done: some kills land while it opens the stores, most in the middle of sends and
receives). :func:`verify` then opens both stores in this process and proves the four claims of
API-12:

1. ``PRAGMA integrity_check`` is ``ok`` for both stores (and for their data-key files).
2. No message that ``receive`` returned is missing: every ``ok`` line of the received log names a
   message that is in the receiver's history, with the same token, exactly once.
3. Every envelope that left ``send`` (every line of the wire log) is decryptable exactly once by
   the peer: it is in the sender's history (send committed before it returned); if its token is
   not yet in the receiver's history it is delivered now and must decrypt to that token; then
   every envelope is delivered once more and must be refused, storing nothing: ``ReplayError``
   while its receiving chain is kept, ``AuthenticationError`` once the chain was evicted
   (``MAX_RECEIVING_CHAINS``: the envelope then looks like one of an unknown chain). No token is
   ever stored twice by the receiver, no message id twice.
4. No two envelopes share a message key and nonce. Both come from the header: the nonce is a
   function of ``n`` and the message key is step ``n`` of the chain that ratchet key starts
   (deterministic), so a key reused after a crash (a sender whose state went back) would show as
   two envelopes with the same ``(session id, ratchet key, n)``. Every header in the wire log is
   checked to be unique, and every ciphertext too.

The worker's and the campaign's randomness comes from one seed (``ENTRENOUS_CRASH_SEED``, printed
in the report) except for the kill timing, which the OS scheduler decides anyway.

Run it on its own (the full count) with::

    .venv/bin/python tests/crash/crash_support.py --kills 250 [--seed N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_worker import (
    CREATED,
    DUP,
    KEYS,
    OK,
    PEER,
    PHASE,
    RECV_LOG,
    REDUP,
    REFUSALS,
    STORES,
    WIRE_LOG,
    content_token,
    read_lines,
)

WORKER = Path(__file__).resolve().parent / "crash_worker.py"
#: Kill delays (seconds after "ready"): a share short enough to land in Client.open, the rest in
#: the loop.
OPEN_SHARE, OPEN_DELAY, LOOP_DELAY = 0.25, 0.008, 0.3
READY_TIMEOUT = 60.0


@dataclass
class CampaignReport:
    """What a campaign did and what the check found (numbers for the report)."""

    seed: int
    kills: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    in_flight_at_kill: Counter[str] = field(default_factory=Counter)
    torn_log_lines: int = 0
    seconds: float = 0.0
    verified: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"seed {self.seed}: {self.kills} kills in {self.seconds:.1f} s",
            "kills by phase: " + ", ".join(f"{k} {v}" for k, v in self.phases.most_common()),
            "envelopes in flight at a kill (sent, not yet received): "
            + ", ".join(f"{k}: {v}" for k, v in sorted(self.in_flight_at_kill.items())),
            f"kills that tore a log line: {self.torn_log_lines}",
            "check: " + ", ".join(f"{k} {v}" for k, v in self.verified.items()),
        ]
        return "\n".join(lines)


def _bucket(count: int) -> str:
    if count == 0:
        return "0"
    if count <= 2:
        return "1-2"
    if count <= 5:
        return "3-5"
    return "6+"


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # The worker must import this checkout's entrenous, as the tests do.
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def setup(directory: Path, seed: int) -> None:
    """Create the two stores and the key file (not under the kills: creation is its own test)."""
    from entrenous import Client

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    keys = {name: rng.randbytes(32).hex() for name in STORES}
    fd = os.open(directory / KEYS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keys, handle)
    for name, store in STORES.items():
        Client.open(directory / store, key=bytes.fromhex(keys[name])).close()


class _LogTail:
    """Follows the logs between kills to count envelopes in flight."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.sent: set[int] = set()
        self.delivered: set[int] = set()

    def update(self) -> bool:
        """Read the logs; True if a kill left a torn (unterminated) line in one of them."""
        torn = False
        for name in (WIRE_LOG, RECV_LOG):
            path = self.dir / name
            lines, length = read_lines(path)
            if path.exists() and path.stat().st_size != length:
                torn = True
            target = self.sent if name == WIRE_LOG else self.delivered
            target.update(int(line[0]) for line in lines)
        return torn

    @property
    def in_flight(self) -> int:
        return len(self.sent - self.delivered)


def _stderr_tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return "(no stderr)"
    return path.read_text(errors="replace")[-3000:]


def _wait_ready(process: subprocess.Popen[bytes], stderr_path: Path | None) -> None:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(READY_TIMEOUT):
            process.kill()
            process.wait()
            raise AssertionError("the crash worker did not start in time")
    line = process.stdout.readline()
    if line != b"ready\n":
        process.wait()
        raise AssertionError(f"the crash worker did not start: {_stderr_tail(stderr_path)}")


def run_campaign(
    directory: Path, kills: int, seed: int, *, progress: bool = False
) -> CampaignReport:
    """Set up, then start and SIGKILL the worker ``kills`` times; the stores stay in place."""
    report = CampaignReport(seed=seed)
    started = time.monotonic()
    setup(directory, seed)
    rng = random.Random(seed)
    tail = _LogTail(directory)
    stderr_path = directory / "worker-stderr.txt"
    phase_path = directory / PHASE
    for run in range(kills):
        phase_path.unlink(missing_ok=True)  # a kill before the first step reads "before-open"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [sys.executable, str(WORKER), str(directory), str(seed * 1_000_003 + run)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=_worker_env(),
            )
        try:
            _wait_ready(process, stderr_path)
            if rng.random() < OPEN_SHARE:
                delay = rng.uniform(0, OPEN_DELAY)
            else:
                delay = rng.uniform(OPEN_DELAY, LOOP_DELAY)
            time.sleep(delay)
            if process.poll() is not None:
                raise AssertionError(
                    f"run {run}: the crash worker stopped by itself (exit {process.returncode}): "
                    f"{_stderr_tail(stderr_path)}"
                )
            process.send_signal(signal.SIGKILL)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
        if returncode != -signal.SIGKILL:
            raise AssertionError(
                f"run {run}: the worker exited with {returncode}: {_stderr_tail(stderr_path)}"
            )
        report.kills += 1
        phase = phase_path.read_bytes().decode().strip() if phase_path.exists() else ""
        report.phases[phase or "before-open"] += 1
        report.torn_log_lines += tail.update()
        report.in_flight_at_kill[_bucket(tail.in_flight)] += 1
        if progress and (run + 1) % 25 == 0:
            print(f"  {run + 1} kills, {len(tail.sent)} envelopes", file=sys.stderr, flush=True)
    report.verified = verify(directory)
    report.seconds = time.monotonic() - started
    return report


# --- the check -----------------------------------------------------------------------------------


def all_messages(client: Any) -> list[Any]:
    """Every message of every conversation, through history() pages."""
    out = []
    for conversation in client.conversations():
        before = None
        while True:
            page = conversation.history(limit=1000, before=before)
            out.extend(page)
            if len(page) < 1000:
                break
            before = page[-1].id
    return out


def _key_file_ok(client: Any) -> bool:
    rows = client._store._keys._connection.execute("PRAGMA integrity_check").fetchall()
    return bool(rows == [("ok",)])


def verify(directory: Path) -> dict[str, int]:
    """Open both stores and check the four claims of API-12 (AssertionError on a failure)."""
    from entrenous import Client
    from entrenous.errors import AuthenticationError, ReplayError
    from entrenous.protocol import parse_envelope

    keys = json.loads((directory / KEYS).read_text())
    clients = {
        name: Client.open(directory / store, key=bytes.fromhex(keys[name]))
        for name, store in STORES.items()
    }
    try:
        stats: dict[str, int] = {}
        # 1. integrity
        for name, client in clients.items():
            assert client._store.integrity_check(), f"store {name} fails PRAGMA integrity_check"
            assert _key_file_ok(client), f"the data-key file of {name} fails integrity_check"

        wire = [
            (sender, receiver, token, base64.b64decode(envelope))
            for _, sender, receiver, token, envelope in read_lines(directory / WIRE_LOG)[0]
        ]
        recv_lines = read_lines(directory / RECV_LOG)[0]
        stats["envelopes"] = len(wire)

        def index(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
            messages = all_messages(clients[name])
            ids = Counter(m.id for m in messages)
            assert max(ids.values(), default=1) == 1, f"{name} stores a message id twice"
            sent = {content_token(m.content): m for m in messages if m.direction == "sent"}
            received = Counter(content_token(m.content) for m in messages if m.direction != "sent")
            twice = [t for t, count in received.items() if count > 1]
            assert not twice, f"{name} stored {len(twice)} received messages twice"
            by_token = {content_token(m.content): m for m in messages if m.direction != "sent"}
            return sent, by_token

        sent = {}
        received = {}
        for name in STORES:
            sent[name], received[name] = index(name)

        # 4. no (session, ratchet key, n) twice: no message key or nonce used twice
        headers: Counter[tuple[bytes, bytes, int]] = Counter()
        ciphertexts: Counter[bytes] = Counter()
        for _, _, _, envelope in wire:
            parsed = parse_envelope(envelope)
            headers[(parsed.session_id, parsed.header.ratchet_key, parsed.header.n)] += 1
            ciphertexts[parsed.ciphertext] += 1
        assert max(headers.values(), default=1) == 1, "two envelopes share a message key and nonce"
        assert max(ciphertexts.values(), default=1) == 1, "two envelopes share a ciphertext"
        stats["sessions"] = len({h[0] for h in headers})

        # 3a. every envelope that left send is in the sender's history
        wire_tokens = {token for _, _, token, _ in wire}
        for seq, (sender, _, token, _) in enumerate(wire):
            assert token in sent[sender], (
                f"envelope {seq} left send but is not in {sender}'s history"
            )
        # sent, committed, but the kill came before the wire log got it (lost in transit)
        stats["sent_not_on_wire"] = sum(
            1 for name in STORES for token in sent[name] if token not in wire_tokens
        )

        # 2. nothing that receive returned is missing
        outcomes = Counter(line[1] for line in recv_lines)
        for seq_text, outcome, message_id, *_ in recv_lines:
            seq = int(seq_text)
            _, receiver, token, _ = wire[seq]
            if outcome == OK:
                message = received[receiver].get(token)
                assert message is not None, f"message of envelope {seq} is missing after reopening"
                assert message.id == message_id, (
                    f"envelope {seq}: another message id after reopening"
                )
                assert message.sender == clients[PEER[receiver]].identity
            else:
                assert outcome in (DUP, REDUP), f"received log: unknown outcome {outcome}"
                assert message_id in REFUSALS, f"envelope {seq}: refused with {message_id}"
                # refused as a replay: then it must have been received before
                assert token in received[receiver], f"envelope {seq} refused but never received"
        stats["received_ok"] = outcomes[OK]
        # receive committed, the kill came before the received log got it (delivered again)
        stats["received_not_logged"] = outcomes[DUP]
        stats["duplicates_refused_in_runs"] = outcomes[REDUP] + outcomes[DUP]

        # 3b. deliver what is still in flight: each must decrypt, once
        leftovers = 0
        for seq, (_, receiver, token, envelope) in enumerate(wire):
            if token not in received[receiver]:
                try:
                    got = clients[receiver].receive(envelope)
                except Exception as exc:
                    raise AssertionError(
                        f"envelope {seq} left send, was never received, and now the peer "
                        f"refuses it: {type(exc).__name__}: {exc}"
                    ) from exc
                assert content_token(got.message.content) == token, f"envelope {seq}: wrong content"
                leftovers += 1
        stats["delivered_after_campaign"] = leftovers
        refusals: Counter[str] = Counter()
        for seq, (_, receiver, _, envelope) in enumerate(wire):
            try:
                clients[receiver].receive(envelope)
            except (ReplayError, AuthenticationError) as exc:
                refusals[type(exc).__name__] += 1
                continue
            raise AssertionError(f"envelope {seq} decrypted a second time")
        for error, count in refusals.items():
            stats[f"final_duplicates_refused_{error}"] = count
        for name, client in clients.items():
            _, received[name] = index(name)
            assert client._store.integrity_check(), f"store {name} fails integrity_check at the end"
        for seq, (_, receiver, token, _) in enumerate(wire):
            assert token in received[receiver], f"envelope {seq} was never received"
        return stats
    finally:
        for client in clients.values():
            client.close()


# --- kills while a store is created ---------------------------------------------------------------


def _start_create(directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(WORKER), "--create", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_worker_env(),
    )


def _open_created(directory: Path, secret: dict[str, str]) -> str:
    """Open the created store in this process: "ok" or the error it raised."""
    from entrenous import Client

    try:
        if "passphrase" in secret:
            client = Client.open(directory / CREATED, passphrase=secret["passphrase"])
        else:
            client = Client.open(directory / CREATED, key=bytes.fromhex(secret["key"]))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    client.close()
    return "ok"


def _new_creation_dir(root: Path, attempt: int, secret: dict[str, str]) -> Path:
    directory = root / f"create-{attempt}"
    directory.mkdir(parents=True)
    fd = os.open(directory / KEYS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(secret, handle)
    return directory


def creation_campaign(root: Path, kills: int, seed: int) -> Counter[str]:
    """Kill ``Client.open`` of a new raw-key store at random points; reopen each; count outcomes.

    Each attempt uses a fresh directory. The kill delay is drawn over the measured duration of a
    creation, so most kills land inside it. Returns how reopening went: "ok" or the error.
    """
    rng = random.Random(seed)
    secret = {"key": rng.randbytes(32).hex()}
    calibration = _start_create(_new_creation_dir(root, -1, secret))
    out, _ = calibration.communicate(timeout=READY_TIMEOUT)
    duration = float(out.decode().split()[-1])
    outcomes: Counter[str] = Counter()
    for attempt in range(kills):
        directory = _new_creation_dir(root, attempt, secret)
        process = _start_create(directory)
        _wait_ready(process, None)
        time.sleep(rng.uniform(0, duration * 1.2))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
        outcomes[_open_created(directory, secret)] += 1
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=250)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="campaign directory to keep")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    if args.keep is not None:
        report = run_campaign(args.keep, args.kills, seed, progress=True)
    else:
        with tempfile.TemporaryDirectory(prefix="entrenous-crash-") as tmp:
            report = run_campaign(Path(tmp) / "campaign", args.kills, seed, progress=True)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
