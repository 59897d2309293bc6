"""Two parties talking through a network that reorders, drops, replays, tampers with and
reflects envelopes, while the parties restart from their saved state (a Hypothesis state machine).

The model is exact about the limits: a message whose receiving chain was evicted (RAT-07) may no
longer be decrypted, and the model knows which chains the receiver still keeps (the last
MAX_RECEIVING_CHAINS ratchet keys it received, in order of first receipt). An example never sends
enough messages to reach MAX_SKIP or MAX_SKIPPED_KEYS_PER_CHAIN; those limits are checked by the
example tests at the end of this file and in test_ratchet.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from protocol_support import (
    INI_N,
    INI_PREV,
    MSG_N,
    MSG_PREV,
    assert_no_secret,
    established,
    identity_secrets,
    is_initial,
    make_parties,
    pool_secrets,
    ratchet_key_of,
    reencode,
    session_secrets,
    unpack,
)

from entrenous.errors import (
    EntrenousError,
    MessageGapTooLarge,
    PlaintextTooLarge,
    PrekeyConsumed,
    ReplayError,
)
from entrenous.protocol import PrekeyPool, Session
from entrenous.protocol.constants import MAX_PLAINTEXT_SIZE, MAX_RECEIVING_CHAINS, MAX_SKIP

ALICE, BOB = "alice", "bob"
NOW = 1_000

sizes = st.one_of(
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=0, max_value=200),
    st.sampled_from([0, 63, 64, 4096, 20_000, MAX_PLAINTEXT_SIZE, MAX_PLAINTEXT_SIZE + 1]),
)
parties_st = st.sampled_from([ALICE, BOB])
picks = st.integers(min_value=0, max_value=2**16)


@dataclass
class Flight:
    """One envelope the network carries, and what the model expects of it."""

    number: int
    sender: str
    receiver: str
    data: bytes
    plaintext: bytes
    ratchet_key: bytes
    delivered: bool = False
    dropped: bool = False


class AdversarialNetwork(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        parties = make_parties(now=NOW)
        self.identities = {ALICE: parties.alice, BOB: parties.bob}
        self.pool = parties.pool
        self.sessions: dict[str, Session | None] = {
            ALICE: Session.initiate(parties.alice, parties.bundle),
            BOB: None,
        }
        self.flights: list[Flight] = []
        # Ratchet keys each party received, in the order their chains were first accepted.
        self.chains: dict[str, list[bytes]] = {ALICE: [], BOB: []}
        self.alice_heard = False
        self.errors: list[EntrenousError] = []
        self.secrets: set[bytes] = set()

    # --- the model -------------------------------------------------------------------------

    def session(self, name: str) -> Session:
        session = self.sessions[name]
        assert session is not None
        return session

    def saved_state(self, receiver: str) -> bytes:
        """What a refused input must leave unchanged: the session, or Bob's pool before it."""
        session = self.sessions[receiver]
        if session is None:
            return self.pool.to_bytes()
        return session.to_bytes()

    def chain_kept(self, flight: Flight) -> bool:
        evicted = self.chains[flight.receiver][:-MAX_RECEIVING_CHAINS]
        return flight.ratchet_key not in evicted

    def attempt(self, receiver: str, data: bytes) -> bytes:
        session = self.sessions[receiver]
        if session is None:
            new, plaintext = Session.respond(self.identities[BOB], self.pool, data, now=NOW)
            self.sessions[BOB] = new
            return plaintext
        plaintext = session.decrypt(data)
        if receiver == ALICE:
            self.alice_heard = True
        return plaintext

    def expect_refusal(
        self, receiver: str, data: bytes, expected: type[EntrenousError] = EntrenousError
    ) -> None:
        before = self.saved_state(receiver)
        had_session = self.sessions[receiver] is not None
        with pytest.raises(expected) as info:
            self.attempt(receiver, data)
        assert (self.sessions[receiver] is not None) == had_session, "a refusal made a session"
        assert self.saved_state(receiver) == before, "a refused envelope changed the state"
        self.errors.append(info.value)

    def deliver_genuine(self, flight: Flight) -> None:
        if not self.chain_kept(flight):
            self.expect_refusal(flight.receiver, flight.data)
        elif flight.delivered:
            self.expect_refusal(flight.receiver, flight.data, ReplayError)
        else:
            assert self.attempt(flight.receiver, flight.data) == flight.plaintext
            flight.delivered = True
            if flight.ratchet_key not in self.chains[flight.receiver]:
                self.chains[flight.receiver].append(flight.ratchet_key)

    def pick(self, candidates: list[Flight], choice: int) -> Flight:
        return candidates[choice % len(candidates)]

    def undelivered(self) -> list[Flight]:
        return [f for f in self.flights if not f.delivered and not f.dropped]

    def delivered(self) -> list[Flight]:
        return [f for f in self.flights if f.delivered]

    # --- rules: the parties ----------------------------------------------------------------

    @initialize(rounds=st.sampled_from([0, 0, 1, 2, 3, 5, 8]))
    def warm_up(self, rounds: int) -> None:
        """Start some examples a few round trips into the conversation (more chains, sooner)."""
        for turn in range(rounds):
            for sender in (ALICE, BOB):
                self.send(sender, 20 + turn, turn)
                self.deliver_genuine(self.flights[-1])

    @rule(sender=parties_st, size=sizes, seed=picks)
    def converse(self, sender: str, size: int, seed: int) -> None:
        """A well-behaved network for once: send, and deliver it at once."""
        count = len(self.flights)
        self.send(sender, size, seed)
        if len(self.flights) > count:
            self.deliver_genuine(self.flights[-1])

    @rule(sender=parties_st, size=sizes, seed=picks)
    def send(self, sender: str, size: int, seed: int) -> None:
        session = self.sessions[sender]
        if session is None:  # Bob cannot speak before he has heard from Alice
            return
        plaintext = random.Random(seed).randbytes(size)
        if size > MAX_PLAINTEXT_SIZE:
            before = session.to_bytes()
            with pytest.raises(PlaintextTooLarge) as info:
                session.encrypt(plaintext)
            assert session.to_bytes() == before
            self.errors.append(info.value)
            return
        envelope = session.encrypt(plaintext)
        # HS-03: Alice's envelopes carry the handshake exactly until she has heard from Bob.
        assert is_initial(envelope) == (sender == ALICE and not self.alice_heard)
        receiver = BOB if sender == ALICE else ALICE
        self.flights.append(
            Flight(
                len(self.flights), sender, receiver, envelope, plaintext, ratchet_key_of(envelope)
            )
        )
        if len(plaintext) >= 16:
            self.secrets.add(plaintext)

    @rule(who=parties_st)
    def restart(self, who: str) -> None:
        session = self.sessions[who]
        if session is None:
            saved = self.pool.to_bytes()
            self.pool = PrekeyPool.from_bytes(saved, self.identities[BOB])
            assert self.pool.to_bytes() == saved
            return
        saved = session.to_bytes()
        self.sessions[who] = Session.from_bytes(saved)
        assert self.session(who).to_bytes() == saved

    # --- rules: the network ----------------------------------------------------------------

    @precondition(lambda self: self.undelivered())
    @rule(choice=picks)
    def deliver(self, choice: int) -> None:
        self.deliver_genuine(self.pick(self.undelivered(), choice))

    @precondition(lambda self: self.undelivered())
    @rule(choices=st.lists(picks, min_size=2, max_size=8))
    def deliver_several(self, choices: list[int]) -> None:
        for choice in choices:
            waiting = self.undelivered()
            if waiting:
                self.deliver_genuine(self.pick(waiting, choice))

    @precondition(lambda self: self.delivered())
    @rule(choice=picks)
    def replay(self, choice: int) -> None:
        flight = self.pick(self.delivered(), choice)
        self.deliver_genuine(flight)
        if flight.receiver == BOB and is_initial(flight.data):
            # HS-06: no second session from a replayed initial envelope either.
            before = self.pool.to_bytes()
            with pytest.raises(PrekeyConsumed) as info:
                Session.respond(self.identities[BOB], self.pool, flight.data, now=NOW)
            assert self.pool.to_bytes() == before
            self.errors.append(info.value)

    @precondition(lambda self: self.undelivered())
    @rule(choice=picks)
    def drop(self, choice: int) -> None:
        # Lost for the rest of the run; teardown delivers it after all (late, far out of order).
        self.pick(self.undelivered(), choice).dropped = True

    @precondition(lambda self: self.flights)
    @rule(
        choice=picks,
        how=st.sampled_from(
            ["flip", "set", "truncate", "append", "far n", "far previous", "reflect"]
        ),
        where=st.integers(min_value=0, max_value=2**20),
        value=st.integers(min_value=0, max_value=255),
        tail=st.binary(min_size=1, max_size=8),
    )
    def attack(self, choice: int, how: str, where: int, value: int, tail: bytes) -> None:
        """Tamper with an envelope (any, delivered or not) and deliver it; or forge a header far
        beyond the window; or reflect an envelope to the party that wrote it."""
        # Mostly envelopes still on their way: their keys are live, the interesting case.
        waiting = self.undelivered()
        flight = self.pick(waiting if waiting and choice % 4 else self.flights, choice // 4)
        data = flight.data
        receiver = flight.receiver
        if how == "flip":
            index, bit = divmod(where % (8 * len(data)), 8)
            data = data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]
        elif how == "set":
            index = where % len(data)
            if data[index] == value:
                value ^= 0xFF
            data = data[:index] + bytes([value]) + data[index + 1 :]
        elif how == "truncate":
            data = data[: where % len(data)]
        elif how == "append":
            data += tail
        elif how == "reflect":
            receiver = flight.sender
        else:
            fields = unpack(data)
            n_index, prev_index = (INI_N, INI_PREV) if len(fields) == 13 else (MSG_N, MSG_PREV)
            index = n_index if how == "far n" else prev_index
            far = (MAX_SKIP + 1, 10 * MAX_SKIP, 2**32 - 1)[where % 3]
            data = reencode(data, {index: min(fields[index] + far, 2**32 - 1)})
        assert data != flight.data or receiver != flight.receiver
        self.expect_refusal(receiver, data)

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def handshake_phase_matches_the_model(self) -> None:
        assert self.session(ALICE).handshake_pending == (not self.alice_heard)
        bob = self.sessions[BOB]
        if bob is not None:
            assert not bob.handshake_pending
            assert bob.session_id == self.session(ALICE).session_id

    @invariant()
    def remember_secrets(self) -> None:
        for session in self.sessions.values():
            if session is not None:
                self.secrets.update(session_secrets(session))

    # --- teardown ------------------------------------------------------------------------------

    def teardown(self) -> None:
        # Everything never delivered (in flight or dropped) is still delivered exactly once
        # unless its chain was evicted; newest first, as far out of order as it gets.
        for flight in reversed(self.flights):
            if not flight.delivered:
                self.deliver_genuine(flight)
        assert all(f.delivered or not self.chain_kept(f) for f in self.flights)
        # ERR-03: no error message shows a plaintext or key material.
        hidden = [
            *self.secrets,
            *identity_secrets(self.identities[ALICE]),
            *identity_secrets(self.identities[BOB]),
            *pool_secrets(self.pool),
        ]
        texts = {f"{type(e).__name__}: {e} {e!r}" for e in self.errors}
        for text in texts:
            assert_no_secret(text, hidden, windows=False)


