"""Shared helpers for the primitives tests."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest


def secret_encodings(secret: bytes) -> list[str]:
    """Every text form a secret could leak in: raw repr, hex (both cases), base64 variants, and
    each 4-byte window in hex (so a partial leak is caught too)."""
    hexed = secret.hex()
    forms = [
        repr(secret),
        str(secret),
        hexed,
        hexed.upper(),
        base64.b64encode(secret).decode(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        base64.b32encode(secret).decode().rstrip("="),
    ]
    forms += [hexed[i : i + 8] for i in range(0, len(hexed) - 7, 2)]
    return forms


@pytest.fixture
def assert_no_secret() -> Callable[[str, bytes], None]:
    """``assert_no_secret(text, secret)`` fails if ``text`` shows ``secret`` in any encoding."""

    def check(text: str, secret: bytes) -> None:
        for form in secret_encodings(secret):
            assert form not in text, "secret material leaked into a text representation"

    return check
