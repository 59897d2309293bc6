"""Generate the protocol test vectors in spec/vectors/ from fixed seeds.

    python tools/gen_vectors.py            # (re)write spec/vectors/*.json
    python tools/gen_vectors.py --check    # exit 1 if the files differ from a fresh run

Randomness comes from a deterministic generator through the library's private seam
(``entrenous._primitives.rand._set_source``): block i of the stream is
``SHA-512(seed || i as 8 big-endian bytes)``. The one value that cannot be fixed this way is the
ML-KEM-768 encapsulation (cryptography draws its randomness internally); the vectors record its
ciphertext and shared secret, and a re-run reuses them through the private seam
``Session._initiate_from_parts``. Everything else, every key and envelope byte, is reproduced
exactly. A second implementation can check itself against the recorded private keys and
intermediate values without reproducing our order of random draws.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from entrenous._primitives import rand
from entrenous._primitives.dh import X25519PrivateKey
from entrenous.protocol import handshake
from entrenous.protocol.bundle import PrekeyBundle
from entrenous.protocol.envelope import parse_envelope
from entrenous.protocol.identity import Identity, SafetyNumber
from entrenous.protocol.padding import pad, padded_length
from entrenous.protocol.prekeys import PrekeyPool
from entrenous.protocol.ratchet.chain_key import chain_step
from entrenous.protocol.session import Session

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "vectors"
NOW = 1_764_000_000  # a fixed clock for the prekey pool


class Drbg:
    """SHA-512 in counter mode over a fixed seed: reproducible bytes for vectors only."""

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


def _hex(b: bytes) -> str:
    return b.hex()


def _recording_generate(log: list[bytes]) -> Any:
    original = X25519PrivateKey.generate

    def generate() -> X25519PrivateKey:
        key = original()
        log.append(key.to_bytes())
        return key

    return original, generate


def build(kem: dict[str, str] | None) -> dict[str, Any]:
    """Run the scripted conversation; ``kem`` reuses a recorded encapsulation if given."""
    rand._set_source(Drbg(b"entrenous/v1 test vectors"))
    try:
        return _build(kem)
    finally:
        rand._set_source(None)


def _build(kem: dict[str, str] | None) -> dict[str, Any]:
    alice, bob = Identity.generate(), Identity.generate()
    pool = PrekeyPool.create(bob, now=NOW)
    bundle_bytes = pool.issue_bundle(now=NOW)
    pool_state = pool.to_bytes()  # before the handshake consumes the one-time prekeys
    bundle = PrekeyBundle.from_bytes(bundle_bytes)
    ephemeral = X25519PrivateKey.generate()
    if kem is None:
        kem_secret, kem_ciphertext = bundle.kem_prekey.encapsulate()
    else:
        kem_secret = bytes.fromhex(kem["shared_secret"])
        kem_ciphertext = bytes.fromhex(kem["ciphertext"])

    # Intermediate values of the handshake, computed independently of Session.
    spk, opk = bundle.signed_prekey, bundle.one_time_prekey
    assert opk is not None
    dh = [
        alice._agree(spk),
        ephemeral.exchange(bob.public.dh_key),
        ephemeral.exchange(spk),
        ephemeral.exchange(opk),
    ]
    secrets = handshake.initiate(alice, bundle, ephemeral, kem_secret, kem_ciphertext)

    # Record every ratchet key pair drawn, per party, in order.
    drawn: list[bytes] = []
    original, recording = _recording_generate(drawn)
    X25519PrivateKey.generate = recording  # type: ignore[method-assign]
    try:
        a = Session._initiate_from_parts(alice, bundle, ephemeral, kem_secret, kem_ciphertext)
        alice_first_ratchet_key = drawn.pop()
        messages: list[dict[str, Any]] = []
        events: list[list[Any]] = []

        def send(sender: str, session: Session, text: str) -> bytes:
            events.append(["send", len(messages)])
            drawn.clear()
            envelope = session.encrypt(text.encode())
            parsed = parse_envelope(envelope)
            messages.append(
                {
                    "index": len(messages),
                    "from": sender,
                    "plaintext": text,
                    # The ratchet key pair drawn for this message's DH step, if it took one.
                    "new_ratchet_private_key": _hex(drawn[0]) if drawn else None,
                    "ratchet_key": _hex(parsed.header.ratchet_key),
                    "previous_length": parsed.header.previous_length,
                    "n": parsed.header.n,
                    "initial": parsed.is_initial,
                    "envelope": _hex(envelope),
                }
            )
            return envelope

        def deliver(index: int, session: Session) -> None:
            envelope = bytes.fromhex(messages[index]["envelope"])
            assert session.decrypt(envelope).decode() == messages[index]["plaintext"]
            events.append(["deliver", index])

        e0 = send("alice", a, "Guten Tag, ich habe eine Frage zu meinem Konto")
        send("alice", a, "Es geht um eine Überweisung.")
        b, first = Session.respond(bob, pool, e0, now=NOW)
        assert first.decode() == messages[0]["plaintext"]
        events.append(["deliver", 0])
        deliver(1, b)
        send("bob", b, "Gern! Worum geht es genau?")  # Bob's first DH step
        deliver(2, a)
        # Alice answers with three messages (a DH step), delivered out of order.
        for text in ("Die Überweisung vom Montag", "ist nicht angekommen.", "Betrag: 120 EUR"):
            send("alice", a, text)
        deliver(5, b)
        deliver(3, b)
        deliver(4, b)
        send("bob", b, "Ich sehe nach.")  # Bob's second DH step
        send("bob", b, "Sie ist heute gebucht worden.")
        deliver(7, a)  # skips 6
        deliver(6, a)
    finally:
        X25519PrivateKey.generate = original  # type: ignore[method-assign]

    first_chain = secrets.chain_key
    _, first_message_key = chain_step(first_chain)
    return {
        "handshake": {
            "description": "PQXDH-style handshake with a one-time prekey (spec/protocol.md)",
            "now": NOW,
            "alice_identity_private": _hex(alice.to_bytes()),
            "alice_identity_public": _hex(alice.public.to_bytes()),
            "bob_identity_private": _hex(bob.to_bytes()),
            "bob_identity_public": _hex(bob.public.to_bytes()),
            "bob_prekey_pool_state": _hex(pool_state),
            "bundle": _hex(bundle_bytes),
            "alice_ephemeral_private": _hex(ephemeral.to_bytes()),
            "kem": {
                "ciphertext": _hex(kem_ciphertext),
                "shared_secret": _hex(kem_secret),
            },
            "dh1": _hex(dh[0]),
            "dh2": _hex(dh[1]),
            "dh3": _hex(dh[2]),
            "dh4": _hex(dh[3]),
            "session_id": _hex(secrets.session_id),
            "root_key": _hex(secrets.root_key),
            "first_chain_key": _hex(first_chain),
            "first_message_key": _hex(first_message_key),
            "associated_data": _hex(secrets.ad),
            "safety_number": SafetyNumber.of(alice.public, bob.public).digits,
            "safety_number_qr": _hex(SafetyNumber.of(alice.public, bob.public).qr_bytes),
        },
        "ratchet": {
            "description": (
                "A scripted conversation: an initial envelope pair, DH steps in both "
                "directions and out-of-order delivery. 'messages' in send order; 'events' "
                "interleaves sends and deliveries in the order they happened. Each message "
                "records the ratchet private key drawn for it, if its send took a DH step."
            ),
            "alice_first_ratchet_private_key": _hex(alice_first_ratchet_key),
            "messages": messages,
            "events": events,
        },
        "envelope": {
            "description": (
                "Envelope encodings (spec/envelope.md): one initial and one message envelope "
                "from the ratchet vector, split into prefix (associated data after AD) and "
                "ciphertext; and Padmé padding lengths."
            ),
            "examples": [_envelope_example(messages[0]), _envelope_example(messages[2])],
            "padding": [
                {"length": n, "padded_length": padded_length(n)}
                for n in (0, 1, 62, 63, 64, 100, 1000, 1024, 4096, 10000, 57344)
            ],
            "padding_example": {"plaintext": _hex(b"ok"), "padded": _hex(pad(b"ok"))},
        },
    }


def _envelope_example(message: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_envelope(bytes.fromhex(message["envelope"]))
    fields: dict[str, Any] = {"session_id": _hex(parsed.session_id)}
    if parsed.initial is not None:
        fields.update(
            identity=_hex(parsed.initial.identity),
            ephemeral=_hex(parsed.initial.ephemeral),
            signed_prekey_id=parsed.initial.signed_prekey_id,
            one_time_prekey_id=parsed.initial.one_time_prekey_id,
            kem_prekey_id=parsed.initial.kem_prekey_id,
            kem_ciphertext=_hex(parsed.initial.kem_ciphertext),
        )
    fields.update(
        ratchet_key=_hex(parsed.header.ratchet_key),
        previous_length=parsed.header.previous_length,
        n=parsed.header.n,
    )
    return {
        "kind": "initial" if parsed.is_initial else "message",
        "envelope": message["envelope"],
        "fields": fields,
        "prefix": _hex(parsed.prefix),
        "ciphertext": _hex(parsed.ciphertext),
    }


def _files(data: dict[str, Any]) -> dict[str, str]:
    return {
        f"{name}.json": json.dumps(value, indent=2, ensure_ascii=False) + "\n"
        for name, value in data.items()
    }


def recorded_kem() -> dict[str, str] | None:
    """The encapsulation recorded in the committed handshake vector, if there is one."""
    path = VECTORS / "handshake.json"
    if not path.exists():
        return None
    kem: dict[str, str] = json.loads(path.read_text())["kem"]
    return kem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--new-kem", action="store_true", help="draw a new ML-KEM encapsulation")
    args = parser.parse_args(argv)
    kem = None if args.new_kem else recorded_kem()
    files = _files(build(kem))
    if args.check:
        stale = [
            n
            for n, text in files.items()
            if not (VECTORS / n).exists() or (VECTORS / n).read_text() != text
        ]
        if stale:
            print("stale vectors: " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    VECTORS.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (VECTORS / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
