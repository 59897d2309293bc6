"""Consent requests: the format (CON-01), the notice hash (CON-02) and the limits (CON-03)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from consent_support import NOTICE_MARKER, NOW, make_request, request_content
from hypothesis import given, settings
from hypothesis import strategies as st

from entrenous.compliance import consent
from entrenous.compliance.consent import (
    MAX_CONTROLLER_BYTES,
    MAX_NOTICE_BYTES,
    MAX_REQUEST_SIZE,
    MAX_SUBJECT_BYTES,
    MAX_VALIDITY_MS,
    NOTICE_VERSION_PATTERN,
    PURPOSE_PATTERN,
    ConsentRequest,
    canonical_json,
)
from entrenous.errors import InvalidConsentRequest, LimitExceeded, PeerError

# --- CON-01: the format ------------------------------------------------------------------------


@pytest.mark.req("CON-01")
def test_a_request_has_exactly_the_documented_fields() -> None:
    request = make_request()
    content = request.to_content()
    assert set(content) == {
        "type",
        "version",
        "request_id",
        "controller",
        "purpose",
        "legal_basis",
        "notice_version",
        "notice_text",
        "notice_sha256",
        "requested_at",
        "valid_for_ms",
        "subject",
    }
    assert content["type"] == "entrenous/consent-request"
    assert content["version"] == 1
    assert content["request_id"] == request.request_id.hex()
    assert len(request.request_id) == 16
    assert content["requested_at"] == NOW
    assert content["legal_basis"] == "consent"
    # JSON-compatible, and it survives a JSON round trip unchanged.
    assert ConsentRequest.from_content(json.loads(canonical_json(content))) == request


@pytest.mark.req("CON-01")
def test_request_ids_are_random_and_version_4_uuids() -> None:
    ids = {make_request().request_id for _ in range(20)}
    assert len(ids) == 20
    for raw in ids:
        assert raw[6] >> 4 == 4
        assert raw[8] >> 6 == 0b10


@pytest.mark.req("CON-01")
def test_optional_fields_may_be_null() -> None:
    request = make_request(valid_for_ms=None, subject=None, legal_basis="explicit consent")
    content = request.to_content()
    assert content["valid_for_ms"] is None
    assert content["subject"] is None
    assert ConsentRequest.from_content(content) == request


BAD_REQUEST_FIELDS: list[tuple[str, Any]] = [
    ("type", "entrenous/consent-record"),
    ("type", None),
    ("version", 2),
    ("version", True),
    ("version", 1.0),
    ("version", "1"),
    ("request_id", "00" * 15),
    ("request_id", "00" * 17),
    ("request_id", "AB" * 16),
    ("request_id", "zz" * 16),
    ("request_id", 7),
    ("request_id", None),
    ("controller", ""),
    ("controller", "   "),
    ("controller", "a\x00b"),
    ("controller", "line\nbreak"),
    ("controller", "x" * (MAX_CONTROLLER_BYTES + 1)),
    ("controller", "\ud800"),
    ("controller", None),
    ("controller", 5),
    ("purpose", "Marketing"),
    ("purpose", "-marketing"),
    ("purpose", "marketing-"),
    ("purpose", "mark eting"),
    ("purpose", "marketing\n"),
    ("purpose", "a" * 65),
    ("purpose", ""),
    ("purpose", None),
    ("purpose", ["marketing"]),
    ("legal_basis", "contract"),
    ("legal_basis", "legitimate interest"),
    ("legal_basis", None),
    ("notice_version", ""),
    ("notice_version", "v 1"),
    ("notice_version", "x" * 65),
    ("notice_version", 3),
    ("notice_text", ""),
    ("notice_text", " \n\t "),
    ("notice_text", "bell\x07"),
    ("notice_text", "x" * (MAX_NOTICE_BYTES + 1)),
    ("notice_text", None),
    ("notice_sha256", "00" * 32),
    ("notice_sha256", "00" * 31),
    ("notice_sha256", None),
    ("requested_at", -1),
    ("requested_at", 253402300799999 + 1),
    ("requested_at", 1.5),
    ("requested_at", float(NOW)),
    ("requested_at", True),
    ("requested_at", str(NOW)),
    ("requested_at", None),
    ("valid_for_ms", 0),
    ("valid_for_ms", -5),
    ("valid_for_ms", MAX_VALIDITY_MS + 1),
    ("valid_for_ms", 1.0),
    ("valid_for_ms", False),
    ("subject", ""),
    ("subject", "x" * (MAX_SUBJECT_BYTES + 1)),
    ("subject", "tab\tinside"),
    ("subject", 42),
]


@pytest.mark.req("CON-01")
@pytest.mark.parametrize(("name", "value"), BAD_REQUEST_FIELDS)
def test_a_bad_field_is_refused_naming_the_field(name: str, value: Any) -> None:
    with pytest.raises(InvalidConsentRequest) as info:
        ConsentRequest.from_content(request_content(**{name: value}))
    assert isinstance(info.value, PeerError)
    message = str(info.value)
    assert message.startswith("consent request: ")
    if name == "version":
        assert "version" in message
    elif name == "type":
        assert "type" in message
    else:
        assert name in message


@pytest.mark.req("CON-01")
@pytest.mark.parametrize("name", sorted(set(make_request().to_content()) - {"type", "version"}))
def test_a_missing_field_is_refused(name: str) -> None:
    content = request_content()
    del content[name]
    with pytest.raises(InvalidConsentRequest, match=f"missing {name}"):
        ConsentRequest.from_content(content)


@pytest.mark.req("CON-01")
def test_an_extra_field_is_refused_without_echoing_it() -> None:
    content = request_content()
    content["secret-extra-key-Xy1"] = 1
    with pytest.raises(InvalidConsentRequest) as info:
        ConsentRequest.from_content(content)
    assert "1 unknown field" in str(info.value)
    assert "Xy1" not in str(info.value)


@pytest.mark.req("CON-01")
def test_a_later_version_is_named_before_its_fields_are_checked() -> None:
    content = request_content(version=2, new_field="x")
    del content["valid_for_ms"]
    with pytest.raises(InvalidConsentRequest, match=r"unsupported consent request version 2$"):
        ConsentRequest.from_content(content)
    with pytest.raises(InvalidConsentRequest, match=r"version \?$"):
        ConsentRequest.from_content(request_content(version=10**30))
    content = request_content()
    del content["type"]
    with pytest.raises(InvalidConsentRequest, match="must have type"):
        ConsentRequest.from_content(content)


@pytest.mark.req("CON-01")
@pytest.mark.parametrize("content", [None, [], "request", 5, b"{}"])
def test_a_request_must_be_a_mapping(content: object) -> None:
    with pytest.raises(InvalidConsentRequest, match="JSON object"):
        ConsentRequest.from_content(content)


@pytest.mark.req("CON-01")
def test_non_string_keys_are_refused() -> None:
    content: dict[Any, Any] = dict(request_content())
    content[1] = "x"
    with pytest.raises(InvalidConsentRequest, match="non-string key"):
        ConsentRequest.from_content(content)


@pytest.mark.req("CON-01")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("purpose", "Marketing"),
        ("controller", ""),
        ("notice_version", "a b"),
        ("requested_at", -1),
        ("valid_for_ms", 0),
        ("subject", ""),
        ("request_id", b"short"),
        ("legal_basis", "contract"),
    ],
)
def test_building_a_bad_request_is_a_value_error(name: str, value: Any) -> None:
    fields: dict[str, Any] = {
        "request_id": bytes(16),
        "controller": "Bank",
        "purpose": "marketing",
        "notice_version": "1",
        "notice_text": "text",
        "requested_at": NOW,
        "valid_for_ms": None,
        "subject": None,
        "legal_basis": "consent",
    }
    fields[name] = value
    with pytest.raises(ValueError, match=name):
        ConsentRequest(**fields)


@pytest.mark.req("CON-01")
@settings(max_examples=50)
@given(
    controller=st.text(
        st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
    ).filter(str.strip),
    purpose=st.from_regex(PURPOSE_PATTERN, fullmatch=True),
    notice_version=st.from_regex(NOTICE_VERSION_PATTERN, fullmatch=True),
    notice_text=st.text(
        st.characters(exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n\r"),
        min_size=1,
        max_size=200,
    ).filter(str.strip),
    now_ms=st.integers(0, 253402300799999),
    valid_for_ms=st.none() | st.integers(1, MAX_VALIDITY_MS),
    subject=st.none()
    | st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
        str.strip
    ),
)
def test_any_valid_request_round_trips_through_canonical_json(
    controller: str,
    purpose: str,
    notice_version: str,
    notice_text: str,
    now_ms: int,
    valid_for_ms: int | None,
    subject: str | None,
) -> None:
    request = ConsentRequest.create(
        controller=controller,
        purpose=purpose,
        notice_version=notice_version,
        notice_text=notice_text,
        now_ms=now_ms,
        valid_for_ms=valid_for_ms,
        subject=subject,
    )
    wire = canonical_json(request.to_content())
    again = ConsentRequest.from_content(json.loads(wire))
    assert again == request
    assert canonical_json(again.to_content()) == wire


# --- CON-02: the notice hash ---------------------------------------------------------------------


@pytest.mark.req("CON-02")
def test_the_notice_hash_is_plain_sha256_of_the_utf8_text() -> None:
    text = "Einwilligung: Angebote per Chat.\nWiderruf jederzeit möglich."
    request = make_request(notice_text=text)
    assert request.notice_sha256 == hashlib.sha256(text.encode("utf-8")).digest()
    assert request.to_content()["notice_sha256"] == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.req("CON-02")
def test_a_request_whose_hash_does_not_match_its_text_is_refused() -> None:
    content = request_content()
    content["notice_text"] = NOTICE_MARKER + " (edited)"
    with pytest.raises(InvalidConsentRequest, match="notice_sha256 is not the notice's hash"):
        ConsentRequest.from_content(content)


@pytest.mark.req("CON-02")
def test_the_hash_cannot_be_passed_in() -> None:
    with pytest.raises(TypeError):
        ConsentRequest(  # type: ignore[call-arg]
            request_id=bytes(16),
            controller="Bank",
            purpose="marketing",
            notice_version="1",
            notice_text="text",
            requested_at=NOW,
            notice_sha256=bytes(32),
        )


# --- CON-03: limits ------------------------------------------------------------------------------


@pytest.mark.req("CON-03")
def test_limits_have_the_documented_values() -> None:
    assert consent.MAX_NOTICE_BYTES == 16384
    assert consent.MAX_REQUEST_SIZE == 30720
    assert consent.MAX_RECORD_SIZE == 4096
    assert consent.MAX_CONTROLLER_BYTES == 256
    assert consent.MAX_SUBJECT_BYTES == 256
    assert consent.MAX_VALIDITY_MS == 100 * 365.25 * 24 * 3600 * 1000
    assert consent.MAX_CLOCK_SKEW_MS == 5 * 60 * 1000


@pytest.mark.req("CON-03")
def test_a_notice_at_the_limit_is_accepted_in_bytes_not_characters() -> None:
    at_limit = "ü" * (MAX_NOTICE_BYTES // 2)  # two UTF-8 bytes each
    request = make_request(notice_text=at_limit)
    assert ConsentRequest.from_content(request.to_content()) == request
    with pytest.raises(LimitExceeded) as info:
        make_request(notice_text=at_limit + "x")
    assert info.value.limit == MAX_NOTICE_BYTES
    assert info.value.value == MAX_NOTICE_BYTES + 1


@pytest.mark.req("CON-03")
def test_a_request_too_large_as_json_is_refused_both_ways() -> None:
    # Quotes double in JSON: the notice fits its own limit, the request does not fit a payload.
    notice = '"' * MAX_NOTICE_BYTES
    with pytest.raises(LimitExceeded) as info:
        make_request(notice_text=notice)
    assert info.value.limit == MAX_REQUEST_SIZE
    assert info.value.value > MAX_REQUEST_SIZE
    content = request_content(
        notice_text=notice, notice_sha256=hashlib.sha256(notice.encode()).hexdigest()
    )
    with pytest.raises(InvalidConsentRequest, match="exceeds the limit"):
        ConsentRequest.from_content(content)


@pytest.mark.req("CON-03")
def test_the_largest_request_fits_a_message_payload() -> None:
    from entrenous.payload import MAX_PAYLOAD_SIZE

    notice = "\u20ac" * (MAX_NOTICE_BYTES // 3)  # three bytes each, no escaping
    request = make_request(
        notice_text=notice,
        controller="C" * MAX_CONTROLLER_BYTES,
        subject="S" * MAX_SUBJECT_BYTES,
        purpose="p" * 64,
        notice_version="v" * 64,
    )
    size = len(canonical_json(request.to_content()))
    assert size <= MAX_REQUEST_SIZE <= MAX_PAYLOAD_SIZE - 2048
