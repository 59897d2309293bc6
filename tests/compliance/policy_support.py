"""Helpers for the policy-file tests: a minimal valid policy as data, a small TOML writer, and
shortcuts for parsing and collecting problems."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from entrenous.compliance.policy import Policy
from entrenous.errors import PolicyError, PolicyProblem

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "policy.toml"

CID = "0123456789abcdef0123456789abcdef"
CID2 = "fedcba9876543210fedcba9876543210"

#: A valid policy using every part of the format; tests copy it and break one thing.
BASE: dict[str, Any] = {
    "version": 1,
    "controller": {"name": "Example Bank AG", "contact": "privacy@bank.example"},
    "retention": {
        "default": {"max_age": "2y"},
        "categories": {
            "advice": {
                "description": "Investment advice",
                "max_age": "7y",
                "min_age": "5y",
                "legal_ground": "WpHG §83",
            },
            "contract": {
                "description": "Contracts",
                "max_age": "11y",
                "min_age": "10y",
                "legal_ground": "HGB §257, AO §147",
            },
            "marketing": {"description": "Offers", "max_age": "1y"},
        },
        "conversations": {CID: {"category": "contract", "max_age": "forever"}},
    },
    "disappearing": {"allowed": True},
    "purposes": {
        "advice": {
            "description": "Advice",
            "legal_basis": "contract",
            "requires_consent": False,
            "categories": ["advice"],
        },
        "marketing": {
            "description": "Offers",
            "legal_basis": "consent",
            "requires_consent": True,
            "notice_version": "v1",
            "notice_sha256": "ab" * 32,
            "consent_valid_for": "1y",
            "categories": ["marketing"],
            "data_categories": ["name", "message content"],
            "recipients": ["marketing team"],
        },
    },
    "ropa": {"security_measures": ["end-to-end encryption"]},
}

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def base() -> dict[str, Any]:
    """A fresh deep copy of :data:`BASE`."""
    return copy.deepcopy(BASE)


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):  # JSON's escapes are TOML's, but TOML also escapes DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any]) -> str:
    """``doc`` as TOML: scalars and lists as key = value, nested dicts as [tables]."""
    out: list[str] = []

    def table(path: list[str], data: dict[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in data.items() if isinstance(v, dict)}
        if path and (scalars or not tables):
            out.append("[" + ".".join(_key(p) for p in path) + "]")
        for key, value in scalars.items():
            out.append(f"{_key(key)} = {_value(value)}")
        if scalars or (path and not tables):
            out.append("")
        for key, value in tables.items():
            table([*path, key], value)

    table([], doc)
    return "\n".join(out)


def parse(doc: dict[str, Any] | str) -> Policy:
    return Policy.parse(doc if isinstance(doc, str) else to_toml(doc), source="test.toml")


def problems(doc: dict[str, Any] | str) -> list[PolicyProblem]:
    """The problems of an invalid policy (fails the test if it is valid)."""
    with pytest.raises(PolicyError) as info:
        parse(doc)
    assert info.value.problems, "a PolicyError without problems"
    return list(info.value.problems)


def locations(doc: dict[str, Any] | str) -> list[str]:
    return [p.location for p in problems(doc)]


def only_problem(doc: dict[str, Any] | str) -> PolicyProblem:
    found = problems(doc)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]
