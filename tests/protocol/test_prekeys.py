"""The prekey pool: fresh one-time keys, rotation and grace, consumption, replay memory, state
(PK-01..PK-06)."""

from __future__ import annotations

import contextlib

import pytest
from protocol_support import (
    INI_CT,
    INI_KEM_ID,
    INI_OPK_ID,
    INI_SPK_ID,
    assert_no_secret,
    make_parties,
    pack,
    pool_secrets,
    reencode,
    refused,
    unpack,
)

from entrenous.errors import (
    AuthenticationError,
    MalformedEnvelope,
    PrekeyConsumed,
    ReplayError,
    StateError,
    UnknownPrekey,
)
from entrenous.protocol import Identity, PrekeyBundle, PrekeyPool, Session
from entrenous.protocol import prekeys as prekeys_module
from entrenous.protocol import session as session_module
from entrenous.protocol.constants import SIGNED_PREKEY_GRACE, SIGNED_PREKEY_ROTATION

ROTATION = SIGNED_PREKEY_ROTATION
GRACE = SIGNED_PREKEY_GRACE


def copy_pool(pool: PrekeyPool, owner: Identity) -> PrekeyPool:
    return PrekeyPool.from_bytes(pool.to_bytes(), owner)


def first_envelope(bundle: bytes, initiator: Identity | None = None) -> bytes:
    return Session.initiate(initiator or Identity.generate(), bundle).encrypt(b"first")


def flip_ciphertext(envelope: bytes) -> bytes:
    fields = unpack(envelope)
    ciphertext = fields[INI_CT]
    fields[INI_CT] = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    return pack(fields)


# --- PK-01 -------------------------------------------------------------------------------------


@pytest.mark.req("PK-01")
def test_every_issued_bundle_carries_fresh_one_time_prekeys() -> None:
    parties = make_parties()
    bundles = [PrekeyBundle.from_bytes(parties.pool.issue_bundle(now=i)) for i in range(20)]
    bundles.append(PrekeyBundle.from_bytes(parties.bundle))
    last_resort = PrekeyBundle.from_bytes(parties.pool.last_resort_bundle(now=30))
    opk_ids = [b.one_time_prekey_id for b in bundles]
    opks = [b.one_time_prekey.to_bytes() for b in bundles if b.one_time_prekey is not None]
    kem_ids = [b.kem_prekey_id for b in bundles]
    kems = [b.kem_prekey.to_bytes() for b in bundles]
    assert len(opks) == len(bundles)
    assert len(set(opk_ids)) == len(set(opks)) == len(bundles)
    assert len(set(kem_ids)) == len(set(kems)) == len(bundles)
    # One id counter for every kind of prekey: no id names two keys.
    all_ids = opk_ids + kem_ids + [last_resort.signed_prekey_id, last_resort.kem_prekey_id]
    assert len(set(all_ids)) == len(all_ids)
    assert last_resort.kem_prekey.to_bytes() not in kems
    assert all(not b.kem_last_resort for b in bundles)
    # Same generation: same signed prekey everywhere.
    assert len({b.signed_prekey.to_bytes() for b in [*bundles, last_resort]}) == 1
    assert parties.pool.one_time_prekeys_left == len(bundles)


# --- PK-02 -------------------------------------------------------------------------------------


@pytest.mark.req("PK-02")
def test_signed_prekey_rotates_at_issue_once_it_reaches_the_rotation_age() -> None:
    parties = make_parties(now=1000)
    first = PrekeyBundle.from_bytes(parties.bundle)
    before = PrekeyBundle.from_bytes(parties.pool.issue_bundle(now=1000 + ROTATION - 1))
    assert before.signed_prekey_id == first.signed_prekey_id
    assert before.signed_prekey == first.signed_prekey
    after = PrekeyBundle.from_bytes(parties.pool.issue_bundle(now=1000 + ROTATION))
    assert after.signed_prekey_id != first.signed_prekey_id
    assert after.signed_prekey != first.signed_prekey
    # The last-resort KEM key is replaced with its generation.
    old_lr = PrekeyBundle.from_bytes(parties.pool.last_resort_bundle(now=1000 + ROTATION))
    assert old_lr.signed_prekey_id == after.signed_prekey_id
    # The new generation is again kept for the full rotation age.
    again = PrekeyBundle.from_bytes(parties.pool.last_resort_bundle(now=1000 + 2 * ROTATION - 1))
    assert again.signed_prekey_id == after.signed_prekey_id
    assert again.kem_prekey == old_lr.kem_prekey


