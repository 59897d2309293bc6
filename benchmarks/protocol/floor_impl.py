"""The raw floor: only the primitive calls a workload cannot do without, no protocol logic.

It calls the same backends entrenous uses (libsodium through PyNaCl for X25519 and Ed25519,
OpenSSL through ``cryptography`` for ChaCha20-Poly1305, HKDF and ML-KEM-768, and through
``hmac.digest`` for HMAC), with no parsing, padding, checks or state bookkeeping beyond keeping
chain keys in local variables. An implementation can approach this line but not cross it.

Per workload, what one operation costs here:

* ``one_way`` (per message): on each side a chain step (one HMAC-SHA512 giving the next chain
  key and the message key; the nonce is the message number), then ChaCha20-Poly1305 seal
  (sender) and open (receiver) of 1 KiB.
* ``ping_pong`` (per message): the same plus the DH ratchet step: one X25519 key generation and
  two X25519 (one per side), and one HKDF-SHA256 root step per side.
* ``out_of_order`` (per message): ``one_way``'s work, the receiver stepping its chain in order
  and keeping the skipped keys in a dict until their message arrives.
* ``handshake``: PQXDH as entrenous runs it. A: two Ed25519 verifications (B's identity binding,
  the bundle signature), load (and so check) the ML-KEM-768 key, one X25519 key generation for
  the ephemeral key, four X25519, one encapsulation, the transcript hash, HKDF (root key and
  first chain key), one key generation for the first ratchet key, one chain step and seal. B: one
  Ed25519 verification (A's identity binding), four X25519, one decapsulation, the transcript
  hash, HKDF, one chain step and open. B's key generation is its untimed preparation.
* ``state_save_load``: ``msgpack`` pack and unpack of a dict shaped like a session's state
  (root key, sending and receiving chains, two skipped message keys, both identities).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, ClassVar

import msgpack
import nacl.bindings as sodium
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from benchmarks.protocol.common import (
    BATCH,
    MESSAGE,
    BenchmarkError,
    Case,
    SyncPeer,
    shuffled_order,
)

#: Associated data of a message: the session's associated data and a message header.
AD = bytes(range(64)) + bytes(40)
_SHA256 = hashes.SHA256()
_INFO_HANDSHAKE = b"floor handshake"
_INFO_ROOT = b"floor root"
_FF32 = b"\xff" * 32
_BINDING = b"floor identity binding"


def random32() -> bytes:
    """32 bytes from libsodium's CSPRNG (what entrenous draws its keys from)."""
    return bytes(sodium.randombytes(32))


_NONCE = bytes(12)


def chain_step(chain_key: bytes) -> tuple[bytes, bytes, bytes]:
    """(message key, nonce, next chain key): one HMAC-SHA512, as entrenous derives them."""
    expanded = hmac.digest(chain_key, b"\x01", "sha512")
    return expanded[32:], _NONCE, expanded[:32]


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=_SHA256, length=64, salt=salt, info=info).derive(ikm)


def _x25519_keypair() -> tuple[bytes, bytes]:
    private = random32()
    return private, sodium.crypto_scalarmult_base(private)


def _verify(public: bytes, signature: bytes, message: bytes) -> None:
    sodium.crypto_sign_open(signature + message, public)


def _sign(secret: bytes, message: bytes) -> bytes:
    return bytes(sodium.crypto_sign(message, secret)[:64])


class _Party:
    """An identity as entrenous has one: Ed25519 key, X25519 key, binding signature."""

    def __init__(self) -> None:
        self.sign_public, self.sign_secret = sodium.crypto_sign_keypair()
        self.dh_private, self.dh_public = _x25519_keypair()
        self.binding = _sign(self.sign_secret, _BINDING + self.dh_public)
        self.public = self.sign_public + self.dh_public + self.binding  # 128 bytes


