"""One process owns a store at a time: an exclusive ``flock`` on ``<store>.lock``.

The lock is taken before anything else is opened and held until the client closes; a second
open (from another process, or another ``Client`` in this one) raises
:class:`~entrenous.errors.StoreLocked` at once instead of waiting (STO-09). The operating system
releases the lock when the process dies, so a crash never leaves a store locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from entrenous.errors import StoreError, StoreLocked


class StoreLock:
    """An exclusive, non-blocking lock on a store; release with :meth:`release`."""

    __slots__ = ("_fd", "path")

    def __init__(self, store: Path) -> None:
        self.path = store.with_name(store.name + ".lock")
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file ({exc.strerror})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise StoreLocked("the store is open in another process or client") from None

    def release(self) -> None:
        """Release the lock; idempotent."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
