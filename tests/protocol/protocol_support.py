"""Helpers shared by the protocol tests: parties, envelope surgery, secret scanning.

Not a test module (no ``test_`` prefix). Imported by the tests of this folder, which pytest puts on
``sys.path`` (rootdir-relative "prepend" import mode).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as RefX25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from entrenous._primitives import rand
from entrenous._primitives.sign import SigningKey
from entrenous.errors import EntrenousError
from entrenous.protocol import Identity, PrekeyPool, Session
from entrenous.protocol.constants import (
    LABEL_BUNDLE_SIGNATURE,
    LABEL_CHAIN_STEP,
    LABEL_IDENTITY_BINDING,
)

# --- envelope field positions (spec/envelope.md) ----------------------------------------------

#: Message envelope: [version, kind, session_id, ratchet_key, previous_length, n, ciphertext]
MSG_VERSION, MSG_KIND, MSG_SID, MSG_RATCHET, MSG_PREV, MSG_N, MSG_CT = range(7)
#: Initial envelope: [version, kind, session_id, identity, ephemeral, spk_id, opk_id, kem_id,
#: kem_ciphertext, ratchet_key, previous_length, n, ciphertext]
(
    INI_VERSION,
    INI_KIND,
    INI_SID,
    INI_IDENTITY,
    INI_EPHEMERAL,
    INI_SPK_ID,
    INI_OPK_ID,
    INI_KEM_ID,
    INI_KEM_CT,
    INI_RATCHET,
    INI_PREV,
    INI_N,
    INI_CT,
) = range(13)

#: Ratchet state list positions (DoubleRatchet.to_list, spec/state.md).
R_ROOT, R_OURS, R_SENDING, R_SENDING_N, R_PREV, R_THEIRS, R_MUST, R_CHAINS = range(8)

#: X25519 public keys of low order (and non-canonical encodings of them): every X25519 output
#: with them is all zero. From the curve25519 literature (also Wycheproof's x25519 edge cases).
LOW_ORDER_POINTS: tuple[bytes, ...] = (
    bytes(32),  # 0
    b"\x01" + bytes(31),  # 1
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),  # order 8
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # p - 1
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # p (= 0)
    bytes.fromhex(
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
    ),  # p + 1 (= 1)
)


def unpack(data: bytes) -> list[Any]:
    """Decode a msgpack array (envelope, bundle or state) without entrenous' own checks."""
    value = msgpack.unpackb(data, raw=True, use_list=True)
    assert isinstance(value, list)
    return value


def pack(value: Any) -> bytes:
    """Canonical msgpack encoding, as the library writes it."""
    out = msgpack.packb(value, use_bin_type=True)
    assert isinstance(out, bytes)
    return out


def reencode(data: bytes, changes: dict[int, Any]) -> bytes:
    """``data`` (a msgpack array) with the fields at the given positions replaced."""
    fields = unpack(data)
    for index, value in changes.items():
        fields[index] = value
    return pack(fields)


def is_initial(envelope: bytes) -> bool:
    """True for an initial envelope (kind 1, thirteen fields)."""
    return unpack(envelope)[MSG_KIND] == 1


def ratchet_key_of(envelope: bytes) -> bytes:
    """The sender's ratchet key carried by an envelope of either kind."""
    fields = unpack(envelope)
    key = fields[INI_RATCHET] if len(fields) == 13 else fields[MSG_RATCHET]
    assert isinstance(key, bytes)
    return key


def header_of(envelope: bytes) -> tuple[bytes, int, int]:
    """``(ratchet_key, previous_length, n)`` of an envelope of either kind."""
    fields = unpack(envelope)
    offset = INI_RATCHET if len(fields) == 13 else MSG_RATCHET
    key, previous, n = fields[offset : offset + 3]
    return key, previous, n


def ratchet_state(session: Session) -> list[Any]:
    """The ratchet part of a session's saved state (secret keys included)."""
    fields = unpack(session.to_bytes())
    ratchet = fields[7]
    assert isinstance(ratchet, list)
    return ratchet


