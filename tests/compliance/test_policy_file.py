"""The policy file: reading it (RET-01, RET-02), unknown keys (RET-03), every problem at once with
its location (RET-04), explicit forever (RET-07), rule consistency (RET-08 to RET-10), purposes and
consent (CON-50 to CON-53), the controller and record-of-processing fields (ROPA-50, ROPA-51)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_support import (
    CID,
    CID2,
    EXAMPLE,
    ROOT,
    base,
    locations,
    only_problem,
    parse,
    problems,
    to_toml,
)

from entrenous.compliance.consent import MAX_CONTROLLER_BYTES, MAX_VALIDITY_MS, PURPOSE_PATTERN
from entrenous.compliance.policy import LEGAL_BASES, MAX_POLICY_SIZE, Policy, Purpose
from entrenous.errors import PolicyError, PolicyProblem, UsageError

# --- the example and the base --------------------------------------------------------------------


@pytest.mark.req("RET-01", "ROPA-50", "CON-50")
def test_the_example_policy_file_is_valid() -> None:
    policy = Policy.load(EXAMPLE)
    assert set(policy.categories) == {"advice", "contract", "marketing", "support"}
    contract = policy.rule_for("contract")
    assert contract.min_age_ms == 10 * 365 * 86_400_000
    assert contract.legal_ground is not None
    assert "HGB" in contract.legal_ground
    assert policy.purpose("marketing").requires_consent
    assert policy.purpose("marketing").categories == ["marketing"]
    assert policy.source == str(EXAMPLE)
    assert policy.text == EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.req("RET-01", "ARCH-04")
def test_the_spec_example_is_valid() -> None:
    spec = (ROOT / "spec" / "compliance.md").read_text(encoding="utf-8")
    section = spec[spec.index("## Retention policy files") :]
    block = section[section.index("```toml\n") + 8 : section.index("```\n", 1)]
    policy = Policy.parse(block, source="spec/compliance.md")
    assert set(policy.categories) == {"contract", "support", "marketing"}


@pytest.mark.req("RET-01")
def test_the_test_base_is_valid() -> None:
    policy = parse(base())
    assert policy.controller.name == "Example Bank AG"


@pytest.mark.req("RET-01")
def test_load_accepts_str_and_path(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(to_toml(base()), encoding="utf-8")
    assert Policy.load(path) == Policy.load(str(path))
    assert Policy.load(path).source == str(path)


# --- RET-01: reading the file ---------------------------------------------------------------------


def _load_problem(path: Path | str) -> PolicyProblem:
    with pytest.raises(PolicyError) as info:
        Policy.load(path)
    assert info.value.source == str(path)
    (problem,) = info.value.problems
    return problem


@pytest.mark.req("RET-01")
def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    problem = _load_problem(tmp_path / "nope.toml")
    assert problem.message == "no such file"
    assert problem.location == ""


@pytest.mark.req("RET-01")
def test_a_directory_is_a_policy_error(tmp_path: Path) -> None:
    assert "is a directory" in _load_problem(tmp_path).message


@pytest.mark.req("RET-01")
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert "not a regular file" in _load_problem(fifo).message


@pytest.mark.req("RET-01")
@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions")
def test_an_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(to_toml(base()), encoding="utf-8")
    path.chmod(0)
    assert "permission denied" in _load_problem(path).message


@pytest.mark.req("RET-01")
def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    text = to_toml(base())
    path.write_text(text + "#" * (MAX_POLICY_SIZE - len(text.encode()) + 1), encoding="utf-8")
    assert "larger than the limit" in _load_problem(path).message
    with pytest.raises(PolicyError, match="larger than the limit"):
        Policy.parse(path.read_text(encoding="utf-8"))


@pytest.mark.req("RET-01")
def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    text = to_toml(base())
    path.write_text(text + "#" * (MAX_POLICY_SIZE - len(text.encode())), encoding="utf-8")
    assert path.stat().st_size == MAX_POLICY_SIZE
    Policy.load(path)


@pytest.mark.req("RET-01")
def test_a_non_utf8_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    text = to_toml(base())
    path.write_bytes(text.encode().replace(b"Offers", b"Angebote f\xfcr Sie", 1))  # Latin-1
    problem = _load_problem(path)
    assert problem.message.startswith("not UTF-8")
    assert problem.line == text[: text.index("Offers")].count("\n") + 1


@pytest.mark.req("RET-01")
def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"\xef\xbb\xbf" + to_toml(base()).encode())
    assert Policy.load(path) == parse(base())
    assert not Policy.load(path).text.startswith("\ufeff")


@pytest.mark.req("RET-01")
def test_a_toml_syntax_error_has_line_and_column() -> None:
    text = to_toml(base()).replace('max_age = "2y"', 'max_age = "2y', 1)
    problem = only_problem(text)
    assert problem.location == ""
    assert problem.message.startswith("not valid TOML")
    assert (problem.line, problem.column) == (8, 14)  # where tomllib finds the string unclosed
    assert problem.format("test.toml").startswith("test.toml:8:14: not valid TOML")


@pytest.mark.req("RET-01")
def test_a_key_defined_twice_names_both_lines() -> None:
    text = to_toml(base()).replace('max_age = "2y"', 'max_age = "2y"\nmax_age = "3y"', 1)
    problem = only_problem(text)
    assert problem.location == "retention.default.max_age"
    assert problem.line == 9
    assert problem.message == "defined twice (first at line 8)"


@pytest.mark.req("RET-01")
def test_a_table_defined_twice_is_refused() -> None:
    text = to_toml(base()) + '\n[controller]\nname = "Other"\n'
    problem = only_problem(text)
    assert problem.location == "controller"
    assert "defined twice (first at line 3)" in problem.message


@pytest.mark.req("RET-01")
@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment", "x = [", "[", "a = " + "[" * 5000, "a = " + "9" * 5000],
)
def test_degenerate_texts_are_policy_errors(text: str) -> None:
    with pytest.raises(PolicyError):
        Policy.parse(text)


@pytest.mark.req("RET-01")
def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(PolicyError, match="lone surrogate"):
        Policy.parse(to_toml(base()).replace("Offers", "\ud800"))


@pytest.mark.req("RET-01")
def test_parse_wants_a_str() -> None:
    with pytest.raises(TypeError):
        Policy.parse(to_toml(base()).encode())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Policy()


# --- RET-02: the version -------------------------------------------------------------------------


@pytest.mark.req("RET-02")
@pytest.mark.parametrize("version", [0, 2, 99, -1])
def test_an_unknown_version_is_refused_alone(version: int) -> None:
    doc = base()
    doc["version"] = version
    doc["colour"] = "blue"  # a problem in version 1, but another version is not read as one
    problem = only_problem(doc)
    assert problem.location == "version"
    assert problem.message == f"unsupported policy version {version}: this library reads version 1"
    assert problem.line == 1


@pytest.mark.req("RET-02")
def test_a_missing_version_is_a_problem() -> None:
    doc = base()
    del doc["version"]
    assert only_problem(doc).message == "missing: write version = 1 at the top of the file"


@pytest.mark.req("RET-02")
@pytest.mark.parametrize("version", ["1", 1.0, True])
def test_a_version_that_is_not_an_integer_is_a_problem(version: object) -> None:
    doc = base()
    doc["version"] = version
    assert only_problem(doc).location == "version"


# --- RET-03: unknown keys ------------------------------------------------------------------------


@pytest.mark.req("RET-03")
@pytest.mark.parametrize(
    ("path", "key", "location"),
    [
        ((), "colour", "colour"),
        (("controller",), "phone", "controller.phone"),
        (("retention",), "defaults", "retention.defaults"),
        (("retention", "default"), "mni_age", "retention.default.mni_age"),
        (("retention", "categories", "advice"), "maxage", "retention.categories.advice.maxage"),
        (("retention", "conversations", CID), "hold", f"retention.conversations.{CID}.hold"),
        (("disappearing",), "max_timer", "disappearing.max_timer"),
        (("purposes", "marketing"), "basis", "purposes.marketing.basis"),
        (("ropa",), "dpia", "ropa.dpia"),
    ],
)
def test_an_unknown_key_is_refused_where_it_is(
    path: tuple[str, ...], key: str, location: str
) -> None:
    doc = base()
    table: dict[str, Any] = doc
    for part in path:
        table = table[part]
    table[key] = "x"
    problem = only_problem(doc)
    assert problem.location == location
    assert problem.message.startswith("unknown key")
    assert problem.line is not None


@pytest.mark.req("RET-03")
def test_an_unknown_key_message_suggests_and_lists() -> None:
    doc = base()
    doc["retention"]["default"]["mni_age"] = "1y"
    problem = only_problem(doc)
    assert problem.message == (
        'unknown key; did you mean "min_age"? (allowed here: legal_ground, max_age, min_age)'
    )


@pytest.mark.req("RET-03")
def test_a_misspelt_max_age_never_means_forever() -> None:
    doc = base()
    doc["retention"]["default"] = {"max_ag": "2y"}
    assert set(locations(doc)) == {"retention.default.max_ag", "retention.default.max_age"}


# --- RET-04: every problem at once, with its location --------------------------------------------


@pytest.mark.req("RET-04")
def test_all_problems_are_reported_at_once_in_line_order() -> None:
    doc = base()
    doc["controller"]["contact"] = "nobody"
    doc["retention"]["default"]["max_age"] = 30
    doc["retention"]["categories"]["contract"]["min_age"] = "12y"  # above its max_age
    doc["retention"]["categories"]["marketing"]["mx_age"] = "1y"
    doc["purposes"]["advice"]["categories"] = ["advise"]
    doc["purposes"]["marketing"]["requires_consent"] = False
    found = problems(doc)
    assert [p.location for p in found] == [
        "controller.contact",
        "retention.default.max_age",
        "retention.categories.contract.min_age",
        "retention.categories.marketing.mx_age",
        "purposes.advice.categories[0]",
        "purposes.marketing.requires_consent",
    ]
    lines = [p.line for p in found]
    assert None not in lines
    assert lines == sorted(lines)


@pytest.mark.req("RET-04")
def test_consistency_checks_run_on_a_table_with_other_bad_keys() -> None:
    doc = base()
    marketing = doc["purposes"]["marketing"]
    marketing["requires_consent"] = False
    marketing["consent_valid_for"] = "0d"
    marketing["categories"] = ["marketing", "nothing", "marketing"]
    assert sorted(locations(doc)) == [
        "purposes.marketing.categories",  # the duplicate
        "purposes.marketing.categories[1]",  # the unknown category
        "purposes.marketing.consent_valid_for",
        "purposes.marketing.requires_consent",
    ]


@pytest.mark.req("RET-04")
def test_a_missing_table_is_located_at_its_parent() -> None:
    doc = base()
    del doc["controller"]
    problem = only_problem(doc)
    assert problem.location == "controller"
    assert problem.line is None
    assert problem.message.startswith("missing")


@pytest.mark.req("RET-04")
def test_a_missing_key_points_at_its_table_line() -> None:
    doc = base()
    del doc["retention"]["categories"]["advice"]["description"]
    problem = only_problem(doc)
    assert problem.location == "retention.categories.advice.description"
    assert problem.line == 10  # the [retention.categories.advice] header


@pytest.mark.req("RET-04")
def test_the_error_message_lists_every_problem() -> None:
    doc = base()
    doc["controller"]["contact"] = "nobody"
    doc["ropa"]["extra"] = 1
    with pytest.raises(PolicyError) as info:
        parse(doc)
    text = str(info.value)
    assert text.splitlines()[0] == "test.toml: policy refused, 2 problems"
    assert "test.toml:5: controller.contact: not an email address" in text
    assert "ropa.extra: unknown key" in text
    assert isinstance(info.value, UsageError)


@pytest.mark.req("RET-04")
def test_problems_beyond_the_limit_are_counted() -> None:
    doc = base()
    doc["ropa"].update({f"extra{i}": 1 for i in range(150)})
    found = problems(doc)
    assert len(found) == 101
    assert found[-1].message == "... and 50 more problems"


@pytest.mark.req("RET-04")
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("controller", "contact"), "Erika Mustermann, Hauptstr. 5"),
        (("controller", "name"), 12345),
        (("retention", "categories", "advice", "description"), ["Erika Mustermann"]),
        (("purposes", "marketing", "recipients"), ["Erika Mustermann", "Erika Mustermann"]),
        (("retention", "default", "legal_ground"), "Erika Mustermann"),  # without a min_age
        (("ropa", "phone"), "Erika Mustermann"),
        (("retention", "default", "max_age"), "Erika Mustermann"),
        (("retention", "default", "max_age"), "Mustermann 5"),
        (("purposes", "marketing", "consent_valid_for"), "5 Mustermann"),
    ],
)
def test_problems_never_quote_free_text(path: tuple[str, ...], value: object) -> None:
    doc = base()
    table: dict[str, Any] = doc
    for part in path[:-1]:
        table = table[part]
    table[path[-1]] = value
    with pytest.raises(PolicyError) as info:
        parse(doc)
    assert "Mustermann" not in str(info.value)
    assert "Mustermann" not in repr(info.value.problems)


@pytest.mark.req("RET-04")
def test_a_location_with_a_non_bare_key_is_quoted() -> None:
    doc = base()
    doc["retention"]["categories"]["Büro Team"] = doc["retention"]["categories"].pop("marketing")
    doc["purposes"]["marketing"]["categories"] = []
    problem = only_problem(doc)
    assert problem.location == 'retention.categories."Büro Team"'
    assert problem.message.startswith("not a valid name")


# --- RET-07: forever is written ------------------------------------------------------------------


@pytest.mark.req("RET-07")
def test_the_default_max_age_is_required() -> None:
    doc = base()
    del doc["retention"]["default"]["max_age"]
    problem = only_problem(doc)
    assert problem.location == "retention.default.max_age"
    assert '"forever" to keep forever' in problem.message
    assert "never implied" in problem.message


@pytest.mark.req("RET-07")
def test_a_category_max_age_is_required() -> None:
    doc = base()
    del doc["retention"]["categories"]["marketing"]["max_age"]
    assert locations(doc) == ["retention.categories.marketing.max_age"]


@pytest.mark.req("RET-07")
def test_forever_written_is_forever() -> None:
    doc = base()
    doc["retention"]["default"]["max_age"] = "forever"
    policy = parse(doc)
    assert policy.rule_for().max_age_ms is None
    assert policy.rule_for().keeps_forever
    assert "the default rule keeps messages forever" in policy.explain()


@pytest.mark.req("RET-07")
def test_retention_and_its_default_are_required() -> None:
    doc = base()
    del doc["retention"]
    assert locations(doc) == ["retention"]
    doc = base()
    del doc["retention"]["default"]
    assert "retention.default" in locations(doc)


# --- RET-08: one rule is consistent --------------------------------------------------------------


@pytest.mark.req("RET-08")
@pytest.mark.parametrize("where", [("default",), ("categories", "advice")])
def test_min_age_above_max_age_is_refused(where: tuple[str, ...]) -> None:
    doc = base()
    rule = doc["retention"]
    for part in where:
        rule = rule[part]
    rule.update({"max_age": "1y", "min_age": "2y", "legal_ground": "law"})
    problem = only_problem(doc)
    assert problem.location == ".".join(("retention", *where, "min_age"))
    assert problem.message.startswith("min_age 2y is above max_age 1y")


@pytest.mark.req("RET-08")
def test_min_age_equal_to_max_age_is_fine() -> None:
    doc = base()
    doc["retention"]["default"].update({"max_age": "6y", "min_age": "6y", "legal_ground": "law"})
    rule = parse(doc).rule_for()
    assert rule.min_age_ms == rule.max_age_ms


@pytest.mark.req("RET-08")
def test_a_min_age_needs_a_legal_ground() -> None:
    doc = base()
    del doc["retention"]["categories"]["contract"]["legal_ground"]
    problem = only_problem(doc)
    assert problem.location == "retention.categories.contract.legal_ground"
    assert problem.message.startswith("missing: a min_age needs the legal ground")


@pytest.mark.req("RET-08")
@pytest.mark.parametrize("min_age", [None, "0s"])
def test_a_legal_ground_needs_a_min_age(min_age: str | None) -> None:
    doc = base()
    doc["retention"]["default"]["legal_ground"] = "law"
    if min_age is not None:
        doc["retention"]["default"]["min_age"] = min_age
    problem = only_problem(doc)
    assert problem.location == "retention.default.legal_ground"
    assert "legal_ground without a min_age" in problem.message


@pytest.mark.req("RET-08")
def test_a_forever_maximum_takes_any_minimum() -> None:
    doc = base()
    doc["retention"]["default"].update(
        {"max_age": "forever", "min_age": "200y", "legal_ground": "law"}
    )
    assert parse(doc).rule_for().min_age_ms == 200 * 365 * 86_400_000


# --- RET-09: names and ids -----------------------------------------------------------------------


@pytest.mark.req("RET-09")
@pytest.mark.parametrize("name", ["Advice", "_x", "a-", "a b", ".a", "x" * 65, "", "é"])
def test_a_bad_category_name_is_refused(name: str) -> None:
    doc = base()
    doc["retention"]["categories"][name] = {"description": "x", "max_age": "1y"}
    problem = only_problem(doc)
    assert problem.location.startswith("retention.categories.")
    assert problem.message.startswith("not a valid name")


@pytest.mark.req("RET-09")
@pytest.mark.parametrize("name", ["a", "1st", "support-2", "long_name", "advice.v2", "x" * 64])
def test_good_category_names(name: str) -> None:
    doc = base()
    doc["retention"]["categories"][name] = {"description": "x", "max_age": "1y"}
    assert name in parse(doc).categories


@pytest.mark.req("RET-09", "CON-53")
@given(st.text(alphabet="ab1.-_ A\u00e9", max_size=70))
def test_names_are_exactly_the_consent_modules_purpose_identifiers(name: str) -> None:
    doc = base()
    doc["purposes"][name] = {
        "description": "x",
        "legal_basis": "contract",
        "requires_consent": False,
    }
    doc["retention"]["categories"][name] = {"description": "x", "max_age": "1y"}
    if PURPOSE_PATTERN.fullmatch(name):
        policy = parse(doc)
        assert name in policy.purposes
        assert name in policy.categories
    else:
        assert sorted(locations(doc)) == [
            f"purposes.{_key(name)}",
            f"retention.categories.{_key(name)}",
        ]


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


@pytest.mark.req("RET-09")
def test_a_bad_purpose_name_is_refused() -> None:
    doc = base()
    doc["purposes"]["Marketing"] = doc["purposes"].pop("marketing")
    problem = only_problem(doc)
    assert problem.location == "purposes.Marketing"


@pytest.mark.req("RET-09")
@pytest.mark.parametrize(
    ("cid", "hint"),
    [
        (CID.upper(), "in lowercase"),
        (CID[:-1], "expected 32 lowercase hexadecimal digits"),
        (CID + "0", "expected 32 lowercase hexadecimal digits"),
        ("g" * 32, "expected 32 lowercase hexadecimal digits"),
        ("conversation-1", "expected 32 lowercase hexadecimal digits"),
    ],
)
def test_a_bad_conversation_id_is_refused(cid: str, hint: str) -> None:
    doc = base()
    doc["retention"]["conversations"] = {cid: {"max_age": "forever"}}
    problem = only_problem(doc)
    assert problem.location == f"retention.conversations.{cid}"
    assert hint in problem.message
    assert problem.line is not None


# --- RET-10: overrides ---------------------------------------------------------------------------


@pytest.mark.req("RET-10")
def test_an_empty_override_is_refused() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {}
    problem = only_problem(doc)
    assert problem.location == f"retention.conversations.{CID2}"
    assert "at least one of category, max_age, min_age" in problem.message


@pytest.mark.req("RET-10")
def test_an_override_naming_an_unknown_category_is_refused() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {"category": "contrat"}
    problem = only_problem(doc)
    assert problem.location == f"retention.conversations.{CID2}.category"
    assert problem.message.startswith('unknown category "contrat"')
    assert 'did you mean "contract"?' in problem.message


@pytest.mark.req("RET-10")
def test_an_override_max_age_below_a_category_minimum_is_refused() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {"max_age": "30d"}
    problem = only_problem(doc)
    assert problem.location == f"retention.conversations.{CID2}.max_age"
    assert problem.message.startswith("max_age 30d is below the min_age of ")
    assert "retention.categories.advice (5y, when the conversation's category is advice)" in (
        problem.message
    )
    assert "retention.categories.contract (10y" in problem.message
    assert "retention.default" not in problem.message  # the default has no minimum
    assert problem.message.endswith("set min_age here, or name the conversation's category")


@pytest.mark.req("RET-10")
def test_an_override_with_its_category_is_checked_against_that_category_only() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {"category": "marketing", "max_age": "30d"}
    assert parse(doc).rule_for(None, CID2).max_age_ms == 30 * 86_400_000
    doc["retention"]["conversations"][CID2] = {"category": "contract", "max_age": "30d"}
    problem = only_problem(doc)
    assert problem.message == (
        "max_age 30d is below the min_age of retention.categories.contract (10y): set min_age here"
    )


@pytest.mark.req("RET-10")
def test_an_override_min_age_above_an_inherited_maximum_is_refused() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {
        "category": "marketing",
        "min_age": "3y",
        "legal_ground": "law",
    }
    problem = only_problem(doc)
    assert problem.location == f"retention.conversations.{CID2}.min_age"
    assert problem.message == (
        "min_age 3y is above the max_age of retention.categories.marketing (1y): "
        "set max_age here too"
    )


@pytest.mark.req("RET-10")
def test_an_override_setting_both_ages_is_checked_on_its_own() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {
        "max_age": "30d",
        "min_age": "0s",
    }
    assert parse(doc).rule_for("contract", CID2).min_age_ms == 0
    doc["retention"]["conversations"][CID2] = {
        "max_age": "30d",
        "min_age": "60d",
        "legal_ground": "law",
    }
    problem = only_problem(doc)
    assert problem.location == f"retention.conversations.{CID2}.min_age"
    assert problem.message.startswith("min_age 60d is above max_age 30d")


@pytest.mark.req("RET-10", "RET-08")
def test_an_override_min_age_needs_its_legal_ground() -> None:
    doc = base()
    doc["retention"]["conversations"][CID2] = {"max_age": "forever", "min_age": "1y"}
    assert locations(doc) == [f"retention.conversations.{CID2}.legal_ground"]
    doc["retention"]["conversations"][CID2] = {"max_age": "forever", "legal_ground": "law"}
    assert locations(doc) == [f"retention.conversations.{CID2}.legal_ground"]


# --- CON-50 to CON-53: purposes and consent ------------------------------------------------------


@pytest.mark.req("CON-50")
@pytest.mark.parametrize("basis", LEGAL_BASES)
def test_each_lawful_basis_is_accepted(basis: str) -> None:
    doc = base()
    purpose = doc["purposes"]["advice"]
    purpose["legal_basis"] = basis
    purpose["requires_consent"] = basis == "consent"
    if basis == "consent":
        purpose["notice_version"] = "v1"
    assert parse(doc).purpose("advice").legal_basis == basis


@pytest.mark.req("CON-50")
def test_the_model_and_the_constant_list_the_same_bases() -> None:
    from typing import get_args

    assert get_args(Purpose.model_fields["legal_basis"].annotation) == LEGAL_BASES


@pytest.mark.req("CON-50")
@pytest.mark.parametrize("basis", ["legitimate_interest", "Consent", "art6_1_f", ""])
def test_another_legal_basis_is_refused(basis: str) -> None:
    doc = base()
    doc["purposes"]["advice"]["legal_basis"] = basis
    problem = only_problem(doc)
    assert problem.location == "purposes.advice.legal_basis"
    assert problem.message.startswith("expected one of consent, contract, legal_obligation")


@pytest.mark.req("CON-51")
def test_requires_consent_must_be_written() -> None:
    doc = base()
    del doc["purposes"]["advice"]["requires_consent"]
    problem = only_problem(doc)
    assert problem.location == "purposes.advice.requires_consent"
    assert "missing" in problem.message


@pytest.mark.req("CON-51")
def test_consent_basis_requires_consent() -> None:
    doc = base()
    doc["purposes"]["marketing"]["requires_consent"] = False
    problem = only_problem(doc)
    assert problem.location == "purposes.marketing.requires_consent"
    assert problem.message.startswith("must be true: the legal basis is consent")


@pytest.mark.req("CON-51")
def test_another_basis_does_not_require_consent() -> None:
    doc = base()
    doc["purposes"]["advice"]["requires_consent"] = True
    problem = only_problem(doc)
    assert problem.location == "purposes.advice.requires_consent"
    assert problem.message.startswith("must be false: the legal basis is contract, not consent")


@pytest.mark.req("CON-51")
@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_requires_consent_is_a_boolean(value: object) -> None:
    doc = base()
    doc["purposes"]["marketing"]["requires_consent"] = value
    problem = only_problem(doc)
    assert problem.message == "expected true or false"


@pytest.mark.req("CON-52")
def test_consent_needs_a_notice_version() -> None:
    doc = base()
    del doc["purposes"]["marketing"]["notice_version"]
    problem = only_problem(doc)
    assert problem.location == "purposes.marketing.notice_version"
    assert problem.message.startswith("missing: consent is given to a notice")


@pytest.mark.req("CON-52")
@pytest.mark.parametrize("digest", ["AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32])
def test_a_notice_hash_is_64_lowercase_hex(digest: str) -> None:
    doc = base()
    doc["purposes"]["marketing"]["notice_sha256"] = digest
    problem = only_problem(doc)
    assert problem.location == "purposes.marketing.notice_sha256"
    assert "64 lowercase hexadecimal digits" in problem.message


@pytest.mark.req("CON-52")
@pytest.mark.parametrize("version", ["", " v1", "v 1", "-v1", "v1/2", "x" * 65, "é1"])
def test_a_notice_version_is_the_consent_modules_identifier(version: str) -> None:
    doc = base()
    doc["purposes"]["marketing"]["notice_version"] = version
    problem = only_problem(doc)
    assert problem.location == "purposes.marketing.notice_version"
    assert problem.message.startswith("not a notice version")
    for good in ("2025-03", "v3.1", "1", "a:b+c_d", "x" * 64):
        doc["purposes"]["marketing"]["notice_version"] = good
        assert parse(doc).purpose("marketing").notice_version == good


@pytest.mark.req("CON-52")
def test_consent_validity_is_at_most_the_consent_modules_limit() -> None:
    doc = base()
    doc["purposes"]["marketing"]["consent_valid_for"] = "36525d"
    assert parse(doc).purpose("marketing").consent_valid_for_ms == MAX_VALIDITY_MS
    doc["purposes"]["marketing"]["consent_valid_for"] = "36526d"
    problem = only_problem(doc)
    assert problem.location == "purposes.marketing.consent_valid_for"
    assert problem.message.startswith("above the longest consent validity, 36525d")


@pytest.mark.req("CON-52")
def test_a_notice_hash_needs_a_notice_version() -> None:
    doc = base()
    doc["purposes"]["advice"]["notice_sha256"] = "cd" * 32
    assert locations(doc) == ["purposes.advice.notice_version"]


@pytest.mark.req("CON-52")
def test_consent_valid_for_only_with_consent() -> None:
    doc = base()
    doc["purposes"]["advice"]["consent_valid_for"] = "1y"
    problem = only_problem(doc)
    assert problem.location == "purposes.advice.consent_valid_for"
    assert problem.message.startswith("only a purpose whose legal basis is consent")


@pytest.mark.req("CON-52")
def test_consent_valid_for_is_a_positive_duration() -> None:
    doc = base()
    doc["purposes"]["marketing"]["consent_valid_for"] = "0d"
    assert locations(doc) == ["purposes.marketing.consent_valid_for"]
    doc["purposes"]["marketing"]["consent_valid_for"] = 365
    assert locations(doc) == ["purposes.marketing.consent_valid_for"]
    doc["purposes"]["marketing"]["consent_valid_for"] = "18w"
    assert parse(doc).purpose("marketing").consent_valid_for_ms == 18 * 7 * 86_400_000


@pytest.mark.req("CON-53")
def test_a_purpose_naming_an_unknown_category_is_refused_at_its_index() -> None:
    doc = base()
    doc["purposes"]["advice"]["categories"] = ["advice", "markting", "contract", "nope"]
    found = problems(doc)
    assert [p.location for p in found] == [
        "purposes.advice.categories[1]",
        "purposes.advice.categories[3]",
    ]
    assert found[0].message.startswith('unknown category "markting"')
    assert 'did you mean "marketing"?' in found[0].message


@pytest.mark.req("CON-53")
def test_a_purpose_category_listed_twice_is_refused() -> None:
    doc = base()
    doc["purposes"]["advice"]["categories"] = ["advice", "advice"]
    problem = only_problem(doc)
    assert problem.location == "purposes.advice.categories"
    assert problem.message == "items [0] and [1] are the same"


@pytest.mark.req("CON-53")
def test_purpose_lookup() -> None:
    policy = parse(base())
    assert policy.purpose("marketing").notice_version == "v1"
    assert set(policy.purposes) == {"advice", "marketing"}
    with pytest.raises(UsageError, match=r'unknown purpose "sales" \(the policy defines: advice'):
        policy.purpose("sales")
    with pytest.raises(UsageError) as info:
        policy.purpose("Erika Mustermann")
    assert "Mustermann" not in str(info.value)


@pytest.mark.req("CON-53")
def test_purposes_are_optional() -> None:
    doc = base()
    del doc["purposes"]
    assert dict(parse(doc).purposes) == {}


# --- ROPA-50, ROPA-51: controller and record fields ----------------------------------------------


@pytest.mark.req("ROPA-50")
def test_the_controller_is_required() -> None:
    doc = base()
    doc["controller"] = {}
    assert sorted(locations(doc)) == ["controller.contact", "controller.name"]


@pytest.mark.req("ROPA-50")
@pytest.mark.parametrize(
    "contact", ["privacy", "a@b", "a b@c.de", "@bank.example", "a@@bank.example", ""]
)
def test_the_controller_contact_is_an_email_address(contact: str) -> None:
    doc = base()
    doc["controller"]["contact"] = contact
    problem = only_problem(doc)
    assert problem.location == "controller.contact"


@pytest.mark.req("ROPA-50")
def test_dpo_and_representative_are_optional_text() -> None:
    doc = base()
    doc["controller"].update({"dpo": "Dr. Data", "representative": "EU Rep GmbH"})
    controller = parse(doc).controller
    assert (controller.dpo, controller.representative) == ("Dr. Data", "EU Rep GmbH")
    doc["controller"]["dpo"] = "   "
    assert locations(doc) == ["controller.dpo"]


@pytest.mark.req("ROPA-51")
@pytest.mark.parametrize("field", ["data_categories", "data_subjects", "recipients", "transfers"])
def test_purpose_record_lists(field: str) -> None:
    doc = base()
    doc["purposes"]["advice"][field] = ["a", "b"]
    assert getattr(parse(doc).purpose("advice"), field) == ["a", "b"]
    doc["purposes"]["advice"][field] = ["a", "a"]
    assert locations(doc) == [f"purposes.advice.{field}"]
    doc["purposes"]["advice"][field] = ["a", ""]
    assert locations(doc) == [f"purposes.advice.{field}[1]"]
    doc["purposes"]["advice"][field] = "a"
    assert only_problem(doc).message.startswith("expected a list")


@pytest.mark.req("ROPA-51")
def test_security_measures() -> None:
    assert parse(base()).security_measures == ("end-to-end encryption",)
    doc = base()
    del doc["ropa"]
    assert parse(doc).security_measures == ()
    doc["ropa"] = {"security_measures": ["x", "x"]}
    assert locations(doc) == ["ropa.security_measures"]


@pytest.mark.req("ROPA-50")
def test_the_controller_name_fits_a_consent_record() -> None:
    doc = base()
    doc["controller"]["name"] = "ä" * (MAX_CONTROLLER_BYTES // 2)
    parse(doc)
    doc["controller"]["name"] = "ä" * (MAX_CONTROLLER_BYTES // 2 + 1)
    problem = only_problem(doc)
    assert problem.location == "controller.name"
    assert (
        problem.message
        == f"longer than {MAX_CONTROLLER_BYTES} bytes (it goes into consent records)"
    )


@pytest.mark.req("ROPA-51")
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85"])
def test_texts_have_no_control_characters(char: str) -> None:
    doc = base()
    doc["retention"]["categories"]["advice"]["description"] = f"a{char}b"
    assert only_problem(doc).message == "must not contain control characters"
    doc["retention"]["categories"]["advice"]["description"] = "line one\nline two\tand a tab"
    parse(doc)


@pytest.mark.req("ROPA-51")
def test_a_text_has_a_length_limit() -> None:
    doc = base()
    doc["retention"]["categories"]["advice"]["description"] = "x" * 4097
    problem = only_problem(doc)
    assert problem.message == "longer than 4096 characters"


# --- large files stay cheap and their messages short ---------------------------------------------


def _many_categories(count: int) -> dict[str, Any]:
    doc = base()
    for i in range(count):
        doc["retention"]["categories"][f"c{i:04d}"] = {
            "description": "x",
            "max_age": "11y",
            "min_age": "10y",
            "legal_ground": "law",
        }
    return doc


@pytest.mark.req("RET-10", "RET-04")
def test_an_override_conflicting_with_many_categories_names_the_first_few() -> None:
    doc = _many_categories(500)
    doc["retention"]["conversations"][CID2] = {"max_age": "30d"}
    problem = only_problem(doc)
    assert problem.message.startswith(
        "max_age 30d is below the min_age of retention.categories.c0000 (10y, when the "
        "conversation's category is c0000); retention.categories.c0001 (10y, "
    )
    # c0000..c0499, contract and advice conflict; the three highest minimums are shown
    assert "; and 499 more: set min_age here" in problem.message
    assert len(problem.message) < 400


@pytest.mark.req("CON-53", "RET-04")
def test_an_unknown_category_among_many_lists_a_few() -> None:
    doc = _many_categories(500)
    doc["purposes"]["advice"]["categories"] = ["nope"]
    problem = only_problem(doc)
    assert problem.message == (
        'unknown category "nope" (categories defined in retention.categories: advice, c0000, '
        "c0001, c0002, c0003, c0004, c0005, c0006, c0007, c0008 and 493 more)"
    )


@pytest.mark.req("RET-04")
def test_a_file_of_many_problems_reports_the_first_hundred_in_line_order() -> None:
    text = "\n".join(f"k{i} = 1" for i in range(20_000))
    with pytest.raises(PolicyError) as info:
        Policy.parse(text)
    found = info.value.problems
    assert len(found) == 101
    assert found[-1].message == "... and 19903 more problems"  # 20,000 keys, 3 missing keys
    assert [p.line for p in found[:3]] == [1, 2, 3]
    assert all(len(p.message) < 200 for p in found)
