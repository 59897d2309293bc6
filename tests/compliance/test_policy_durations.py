"""Durations in policy files: syntax (RET-05), range (RET-06), forever only where meant (RET-07)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import base, only_problem, parse

from entrenous.compliance.policy import (
    MAX_DURATION_MS,
    MIN_DURATION_MS,
    UNITS_MS,
    format_duration,
    parse_duration,
)

DAY = 86_400_000
YEAR = 365 * DAY


@pytest.mark.req("RET-05")
@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("60s", 60_000),
        ("1min", 60_000),
        ("90min", 90 * 60_000),
        ("36h", 36 * 3_600_000),
        ("30d", 30 * DAY),
        ("2w", 14 * DAY),
        ("1y", YEAR),
        ("10y", 10 * YEAR),
        ("200y", 200 * YEAR),
        ("030d", 30 * DAY),
        ("forever", None),
    ],
)
def test_valid_durations(text: str, ms: int | None) -> None:
    assert parse_duration(text) == ms


@pytest.mark.req("RET-05")
def test_a_year_is_365_days() -> None:
    assert UNITS_MS["y"] == 365 * UNITS_MS["d"]
    assert parse_duration("1y") == parse_duration("365d")


@pytest.mark.req("RET-05")
@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("30", "a bare number is ambiguous between seconds and milliseconds"),
        ("30 d", 'write "30d"'),
        ("30D", 'write "30d"'),
        ("30days", 'write "30d"'),
        ("2 years", 'write "2y"'),
        ("1.5d", "whole numbers only"),
        ("1,5d", "whole numbers only"),
        ("-30d", "negative"),
        ("3m", '"m" is ambiguous (minutes or months?)'),
        ("500ms", "milliseconds are not a unit here"),
        ("6months", 'write days, e.g. "180d"'),
        ("30x", 'unknown unit "x"'),
        ("", "empty"),
        ("  ", "empty"),
        ("thirty days", "is not a duration"),
        ("Forever", 'write "forever"'),
        ("never", 'write "forever"'),
        ("\u0663\u0660d", "is not a duration"),  # Arabic-Indic digits are not [0-9]
    ],
)
def test_malformed_durations_are_refused_with_a_hint(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert hint in str(info.value)


@pytest.mark.req("RET-05")
def test_a_duration_is_a_string() -> None:
    with pytest.raises(TypeError):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.req("RET-05")
@pytest.mark.parametrize("value", [30, 2.5, 0, -1])
def test_a_bare_toml_number_is_refused_with_the_unit_hint(value: float) -> None:
    doc = base()
    doc["retention"]["default"]["max_age"] = value
    problem = only_problem(doc)
    assert problem.location == "retention.default.max_age"
    assert problem.message == (
        'give a unit, e.g. "30d": a bare number is ambiguous between seconds and milliseconds'
    )
    assert problem.line == 8  # the line of max_age = ...


@pytest.mark.req("RET-05")
@pytest.mark.parametrize("value", [True, ["30d"], {"d": 30}])
def test_a_non_string_duration_is_refused(value: object) -> None:
    doc = base()
    doc["retention"]["categories"]["marketing"]["max_age"] = value
    problem = only_problem(doc)
    assert problem.location == "retention.categories.marketing.max_age"
    assert "expected a duration" in problem.message


@pytest.mark.req("RET-06")
@pytest.mark.parametrize("text", ["0s", "0d", "0y"])
def test_zero_is_refused_for_a_maximum(text: str) -> None:
    with pytest.raises(ValueError, match="zero"):
        parse_duration(text)
    assert parse_duration(text, allow_zero=True) == 0


@pytest.mark.req("RET-06")
@pytest.mark.parametrize("text", ["1s", "59s"])
def test_below_one_minute_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="below the minimum of 1 minute"):
        parse_duration(text)


@pytest.mark.req("RET-06")
@pytest.mark.parametrize("text", ["201y", "73001d", "10000000w", "9" * 40 + "y"])
def test_above_two_hundred_years_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="above the maximum of 200y") as info:
        parse_duration(text)
    assert "milliseconds" not in str(info.value)


@pytest.mark.req("RET-06")
def test_milliseconds_written_as_seconds_get_a_hint() -> None:
    with pytest.raises(ValueError, match="looks like milliseconds") as info:
        parse_duration("7776000000s")
    assert "7776000000 ms is 90d" in str(info.value)
    doc = base()
    doc["retention"]["default"]["max_age"] = "7776000000s"
    problem = only_problem(doc)
    assert problem.location == "retention.default.max_age"
    assert "looks like milliseconds" in problem.message


@pytest.mark.req("RET-06")
def test_the_bounds_themselves_are_allowed() -> None:
    assert parse_duration("1min") == MIN_DURATION_MS
    assert parse_duration("200y") == MAX_DURATION_MS
    assert MAX_DURATION_MS == 200 * YEAR


@pytest.mark.req("RET-06")
def test_a_zero_minimum_is_no_minimum() -> None:
    doc = base()
    doc["retention"]["default"]["min_age"] = "0s"
    assert parse(doc).rule_for().min_age_ms == 0


@pytest.mark.req("RET-07")
def test_forever_only_where_a_maximum_is_meant() -> None:
    with pytest.raises(ValueError, match="cannot be"):
        parse_duration("forever", allow_forever=False)
    doc = base()
    doc["retention"]["categories"]["contract"]["min_age"] = "forever"
    problem = only_problem(doc)
    assert problem.location == "retention.categories.contract.min_age"
    assert 'a minimum age cannot be "forever"' in problem.message
    doc = base()
    doc["purposes"]["marketing"]["consent_valid_for"] = "forever"
    problem = only_problem(doc)
    assert problem.location == "purposes.marketing.consent_valid_for"
    assert "leave consent_valid_for out" in problem.message


# --- formatting and round trips -----------------------------------------------------------------


@pytest.mark.req("RET-05")
@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "forever"),
        (0, "0s"),
        (60_000, "1min"),
        (90_000, "90s"),
        (30 * DAY, "30d"),
        (14 * DAY, "2w"),
        (YEAR, "1y"),
        (720 * 3_600_000, "30d"),
    ],
)
def test_format_duration(ms: int | None, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.req("RET-05")
@pytest.mark.parametrize("ms", [-1000, 1, 1500])
def test_format_duration_refuses_what_a_file_cannot_say(ms: int) -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        format_duration(ms)


@pytest.mark.req("RET-05")
@given(st.sampled_from(sorted(UNITS_MS)), st.data())
def test_every_in_range_duration_parses_to_count_times_unit(unit: str, data: st.DataObject) -> None:
    size = UNITS_MS[unit]
    low = -(-MIN_DURATION_MS // size)  # ceiling
    count = data.draw(st.integers(min_value=low, max_value=MAX_DURATION_MS // size))
    ms = parse_duration(f"{count}{unit}")
    assert ms == count * size
    assert ms is not None
    assert parse_duration(format_duration(ms)) == ms


@pytest.mark.req("RET-05", "RET-06")
@given(st.integers(min_value=MIN_DURATION_MS // 1000, max_value=MAX_DURATION_MS // 1000))
def test_format_then_parse_round_trips(seconds: int) -> None:
    ms = seconds * 1000
    text = format_duration(ms)
    assert parse_duration(text) == ms
    assert format_duration(parse_duration(text)) == text  # canonical: a fixed point


@pytest.mark.req("RET-06")
@given(st.integers(min_value=1, max_value=10**30), st.sampled_from(sorted(UNITS_MS)))
def test_out_of_range_durations_are_refused(count: int, unit: str) -> None:
    ms = count * UNITS_MS[unit]
    if MIN_DURATION_MS <= ms <= MAX_DURATION_MS:
        assert parse_duration(f"{count}{unit}") == ms
    else:
        with pytest.raises(ValueError, match=r"minimum|maximum"):
            parse_duration(f"{count}{unit}")


@pytest.mark.req("RET-05")
@given(st.text(max_size=30))
def test_any_string_parses_or_raises_value_error(text: str) -> None:
    try:
        ms = parse_duration(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert ms is None or MIN_DURATION_MS <= ms <= MAX_DURATION_MS
