"""The leak checks import helpers of other test folders: the protocol's state layout
(``protocol_support``) and the command line's (``cli_support``, ``test_cli_readme``)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS, _TESTS / "protocol"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
