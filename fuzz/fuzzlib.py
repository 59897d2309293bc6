"""Shared by the fuzz targets and fuzz/make_corpus.py: fixtures, the bug oracle, the driver.

The fixtures are *real* protocol objects built deterministically: the identities, the prekey pool
state, the bundle and the ML-KEM encapsulation of spec/vectors/handshake.json, and every other
random byte from a SHA-512 counter stream through the library's private randomness seam
(``entrenous._primitives.rand._set_source``), as tools/gen_vectors.py does. So the harness of a
target and make_corpus.py build the very same sessions, and the seed envelopes decrypt in the
harness.

The oracle: an input may make the library raise only what the target allows (an
``EntrenousError`` subclass named by the target); any other exception propagates out of
``TestOneInput``, and atheris/libFuzzer reports it as a crash and keeps the input. Hangs and
memory are libFuzzer's ``-timeout``, ``-rss_limit_mb`` and ``-malloc_limit_mb`` (fuzz/run.py sets
them).

Import this module inside ``atheris.instrument_imports()`` (each target does) so that the
library modules it pulls in are instrumented for coverage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from entrenous._primitives import rand
from entrenous._primitives.dh import X25519PrivateKey
from entrenous._primitives.kem import KemPublicKey
from entrenous.protocol.bundle import PrekeyBundle
from entrenous.protocol.identity import Identity
from entrenous.protocol.prekeys import PrekeyPool
from entrenous.protocol.session import Session

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
#: The clock of every fixture (seconds), as in spec/vectors.
NOW = 1_764_000_000
NOW_MS = NOW * 1000
#: The raw key of the fuzzed store (a fixed key: the target is the file, not the key).
STORE_KEY = bytes(range(32))


class Drbg:
    """SHA-512 in counter mode over a fixed seed (reproducible fixtures, never real keys)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = self._seed + self._counter.to_bytes(8, "big")
            self._buffer += hashlib.sha512(block).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


@contextlib.contextmanager
def seeded(seed: bytes) -> Iterator[None]:
    """Every ``random_bytes`` of the library comes from ``Drbg(seed)`` inside the block."""
    rand._set_source(Drbg(seed))
    try:
        yield
    finally:
        rand._set_source(None)


# --- the protocol world -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolWorld:
    """A real conversation between alice (initiator) and bob (responder), frozen as bytes."""

    alice: Identity
    bob: Identity
    #: bob's prekey pool before the handshake (its one-time keys are still there)
    pool_before: bytes
    #: bob's pool after issuing a second bundle and accepting the handshake
    pool_after: bytes
    #: bob's session after some traffic; ``undelivered`` have not reached it
    bob_state: bytes
    alice_state: bytes
    #: alice's initial envelopes (the handshake): each one starts bob's session
    initial: tuple[bytes, ...]
    #: every envelope of the conversation, both directions
    envelopes: tuple[bytes, ...]
    #: envelopes from alice that bob's state has not received (they decrypt)
    undelivered: tuple[bytes, ...]
    bundles: tuple[bytes, ...]


def _vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (ROOT / "spec" / "vectors" / "handshake.json").read_text(encoding="utf-8")
    )
    return data


@cache
def protocol_world() -> ProtocolWorld:
    """Build the conversation (about 0.1 s); the same bytes on every call and every machine."""
    v = _vectors()
    alice = Identity.from_bytes(bytes.fromhex(v["alice_identity_private"]))
    bob = Identity.from_bytes(bytes.fromhex(v["bob_identity_private"]))
    pool_before = bytes.fromhex(v["bob_prekey_pool_state"])
    bundle = bytes.fromhex(v["bundle"])
    ephemeral = X25519PrivateKey(bytes.fromhex(v["alice_ephemeral_private"]))
    kem_secret = bytes.fromhex(v["kem"]["shared_secret"])
    kem_ct = bytes.fromhex(v["kem"]["ciphertext"])
    with seeded(b"entrenous/v1 fuzz fixtures"):
        pool = PrekeyPool.from_bytes(pool_before, bob)
        a = Session._initiate_from_parts(
            alice, PrekeyBundle.from_bytes(bundle), ephemeral, kem_secret, kem_ct
        )
        i0, i1, i2 = a.encrypt(b"hello 0"), a.encrypt(b"hello 1"), a.encrypt(b"h" * 300)
        b, _ = Session.respond(bob, pool, i0, now=NOW)
        b.decrypt(i2)  # i1 stays a skipped key of the first chain
        r0, r1 = b.encrypt(b"reply 0"), b.encrypt(b"reply 1")
        a.decrypt(r1)  # r0 stays skipped on alice's side
        m0, m1, m2 = a.encrypt(b"m0"), a.encrypt(b"m1"), a.encrypt(b"m" * 2000)
        b.decrypt(m1)  # m0 skipped on bob's second chain, m2 not yet sent to bob
        r2 = b.encrypt(b"reply 2")
        a.decrypt(r2)
        m3 = a.encrypt(b"\x00" * 57344)  # a new chain, the largest plaintext
        second_bundle = pool.issue_bundle(now=NOW + 60)
        last_resort = pool.last_resort_bundle(now=NOW + 60)
        return ProtocolWorld(
            alice=alice,
            bob=bob,
            pool_before=pool_before,
            pool_after=pool.to_bytes(),
            bob_state=b.to_bytes(),
            alice_state=a.to_bytes(),
            initial=(i0, i1, i2),
            envelopes=(i0, i1, i2, r0, r1, m0, m1, m2, r2, m3),
            undelivered=(i1, m0, m2, m3),
            bundles=(bundle, second_bundle, last_resort),
        )


