"""Loading the vendored Wycheproof files (vectors/, Apache-2.0, see vectors/LICENSE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> tuple[dict[str, Any], list[Any]]:
    """The parsed file and one pytest param per test case (of every group), named by tcId."""
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    cases = [
        pytest.param(group, case, id=f"tc{case['tcId']}")
        for group in data["testGroups"]
        for case in group["tests"]
    ]
    return data, cases
