"""Wycheproof HKDF-SHA256 (``hkdf_sha256_test.json``) through our HKDF wrapper.

Every group and every case runs through :func:`entrenous._primitives.kdf.hkdf_sha256`, never
through cryptography's HKDF directly. Policy per ``result``:

* ``valid`` with a non-empty ``info``: the wrapper returns exactly ``okm``.
* ``valid`` with an empty ``info``: our wrapper refuses the call with ``ValueError`` (PRIM-05: every
  HKDF use carries a non-empty label unique to that use). These vectors' outputs are therefore not
  checked here; the derivation itself is the same code path as the non-empty-info cases, and the
  RFC 5869 test case 3 (empty salt and info) is checked against cryptography directly in
  tests/primitives/test_rfc_vectors.py.
* ``invalid`` (flag ``SizeTooLarge``: more than 255 * 32 output bytes): ``ValueError``, a
  programmer error (the protocol only asks for fixed small lengths).
* ``acceptable``: the file has none; the test fails if one appears so the policy gets revisited.
"""

from __future__ import annotations

from typing import Any

import pytest
from wycheproof_support import load

from entrenous._primitives.kdf import hkdf_sha256

_DATA, _CASES = load("hkdf_sha256_test.json")


@pytest.mark.req("PRIM-06")
def test_every_case_is_collected() -> None:
    assert len(_CASES) == _DATA["numberOfTests"]
    assert {g["type"] for g in _DATA["testGroups"]} == {"HkdfTest"}


@pytest.mark.req("PRIM-05", "PRIM-06")
@pytest.mark.parametrize(("group", "case"), _CASES)
def test_hkdf_sha256(group: dict[str, Any], case: dict[str, Any]) -> None:
    ikm = bytes.fromhex(case["ikm"])
    salt = bytes.fromhex(case["salt"])
    info = bytes.fromhex(case["info"])
    size = case["size"]
    assert len(ikm) * 8 == group["keySize"]

    if not info:
        # PRIM-05: the wrapper refuses an empty info label, whatever the rest of the input.
        assert case["result"] == "valid"
        with pytest.raises(ValueError, match="info label"):
            hkdf_sha256(ikm, salt=salt, info=info, length=size)
        return

    if case["result"] == "valid":
        okm = bytes.fromhex(case["okm"])
        assert len(okm) == size
        assert hkdf_sha256(ikm, salt=salt, info=info, length=size) == okm
        return

    assert case["result"] == "invalid", "no 'acceptable' HKDF policy: look at this case"
    assert "SizeTooLarge" in case["flags"]
    assert size > 255 * 32
    with pytest.raises(ValueError):
        hkdf_sha256(ikm, salt=salt, info=info, length=size)


@pytest.mark.req("PRIM-05", "PRIM-06")
def test_the_file_exercises_both_paths() -> None:
    """Guard against a vector update that would leave one of the two branches above untested."""
    cases = [c for g in _DATA["testGroups"] for c in g["tests"]]
    with_info = [c for c in cases if c["info"] and c["result"] == "valid"]
    without_info = [c for c in cases if not c["info"]]
    assert len(with_info) >= 40
    assert len(without_info) >= 20