def session_secrets(session: Session) -> list[bytes]:
    """Every secret key a session's saved state holds: root, ratchet, chain and message keys."""
    ratchet = ratchet_state(session)
    found = [ratchet[R_ROOT]]
    found += [k for k in (ratchet[R_OURS], ratchet[R_SENDING]) if k is not None]
    for _ratchet_key, chain_key, _next_n, flat in ratchet[R_CHAINS]:
        found.append(chain_key)
        found += flat[1::2]
    return found


def pool_secrets(pool: PrekeyPool) -> list[bytes]:
    """Every private key and seed a prekey pool's saved state holds."""
    _version, _next_id, generations, one_time, one_time_kem = unpack(pool.to_bytes())
    found: list[bytes] = []
    for _spk_id, spk, _kem_id, kem_seed, *_rest in generations:
        found += [spk, kem_seed]
    found += [key for _id, key in one_time]
    found += [seed for _id, seed in one_time_kem]
    return found


def identity_secrets(identity: Identity) -> list[bytes]:
    """The Ed25519 seed and the X25519 private key of an identity."""
    raw = identity.to_bytes()
    return [raw[1:33], raw[33:65]]


# --- independent encoders (written from spec/*.md, not from the library) -------------------------


def sign_bundle(
    signer: Callable[[bytes], bytes], encoded_fields: list[bytes], count: int | None = None
) -> bytes:
    """A bundle built from already-encoded fields, signed as spec/bundle.md says: the signature
    covers the label and every byte before the signature object (array header included)."""
    elements = len(encoded_fields) + 1 if count is None else count
    prefix = bytes([0x90 | elements]) + b"".join(encoded_fields)
    return prefix + pack(signer(LABEL_BUNDLE_SIGNATURE + prefix))


def public_identity_bytes(signing: SigningKey, dh_public: bytes) -> bytes:
    """A public identity (spec/protocol.md) binding any 32 bytes as its X25519 key."""
    binding = signing.sign(LABEL_IDENTITY_BINDING + dh_public)
    return b"\x01" + signing.verify_key.to_bytes() + dh_public + binding


def x25519_public(private: bytes) -> bytes:
    """The X25519 public key of ``private``, computed by OpenSSL (not by the library)."""
    return RefX25519.from_private_bytes(private).public_key().public_bytes_raw()


def chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK as spec/protocol.md gives it: HMAC-SHA512(ck, label) = ck' || mk."""
    out = hmac.digest(chain_key, LABEL_CHAIN_STEP, "sha512")
    return out[:32], out[32:]


def forge_envelope(
    sender: Session,
    padded: bytes,
    *,
    n: int | None = None,
    ratchet_key: bytes | None = None,
    previous_length: int | None = None,
) -> bytes:
    """An envelope authenticated with the sender's next message keys, built from the sender's
    saved state by an independent implementation of spec/envelope.md.

    ``padded`` is the plaintext *after* padding (so that bad padding can be sent). The header
    fields may be overridden; ``n`` (default: the next number) selects the message key. The
    sender must have a sending chain (no DH step pending). The sender's state is not changed.
    """
    fields = unpack(sender.to_bytes())
    session_id, ad, initial, ratchet = fields[1], fields[5], fields[6], fields[7]
    assert not ratchet[R_MUST], "forge_envelope needs a sender without a pending DH step"
    assert ratchet[R_SENDING] is not None
    next_n = ratchet[R_SENDING_N]
    number = next_n if n is None else n
    assert number >= next_n
    chain_key = ratchet[R_SENDING]
    message_key = b""
    for _ in range(number - next_n + 1):
        chain_key, message_key = chain_step(chain_key)
    header = [
        x25519_public(ratchet[R_OURS]) if ratchet_key is None else ratchet_key,
        ratchet[R_PREV] if previous_length is None else previous_length,
        number,
    ]
    head = [1, 2, session_id, *header] if initial is None else [1, 1, session_id, *initial, *header]
    prefix = bytes([0x90 | (len(head) + 1)]) + b"".join(pack(f) for f in head)
    ciphertext = ChaCha20Poly1305(message_key).encrypt(
        number.to_bytes(12, "big"), padded, ad + prefix
    )
    return prefix + pack(ciphertext)


