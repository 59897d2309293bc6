"""Wycheproof Ed25519 (``ed25519_test.json``) through :mod:`entrenous._primitives.sign`.

Every group and every case runs through ``VerifyKey.verify``. Policy per ``result``:

* ``valid``: verification succeeds (returns ``None``).
* ``invalid``: verification raises the opaque :class:`~entrenous.errors.AuthenticationError`
  (PRIM-02), whatever the cause: a wrong signature, a malleable (non-canonical S) signature, an
  invalid encoding, or a signature of the wrong length (truncated, compressed, trailing garbage).
  A wrong-length signature is peer input, not a programmer error, so it is an
  ``AuthenticationError`` too, never a ``ValueError``.
* ``acceptable``: the file has none; the test fails if one appears so the policy gets revisited.
"""

from __future__ import annotations

from typing import Any

import pytest
from wycheproof_support import load

from entrenous._primitives.sign import VerifyKey
from entrenous.errors import AuthenticationError

_DATA, _CASES = load("ed25519_test.json")


@pytest.mark.req("PRIM-06")
def test_every_case_is_collected() -> None:
    assert len(_CASES) == _DATA["numberOfTests"]
    assert {g["type"] for g in _DATA["testGroups"]} == {"EddsaVerify"}
    assert {g["publicKey"]["curve"] for g in _DATA["testGroups"]} == {"edwards25519"}


@pytest.mark.req("PRIM-02", "PRIM-06")
@pytest.mark.parametrize(("group", "case"), _CASES)
def test_ed25519_verify(group: dict[str, Any], case: dict[str, Any]) -> None:
    key = VerifyKey.from_bytes(bytes.fromhex(group["publicKey"]["pk"]))
    message = bytes.fromhex(case["msg"])
    signature = bytes.fromhex(case["sig"])

    if case["result"] == "valid":
        assert key.verify(signature, message) is None
        return

    assert case["result"] == "invalid", "no 'acceptable' Ed25519 policy: look at this case"
    with pytest.raises(AuthenticationError) as excinfo:
        key.verify(signature, message)
    # Opaque: the message is the one generic text, whatever the cause.
    assert str(excinfo.value) == str(AuthenticationError())
