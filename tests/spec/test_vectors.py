"""The published vectors in spec/vectors/ are reproduced by the code, and their intermediate
values agree with the formulas of spec/protocol.md computed here independently of the library's
protocol layer (straight from hashlib, hmac and cryptography)."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from entrenous.protocol import Identity, PrekeyPool, Session, parse_envelope

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "spec" / "vectors"

pytestmark = pytest.mark.req("ENV-09")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def x(hex_string: str) -> bytes:
    return bytes.fromhex(hex_string)


def dh(private: bytes, public: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
        x25519.X25519PublicKey.from_public_bytes(public)
    )


def test_generator_reproduces_the_committed_vectors() -> None:
    spec = importlib.util.spec_from_file_location("gen_vectors", ROOT / "tools" / "gen_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0


def test_handshake_intermediates_follow_the_spec_formulas() -> None:
    v = load("handshake.json")
    alice_priv, bob_priv = x(v["alice_identity_private"]), x(v["bob_identity_private"])
    alice_pub, bob_pub = x(v["alice_identity_public"]), x(v["bob_identity_public"])
    ik_a, ik_b = alice_pub[1:65], bob_pub[1:65]
    bundle = x(v["bundle"])
    # Bundle fields by their msgpack offsets (spec/bundle.md): parse with msgpack directly.
    import msgpack

    fields = msgpack.unpackb(bundle)
    spk, opk, kem_pub = fields[3], fields[5], fields[7]
    ek = x(v["alice_ephemeral_private"])
    ek_pub = x25519.X25519PrivateKey.from_private_bytes(ek).public_key().public_bytes_raw()
    assert dh(alice_priv[33:65], spk) == x(v["dh1"])
    assert dh(ek, ik_b[32:]) == x(v["dh2"])
    assert dh(ek, spk) == x(v["dh3"])
    assert dh(ek, opk) == x(v["dh4"])
    # Bob's side of DH1/DH2 from his private identity key.
    assert dh(bob_priv[33:65], ek_pub) == x(v["dh2"])
    ct, ss = x(v["kem"]["ciphertext"]), x(v["kem"]["shared_secret"])
    transcript = hashlib.sha256(
        b"entrenous/v1 pqxdh transcript" + ik_a + ik_b + spk + b"\x01" + opk + kem_pub + ek_pub + ct
    ).digest()
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=transcript,
        info=b"entrenous/v1 pqxdh X25519 ML-KEM-768 SHA-256",
    ).derive(b"\xff" * 32 + x(v["dh1"]) + x(v["dh2"]) + x(v["dh3"]) + x(v["dh4"]) + ss)
    assert okm[:32] == x(v["root_key"])
    assert okm[32:] == x(v["first_chain_key"])
    step = hmac.digest(okm[32:], b"entrenous/v1 chain step", "sha512")
    assert step[32:] == x(v["first_message_key"])
    sid = hashlib.sha256(b"entrenous/v1 session id" + ik_a + ik_b + ek_pub).digest()[:16]
    assert sid == x(v["session_id"])
    ad = hashlib.sha256(b"entrenous/v1 session associated data" + ik_a + ik_b).digest()
    assert ad == x(v["associated_data"])
    # The recorded encapsulation decapsulates to the recorded secret under Bob's KEM key.
    pool_state = msgpack.unpackb(x(v["bob_prekey_pool_state"]))
    kem_id = fields[6]
    seed = dict((k, s) for k, s in pool_state[4])[kem_id]
    assert mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).decapsulate(ct) == ss


def test_first_message_decrypts_with_the_spec_formulas() -> None:
    hs, ratchet = load("handshake.json"), load("ratchet.json")
    first = x(ratchet["messages"][0]["envelope"])
    parsed = parse_envelope(first)
    nonce = parsed.header.n.to_bytes(12, "big")
    padded = ChaCha20Poly1305(x(hs["first_message_key"])).decrypt(
        nonce, parsed.ciphertext, x(hs["associated_data"]) + parsed.prefix
    )
    text = ratchet["messages"][0]["plaintext"].encode()
    assert padded.startswith(text + b"\x80")


def test_both_parties_reproduce_every_envelope() -> None:
    """Replay the scripted conversation with the recorded keys: every envelope byte matches."""
    from entrenous._primitives import rand
    from entrenous._primitives.dh import X25519PrivateKey
    from entrenous.protocol.bundle import PrekeyBundle

    hs, ratchet = load("handshake.json"), load("ratchet.json")
    alice = Identity.from_bytes(x(hs["alice_identity_private"]))
    bob = Identity.from_bytes(x(hs["bob_identity_private"]))
    assert alice.public.to_bytes() == x(hs["alice_identity_public"])
    assert bob.public.to_bytes() == x(hs["bob_identity_public"])
    pool = PrekeyPool.from_bytes(x(hs["bob_prekey_pool_state"]), bob)
    bundle = PrekeyBundle.from_bytes(x(hs["bundle"]))
    queue = [x(ratchet["alice_first_ratchet_private_key"])]
    rand._set_source(lambda n: queue.pop(0))
    try:
        sessions = {
            "alice": Session._initiate_from_parts(
                alice,
                bundle,
                X25519PrivateKey(x(hs["alice_ephemeral_private"])),
                x(hs["kem"]["shared_secret"]),
                x(hs["kem"]["ciphertext"]),
            )
        }
        assert sessions["alice"].session_id.hex() == hs["session_id"]
        messages = ratchet["messages"]
        for kind, index in ratchet["events"]:
            message = messages[index]
            if kind == "send":
                if message["new_ratchet_private_key"] is not None:
                    queue.append(x(message["new_ratchet_private_key"]))
                envelope = sessions[message["from"]].encrypt(message["plaintext"].encode())
                assert envelope.hex() == message["envelope"], f"message {index}"
                assert not queue, "the recorded ratchet key was not drawn"
                continue
            envelope = x(message["envelope"])
            if message["from"] == "alice" and "bob" not in sessions:
                sessions["bob"], plaintext = Session.respond(bob, pool, envelope, now=hs["now"])
            else:
                receiver = "bob" if message["from"] == "alice" else "alice"
                plaintext = sessions[receiver].decrypt(envelope)
            assert plaintext.decode() == message["plaintext"]
    finally:
        rand._set_source(None)
    assert sessions["bob"].safety_number().digits == hs["safety_number"]
    assert sessions["alice"].safety_number().qr_bytes.hex() == hs["safety_number_qr"]


def test_padding_vectors() -> None:
    from entrenous.protocol.padding import pad, padded_length

    v = load("envelope.json")
    for case in v["padding"]:
        assert padded_length(case["length"]) == case["padded_length"]
    assert pad(x(v["padding_example"]["plaintext"])) == x(v["padding_example"]["padded"])


def test_envelope_examples_split_as_published() -> None:
    v = load("envelope.json")
    for example in v["examples"]:
        parsed = parse_envelope(x(example["envelope"]))
        assert parsed.prefix.hex() == example["prefix"]
        assert parsed.ciphertext.hex() == example["ciphertext"]
        assert parsed.is_initial == (example["kind"] == "initial")
        assert parsed.header.n == example["fields"]["n"]
        assert (
            x(example["envelope"])
            == parsed.prefix
            + bytes([0xC4 if len(parsed.ciphertext) < 256 else 0xC5])
            + (len(parsed.ciphertext).to_bytes(1 if len(parsed.ciphertext) < 256 else 2, "big"))
            + parsed.ciphertext
        )
