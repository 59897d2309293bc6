"""The Double Ratchet through the Session API: fresh keys, DH steps, forward secrecy, out-of-order
delivery, the gap and eviction limits, atomicity (RAT-01..RAT-08)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as RefX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as RefX25519Public
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from protocol_support import (
    R_CHAINS,
    R_MUST,
    R_OURS,
    R_ROOT,
    R_SENDING,
    R_SENDING_N,
    R_THEIRS,
    chain_step,
    established,
    exchange,
    forge_envelope,
    header_of,
    make_parties,
    pack,
    ratchet_key_of,
    ratchet_state,
    refused,
    reload,
    start,
    unpack,
    x25519_public,
)

from entrenous._primitives import aead
from entrenous.errors import (
    AuthenticationError,
    EntrenousError,
    InvalidKey,
    LimitExceeded,
    MessageGapTooLarge,
    ReplayError,
)
from entrenous.protocol import Session
from entrenous.protocol.constants import (
    LABEL_ROOT,
    MAX_RECEIVING_CHAINS,
    MAX_SKIP,
    MAX_SKIPPED_KEYS_PER_CHAIN,
)
from entrenous.protocol.padding import pad
from entrenous.protocol.ratchet import chain_key as chain_key_module
from entrenous.protocol.ratchet import root_key as root_key_module

Seal = Callable[[bytes, bytes, bytes, bytes], bytes]


def record_seals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Record the (key, nonce) of every AEAD seal the library makes from now on."""
    used: list[tuple[bytes, bytes]] = []
    real: Seal = aead.seal

    def recording(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
        used.append((key, nonce))
        return real(key, nonce, plaintext, ad)

    monkeypatch.setattr(aead, "seal", recording)
    return used


def send_many(sender: Session, count: int) -> list[bytes]:
    return [sender.encrypt(b"") for _ in range(count)]


# --- RAT-01: fresh message keys ------------------------------------------------------------------


@pytest.mark.req("RAT-01", "ST-01")
def test_no_key_or_nonce_is_ever_used_twice_over_a_long_conversation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used = record_seals(monkeypatch)
    opened: list[tuple[bytes, bytes]] = []
    real_open = aead.open_

    def recording_open(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
        plaintext = real_open(key, nonce, ciphertext, ad)
        opened.append((key, nonce))
        return plaintext

    monkeypatch.setattr(aead, "open_", recording_open)
    rng = random.Random(1)
    parties = make_parties()
    sessions: dict[str, Session] = {"a": Session.initiate(parties.alice, parties.bundle)}
    first = sessions["a"].encrypt(b"first")
    sessions["b"], _ = Session.respond(parties.bob, parties.pool, first, now=0)
    pending: dict[str, list[tuple[bytes, bytes]]] = {"a": [], "b": []}  # to the named receiver
    seen: dict[str, list[bytes]] = {"a": [], "b": [ratchet_key_of(first)]}  # chains, in order
    ratchet_keys = {ratchet_key_of(first)}
    sent, restarts, lost = 1, 0, 0

    def deliver(receiver: str, envelope: bytes, plaintext: bytes) -> None:
        nonlocal lost
        key = ratchet_key_of(envelope)
        if key in seen[receiver][:-MAX_RECEIVING_CHAINS]:
            lost += 1  # its chain was evicted (RAT-07): undecryptable by design
            return
        assert sessions[receiver].decrypt(envelope) == plaintext
        if key not in seen[receiver]:
            seen[receiver].append(key)

    for _ in range(600):
        action = rng.random()
        if action < 0.45:
            sender = rng.choice("ab")
            receiver = "b" if sender == "a" else "a"
            for _ in range(rng.randint(1, 4)):
                plaintext = rng.randbytes(rng.randint(0, 100))
                envelope = sessions[sender].encrypt(plaintext)
                ratchet_keys.add(ratchet_key_of(envelope))
                pending[receiver].append((envelope, plaintext))
                sent += 1
        elif action < 0.85:
            receiver = rng.choice("ab")
            if pending[receiver]:
                deliver(receiver, *pending[receiver].pop(rng.randrange(len(pending[receiver]))))
        else:
            who = rng.choice("ab")
            sessions[who] = reload(sessions[who])
            restarts += 1
    for receiver, queue in pending.items():
        for envelope, plaintext in queue:
            deliver(receiver, envelope, plaintext)
    assert len(used) == sent > 300
    assert len(set(used)) == len(used), "a (key, nonce) pair was used twice"
    assert len({key for key, _ in used}) == len(used), "a message key was used twice"
    # Every message was opened at most once, with the key it was sealed with.
    assert len(set(opened)) == len(opened) == sent - lost
    assert set(opened) <= set(used)
    assert lost < sent // 10
    # The conversation was long enough to mean something: many DH steps, many restarts.
    assert len(ratchet_keys) >= 15
    assert restarts > 50


@pytest.mark.req("RAT-01")
def test_nonce_is_the_message_number_and_each_chain_step_gives_the_next_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = established()
    state = ratchet_state(b)
    used = record_seals(monkeypatch)
    envelopes = send_many(b, 3)
    chain_key = state[R_SENDING]
    assert state[R_MUST] is False  # Bob's sending chain exists (he sent the reply)
    for index, envelope in enumerate(envelopes):
        _key, _previous, n = header_of(envelope)
        assert used[index][1] == n.to_bytes(12, "big")
        chain_key, message_key = chain_step(chain_key)
        assert used[index][0] == message_key
        assert a.decrypt(envelope) == b""


# --- RAT-02: DH steps ----------------------------------------------------------------------------


@pytest.mark.req("RAT-02")
def test_each_change_of_direction_brings_a_new_ratchet_key() -> None:
    rng = random.Random(2)
    parties = make_parties()
    sessions = {"a": Session.initiate(parties.alice, parties.bundle)}
    first = sessions["a"].encrypt(b"0")
    sessions["b"], _ = Session.respond(parties.bob, parties.pool, first, now=0)
    all_keys: list[bytes] = [ratchet_key_of(first)]
    current = {"a": ratchet_key_of(first)}
    sender = "b"
    for turn in range(12):
        receiver = "a" if sender == "b" else "b"
        run = [sessions[sender].encrypt(bytes([turn])) for _ in range(rng.randint(1, 3))]
        keys = {ratchet_key_of(e) for e in run}
        assert len(keys) == 1, "one ratchet key per run"
        key = keys.pop()
        assert key not in all_keys, "a direction change must bring a fresh ratchet key"
        all_keys.append(key)
        current[sender] = key
        for envelope in run:
            sessions[receiver].decrypt(envelope)
        sender = receiver
    assert len(all_keys) == 13


@pytest.mark.req("RAT-02")
def test_dh_output_is_mixed_into_the_root_key_under_the_root_label() -> None:
    a, b = start(make_parties())
    before = ratchet_state(b)
    assert before[R_MUST] is True  # the step is lazy: taken on Bob's first send
    reply = b.encrypt(b"reply")
    after = ratchet_state(b)
    ours = after[R_OURS]
    assert ratchet_key_of(reply) == x25519_public(ours)
    shared = RefX25519.from_private_bytes(ours).exchange(
        RefX25519Public.from_public_bytes(before[R_THEIRS])
    )
    okm = HKDF(hashes.SHA256(), 64, salt=before[R_ROOT], info=LABEL_ROOT).derive(shared)
    assert after[R_ROOT] == okm[:32]
    assert after[R_SENDING] == chain_step(okm[32:])[0]
    assert after[R_MUST] is False
    assert LABEL_ROOT == b"entrenous/v1 root ratchet"
    # Alice takes the receiving half of the same step and reaches the same root key.
    assert a.decrypt(reply) == b"reply"
    assert ratchet_state(a)[R_ROOT] == after[R_ROOT]
    assert ratchet_state(a)[R_MUST] is True


# --- RAT-03: forward secrecy and post-compromise security ----------------------------------------


@pytest.mark.req("RAT-03")
@pytest.mark.parametrize("compromised", ["alice", "bob"])
@pytest.mark.parametrize("moment", ["after receiving", "after sending"])
def test_earlier_state_cannot_decrypt_after_a_round_trip(compromised: str, moment: str) -> None:
    a, b = established()
    exchange(a, b, b"warm up")
    victim, peer = (a, b) if compromised == "alice" else (b, a)
    if moment == "after sending":
        exchange(victim, peer, b"the victim speaks")
    snapshot = victim.to_bytes()
    # Control: the copy does read what the peer sends right away (so the refusal below is due to
    # the round trip, not to a broken copy).
    early = peer.encrypt(b"before the round trip")
    assert Session.from_bytes(snapshot).decrypt(early) == b"before the round trip"
    assert victim.decrypt(early) == b"before the round trip"
    # One full round trip: a DH step in each direction.
    exchange(victim, peer, b"out")
    exchange(peer, victim, b"back")
    exchange(victim, peer, b"out again")
    secret = b"after the round trip"
    envelope = peer.encrypt(secret)
    stolen = Session.from_bytes(snapshot)
    refused(lambda: stolen.decrypt(envelope), stolen.to_bytes, EntrenousError)
    assert victim.decrypt(envelope) == secret


@pytest.mark.req("RAT-03", "RAT-04")
def test_key_of_a_received_message_does_not_remain_in_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = established()
    used = record_seals(monkeypatch)
    envelopes = send_many(a, 4)
    keys = [key for key, _ in used]
    assert b.decrypt(envelopes[2]) == b""
    state = b.to_bytes()
    assert keys[2] not in state
    # Skipped keys are kept until their message arrives, then deleted.
    assert keys[0] in state
    assert keys[1] in state
    assert b.decrypt(envelopes[0]) == b""
    state = b.to_bytes()
    assert keys[0] not in state
    assert keys[1] in state
    assert keys[3] not in state  # not derived yet
    for envelope in (envelopes[0], envelopes[2]):
        refused(lambda e=envelope: b.decrypt(e), b.to_bytes, ReplayError)
        reloaded = reload(b)
        refused(lambda e=envelope, r=reloaded: r.decrypt(e), reloaded.to_bytes, ReplayError)


# --- RAT-04: out of order, exactly once -------------------------------------------------------


@pytest.mark.req("RAT-04")
def test_messages_out_of_order_across_chains_are_decrypted_exactly_once() -> None:
    rng = random.Random(4)
    a, b = established()
    backlog: list[tuple[bytes, bytes]] = []
    for turn in range(3):
        backlog += [(a.encrypt(f"{turn}.{i}".encode()), f"{turn}.{i}".encode()) for i in range(5)]
        # Bob needs one message of the run to answer on a new chain; the rest stays out.
        envelope, plaintext = backlog.pop()
        assert b.decrypt(envelope) == plaintext
        exchange(b, a, b"ack")
    rng.shuffle(backlog)
    for envelope, plaintext in backlog:
        assert b.decrypt(envelope) == plaintext
    for envelope, _ in backlog:
        refused(lambda e=envelope: b.decrypt(e), b.to_bytes, ReplayError)
    assert ratchet_state(b)[R_CHAINS][-1][3] == []  # no skipped keys left


# --- RAT-05: the gap limit -----------------------------------------------------------------------


def count_derivations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every chain step (HMAC) and root step (HKDF) the ratchet makes from now on."""
    calls: list[str] = []
    real_hmac = chain_key_module.hmac_sha512
    real_hkdf = root_key_module.hkdf_sha256

    def hmac_counting(key: bytes, message: bytes) -> bytes:
        calls.append("chain")
        return real_hmac(key, message)

    def hkdf_counting(ikm: bytes, **kwargs: Any) -> bytes:
        calls.append("root")
        return real_hkdf(ikm, **kwargs)

    monkeypatch.setattr(chain_key_module, "hmac_sha512", hmac_counting)
    monkeypatch.setattr(root_key_module, "hkdf_sha256", hkdf_counting)
    return calls


@pytest.mark.req("RAT-05")
def test_gap_at_the_start_of_a_new_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = established()
    envelopes = send_many(a, MAX_SKIP + 2)  # n = 0 .. MAX_SKIP + 1 on Alice's new chain
    calls = count_derivations(monkeypatch)
    error = refused(lambda: b.decrypt(envelopes[MAX_SKIP + 1]), b.to_bytes, MessageGapTooLarge)
    assert isinstance(error, MessageGapTooLarge)
    assert (error.limit, error.value) == (MAX_SKIP, MAX_SKIP + 1) == (2000, 2001)
    assert calls == [], "keys were derived before the gap was refused"
    assert b.decrypt(envelopes[MAX_SKIP]) == b""  # a gap of exactly MAX_SKIP
    assert b.decrypt(envelopes[MAX_SKIP + 1]) == b""  # now in sequence
    for envelope in envelopes[:MAX_SKIP]:
        assert b.decrypt(envelope) == b""


@pytest.mark.req("RAT-05")
def test_gap_within_a_known_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = established()
    envelopes = send_many(a, MAX_SKIP + 3)
    assert b.decrypt(envelopes[0]) == b""  # the chain is known, next n = 1
    calls = count_derivations(monkeypatch)
    error = refused(lambda: b.decrypt(envelopes[MAX_SKIP + 2]), b.to_bytes, MessageGapTooLarge)
    assert isinstance(error, MessageGapTooLarge)
    assert (error.limit, error.value) == (2000, 2001)
    assert calls == []
    assert b.decrypt(envelopes[MAX_SKIP + 1]) == b""  # gap 2000: accepted
    assert b.decrypt(envelopes[1]) == b""
    assert b.decrypt(envelopes[MAX_SKIP]) == b""


def _previous_length_setup(extra: int) -> tuple[Session, Session, list[bytes]]:
    """Bob knows Alice's current chain up to n = 0; Alice then sends ``MAX_SKIP + extra`` more on
    it (undelivered), gets a reply, and sends the first message of her next chain."""
    a, b = established()
    assert b.decrypt(a.encrypt(b"")) == b""
    backlog = send_many(a, MAX_SKIP + extra)
    exchange(b, a, b"reply")
    step = a.encrypt(b"new chain")
    _key, previous, n = header_of(step)
    assert (previous, n) == (MAX_SKIP + extra + 1, 0)
    return a, b, [*backlog, step]


@pytest.mark.req("RAT-05")
def test_gap_through_previous_length_on_a_dh_step(monkeypatch: pytest.MonkeyPatch) -> None:
    _a, b, envelopes = _previous_length_setup(extra=1)
    calls = count_derivations(monkeypatch)
    error = refused(lambda: b.decrypt(envelopes[-1]), b.to_bytes, MessageGapTooLarge)
    assert isinstance(error, MessageGapTooLarge)
    assert (error.limit, error.value) == (2000, 2001)
    assert calls == []

    _a, b, envelopes = _previous_length_setup(extra=0)
    assert b.decrypt(envelopes[-1]) == b"new chain"  # previous_length gap of exactly 2000
    for envelope in envelopes[:-1]:
        assert b.decrypt(envelope) == b""


@pytest.mark.req("RAT-05")
def test_new_chain_gap_is_refused_before_the_previous_chain_is_completed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = established()
    assert b.decrypt(a.encrypt(b"")) == b""
    send_many(a, 10)  # a previous_length gap of 10, well inside the limit
    exchange(b, a, b"reply")
    envelopes = send_many(a, MAX_SKIP + 2)
    calls = count_derivations(monkeypatch)
    error = refused(lambda: b.decrypt(envelopes[-1]), b.to_bytes, MessageGapTooLarge)
    assert isinstance(error, MessageGapTooLarge)
    # The bound covers both chains: 10 left of the previous chain plus n = MAX_SKIP + 1.
    assert error.value == MAX_SKIP + 1 + 10
    assert calls == [], f"{len(calls)} keys derived before the gap was refused"


@pytest.mark.req("RAT-05")
def test_one_bound_covers_the_previous_chain_and_the_new_one() -> None:
    """A new-chain message may make the receiver derive MAX_SKIP keys in all, not per chain."""
    for left, new, accepted in ((1000, 1000, True), (1000, 1001, False), (0, 2000, True)):
        a, b = established()
        assert b.decrypt(a.encrypt(b"")) == b""
        send_many(a, left)  # Bob has not seen these: the rest of Alice's current chain
        exchange(b, a, b"reply")  # Alice's next send takes a DH step
        envelopes = send_many(a, new + 1)  # n = 0 .. new on the new chain
        if accepted:
            assert b.decrypt(envelopes[-1]) == b""
        else:
            error = refused(
                lambda e=envelopes[-1], s=b: s.decrypt(e), b.to_bytes, MessageGapTooLarge
            )
            assert isinstance(error, MessageGapTooLarge)
            assert (error.limit, error.value) == (MAX_SKIP, left + new)


@pytest.mark.req("RAT-05", "RAT-08")
def test_forged_huge_message_numbers_are_refused_cheaply() -> None:
    a, b = established()
    envelope = a.encrypt(b"x")
    fields = unpack(envelope)
    for n in (MAX_SKIP + 1, 2**31, 2**32 - 1):
        forged = pack([*fields[:5], n, fields[6]])
        error = refused(lambda f=forged: b.decrypt(f), b.to_bytes, MessageGapTooLarge)
        assert isinstance(error, MessageGapTooLarge)
        assert error.value == n
    # Bob's current chain (Alice's first) expects n = 1 next: previous_length 2002 is a gap of 2001.
    for previous in (MAX_SKIP + 2, 2**31, 2**32 - 1):
        forged = pack([*fields[:4], previous, *fields[5:]])
        error = refused(lambda f=forged: b.decrypt(f), b.to_bytes, MessageGapTooLarge)
        assert isinstance(error, MessageGapTooLarge)
        assert error.value == previous - 1
    assert b.decrypt(envelope) == b"x"


# --- RAT-06: skipped keys per chain --------------------------------------------------------------


@pytest.mark.req("RAT-06", "RAT-04")
def test_skipped_keys_per_chain_are_capped_oldest_first() -> None:
    a, b = established()
    envelopes = send_many(a, 2502)  # n = 0 .. 2501 on one chain
    assert b.decrypt(envelopes[1500]) == b""  # skips 0 .. 1499 (1500 keys)
    assert b.decrypt(envelopes[2501]) == b""  # skips 1501 .. 2500 (1000 more): 2500 > 2000
    chain = ratchet_state(b)[R_CHAINS][-1]
    skipped = chain[3][0::2]
    assert len(skipped) == MAX_SKIPPED_KEYS_PER_CHAIN == 2000
    assert min(skipped) == 500
    assert max(skipped) == 2500
    b = reload(b)
    for n in (0, 1, 250, 498, 499):
        refused(lambda e=envelopes[n]: b.decrypt(e), b.to_bytes, ReplayError)
    for n in (500, 501, 1499, 1501, 2000, 2500):
        assert b.decrypt(envelopes[n]) == b""
    assert len(ratchet_state(b)[R_CHAINS][-1][3]) == 2 * (2000 - 6)


# --- RAT-07: receiving chains --------------------------------------------------------------------


def count_exchanges(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record every X25519 exchange from now on (the peer keys), for the rest of the test."""
    from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey

    calls: list[bytes] = []
    original = X25519PrivateKey.exchange

    def exchange_spy(self: X25519PrivateKey, peer: X25519PublicKey) -> bytes:
        calls.append(peer.to_bytes())
        return original(self, peer)

    monkeypatch.setattr(X25519PrivateKey, "exchange", exchange_spy)
    return calls


@pytest.mark.req("RAT-07", "RAT-08")
def test_receiving_chains_are_capped_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    held_back = [a.encrypt(b"chain 1, n = 0")]
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"chain 1, n = 1"), now=0)
    assert ratchet_state(b)[R_CHAINS][0][3] != []  # a skipped key on chain 1
    snapshots: list[bytes] = []
    for chain in range(2, MAX_RECEIVING_CHAINS + 2):
        exchange(b, a, b"turn")
        held_back.append(a.encrypt(f"chain {chain}, n = 0".encode()))
        snapshots.append(b.to_bytes())
        expected = f"chain {chain}, n = 1".encode()
        assert b.decrypt(a.encrypt(expected)) == expected
        assert ratchet_state(b)[R_CHAINS][-1][3] != []
        assert len(ratchet_state(b)[R_CHAINS]) == min(chain, MAX_RECEIVING_CHAINS)
    assert len(held_back) == MAX_RECEIVING_CHAINS + 1
    # Before the sixth chain arrived, chain 1's skipped message was still readable ...
    before_sixth = Session.from_bytes(snapshots[-1])
    assert before_sixth.decrypt(held_back[0]) == b"chain 1, n = 0"
    # ... after it, chain 1 is gone, and only chain 1: its ratchet key is remembered, so the
    # late message is a replay, refused before any X25519 exchange.
    exchanges = count_exchanges(monkeypatch)
    refused(lambda: b.decrypt(held_back[0]), b.to_bytes, ReplayError)
    assert exchanges == []
    for chain, envelope in enumerate(held_back[1:], start=2):
        assert b.decrypt(envelope) == f"chain {chain}, n = 0".encode()
    assert len(ratchet_state(b)[R_CHAINS]) == MAX_RECEIVING_CHAINS
    assert len(ratchet_state(b)[R_CHAINS]) == MAX_RECEIVING_CHAINS


