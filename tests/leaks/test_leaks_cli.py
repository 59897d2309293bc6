"""LEAK-01, LEAK-03 to LEAK-05 through the command line and the demo: the README's compliance
walk-through (as tests/test_cli_readme.py runs it, plain and with ``--json``) and the command
line's refusals, on a store whose every message carries a marker; and ``entrenous demo``.

Everything the commands print (stdout and stderr) and every file they write is scanned for the
store's keys (gathered before and after every command), the key file's text and the markers. The
export of a subject may show that subject's markers, and nothing else may show any.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from leak_support import Scanner, debug_logging, gather, report

from cli_support import EXAMPLE, FakeTTY
from entrenous import Client, demo
from entrenous.cli import main
from entrenous.compliance.policy import Policy
from entrenous.errors import WrongKey
from entrenous.store.keys import KdfParams, kdf_path
from test_cli_readme import commands

YEAR = 365 * 86_400
SUBJECT, OTHER = "customer-42", "customer-7"
PASSPHRASE = "leak-check CLI passphrase: Neunundneunzig Luftballons"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """A bank's store like the README's, with a marker in every message, and what was seen."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scanner = Scanner()
        self.key = os.urandom(32)
        self.customer_key = os.urandom(32)
        self.seen: list[tuple[str, str | bytes, tuple[str, ...]]] = []
        self.scanner.add_secret("a passphrase", PASSPHRASE)
        self._build()

    @property
    def bank(self) -> Path:
        return self.directory / "bank.db"

    def marker(self, owner: str) -> str:
        marker = f"zqmark{uuid.uuid4().hex[:16]}"
        self.scanner.add_marker(marker, owner)
        return marker

    def _build(self) -> None:
        now = time.time()
        clock = Clock(now - 3 * YEAR)
        older = EXAMPLE.read_text(encoding="utf-8").replace('max_age = "2y"', 'max_age = "4y"', 1)
        with (
            Client.open(self.bank, key=self.key, clock=clock, policy=Policy.parse(older)) as bank,
            Client.open(
                self.directory / "customers.db", key=self.customer_key, clock=clock
            ) as customers,
        ):
            senders = []
            plan = [(SUBJECT, None, 4), (SUBJECT, "contract", 2), (OTHER, "support", 4)]
            for subject, category, count in plan:
                theirs = customers.start_conversation(bank.prekey_bundle())
                ours = bank.receive(theirs.send(self.marker(subject))).conversation
                ours.set_subject(subject)
                if category is not None:
                    ours.set_category(category)
                for _ in range(count - 1):
                    bank.receive(theirs.send(self.marker(subject)))
                    customers.receive(ours.send({"text": self.marker(subject)}))
                senders.append(theirs)
            clock.now = now - 86_400
            for _ in range(2):
                bank.receive(senders[0].send(self.marker(SUBJECT)))
            bank.record_consent(subject=SUBJECT, purpose="marketing")
            gather(self.scanner, "bank", bank, self.key)
            gather(self.scanner, "customers", customers, self.customer_key)
        key_file = self.directory / "bank.key"
        key_file.write_text(self.key.hex() + "\n")
        key_file.chmod(0o600)
        (self.directory / "examples").mkdir()
        shutil.copy(EXAMPLE, self.directory / "examples" / "policy.toml")

    def gather(self) -> None:
        """The bank store's secrets now (a command may have rotated or destroyed keys)."""
        with Client.open(self.bank, key=self.key, sweep=False) as bank:
            gather(self.scanner, "bank", bank, self.key)

    def run(
        self,
        capsys: pytest.CaptureFixture[str],
        argv: list[str],
        stdin: io.StringIO | None = None,
        *,
        locked: bool = False,
    ) -> int:
        """``main(argv)``; what it printed is kept for the scan."""
        if not locked:
            self.gather()
        capsys.readouterr()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.stdin", stdin or io.StringIO(""))
            status = main(argv)
        out, err = capsys.readouterr()
        self.seen.append((f"stdout of {argv}", out, ()))
        self.seen.append((f"stderr of {argv}", err, ()))
        if not locked:
            self.gather()
        return status

    def files(self) -> None:
        """Every file the commands wrote (the export may show its own subject's markers)."""
        for path in sorted(self.directory.rglob("*")):
            if path.suffix in (".json", ".md") or path.name.startswith("ropa"):
                owners = (SUBJECT,) if path.name == f"{SUBJECT}.json" else ()
                self.seen.append((f"the file {path.name}", path.read_bytes(), owners))

    def findings(self, logs: list[str]) -> list[object]:
        found: list[object] = []
        for where, text, owners in self.seen:
            found += self.scanner.find(text, where, allowed_owners=owners)
        found += self.scanner.find("\n".join(logs), "the log")
        return found


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.chdir(tmp_path)
    yield World(tmp_path)


