"""Kills while a store is being created: the first ``Client.open`` of a new store.

The send/receive campaign (``test_crash_campaign.py``) creates its stores before the kills. Here
``Client.open`` of a *new* store is killed at random points; reopening must then work (finish or
restart the creation), never leave a store that no key opens.

It is the regression test of the ``<store>.creating`` marker (spec/store.md): before it, such a
kill left a store that raised StoreCorrupt forever. ``ENTRENOUS_CRASH_CREATE_KILLS`` sets how many
creations are killed (default 20). (Racing first opens of a passphrase store are in
tests/store/test_lock.py.)
"""

from __future__ import annotations

import os
import secrets
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_support import creation_campaign

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")

CREATE_KILLS = int(os.environ.get("ENTRENOUS_CRASH_CREATE_KILLS", "20"))
SEED = int(os.environ.get("ENTRENOUS_CRASH_SEED", str(secrets.randbelow(2**31))))


@pytest.mark.req("API-12")
def test_kill_during_store_creation_leaves_an_openable_store(tmp_path: Path) -> None:
    outcomes = creation_campaign(tmp_path, CREATE_KILLS, SEED)
    failed = Counter({outcome: n for outcome, n in outcomes.items() if outcome != "ok"})
    assert not failed, f"seed {SEED}: reopening after a kill during creation failed: {failed}"
