"""Whether consent is valid now (CON-08), and the error when it is not (CON-09)."""

from __future__ import annotations

from typing import Any

import pytest
from consent_support import (
    DAY,
    NOW,
    SUBJECT_MARKER,
    given,
    make_request,
    other_identity,
    subject_identity,
)

from entrenous.compliance.consent import (
    ConsentRecord,
    consent_state,
    current_consent,
    require_consent,
)
from entrenous.errors import ConsentRequired, UsageError

PURPOSE = "marketing"


def state(records: list[ConsentRecord], now: int = NOW + 2 * DAY, **kwargs: Any) -> str:
    subject = kwargs.pop("subject", SUBJECT_MARKER)
    return consent_state(records, subject, PURPOSE, now, **kwargs)


def refusal(at: int) -> ConsentRecord:
    return ConsentRecord.answer(subject_identity(), make_request(), give=False, now_ms=at)


# --- CON-08 --------------------------------------------------------------------------------------


@pytest.mark.req("CON-08")
def test_nothing_recorded_is_none() -> None:
    assert state([]) == "none"
    assert current_consent([], SUBJECT_MARKER, PURPOSE, NOW) is None


@pytest.mark.req("CON-08")
def test_a_given_consent_is_current() -> None:
    record = given()
    assert state([record]) == "given"
    assert current_consent([record], SUBJECT_MARKER, PURPOSE, NOW + DAY) is record


@pytest.mark.req("CON-08")
def test_refused_and_withdrawn_are_not_consent() -> None:
    record = given(at=NOW)
    withdrawal = record.withdrawal(subject_identity(), now_ms=NOW + DAY)
    assert state([refusal(NOW)]) == "refused"
    assert state([record, withdrawal]) == "withdrawn"
    assert current_consent([record, withdrawal], SUBJECT_MARKER, PURPOSE, NOW + 2 * DAY) is None


@pytest.mark.req("CON-08")
def test_withdrawn_then_given_again_is_consent() -> None:
    first = given(at=NOW)
    withdrawal = first.withdrawal(subject_identity(), now_ms=NOW + DAY)
    again = given(at=NOW + 2 * DAY)
    assert state([first, withdrawal, again], now=NOW + 3 * DAY) == "given"
    assert (
        current_consent([first, withdrawal, again], SUBJECT_MARKER, PURPOSE, NOW + 3 * DAY) is again
    )


@pytest.mark.req("CON-08")
def test_a_withdrawal_delivered_before_the_consent_still_wins() -> None:
    # Out-of-order delivery: the withdrawal (dated later) reaches the ledger first.
    record = given(at=NOW)
    withdrawal = record.withdrawal(subject_identity(), now_ms=NOW + 60_000)
    assert state([withdrawal, record]) == "withdrawn"


@pytest.mark.req("CON-08")
def test_a_withdrawal_dated_at_the_same_time_wins() -> None:
    record = given(at=NOW)
    withdrawal = record.withdrawal(subject_identity(), now_ms=NOW)
    assert state([withdrawal, record]) == "withdrawn"
    assert state([record, withdrawal]) == "withdrawn"


@pytest.mark.req("CON-08")
def test_a_withdrawal_later_in_the_ledger_wins_even_if_dated_earlier() -> None:
    # The subject's clock runs behind the controller's: the withdrawal still counts.
    record = ConsentRecord.recorded(
        state="given",
        controller="Bank",
        purpose=PURPOSE,
        notice_version="1",
        notice_sha256=bytes(32),
        at_ms=NOW + DAY,
        subject=SUBJECT_MARKER,
    )
    withdrawal = record.withdrawal(subject_identity(), now_ms=NOW)
    assert state([record, withdrawal]) == "withdrawn"


@pytest.mark.req("CON-08")
def test_when_ledger_order_and_dates_disagree_there_is_no_consent() -> None:
    first = given(at=NOW)
    withdrawal = first.withdrawal(subject_identity(), now_ms=NOW + DAY)
    again = given(at=NOW + 2 * DAY)
    # The new consent reached the ledger before the withdrawal it follows: fail safe.
    assert state([first, again, withdrawal], now=NOW + 3 * DAY) == "withdrawn"