class FloorPeer(SyncPeer):
    """Bare primitive calls; see the module docstring for what each workload counts."""

    name: ClassVar[str] = "floor"
    configuration: ClassVar[str] = (
        "bare primitives on entrenous's backends: libsodium X25519/Ed25519, OpenSSL "
        "ChaCha20-Poly1305, HMAC-SHA512, HKDF-SHA256, ML-KEM-768; msgpack for state"
    )

    def version(self) -> str:
        return ", ".join(
            f"{package} {version(package)}" for package in ("cryptography", "PyNaCl", "msgpack")
        )

    def build(self, workload: str) -> Case:
        builders: dict[str, Callable[[], Case]] = {
            "one_way": self._one_way,
            "ping_pong": self._ping_pong,
            "out_of_order": self._out_of_order,
            "handshake": self._handshake,
            "state_save_load": self._state_save_load,
        }
        return builders[workload]()

    @staticmethod
    def _one_way() -> Case:
        chains = [random32()] * 2  # [sender's, receiver's] copy of the same chain key
        msg = MESSAGE

        def run(_: object) -> None:
            key, nonce, chains[0] = chain_step(chains[0])
            sealed = ChaCha20Poly1305(key).encrypt(nonce, msg, AD)
            key, nonce, chains[1] = chain_step(chains[1])
            if ChaCha20Poly1305(key).decrypt(nonce, sealed, AD) != msg:
                raise BenchmarkError("one_way: wrong plaintext")

        return Case(run)

    @staticmethod
    def _ping_pong() -> Case:
        # state[0]: the last sender's ratchet private key; state[1]: its public key;
        # state[2], state[3]: sender's and receiver's root keys.
        ratchet_private, ratchet_public = _x25519_keypair()
        root = random32()
        state: list[bytes] = [ratchet_private, ratchet_public, root, root]
        msg = MESSAGE

        def message() -> None:
            # The sender answers the last ratchet key with a fresh one (one key generation,
            # one X25519 on each side, one root step on each side), then sends on the new chain.
            peer_private, peer_public = state[0], state[1]
            private, public = _x25519_keypair()
            derived = _hkdf(sodium.crypto_scalarmult(private, peer_public), state[2], _INFO_ROOT)
            state[2], send_chain = derived[:32], derived[32:]
            key, nonce, _ = chain_step(send_chain)
            sealed = ChaCha20Poly1305(key).encrypt(nonce, msg, AD)
            derived = _hkdf(sodium.crypto_scalarmult(peer_private, public), state[3], _INFO_ROOT)
            state[3], receive_chain = derived[:32], derived[32:]
            key, nonce, _ = chain_step(receive_chain)
            if ChaCha20Poly1305(key).decrypt(nonce, sealed, AD) != msg:
                raise BenchmarkError("ping_pong: wrong plaintext")
            state[0], state[1] = private, public

        def run(_: object) -> None:
            message()
            message()

        return Case(run)

    @staticmethod
    def _out_of_order() -> Case:
        chains = [random32()] * 2
        msg, order = MESSAGE, shuffled_order()

        def run(_: object) -> None:
            sent = []
            for _ in range(BATCH):
                key, nonce, chains[0] = chain_step(chains[0])
                sent.append((nonce, ChaCha20Poly1305(key).encrypt(nonce, msg, AD)))
            received = 0  # next index the receiver's chain would derive
            skipped: dict[int, tuple[bytes, bytes]] = {}
            for i in order:
                while received <= i:
                    key, nonce, chains[1] = chain_step(chains[1])
                    skipped[received] = (key, nonce)
                    received += 1
                key, nonce = skipped.pop(i)
                if ChaCha20Poly1305(key).decrypt(nonce, sent[i][1], AD) != msg:
                    raise BenchmarkError("out_of_order: wrong plaintext")

        return Case(run)

    @staticmethod
    def _handshake() -> Case:
        alice, bob = _Party(), _Party()
        msg = MESSAGE
        kem_keys: dict[bytes, mlkem.MLKEM768PrivateKey] = {}

        def publish() -> tuple[bytes, tuple[bytes, bytes]]:
            # B's untimed preparation: fresh one-time X25519 and ML-KEM keys, one signature.
            signed_private, signed_public = _x25519_keypair()
            one_time_private, one_time_public = _x25519_keypair()
            kem = mlkem.MLKEM768PrivateKey.generate()
            kem_public = kem.public_key().public_bytes_raw()
            kem_keys[kem_public] = kem
            body = bob.public + signed_public + one_time_public + kem_public
            return body + _sign(bob.sign_secret, body), (signed_private, one_time_private)

        def run(published: tuple[bytes, tuple[bytes, bytes]]) -> None:
            bundle, (signed_private, one_time_private) = published
            # A: verify, load the KEM key, agree, derive, draw the first ratchet key, seal.
            body, signature = bundle[:-64], bundle[-64:]
            b_sign, b_dh, b_binding = body[:32], body[32:64], body[64:128]
            signed_public, one_time_public = body[128:160], body[160:192]
            kem_public = body[192:]
            _verify(b_sign, b_binding, _BINDING + b_dh)
            _verify(b_sign, signature, body)
            kem_key = mlkem.MLKEM768PublicKey.from_public_bytes(kem_public)
            ephemeral_private, ephemeral_public = _x25519_keypair()
            kem_secret, kem_ciphertext = kem_key.encapsulate()
            transcript = hashlib.sha256(
                alice.public[:64] + body[:64] + body[128:] + ephemeral_public + kem_ciphertext
            ).digest()
            secret = _hkdf(
                _FF32
                + sodium.crypto_scalarmult(alice.dh_private, signed_public)
                + sodium.crypto_scalarmult(ephemeral_private, b_dh)
                + sodium.crypto_scalarmult(ephemeral_private, signed_public)
                + sodium.crypto_scalarmult(ephemeral_private, one_time_public)
                + kem_secret,
                transcript,
                _INFO_HANDSHAKE,
            )
            _, ratchet_public = _x25519_keypair()
            key, nonce, _ = chain_step(secret[32:])
            sealed = ChaCha20Poly1305(key).encrypt(nonce, msg, AD)
            first = alice.public + ephemeral_public + kem_ciphertext + ratchet_public + sealed

            # B: verify A's identity, agree, derive, open.
            a_sign, a_dh, a_binding = first[:32], first[32:64], first[64:128]
            _verify(a_sign, a_binding, _BINDING + a_dh)
            a_ephemeral = first[128:160]
            ciphertext = first[160:1248]
            b_kem_secret = kem_keys.pop(kem_public).decapsulate(ciphertext)
            b_transcript = hashlib.sha256(
                first[:64] + body[:64] + body[128:] + a_ephemeral + ciphertext
            ).digest()
            b_secret = _hkdf(
                _FF32
                + sodium.crypto_scalarmult(signed_private, a_dh)
                + sodium.crypto_scalarmult(bob.dh_private, a_ephemeral)
                + sodium.crypto_scalarmult(signed_private, a_ephemeral)
                + sodium.crypto_scalarmult(one_time_private, a_ephemeral)
                + b_kem_secret,
                b_transcript,
                _INFO_HANDSHAKE,
            )
            key, nonce, _ = chain_step(b_secret[32:])
            if ChaCha20Poly1305(key).decrypt(nonce, first[1280:], AD) != msg:
                raise BenchmarkError("handshake: wrong plaintext")

        return Case(run, prep=publish)

    @staticmethod
    def _state_save_load() -> Case:
        alice, bob = _Party(), _Party()
        state: dict[str, Any] = {
            "version": 1,
            "session_id": random32(),
            "associated_data": AD[:64],
            "own_identity": alice.public,
            "peer_identity": bob.public,
            "root_key": random32(),
            "sending": {
                "ratchet_private": random32(),
                "ratchet_public": random32(),
                "chain_key": random32(),
                "n": 6,
                "pn": 5,
            },
            "receiving": [
                {
                    "ratchet_public": random32(),
                    "chain_key": random32(),
                    "n": 3,
                    "skipped": [[0, random32()], [1, random32()]],
                }
            ],
        }
        pack, unpack = msgpack.packb, msgpack.unpackb

        def run(_: object) -> None:
            unpack(pack(state))

        return Case(run)


PEER = FloorPeer