# --- parties ------------------------------------------------------------------------------------


@dataclass
class Parties:
    """Alice (initiator), Bob (responder) with his pool, and the bundle Alice starts from."""

    alice: Identity
    bob: Identity
    pool: PrekeyPool
    bundle: bytes


def make_parties(*, now: int = 0, last_resort: bool = False) -> Parties:
    """Two fresh identities and a pool for Bob; ``bundle`` is one issued bundle."""
    alice, bob = Identity.generate(), Identity.generate()
    pool = PrekeyPool.create(bob, now=now)
    bundle = pool.last_resort_bundle(now=now) if last_resort else pool.issue_bundle(now=now)
    return Parties(alice, bob, pool, bundle)


def start(parties: Parties, first: bytes = b"hello bob") -> tuple[Session, Session]:
    """Alice initiates and Bob responds to her first envelope (no reply yet)."""
    a = Session.initiate(parties.alice, parties.bundle)
    b, plaintext = Session.respond(parties.bob, parties.pool, a.encrypt(first), now=0)
    assert plaintext == first
    return a, b


def established() -> tuple[Session, Session]:
    """A conversation past the handshake: Alice -> Bob, Bob -> Alice, both on message chains.

    Alice's next envelope starts her second sending chain (a new ratchet key, n = 0).
    """
    a, b = start(make_parties())
    assert a.decrypt(b.encrypt(b"hello alice")) == b"hello alice"
    return a, b


def exchange(sender: Session, receiver: Session, plaintext: bytes) -> None:
    """Send one message and check it arrives intact."""
    assert receiver.decrypt(sender.encrypt(plaintext)) == plaintext


def reload(session: Session) -> Session:
    """A restart: the session rebuilt from its saved state."""
    return Session.from_bytes(session.to_bytes())


@contextmanager
def unchanged(state: Callable[[], bytes]) -> Iterator[None]:
    """Assert that ``state()`` (a ``to_bytes`` method) is byte-for-byte the same afterwards."""
    before = state()
    yield
    assert state() == before, "a refused input changed the saved state"


def refused(
    call: Callable[[], object],
    state: Callable[[], bytes],
    expected: type[EntrenousError] | tuple[type[EntrenousError], ...] = EntrenousError,
) -> EntrenousError:
    """Run ``call``: it must raise ``expected`` and leave ``state()`` unchanged. Returns the
    error."""
    before = state()
    with pytest.raises(expected) as info:
        call()
    assert state() == before, "a refused input changed the saved state"
    return info.value


@contextmanager
def deterministic_randomness(seed: bytes) -> Iterator[None]:
    """Make every random byte of the library come from a SHAKE-256 stream of ``seed``."""
    counter = 0

    def source(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(n)

    rand._set_source(source)
    try:
        yield
    finally:
        rand._set_source(None)


# --- secret scanning -----------------------------------------------------------------------------


def secret_encodings(secret: bytes, *, windows: bool = True) -> list[str]:
    """Every text form a secret could leak in: raw repr, hex (both cases), base64 variants and,
    with ``windows``, each 4-byte window in hex (so that a partial leak is caught too)."""
    hexed = secret.hex()
    forms = [
        repr(secret),
        repr(secret)[2:-1],
        hexed,
        hexed.upper(),
        base64.b64encode(secret).decode(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        base64.b32encode(secret).decode().rstrip("="),
    ]
    if windows and len(secret) >= 8:
        forms += [hexed[i : i + 8] for i in range(0, len(hexed) - 7, 2)]
    return [form for form in forms if form]


def assert_no_secret(text: str, secrets: list[bytes], *, windows: bool = True) -> None:
    """Fail if ``text`` shows any of ``secrets`` in any encoding."""
    for secret in secrets:
        for form in secret_encodings(secret, windows=windows):
            assert form not in text, f"secret material leaked into {text!r}"