@pytest.mark.req("CON-08")
def test_a_replayed_consent_after_a_withdrawal_changes_nothing() -> None:
    record = given(at=NOW)
    withdrawal = record.withdrawal(subject_identity(), now_ms=NOW + DAY)
    replayed = ConsentRecord.from_bytes(record.to_bytes())
    assert state([record, withdrawal, replayed]) == "withdrawn"


@pytest.mark.req("CON-08")
def test_a_refusal_after_a_consent_decides() -> None:
    record = given(at=NOW)
    assert state([record, refusal(NOW + DAY)]) == "refused"
    assert state([refusal(NOW), given(at=NOW + DAY)]) == "given"


@pytest.mark.req("CON-08")
def test_an_expired_consent_is_not_current() -> None:
    record = given(make_request(valid_for_ms=DAY), at=NOW)
    assert state([record], now=NOW + DAY - 1) == "given"
    assert state([record], now=NOW + DAY) == "expired"
    assert current_consent([record], SUBJECT_MARKER, PURPOSE, NOW + DAY) is None
    renewed = given(make_request(valid_for_ms=DAY), at=NOW + DAY + 5)
    assert state([record, renewed], now=NOW + DAY + 10) == "given"


@pytest.mark.req("CON-08")
def test_other_purposes_and_subjects_do_not_count() -> None:
    record = given()
    assert consent_state([record], SUBJECT_MARKER, "profiling", NOW + DAY) == "none"
    assert consent_state([record], "someone-else", PURPOSE, NOW + DAY) == "none"
    assert (
        consent_state([record], None, PURPOSE, NOW + DAY, identity=other_identity().public)
        == "none"
    )


@pytest.mark.req("CON-08")
def test_a_subject_is_matched_by_id_or_by_identity() -> None:
    web_form = ConsentRecord.recorded(
        state="given",
        controller="Bank",
        purpose=PURPOSE,
        notice_version="1",
        notice_sha256=bytes(32),
        at_ms=NOW,
        subject=SUBJECT_MARKER,
    )
    # The subject withdraws in-band without the app's subject id: only the identity names them.
    withdrawal = ConsentRecord.sign(
        subject_identity(),
        state="withdrawn",
        controller="Bank",
        purpose=PURPOSE,
        notice_version="1",
        notice_sha256=bytes(32),
        at_ms=NOW + DAY,
    )
    records = [web_form, withdrawal]
    assert state(records) == "given"  # by subject id alone the withdrawal is invisible
    assert state(records, identity=subject_identity().public) == "withdrawn"
    assert state([withdrawal], subject=None, identity=subject_identity().public) == "withdrawn"
    assert state([given()], subject=None, identity=subject_identity().public) == "given"


@pytest.mark.req("CON-08")
def test_the_subject_must_be_named_and_the_purpose_well_formed() -> None:
    with pytest.raises(ValueError, match="name the data subject"):
        consent_state([], None, PURPOSE, NOW)
    with pytest.raises(ValueError, match="purpose"):
        consent_state([], SUBJECT_MARKER, "Not A Purpose", NOW)
    with pytest.raises(TypeError):
        consent_state([given().to_content()], SUBJECT_MARKER, PURPOSE, NOW)  # type: ignore[list-item]


# --- CON-09 --------------------------------------------------------------------------------------


@pytest.mark.req("CON-09")
def test_require_consent_returns_the_valid_record() -> None:
    record = given()
    assert require_consent([record], SUBJECT_MARKER, PURPOSE, NOW + DAY) is record


@pytest.mark.req("CON-09")
@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (lambda: [], "none recorded"),
        (lambda: [refusal(NOW)], "refused"),
        (
            lambda: [
                (r := given(at=NOW)),
                r.withdrawal(subject_identity(), now_ms=NOW + DAY),
            ],
            "withdrawn",
        ),
        (lambda: [given(make_request(valid_for_ms=1000), at=NOW)], "expired"),
    ],
)
def test_require_consent_raises_naming_the_purpose_and_reason(records: Any, reason: str) -> None:
    with pytest.raises(ConsentRequired) as info:
        require_consent(records(), SUBJECT_MARKER, PURPOSE, NOW + 2 * DAY)
    error = info.value
    assert isinstance(error, UsageError)
    assert error.purpose == PURPOSE
    assert error.reason == reason
    assert str(error) == f"purpose 'marketing' requires consent ({reason})"
    assert SUBJECT_MARKER not in str(error)
