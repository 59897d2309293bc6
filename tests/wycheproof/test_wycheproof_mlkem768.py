"""Wycheproof ML-KEM-768 (FIPS 203) through :mod:`entrenous._primitives.kem`.

``mlkem_768_test.json`` (schema ``mlkem_test_schema.json``, groups of type ``MLKEMTest``; one group
from CCTV "strcmp", one from FIPS 203 tests). Each case has a 64-byte ``seed`` (``d || z``), the
expected encapsulation key ``ek``, a ciphertext ``c`` and the expected shared secret ``K``.
Policy per ``result``:

* ``valid``: ``KemPrivateKey.from_seed(seed)`` gives exactly ``ek`` (keygen) and
  ``decapsulate(c)`` gives exactly ``K`` (decaps). This includes the implicit-rejection cases
  (flag ``Strcmp``, "Random ciphertext", "Bit flipped ciphertext"), where ``K`` is the rejection
  secret: decapsulation must not raise and must return that exact value.
* ``invalid``: the file's invalid cases are all wrong sizes ("Private key too short/long": a seed
  that is not 64 bytes; "Ciphertext too short/long": not 1088 bytes). The wrapper refuses them as a
  programmer error, ``ValueError``, at the step that receives the wrong-size value (``from_seed``
  or ``decapsulate``). For the ciphertext cases keygen from the (valid) seed is checked too.
* ``acceptable``: the file has none; the test fails if one appears.

``mlkem_768_encaps_test.json`` (schema ``mlkem_encaps_test_schema.json``, type
``MLKEMEncapsTest``): ``ek``, the encapsulation randomness ``m`` and the expected ``c`` and ``K``.
cryptography does not expose encapsulation with a caller-chosen ``m`` (and our wrapper must not:
randomness comes from the CSPRNG), so the deterministic encapsulation output cannot be compared.
What is testable, and tested:

* ``invalid`` with a 1184-byte ``ek`` (flag ``ModulusOverflow``, and the FIPS 203 "Public key not
  reduced" cases): loading it through ``KemPublicKey.from_bytes`` raises
  :class:`~entrenous.errors.InvalidKey`: the FIPS 203 section 7.2 modulus check (PRIM-03).
* ``invalid`` with an ``ek`` that is not 1184 bytes: ``ValueError`` (programmer error).
* ``valid``: the key loads, round-trips through ``to_bytes``, and ``encapsulate`` works on it
  (sizes checked; the result decapsulates correctly when the matching seed is known). When the same
  ``ek`` appears in ``mlkem_768_test.json`` (130 of the 133 valid cases: the "official round 3
  seeds"), the private key is rebuilt from that seed and ``decapsulate(c)`` must give ``K``: this
  checks the vector's ``(c, K)`` pair against our decapsulation, the closest we can get to checking
  encapsulation with the given ``m``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from entrenous._primitives import kem
from entrenous._primitives.kem import KemPrivateKey, KemPublicKey
from entrenous.errors import InvalidKey

_DIR = Path(__file__).parent / "vectors"
_DECAPS: dict[str, Any] = json.loads((_DIR / "mlkem_768_test.json").read_text(encoding="utf-8"))
_ENCAPS: dict[str, Any] = json.loads(
    (_DIR / "mlkem_768_encaps_test.json").read_text(encoding="utf-8")
)
_DECAPS_CASES = [
    pytest.param(group, case, id=f"tc{case['tcId']}")
    for group in _DECAPS["testGroups"]
    for case in group["tests"]
]
_ENCAPS_CASES = [
    pytest.param(group, case, id=f"tc{case['tcId']}")
    for group in _ENCAPS["testGroups"]
    for case in group["tests"]
]

# ek (hex) -> seed (hex), from the keygen/decaps file, to rebuild private keys for the encaps file.
_SEED_FOR_EK = {
    case["ek"]: case["seed"]
    for group in _DECAPS["testGroups"]
    for case in group["tests"]
    if case["result"] == "valid"
}


@pytest.mark.req("PRIM-06")
def test_every_case_is_collected() -> None:
    assert len(_DECAPS_CASES) == _DECAPS["numberOfTests"]
    assert len(_ENCAPS_CASES) == _ENCAPS["numberOfTests"]
    assert {g["type"] for g in _DECAPS["testGroups"]} == {"MLKEMTest"}
    assert {g["type"] for g in _ENCAPS["testGroups"]} == {"MLKEMEncapsTest"}
    groups = _DECAPS["testGroups"] + _ENCAPS["testGroups"]
    assert {g["parameterSet"] for g in groups} == {"ML-KEM-768"}


@pytest.mark.req("PRIM-06")
@pytest.mark.parametrize(("group", "case"), _DECAPS_CASES)
def test_mlkem768_keygen_and_decaps(group: dict[str, Any], case: dict[str, Any]) -> None:
    # Fields a case does not need are absent (no "ek" for a wrong-size seed, no "K" if invalid).
    seed = bytes.fromhex(case["seed"])
    ciphertext = bytes.fromhex(case["c"])
    result = case["result"]
    assert result in ("valid", "invalid"), "no 'acceptable' ML-KEM policy: look at this case"

    if len(seed) != KemPrivateKey.SEED_SIZE:
        assert result == "invalid"
        with pytest.raises(ValueError, match="must be 64 bytes"):
            KemPrivateKey.from_seed(seed)
        return

    private = KemPrivateKey.from_seed(seed)
    assert private.public_key().to_bytes() == bytes.fromhex(case["ek"])  # keygen

    if len(ciphertext) != kem.CIPHERTEXT_SIZE:
        assert result == "invalid"
        with pytest.raises(ValueError, match="must be 1088 bytes"):
            private.decapsulate(ciphertext)
        return

    assert result == "valid", "an invalid ML-KEM case of the right sizes: look at this case"
    assert private.decapsulate(ciphertext) == bytes.fromhex(case["K"])  # decaps


@pytest.mark.req("PRIM-03", "PRIM-06")
@pytest.mark.parametrize(("group", "case"), _ENCAPS_CASES)
def test_mlkem768_encapsulation_key(group: dict[str, Any], case: dict[str, Any]) -> None:
    ek = bytes.fromhex(case["ek"])
    result = case["result"]
    assert result in ("valid", "invalid"), "no 'acceptable' ML-KEM policy: look at this case"

    if len(ek) != KemPublicKey.SIZE:
        assert result == "invalid"
        with pytest.raises(ValueError, match="must be 1184 bytes"):
            KemPublicKey.from_bytes(ek)
        return

    if result == "invalid":
        # PRIM-03: the FIPS 203 section 7.2 modulus check refuses the key.
        with pytest.raises(InvalidKey):
            KemPublicKey.from_bytes(ek)
        return

    public = KemPublicKey.from_bytes(ek)
    assert public.to_bytes() == ek
    shared, ciphertext = public.encapsulate()
    assert len(shared) == kem.SHARED_SECRET_SIZE
    assert len(ciphertext) == kem.CIPHERTEXT_SIZE

    seed = _SEED_FOR_EK.get(case["ek"])
    if seed is not None:
        private = KemPrivateKey.from_seed(bytes.fromhex(seed))
        assert private.decapsulate(bytes.fromhex(case["c"])) == bytes.fromhex(case["K"])
        assert private.decapsulate(ciphertext) == shared


@pytest.mark.req("PRIM-06")
def test_most_valid_encaps_keys_have_a_known_seed() -> None:
    """The cross-check above must actually run for the bulk of the valid encapsulation cases."""
    valid = [c for g in _ENCAPS["testGroups"] for c in g["tests"] if c["result"] == "valid"]
    known = [c for c in valid if c["ek"] in _SEED_FOR_EK]
    assert len(known) >= 130
