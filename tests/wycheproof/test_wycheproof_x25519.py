"""Wycheproof X25519 (``x25519_test.json``) through :mod:`entrenous._primitives.dh`.

Every group and every case runs through our wrapper, ``X25519PrivateKey.exchange``, never through
the raw library. Policy per ``result`` and ``flags``:

* ``valid``: the exchange must return exactly ``shared``.
* ``acceptable`` with flag ``ZeroSharedSecret`` (low-order public points, RFC 7748 section 6.1):
  the exchange MUST raise :class:`~entrenous.errors.InvalidKey` (PRIM-01). The protocol never feeds
  an all-zero value into a KDF. (cryptography's own tests/wycheproof/test_x25519.py likewise asserts
  that these cases raise.)
* every other ``acceptable`` case (``Twist``, ``NonCanonicalPublic``, ``SpecialPublicKey``,
  ``EdgeCase*``, ``Ktv``): we accept the key and the exchange must return the RFC 7748 answer,
  ``shared``. RFC 7748 section 5 masks the top bit of the u-coordinate and section 7 recommends
  accepting non-canonical values; points on the twist are harmless for X25519 provided the result
  is computed correctly, which is what ``shared`` checks.
* ``invalid`` (the file currently has none): the exchange must raise ``InvalidKey``.
"""

from __future__ import annotations

from typing import Any

import pytest
from wycheproof_support import load

from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous.errors import InvalidKey

_DATA, _CASES = load("x25519_test.json")

# The flags this policy was written for; a new upstream flag must be looked at, not silently passed.
_KNOWN_FLAGS = {
    "EdgeCaseMultiplication",
    "EdgeCasePrivateKey",
    "EdgeCaseShared",
    "Ktv",
    "LowOrderPublic",
    "NonCanonicalPublic",
    "Normal",
    "SmallPublicKey",
    "SpecialPublicKey",
    "Twist",
    "ZeroSharedSecret",
}


@pytest.mark.req("PRIM-06")
def test_every_case_is_collected() -> None:
    assert len(_CASES) == _DATA["numberOfTests"]
    assert {g["type"] for g in _DATA["testGroups"]} == {"XdhComp"}
    assert {g["curve"] for g in _DATA["testGroups"]} == {"curve25519"}
    assert {f for g in _DATA["testGroups"] for t in g["tests"] for f in t["flags"]} <= _KNOWN_FLAGS


@pytest.mark.req("PRIM-01", "PRIM-06")
@pytest.mark.parametrize(("group", "case"), _CASES)
def test_x25519(group: dict[str, Any], case: dict[str, Any]) -> None:
    private = X25519PrivateKey.from_bytes(bytes.fromhex(case["private"]))
    public = X25519PublicKey.from_bytes(bytes.fromhex(case["public"]))
    shared = bytes.fromhex(case["shared"])
    result = case["result"]

    if result == "invalid" or "ZeroSharedSecret" in case["flags"]:
        # PRIM-01: a low-order peer point giving an all-zero output is refused.
        if "ZeroSharedSecret" in case["flags"]:
            assert shared == bytes(32), "vector says zero shared secret but is not all zero"
        with pytest.raises(InvalidKey):
            private.exchange(public)
        return

    assert result in ("valid", "acceptable")
    assert shared != bytes(32)
    assert private.exchange(public) == shared
