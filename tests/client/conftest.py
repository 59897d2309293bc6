"""Fixtures of the client tests, and access to the store tests' helpers.

pytest puts each test's own folder on ``sys.path`` (prepend import mode, no packages); this adds
the store and compliance tests' folders too, so ``import store_support`` (and
``compliance_support``) works whichever folder runs first.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

for _folder in ("store", "compliance"):
    _path = str(Path(__file__).resolve().parents[1] / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from store_support import Pair, PairTemplate, build_pair_template  # noqa: E402


@pytest.fixture(scope="session")
def pair_template(tmp_path_factory: pytest.TempPathFactory) -> PairTemplate:
    return build_pair_template(tmp_path_factory.mktemp("pair-template"))


@pytest.fixture
def pair(pair_template: PairTemplate, tmp_path: Path) -> Iterator[Pair]:
    """A bank and a customer (raw keys) after one message each way, both open; closed after."""
    opened = pair_template.open_copy(tmp_path)
    try:
        yield opened
    finally:
        opened.close()
