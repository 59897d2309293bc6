"""Fuzz target: the handshake's initial message (``Session.respond`` with a real prekey pool).

Each input is handed to bob, with his real pool (loaded fresh for each input), as the first
envelope of a conversation. Allowed: the library's own errors (``EntrenousError``); a refused
initial message must leave the pool unchanged (HS-06).
"""

import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.errors import EntrenousError
    from entrenous.protocol.prekeys import PrekeyPool
    from entrenous.protocol.session import Session

WORLD = fuzzlib.protocol_world()


def test_one_input(data: bytes) -> None:
    pool = PrekeyPool.from_bytes(WORLD.pool_before, WORLD.bob)
    try:
        session, _ = Session.respond(WORLD.bob, pool, data, now=fuzzlib.NOW)
    except EntrenousError:
        if pool.to_bytes() != WORLD.pool_before:
            raise AssertionError("a refused initial message changed the prekey pool") from None
        return
    Session.from_bytes(session.to_bytes())


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
