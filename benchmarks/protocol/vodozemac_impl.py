"""vodozemac (Matrix's Olm in Rust, through its Python bindings), configured as Matrix uses it.

* Handshake: Olm's 3DH from B's Curve25519 identity key and one signed one-time key. The bundle
  is what a Matrix client gets from ``/keys/claim``: JSON with B's Ed25519 and Curve25519 keys, a
  ``signed_curve25519`` one-time key and B's Ed25519 signature over its canonical JSON. A checks
  that signature (as a Matrix client does) before creating the outbound session. There is no
  post-quantum part.
* Messages: ``Session.encrypt`` returns an ``AnyOlmMessage``; what travels is its
  ``to_parts()`` (message type, bytes) and the receiver parses it with ``from_parts``. Olm uses
  AES-256-CBC + HMAC-SHA256 per message.
* State: ``Session.pickle`` with a 32-byte pickle key (vodozemac only offers encrypted pickles).
* Limit: a receiving chain keeps at most 40 skipped message keys (``MAX_MESSAGE_KEYS`` in
  ``olm/session/receiver_chain.rs``), so a shuffled batch of 100 loses messages: "n/a".
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any, ClassVar

from benchmarks.protocol.common import PeerUnavailable, RatchetPeer

try:
    import vodozemac as vz
except ImportError as exc:
    raise PeerUnavailable(
        f"vodozemac is not installed ({exc}); python3 dev.py bench installs it"
    ) from exc

#: Key of the session pickles (any 32 bytes; a real client derives it from its store key).
PICKLE_KEY = bytes(range(32))

Wire = tuple[int, bytes]


def _canonical_json(value: Any) -> bytes:
    """Matrix canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class VodozemacPeer(RatchetPeer[vz.Session, Wire, bytes]):
    """vodozemac Olm sessions between two accounts."""

    name: ClassVar[str] = "vodozemac"
    configuration: ClassVar[str] = (
        "Olm (vodozemac defaults): 3DH from a signed one-time key (bundle as Matrix /keys/claim "
        "JSON, Ed25519 signature checked), AES-256-CBC + HMAC-SHA256, messages as to_parts(); "
        "state via Session.pickle/from_pickle (encrypted with a 32-byte key)"
    )
    out_of_order_limit: ClassVar[str | None] = (
        "vodozemac keeps at most 40 skipped message keys per receiving chain "
        "(MAX_MESSAGE_KEYS in olm/session/receiver_chain.rs)"
    )

    def __init__(self) -> None:
        self._alice = vz.Account()
        self._bob = vz.Account()

    def version(self) -> str:
        return version("vodozemac")

    def publish(self) -> bytes:
        bob = self._bob
        bob.generate_one_time_keys(1)
        ((key_id, one_time_key),) = bob.one_time_keys.items()
        bob.mark_keys_as_published()
        key_object = {"key": one_time_key.to_base64()}
        signature = bob.sign(_canonical_json(key_object)).to_base64()
        return json.dumps(
            {
                "ed25519": bob.ed25519_key.to_base64(),
                "curve25519": bob.curve25519_key.to_base64(),
                "one_time_keys": {
                    f"signed_curve25519:{key_id}": {**key_object, "signatures": signature}
                },
            }
        ).encode()

    def handshake(self, published: bytes, plaintext: bytes) -> tuple[vz.Session, vz.Session, bytes]:
        # A: parse the claimed keys, check the one-time key's signature, start the session.
        bundle = json.loads(published)
        ((_, claimed),) = bundle["one_time_keys"].items()
        signature = vz.Ed25519Signature.from_base64(claimed["signatures"])
        vz.Ed25519PublicKey.from_base64(bundle["ed25519"]).verify_signature(
            _canonical_json({"key": claimed["key"]}), signature
        )
        a = self._alice.create_outbound_session(
            vz.Curve25519PublicKey.from_base64(bundle["curve25519"]),
            vz.Curve25519PublicKey.from_base64(claimed["key"]),
        )
        kind, body = a.encrypt(plaintext).to_parts()
        # B: parse the pre-key message and create the inbound session (consumes the one-time key).
        pre_key_message = vz.AnyOlmMessage.from_parts(kind, body).to_pre_key()
        if pre_key_message is None:
            raise RuntimeError("vodozemac's first message is not a pre-key message")
        b, received = self._bob.create_inbound_session(self._alice.curve25519_key, pre_key_message)
        return a, b, received

    def encrypt(self, session: vz.Session, plaintext: bytes) -> Wire:
        return session.encrypt(plaintext).to_parts()

    def decrypt(self, session: vz.Session, message: Wire) -> bytes:
        return session.decrypt(vz.AnyOlmMessage.from_parts(*message))

    def save(self, session: vz.Session) -> bytes:
        return session.pickle(PICKLE_KEY).encode()

    def load(self, blob: bytes) -> vz.Session:
        return vz.Session.from_pickle(blob.decode(), PICKLE_KEY)


PEER = VodozemacPeer