_profile = settings()


@pytest.mark.req(
    "RAT-04", "RAT-07", "RAT-08", "ENV-05", "HS-03", "HS-06", "HS-07", "ST-01", "ERR-03"
)
def test_two_parties_over_an_adversarial_network() -> None:
    run_state_machine_as_test(
        AdversarialNetwork,
        settings=settings(
            _profile,
            max_examples=min(_profile.max_examples, 150),
            stateful_step_count=80,
        ),
    )


# --- the window, with genuine messages ----------------------------------------------------------


@pytest.mark.req("RAT-05", "RAT-04", "RAT-08")
def test_network_holding_back_more_than_the_window() -> None:
    rng = random.Random(5)
    a, b = established()
    envelopes = [a.encrypt(i.to_bytes(2, "big")) for i in range(MAX_SKIP + 5)]
    # Delivering the last first is a gap of MAX_SKIP + 4 on Bob's new receiving chain: refused.
    before = b.to_bytes()
    with pytest.raises(MessageGapTooLarge) as info:
        b.decrypt(envelopes[-1])
    assert (info.value.limit, info.value.value) == (MAX_SKIP, MAX_SKIP + 4)
    assert b.to_bytes() == before
    # A few early messages arrive (out of order), then the last one is inside the window: a gap
    # of MAX_SKIP - 1. The rest then arrives in any order, each exactly once.
    for i in (3, 1, 0, 4, 2):
        assert b.decrypt(envelopes[i]) == i.to_bytes(2, "big")
    assert b.decrypt(envelopes[-1]) == (MAX_SKIP + 4).to_bytes(2, "big")
    rest = list(range(5, len(envelopes) - 1))
    rng.shuffle(rest)
    for i in rest:
        assert b.decrypt(envelopes[i]) == i.to_bytes(2, "big")
    for i in rng.sample(range(len(envelopes)), 50):
        with pytest.raises(ReplayError):
            b.decrypt(envelopes[i])
