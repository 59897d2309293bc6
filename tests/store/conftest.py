"""Fixtures of the store tests: stores built once per session and copied into each test.

Building a store costs little with a raw key, but a passphrase store costs an Argon2id run
(about 0.1 s): the templates keep the suite fast. Each test gets its own copy in ``tmp_path``.
"""

from __future__ import annotations

import os

import pytest
from store_support import PASSPHRASE, Template, build_template


@pytest.fixture(scope="session")
def raw_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(
        tmp_path_factory.mktemp("raw-template"), key=os.urandom(32), passphrase=None
    )


@pytest.fixture(scope="session")
def passphrase_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("pw-template"), key=None, passphrase=PASSPHRASE)
