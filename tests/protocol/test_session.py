"""The Session facade: saved state (ST-01, ST-02) and the API's own refusals."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest
from protocol_support import (
    R_CHAINS,
    deterministic_randomness,
    established,
    exchange,
    make_parties,
    pack,
    ratchet_state,
    refused,
    reload,
    start,
    unpack,
)

from entrenous.errors import EntrenousError, StateError, UsageError
from entrenous.protocol import Session
from entrenous.protocol import session as session_module
from entrenous.protocol.constants import (
    MAX_RECEIVING_CHAINS,
    MAX_SKIPPED_KEYS_PER_CHAIN,
    SESSION_STATE_VERSION,
)

# --- ST-01 ---------------------------------------------------------------------------------------


@pytest.mark.req("ST-01")
def test_state_is_versioned_and_round_trips_at_every_stage() -> None:
    for last_resort in (False, True):
        parties = make_parties(last_resort=last_resort)
        a = Session.initiate(parties.alice, parties.bundle)
        stages = [a.to_bytes()]
        held = a.encrypt(b"held back")
        b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"first"), now=0)
        stages += [a.to_bytes(), b.to_bytes()]
        exchange(b, a, b"reply")
        stages += [a.to_bytes(), b.to_bytes()]
        exchange(a, b, b"again")
        stages += [a.to_bytes(), b.to_bytes()]
        assert b.decrypt(held) == b"held back"
        stages.append(b.to_bytes())
        for state in stages:
            assert unpack(state)[0] == SESSION_STATE_VERSION == 2
            loaded = Session.from_bytes(state)
            assert loaded.to_bytes() == state
            # Newer code reads the older form: version 1 had no retired-chain list.
            fields = unpack(state)
            older = pack([1, *fields[1:7], fields[7][:8]])
            assert Session.from_bytes(older).to_bytes() == state
        for session in (a, b):
            loaded = reload(session)
            assert loaded.session_id == session.session_id
            assert loaded.is_initiator == session.is_initiator
            assert loaded.peer_identity == session.peer_identity
            assert loaded.our_identity == session.our_identity
            assert loaded.handshake_pending == session.handshake_pending
            assert loaded.safety_number() == session.safety_number()


def _script(seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    actions = ["a->b", "b->a", "deliver a", "deliver b"]
    return [(rng.choice(actions), rng.randrange(1000)) for _ in range(60)]


def _play(
    a: Session, b: Session, script: list[tuple[str, int]], *, restart: bool
) -> tuple[list[bytes], bytes, bytes]:
    """Run ``script`` and return everything observable: envelopes, plaintexts, final states."""
    sessions = {"a": a, "b": b}
    queues: dict[str, list[bytes]] = {"a": [], "b": []}
    out: list[bytes] = []
    for action, choice in script:
        if action.endswith("->a") or action.endswith("->b"):
            sender, receiver = action[0], action[-1]
            envelope = sessions[sender].encrypt(choice.to_bytes(2, "big") * (choice % 50))
            queues[receiver].append(envelope)
            out.append(envelope)
        else:
            receiver = action[-1]
            if queues[receiver]:
                envelope = queues[receiver].pop(choice % len(queues[receiver]))
                out.append(sessions[receiver].decrypt(envelope))
        if restart:
            sessions = {name: reload(s) for name, s in sessions.items()}
    return out, sessions["a"].to_bytes(), sessions["b"].to_bytes()


@pytest.mark.req("ST-01")
def test_conversation_continues_identically_after_a_restart() -> None:
    """With the same random bytes, a conversation run on live sessions, on sessions reloaded from
    saved state, and on sessions reloaded after every single call produces the same bytes."""
    a, b = established()
    assert b.decrypt(a.encrypt(b"x")) == b"x"
    held = [a.encrypt(b"held") for _ in range(3)]
    assert b.decrypt(a.encrypt(b"skip")) == b"skip"  # Bob now keeps three skipped keys
    saved = (a.to_bytes(), b.to_bytes())
    script = _script(7)
    with deterministic_randomness(b"st-01"):
        live = _play(a, b, script, restart=False)
    with deterministic_randomness(b"st-01"):
        reloaded = _play(
            Session.from_bytes(saved[0]), Session.from_bytes(saved[1]), script, restart=False
        )
    with deterministic_randomness(b"st-01"):
        restarted = _play(
            Session.from_bytes(saved[0]), Session.from_bytes(saved[1]), script, restart=True
        )
    assert live == reloaded == restarted
    assert len(live[0]) > 40
    # The held-back messages still decrypt after all of it.
    b_final = Session.from_bytes(live[2])
    for envelope in held:
        assert b_final.decrypt(envelope) == b"held"


@pytest.mark.req("ST-01", "RAT-06", "RAT-07")
def test_largest_state_fits_and_round_trips() -> None:
    """Five receiving chains with MAX_SKIPPED_KEYS_PER_CHAIN skipped keys each."""
    a, b = established()
    for _ in range(MAX_RECEIVING_CHAINS):
        envelopes = [a.encrypt(b"") for _ in range(MAX_SKIPPED_KEYS_PER_CHAIN + 1)]
        assert b.decrypt(envelopes[-1]) == b""
        exchange(b, a, b"turn")
    chains = ratchet_state(b)[R_CHAINS]
    assert len(chains) == MAX_RECEIVING_CHAINS
    assert all(len(chain[3]) == 2 * MAX_SKIPPED_KEYS_PER_CHAIN for chain in chains)
    state = b.to_bytes()
    assert len(state) <= session_module.MAX_STATE_SIZE
    assert Session.from_bytes(state).to_bytes() == state


# --- ST-02 ---------------------------------------------------------------------------------------


@pytest.mark.req("ST-02")
@pytest.mark.parametrize("version", [SESSION_STATE_VERSION + 1, 1000, 2**16])
def test_state_of_a_newer_version_is_refused_naming_the_version(version: int) -> None:
    a, _b = established()
    fields = unpack(a.to_bytes())
    fields[0] = version
    with pytest.raises(StateError) as info:
        Session.from_bytes(pack(fields))
    assert str(version) in str(info.value)


@pytest.mark.req("ST-02")
def test_every_truncation_of_a_state_is_a_state_error() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"x"), now=0)
    for state in (a.to_bytes(), b.to_bytes()):
        for length in range(len(state)):
            with pytest.raises(StateError):
                Session.from_bytes(state[:length])
        with pytest.raises(StateError):
            Session.from_bytes(state + b"\x00")


def _corruptions(fields: list[Any]) -> dict[str, list[Any]]:
    ratchet = fields[7]

    def top(index: int, value: Any) -> list[Any]:
        changed = list(fields)
        changed[index] = value
        return changed

    def rat(index: int, value: Any, *more: tuple[int, Any]) -> list[Any]:
        changed = list(ratchet)
        for i, v in ((index, value), *more):
            changed[i] = v
        return top(7, changed)

    chain = ratchet[7][0]
    return {
        "too few fields": fields[:7],
        "too many fields": [*fields, None],
        "version negative": top(0, -1),
        "version as bytes": top(0, b"\x01"),
        "session id short": top(1, fields[1][:15]),
        "initiator flag as int": top(2, 1),
        "our identity short": top(3, fields[3][:128]),
        "peer identity nil": top(4, None),
        "peer identity of another version": top(4, b"\x02" + fields[4][1:]),
        "associated data short": top(5, fields[5][:31]),
        "pending fields of wrong count": top(6, [b"x"]),
        "ratchet as nil": top(7, None),
        "ratchet too short": top(7, ratchet[:7]),
        "root key short": rat(0, ratchet[0][:31]),
        "our ratchet key short": rat(1, b"\x00" * 31),
        "sending counter negative": rat(3, -1),
        "sending counter too large": rat(3, 2**33),
        "must-ratchet flag as int": rat(6, 0),
        "receiving chains nil": rat(7, None),
        "six receiving chains": rat(7, [chain] * 6),
        "chain of three fields": rat(7, [chain[:3]]),
        "chain key short": rat(7, [[chain[0], chain[1][:31], chain[2], chain[3]]]),
        "skipped key at next_n": rat(7, [[chain[0], chain[1], 1, [1, bytes(32)]]]),
        "skipped key short": rat(7, [[chain[0], chain[1], 5, [1, bytes(31)]]]),
        "neither sending chain nor peer key": rat(2, None, (5, None)),
    }


@pytest.mark.req("ST-02")
def test_structurally_corrupt_state_is_a_state_error() -> None:
    a, b = established()
    assert b.decrypt(a.encrypt(b"")) == b""
    fields = unpack(b.to_bytes())
    for name, corrupt in _corruptions(fields).items():
        with pytest.raises(StateError):
            Session.from_bytes(pack(corrupt))
        assert name
    for garbage in (b"", b"\x00", b"\xc1", b"\x90", b"\x81\x01\x02", b"\xa3abc", bytes(100)):
        with pytest.raises(StateError):
            Session.from_bytes(garbage)


@pytest.mark.req("ST-02")
@pytest.mark.parametrize("flat", [[1], [0, bytes(32), 1]], ids=["one item", "three items"])
def test_skipped_key_list_of_odd_length_is_a_state_error(flat: list[Any]) -> None:
    a, b = established()
    assert b.decrypt(a.encrypt(b"")) == b""
    fields = unpack(b.to_bytes())
    chain = fields[7][7][0]
    fields[7][7][0] = [chain[0], chain[1], 5, flat]
    with pytest.raises(StateError):
        Session.from_bytes(pack(fields))


@pytest.mark.req("ST-02")
def test_oversized_state_is_refused_before_parsing() -> None:
    with pytest.raises(StateError):
        Session.from_bytes(b"\x98" + bytes(session_module.MAX_STATE_SIZE))


@pytest.mark.req("ST-02")
def test_single_byte_corruption_never_raises_anything_but_typed_errors() -> None:
    """A flipped byte inside a key cannot be noticed without the store's authenticated
    encryption, so such a state may load; what it must never do is raise an untyped error, on
    load or on use."""
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    first = a.encrypt(b"one")
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"two"), now=0)
    reply = b.encrypt(b"reply")
    for state, envelope in ((a.to_bytes(), reply), (b.to_bytes(), first)):
        loaded = 0
        for index in range(len(state)):
            for mask in (0x01, 0x80):
                data = state[:index] + bytes([state[index] ^ mask]) + state[index + 1 :]
                try:
                    session = Session.from_bytes(data)
                except StateError:
                    continue
                loaded += 1
                with contextlib.suppress(EntrenousError):
                    session.decrypt(envelope)
                with contextlib.suppress(EntrenousError):
                    session.encrypt(b"x")
        assert loaded > 0  # key bytes did flip without detection: the loop exercised use


@pytest.mark.req("ST-02")
@pytest.mark.parametrize(
    "case", ["identity as int", "ephemeral short", "kem ciphertext short", "ids as bytes"]
)
def test_corrupt_pending_handshake_fields_are_a_state_error(case: str) -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    fields = unpack(a.to_bytes())
    initial = list(fields[6])
    if case == "identity as int":
        initial[0] = 5
    elif case == "ephemeral short":
        initial[1] = initial[1][:31]
    elif case == "kem ciphertext short":
        initial[5] = initial[5][:100]
    else:
        initial[2] = b"\x01"
    fields[6] = initial
    with pytest.raises(StateError):
        Session.from_bytes(pack(fields))


def test_from_bytes_refuses_non_bytes() -> None:
    a, _b = established()
    with pytest.raises(TypeError):
        Session.from_bytes(bytearray(a.to_bytes()))  # type: ignore[arg-type]


# --- API refusals --------------------------------------------------------------------------------


def test_envelope_of_another_conversation_is_a_usage_error() -> None:
    a, b = established()
    other_a, _other_b = established()
    foreign = other_a.encrypt(b"not yours")
    refused(lambda: b.decrypt(foreign), b.to_bytes, UsageError)
    refused(lambda: a.decrypt(foreign), a.to_bytes, UsageError)


def test_initial_envelope_of_a_new_conversation_is_not_for_the_old_session() -> None:
    parties = make_parties()
    a, b = start(parties)
    again = Session.initiate(parties.alice, parties.pool.issue_bundle(now=0))
    envelope = again.encrypt(b"new conversation")
    refused(lambda: b.decrypt(envelope), b.to_bytes, UsageError)
    b2, plaintext = Session.respond(parties.bob, parties.pool, envelope, now=0)
    assert plaintext == b"new conversation"
    assert b2.session_id != b.session_id
    assert a.session_id == b.session_id


def test_session_repr_shows_the_id_and_counters() -> None:
    a, b = established()
    for session, role in ((a, "initiator"), (b, "responder")):
        text = repr(session)
        assert session.session_id.hex() in text
        assert role in text
        assert str(session) == text
