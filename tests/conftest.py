"""Shared pytest configuration: Hypothesis profiles.

``default`` (local runs) explores 100 examples per property. ``ci`` (chosen when the ``CI``
environment variable is set, as on CI) is derandomised, so a CI run is reproducible, explores fewer
examples, keeps no example database, and prints the blob needed to replay a failure.
``HYPOTHESIS_PROFILE=name`` picks a profile explicitly. Neither profile has a deadline: timing on
shared machines is too noisy to fail a test on.

Both profiles name their parent explicitly: Hypothesis itself switches its defaults to its own
``ci`` profile whenever ``CI`` is set, and a profile without a parent would inherit from whichever
one is loaded.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile(
    "default", parent=settings.get_profile("default"), max_examples=100, deadline=None
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("ci"),  # Hypothesis' own: no database, too_slow suppressed
    derandomize=True,
    max_examples=50,
    deadline=None,
    print_blob=True,
)


def _profile() -> str:
    chosen = os.environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return "ci" if in_ci else "default"


settings.load_profile(_profile())
