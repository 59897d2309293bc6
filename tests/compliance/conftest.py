"""Fixtures of the compliance tests: a settable clock, policies and a bank with a customer.

Adds the store tests' folder to ``sys.path`` (as tests/client/conftest.py does) so that
``store_support`` can be imported, and the forensic reader's folder for the erasure scans.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _folder in ("store", "forensic"):
    _path = str(_HERE.parent / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)
