"""Shared builders for the consent tests: a controller's request, a subject, receipt details.

Identities are generated once per process (Ed25519 key generation and the identity binding cost
more than the checks under test), and the markers below are planted in personal-data fields so
that the privacy tests can search errors and reprs for them.
"""

from __future__ import annotations

import functools
from typing import Any

from entrenous.compliance.consent import (
    ConsentRecord,
    ConsentRequest,
    ControllerInfo,
)
from entrenous.protocol import Identity

#: 2025-11-24T16:00:00Z, a fixed "now" for every test.
NOW = 1_764_000_000_000
DAY = 24 * 3600 * 1000
#: Personal data planted in requests and records; never to appear in an error or a repr.
SUBJECT_MARKER = "subject-Zq7xMarker"
CONTROLLER_MARKER = "Controller Wq3yMarker GmbH"
NOTICE_MARKER = "Notice text Vk9pMarker: we would like to send you offers.\nYou may withdraw."


@functools.cache
def subject_identity() -> Identity:
    """The data subject's identity (one per test process)."""
    return Identity.generate()


@functools.cache
def other_identity() -> Identity:
    """Someone else's identity: a forger, or another customer."""
    return Identity.generate()


def make_request(**overrides: Any) -> ConsentRequest:
    """A marketing consent request from the controller, valid for 365 days."""
    fields: dict[str, Any] = {
        "controller": CONTROLLER_MARKER,
        "purpose": "marketing",
        "notice_version": "2025-11",
        "notice_text": NOTICE_MARKER,
        "now_ms": NOW,
        "valid_for_ms": 365 * DAY,
        "subject": SUBJECT_MARKER,
    }
    fields.update(overrides)
    return ConsentRequest.create(**fields)


def given(request: ConsentRequest | None = None, *, at: int = NOW + 1000) -> ConsentRecord:
    """The subject's signed consent to ``request`` (a fresh one by default)."""
    return ConsentRecord.answer(subject_identity(), request or make_request(), give=True, now_ms=at)


def request_content(**overrides: Any) -> dict[str, Any]:
    """A valid request's content with some fields replaced (for the parser tests)."""
    content = make_request().to_content()
    content.update(overrides)
    return content


def record_content(**overrides: Any) -> dict[str, Any]:
    """A valid signed record's content with some fields replaced."""
    content = given().to_content()
    content.update(overrides)
    return content


def controller_info(**overrides: Any) -> ControllerInfo:
    """Receipt details for the marketing purpose, as an application would configure them."""
    data: dict[str, Any] = {
        "jurisdiction": "DE",
        "language": "de",
        "policy_url": "https://bank.example/datenschutz",
        "controllers": [
            {
                "name": "Beispielbank AG",
                "contact": "Datenschutzbeauftragte",
                "address": {"streetAddress": "Hauptstr. 1", "addressCountry": "DE"},
                "email": "datenschutz@bank.example",
                "phone": "+49 30 1234567",
                "url": "https://bank.example",
            }
        ],
        "service": "Beispielbank app chat",
        "purposes": {
            "marketing": {
                "description": "Offers for products of the bank",
                "purpose_category": ["6 - Marketing"],
                "pii_category": ["2 - Contact"],
                "primary_purpose": False,
                "third_party_disclosure": False,
            }
        },
    }
    data.update(overrides)
    return ControllerInfo.model_validate(data)
