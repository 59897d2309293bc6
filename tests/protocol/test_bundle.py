"""Prekey bundles: format, signature, version and strict parsing (BUN-01..BUN-03).

Every single-byte change and truncation (BUN-04) is in test_mutations.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from protocol_support import make_parties, pack, sign_bundle, unpack

from entrenous._primitives.kem import KemPrivateKey
from entrenous.errors import (
    AuthenticationError,
    InvalidKey,
    MalformedBundle,
    UnsupportedVersion,
)
from entrenous.protocol import Identity, PrekeyBundle, PrekeyPool, Session
from entrenous.protocol import bundle as bundle_module
from entrenous.protocol.bundle import MAX_BUNDLE_SIZE
from entrenous.protocol.constants import LABEL_BUNDLE_SIGNATURE

# Field positions of a bundle (spec/bundle.md).
B_VERSION, B_IDENTITY, B_SPK_ID, B_SPK, B_OPK_ID, B_OPK, B_KEM_ID, B_KEM, B_LAST, B_SIG = range(10)


def resigned(owner: Identity, bundle: bytes, changes: dict[int, Any]) -> bytes:
    """``bundle`` with some fields replaced, signed again by ``owner`` (so only the change can
    make it fail)."""
    fields = unpack(bundle)[:B_SIG]
    for index, value in changes.items():
        fields[index] = value
    return sign_bundle(owner._sign, [pack(f) for f in fields])


@pytest.fixture(scope="module")
def owner_and_bundle() -> tuple[Identity, PrekeyPool, bytes]:
    parties = make_parties()
    return parties.bob, parties.pool, parties.bundle


# --- format and signature (BUN-01) -----------------------------------------------------------


@pytest.mark.req("BUN-01", "PK-01")
def test_issued_bundle_parses_with_the_documented_fields_and_size(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    owner, _pool, raw = owner_and_bundle
    bundle = PrekeyBundle.from_bytes(raw)
    assert len(raw) == 1458
    assert bundle.to_bytes() == raw
    assert bundle.identity == owner.public
    assert bundle.one_time_prekey is not None
    assert bundle.one_time_prekey_id is not None
    assert bundle.kem_last_resort is False
    fields = unpack(raw)
    assert len(fields) == 10
    assert fields[B_VERSION] == 1
    assert fields[B_IDENTITY] == owner.public.to_bytes()
    assert fields[B_SPK_ID] == bundle.signed_prekey_id
    assert fields[B_SPK] == bundle.signed_prekey.to_bytes()
    assert fields[B_OPK_ID] == bundle.one_time_prekey_id
    assert fields[B_OPK] == bundle.one_time_prekey.to_bytes()
    assert fields[B_KEM_ID] == bundle.kem_prekey_id
    assert fields[B_KEM] == bundle.kem_prekey.to_bytes()
    assert len(fields[B_KEM]) == 1184
    assert fields[B_LAST] is False
    assert len(fields[B_SIG]) == 64


@pytest.mark.req("BUN-01")
def test_last_resort_bundle_has_no_one_time_prekey_and_is_1425_bytes() -> None:
    parties = make_parties(last_resort=True)
    bundle = PrekeyBundle.from_bytes(parties.bundle)
    assert len(parties.bundle) == 1425
    assert bundle.one_time_prekey is None
    assert bundle.one_time_prekey_id is None
    assert bundle.kem_last_resort is True


@pytest.mark.req("BUN-01")
def test_signature_covers_label_and_every_byte_before_it(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    owner, _pool, raw = owner_and_bundle
    # An independent encoder, following spec/bundle.md, reproduces the bundle byte for byte
    # (Ed25519 signatures are deterministic).
    encoded = [pack(f) for f in unpack(raw)[:B_SIG]]
    assert sign_bundle(owner._sign, encoded) == raw
    owner.public.verify_key.verify(raw[-64:], LABEL_BUNDLE_SIGNATURE + raw[:-66])
    assert raw[-66:-64] == b"\xc4\x40"


@pytest.mark.req("BUN-01")
def test_bundle_signed_by_another_key_or_without_the_label_is_refused(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    _owner, _pool, raw = owner_and_bundle
    encoded = [pack(f) for f in unpack(raw)[:B_SIG]]
    other = Identity.generate()
    by_other = sign_bundle(other._sign, encoded)
    prefix = raw[:-66]
    no_label = prefix + pack(_owner._sign(prefix))
    zero_signature = prefix + pack(bytes(64))
    for bad in (by_other, no_label, zero_signature):
        with pytest.raises(AuthenticationError):
            PrekeyBundle.from_bytes(bad)
        with pytest.raises(AuthenticationError):
            Session.initiate(Identity.generate(), bad)


@pytest.mark.req("BUN-01")
def test_substituting_another_identity_into_a_bundle_is_refused(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    _owner, _pool, raw = owner_and_bundle
    mallory = Identity.generate()
    # Mallory's identity with Bob's prekeys, still carrying Bob's signature: refused.
    swapped = unpack(raw)
    swapped[B_IDENTITY] = mallory.public.to_bytes()
    with pytest.raises(AuthenticationError):
        PrekeyBundle.from_bytes(pack(swapped))
    # Signed by Mallory it is a valid bundle, but of Mallory's identity, not Bob's.
    own = resigned(mallory, raw, {B_IDENTITY: mallory.public.to_bytes()})
    assert PrekeyBundle.from_bytes(own).identity == mallory.public


@pytest.mark.req("BUN-01")
def test_every_field_is_signed(owner_and_bundle: tuple[Identity, PrekeyPool, bytes]) -> None:
    _owner, _pool, raw = owner_and_bundle
    fields = unpack(raw)
    other_spk = make_parties().bundle
    replacements: dict[int, Any] = {
        B_SPK_ID: fields[B_SPK_ID] + 100,
        B_SPK: unpack(other_spk)[B_SPK],
        B_OPK_ID: fields[B_OPK_ID] + 100,
        B_OPK: unpack(other_spk)[B_OPK],
        B_KEM_ID: fields[B_KEM_ID] + 100,
        B_KEM: unpack(other_spk)[B_KEM],
        B_LAST: True,
    }
    for index, value in replacements.items():
        changed = list(fields)
        changed[index] = value
        with pytest.raises(AuthenticationError):
            PrekeyBundle.from_bytes(pack(changed))


# --- version (BUN-02) ----------------------------------------------------------------------------


@pytest.mark.req("BUN-02")
@pytest.mark.parametrize("version", [0, 2, 127, 255])
def test_bundle_of_unknown_version_is_refused_even_when_validly_signed(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes], version: int
) -> None:
    owner, _pool, raw = owner_and_bundle
    bad = resigned(owner, raw, {B_VERSION: version})
    with pytest.raises(UnsupportedVersion) as info:
        PrekeyBundle.from_bytes(bad)
    assert info.value.version == version
    with pytest.raises(UnsupportedVersion):
        Session.initiate(Identity.generate(), bad)


# --- strict parsing (BUN-03) ---------------------------------------------------------------------


@pytest.mark.req("BUN-03")
def test_oversized_bundle_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_parse(*args: object, **kwargs: object) -> list[Any]:
        raise AssertionError("an oversized bundle was parsed")

    monkeypatch.setattr(bundle_module.wire, "unpack_array", must_not_parse)
    with pytest.raises(MalformedBundle):
        PrekeyBundle.from_bytes(b"\x9a" + bytes(MAX_BUNDLE_SIZE))


@pytest.mark.req("BUN-03")
def test_bundle_with_trailing_bytes_is_refused(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    _owner, _pool, raw = owner_and_bundle
    for tail in (b"\x00", b"\xc0", raw):
        with pytest.raises(MalformedBundle):
            PrekeyBundle.from_bytes(raw + tail)


def _field_cases(raw: bytes) -> dict[str, dict[int, Any]]:
    fields = unpack(raw)
    return {
        "identity too short": {B_IDENTITY: fields[B_IDENTITY][:-1]},
        "identity as int": {B_IDENTITY: 5},
        "signed prekey id negative": {B_SPK_ID: -1},
        "signed prekey id above uint32": {B_SPK_ID: 2**32},
        "signed prekey id as bytes": {B_SPK_ID: b"\x01"},
        "signed prekey id as bool": {B_SPK_ID: True},
        "signed prekey 31 bytes": {B_SPK: fields[B_SPK][:31]},
        "signed prekey 33 bytes": {B_SPK: fields[B_SPK] + b"\x00"},
        "signed prekey nil": {B_SPK: None},
        "one-time id without key": {B_OPK: None},
        "one-time key without id": {B_OPK_ID: None},
        "one-time key 31 bytes": {B_OPK: fields[B_OPK][:31]},
        "one-time id above uint32": {B_OPK_ID: 2**32},
        "kem id as nil": {B_KEM_ID: None},
        "kem key short": {B_KEM: fields[B_KEM][:-1]},
        "kem key long": {B_KEM: fields[B_KEM] + b"\x00"},
        "last resort as int": {B_LAST: 0},
        "last resort as nil": {B_LAST: None},
    }


@pytest.mark.req("BUN-03")
def test_bundle_fields_of_wrong_type_or_size_are_malformed_even_when_signed(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    owner, _pool, raw = owner_and_bundle
    for name, changes in _field_cases(raw).items():
        bad = resigned(owner, raw, changes)
        with pytest.raises(MalformedBundle):
            PrekeyBundle.from_bytes(bad)
        assert name  # the case names document the list above


@pytest.mark.req("BUN-03")
def test_bundle_signature_of_wrong_size_or_type_is_malformed(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    _owner, _pool, raw = owner_and_bundle
    fields = unpack(raw)
    for signature in (fields[B_SIG][:63], fields[B_SIG] + b"\x00", None, 7):
        with pytest.raises(MalformedBundle):
            PrekeyBundle.from_bytes(pack([*fields[:B_SIG], signature]))


@pytest.mark.req("BUN-03")
@pytest.mark.parametrize("count", [1, 9, 11])
def test_bundle_with_wrong_field_count_is_malformed(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes], count: int
) -> None:
    owner, _pool, raw = owner_and_bundle
    fields = unpack(raw)[:B_SIG]
    encoded = [pack(f) for f in ([*fields, b"extra"])[: count - 1]]
    with pytest.raises(MalformedBundle):
        PrekeyBundle.from_bytes(sign_bundle(owner._sign, encoded))


@pytest.mark.req("BUN-03")
def test_bundle_with_non_canonical_encoding_is_malformed_even_when_signed(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    owner, _pool, raw = owner_and_bundle
    fields = unpack(raw)[:B_SIG]
    encoded = [pack(f) for f in fields]
    spk_id = fields[B_SPK_ID]
    assert spk_id < 128
    long_forms: dict[str, tuple[int, bytes]] = {
        "uint8 for a fixint": (B_SPK_ID, b"\xcc" + bytes([spk_id])),
        "uint32 for a fixint": (B_SPK_ID, b"\xce" + spk_id.to_bytes(4, "big")),
        "bin16 for a bin8": (B_SPK, b"\xc5\x00\x20" + fields[B_SPK]),
        "bin32 for a bin16": (
            B_KEM,
            b"\xc6" + len(fields[B_KEM]).to_bytes(4, "big") + fields[B_KEM],
        ),
        "str for a bin": (B_SPK, b"\xd9\x20" + fields[B_SPK]),
        "uint8 for the version": (B_VERSION, b"\xcc\x01"),
    }
    for name, (index, form) in long_forms.items():
        changed = list(encoded)
        changed[index] = form
        bad = sign_bundle(owner._sign, changed)
        with pytest.raises(MalformedBundle):
            PrekeyBundle.from_bytes(bad)
        assert name
    # array16 header instead of fixarray for the ten elements
    prefix = b"\xdc\x00\x0a" + b"".join(encoded)
    with pytest.raises(MalformedBundle):
        PrekeyBundle.from_bytes(prefix + pack(owner._sign(LABEL_BUNDLE_SIGNATURE + prefix)))


@pytest.mark.req("BUN-03")
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc0",
        b"\x01",
        b"\x90",
        b"\x80",  # empty map
        b"\xa3abc",  # str
        b"\xcb" + bytes(8),  # float
        b"\xd4\x01\x00",  # ext
        b"\x91\x91\x01",  # nested array
        b"\x92\x01\x80",  # map inside
    ],
)
def test_bundle_that_is_not_a_flat_array_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedBundle):
        PrekeyBundle.from_bytes(data)


def test_bundle_refuses_non_bytes(owner_and_bundle: tuple[Identity, PrekeyPool, bytes]) -> None:
    with pytest.raises(TypeError):
        PrekeyBundle.from_bytes(bytearray(owner_and_bundle[2]))  # type: ignore[arg-type]


@pytest.mark.req("BUN-01")
def test_signed_kem_key_failing_the_modulus_check_is_refused_with_invalid_key(
    owner_and_bundle: tuple[Identity, PrekeyPool, bytes],
) -> None:
    owner, _pool, raw = owner_and_bundle
    kem = bytearray(KemPrivateKey.generate().public_key().to_bytes())
    kem[0] = 0xFF
    kem[1] |= 0x0F  # first 12-bit coefficient = 4095 >= q
    bad = resigned(owner, raw, {B_KEM: bytes(kem)})
    with pytest.raises(InvalidKey):
        PrekeyBundle.from_bytes(bad)


def test_bundle_repr_shows_ids_only(owner_and_bundle: tuple[Identity, PrekeyPool, bytes]) -> None:
    _owner, _pool, raw = owner_and_bundle
    bundle = PrekeyBundle.from_bytes(raw)
    text = repr(bundle)
    assert str(bundle.signed_prekey_id) in text
    assert bundle.kem_prekey.to_bytes()[4:12].hex() not in text
    assert len(text) < 300
