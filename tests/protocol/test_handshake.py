"""The PQXDH-style handshake (HS-01..HS-08)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as RefX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as RefX25519Public
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from protocol_support import (
    INI_CT,
    INI_EPHEMERAL,
    INI_IDENTITY,
    INI_KEM_CT,
    INI_KEM_ID,
    INI_N,
    INI_OPK_ID,
    INI_PREV,
    INI_RATCHET,
    INI_SID,
    INI_SPK_ID,
    LOW_ORDER_POINTS,
    Parties,
    forge_envelope,
    is_initial,
    make_parties,
    pack,
    public_identity_bytes,
    reencode,
    refused,
    reload,
    sign_bundle,
    unpack,
    x25519_public,
)

from entrenous._primitives import aead
from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous._primitives.kem import KemPrivateKey
from entrenous._primitives.sign import SigningKey
from entrenous.errors import (
    AuthenticationError,
    InvalidKey,
    MalformedEnvelope,
    PrekeyConsumed,
    ReplayError,
    UsageError,
)
from entrenous.protocol import (
    Identity,
    PrekeyBundle,
    PrekeyPool,
    PublicIdentity,
    Session,
    handshake,
)
from entrenous.protocol.constants import (
    LABEL_HANDSHAKE,
    LABEL_SESSION_AD,
    LABEL_SESSION_ID,
    LABEL_TRANSCRIPT,
)
from entrenous.protocol.padding import pad


def _lookup(parties: Parties, bundle: PrekeyBundle, session_id: bytes) -> Any:
    return parties.pool.lookup(
        signed_prekey_id=bundle.signed_prekey_id,
        one_time_prekey_id=bundle.one_time_prekey_id,
        kem_prekey_id=bundle.kem_prekey_id,
        session_id=session_id,
        now=0,
    )


# --- HS-01: the key derivation ----------------------------------------------------------------


@pytest.mark.req("HS-01")
@pytest.mark.parametrize("last_resort", [False, True])
def test_both_parties_derive_the_same_secrets(last_resort: bool) -> None:
    parties = make_parties(last_resort=last_resort)
    bundle = PrekeyBundle.from_bytes(parties.bundle)
    ephemeral = X25519PrivateKey.generate()
    kem_secret, kem_ciphertext = bundle.kem_prekey.encapsulate()
    ours = handshake.initiate(parties.alice, bundle, ephemeral, kem_secret, kem_ciphertext)
    ek = ephemeral.public_key().to_bytes()
    found = _lookup(parties, bundle, ours.session_id)
    assert (found.one_time_prekey is None) is last_resort
    theirs = handshake.respond(parties.bob, parties.alice.public, found, ek, kem_ciphertext)
    fields = ("session_id", "root_key", "chain_key", "ad")
    assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields]
    assert len(ours.root_key) == len(ours.chain_key) == len(ours.ad) == 32
    assert len(ours.session_id) == 16
    assert ours.root_key != ours.chain_key


@pytest.mark.req("HS-01")
@pytest.mark.parametrize("last_resort", [False, True])
def test_derivation_follows_the_spec_formula(last_resort: bool) -> None:
    """Recompute RK || CK, the session id and AD with OpenSSL's X25519 and HKDF."""
    parties = make_parties(last_resort=last_resort)
    bundle = PrekeyBundle.from_bytes(parties.bundle)
    ephemeral = X25519PrivateKey.generate()
    kem_secret, kem_ciphertext = bundle.kem_prekey.encapsulate()
    got = handshake.initiate(parties.alice, bundle, ephemeral, kem_secret, kem_ciphertext)

    def dh(private: bytes, public: bytes) -> bytes:
        return RefX25519.from_private_bytes(private).exchange(
            RefX25519Public.from_public_bytes(public)
        )

    ik_a, ik_b = parties.alice.public.key_bytes, bundle.identity.key_bytes
    alice_x25519 = parties.alice.to_bytes()[33:65]
    ek_private, ek = ephemeral.to_bytes(), ephemeral.public_key().to_bytes()
    spk = bundle.signed_prekey.to_bytes()
    dhs = [dh(alice_x25519, spk), dh(ek_private, ik_b[32:]), dh(ek_private, spk)]
    opk_part = b"\x00"
    if bundle.one_time_prekey is not None:
        dhs.append(dh(ek_private, bundle.one_time_prekey.to_bytes()))
        opk_part = b"\x01" + bundle.one_time_prekey.to_bytes()
    transcript = hashlib.sha256(
        LABEL_TRANSCRIPT
        + ik_a
        + ik_b
        + spk
        + opk_part
        + bundle.kem_prekey.to_bytes()
        + ek
        + kem_ciphertext
    ).digest()
    okm = HKDF(hashes.SHA256(), 64, salt=transcript, info=LABEL_HANDSHAKE).derive(
        b"\xff" * 32 + b"".join(dhs) + kem_secret
    )
    assert got.root_key == okm[:32]
    assert got.chain_key == okm[32:]
    assert got.session_id == hashlib.sha256(LABEL_SESSION_ID + ik_a + ik_b + ek).digest()[:16]
    assert got.ad == hashlib.sha256(LABEL_SESSION_AD + ik_a + ik_b).digest()
    assert LABEL_HANDSHAKE == b"entrenous/v1 pqxdh X25519 ML-KEM-768 SHA-256"


