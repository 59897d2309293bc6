"""LEAK-01 to LEAK-04 through the library: a whole run (two customers and a bank, messages,
consent in band and recorded, disappearing timers, holds, sweeps, exports, erasures, restarts)
and every typed error provoked, with every logger at DEBUG. No secret and no plaintext shows in
logs, exception chains, reprs of the library's objects, audit events or erasure receipts, and an
export shows its own subject's messages only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from leak_support import (
    Finding,
    Scanner,
    debug_logging,
    describe_exception,
    gather,
    library_object_reprs,
    report,
)
from protocol_support import MSG_N, MSG_VERSION, reencode, unpack

from entrenous import Client, Conversation, Policy
from entrenous.errors import (
    AuditChainBroken,
    AuthenticationError,
    ConsentLedgerBroken,
    ConsentRequired,
    EntrenousError,
    IdentityChanged,
    MessageGapTooLarge,
    PolicyError,
    PrekeyConsumed,
    ReplayError,
    SafetyNumberMismatch,
    SchemaTooNew,
    StoreCorrupt,
    StoreLocked,
    UnsupportedVersion,
    UsageError,
    WrongKey,
)
from entrenous.protocol import Session
from entrenous.protocol.constants import MAX_PLAINTEXT_SIZE
from entrenous.store.keys import KdfParams, kdf_path

PASSPHRASE = "leak-check passphrase: Zweiundvierzig Pfund Äpfel"
WRONG_PASSPHRASE = "leak-check wrong passphrase: Dreiundvierzig"
SUBJECT, OTHER = "customer-42", "customer-7"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400
POLICY = """\
version = 1

[controller]
name = "Example Bank AG"
contact = "privacy@bank.example"

[retention.default]
max_age = "30d"

[retention.categories.contract]
description = "Conversations that form or change a contract"
max_age = "11y"
min_age = "10y"
legal_ground = "HGB 257"

[purposes.marketing]
description = "Offers"
legal_basis = "consent"
requires_consent = true
notice_version = "2026-01"
consent_valid_for = "365d"

