"""Whatever the input, checking a policy raises PolicyError or returns a Policy (RET-01, RET-04):
random text, random bytes on disk, mutations of a valid file, and random documents built from the
format's own keys (to get past the TOML parser into validation and the consistency checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_support import BASE, CID, EXAMPLE, to_toml

from entrenous.compliance.policy import Policy
from entrenous.errors import PolicyError

pytestmark = pytest.mark.req("RET-01", "RET-04")

EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")


def _check(text: str) -> None:
    try:
        policy = Policy.parse(text)
    except PolicyError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.message
            assert "\n" not in problem.message
            assert problem.line is None or problem.line >= 1
            assert problem.format("x").startswith("x")
    else:  # a valid policy is usable end to end
        assert len(policy.fingerprint) == 64
        policy.explain()
        policy.to_json()
        for name in policy.categories:
            policy.rule_for(name)
        for cid in policy.conversations:
            policy.rule_for(None, cid)


@given(st.text(max_size=2000))
def test_random_text(text: str) -> None:
    _check(text)


_PUNCTUATION = ["[", "]", "=", '"', "'", "\n", "a", ".", "{", "}", ",", "#", "1"]


@given(st.lists(st.sampled_from(_PUNCTUATION)))
def test_random_toml_punctuation(parts: list[str]) -> None:
    _check("".join(parts))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_random_bytes_on_disk(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(data)
    try:
        Policy.load(path)
    except PolicyError as exc:
        assert exc.problems


@given(st.data())
def test_mutations_of_the_example(data: st.DataObject) -> None:
    text = EXAMPLE_TEXT
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        start = data.draw(st.integers(min_value=0, max_value=len(text)))
        end = data.draw(st.integers(min_value=start, max_value=min(len(text), start + 40)))
        insert = data.draw(st.text(max_size=20) | st.sampled_from(['"', "]", "\n", "forever", "0"]))
        text = text[:start] + insert + text[end:]
    _check(text)


# Random documents in the shape of a policy: known keys with random values of any TOML type.
_KEYS = sorted(
    {
        "version", "controller", "retention", "default", "categories", "conversations",
        "disappearing", "purposes", "ropa", "name", "contact", "dpo", "representative",
        "max_age", "min_age", "legal_ground", "description", "category", "allowed",
        "legal_basis", "requires_consent", "notice_version", "notice_sha256",
        "consent_valid_for", "data_categories", "data_subjects", "recipients", "transfers",
        "security_measures", "advice", "contract", "marketing", CID, "Bad Name",
    }
)  # fmt: skip
_SCALARS = (
    st.sampled_from(
        ["2y", "forever", "0s", "10y", "30", "consent", "contract", "advice", "a@b.example", ""]
    )
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
)
_VALUES = st.recursive(
    _SCALARS | st.lists(_SCALARS, max_size=3),
    lambda inner: st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5),
    max_leaves=25,
)


def _mutate(doc: Any, data: st.DataObject, depth: int = 0) -> Any:
    if not isinstance(doc, dict) or depth > 4:
        return doc
    out = {}
    for key, value in doc.items():
        choice = data.draw(st.integers(min_value=0, max_value=9))
        if choice == 0:
            continue  # drop the key
        if choice == 1:
            out[key] = data.draw(_VALUES)  # replace its value
        else:
            out[key] = _mutate(value, data, depth + 1)
    if data.draw(st.integers(min_value=0, max_value=4)) == 0:
        out[data.draw(st.sampled_from(_KEYS))] = data.draw(_VALUES)
    return out


@settings(max_examples=300)
@given(st.data())
def test_random_documents_shaped_like_a_policy(data: st.DataObject) -> None:
    doc = _mutate(BASE, data)
    _check(to_toml(doc))


@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=8))
def test_random_documents(doc: dict[str, Any]) -> None:
    _check(to_toml(doc))
