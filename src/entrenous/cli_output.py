"""What the command line prints and writes: JSON or text, progress, private output files.

The rules the commands share live here: stdout carries the result (text for people, or one JSON
document with ``--json``), stderr carries prompts, progress and errors; an error is one line,
raised as :class:`CliError` with its exit status. Files that may hold personal data (exports,
receipts, audit trails) are written atomically and created readable by the owner only.

Part of the command-line layer: it may import any part of the library, nothing imports it but
the other ``cli*`` modules.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

#: Exit statuses (documented in :mod:`entrenous.cli` and the README).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130
#: What a store key looks like on a command line or in a file name: 64 hexadecimal digits.
KEY_LIKE = re.compile(r"[0-9a-fA-F]{64}")
HIDDEN_KEY = "(not shown: it looks like a key)"


class CliError(Exception):
    """An error of the command line itself: one line for stderr and the exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def hide_keys(text: str) -> str:
    """``text`` with every run of characters that looks like a store key replaced.

    For messages that quote what was typed (argparse's usage errors, a file or variable name):
    a key typed or pasted by mistake must not be printed back, to a log or a shared screen.
    """
    return re.sub(r"[0-9a-fA-F]{64,}", HIDDEN_KEY, text)


def one_line(text: str) -> str:
    """``text`` on one line (an error message must never span several)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def error(message: str) -> None:
    """Print one error line to stderr."""
    print(f"entrenous: {one_line(message)}", file=sys.stderr)


def note(message: str) -> None:
    """Print a line for people to stderr (a summary beside a result on stdout)."""
    print(message, file=sys.stderr)


def print_json(value: object) -> None:
    """Print one JSON document on stdout."""
    print(dumps(value))


def dumps(value: object) -> str:
    """JSON text for people and scripts alike: indented, UTF-8 as is."""
    return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)


#: The last millisecond of the year 9999 (entrenous.payload.MAX_TIME_MS).
_LAST_MS = 253402300799999


def _moment(ms: int) -> datetime:
    """A time in ms as a datetime; one past the year 9999 (an expiry no clock reaches) as the
    last millisecond of that year."""
    return datetime.fromtimestamp(min(ms, _LAST_MS) / 1000, tz=UTC)


def iso_ms(ms: int | None) -> str | None:
    """An ISO 8601 UTC time with milliseconds (``2026-01-01T00:00:00.000Z``), or ``None``."""
    if ms is None:
        return None
    return iso_time(_moment(ms))


def iso_time(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 UTC with milliseconds, or ``None``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_time(moment: datetime | int | None, *, never: str = "never") -> str:
    """A time for people: ``2026-01-01 00:00:00 UTC`` (an int is ms since the epoch)."""
    if moment is None:
        return never
    if isinstance(moment, int):
        moment = _moment(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 message``, ``2 messages``."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def stdin_is_tty() -> bool:
    """Whether a person can answer a prompt (stdin is a terminal)."""
    stream = sys.stdin
    return stream is not None and stream.isatty()


def stderr_is_tty() -> bool:
    """Whether progress lines would reach a person (stderr is a terminal)."""
    stream = sys.stderr
    return stream is not None and stream.isatty()


def confirm(question: str) -> bool:
    """Ask on stderr, read one line from stdin; true for ``y`` or ``yes``."""
    print(question, end=" ", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        print(file=sys.stderr)  # end of input: keep the next line apart
    return answer.strip().lower() in ("y", "yes")


class Progress:
    """Counts on one rewritten stderr line, only for a person (a TTY) and never with ``--json``.

    Called with the count so far (the library's ``progress=`` callbacks), it shows
    ``LABEL: COUNT UNIT(S) AFTER``; :meth:`done` ends the line.
    """

    def __init__(self, label: str, unit: str, after: str = "", *, enabled: bool) -> None:
        self._label = label
        self._unit = unit
        self._after = f" {after}" if after else ""
        self._enabled = enabled
        self._shown = False

    def __call__(self, count: int) -> None:
        if self._enabled:
            text = f"\r{self._label}: {plural(count, self._unit)}{self._after}"
            print(text, end="", file=sys.stderr, flush=True)
            self._shown = True

    def done(self) -> None:
        """End the progress line (if one was shown)."""
        if self._shown:
            print(file=sys.stderr, flush=True)
            self._shown = False


def progress(label: str, unit: str, after: str = "", *, as_json: bool) -> Progress:
    """A :class:`Progress` shown when stderr is a terminal and the output is not JSON."""
    return Progress(label, unit, after, enabled=not as_json and stderr_is_tty())


class OutputFile:
    """A file written atomically, created readable and writable by the owner only (0600).

    The temporary file is created at once (in the target's folder), so an unwritable target
    fails before any irreversible work; :meth:`commit` writes, syncs and renames it into place;
    leaving the ``with`` block without committing removes it. The writer holds a lock on its
    temporary file until the rename: a temporary file of the same target that nobody holds was
    left by a writer that was killed (it may hold personal data in clear), and is removed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise CliError(f"{self.path}: is a directory, not a file to write")
        remove_leftovers(self.path)
        fd, name = tempfile.mkstemp(
            prefix=_temporary_prefix(self.path), suffix=_TEMPORARY_SUFFIX, dir=self.path.parent
        )
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd: int | None = fd
        self._tmp = Path(name)

    def commit(self, text: str) -> None:
        """Write ``text`` (UTF-8) and move the file into place."""
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError("this output file was already written")
        try:
            # The file stays open, and so locked, until it is in place.
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
                os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        """Remove the temporary file (if it was not committed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


_TEMPORARY_SUFFIX = ".tmp"
#: A temporary file younger than this is never taken for a leftover.
_LEFTOVER_MIN_AGE_S = 10.0


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` that a killed writer left; return them.

    A temporary file is a leftover when its name is one the writer makes for ``path``
    (``.<name>.`` and eight characters of :func:`tempfile.mkstemp`'s alphabet, then ``.tmp``), it
    is a regular file of this user, at least ten seconds old, that no writer holds locked (a
    writer holds its lock until the rename, and the lock goes with its process).
    """
    # Exactly the names the writer makes: tempfile.mkstemp puts eight characters of its alphabet
    # between prefix and suffix. A looser match took other files for leftovers: another target's
    # (".a.b.<random>.tmp" for target "a") or a file the user named ".a.backup.tmp".
    own = re.compile(
        re.escape(_temporary_prefix(path)) + r"[a-z0-9_]{8}" + re.escape(_TEMPORARY_SUFFIX)
    )
    removed: list[Path] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed  # creating the temporary file will say what is wrong
    for name in names:
        if not own.fullmatch(name):
            continue
        candidate = path.parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                continue
            if time.time() - info.st_mtime < _LEFTOVER_MIN_AGE_S:
                continue  # a writer may be between creating it and locking it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            now = os.lstat(candidate)
            if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino):
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically, the file created 0600."""
    with OutputFile(path) as out:
        out.commit(text)


def json_text(value: Any) -> str:
    """A JSON document as a file's text (ends with a newline)."""
    return dumps(value) + "\n"
