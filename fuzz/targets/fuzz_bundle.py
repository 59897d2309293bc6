"""Fuzz target: prekey bundle parsing and verification (``PrekeyBundle.from_bytes``).

Allowed: the library's own errors (``EntrenousError``). An accepted bundle must round-trip and
be usable to start a session.
"""

import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.errors import EntrenousError
    from entrenous.protocol.bundle import PrekeyBundle


def test_one_input(data: bytes) -> None:
    try:
        bundle = PrekeyBundle.from_bytes(data)
    except EntrenousError:
        return
    if bundle.to_bytes() != data:
        raise AssertionError("an accepted bundle does not round-trip")
    repr(bundle)


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
