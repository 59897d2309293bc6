"""spec/limits.md lists every limit with the value the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entrenous.protocol import bundle, constants, session

LIMITS = Path(__file__).resolve().parents[2] / "spec" / "limits.md"
ROW = re.compile(r"^\| `([A-Z_0-9]+)` \| (\d+) \|", re.MULTILINE)


@pytest.mark.req("LIM-01")
def test_every_documented_limit_matches_the_code() -> None:
    rows = dict((name, int(value)) for name, value in ROW.findall(LIMITS.read_text()))
    assert len(rows) >= 13
    for name, value in rows.items():
        owner = next(m for m in (constants, bundle, session) if hasattr(m, name))
        assert getattr(owner, name) == value, name


@pytest.mark.req("LIM-01")
def test_every_limit_constant_is_documented() -> None:
    documented = set(ROW.findall(LIMITS.read_text()))
    names = {name for name, _ in documented}
    limits = {n for n in dir(constants) if n.startswith(("MAX_", "MIN_", "SIGNED_PREKEY_"))}
    assert limits <= names, limits - names
