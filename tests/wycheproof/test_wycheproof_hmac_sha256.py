"""Wycheproof HMAC-SHA256 (``hmac_sha256_test.json``) through our HMAC wrapper.

Every group and every case runs through :func:`entrenous._primitives.kdf.hmac_sha256`. The
wrapper always returns the full 32-byte tag; groups with ``tagSize`` < 256 bits test a truncated
tag, so the comparison is on the first ``tagSize / 8`` bytes, done with the wrapper's
``constant_time_equal``. Policy per ``result``:

* ``valid``: the (prefix of the) computed tag equals ``tag``.
* ``invalid`` (``ModifiedTag``): the (prefix of the) computed tag differs from ``tag``: a verifier
  comparing the two would reject it.
* ``acceptable``: the file has none; the test fails if one appears so the policy gets revisited.
"""

from __future__ import annotations

from typing import Any

import pytest
from wycheproof_support import load

from entrenous._primitives.kdf import constant_time_equal, hmac_sha256

_DATA, _CASES = load("hmac_sha256_test.json")


@pytest.mark.req("PRIM-06")
def test_every_case_is_collected() -> None:
    assert len(_CASES) == _DATA["numberOfTests"]
    assert {g["type"] for g in _DATA["testGroups"]} == {"MacTest"}
    assert {g["tagSize"] for g in _DATA["testGroups"]} == {128, 256}


@pytest.mark.req("PRIM-06")
@pytest.mark.parametrize(("group", "case"), _CASES)
def test_hmac_sha256(group: dict[str, Any], case: dict[str, Any]) -> None:
    key = bytes.fromhex(case["key"])
    msg = bytes.fromhex(case["msg"])
    tag = bytes.fromhex(case["tag"])
    assert len(key) * 8 == group["keySize"]

    full = hmac_sha256(key, msg)
    assert len(full) == 32
    computed = full[: group["tagSize"] // 8]

    if case["result"] == "valid":
        assert len(tag) * 8 == group["tagSize"]
        assert constant_time_equal(computed, tag)
        return

    assert case["result"] == "invalid", "no 'acceptable' HMAC policy: look at this case"
    assert not constant_time_equal(computed, tag)