@pytest.mark.req("HS-01")
def test_changing_any_input_of_the_derivation_changes_the_keys() -> None:
    a, b = Identity.generate().public, Identity.generate().public
    keys = [X25519PrivateKey.generate().public_key() for _ in range(2)]
    kem = KemPrivateKey.generate().public_key()
    other_kem = KemPrivateKey.generate().public_key()
    base: dict[str, Any] = {
        "initiator": a,
        "responder": b,
        "signed_prekey": keys[0],
        "one_time_prekey": keys[1],
        "kem_prekey": kem,
        "ephemeral": bytes(range(32)),
        "kem_ciphertext": bytes(1088),
        "dh_outputs": [bytes([i]) * 32 for i in (1, 2, 3, 4)],
        "kem_secret": bytes([9]) * 32,
    }
    variants: dict[str, Any] = {
        "initiator": Identity.generate().public,
        "responder": Identity.generate().public,
        "signed_prekey": X25519PrivateKey.generate().public_key(),
        "one_time_prekey": None,
        "kem_prekey": other_kem,
        "ephemeral": bytes(range(1, 33)),
        "kem_ciphertext": b"\x01" + bytes(1087),
        "kem_secret": bytes([8]) * 32,
    }
    reference = handshake._derive(**base)
    seen = {(reference.root_key, reference.chain_key)}
    for name, value in variants.items():
        changed = handshake._derive(**{**base, name: value})
        pair = (changed.root_key, changed.chain_key)
        assert pair not in seen, name
        seen.add(pair)
    for index in range(4):
        outputs = list(base["dh_outputs"])
        outputs[index] = bytes([0xEE]) * 32
        changed = handshake._derive(**{**base, "dh_outputs": outputs})
        pair = (changed.root_key, changed.chain_key)
        assert pair not in seen, f"DH{index + 1}"
        seen.add(pair)
    without_dh4 = handshake._derive(**{**base, "dh_outputs": base["dh_outputs"][:3]})
    assert (without_dh4.root_key, without_dh4.chain_key) not in seen


# --- HS-02 / HS-03: no round trip, initial envelopes until the first reply -----------------------


@pytest.mark.req("HS-02")
def test_initiator_encrypts_from_the_bundle_alone() -> None:
    parties = make_parties()
    # Bytes or a parsed bundle; no message from Bob and no clock needed.
    for bundle in (parties.bundle, PrekeyBundle.from_bytes(parties.bundle)):
        session = Session.initiate(parties.alice, bundle)
        envelopes = [session.encrypt(f"m{i}".encode()) for i in range(3)]
        assert session.is_initiator
        assert session.peer_identity == parties.bob.public
        assert session.our_identity == parties.alice.public
        pool = PrekeyPool.from_bytes(parties.pool.to_bytes(), parties.bob)
        bob_session, plaintext = Session.respond(parties.bob, pool, envelopes[2], now=0)
        assert plaintext == b"m2"
        assert bob_session.decrypt(envelopes[0]) == b"m0"
        assert bob_session.session_id == session.session_id
        assert not bob_session.is_initiator


def test_initiating_with_ones_own_bundle_is_a_usage_error() -> None:
    parties = make_parties()
    with pytest.raises(UsageError):
        Session.initiate(parties.bob, parties.bundle)