@pytest.mark.req("PK-02")
def test_replaced_signed_prekey_is_accepted_through_the_grace_period_and_refused_at_its_end() -> (
    None
):
    parties = make_parties(now=0)
    old_last_resort = parties.pool.last_resort_bundle(now=0)
    envelopes = [first_envelope(parties.bundle), first_envelope(old_last_resort)]
    parties.pool.issue_bundle(now=ROTATION)  # replaces the generation at t = ROTATION
    replaced_at = ROTATION
    saved = parties.pool.to_bytes()
    for envelope in envelopes:
        inside = PrekeyPool.from_bytes(saved, parties.bob)
        _session, plaintext = Session.respond(
            parties.bob, inside, envelope, now=replaced_at + GRACE - 1
        )
        assert plaintext == b"first"
        at_end = PrekeyPool.from_bytes(saved, parties.bob)
        refused(
            lambda env=envelope, p=at_end: Session.respond(
                parties.bob, p, env, now=replaced_at + GRACE
            ),
            at_end.to_bytes,
            UnknownPrekey,
        )
        with pytest.raises(UnknownPrekey) as info:
            Session.respond(parties.bob, at_end, envelope, now=replaced_at + 10 * GRACE)
        assert not isinstance(info.value, PrekeyConsumed)


@pytest.mark.req("PK-02")
def test_expired_generation_is_deleted_with_its_private_keys() -> None:
    parties = make_parties(now=0)
    old_keys = pool_secrets(parties.pool)[:2]  # the first generation's SPK and KEM seed
    parties.pool.rotate(now=10)
    assert len(unpack(parties.pool.to_bytes())[2]) == 2
    parties.pool.expire(now=10 + GRACE - 1)
    assert len(unpack(parties.pool.to_bytes())[2]) == 2
    parties.pool.expire(now=10 + GRACE)
    generations = unpack(parties.pool.to_bytes())[2]
    assert len(generations) == 1
    state = parties.pool.to_bytes()
    assert all(key not in state for key in old_keys)
    # The current generation stays until it is rotated, but is refused once past its rotation
    # age plus the grace period; maintain() then replaces it.
    current = unpack(parties.pool.to_bytes())[2][0][0]
    parties.pool.expire(now=10**9)
    assert len(unpack(parties.pool.to_bytes())[2]) == 1
    with pytest.raises(UnknownPrekey):
        parties.pool.lookup(
            signed_prekey_id=current,
            one_time_prekey_id=None,
            kem_prekey_id=unpack(parties.pool.to_bytes())[2][0][2],
            session_id=bytes(16),
            now=10 + ROTATION + GRACE,
        )
    assert parties.pool.maintain(now=10**9)
    generations = unpack(parties.pool.to_bytes())[2]
    assert generations[0][0] != current


@pytest.mark.req("PK-02")
def test_rotate_on_demand_starts_a_new_generation() -> None:
    parties = make_parties(now=0)
    first = PrekeyBundle.from_bytes(parties.bundle)
    parties.pool.rotate(now=5)
    second = PrekeyBundle.from_bytes(parties.pool.issue_bundle(now=6))
    assert second.signed_prekey_id != first.signed_prekey_id
    # Both generations work right after the rotation.
    for bundle in (parties.bundle, parties.pool.issue_bundle(now=7)):
        Session.respond(parties.bob, parties.pool, first_envelope(bundle), now=8)


