"""Helpers of the command-line tests: a bank's store with data to act on, and running ``main``.

Not a test module. The store is built once per session (``build_bank``) and copied for each test
(``Bank.copy_to``): the command line opens real stores on the real clock, so the messages are
written on a clock set years back, and some of them have expired by now.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from entrenous import Client
from entrenous.cli import main
from entrenous.compliance.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "policy.toml"
SCHEMA = ROOT / "spec" / "export.schema.json"
YEAR = 365 * 86_400
SUBJECT = "customer-42"
OTHER_SUBJECT = "customer-7"
PASSPHRASE = "correct horse battery staple"
#: The files a store is made of (the lock file is left behind on purpose).
_STORE_SUFFIXES = ("", ".keys", ".kdf")


class Clock:
    """A clock the builder moves (seconds since the epoch, like time.time)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    """A stdin that says it is a terminal, with the lines a person would type."""

    def isatty(self) -> bool:
        return True


@dataclass(frozen=True)
class Bank:
    """A bank's store (with the example policy applied) and what the tests know about it.

    ``subject_conversations``: the two conversations of SUBJECT (default rule, and "contract"
    with its 10-year minimum); ``other_conversation``: OTHER_SUBJECT's ("support"). Written three
    years ago and expired now (2-year rules): 4 messages of the first and 4 of the other's;
    2 more of the first are from yesterday; the contract conversation's 2 old messages are
    inside its 10-year minimum retention. One consent record
    (marketing, given) about SUBJECT.
    """

    path: Path
    key: bytes
    subject_conversations: tuple[str, str]
    other_conversation: str
    expired: int = 8

    def copy_to(self, directory: Path) -> Bank:
        """The same store in ``directory`` (a fresh copy for one test)."""
        for suffix in _STORE_SUFFIXES:
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                shutil.copy2(source, directory / source.name)
        return Bank(
            directory / self.path.name,
            self.key,
            self.subject_conversations,
            self.other_conversation,
        )

    def write_key_file(self, *, hex_digits: bool = True, newline: bool = True) -> Path:
        """A key file beside the store; hex digits or raw bytes, with or without a newline."""
        path = self.path.with_name("bank.key")
        data = self.key.hex().encode() if hex_digits else self.key
        path.write_bytes(data + (b"\n" if newline else b""))
        path.chmod(0o600)
        return path

    def open(self) -> Client:
        """The store opened by the library (no sweep), to check or tamper with."""
        return Client.open(self.path, key=self.key, sweep=False)


def build_bank(directory: Path, *, policy: Policy | None = None, name: str = "bank.db") -> Bank:
    """Build the store described by :class:`Bank` in ``directory``."""
    now = time.time()
    clock = Clock(now - 3 * YEAR)
    key = os.urandom(32)
    path = directory / name
    with (
        Client.open(path, key=key, clock=clock, policy=policy or Policy.load(EXAMPLE)) as bank,
        Client.open(directory / "customers.db", key=os.urandom(32), clock=clock) as customer,
    ):
        ids, senders = [], []
        # Three years ago: 4 messages each (2 in the contract conversation).
        plan = [(SUBJECT, None, 4), (SUBJECT, "contract", 2), (OTHER_SUBJECT, "support", 4)]
        for subject, category, old in plan:
            theirs = customer.start_conversation(bank.prekey_bundle())
            ours = bank.receive(theirs.send("Guten Tag")).conversation
            ours.set_subject(subject)
            if category is not None:
                ours.set_category(category)
            for i in range(old - 1):
                bank.receive(theirs.send(f"old message {i}"))
            ids.append(ours.id)
            senders.append(theirs)
        # Yesterday: 2 more in the first conversation, and a consent to marketing.
        clock.now = now - 86_400
        for i in range(2):
            bank.receive(senders[0].send(f"recent message {i}"))
        bank.record_consent(subject=SUBJECT, purpose="marketing")
    return Bank(path, key, (ids[0], ids[1]), ids[2])


def build_passphrase_store(directory: Path) -> Path:
    """A small store opened with PASSPHRASE (Argon2id), with no conversation."""
    path = directory / "passphrase.db"
    Client.open(path, passphrase=PASSPHRASE, policy=Policy.load(EXAMPLE)).close()
    return path


@dataclass(frozen=True)
class Result:
    """What one run of the command line returned and printed."""

    status: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *argv: str | os.PathLike[str]) -> Result:
    """``main(argv)`` with its output captured (earlier output discarded first)."""
    capsys.readouterr()
    status = main([os.fspath(a) for a in argv])
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


def one_error_line(result: Result) -> str:
    """The single line on stderr (asserting that there is exactly one, and no traceback)."""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("entrenous: "), lines[0]
    assert "Traceback" not in result.err
    return lines[0]