@pytest.mark.req("HS-03")
def test_initiator_sends_initial_envelopes_until_it_decrypted_a_reply() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    early = [a.encrypt(b"one"), a.encrypt(b"two")]
    a = reload(a)  # a restart keeps the pending handshake
    early.append(a.encrypt(b"three"))
    assert a.handshake_pending
    assert all(is_initial(e) for e in early)
    handshake_fields = {tuple(unpack(e)[INI_IDENTITY:INI_RATCHET]) for e in early}
    assert len(handshake_fields) == 1
    b, _ = Session.respond(parties.bob, parties.pool, early[1], now=0)
    reply = b.encrypt(b"reply")
    assert not is_initial(reply)
    # A tampered reply does not end the handshake phase ...
    bad = reply[:-1] + bytes([reply[-1] ^ 1])
    with pytest.raises(AuthenticationError):
        a.decrypt(bad)
    assert a.handshake_pending
    assert is_initial(a.encrypt(b"four"))
    # ... the genuine one does, and for good (also after a restart).
    assert a.decrypt(reply) == b"reply"
    assert not a.handshake_pending
    assert not is_initial(a.encrypt(b"five"))
    assert not is_initial(reload(a).encrypt(b"six"))
    assert len(unpack(a.encrypt(b"seven"))) == 7
    # Bob still reads the late initial envelopes.
    assert b.decrypt(early[2]) == b"three"
    assert not b.handshake_pending


# --- HS-04: identities in the associated data ---------------------------------------------------


@pytest.mark.req("HS-04")
def test_every_message_is_sealed_with_both_identities_in_the_associated_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parties = make_parties()
    expected_ad = hashlib.sha256(
        LABEL_SESSION_AD + parties.alice.public.key_bytes + parties.bob.public.key_bytes
    ).digest()
    seen: list[bytes] = []
    real_seal = aead.seal

    def recording(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
        seen.append(ad)
        return real_seal(key, nonce, plaintext, ad)

    monkeypatch.setattr(aead, "seal", recording)
    a = Session.initiate(parties.alice, parties.bundle)
    first = a.encrypt(b"x")
    b, _ = Session.respond(parties.bob, parties.pool, first, now=0)
    for _ in range(2):
        a.decrypt(b.encrypt(b"y"))
        b.decrypt(a.encrypt(b"z"))
    assert len(seen) == 5
    for ad in seen:
        assert ad[:32] == expected_ad


@pytest.mark.req("HS-04")
def test_message_relabelled_with_another_identity_fails() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    first, later = a.encrypt(b"one"), a.encrypt(b"two")
    carol = Identity.generate()
    # The initial envelope claiming Carol (with a consistent session id) does not authenticate.
    ephemeral = unpack(first)[INI_EPHEMERAL]
    claimed = reencode(
        first,
        {
            INI_IDENTITY: carol.public.to_bytes(),
            INI_SID: handshake.session_id_for(carol.public, parties.bob.public, ephemeral),
        },
    )
    refused(
        lambda: Session.respond(parties.bob, parties.pool, claimed, now=0),
        parties.pool.to_bytes,
        AuthenticationError,
    )
    # A session whose associated data names Carol instead of Alice reads nothing Alice sent.
    b, _ = Session.respond(parties.bob, parties.pool, first, now=0)
    state = unpack(b.to_bytes())
    state[4] = carol.public.to_bytes()
    state[5] = handshake.session_ad(carol.public, parties.bob.public)
    relabelled = Session.from_bytes(pack(state))
    refused(lambda: relabelled.decrypt(later), relabelled.to_bytes, AuthenticationError)
    assert b.decrypt(later) == b"two"


# --- HS-05: the session id -----------------------------------------------------------------------


@pytest.mark.req("HS-05")
def test_initial_envelope_with_inconsistent_session_id_is_malformed() -> None:
    parties = make_parties()
    envelope = Session.initiate(parties.alice, parties.bundle).encrypt(b"x")
    other = Session.initiate(parties.alice, make_parties().bundle).session_id
    for session_id in (bytes(16), other, unpack(envelope)[INI_SID][::-1]):
        refused(
            lambda sid=session_id: Session.respond(
                parties.bob, parties.pool, reencode(envelope, {INI_SID: sid}), now=0
            ),
            parties.pool.to_bytes,
            MalformedEnvelope,
        )
    Session.respond(parties.bob, parties.pool, envelope, now=0)


# --- HS-06: replays ------------------------------------------------------------------------------


@pytest.mark.req("HS-06")
@pytest.mark.parametrize("last_resort", [False, True])
def test_replayed_initial_envelope_never_makes_a_second_session(last_resort: bool) -> None:
    parties = make_parties(last_resort=last_resort)
    a = Session.initiate(parties.alice, parties.bundle)
    envelope = a.encrypt(b"once")
    b, _ = Session.respond(parties.bob, parties.pool, envelope, now=0)
    expected = ReplayError if last_resort else PrekeyConsumed
    refused(
        lambda: Session.respond(parties.bob, parties.pool, envelope, now=0),
        parties.pool.to_bytes,
        expected,
    )
    # To the session Bob already has, the replay is a replay.
    refused(lambda: b.decrypt(envelope), b.to_bytes, ReplayError)
    refused(lambda: reload(b).decrypt(envelope), b.to_bytes, ReplayError)


def test_respond_to_a_plain_message_is_a_usage_error() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"x"), now=0)
    a.decrypt(b.encrypt(b"y"))
    plain = a.encrypt(b"z")
    refused(
        lambda: Session.respond(parties.bob, parties.pool, plain, now=0),
        parties.pool.to_bytes,
        UsageError,
    )