# --- PK-03 -------------------------------------------------------------------------------------


@pytest.mark.req("PK-03", "HS-06")
def test_one_time_prekey_is_consumed_exactly_once() -> None:
    parties = make_parties()
    alice_session = Session.initiate(parties.alice, parties.bundle)
    first, second = alice_session.encrypt(b"one"), alice_session.encrypt(b"two")
    left = parties.pool.one_time_prekeys_left
    opk_secret = pool_secrets(parties.pool)[-2]
    _bob_session, plaintext = Session.respond(parties.bob, parties.pool, first, now=0)
    assert plaintext == b"one"
    assert parties.pool.one_time_prekeys_left == left - 1
    assert opk_secret not in parties.pool.to_bytes()
    # The same envelope again, a later envelope of the same session, and a handshake of another
    # initiator from the same bundle: all name the consumed key.
    for envelope in (first, second, first_envelope(parties.bundle)):
        refused(
            lambda env=envelope: Session.respond(parties.bob, parties.pool, env, now=0),
            parties.pool.to_bytes,
            PrekeyConsumed,
        )


@pytest.mark.req("PK-03")
def test_consumed_one_time_kem_prekey_alone_is_reported_as_consumed() -> None:
    parties = make_parties()
    envelope = first_envelope(parties.bundle)
    Session.respond(parties.bob, parties.pool, envelope, now=0)
    # Name only the one-time KEM key (no X25519 one-time key): it is gone too.
    refused(
        lambda: Session.respond(
            parties.bob, parties.pool, reencode(envelope, {INI_OPK_ID: None}), now=0
        ),
        parties.pool.to_bytes,
        PrekeyConsumed,
    )


@pytest.mark.req("PK-03")
@pytest.mark.parametrize("field", [INI_SPK_ID, INI_OPK_ID, INI_KEM_ID])
def test_never_issued_prekey_id_is_unknown_not_consumed(field: int) -> None:
    parties = make_parties()
    envelope = first_envelope(parties.bundle)
    for never_issued in (1000, 2**32 - 1):
        bad = reencode(envelope, {field: never_issued})
        error = refused(
            lambda b=bad: Session.respond(parties.bob, parties.pool, b, now=0),
            parties.pool.to_bytes,
            UnknownPrekey,
        )
        assert not isinstance(error, PrekeyConsumed)
    # The genuine envelope still works afterwards.
    Session.respond(parties.bob, parties.pool, envelope, now=0)


# --- PK-04 -------------------------------------------------------------------------------------


@pytest.mark.req("PK-04", "HS-06")
def test_last_resort_handshake_replay_is_refused_while_its_generation_lives() -> None:
    parties = make_parties(now=0, last_resort=True)
    alice_session = Session.initiate(parties.alice, parties.bundle)
    first, second = alice_session.encrypt(b"one"), alice_session.encrypt(b"two")
    Session.respond(parties.bob, parties.pool, first, now=0)
    for envelope in (first, second):
        refused(
            lambda env=envelope: Session.respond(parties.bob, parties.pool, env, now=0),
            parties.pool.to_bytes,
            ReplayError,
        )
    # The memory survives a restart of the pool.
    reloaded = copy_pool(parties.pool, parties.bob)
    with pytest.raises(ReplayError):
        Session.respond(parties.bob, reloaded, first, now=1)
    # Another handshake from the same last-resort bundle is a different session: accepted.
    Session.respond(parties.bob, parties.pool, first_envelope(parties.bundle), now=2)
    # Still refused late in the grace period of the replaced generation ...
    parties.pool.rotate(now=100)
    with pytest.raises(ReplayError):
        Session.respond(parties.bob, parties.pool, first, now=100 + GRACE - 1)
    # ... and, once the generation (and with it the memory) is gone, refused as unknown.
    refused(
        lambda: Session.respond(parties.bob, parties.pool, first, now=100 + GRACE),
        parties.pool.to_bytes,
        UnknownPrekey,
    )


