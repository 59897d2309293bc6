"""One process owns a store at a time: an exclusive ``flock`` on ``<store>.lock``.

The lock is taken before anything else is opened and held until the client closes; a second
open (from another process, or another ``Client`` in this one) raises
:class:`~entrenous.errors.StoreLocked` at once instead of waiting (STO-09). The operating system
releases the lock when the process dies, so a crash never leaves a store locked.

A child made by ``fork()`` (multiprocessing's default start method on Linux) inherits the lock's
file descriptor, and with it the lock: ``flock`` locks belong to the open file, which parent and
child then share. So that such a child neither keeps a dead owner's store locked nor releases the
living owner's lock (an unlock from any process sharing the file releases it for all), the child
closes its copies of every lock descriptor right after the fork, without unlocking, and a
:meth:`StoreLock.release` outside the process that took the lock never unlocks (FLT-52).
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from pathlib import Path

from entrenous.errors import StoreError, StoreLocked


class StoreLock:
    """An exclusive, non-blocking lock on a store; release with :meth:`release`."""

    __slots__ = ("__weakref__", "_fd", "_pid", "path")

    def __init__(self, store: Path) -> None:
        self.path = store.with_name(store.name + ".lock")
        # No fork between the open and the registration (another thread forking): the child
        # would inherit a descriptor, and with it the lock, that its at-fork hook cannot see.
        with _FORKING:
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
            self._pid = os.getpid()
            _HELD.add(self)

    def release(self) -> None:
        """Release the lock; idempotent. In another process than the owner (a forked child), only
        this process's descriptor is closed: the owner keeps its lock."""
        with _FORKING:
            if self._fd is not None:
                if self._pid == os.getpid():
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
            _HELD.discard(self)

    def _drop_inherited(self) -> None:
        """In a forked child: close the inherited descriptor, leaving the owner's lock alone."""
        if self._fd is not None and self._pid != os.getpid():
            os.close(self._fd)
            self._fd = None


#: The locks this process holds, so that a forked child can drop its copies of them.
_HELD: weakref.WeakSet[StoreLock] = weakref.WeakSet()
#: Held while a lock is taken or released and across a fork, so that a fork never sees a lock
#: half taken (a descriptor open but not in ``_HELD``) or half released (a closed descriptor
#: still recorded, whose number may already be another file's).
_FORKING = threading.Lock()


def _after_fork_in_child() -> None:
    for lock in list(_HELD):
        lock._drop_inherited()
    _HELD.clear()
    _FORKING.release()


os.register_at_fork(
    before=_FORKING.acquire,
    after_in_parent=_FORKING.release,
    after_in_child=_after_fork_in_child,
)
