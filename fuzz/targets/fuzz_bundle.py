"""Fuzz target: prekey bundle parsing and verification (``PrekeyBundle.from_bytes``).

The first byte picks the mode:

* 0: the rest is the bundle, as a directory would serve it;
* 1: the rest is a bundle without its signature; the harness signs it with bob's identity key
  (whose public identity the seeds carry), so that mutations get past the signature to the
  checks behind it (low-order X25519 keys, the ML-KEM modulus check, the fields' order).

Allowed: the library's own errors (``EntrenousError``). An accepted bundle must round-trip.
"""

import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.errors import EntrenousError
    from entrenous.protocol import wire
    from entrenous.protocol.bundle import PrekeyBundle
    from entrenous.protocol.constants import LABEL_BUNDLE_SIGNATURE

BOB = fuzzlib.protocol_world().bob


def test_one_input(data: bytes) -> None:
    if not data:
        return
    bundle = data[1:]
    if data[0] % 2:
        bundle += wire.pack(BOB._sign(LABEL_BUNDLE_SIGNATURE + bundle))
    try:
        parsed = PrekeyBundle.from_bytes(bundle)
    except EntrenousError:
        return
    if parsed.to_bytes() != bundle:
        raise AssertionError("an accepted bundle does not round-trip")
    repr(parsed)


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
