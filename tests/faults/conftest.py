"""Fixtures of the fault campaign: a store with known content, built once and copied per test.

Adds the store and compliance tests' folders and the tests folder itself to ``sys.path``
(as tests/client/conftest.py does), so that their helpers can be imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _path in [str(_HERE.parent / f) for f in ("store", "compliance")] + [
    str(_HERE.parent)  # cli_support
]:
    if _path not in sys.path:
        sys.path.insert(0, _path)

from fault_support import World, build_world  # noqa: E402


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("fault-world"))


@pytest.fixture
def world(world_template: World, tmp_path: Path) -> World:
    """A closed copy of the world in this test's ``tmp_path``."""
    return world_template.copy_to(tmp_path / "world")