def _walk_through(world: World, capsys: pytest.CaptureFixture[str], *extra: str) -> None:
    for words in commands():
        argv = [*extra, *words[1:]]
        if "HOLD_ID" in argv:
            with Client.open(world.bank, key=world.key, sweep=False) as client:
                [hold] = client.holds()
            argv = [hold.id if word == "HOLD_ID" else word for word in argv]
        stdin = FakeTTY("yes\n") if "erase" in argv else None
        assert world.run(capsys, argv, stdin) == 0, argv


@pytest.mark.req("LEAK-01", "LEAK-03", "LEAK-05")
@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_the_compliance_walk_through_leaks_nothing(
    world: World, capsys: pytest.CaptureFixture[str], json_output: bool
) -> None:
    with debug_logging() as logs:
        _walk_through(world, capsys, *(["--json"] if json_output else []))
    world.files()
    assert (world.directory / f"{SUBJECT}.json").exists()
    exported = (world.directory / f"{SUBJECT}.json").read_text(encoding="utf-8")
    # The export does show its subject's messages (the scan would see a leak if it did not
    # allow them): the markers are there to be found.
    assert sum(marker in exported for marker in world.scanner.markers) >= 4
    assert not any(
        marker in exported for marker, owner in world.scanner.markers.items() if owner == OTHER
    )
    findings = world.findings(logs.lines)
    assert not findings, report(findings)  # type: ignore[arg-type]


def _refusals(world: World, tmp: Path) -> list[tuple[list[str], str | None, dict[str, str]]]:
    """Command lines that go wrong, each with the stdin text and environment it gets."""
    hexed = world.key.hex()
    store = ["--store", "bank.db"]
    (tmp / "wrong.key").write_text(os.urandom(32).hex() + "\n")
    (tmp / "typo.key").write_text(hexed[:-1] + "g\n")
    (tmp / "short.key").write_text(hexed[:40] + "\n")
    (tmp / "passphrase.txt").write_text(PASSPHRASE + "\n")
    (tmp / "bad.toml").write_text("version = 1\n[retention.default]\nmax_age = 30\n")
    damaged = tmp / "damaged.db"
    for suffix in ("", ".keys"):
        shutil.copy(world.bank.with_name("bank.db" + suffix), tmp / f"damaged.db{suffix}")
    data = bytearray(damaged.read_bytes())
    data[4096 + 64 : 4096 + 512] = os.urandom(448)
    damaged.write_bytes(bytes(data))
    key_file = ["--key-file", "bank.key"]
    return [
        (["audit", "verify", *store, "--key", hexed], None, {}),
        (["audit", "verify", *store, f"--key={hexed}"], None, {}),
        (["audit", "verify", *store, f"--passphrase={PASSPHRASE}"], None, {}),
        (["audit", "verify", *store, "--key-file", hexed], None, {}),
        (["audit", "verify", *store, "--key-file", "wrong.key"], None, {}),
        (["audit", "verify", *store, "--key-file", "typo.key"], None, {}),
        (["audit", "verify", *store, "--key-file", "short.key"], None, {}),
        (["audit", "verify", *store, "--key-env", "LEAK_KEY"], None, {"LEAK_KEY": hexed[:-2]}),
        (["audit", "verify", *store, "--key-env", hexed], None, {}),
        (["audit", "verify", *store, "--passphrase-file", "passphrase.txt"], None, {}),
        (
            ["audit", "verify", *store, "--passphrase-env", "LEAK_PASS"],
            None,
            {"LEAK_PASS": PASSPHRASE},
        ),
        (["audit", "verify", *store], f"{hexed[:-1]}x\n", {}),
        (["audit", "verify", *store], f"{hexed}\n", {}),  # stdin is no terminal: refused
        (["audit", "verify", *store, *key_file, hexed], None, {}),
        (["audit", "verify", *store, *key_file, "--checkpoint", hexed], None, {}),
        (["hold", "relase", *store, *key_file, hexed], None, {}),
        (["policy", "check", "bank.key"], None, {}),
        (["policy", "check", "passphrase.txt"], None, {}),
        (["ropa", "passphrase.txt"], None, {}),
        (["policy", "check", "bad.toml"], None, {}),
        (["policy", "apply", "bad.toml", *store, *key_file], None, {}),
        (["audit", "verify", "--store", "damaged.db", *key_file], None, {}),
        (["export", "--store", "damaged.db", *key_file, SUBJECT, "--output", "d.json"], None, {}),
        (["sweep", "--store", "missing.db", *key_file], None, {}),
        (["audit", "verify", "--trail", "bank.key"], None, {}),
        (["erase", *store, *key_file, "--subject", SUBJECT], "no\n", {}),
    ]