# --- the store world ------------------------------------------------------------------------------


def _fixed_encapsulation(pool_of: Callable[[], PrekeyPool]) -> Callable[[KemPublicKey], Any]:
    """An ``encapsulate`` that is reproducible: a ciphertext from the seam, and the secret the
    owner of the key will decapsulate from it (ML-KEM's implicit rejection makes any ciphertext
    of the right length decapsulate to a fixed secret). Fixtures only."""

    def encapsulate(self: KemPublicKey) -> tuple[bytes, bytes]:
        pool = pool_of()
        keys = [*pool._one_time_kem.values(), *(g.kem_prekey for g in pool._generations)]
        private = next(k for k in keys if k.public_key() == self)
        ciphertext = rand.random_bytes(1088)
        return private.decapsulate(ciphertext), ciphertext

    return encapsulate


def build_store_world(directory: Path) -> Path:
    """A real bank store with a policy, a conversation, messages, consent, a hold and audit
    events, at ``directory/bank.db`` (and ``bank.db.keys``). Reproducible: the same store id,
    data keys and rows on every run (SQLCipher's own salts and IVs differ; they do not matter to
    the plaintext image)."""
    from entrenous import Client
    from entrenous.compliance.policy import Policy

    # The example policy without its (illustrative) notice hash, so that any notice text fits.
    text = (ROOT / "examples" / "policy.toml").read_text(encoding="utf-8")
    policy = Policy.parse(
        "\n".join(line for line in text.splitlines() if not line.startswith("notice_sha256"))
    )
    clock = lambda: float(NOW)  # noqa: E731 - a fixed clock
    bank_path, customer_path = directory / "bank.db", directory / "customer.db"
    with seeded(b"entrenous/v1 fuzz store"):
        bank = Client.open(bank_path, key=STORE_KEY, clock=clock, policy=policy)
        customer = Client.open(customer_path, key=bytes(31) + b"\x01", clock=clock)
        original = KemPublicKey.encapsulate
        KemPublicKey.encapsulate = _fixed_encapsulation(lambda: bank._prekeys)  # type: ignore[method-assign]
        try:
            conv = customer.start_conversation(bank.prekey_bundle(), peer="bank")
        finally:
            KemPublicKey.encapsulate = original  # type: ignore[method-assign]
        received = bank.receive(conv.send("Guten Tag, ich habe eine Frage zu meinem Konto"))
        theirs = received.conversation
        theirs.set_category("contract")
        theirs.set_subject("customer-42")
        customer.receive(theirs.send({"text": "Gern!", "buttons": ["Konto", "Karte"]}))
        bank.receive(conv.send("Danke"))
        asked = customer.receive(theirs.request_consent("marketing", notice="Offers by chat?"))
        request_id = str(asked.message.content["request"]["request_id"])  # type: ignore[index]
        bank.receive(conv.answer_consent(request_id, give=True))
        bank.receive(conv.withdraw_consent("marketing"))
        bank.place_hold(subject="customer-42", reason="complaint", reference="K-1")
        customer.close()
        bank.close()
    return bank_path


def plaintext_image(store: Path, key: bytes) -> bytes:
    """The store decrypted into a plain SQLite database image (what the store target mutates)."""
    from sqlcipher3 import dbapi2 as sqlcipher

    plain = store.with_name(store.name + ".plain")
    plain.unlink(missing_ok=True)
    connection = sqlcipher.connect(str(store), isolation_level=None)
    try:
        connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        connection.execute(f"ATTACH DATABASE '{plain}' AS plain KEY ''")
        connection.execute("SELECT sqlcipher_export('plain')")
        connection.execute(f"PRAGMA plain.user_version = {int(version)}")
        connection.execute("DETACH DATABASE plain")
    finally:
        connection.close()
    connection = sqlcipher.connect(str(plain), isolation_level=None)
    try:
        connection.execute("VACUUM")
    finally:
        connection.close()
    data = plain.read_bytes()
    plain.unlink()
    return data