@pytest.mark.req("PK-04")
def test_replay_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prekeys_module, "MAX_REPLAY_CACHE", 2)
    parties = make_parties(now=0, last_resort=True)
    first_spk = PrekeyBundle.from_bytes(parties.bundle).signed_prekey_id
    for _ in range(2):
        Session.respond(parties.bob, parties.pool, first_envelope(parties.bundle), now=0)
    # A full generation accepts no more last-resort handshakes (no unbounded growth, no
    # rotation forced by strangers) ...
    parties.pool.rotate(now=1)
    fresh = PrekeyBundle.from_bytes(parties.pool.last_resort_bundle(now=1))
    assert fresh.signed_prekey_id != first_spk
    refused(
        lambda: Session.respond(parties.bob, parties.pool, first_envelope(parties.bundle), now=1),
        parties.pool.to_bytes,
        UnknownPrekey,
    )
    # ... while the new generation does.
    Session.respond(parties.bob, parties.pool, first_envelope(fresh.to_bytes()), now=1)


# --- PK-05 -------------------------------------------------------------------------------------


@pytest.mark.req("PK-05", "HS-07")
@pytest.mark.parametrize("last_resort", [False, True])
def test_failed_handshake_leaves_the_pool_unchanged(last_resort: bool) -> None:
    parties = make_parties(last_resort=last_resort)
    envelope = first_envelope(parties.bundle)
    refused(
        lambda: Session.respond(parties.bob, parties.pool, flip_ciphertext(envelope), now=0),
        parties.pool.to_bytes,
        AuthenticationError,
    )
    # Nothing was consumed or remembered: the genuine envelope is still accepted once.
    _session, plaintext = Session.respond(parties.bob, parties.pool, envelope, now=0)
    assert plaintext == b"first"


@pytest.mark.req("PK-05", "ENV-08")
def test_handshake_with_bad_padding_leaves_the_pool_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parties = make_parties()
    alice_session = Session.initiate(parties.alice, parties.bundle)
    with monkeypatch.context() as patch:
        patch.setattr(session_module, "pad", lambda plaintext: plaintext + bytes(64))
        bad = alice_session.encrypt(b"no terminator")
    good = alice_session.encrypt(b"fine")
    refused(
        lambda: Session.respond(parties.bob, parties.pool, bad, now=0),
        parties.pool.to_bytes,
        MalformedEnvelope,
    )
    _session, plaintext = Session.respond(parties.bob, parties.pool, good, now=0)
    assert plaintext == b"fine"


# --- PK-06 -------------------------------------------------------------------------------------


@pytest.mark.req("PK-06")
def test_pool_state_round_trips_and_keeps_working() -> None:
    parties = make_parties(now=0)
    parties.pool.issue_bundle(now=1)
    parties.pool.rotate(now=2)
    last_resort = parties.pool.last_resort_bundle(now=3)
    Session.respond(parties.bob, parties.pool, first_envelope(last_resort), now=3)
    saved = parties.pool.to_bytes()
    assert unpack(saved)[0] == 1  # versioned
    reloaded = PrekeyPool.from_bytes(saved, parties.bob)
    assert reloaded.to_bytes() == saved
    assert reloaded.one_time_prekeys_left == parties.pool.one_time_prekeys_left
    # The reloaded pool answers an initial message from a bundle issued before the restart.
    _session, plaintext = Session.respond(
        parties.bob, reloaded, first_envelope(parties.bundle), now=4
    )
    assert plaintext == b"first"


@pytest.mark.req("PK-06")
@pytest.mark.parametrize("version", [2, 3, 255, 2**16])
def test_pool_state_of_a_newer_version_is_refused_naming_the_version(version: int) -> None:
    parties = make_parties()
    fields = unpack(parties.pool.to_bytes())
    fields[0] = version
    with pytest.raises(StateError) as info:
        PrekeyPool.from_bytes(pack(fields), parties.bob)
    assert str(version) in str(info.value)