def test_initial_envelope_claiming_the_responders_own_identity_is_refused() -> None:
    parties = make_parties()
    envelope = Session.initiate(parties.alice, parties.bundle).encrypt(b"x")
    ephemeral = unpack(envelope)[INI_EPHEMERAL]
    mirrored = reencode(
        envelope,
        {
            INI_IDENTITY: parties.bob.public.to_bytes(),
            INI_SID: handshake.session_id_for(parties.bob.public, parties.bob.public, ephemeral),
        },
    )
    refused(
        lambda: Session.respond(parties.bob, parties.pool, mirrored, now=0),
        parties.pool.to_bytes,
        MalformedEnvelope,
    )


# --- HS-07: any altered field --------------------------------------------------------------------


@pytest.mark.req("HS-07", "ENV-01")
def test_initial_envelope_altered_in_any_field_is_refused_and_pool_unchanged() -> None:
    parties = make_parties()
    parties.pool.rotate(now=0)
    other_spk = PrekeyBundle.from_bytes(parties.pool.issue_bundle(now=0))
    last_resort = PrekeyBundle.from_bytes(parties.pool.last_resort_bundle(now=0))
    a = Session.initiate(parties.alice, parties.bundle)
    envelope = a.encrypt(b"the first message")
    sibling = unpack(Session.initiate(parties.alice, parties.bundle).encrypt(b"the first message"))

    def alterations(original: bytes) -> dict[str, dict[int, Any]]:
        fields = unpack(original)
        ciphertext = fields[INI_CT]
        return {
            "identity": {INI_IDENTITY: Identity.generate().public.to_bytes()},
            "ephemeral": {INI_EPHEMERAL: sibling[INI_EPHEMERAL]},
            "ephemeral and session id": {
                INI_EPHEMERAL: sibling[INI_EPHEMERAL],
                INI_SID: sibling[INI_SID],
            },
            "signed prekey id (another live one)": {INI_SPK_ID: other_spk.signed_prekey_id},
            "one-time prekey id dropped": {INI_OPK_ID: None},
            "one-time prekey id (another live one)": {INI_OPK_ID: other_spk.one_time_prekey_id},
            "kem prekey id (the last-resort one)": {INI_KEM_ID: last_resort.kem_prekey_id},
            "kem prekey id (another one-time one)": {INI_KEM_ID: other_spk.kem_prekey_id},
            "kem ciphertext (another valid one)": {INI_KEM_CT: sibling[INI_KEM_CT]},
            "ratchet key": {INI_RATCHET: sibling[INI_RATCHET]},
            "previous length": {INI_PREV: fields[INI_PREV] + 1},
            "message number": {INI_N: fields[INI_N] + 1},
            "ciphertext": {INI_CT: ciphertext[:-1] + bytes([ciphertext[-1] ^ 0x10])},
            "ciphertext of a sibling": {INI_CT: sibling[INI_CT]},
        }

    for name, changes in alterations(envelope).items():
        bad = reencode(envelope, changes)
        assert bad != envelope, name
        refused(
            lambda b=bad: Session.respond(parties.bob, parties.pool, b, now=0),
            parties.pool.to_bytes,
        )
    b, plaintext = Session.respond(parties.bob, parties.pool, envelope, now=0)
    assert plaintext == b"the first message"
    # The same alterations of a later initial envelope are refused by the session as well.
    later = a.encrypt(b"the second message")
    for name, changes in alterations(later).items():
        bad = reencode(later, changes)
        assert bad != later, name
        refused(lambda b2=bad: b.decrypt(b2), b.to_bytes)
    assert b.decrypt(later) == b"the second message"


