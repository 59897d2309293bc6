"""The process the migration crash test kills: ``Client.open`` of a store at an older schema.

Run as ``python migration_worker.py DIRECTORY MODE [STATEMENT WHEN]`` (``test_migration_crash.py``
does it). The store is ``DIRECTORY/bank.db``, its raw key in ``DIRECTORY/keys.json`` (owner-only).
The worker prints ``ready`` once its imports are done, then opens the store at once (no sweep:
nothing but the migration changes it) and prints ``opened SECONDS``; then it sleeps until it is
killed. MODE is:

* ``time``: nothing more; the test kills it after a random delay.
* ``hook``: every statement the migrations run (store, then data-key file) is counted, and the
  worker sends itself SIGKILL at statement number STATEMENT, ``before`` or ``after`` running it
  (WHEN); if that statement never comes, it sends itself SIGKILL once the open has returned.
* ``calibrate``: counts as ``hook`` does but kills nothing; after ``opened`` it prints
  ``statements N`` (what the migrations ran, for the test to draw STATEMENT from), closes the
  store and exits.

Before each stage the worker writes its name to ``phase`` (no fsync: the page cache survives the
process): ``open``, ``store-migrations``, ``key-file-migrations``, ``opened``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

KEYS = "keys.json"
STORE = "bank.db"
PHASE = "phase"


class KillAt:
    """Stands in for the migrations' connection: counts statements, dies at the chosen one."""

    def __init__(self, inner: Any, counter: list[int], statement: int, when: str) -> None:
        self._inner = inner
        self._counter = counter
        self._statement = statement
        self._when = when

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._counter[0] += 1
        due = self._counter[0] == self._statement
        if due and self._when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = self._inner.execute(sql, params)
        if due:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main(argv: list[str]) -> None:
    from entrenous import Client
    from entrenous.store import migrations

    directory, mode = Path(argv[0]), argv[1]
    statement, when = (int(argv[2]), argv[3]) if mode == "hook" else (0, "")
    key = bytes.fromhex(json.loads((directory / KEYS).read_text())["key"])
    phase = os.open(directory / PHASE, os.O_WRONLY | os.O_CREAT, 0o600)

    def mark(name: str) -> None:
        os.pwrite(phase, name.encode("ascii").ljust(32), 0)

    # Every mode counts statements and marks the phases; only "hook" has a statement to die at.
    counter = [0]
    original = migrations.migrate

    def migrate(connection: Any, steps: Any, *, target: int | None = None) -> int:
        mark("store-migrations" if steps is migrations.MIGRATIONS else "key-file-migrations")
        return original(KillAt(connection, counter, statement, when), steps, target=target)

    migrations.migrate = migrate  # type: ignore[assignment]
    print("ready", flush=True)
    mark("open")
    started = time.monotonic()
    client = Client.open(directory / STORE, key=key, sweep=False)
    took = time.monotonic() - started
    mark("opened")
    print(f"opened {took:.6f}", flush=True)
    if mode == "calibrate":
        print(f"statements {counter[0]}", flush=True)
        client.close()
        return
    if mode == "hook":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1:])
