"""Fuzz target: envelope parsing and decryption in a real, established session.

Every input goes to ``parse_envelope`` and to ``Session.decrypt`` of bob's saved session (loaded
fresh for each input, so inputs do not depend on each other). Allowed: the library's own errors
(``EntrenousError``); the peer's bytes must never raise anything else.
"""

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.errors import EntrenousError
    from entrenous.protocol.envelope import parse_envelope
    from entrenous.protocol.session import Session

STATE = fuzzlib.protocol_world().bob_state


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(EntrenousError):
        parse_envelope(data)
    session = Session.from_bytes(STATE)
    before = session.to_bytes()
    try:
        session.decrypt(data)
    except EntrenousError:
        # A refused envelope leaves the session unchanged (RAT-08).
        if session.to_bytes() != before:
            raise AssertionError("a refused envelope changed the session state") from None


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
