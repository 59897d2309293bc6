"""Wycheproof ChaCha20-Poly1305 (``chacha20_poly1305_test.json``) through our AEAD wrapper.

The wrapper is :mod:`entrenous._primitives.aead`.

Every group and every case runs through ``aead.seal`` / ``aead.open_``. Policy per ``result``:

* ``valid``: ``seal`` returns exactly ``ct || tag`` and ``open_`` returns exactly ``msg``.
* ``invalid`` with a nonce that is not 96 bits (flag ``InvalidNonceSize``): the wrapper refuses
  the call as a programmer error, ``ValueError``, for both ``seal`` and ``open_`` (the protocol
  only ever builds 12-byte nonces itself; a nonce never comes from the peer).
* any other ``invalid`` case (``ModifiedTag``): ``open_`` raises the opaque
  :class:`~entrenous.errors.AuthenticationError` (PRIM-04), always with the same message.
* ``acceptable``: the file has none; the test fails if one appears so the policy gets revisited.
"""

from __future__ import annotations

from typing import Any

import pytest
from wycheproof_support import load

from entrenous._primitives import aead
from entrenous.errors import AuthenticationError

_DATA, _CASES = load("chacha20_poly1305_test.json")


@pytest.mark.req("PRIM-06")
def test_every_case_is_collected() -> None:
    assert len(_CASES) == _DATA["numberOfTests"]
    assert {g["type"] for g in _DATA["testGroups"]} == {"AeadTest"}
    assert {(g["keySize"], g["tagSize"]) for g in _DATA["testGroups"]} == {(256, 128)}


@pytest.mark.req("PRIM-04", "PRIM-06")
@pytest.mark.parametrize(("group", "case"), _CASES)
def test_chacha20_poly1305(group: dict[str, Any], case: dict[str, Any]) -> None:
    key = bytes.fromhex(case["key"])
    nonce = bytes.fromhex(case["iv"])
    aad = bytes.fromhex(case["aad"])
    msg = bytes.fromhex(case["msg"])
    sealed = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
    assert len(nonce) * 8 == group["ivSize"]

    if case["result"] == "valid":
        assert aead.seal(key, nonce, msg, aad) == sealed
        assert aead.open_(key, nonce, sealed, aad) == msg
        return

    assert case["result"] == "invalid", "no 'acceptable' AEAD policy: look at this case"
    if len(nonce) != aead.NONCE_SIZE:
        assert "InvalidNonceSize" in case["flags"]
        with pytest.raises(ValueError, match="nonce must be 12 bytes"):
            aead.seal(key, nonce, msg, aad)
        with pytest.raises(ValueError, match="nonce must be 12 bytes"):
            aead.open_(key, nonce, sealed, aad)
        return

    with pytest.raises(AuthenticationError) as excinfo:
        aead.open_(key, nonce, sealed, aad)
    assert str(excinfo.value) == str(AuthenticationError())
