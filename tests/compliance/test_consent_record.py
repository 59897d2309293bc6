"""Consent records: format (CON-04), signature and canonical bytes (CON-05), verification and
forgery attempts (CON-06), answering and withdrawing (CON-07)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from consent_support import (
    DAY,
    NOW,
    SUBJECT_MARKER,
    given,
    make_request,
    other_identity,
    record_content,
    subject_identity,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, settings
from hypothesis import given as hypothesis_given
from hypothesis import strategies as st

from entrenous.compliance import consent
from entrenous.compliance.consent import (
    LABEL_CONSENT_LEDGER,
    LABEL_CONSENT_RECORD,
    MAX_CLOCK_SKEW_MS,
    MAX_RECORD_SIZE,
    MAX_SUBJECT_BYTES,
    NOTICE_VERSION_PATTERN,
    PURPOSE_PATTERN,
    ConsentRecord,
    canonical_json,
)
from entrenous.errors import (
    AuthenticationError,
    ConsentSignatureInvalid,
    InvalidConsentRecord,
    PeerError,
)
from entrenous.protocol import constants

RECORD_FIELDS = {
    "type",
    "version",
    "record_id",
    "request_id",
    "subject",
    "subject_identity",
    "controller",
    "purpose",
    "legal_basis",
    "notice_version",
    "notice_sha256",
    "method",
    "state",
    "at",
    "expires_at",
    "signature",
}


def recorded(**overrides: Any) -> ConsentRecord:
    fields: dict[str, Any] = {
        "state": "given",
        "controller": "Bank",
        "purpose": "marketing",
        "notice_version": "2025-11",
        "notice_sha256": bytes(32),
        "at_ms": NOW,
        "subject": "cust-1",
    }
    fields.update(overrides)
    return ConsentRecord.recorded(**fields)


# --- CON-04: the format --------------------------------------------------------------------------


@pytest.mark.req("CON-04")
def test_a_signed_record_has_exactly_the_documented_fields() -> None:
    request = make_request()
    record = given(request)
    content = record.to_content()
    assert set(content) == RECORD_FIELDS
    assert content["type"] == "entrenous/consent-record"
    assert content["version"] == 1
    assert content["method"] == "in-band signed"
    assert content["state"] == "given"
    assert content["subject_identity"] == subject_identity().public.to_bytes().hex()
    assert len(bytes.fromhex(content["signature"])) == 64
    assert content["request_id"] == request.request_id.hex()
    assert content["notice_sha256"] == request.notice_sha256.hex()
    assert ConsentRecord.from_content(json.loads(record.to_bytes())) == record


@pytest.mark.req("CON-04")
def test_a_recorded_record_is_unsigned_and_round_trips() -> None:
    record = recorded(expires_at=NOW + DAY)
    content = record.to_content()
    assert content["method"] == "recorded by controller"
    assert content["signature"] is None
    assert content["subject_identity"] is None
    assert ConsentRecord.from_bytes(record.to_bytes()) == record


def _identity_hex_with_bad_binding() -> str:
    raw = bytearray(subject_identity().public.to_bytes())
    raw[-1] ^= 1
    return raw.hex()


BAD_RECORD_FIELDS: list[tuple[str, Any]] = [
    ("type", "entrenous/consent-request"),
    ("version", 0),
    ("version", 1.0),
    ("record_id", "00" * 15),
    ("record_id", "AA" * 16),
    ("record_id", None),
    ("request_id", "00" * 17),
    ("request_id", 5),
    ("subject", ""),
    ("subject", "x" * (MAX_SUBJECT_BYTES + 1)),
    ("subject", "new\nline"),
    ("subject", 3),
    ("subject_identity", "00" * 128),
    ("subject_identity", "02" + "00" * 128),
    ("subject_identity", _identity_hex_with_bad_binding()),
    ("subject_identity", 1),
    ("controller", ""),
    ("controller", None),
    ("purpose", "MARKETING"),
    ("purpose", None),
    ("legal_basis", "contract"),
    ("notice_version", "has space"),
    ("notice_sha256", "00" * 31),
    ("notice_sha256", None),
    ("method", "signed"),
    ("method", None),
    ("state", "expired"),
    ("state", "Given"),
    ("state", None),
    ("at", -1),
    ("at", float(NOW)),
    ("at", True),
    ("at", None),
    ("expires_at", NOW),
    ("expires_at", 1.0),
    ("expires_at", "tomorrow"),
    ("signature", "00" * 63),
    ("signature", "GG" * 64),
]


@pytest.mark.req("CON-04")
@pytest.mark.parametrize(("name", "value"), BAD_RECORD_FIELDS)
def test_a_bad_field_is_refused_naming_the_field(name: str, value: Any) -> None:
    with pytest.raises(InvalidConsentRecord) as info:
        ConsentRecord.from_content(record_content(**{name: value}))
    assert isinstance(info.value, PeerError)
    assert name in str(info.value)


@pytest.mark.req("CON-04")
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"signature": None}, "needs subject_identity and signature"),
        ({"subject_identity": None}, "needs subject_identity and signature"),
        ({"method": "recorded by controller"}, "carries no signature"),
        ({"state": "refused"}, "expires_at must be null unless the state is given"),
        ({"state": "withdrawn"}, "expires_at must be null unless the state is given"),
        ({"expires_at": NOW - 1}, "expires_at must be later than at"),
    ],
)
def test_broken_invariants_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConsentRecord, match=message):
        ConsentRecord.from_content(record_content(**overrides))


@pytest.mark.req("CON-04")
def test_a_recorded_record_needs_a_subject_or_identity() -> None:
    with pytest.raises(ValueError, match="a subject or a subject_identity"):
        recorded(subject=None)
    content = recorded().to_content()
    content["subject"] = None
    with pytest.raises(InvalidConsentRecord, match="a subject or a subject_identity"):
        ConsentRecord.from_content(content)
    assert recorded(subject=None, subject_identity=subject_identity().public).subject is None


@pytest.mark.req("CON-04")
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"purpose": "Marketing"}, "purpose"),
        ({"state": "expired"}, "state"),
        ({"expires_at": NOW}, "expires_at"),
        ({"at_ms": -1}, "at"),
        ({"notice_sha256": b"short"}, "notice_sha256"),
        ({"request_id": bytes(15)}, "request_id"),
        ({"subject_identity": b"\x01" * 129}, "subject_identity"),
    ],
)
def test_building_a_bad_record_is_a_value_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recorded(**overrides)


@pytest.mark.req("CON-04")
def test_missing_and_extra_fields_are_refused() -> None:
    content = record_content()
    del content["at"]
    with pytest.raises(InvalidConsentRecord, match="missing at"):
        ConsentRecord.from_content(content)
    content = record_content()
    content["note"] = "x"
    with pytest.raises(InvalidConsentRecord, match="1 unknown field"):
        ConsentRecord.from_content(content)
    with pytest.raises(InvalidConsentRecord, match="JSON object"):
        ConsentRecord.from_content(["not", "a", "record"])


# --- CON-05: signature and canonical bytes -------------------------------------------------------


@pytest.mark.req("CON-05")
def test_the_signature_covers_the_label_and_the_canonical_body() -> None:
    record = given()
    content = record.to_content()
    body = {k: v for k, v in content.items() if k != "signature"}
    # Independent of the library: the stdlib's JSON and cryptography's Ed25519.
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    assert record.signed_bytes() == canonical
    key = Ed25519PublicKey.from_public_bytes(subject_identity().public.verify_key.to_bytes())
    key.verify(bytes.fromhex(content["signature"]), b"entrenous/v1 consent record" + canonical)
    assert LABEL_CONSENT_RECORD == b"entrenous/v1 consent record"
    assert record.to_bytes() == canonical_json(content)


@pytest.mark.req("CON-05")
def test_consent_labels_differ_from_every_protocol_label() -> None:
    protocol_labels = {
        value for name, value in vars(constants).items() if name.startswith("LABEL_")
    }
    assert len(protocol_labels) >= 8
    for label in (LABEL_CONSENT_RECORD, LABEL_CONSENT_LEDGER):
        assert label not in protocol_labels
        # No label is a prefix of another: LABEL || message stays unambiguous.
        assert not any(p.startswith(label) or label.startswith(p) for p in protocol_labels)
    assert LABEL_CONSENT_RECORD != LABEL_CONSENT_LEDGER


@pytest.mark.req("CON-05")
@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b.replace(b'","', b'", "', 1),  # a space
        lambda b: b + b"\n",  # trailing bytes
        lambda b: b" " + b,
        lambda b: json.dumps(json.loads(b), ensure_ascii=True).encode(),  # escaped, spaced
        lambda b: json.dumps(json.loads(b), sort_keys=False, separators=(",", ":")).encode(),
        lambda b: b.replace(b'"at":', b'"at":0', 1),  # a leading zero
        lambda b: b[:-1] + b',"at":1}',  # a duplicate key
    ],
)
def test_only_the_canonical_bytes_are_accepted(mangle: Any) -> None:
    data = given(make_request(controller="Bänk ✓")).to_bytes()
    mangled = mangle(data)
    assert mangled != data
    with pytest.raises(InvalidConsentRecord):
        ConsentRecord.from_bytes(mangled)


@pytest.mark.req("CON-05")
@pytest.mark.parametrize(
    "data", [b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"at":NaN}', b'{"at":Infinity}']
)
def test_garbage_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidConsentRecord):
        ConsentRecord.from_bytes(data)


@pytest.mark.req("CON-05")
def test_oversized_bytes_are_refused_before_parsing() -> None:
    with pytest.raises(InvalidConsentRecord, match=f"limit of {MAX_RECORD_SIZE}"):
        ConsentRecord.from_bytes(b"[" * (MAX_RECORD_SIZE + 1))


@pytest.mark.req("CON-05")
def test_the_largest_record_is_well_under_the_size_limit() -> None:
    request = make_request(
        controller='"' * 256, subject="\\" * 256, purpose="p" * 64, notice_version="v" * 64
    )
    assert len(given(request).to_bytes()) < 2500 < MAX_RECORD_SIZE


@pytest.mark.req("CON-05")
def test_records_need_bytes() -> None:
    with pytest.raises(TypeError):
        ConsentRecord.from_bytes("{}")  # type: ignore[arg-type]


_SIGNED = given(make_request(controller="Bänk ✓", subject="Kundin 7"))


@pytest.mark.req("CON-05")
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@hypothesis_given(data=st.data())
def test_any_single_byte_change_fails_parsing_or_verification(data: st.DataObject) -> None:
    original = _SIGNED.to_bytes()
    index = data.draw(st.integers(0, len(original) - 1), label="index")
    replacement = data.draw(
        st.integers(0, 255).filter(lambda b: b != original[index]), label="byte"
    )
    mutated = original[:index] + bytes([replacement]) + original[index + 1 :]
    with pytest.raises(InvalidConsentRecord):
        ConsentRecord.from_bytes(mutated).verify(subject_identity().public)


@pytest.mark.req("CON-05")
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@hypothesis_given(
    state=st.sampled_from(["given", "refused", "withdrawn"]),
    controller=st.text(
        st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=30
    ).filter(str.strip),
    subject=st.none()
    | st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=30).filter(
        str.strip
    ),
    purpose=st.from_regex(PURPOSE_PATTERN, fullmatch=True),
    notice_version=st.from_regex(NOTICE_VERSION_PATTERN, fullmatch=True),
    notice_sha256=st.binary(min_size=32, max_size=32),
    request_id=st.none() | st.binary(min_size=16, max_size=16),
    at=st.integers(0, 10**13),
    lifetime=st.none() | st.integers(1, 10**12),
    legal_basis=st.sampled_from(["consent", "explicit consent"]),
)
def test_signed_records_round_trip_through_canonical_bytes(
    state: Any,
    controller: str,
    subject: str | None,
    purpose: str,
    notice_version: str,
    notice_sha256: bytes,
    request_id: bytes | None,
    at: int,
    lifetime: int | None,
    legal_basis: Any,
) -> None:
    record = ConsentRecord.sign(
        subject_identity(),
        state=state,
        controller=controller,
        purpose=purpose,
        notice_version=notice_version,
        notice_sha256=notice_sha256,
        at_ms=at,
        subject=subject,
        request_id=request_id,
        expires_at=None if lifetime is None or state != "given" else at + lifetime,
        legal_basis=legal_basis,
    )
    data = record.to_bytes()
    again = ConsentRecord.from_bytes(data)
    assert again == record
    assert again.to_bytes() == data
    again.verify(subject_identity().public)


# --- CON-06: verification and forgery attempts ---------------------------------------------------


@pytest.mark.req("CON-06")
def test_a_genuine_answer_verifies() -> None:
    request = make_request()
    record = given(request)
    record.verify(subject_identity().public, request, now_ms=NOW + 2000)
    record.verify(subject_identity().public)
    ConsentRecord.from_bytes(record.to_bytes()).verify(subject_identity().public, request)


@pytest.mark.req("CON-06")
def test_a_record_signed_by_another_identity_is_refused() -> None:
    request = make_request()
    forged = ConsentRecord.answer(other_identity(), request, give=True, now_ms=NOW)
    with pytest.raises(InvalidConsentRecord, match="names another subject identity"):
        forged.verify(subject_identity().public, request)


@pytest.mark.req("CON-06")
def test_a_signature_moved_to_another_identity_fails() -> None:
    # The forger copies the subject's signed record and claims it as its own identity's.
    content = given().to_content()
    content["subject_identity"] = other_identity().public.to_bytes().hex()
    forged = ConsentRecord.from_content(content)
    with pytest.raises(ConsentSignatureInvalid):
        forged.verify(other_identity().public)


ALTERED_FIELDS: list[tuple[str, Any]] = [
    ("record_id", "11" * 16),
    ("request_id", "22" * 16),
    ("request_id", None),
    ("subject", "someone else"),
    ("subject", None),
    ("controller", "Another Bank"),
    ("purpose", "profiling"),
    ("legal_basis", "explicit consent"),
    ("notice_version", "2024-01"),
    ("notice_sha256", "33" * 32),
    ("state", "refused"),
    ("at", NOW + 5),
    ("expires_at", NOW + 10 * DAY),
]


@pytest.mark.req("CON-06")
@pytest.mark.parametrize(("name", "value"), ALTERED_FIELDS)
def test_an_altered_field_breaks_the_signature(name: str, value: Any) -> None:
    content = given().to_content()
    content[name] = value
    if name == "state":
        content["expires_at"] = None
    altered = ConsentRecord.from_content(content)
    with pytest.raises(ConsentSignatureInvalid) as info:
        altered.verify(subject_identity().public)
    # The one opaque authentication failure (ERR-02), and an InvalidConsentRecord.
    assert isinstance(info.value, AuthenticationError)
    assert isinstance(info.value, InvalidConsentRecord)
    assert str(info.value) == str(AuthenticationError())


@pytest.mark.req("CON-06")
def test_a_record_for_an_altered_notice_does_not_answer_the_request() -> None:
    request = make_request()
    record = given(request)
    edited = make_request(notice_text="A different notice.")
    # Same id, other notice: what the controller claims to have shown is not what was signed.
    edited_same_id = type(request)(
        request_id=request.request_id,
        controller=request.controller,
        purpose=request.purpose,
        notice_version=request.notice_version,
        notice_text=edited.notice_text,
        requested_at=request.requested_at,
        valid_for_ms=request.valid_for_ms,
        subject=request.subject,
    )
    with pytest.raises(InvalidConsentRecord, match="does not answer the request: notice_sha256"):
        record.verify(subject_identity().public, edited_same_id)


@pytest.mark.req("CON-06")
def test_a_record_replayed_for_another_request_is_refused() -> None:
    first, second = make_request(), make_request()
    record = given(first)
    with pytest.raises(InvalidConsentRecord, match="does not answer the request: request_id"):
        record.verify(subject_identity().public, second)


@pytest.mark.req("CON-06")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("controller", "Another Bank"),
        ("purpose", "profiling"),
        ("legal_basis", "explicit consent"),
        ("notice_version", "2099"),
        ("subject", "someone else"),
        ("subject", None),
    ],
)
def test_every_request_field_is_bound(name: str, value: Any) -> None:
    request = make_request()
    record = given(request)
    fields = {
        "request_id": request.request_id,
        "controller": request.controller,
        "purpose": request.purpose,
        "notice_version": request.notice_version,
        "notice_text": request.notice_text,
        "requested_at": request.requested_at,
        "valid_for_ms": request.valid_for_ms,
        "subject": request.subject,
        "legal_basis": request.legal_basis,
    }
    fields[name] = value
    other = type(request)(**fields)
    with pytest.raises(InvalidConsentRecord, match=f"does not answer the request: {name}"):
        record.verify(subject_identity().public, other)


@pytest.mark.req("CON-06")
def test_a_record_without_request_id_does_not_answer_a_request() -> None:
    request = make_request()
    record = ConsentRecord.sign(
        subject_identity(),
        state="given",
        controller=request.controller,
        purpose=request.purpose,
        notice_version=request.notice_version,
        notice_sha256=request.notice_sha256,
        at_ms=NOW,
        subject=request.subject,
        expires_at=NOW + DAY,
    )
    record.verify(subject_identity().public)
    with pytest.raises(InvalidConsentRecord, match="request_id"):
        record.verify(subject_identity().public, request)


@pytest.mark.req("CON-06")
def test_an_unsigned_record_does_not_verify() -> None:
    with pytest.raises(InvalidConsentRecord, match="not signed by its subject"):
        recorded(subject_identity=subject_identity().public).verify(subject_identity().public)


@pytest.mark.req("CON-06")
def test_time_sanity() -> None:
    request = make_request()
    identity = subject_identity()
    just_before = ConsentRecord.answer(identity, request, give=True, now_ms=NOW - MAX_CLOCK_SKEW_MS)
    just_before.verify(identity.public, request)
    too_early = ConsentRecord.answer(
        identity, request, give=True, now_ms=NOW - MAX_CLOCK_SKEW_MS - 1
    )
    with pytest.raises(InvalidConsentRecord, match="dated before the request"):
        too_early.verify(identity.public, request)
    late = given(request, at=NOW + DAY)
    late.verify(identity.public, request, now_ms=NOW + DAY - MAX_CLOCK_SKEW_MS)
    with pytest.raises(InvalidConsentRecord, match="dated in the future"):
        late.verify(identity.public, request, now_ms=NOW + DAY - MAX_CLOCK_SKEW_MS - 1)


@pytest.mark.req("CON-06")
@pytest.mark.parametrize("expires_at", [None, NOW + 1000 + 365 * DAY + 1])
def test_a_longer_consent_than_requested_is_refused(expires_at: int | None) -> None:
    request = make_request()
    stretched = ConsentRecord.sign(
        subject_identity(),
        state="given",
        controller=request.controller,
        purpose=request.purpose,
        notice_version=request.notice_version,
        notice_sha256=request.notice_sha256,
        at_ms=NOW + 1000,
        subject=request.subject,
        request_id=request.request_id,
        expires_at=expires_at,
    )
    with pytest.raises(InvalidConsentRecord, match="expires later than the request allows"):
        stretched.verify(subject_identity().public, request)


@pytest.mark.req("CON-06")
def test_a_shorter_consent_than_requested_is_accepted() -> None:
    request = make_request()
    shorter = ConsentRecord.sign(
        subject_identity(),
        state="given",
        controller=request.controller,
        purpose=request.purpose,
        notice_version=request.notice_version,
        notice_sha256=request.notice_sha256,
        at_ms=NOW + 1000,
        subject=request.subject,
        request_id=request.request_id,
        expires_at=NOW + 1000 + DAY,
    )
    shorter.verify(subject_identity().public, request)


@pytest.mark.req("CON-06")
def test_verify_checks_its_argument_types() -> None:
    record = given()
    with pytest.raises(TypeError):
        record.verify(subject_identity())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        record.verify(subject_identity().public, record.to_content())  # type: ignore[arg-type]


# --- CON-07: answering and withdrawing -----------------------------------------------------------


@pytest.mark.req("CON-07")
@pytest.mark.parametrize("give", [True, False])
def test_an_answer_copies_the_request(give: bool) -> None:
    request = make_request(legal_basis="explicit consent")
    record = ConsentRecord.answer(subject_identity(), request, give=give, now_ms=NOW + 7)
    assert record.request_id == request.request_id
    assert record.controller == request.controller
    assert record.purpose == request.purpose
    assert record.legal_basis == request.legal_basis
    assert record.notice_version == request.notice_version
    assert record.notice_sha256 == request.notice_sha256
    assert record.subject == request.subject == SUBJECT_MARKER
    assert record.subject_identity == subject_identity().public
    assert record.method == "in-band signed"
    assert record.at == NOW + 7
    if give:
        assert record.state == "given"
        assert record.expires_at == NOW + 7 + 365 * DAY
    else:
        assert record.state == "refused"
        assert record.expires_at is None
    record.verify(subject_identity().public, request, now_ms=NOW + 7)


@pytest.mark.req("CON-07")
def test_a_consent_without_validity_does_not_expire() -> None:
    record = given(make_request(valid_for_ms=None))
    assert record.expires_at is None
    assert record.state_at(2**40) == "given"


@pytest.mark.req("CON-07")
def test_withdrawal_is_one_call_and_keeps_the_purpose() -> None:
    request = make_request()
    consent_record = given(request)
    withdrawal = consent_record.withdrawal(subject_identity(), now_ms=NOW + DAY)
    assert withdrawal.state == "withdrawn"
    assert withdrawal.expires_at is None
    assert withdrawal.record_id != consent_record.record_id
    for name in (
        "request_id",
        "controller",
        "purpose",
        "legal_basis",
        "notice_version",
        "notice_sha256",
        "subject",
        "subject_identity",
    ):
        assert getattr(withdrawal, name) == getattr(consent_record, name), name
    withdrawal.verify(subject_identity().public, request, now_ms=NOW + DAY)


@pytest.mark.req("CON-07")
def test_a_consent_recorded_by_the_controller_can_be_withdrawn_in_band() -> None:
    web_form = recorded(subject=SUBJECT_MARKER)
    withdrawal = web_form.withdrawal(subject_identity(), now_ms=NOW + 1)
    assert withdrawal.method == "in-band signed"
    assert withdrawal.subject == SUBJECT_MARKER
    withdrawal.verify(subject_identity().public)


@pytest.mark.req("CON-07")
@pytest.mark.parametrize("state", ["refused", "withdrawn"])
def test_only_a_given_consent_can_be_withdrawn(state: Any) -> None:
    with pytest.raises(ValueError, match="only a given consent"):
        recorded(state=state).withdrawal(subject_identity(), now_ms=NOW)


@pytest.mark.req("CON-07")
def test_answer_and_sign_check_their_arguments() -> None:
    with pytest.raises(TypeError):
        ConsentRecord.answer(subject_identity(), make_request().to_content(), give=True, now_ms=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ConsentRecord.sign(
            subject_identity().public,  # type: ignore[arg-type]
            state="given",
            controller="Bank",
            purpose="marketing",
            notice_version="1",
            notice_sha256=bytes(32),
            at_ms=NOW,
        )
    # A validity reaching past the year 9999 ends with it (it raised ValueError, which a client
    # answering on a late clock passed on as a builtin error).
    late = ConsentRecord.answer(
        subject_identity(), make_request(), give=True, now_ms=consent.MAX_TIME_MS - 1
    )
    assert late.expires_at == consent.MAX_TIME_MS


@pytest.mark.req("CON-07")
def test_expiry_is_computed_not_stored() -> None:
    record = given(make_request(valid_for_ms=DAY), at=NOW)
    assert record.state == "given"
    assert record.state_at(NOW) == "given"
    assert record.state_at(NOW + DAY - 1) == "given"
    assert record.state_at(NOW + DAY) == "expired"
    assert "expired" not in record.to_bytes().decode()
    refused = ConsentRecord.answer(subject_identity(), make_request(), give=False, now_ms=NOW)
    assert refused.state_at(NOW + 10**12) == "refused"