[purposes.service]
description = "Answers"
legal_basis = "contract"
requires_consent = false
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Run:
    """What the scenario produced to look at, and the scanner that knows its secrets."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scanner = Scanner()
        self.clock = Clock()
        self.keys: dict[str, bytes] = {}
        self.clients: dict[str, Client] = {}
        #: (where, haystack, owners whose markers may show there)
        self.haystacks: list[tuple[str, str | bytes, tuple[str, ...]]] = []
        self.errors: list[tuple[str, BaseException]] = []

    # --- parties and secrets ---

    def open(self, name: str, **extra: Any) -> Client:
        path = self.directory / f"{name}.db"
        if name == "customer":
            client = Client.open(path, passphrase=PASSPHRASE, clock=self.clock, **extra)
            params = KdfParams.from_json(kdf_path(path).read_text(encoding="utf-8"))
            self.keys[name] = params.derive(PASSPHRASE)
        else:
            key = self.keys.setdefault(name, os.urandom(32))
            client = Client.open(path, key=key, clock=self.clock, **extra)
        self.clients[name] = client
        self.gather()
        return client

    def restart(self, name: str) -> Client:
        self.gather()
        self.clients[name].close()
        return self.open(name)

    def gather(self) -> None:
        """Every secret of every open store, now (keys change at every step)."""
        for name, client in self.clients.items():
            if not client._closed:
                gather(self.scanner, name, client, self.keys[name])

    def marker(self, owner: str) -> str:
        marker = f"zqmark{uuid.uuid4().hex[:16]}"
        self.scanner.add_marker(marker, owner)
        return marker

    # --- what to look at ---

    def look(self, where: str, value: Any, *owners: str) -> None:
        text = value if isinstance(value, str | bytes) else repr(value)
        self.haystacks.append((where, text, owners))

    def expect(self, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> Catch:
        return Catch(self, kinds)

    def snapshot(self, step: str) -> None:
        """Secrets now, and the repr of every live object of the library."""
        self.gather()
        for where, shown in library_object_reprs():
            self.haystacks.append((f"{where} ({step})", shown, ()))

    def findings(self, logs: list[str]) -> list[Finding]:
        found: list[Finding] = []
        for where, error in self.errors:
            found += self.scanner.find(describe_exception(error), f"exception: {where}")
        for where, text, owners in self.haystacks:
            found += self.scanner.find(text, where, allowed_owners=owners)
        found += self.scanner.find("\n".join(logs), "the log")
        return found


class Catch:
    """``with run.expect(Error):`` keeps the exception raised inside for the scan."""

    def __init__(self, run: Run, kinds: type[BaseException] | tuple[type[BaseException], ...]):
        self.run, self.kinds = run, kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        assert exc is not None, f"expected {self.kinds}, nothing was raised"
        if not isinstance(exc, self.kinds):
            return False
        self.run.errors.append((f"{type(exc).__name__}: {exc}", exc))
        return True


def _talk(run: Run, bank: Client, customer: Client, subject: str) -> tuple[Conversation, Any]:
    theirs = customer.start_conversation(bank.prekey_bundle(), peer="bank")
    received = bank.receive(theirs.send(run.marker(subject)))
    ours = received.conversation
    ours.set_subject(subject)
    run.look("the received message", received)
    for _ in range(3):
        customer.receive(ours.send({"text": run.marker(subject), "buttons": [run.marker(subject)]}))
        bank.receive(theirs.send(run.marker(subject)))
    return ours, theirs


def _scenario(run: Run) -> None:
    bank = run.open("bank", policy=Policy.parse(POLICY))
    customer = run.open("customer")
    other = run.open("other")
    run.scanner.add_secret("passphrase", PASSPHRASE)
    run.scanner.add_secret("a wrong passphrase", WRONG_PASSPHRASE)

    ours, theirs = _talk(run, bank, customer, SUBJECT)
    other_ours, _other_theirs = _talk(run, bank, other, OTHER)
    run.snapshot("after the first messages")

    # Safety numbers, verification, reprs of conversations and messages.
    theirs.mark_verified(ours.safety_number())
    with run.expect(SafetyNumberMismatch):
        theirs.mark_verified(other_ours.safety_number())
    run.look("history", [repr(m) for m in ours.history()] + [repr(c) for c in bank.conversations()])

    # Consent in band: asked, refused, asked, given, used, withdrawn; and recorded by hand.
    with run.expect(ConsentRequired):
        ours.send(run.marker(SUBJECT), purpose="marketing")
    notice = "Offers for our products; withdraw at any time."
    request = customer.receive(ours.request_consent("marketing", notice=notice))
    request_id = str(request.message.content["request"]["request_id"])
    bank.receive(theirs.answer_consent(request_id, give=True))
    customer.receive(ours.send(run.marker(SUBJECT), purpose="marketing"))
    bank.receive(theirs.withdraw_consent("marketing"))
    with run.expect(ConsentRequired):
        ours.send(run.marker(SUBJECT), purpose="marketing")
    recorded = bank.record_consent(subject=OTHER, purpose="marketing", notice=notice)
    run.look("a recorded consent", recorded)
    run.look("consent records", bank.consent_records(SUBJECT) + bank.consent_records(OTHER))
    run.snapshot("after consent")

    # Disappearing messages; a batch with a tampered, a replayed and a garbage envelope.
    customer.receive(ours.set_disappearing(timedelta(days=1)))
    batch = [theirs.send(run.marker(SUBJECT)) for _ in range(3)]
    forged = bytearray(batch[1])
    forged[-3] ^= 0x40
    outcomes = bank.receive_many([batch[0], bytes(forged), batch[1], batch[1], b"\x93garbage"])
    for outcome in outcomes:
        run.look("a receive_many outcome", outcome)
        if outcome.error is not None:
            run.errors.append((f"receive_many: {type(outcome.error).__name__}", outcome.error))
    assert [o.ok for o in outcomes] == [True, False, True, False, False]
    with run.expect(ReplayError):
        bank.receive(batch[0])
    with run.expect(AuthenticationError):
        bank.receive(_flip(customer_env := theirs.send(run.marker(SUBJECT))))
    bank.receive(customer_env)
    with run.expect(EntrenousError):
        bank.receive(batch[2][: len(batch[2]) // 2])
    with run.expect(EntrenousError):
        bank.receive(b"\xff" * 300_000)  # beyond the envelope limit
    with run.expect(EntrenousError):
        customer.start_conversation(bank.prekey_bundle()[:-7])
    # A message too long carries plaintext into the error it raises: it must not show it.
    with run.expect(EntrenousError):
        theirs.send(run.marker(SUBJECT) * (MAX_PLAINTEXT_SIZE // 20))
    with run.expect((EntrenousError, TypeError, ValueError)):
        theirs.send({"text": run.marker(SUBJECT), "bad": {run.marker(SUBJECT).encode()}})
    with run.expect((EntrenousError, TypeError, ValueError)):
        theirs.send({run.marker(SUBJECT): {1, 2}})
    with run.expect((EntrenousError, TypeError, ValueError)):
        theirs.send(run.marker(SUBJECT).encode())  # type: ignore[arg-type]
    # A future version, a gap beyond the limit, a first message for another client.
    later = theirs.send(run.marker(SUBJECT))
    with run.expect(UnsupportedVersion):
        bank.receive(reencode(later, {MSG_VERSION: 9}))
    with run.expect((MessageGapTooLarge, AuthenticationError)):
        bank.receive(reencode(later, {MSG_N: unpack(later)[MSG_N] + 100_000}))
    bank.receive(later)
    stray = other.start_conversation(bank.prekey_bundle()).send(run.marker(OTHER))
    with run.expect(EntrenousError):
        customer.receive(stray)
    run.snapshot("after the refusals")

    # A consumed bundle and a changed identity.
    bundle = bank.prekey_bundle()
    first = run.open("first")
    second = run.open("second")
    bank.receive(first.start_conversation(bundle).send(run.marker("first")))
    with run.expect(PrekeyConsumed):
        bank.receive(second.start_conversation(bundle).send(run.marker("second")))
    with run.expect(IdentityChanged):
        customer.start_conversation(other.prekey_bundle(), peer="bank")

    # Holds, sweeps, exports and erasures.
    hold = bank.place_hold(subject=SUBJECT, reason="complaint", reference="K-1")
    run.look("a hold", hold)
    run.look("holds", bank.holds(active_only=False))
    run.clock.now += 40 * DAY
    run.look("a dry-run sweep", bank.sweep(dry_run=True))
    run.look("a dry-run sweep as a dict", json.dumps(bank.sweep(dry_run=True).to_dict()))
    run.look("the next sweep", bank.next_sweep_at())
    for subject in (SUBJECT, OTHER):
        exported = bank.export(subject)
        run.look(f"the export of {subject}", json.dumps(exported, default=str), subject)
        run.look(f"the export of {subject} (repr)", repr(exported), subject)
    run.snapshot("before the erasures")
    receipt = bank.erase(subject=SUBJECT)  # kept under the hold
    run.look("an erasure receipt under a hold", receipt)
    bank.release_hold(hold.id)
    run.look("the sweep", bank.sweep())
    with run.expect(UsageError):
        bank.erase(subject=SUBJECT, conversation=ours)
    run.gather()
    receipt = bank.erase(subject=SUBJECT)
    for receipt in bank.erasure_receipts():
        run.look("an erasure receipt", receipt)
        run.look("an erasure receipt as JSON", receipt.to_json())
    run.look("an erasure of a conversation", bank.erase(conversation=other_ours))
    run.look("the export after the erasures", json.dumps(bank.export(SUBJECT), default=str))

    # The audit trail and the ledger, and their tampering.
    for event in bank.audit_events():
        run.look("an audit event", event)
        run.look("an audit event as a dict", json.dumps(event.to_dict()))
    run.look("verify", (bank.verify_audit(), bank.verify_consent_ledger()))
    run.snapshot("after the erasures")

    bank = run.restart("bank")
    customer = run.restart("customer")
    run.snapshot("after the restarts")
    with run.expect(StoreLocked):
        Client.open(run.directory / "bank.db", key=run.keys["bank"])
    connection = bank._store._connection
    connection.execute("UPDATE audit_events SET at = at + 1 WHERE seq = 2")
    with run.expect(AuditChainBroken):
        bank.verify_audit()
    connection.execute("UPDATE consent_ledger SET purpose = purpose || 'x' WHERE seq = 1")
    with run.expect((ConsentLedgerBroken, AuditChainBroken)):
        bank.verify_consent_ledger()

    # Bad policies (a policy is no secret, but a wrong one must not echo other things).
    with run.expect(PolicyError):
        Policy.parse(POLICY.replace('max_age = "30d"', "max_age = 30"))
    with run.expect(PolicyError):
        Policy.parse("version = 1\n[retention.default]\nmax_age = 'forever'\nfoo = 1")
    with run.expect((PolicyError, UsageError, OSError)):
        Policy.load(run.directory / "no-such-policy.toml")

    # Closed clients, wrong keys and passphrases, damaged and foreign files.
    for client in list(run.clients.values()):
        client.close()
    with run.expect(UsageError):
        bank.conversations()
    # Secrets given the wrong way: the errors name the mistake, never the value.
    bank_path = run.directory / "bank.db"
    with run.expect(TypeError):
        Client.open(bank_path, key=run.keys["bank"].hex())  # type: ignore[arg-type]
    with run.expect(ValueError):
        Client.open(bank_path, key=run.keys["bank"][:31])
    with run.expect(ValueError):
        Client.open(bank_path, key=run.keys["bank"], passphrase=PASSPHRASE)
    with run.expect(ValueError):
        Client.open(bank_path, passphrase=PASSPHRASE.encode())  # type: ignore[arg-type]
    with run.expect(WrongKey):
        Client.open(run.directory / "bank.db", key=os.urandom(32))
    with run.expect(WrongKey):
        Client.open(run.directory / "customer.db", passphrase=WRONG_PASSPHRASE)
    with run.expect(WrongKey):
        Client.open(run.directory / "bank.db", key=run.keys["other"])
    with run.expect(StoreCorrupt):
        Client.open(run.directory / "bank.db", passphrase=PASSPHRASE)
    damaged = _copy_store(run.directory, "bank", "damaged")
    data = bytearray(damaged.read_bytes())
    data[8192 + 100 : 8192 + 200] = os.urandom(100)
    damaged.write_bytes(bytes(data))
    with run.expect(StoreCorrupt), Client.open(damaged, key=run.keys["bank"]) as opened:
        opened.verify_audit()
        for conversation in opened.conversations():
            conversation.history()
    foreign = _copy_store(run.directory, "bank", "foreign")
    shutil.copy(run.directory / "other.db.keys", run.directory / "foreign.db.keys")
    with run.expect(StoreCorrupt):
        Client.open(foreign, key=run.keys["bank"])
    newer = _copy_store(run.directory, "other", "newer")
    with Client.open(newer, key=run.keys["other"]) as opened:
        opened._store._connection.execute("PRAGMA user_version = 999")
    with run.expect(SchemaTooNew):
        Client.open(newer, key=run.keys["other"])
    garbage = run.directory / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    with run.expect(WrongKey):  # random bytes look like a store under another key
        Client.open(garbage, key=run.keys["bank"])


def _flip(envelope: bytes) -> bytes:
    forged = bytearray(envelope)
    forged[-3] ^= 0x40
    return bytes(forged)


def _copy_store(directory: Path, name: str, new: str) -> Path:
    for suffix in ("", ".keys"):
        shutil.copy(directory / f"{name}.db{suffix}", directory / f"{new}.db{suffix}")
    return directory / f"{new}.db"


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    run = Run(tmp_path)
    yield run
    for client in run.clients.values():
        client.close()


@pytest.mark.req("LEAK-01", "LEAK-02", "LEAK-03", "LEAK-04")
def test_a_whole_run_leaks_no_secret_and_no_plaintext(run: Run) -> None:
    with debug_logging() as logs:
        _scenario(run)
    assert len(run.errors) >= 30
    assert len(run.scanner.secrets) > 80  # every key of every store, at every step
    findings = run.findings(logs.lines)
    assert not findings, report(findings)


@pytest.mark.req("LEAK-02")
def test_the_scan_finds_what_it_looks_for(run: Run) -> None:
    """The scanner is no blind eye: every encoding of a key and a marker is found, anywhere."""
    import base64

    key = os.urandom(32)
    run.scanner.add_secret("a key", key)
    marker = run.marker(SUBJECT)
    find: Callable[[str | bytes], list[Finding]] = lambda text: run.scanner.find(text, "t")  # noqa: E731
    for prefix in (b"", b"x", b"xy", b"xyz"):
        blob = prefix + key + b"tail"
        for encoded in (base64.b64encode(blob), base64.urlsafe_b64encode(blob)):
            assert find("prefix " + encoded.decode().rstrip("=") + " suffix"), prefix
    assert find(f"key={key.hex()}") and find(key.hex().upper()[10:30])
    assert find(repr(key)) and find(b"raw " + key[3:25] + b" raw")
    assert find(f"said {marker}!") and find(marker.encode().hex())
    assert not run.scanner.find(f"said {marker}!", "export", allowed_owners=[SUBJECT])
    assert not find(os.urandom(64).hex() + "no secret here")
    # The log collector hears every logger at DEBUG, and warnings.
    with debug_logging() as logs:
        logging.getLogger("some.library").debug("state %s", key.hex())
        warnings.warn(f"said {marker}", UserWarning, stacklevel=1)
    assert find("\n".join(logs.lines)) and len(find("\n".join(logs.lines))) == 2
    # An exception's chain is read to the end, suppressed contexts included.
    try:
        try:
            raise ValueError(base64.b64encode(key))
        except ValueError:
            raise RuntimeError("nothing to see") from None
    except RuntimeError as exc:
        assert find(describe_exception(exc))


def _consent_probes(marker: str) -> Iterator[tuple[str, Callable[[], object]]]:
    """Consent requests and records a peer could send, each field replaced by the peer's text
    (as a string, inside a list, as a key, as bytes): the error must not repeat it."""
    from consent_support import record_content, request_content

    from entrenous.compliance.consent import ConsentRecord, ConsentRequest

    for kind, content, parse in (
        ("request", request_content(), ConsentRequest.from_content),
        ("record", record_content(), ConsentRecord.from_content),
    ):
        for name in sorted(content):
            for value in (
                marker,
                [marker],
                {marker: marker},
                marker.encode(),
                marker * 300,
                f"{marker}\ud800",  # a lone surrogate: a UnicodeEncodeError holds the text
            ):
                changed = {**content, name: value}
                yield f"{kind}.{name}={type(value).__name__}", lambda c=changed, p=parse: p(c)
        yield f"{kind} with an extra key", lambda c=content, p=parse: p({**c, marker: marker})
        yield f"{kind} from bytes", lambda: ConsentRecord.from_bytes(marker.encode() * 3)


@pytest.mark.req("LEAK-03")
def test_a_peers_malformed_consent_is_refused_without_repeating_its_text(run: Run) -> None:
    compliance_tests = str(Path(__file__).resolve().parents[1] / "compliance")
    if compliance_tests not in sys.path:
        sys.path.insert(0, compliance_tests)
    marker = run.marker("the peer")
    refused = 0
    with debug_logging() as logs:
        for where, probe in _consent_probes(marker):
            try:
                probe()
            except (EntrenousError, TypeError, ValueError) as exc:
                refused += 1
                run.errors.append((where, exc))
    assert refused > 50
    findings = run.findings(logs.lines)
    assert not findings, report(findings)


@pytest.mark.req("LEAK-03")
def test_a_refused_state_payload_or_secret_file_keeps_no_copy_in_the_exception(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: parsers refused bad input with ``raise ... from None``, which hides the
    parser's own exception from tracebacks but keeps it as ``__context__``: a msgpack
    ``ExtraData`` holding a whole saved session (its keys), or a decrypted payload; a
    ``UnicodeDecodeError`` holding a passphrase file's bytes; a ``JSONDecodeError`` holding a
    peer's consent record. Each is now raised outside the ``except`` block."""
    from entrenous import payload
    from entrenous.cli import main
    from entrenous.compliance.consent import ConsentRecord
    from entrenous.protocol import PrekeyPool

    bank = run.open("bank")
    customer = run.open("customer")
    run.scanner.add_secret("passphrase", PASSPHRASE)
    theirs = customer.start_conversation(bank.prekey_bundle())
    ours = bank.receive(theirs.send(run.marker(SUBJECT))).conversation
    customer.receive(ours.send(run.marker(SUBJECT)))
    run.gather()
    state = bank._store.conversation(ours._uid).state
    saved_pool = bank._prekeys.to_bytes()
    marker = run.marker(SUBJECT)
    plaintext = payload.encode(os.urandom(16), 1_000, marker)
    probes: list[tuple[str, Callable[[], object]]] = [
        ("a session with a byte more", lambda: Session.from_bytes(state + b"\x00")),
        (
            "a prekey pool with a byte more",
            lambda: PrekeyPool.from_bytes(saved_pool + b"\x00", bank._identity),
        ),
        ("a payload with a byte more", lambda: payload.decode(plaintext + b"\x00")),
        (
            "a trusted payload with a byte more",
            lambda: payload.decode(plaintext + b"\x00", trusted=True),
        ),
        ("a record that is not JSON", lambda: ConsentRecord.from_bytes(marker.encode() + b"}")),
    ]
    # Text that UTF-8 cannot carry (a lone surrogate): refused without a copy of the text.
    for content in (f"{marker}\ud800", {"text": f"{marker}\ud800"}):
        with run.expect((EntrenousError, ValueError)):
            theirs.send(content)
    for where, probe in probes:
        with run.expect(EntrenousError):
            probe()
        assert run.errors[-1][0].startswith(type(run.errors[-1][1]).__name__), where
    # A passphrase file that is not UTF-8: the command line refuses it, and its bytes stay out
    # of the error (and of the error's context).
    secret_file = tmp_path / "passphrase.txt"
    secret_file.write_bytes(PASSPHRASE.encode() + b"\xff\n")
    from entrenous import cli_store

    options = argparse.Namespace(
        key_file=None, key_env=None, passphrase_file=str(secret_file), passphrase_env=None
    )
    with run.expect(Exception):
        cli_store.secret_from(options, tmp_path / "x.db")
    assert (
        main(
            [
                "audit",
                "verify",
                "--store",
                str(tmp_path / "customer.db"),
                "--passphrase-file",
                str(secret_file),
            ]
        )
        != 0
    )
    run.look("stderr", capsys.readouterr().err)
    findings = run.findings([])
    assert not findings, report(findings)
