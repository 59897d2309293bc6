"""Fuzz target: the handshake's initial message (``Session.respond`` with a real prekey pool).

Each input is handed to bob, with his real pool (loaded fresh for each input), as the first
envelope of a conversation. The first byte picks the mode:

* 0: the rest is the envelope, as the network delivers it;
* 1: the same, but when the rest is a well-formed initial envelope the harness first writes the
  session id its identity and ephemeral key give, so that mutations of those fields get past the
  session id check to the key agreement behind it (an attacker can always compute that id).

Allowed: the library's own errors (``EntrenousError``); a refused initial message must leave the
pool unchanged (HS-06).
"""

import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.errors import EntrenousError
    from entrenous.protocol import handshake
    from entrenous.protocol.envelope import parse_envelope
    from entrenous.protocol.identity import PublicIdentity
    from entrenous.protocol.prekeys import PrekeyPool
    from entrenous.protocol.session import Session

WORLD = fuzzlib.protocol_world()
_SID = slice(5, 21)  # fixarray, version, kind, bin8 header: the session id's 16 bytes follow


def _with_session_id(envelope: bytes) -> bytes:
    try:
        parsed = parse_envelope(envelope)
        if parsed.initial is None:
            return envelope
        initiator = PublicIdentity.from_bytes(parsed.initial.identity)
    except EntrenousError:
        return envelope
    sid = handshake.session_id_for(initiator, WORLD.bob.public, parsed.initial.ephemeral)
    return envelope[: _SID.start] + sid + envelope[_SID.stop :]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    envelope = _with_session_id(data[1:]) if data[0] % 2 else data[1:]
    pool = PrekeyPool.from_bytes(WORLD.pool_before, WORLD.bob)
    try:
        session, _ = Session.respond(WORLD.bob, pool, envelope, now=fuzzlib.NOW)
    except EntrenousError:
        if pool.to_bytes() != WORLD.pool_before:
            raise AssertionError("a refused initial message changed the prekey pool") from None
        return
    Session.from_bytes(session.to_bytes())


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