# --- HS-08: low-order keys -----------------------------------------------------------------------


def _bundle_with(owner: SigningKey, bundle: bytes, changes: dict[int, bytes]) -> bytes:
    fields = unpack(bundle)[:9]
    for index, value in changes.items():
        fields[index] = value
    return sign_bundle(owner.sign, [pack(f) for f in fields])


@pytest.mark.req("HS-08")
@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p[:2].hex() + p[-1:].hex())
@pytest.mark.parametrize("field", ["identity", "signed prekey", "one-time prekey"])
def test_low_order_key_in_a_bundle_is_refused(point: bytes, field: str) -> None:
    signing = SigningKey.generate()
    honest = Identity(signing, X25519PrivateKey.generate())
    pool = PrekeyPool.create(honest, now=0)
    bundle = pool.issue_bundle(now=0)
    if field == "identity":
        changes = {1: public_identity_bytes(signing, point)}
    elif field == "signed prekey":
        changes = {3: point}
    else:
        changes = {5: point}
    bad = _bundle_with(signing, bundle, changes)
    # Well-formed and validly signed, but refused when parsed, before any DH.
    with pytest.raises(InvalidKey):
        PrekeyBundle.from_bytes(bad)
    with pytest.raises(InvalidKey):
        Session.initiate(Identity.generate(), bad)


@pytest.mark.req("HS-08")
@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p[:2].hex() + p[-1:].hex())
def test_low_order_ephemeral_or_initiator_key_in_an_initial_envelope_is_refused(
    point: bytes,
) -> None:
    parties = make_parties()
    envelope = Session.initiate(parties.alice, parties.bundle).encrypt(b"x")
    low_ephemeral = reencode(
        envelope,
        {
            INI_EPHEMERAL: point,
            INI_SID: handshake.session_id_for(parties.alice.public, parties.bob.public, point),
        },
    )
    mallory_bytes = public_identity_bytes(SigningKey.generate(), point)
    with pytest.raises(InvalidKey):  # refused on its own, before any DH
        PublicIdentity.from_bytes(mallory_bytes)
    mallory = PublicIdentity._from_trusted_bytes(mallory_bytes)
    ephemeral = unpack(envelope)[INI_EPHEMERAL]
    low_identity = reencode(
        envelope,
        {
            INI_IDENTITY: mallory_bytes,
            INI_SID: handshake.session_id_for(mallory, parties.bob.public, ephemeral),
        },
    )
    for bad in (low_ephemeral, low_identity):
        refused(
            lambda b=bad: Session.respond(parties.bob, parties.pool, b, now=0),
            parties.pool.to_bytes,
            InvalidKey,
        )


@pytest.mark.req("HS-08")
@pytest.mark.parametrize("point", LOW_ORDER_POINTS[:3], ids=lambda p: p[:2].hex() + p[-1:].hex())
def test_low_order_ratchet_key_in_an_initial_envelope_is_refused(point: bytes) -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    # A malicious initiator: a correctly authenticated first message with a low-order ratchet key.
    envelope = forge_envelope(a, pad(b"x"), ratchet_key=point)
    refused(
        lambda: Session.respond(parties.bob, parties.pool, envelope, now=0),
        parties.pool.to_bytes,
        InvalidKey,
    )


def test_forged_envelope_with_a_normal_ratchet_key_is_accepted() -> None:
    """Guard for the test above: the same forgery with a valid ratchet key authenticates, so the
    refusal there comes from the low-order check and not from a broken forgery."""
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    point = X25519PrivateKey.generate().public_key().to_bytes()
    envelope = forge_envelope(a, pad(b"x"), ratchet_key=point)
    b, plaintext = Session.respond(parties.bob, parties.pool, envelope, now=0)
    assert plaintext == b"x"
    b.encrypt(b"reply")


def test_public_key_helpers_agree_with_the_library() -> None:
    key = X25519PrivateKey.generate()
    assert x25519_public(key.to_bytes()) == key.public_key().to_bytes()
    assert X25519PublicKey(key.public_key().to_bytes()) == key.public_key()
