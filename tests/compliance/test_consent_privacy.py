"""No personal data in the consent module's errors and reprs (CON-14): messages name fields and
checks, reprs show ids and states."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from consent_support import (
    CONTROLLER_MARKER,
    NOTICE_MARKER,
    NOW,
    SUBJECT_MARKER,
    given,
    make_request,
    other_identity,
    record_content,
    request_content,
    subject_identity,
)

from entrenous.compliance.consent import (
    ConsentRecord,
    ConsentRequest,
    next_entry,
    require_consent,
)
from entrenous.errors import EntrenousError

pytestmark = pytest.mark.req("CON-14")

MARKERS = ("Zq7xMarker", "Wq3yMarker", "Vk9pMarker")


def assert_clean(error: BaseException) -> None:
    shown = [str(error), repr(error), *map(str, error.args)]
    for text in shown:
        for marker in MARKERS:
            assert marker not in text, (marker, text)


def _edited_notice() -> None:
    content = request_content(notice_text=NOTICE_MARKER + " edited")
    ConsentRequest.from_content(content)


def _long_subject() -> None:
    ConsentRequest.from_content(request_content(subject=SUBJECT_MARKER * 40))


def _control_in_controller() -> None:
    ConsentRequest.from_content(request_content(controller=CONTROLLER_MARKER + "\x00"))


def _marker_key() -> None:
    content = request_content()
    content[SUBJECT_MARKER] = NOTICE_MARKER
    ConsentRequest.from_content(content)


def _marker_as_purpose() -> None:
    ConsentRequest.from_content(request_content(purpose=SUBJECT_MARKER))


def _marker_as_type() -> None:
    ConsentRequest.from_content(request_content(type=SUBJECT_MARKER))


def _marker_as_version() -> None:
    ConsentRequest.from_content(request_content(version=SUBJECT_MARKER))


def _marker_as_hex() -> None:
    ConsentRecord.from_content(record_content(record_id=SUBJECT_MARKER))


def _marker_as_state() -> None:
    ConsentRecord.from_content(record_content(state=SUBJECT_MARKER))


def _forged_subject() -> None:
    content = given().to_content()
    content["subject"] = SUBJECT_MARKER + " forged"
    ConsentRecord.from_content(content).verify(subject_identity().public)


def _wrong_identity() -> None:
    given().verify(other_identity().public)


def _wrong_request() -> None:
    given().verify(subject_identity().public, make_request(subject=SUBJECT_MARKER + "2"))


def _not_canonical() -> None:
    ConsentRecord.from_bytes(given().to_bytes() + b" ")


def _oversized_local_notice() -> None:
    make_request(notice_text=NOTICE_MARKER * 400)


def _bad_local_controller() -> None:
    make_request(controller=CONTROLLER_MARKER + "\n")


def _bad_purpose_argument() -> None:
    require_consent([], SUBJECT_MARKER, SUBJECT_MARKER, NOW)


def _no_consent() -> None:
    require_consent([], SUBJECT_MARKER, "marketing", NOW)


def _receipt_for_unknown_purpose() -> None:
    from consent_support import controller_info

    given(make_request(purpose="profiling")).to_kantara_receipt(controller_info())


FAILURES: list[Callable[[], None]] = [
    _edited_notice,
    _long_subject,
    _control_in_controller,
    _marker_key,
    _marker_as_purpose,
    _marker_as_type,
    _marker_as_version,
    _marker_as_hex,
    _marker_as_state,
    _forged_subject,
    _wrong_identity,
    _wrong_request,
    _not_canonical,
    _oversized_local_notice,
    _bad_local_controller,
    _bad_purpose_argument,
    _no_consent,
    _receipt_for_unknown_purpose,
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: f.__name__.strip("_"))
def test_errors_carry_no_personal_data(failure: Callable[[], None]) -> None:
    with pytest.raises((EntrenousError, ValueError)) as info:
        failure()
    assert_clean(info.value)


def test_reprs_show_ids_and_states_only() -> None:
    request = make_request()
    record = given(request)
    assert repr(request) == f"ConsentRequest(request_id={request.request_id.hex()})"
    assert repr(record) == (
        f"ConsentRecord(record_id={record.record_id.hex()}, "
        f"request_id={request.request_id.hex()}, state=given)"
    )
    entry = next_entry(None, record)
    for shown in (repr(request), repr(record), repr(entry), str(record), str(request)):
        for marker in MARKERS:
            assert marker not in shown
        assert "marketing" not in shown  # not even the purpose
        assert record.signature is not None
        assert record.signature.hex()[:16] not in shown


def test_the_repr_of_an_unanswered_record_says_none() -> None:
    record = ConsentRecord.recorded(
        state="refused",
        controller=CONTROLLER_MARKER,
        purpose="marketing",
        notice_version="1",
        notice_sha256=hashlib.sha256(b"x").digest(),
        at_ms=NOW,
        subject=SUBJECT_MARKER,
    )
    assert (
        repr(record)
        == f"ConsentRecord(record_id={record.record_id.hex()}, request_id=None, state=refused)"
    )


def test_limit_errors_carry_numbers_only() -> None:
    from entrenous.errors import LimitExceeded

    with pytest.raises(LimitExceeded) as info:
        _oversized_local_notice()
    error: Any = info.value
    assert error.limit == 16384
    assert error.value == len((NOTICE_MARKER * 400).encode())