@pytest.mark.req("PK-06")
def test_every_truncation_of_pool_state_is_a_state_error() -> None:
    parties = make_parties()
    saved = parties.pool.to_bytes()
    for length in range(len(saved)):
        with pytest.raises(StateError):
            PrekeyPool.from_bytes(saved[:length], parties.bob)


@pytest.mark.req("PK-06")
def test_structurally_corrupt_pool_state_is_a_state_error() -> None:
    parties = make_parties()
    saved = parties.pool.to_bytes()
    fields = unpack(saved)
    generation = fields[2][0]
    cases: list[object] = [
        [],
        [1],
        fields[:4],
        [*fields, 0],
        [fields[0], -1, *fields[2:]],
        [fields[0], "x", *fields[2:]],
        [*fields[:2], [], *fields[3:]],  # no generation at all
        [*fields[:2], 5, *fields[3:]],
        [*fields[:2], [generation[:6]], *fields[3:]],
        [*fields[:2], [[*generation[:1], b"short", *generation[2:]]], *fields[3:]],
        [*fields[:2], [[*generation[:3], bytes(32), *generation[4:]]], *fields[3:]],  # seed
        [*fields[:2], [[*generation[:4], -5, *generation[5:]]], *fields[3:]],
        [*fields[:2], [[*generation[:6], [b"not sixteen"]]], *fields[3:]],
        [*fields[:3], [[1]], fields[4]],
        [*fields[:3], [[1, b"short"]], fields[4]],
        [*fields[:4], [[1, bytes(32)]]],  # a KEM seed must be 64 bytes
    ]
    for case in cases:
        with pytest.raises(StateError):
            PrekeyPool.from_bytes(pack(case), parties.bob)
    for garbage in (b"", b"\x00", b"\xc1", saved + b"\x00", b"\x81\x01\x02"):
        with pytest.raises(StateError):
            PrekeyPool.from_bytes(garbage, parties.bob)


@pytest.mark.req("PK-06")
def test_single_byte_corruption_of_pool_state_never_raises_an_untyped_error() -> None:
    parties = make_parties()
    saved = parties.pool.to_bytes()
    # Structural bytes (headers, ids, counters) must give StateError; bytes inside a key can
    # only be detected by the store's authenticated encryption, so those may load.
    for index in range(len(saved)):
        for mask in (0x01, 0x80):
            data = saved[:index] + bytes([saved[index] ^ mask]) + saved[index + 1 :]
            with contextlib.suppress(StateError):  # any other exception fails the test
                PrekeyPool.from_bytes(data, parties.bob)


def test_pool_repr_shows_counts_only() -> None:
    parties = make_parties()
    text = repr(parties.pool)
    assert "one_time=1" in text
    assert_no_secret(text, pool_secrets(parties.pool))


def test_pool_refuses_a_time_that_is_not_a_non_negative_int() -> None:
    parties = make_parties()
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(TypeError):
            parties.pool.issue_bundle(now=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Session.respond(parties.bob, parties.pool, first_envelope(parties.bundle), now=bad)  # type: ignore[arg-type]


def test_oldest_unused_one_time_prekeys_are_dropped_beyond_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prekeys_module, "MAX_ONE_TIME_PREKEYS", 3)
    parties = make_parties()
    bundles = [parties.bundle] + [parties.pool.issue_bundle(now=0) for _ in range(3)]
    assert parties.pool.one_time_prekeys_left == 3
    refused(
        lambda: Session.respond(parties.bob, parties.pool, first_envelope(bundles[0]), now=0),
        parties.pool.to_bytes,
        UnknownPrekey,
    )
    for bundle in bundles[1:]:
        Session.respond(parties.bob, parties.pool, first_envelope(bundle), now=0)
