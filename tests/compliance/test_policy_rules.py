"""Using a policy: rule resolution (RET-11), expiry (RET-12), disappearing timers (RET-13), the
fingerprint and the kept text (RET-14), the normalised JSON (ROPA-52)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import CID, CID2, EXAMPLE, base, parse, problems, to_toml

from entrenous._primitives import kdf
from entrenous.compliance.policy import (
    MAX_DURATION_MS,
    Policy,
    RetentionRule,
    format_duration,
)
from entrenous.errors import UsageError

DAY = 86_400_000
YEAR = 365 * DAY
NOW = 1_750_000_000_000

# --- RET-11: which rule applies ------------------------------------------------------------------


@pytest.mark.req("RET-11")
def test_the_default_applies_without_category_or_override() -> None:
    rule = parse(base()).rule_for()
    assert rule == RetentionRule(
        max_age_ms=2 * YEAR, min_age_ms=0, source="retention.default", category=None
    )
    assert parse(base()).rule_for(None, CID2) == rule  # an id without an override


@pytest.mark.req("RET-11")
def test_a_category_beats_the_default() -> None:
    rule = parse(base()).rule_for("contract")
    assert rule.max_age_ms == 11 * YEAR
    assert rule.min_age_ms == 10 * YEAR
    assert rule.legal_ground == "HGB §257, AO §147"
    assert rule.source == "retention.categories.contract"
    assert rule.category == "contract"


@pytest.mark.req("RET-11")
def test_an_override_beats_its_category_key_by_key() -> None:
    policy = parse(base())  # CID: category contract, max_age forever
    rule = policy.rule_for("marketing", CID)
    assert rule.max_age_ms is None  # the override's
    assert rule.min_age_ms == 10 * YEAR  # inherited from contract, the category it names
    assert rule.legal_ground == "HGB §257, AO §147"
    assert rule.category == "contract"
    assert rule.source == f"retention.conversations.{CID}"


@pytest.mark.req("RET-11")
def test_an_override_without_category_builds_on_the_conversations_category() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {"max_age": "forever"}
    policy = parse(doc)
    assert policy.rule_for("advice", CID2).min_age_ms == 5 * YEAR
    assert policy.rule_for("advice", CID2).category == "advice"
    assert policy.rule_for(None, CID2).min_age_ms == 0
    assert policy.rule_for(None, CID2).category is None


@pytest.mark.req("RET-11")
def test_an_override_min_age_replaces_the_legal_ground_too() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {
        "category": "contract",
        "min_age": "11y",
        "legal_ground": "court order",
    }
    rule = parse(doc).rule_for(None, CID2)
    assert (rule.min_age_ms, rule.legal_ground, rule.max_age_ms) == (
        11 * YEAR,
        "court order",
        11 * YEAR,
    )
    doc["retention"]["conversations"][CID2] = {"max_age": "forever", "min_age": "0s"}
    rule = parse(doc).rule_for("contract", CID2)
    assert (rule.min_age_ms, rule.legal_ground) == (0, None)


@pytest.mark.req("RET-11")
def test_unknown_category_and_bad_ids_are_usage_errors() -> None:
    policy = parse(base())
    with pytest.raises(
        UsageError, match=r'unknown retention category "sales" \(the policy defines'
    ):
        policy.rule_for("sales")
    with pytest.raises(UsageError) as info:
        policy.rule_for("Erika Mustermann")
    assert "Mustermann" not in str(info.value)
    for bad in (CID.upper(), CID[:-1], "", "x" * 32):
        with pytest.raises(UsageError, match="not a conversation id"):
            policy.rule_for(None, bad)
    with pytest.raises(TypeError):
        policy.rule_for(None, bytes.fromhex(CID))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        policy.rule_for(3)  # type: ignore[arg-type]


@pytest.mark.req("RET-11")
def test_describe() -> None:
    policy = parse(base())
    assert policy.rule_for().describe() == "delete after 2y, no minimum age"
    assert policy.rule_for("contract").describe() == (
        "delete after 11y, keep at least 10y (HGB §257, AO §147)"
    )
    assert policy.rule_for(None, CID).describe().startswith("keep forever, keep at least 10y")


# Strategies for the precedence property: every minimum is at most every maximum, so any mix of
# overrides is consistent, and the property checks resolution alone.
_MAXES = st.sampled_from(["10y", "12y", "20y", "forever"])
_MINS = st.sampled_from(["0s", "2y", "10y"])
_CATEGORY_NAMES = ["a", "b", "c"]
_IDS = [f"{i:032x}" for i in range(1, 5)]


@st.composite
def _rule(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"max_age": draw(_MAXES)}
    min_age = draw(_MINS)
    if min_age != "0s":
        rule.update(min_age=min_age, legal_ground=f"law {min_age}")
    return rule


@st.composite
def _override(draw: st.DrawFn, categories: list[str]) -> dict[str, Any]:
    override: dict[str, Any] = {}
    if categories and draw(st.booleans()):
        override["category"] = draw(st.sampled_from(categories))
    if draw(st.booleans()):
        override["max_age"] = draw(_MAXES)
    if draw(st.booleans()) or not override:
        min_age = draw(_MINS)
        override["min_age"] = min_age
        if min_age != "0s":
            override["legal_ground"] = f"override {min_age}"
    return override


def _ms(text: str | None) -> int | None:
    if text is None or text == "forever":
        return None
    number, unit = int(text[:-1]), text[-1]
    return number * {"s": 1000, "y": YEAR}[unit]


@pytest.mark.req("RET-11")
@given(st.data())
def test_resolution_precedence_property(data: st.DataObject) -> None:
    categories = data.draw(st.lists(st.sampled_from(_CATEGORY_NAMES), unique=True))
    doc: dict[str, Any] = {
        "version": 1,
        "controller": {"name": "C", "contact": "c@c.example"},
        "retention": {
            "default": data.draw(_rule()),
            "categories": {n: {"description": n, **data.draw(_rule())} for n in categories},
            "conversations": {
                cid: data.draw(_override(categories))
                for cid in data.draw(st.lists(st.sampled_from(_IDS), unique=True))
            },
        },
    }
    policy = parse(doc)
    category = data.draw(st.sampled_from([None, *categories]))
    cid = data.draw(st.sampled_from([None, *_IDS]))
    rule = policy.rule_for(category, cid)

    retention = doc["retention"]
    override = retention["conversations"].get(cid, {}) if cid else {}
    effective_category = override.get("category", category)
    base_rule = (
        retention["categories"][effective_category] if effective_category else retention["default"]
    )
    layered = {**base_rule}
    if "max_age" in override:
        layered["max_age"] = override["max_age"]
    if "min_age" in override:
        layered["min_age"] = override["min_age"]
        layered["legal_ground"] = override.get("legal_ground")
    assert rule.max_age_ms == _ms(layered["max_age"])
    assert rule.min_age_ms == (_ms(layered.get("min_age", "0s")) or 0)
    assert rule.legal_ground == (layered.get("legal_ground") if rule.min_age_ms else None)
    assert rule.category == effective_category
    if override:
        assert rule.source == f"retention.conversations.{cid}"
    elif effective_category:
        assert rule.source == f"retention.categories.{effective_category}"
    else:
        assert rule.source == "retention.default"


# --- RET-12: expiry ------------------------------------------------------------------------------


@pytest.mark.req("RET-12")
@pytest.mark.parametrize(
    ("max_age", "min_age", "timer", "expected"),
    [
        (2 * YEAR, 0, None, NOW + 2 * YEAR),  # the maximum
        (2 * YEAR, 0, 7 * DAY, NOW + 7 * DAY),  # a shorter timer
        (2 * YEAR, 0, 5 * YEAR, NOW + 2 * YEAR),  # the maximum caps the timer
        (11 * YEAR, 10 * YEAR, 7 * DAY, NOW + 10 * YEAR),  # the minimum outranks the timer
        (None, 0, None, None),  # forever
        (None, 0, 7 * DAY, NOW + 7 * DAY),  # a timer on a forever rule
        (None, 10 * YEAR, 7 * DAY, NOW + 10 * YEAR),
        (None, 10 * YEAR, None, None),
        (2 * YEAR, 0, 0, NOW),  # a zero timer: due at once
    ],
)
def test_expires_at(
    max_age: int | None, min_age: int, timer: int | None, expected: int | None
) -> None:
    rule = RetentionRule(max_age_ms=max_age, min_age_ms=min_age, source="test")
    assert parse(base()).expires_at(NOW, rule, timer) == expected


@pytest.mark.req("RET-12")
def test_expires_at_checks_its_arguments() -> None:
    policy = parse(base())
    rule = policy.rule_for()
    for stored_at, timer in ((-1, None), (NOW, -1)):
        with pytest.raises(ValueError, match="must not be negative"):
            policy.expires_at(stored_at, rule, timer)
    for stored_at, timer in ((1.5, None), (True, None), (NOW, 2.0), (NOW, False)):
        with pytest.raises(TypeError):
            policy.expires_at(stored_at, rule, timer)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        policy.expires_at(NOW, {"max_age_ms": 1}, None)  # type: ignore[arg-type]


_AGES = st.integers(min_value=0, max_value=MAX_DURATION_MS)


@pytest.mark.req("RET-12")
@given(
    stored_at=st.integers(min_value=0, max_value=253_402_300_799_999),
    max_age=st.none() | _AGES,
    min_age=_AGES,
    timer=st.none() | _AGES,
)
def test_expiry_bounds_property(
    stored_at: int, max_age: int | None, min_age: int, timer: int | None
) -> None:
    rule = RetentionRule(max_age_ms=max_age, min_age_ms=min_age, source="test")
    expires = parse(base()).expires_at(stored_at, rule, timer)
    if max_age is None and timer is None:
        assert expires is None
        return
    assert expires is not None
    assert expires >= stored_at + min_age  # never before the minimum
    if max_age is not None:  # never after the maximum, unless the minimum forces it
        assert expires <= stored_at + max(max_age, min_age)
    if timer is not None:  # never after the timer, unless the minimum forces it
        assert expires <= stored_at + max(timer, min_age)
    assert expires in {stored_at + a for a in (min_age, max_age, timer) if a is not None}


# --- RET-13: disappearing messages ---------------------------------------------------------------


@pytest.mark.req("RET-13")
def test_timers_are_ignored_when_not_allowed() -> None:
    doc = base()
    doc["disappearing"]["allowed"] = False
    policy = parse(doc)
    assert not policy.disappearing_allowed
    rule = policy.rule_for()
    assert policy.expires_at(NOW, rule, DAY) == NOW + 2 * YEAR
    assert "Disappearing messages: not allowed" in policy.explain()


@pytest.mark.req("RET-13")
def test_timers_are_allowed_by_default() -> None:
    doc = base()
    del doc["disappearing"]
    policy = parse(doc)
    assert policy.disappearing_allowed
    assert policy.expires_at(NOW, policy.rule_for(), DAY) == NOW + DAY


@pytest.mark.req("RET-13")
@pytest.mark.parametrize("table", [{}, {"allowed": "yes"}, {"allowed": 1}, {"max_timer": "1w"}])
def test_the_disappearing_table_is_strict(table: dict[str, Any]) -> None:
    doc = base()
    doc["disappearing"] = table
    assert {p.location.split(".")[0] for p in problems(doc)} == {"disappearing"}


# --- RET-14: fingerprint and text ----------------------------------------------------------------


@pytest.mark.req("RET-14")
def test_the_fingerprint_is_the_sha256_of_the_canonical_json() -> None:
    policy = parse(base())
    canonical = json.dumps(
        policy.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()
    assert policy.fingerprint == kdf.sha256(canonical).hex()
    assert len(policy.fingerprint) == 64


@pytest.mark.req("RET-14")
def test_the_fingerprint_ignores_comments_layout_order_and_spelling() -> None:
    text = to_toml(base())
    reference = Policy.parse(text)
    commented = "# the bank's policy\n" + text.replace("\n\n", "\n\n# section\n\n")
    spaced = text.replace(" = ", "   =   ")
    respelt = text.replace('max_age = "2y"', 'max_age = "730d"').replace('"1y"', '"8760h"')
    doc = base()
    doc["retention"]["categories"] = dict(reversed(doc["retention"]["categories"].items()))
    reordered = to_toml(dict(reversed(doc.items())))
    inline = text.replace(
        '[retention.default]\nmax_age = "2y"', '[retention]\ndefault = { max_age = "2y" }'
    )
    for variant in (commented, spaced, respelt, reordered, inline):
        assert variant != text
        assert Policy.parse(variant).fingerprint == reference.fingerprint
        assert Policy.parse(variant) == reference
    explicit = base()
    explicit["retention"]["default"]["min_age"] = "0s"  # the default written out
    assert parse(explicit).fingerprint == reference.fingerprint


@pytest.mark.req("RET-14")
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("retention", "default", "max_age"), "3y"),
        (("retention", "categories", "marketing", "description"), "Offers!"),
        (("controller", "name"), "Example Bank SE"),
        (("disappearing", "allowed"), False),
        (("purposes", "marketing", "notice_version"), "v2"),
        (("purposes", "marketing", "recipients"), ["marketing team", "agency"]),
        (("ropa", "security_measures"), []),
    ],
)
def test_any_change_of_a_value_changes_the_fingerprint(
    path: tuple[str, ...], value: object
) -> None:
    doc = base()
    table: dict[str, Any] = doc
    for part in path[:-1]:
        table = table[part]
    table[path[-1]] = value
    assert parse(doc).fingerprint != parse(base()).fingerprint
    assert parse(doc) != parse(base())


@pytest.mark.req("RET-14")
def test_the_text_is_kept_as_read() -> None:
    text = "# comment kept\n" + to_toml(base()).replace("\n", "\r\n")
    policy = Policy.parse(text, source="crlf.toml")
    assert policy.text == text
    assert policy.source == "crlf.toml"
    assert policy.fingerprint == parse(base()).fingerprint


@pytest.mark.req("RET-14")
def test_policies_are_hashable_values() -> None:
    assert len({parse(base()), parse(base())}) == 1
    assert parse(base()) != "policy"
    assert repr(parse(base())).startswith("Policy(source='test.toml', fingerprint=")


# --- ROPA-52: the normalised JSON ----------------------------------------------------------------


@pytest.mark.req("ROPA-52")
def test_to_json_is_the_whole_policy_normalised() -> None:
    data = parse(base()).to_json()
    assert data["version"] == 1
    assert data["controller"] == {
        "name": "Example Bank AG",
        "contact": "privacy@bank.example",
        "dpo": None,
        "representative": None,
    }
    assert data["retention"]["default"] == {
        "max_age": "2y",
        "min_age": "0s",
        "legal_ground": None,
    }
    assert data["retention"]["categories"]["contract"] == {
        "description": "Contracts",
        "max_age": "11y",
        "min_age": "10y",
        "legal_ground": "HGB §257, AO §147",
    }
    assert data["retention"]["conversations"] == {
        CID: {"category": "contract", "max_age": "forever"}
    }
    assert data["disappearing"] == {"allowed": True}
    assert data["purposes"]["marketing"] == {
        "description": "Offers",
        "legal_basis": "consent",
        "requires_consent": True,
        "notice_version": "v1",
        "notice_sha256": "ab" * 32,
        "consent_valid_for": "1y",
        "categories": ["marketing"],
        "data_categories": ["name", "message content"],
        "data_subjects": [],
        "recipients": ["marketing team"],
        "transfers": [],
    }
    assert data["purposes"]["advice"]["notice_version"] is None
    assert data["ropa"] == {"security_measures": ["end-to-end encryption"]}
    json.dumps(data, allow_nan=False)


@pytest.mark.req("ROPA-52")
def test_to_json_is_a_copy() -> None:
    policy = parse(base())
    data = policy.to_json()
    data["retention"]["default"]["max_age"] = "forever"
    assert policy.to_json()["retention"]["default"]["max_age"] == "2y"


@pytest.mark.req("ROPA-52", "RET-14")
def test_to_json_parses_back_to_the_same_policy() -> None:
    policy = Policy.load(EXAMPLE)
    data = policy.to_json()

    def prune(value: Any) -> Any:  # TOML has no null: drop the unset keys
        if isinstance(value, dict):
            return {k: prune(v) for k, v in value.items() if v is not None}
        return value

    again = parse(prune(data))
    assert again.fingerprint == policy.fingerprint


@pytest.mark.req("ROPA-52")
def test_the_mappings_are_read_only() -> None:
    policy = parse(base())
    with pytest.raises(TypeError):
        policy.categories["x"] = policy.categories["advice"]  # type: ignore[index]
    with pytest.raises(TypeError):
        policy.purposes["x"] = policy.purposes["advice"]  # type: ignore[index]
    with pytest.raises(Exception, match="frozen"):
        policy.default.max_age_ms = 0  # type: ignore[misc]
    assert set(policy.conversations) == {CID}
    assert policy.model.version == 1


@pytest.mark.req("RET-11")
def test_explain_summarises_the_example() -> None:
    text = Policy.load(EXAMPLE).explain()
    assert "valid (version 1)" in text
    assert "category contract (" in text
    assert "delete after 11y, keep at least 10y (HGB" in text
    assert "marketing: consent (GDPR Art. 6(1)(a)); requires consent to notice 2025-03" in text
    assert f"delete after {format_duration(7 * YEAR)}, keep at least 6y" in text
