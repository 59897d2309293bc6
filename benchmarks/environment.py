"""What a benchmark run measured with: the software versions and the command that ran it.

Every suite's JSON report records :func:`versions` and :func:`command_line` when it runs, so that
``benchmarks/RESULTS.md`` (:mod:`benchmarks.report`), written from those reports, names the
versions that were measured, not the ones installed when the report is regenerated. This module
imports nothing from entrenous: the library's version is read from this checkout's source.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Python distributions whose versions a report names: (report name, distribution name). The
#: runtime dependencies, the peers of the ``bench`` extra, the fuzzer and the plotting library.
DISTRIBUTIONS = (
    ("pynacl", "PyNaCl"),
    ("cryptography", "cryptography"),
    ("sqlcipher3", "sqlcipher3"),
    ("msgpack", "msgpack"),
    ("pydantic", "pydantic"),
    ("vodozemac", "vodozemac"),
    ("doubleratchet", "DoubleRatchet"),
    ("x3dh", "X3DH"),
    ("atheris", "atheris"),
    ("matplotlib", "matplotlib"),
)


def git_commit(root: Path = ROOT) -> str | None:
    """This checkout's commit, with ``+dirty`` if tracked files differ from it; None without git."""

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - the arguments below are fixed strings
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if changed else head or None


def entrenous_version(root: Path = ROOT) -> str | None:
    """``__version__`` of this checkout's ``src/entrenous`` (the code the workers measure)."""
    try:
        text = (root / "src" / "entrenous" / "__init__.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return found.group(1) if found else None


def sqlcipher_versions() -> dict[str, str | None]:
    """The SQLCipher and SQLite libraries sqlcipher3 is built with (None if it is missing)."""
    try:
        from sqlcipher3 import dbapi2 as sqlcipher
    except ImportError:
        return {"sqlcipher": None, "sqlite": None}
    connection = sqlcipher.connect(":memory:")
    try:
        cipher = connection.execute("PRAGMA cipher_version").fetchone()[0]
    finally:
        connection.close()
    return {"sqlcipher": str(cipher), "sqlite": str(sqlcipher.sqlite_version)}


def versions() -> dict[str, Any]:
    """The versions a run measures with: entrenous (and its git commit), Python, every package
    of :data:`DISTRIBUTIONS` (None when not installed), SQLCipher and SQLite."""
    found: dict[str, Any] = {
        "entrenous": entrenous_version(),
        "entrenous_commit": git_commit(),
        "python": sys.version.split()[0],
    }
    for name, distribution in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found.update(sqlcipher_versions())
    return found


#: The command of this run, set by ``python -m benchmarks`` (:mod:`benchmarks.__main__`).
_command: str | None = None


def set_command(argv: list[str]) -> None:
    """Record the arguments ``python -m benchmarks`` was started with."""
    global _command  # noqa: PLW0603 - one value per process, set once at start
    _command = command_line(argv)


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this run, as a user would type it: ``python -m benchmarks``
    and its arguments (those recorded by :func:`set_command`, else ``sys.argv`` without the
    program name, unless ``argv`` is given)."""
    if argv is None and _command is not None:
        return _command
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m benchmarks", *(shlex.quote(a) for a in args)])


def report_header(started: Any, mode: str, passes: int, machine: dict[str, Any]) -> dict[str, Any]:
    """The keys every suite's JSON report opens with: when, how, where and with what it ran.

    ``started`` is the run's start (a timezone-aware ``datetime``).
    """
    return {
        "format": 1,
        "started": started.isoformat(timespec="seconds"),
        "mode": mode,
        "passes": passes,
        "machine": machine,
        "versions": versions(),
        "command": command_line(),
    }
