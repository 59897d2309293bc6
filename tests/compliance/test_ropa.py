"""The record of processing (ROPA-01), generated from the example policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrenous.compliance import ropa
from entrenous.compliance.policy import Policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"


@pytest.mark.req("ROPA-01")
def test_the_record_has_every_article_30_field() -> None:
    policy = Policy.load(EXAMPLE)
    record = ropa.build(policy)
    assert record["controller"]["name"] == policy.controller.name
    assert {a["purpose"] for a in record["activities"]} == set(policy.purposes)
    for activity in record["activities"]:
        for field in (
            "description",
            "legal_basis",
            "data_subjects",
            "personal_data",
            "recipients",
            "third_country_transfers",
            "time_limits",
        ):
            assert field in activity
        assert activity["time_limits"]
    assert any("SQLCipher" in m for m in record["security_measures"])
    assert all(m in record["security_measures"] for m in policy.security_measures)
    text = ropa.to_markdown(record)
    assert text.startswith("# Record of processing activities")
    for name in policy.purposes:
        assert f"## Purpose: {name}" in text
    contract = policy.rule_for("contract")
    assert contract.legal_ground is not None and contract.legal_ground in text