def encrypt_image(image: Path, target: Path, key: bytes) -> bool:
    """Write the plain SQLite database ``image`` to ``target`` encrypted under ``key``.

    False if SQLite cannot read ``image`` (not a finding: the harness, not the library, failed).
    """
    from sqlcipher3 import dbapi2 as sqlcipher

    connection = sqlcipher.connect(str(image), isolation_level=None)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        connection.execute(f"ATTACH DATABASE '{target}' AS enc KEY \"x'{key.hex()}'\"")
        connection.execute("SELECT sqlcipher_export('enc')")
        connection.execute(f"PRAGMA enc.user_version = {int(version)}")
        connection.execute("DETACH DATABASE enc")
    except (sqlcipher.Error, ValueError):
        # ValueError: SQLite's message about a damaged schema can quote bytes that are not
        # UTF-8, which the sqlite module cannot decode (UnicodeDecodeError).
        return False
    finally:
        connection.close()
    return True


# --- the driver -----------------------------------------------------------------------------------


#: Address space left free for the interpreter itself beyond ``-malloc_limit_mb`` (arenas of
#: libFuzzer's threads, SQLite's caches, the growing corpus).
_ADDRESS_SLACK_MB = 128


def limit_single_allocations(argv: list[str]) -> int | None:
    """Make an allocation beyond ``-malloc_limit_mb`` fail with ``MemoryError`` (a finding).

    libFuzzer enforces ``-malloc_limit_mb`` only through sanitizer malloc hooks, which a stock
    CPython with the atheris wheel does not have, and ``-rss_limit_mb`` misses an allocation
    whose pages are never touched (``bytes(n)`` is a ``calloc``). So the harness caps its address
    space at what it uses now plus the limit (and some slack): a larger single allocation fails,
    and the ``MemoryError`` escapes the target as an uncaught exception. Returns the cap in MB.
    """
    import resource

    limit = next((a.split("=", 1)[1] for a in argv if a.startswith("-malloc_limit_mb=")), None)
    if limit is None or not limit.isdigit() or int(limit) == 0:
        return None
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None  # not Linux: the rss limit still applies
    used_kb = next(int(line.split()[1]) for line in status.splitlines() if line[:7] == "VmSize:")
    cap_mb = used_kb // 1024 + int(limit) + _ADDRESS_SLACK_MB
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap_mb * 2**20, hard))
    return cap_mb


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under atheris with the command line's libFuzzer flags.

    With file arguments (no directory), libFuzzer runs just those inputs: how a kept crash in
    fuzz/regressions/ is replayed.
    """
    import atheris

    cap = limit_single_allocations(sys.argv)
    if cap is not None:
        print(f"INFO: address space capped at {cap} MB (-malloc_limit_mb)", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def scratch_dir(name: str) -> Path:
    """A private scratch directory for one fuzzing process, under fuzz/results/scratch/.

    libFuzzer ends the process with ``exit()``, past Python's clean-up, so the directory stays;
    the next process of the target removes those whose process is gone.
    """
    parent = FUZZ / "results" / "scratch"
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(f"{name}-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    base = parent / f"{name}-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o700)
    return base


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- consent ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentWorld:
    """A controller's request and the subject's (alice's) real answers to it."""

    request: Any  # ConsentRequest
    records: tuple[Any, ...]  # ConsentRecord: given, refused, withdrawal, recorded by controller


@cache
def consent_world() -> ConsentWorld:
    from entrenous.compliance.consent import ConsentRecord, ConsentRequest

    alice = protocol_world().alice
    with seeded(b"entrenous/v1 fuzz consent"):
        request = ConsentRequest.create(
            controller="Musterbank AG",
            purpose="marketing",
            notice_version="2025-03",
            notice_text="Darf die Bank Ihnen Angebote im Chat schicken?\nNein ist okay.",
            now_ms=NOW_MS,
            valid_for_ms=2 * 365 * 24 * 3600 * 1000,
            subject="customer-42",
        )
        given = ConsentRecord.answer(alice, request, give=True, now_ms=NOW_MS + 1000)
        refused = ConsentRecord.answer(alice, request, give=False, now_ms=NOW_MS + 2000)
        withdrawn = given.withdrawal(alice, now_ms=NOW_MS + 3000)
        recorded = ConsentRecord.recorded(
            state="given",
            controller="Musterbank AG",
            purpose="marketing",
            notice_version="2025-03",
            notice_sha256=request.notice_sha256,
            at_ms=NOW_MS,
            subject="customer-7",
            expires_at=NOW_MS + 1,
        )
    return ConsentWorld(request, (given, refused, withdrawn, recorded))