@pytest.mark.req("LEAK-01", "LEAK-03", "LEAK-05")
@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_the_command_lines_refusals_leak_nothing(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, json_output: bool
) -> None:
    passphrase_store = tmp_path / "pass.db"
    Client.open(passphrase_store, passphrase=PASSPHRASE).close()
    derived = KdfParams.from_json(kdf_path(passphrase_store).read_text()).derive(PASSPHRASE)
    world.scanner.add_secret("the passphrase store's key", derived)
    extra = ["--json"] if json_output else []
    statuses = []
    with debug_logging() as logs:
        for argv, stdin, env in _refusals(world, tmp_path):
            with pytest.MonkeyPatch.context() as patch:
                for name, value in env.items():
                    patch.setenv(name, value)
                tty = FakeTTY(stdin) if stdin is not None and "erase" in argv else None
                statuses.append(world.run(capsys, [*extra, *argv], tty or io.StringIO(stdin or "")))
        # A raw key given to a passphrase store, and the store locked by a running client.
        with Client.open(world.bank, key=world.key, sweep=False):
            argv = [*extra, "audit", "verify", "--store", "bank.db", "--key-file", "bank.key"]
            statuses.append(world.run(capsys, argv, locked=True))
        argv = [*extra, "audit", "verify", "--store", "pass.db", "--key-file", "bank.key"]
        statuses.append(world.run(capsys, argv))
    assert all(status != 0 for status in statuses[:-3]), statuses
    findings = world.findings(logs.lines)
    assert not findings, report(findings)  # type: ignore[arg-type]


@pytest.mark.req("LEAK-05")
def test_the_demo_shows_no_key_and_its_relay_log_no_plaintext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo prints what each end keeps on purpose (the plaintexts a person typed): its
    output is checked for keys and the passphrase, its relay log for those too and for every
    plaintext, in any encoding."""
    drawn: list[bytes] = []
    urandom = os.urandom

    def recording(n: int) -> bytes:
        value = urandom(n)
        drawn.append(value)
        return value

    monkeypatch.setattr(demo.os, "urandom", recording)
    with debug_logging() as logs:
        assert demo.run(str(tmp_path)) == 0
    out = capsys.readouterr().out
    monkeypatch.setattr(demo.os, "urandom", urandom)
    passphrase = "correct horse battery staple"
    scanner = Scanner()
    scanner.add_secret("the demo's passphrase", passphrase)
    derived = KdfParams.from_json(kdf_path(tmp_path / "customer.db").read_text()).derive(passphrase)
    opened = 0
    for name, key in [("customer", derived)] + [("bank", v) for v in drawn if len(v) == 32]:
        try:
            client = Client.open(tmp_path / f"{name}.db", key=key, sweep=False)
        except WrongKey:
            continue  # another module's random bytes, not the bank's key
        with client:
            gather(scanner, name, client, key)
            opened += 1
    assert opened == 2
    for text in (
        "Guten Tag, ich habe eine Frage zu meinem Konto",
        "Gern! Worum geht es?",
        "Konto",
        "Karte",
        "Ich höre.",
        "Karte, bitte.",
        "Und die PIN?",
    ):
        scanner.add_marker(text, "the demo's output")
    relay = (tmp_path / "relay.log").read_text()
    findings = scanner.find(out, "the demo's output", allowed_owners=["the demo's output"])
    findings += scanner.find(relay, "the relay log")
    findings += scanner.find("\n".join(logs.lines), "the log")
    assert not findings, report(findings)
    assert "Guten Tag" in out  # the plaintexts are shown where they should be


@pytest.mark.req("LEAK-05")
@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "verify", "--store", "bank.db", "--key-file", "bank.key", "KEY"],
        ["hold", "KEY", "--store", "bank.db", "--key-file", "bank.key"],
        ["ropa", "policy.toml", "--format", "KEY"],
        ["KEY"],
    ],
    ids=["unrecognized", "invalid-choice", "invalid-format", "command"],
)
def test_a_key_typed_by_mistake_is_not_printed_back(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Regression: argparse's usage errors quoted a stray word, a store key pasted after a
    command included ("unrecognized arguments: <the key>")."""
    key = os.urandom(32).hex()
    assert main([key if word == "KEY" else word for word in argv]) == 2
    err = capsys.readouterr().err
    assert key not in err and key[:16] not in err
    assert "not shown: it looks like a key" in err


@pytest.mark.req("LEAK-05")
def test_a_passphrase_typed_after_a_command_is_not_printed_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: words argparse did not understand were quoted back whole ("unrecognized
    arguments: correct horse battery staple"): a passphrase pasted after a command went to
    stderr. Only what looks like an option's name is shown now."""
    secret = "correct horse battery staple"
    argv = ["sweep", "--store", "bank.db", secret, "--jsn", "--colour=horses"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "horse" not in err
    assert "unrecognized arguments" in err and "--jsn" in err and "--colour=" in err


@pytest.mark.req("LEAK-05")
def test_a_passphrase_typed_in_place_of_a_command_is_not_printed_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """argparse quotes an unknown subcommand back ("invalid choice: '...'"): only a word that
    could be a mistyped command is shown, not one that could be a passphrase."""
    for secret in ("correct horse battery staple", "Tr0ub4dor&3", "hunter2!"):
        assert main([secret]) == 2
        err = capsys.readouterr().err
        assert secret not in err and "invalid choice: (a word not shown)" in err, err
        assert main(["hold", secret]) == 2
        assert secret not in capsys.readouterr().err
    assert main(["polcy"]) == 2
    assert "invalid choice: 'polcy'" in capsys.readouterr().err