# --- other ratchet refusals ----------------------------------------------------------------------


@pytest.mark.req("RAT-08")
def test_new_ratchet_key_before_the_responder_answered_is_refused() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"x"), now=0)
    forged = forge_envelope(a, pad(b"y"), ratchet_key=x25519_public(bytes([7]) * 32))
    refused(lambda: b.decrypt(forged), b.to_bytes, AuthenticationError)


@pytest.mark.req("RAT-08")
def test_low_order_ratchet_key_on_a_new_chain_is_refused() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"x"), now=0)
    b.encrypt(b"Bob has answered (not delivered)")
    forged = forge_envelope(a, pad(b"y"), ratchet_key=bytes(32))
    refused(lambda: b.decrypt(forged), b.to_bytes, InvalidKey)


def test_sending_chain_counter_is_bounded_by_uint32() -> None:
    a, _b = established()
    a.encrypt(b"")  # Alice's new chain exists now
    state = unpack(a.to_bytes())
    state[7][R_SENDING_N] = 2**32 - 1
    last = Session.from_bytes(pack(state))
    assert header_of(last.encrypt(b""))[2] == 2**32 - 1
    error = refused(lambda: last.encrypt(b""), last.to_bytes, LimitExceeded)
    assert isinstance(error, LimitExceeded)
    assert error.limit == 2**32 - 1
