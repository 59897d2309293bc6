"""Fuzz target: policy file parsing (``Policy.parse`` on arbitrary text).

The input is decoded as UTF-8 with ``surrogateescape`` (invalid bytes become lone surrogates,
which the parser must refuse too). Allowed: ``PolicyError`` only. An accepted policy must parse
again from its own text to the same fingerprint.
"""

import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.compliance.policy import Policy
    from entrenous.errors import PolicyError


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        policy = Policy.parse(text)
    except PolicyError as exc:
        str(exc)
        return
    if Policy.parse(policy.text).fingerprint != policy.fingerprint:
        raise AssertionError("an accepted policy does not parse again to the same rules")


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
