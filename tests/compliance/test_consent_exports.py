"""Exports: ISO/IEC TS 27560 fields (CON-12) and the Kantara Consent Receipt v1.1 (CON-13)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import pytest
from consent_support import (
    CONTROLLER_MARKER,
    DAY,
    NOW,
    SUBJECT_MARKER,
    controller_info,
    given,
    make_request,
    subject_identity,
)

from entrenous.compliance.consent import ConsentRecord, ControllerInfo

SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "spec" / "kantara-consent-receipt-v1.1.schema.json"
)


def receipt_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def identity_only_record() -> ConsentRecord:
    return ConsentRecord.answer(
        subject_identity(), make_request(subject=None), give=True, now_ms=NOW + 1
    )


# --- CON-12: ISO/IEC TS 27560 --------------------------------------------------------------------


@pytest.mark.req("CON-12")
def test_iso27560_fields_map_the_record() -> None:
    request = make_request(valid_for_ms=DAY)
    record = given(request, at=NOW)
    out = record.to_iso27560()
    assert json.loads(json.dumps(out)) == out  # JSON-compatible
    assert out["schema_version"].startswith("entrenous-consent-record-v1")
    assert out["record_id"] == str(uuid.UUID(bytes=record.record_id))
    assert uuid.UUID(out["record_id"]).version == 4
    assert out["pii_principal_id"] == SUBJECT_MARKER
    assert out["privacy_notice"] == {
        "version": request.notice_version,
        "sha256": request.notice_sha256.hex(),
    }
    assert out["purposes"] == [{"purpose": "marketing", "lawful_basis": "consent"}]
    assert out["pii_controllers"] == [{"party_name": CONTROLLER_MARKER, "party_role": "controller"}]
    assert out["collection_method"] == "in-band signed"
    assert "withdrawal" in out["withdrawal_method"]
    assert out["events"] == [
        {
            "event_time": "2025-11-24T16:00:00.000Z",
            "validity_duration": "PT86400S",
            "entity_id": SUBJECT_MARKER,
            "event_type": "explicit",
            "event_state": "given",
        }
    ]
    assert out["x_entrenous"] == {
        "request_id": request.request_id.hex(),
        "subject_identity": subject_identity().public.to_bytes().hex(),
        "signature": record.signature.hex() if record.signature else None,
        "expires_at": "2025-11-25T16:00:00.000Z",
    }


@pytest.mark.req("CON-12")
def test_iso27560_event_state_at_a_time() -> None:
    record = given(make_request(valid_for_ms=DAY), at=NOW)
    assert record.to_iso27560(now_ms=NOW)["events"][0]["event_state"] == "given"
    assert record.to_iso27560(now_ms=NOW + DAY)["events"][0]["event_state"] == "expired"


@pytest.mark.req("CON-12")
def test_iso27560_for_a_record_of_the_controller_and_an_identity_only_subject() -> None:
    web_form = ConsentRecord.recorded(
        state="refused",
        controller="Bank",
        purpose="marketing",
        notice_version="1",
        notice_sha256=bytes(32),
        at_ms=NOW + 1500,
        subject="cust-9",
    )
    out = web_form.to_iso27560()
    event = out["events"][0]
    assert event == {
        "event_time": "2025-11-24T16:00:01.500Z",
        "validity_duration": None,
        "entity_id": "controller:Bank",
        "event_type": "expressed",
        "event_state": "refused",
    }
    assert out["collection_method"] == "recorded by controller"
    assert out["x_entrenous"]["signature"] is None
    key = subject_identity().public.verify_key.to_bytes().hex()
    assert identity_only_record().to_iso27560()["pii_principal_id"] == f"entrenous-identity:{key}"


@pytest.mark.req("CON-12")
@pytest.mark.parametrize(
    ("lifetime", "duration"),
    [(1000, "PT1S"), (1500, "PT1.5S"), (1, "PT0.001S"), (120, "PT0.12S"), (DAY, "PT86400S")],
)
def test_validity_durations_are_iso8601(lifetime: int, duration: str) -> None:
    record = given(make_request(valid_for_ms=lifetime), at=NOW)
    assert record.to_iso27560()["events"][0]["validity_duration"] == duration


# --- CON-13: Kantara Consent Receipt v1.1 --------------------------------------------------------


@pytest.mark.req("CON-13")
def test_the_receipt_validates_and_carries_the_documented_fields() -> None:
    request = make_request(valid_for_ms=DAY)
    record = given(request, at=NOW + 1999)
    receipt = record.to_kantara_receipt(controller_info())
    receipt_validator().validate(receipt)
    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["jurisdiction"] == "DE"
    assert receipt["consentTimestamp"] == (NOW + 1999) // 1000
    assert receipt["collectionMethod"] == "in-band signed"
    assert receipt["consentReceiptID"] == str(uuid.UUID(bytes=record.record_id))
    assert receipt["language"] == "de"
    assert receipt["piiPrincipalId"] == SUBJECT_MARKER
    assert receipt["policyUrl"] == "https://bank.example/datenschutz"
    assert receipt["piiControllers"] == [
        {
            "piiController": "Beispielbank AG",
            "onBehalf": False,
            "contact": "Datenschutzbeauftragte",
            "address": {"streetAddress": "Hauptstr. 1", "addressCountry": "DE"},
            "email": "datenschutz@bank.example",
            "phone": "+49 30 1234567",
            "piiControllerUrl": "https://bank.example",
        }
    ]
    [service] = receipt["services"]
    assert service["service"] == "Beispielbank app chat"
    assert service["purposes"] == [
        {
            "purpose": "Offers for products of the bank",
            "purposeCategory": ["6 - Marketing"],
            "consentType": "EXPLICIT",
            "piiCategory": ["2 - Contact"],
            "primaryPurpose": False,
            "termination": "withdrawal by the PII principal, or at the latest "
            "2025-11-25T16:00:01.999Z",
            "thirdPartyDisclosure": False,
        }
    ]
    assert receipt["sensitive"] is False
    assert receipt["spiCat"] == []
    assert "publicKey" not in receipt
    # The signed record rides along, and still verifies.
    carried = ConsentRecord.from_content(receipt["x-entrenous-record"])
    assert carried == record
    carried.verify(subject_identity().public, request)


@pytest.mark.req("CON-13")
def test_receipt_options() -> None:
    info = controller_info(
        public_key="ed25519:" + "ab" * 32,
        sensitive=True,
        spi_categories=["Health"],
        purposes={
            "marketing": {
                "purpose_category": ["6 - Marketing"],
                "pii_category": ["2 - Contact", "7 - Financial"],
                "primary_purpose": True,
                "third_party_disclosure": True,
                "third_party_name": "Partner Versicherung AG",
                "termination": "end of the contract",
            }
        },
    )
    record = identity_only_record()
    receipt = record.to_kantara_receipt(info, include_record=False)
    receipt_validator().validate(receipt)
    assert receipt["publicKey"] == "ed25519:" + "ab" * 32
    assert receipt["sensitive"] is True
    assert receipt["spiCat"] == ["Health"]
    assert "x-entrenous-record" not in receipt
    purpose = receipt["services"][0]["purposes"][0]
    assert purpose["purpose"] == "marketing"  # no description: the purpose id
    assert purpose["thirdPartyName"] == "Partner Versicherung AG"
    assert purpose["termination"] == "end of the contract"
    assert receipt["piiPrincipalId"].startswith("entrenous-identity:")
    unlimited = given(make_request(valid_for_ms=None)).to_kantara_receipt(controller_info())
    assert unlimited["services"][0]["purposes"][0]["termination"] == (
        "withdrawal by the PII principal"
    )


@pytest.mark.req("CON-13")
def test_only_a_given_consent_has_a_receipt() -> None:
    refused = ConsentRecord.answer(subject_identity(), make_request(), give=False, now_ms=NOW)
    with pytest.raises(ValueError, match="given consent only"):
        refused.to_kantara_receipt(controller_info())
    withdrawn = given().withdrawal(subject_identity(), now_ms=NOW + DAY)
    with pytest.raises(ValueError, match="given consent only"):
        withdrawn.to_kantara_receipt(controller_info())


@pytest.mark.req("CON-13")
def test_a_purpose_without_receipt_details_is_refused() -> None:
    record = given(make_request(purpose="profiling"))
    with pytest.raises(ValueError, match="no receipt details for purpose 'profiling'"):
        record.to_kantara_receipt(controller_info())
    with pytest.raises(TypeError):
        record.to_kantara_receipt(controller_info().model_dump())  # type: ignore[arg-type]


@pytest.mark.req("CON-13")
@pytest.mark.parametrize(
    "overrides",
    [
        {"unknown": 1},
        {"jurisdiction": ""},
        {"controllers": []},
        {"sensitive": True},
        {"sensitive": "yes"},
        {"language": 7},
        {
            "purposes": {
                "Not A Purpose": {
                    "purpose_category": ["x"],
                    "pii_category": ["y"],
                    "primary_purpose": False,
                    "third_party_disclosure": False,
                }
            }
        },
        {
            "purposes": {
                "marketing": {
                    "purpose_category": ["6 - Marketing"],
                    "pii_category": ["2 - Contact"],
                    "primary_purpose": False,
                    "third_party_disclosure": True,
                }
            }
        },
        {
            "purposes": {
                "marketing": {
                    "purpose_category": [],
                    "pii_category": ["2 - Contact"],
                    "primary_purpose": False,
                    "third_party_disclosure": False,
                }
            }
        },
        {
            "purposes": {
                "marketing": {
                    "purpose_category": ["x"],
                    "pii_category": ["y"],
                    "primary_purpose": False,
                    "third_party_disclosure": False,
                    "typo": True,
                }
            }
        },
    ],
)
def test_controller_info_is_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        controller_info(**overrides)


@pytest.mark.req("CON-13")
def test_controller_info_is_frozen_and_loads_from_plain_data() -> None:
    info = controller_info()
    with pytest.raises(pydantic.ValidationError):
        info.jurisdiction = "FR"  # type: ignore[misc]
    assert ControllerInfo.model_validate(info.model_dump()) == info


@pytest.mark.req("CON-13")
def test_the_schema_refuses_a_receipt_without_its_required_fields() -> None:
    receipt = given().to_kantara_receipt(controller_info())
    validator = receipt_validator()
    for name in ("version", "consentTimestamp", "piiControllers", "services", "spiCat"):
        broken = {k: v for k, v in receipt.items() if k != name}
        assert not validator.is_valid(broken), name
    assert not validator.is_valid({**receipt, "consentTimestamp": 1.5})
    assert not validator.is_valid({**receipt, "sensitive": True})  # spiCat is empty
