#!/usr/bin/env python3
"""Developer entry point for entrenous. Standard library only; any Python 3.11+ runs it.

    python3 dev.py test [PYTEST ARGS...]   lint, format check, type check, traceability, tests,
                                           then every fuzz target for a short budget
    python3 dev.py fuzz [--target NAME|all] [--seconds N] [--jobs [N]]   fuzz for longer
    python3 dev.py demo [DEMO ARGS...]     run the end-to-end demo (python -m entrenous demo)
    python3 dev.py bench [SUITE] [ARGS...]  run the benchmarks (python -m benchmarks); SUITE is
                                           protocol, store, compliance, scaling, report (write
                                           benchmarks/RESULTS.md again) or all (the default:
                                           every suite, then benchmarks/RESULTS.md)

Every command first makes sure ``.venv`` exists and holds an editable install of this project with
the extras it needs. Installing happens only when needed: a stamp file inside ``.venv`` records a
hash of ``pyproject.toml`` (and of the checkout's location) and the extras installed, so a re-run
with an unchanged ``pyproject.toml`` goes straight to work. A ``.venv`` that cannot run Python or
pip (for example, left half-made by an interrupted run) is deleted and made again. Tools always run
through the venv's own interpreter; nothing needs activating.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".entrenous-dev-stamp.json"
PYPROJECT = ROOT / "pyproject.toml"
STAMP_FORMAT = 1
# `test` runs `ruff format --check .`; fix a failure with `.venv/bin/python -m ruff format .`.
FORMAT_CHECK = True
# `test` ends by running every fuzz target (fuzz/) for this many seconds each; the environment
# variable ENTRENOUS_FUZZ_SECONDS overrides it (0 skips the step, for local runs only).
FUZZ_SECONDS = 12


def say(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> int:
    say(message)
    return code


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def run(cmd: Sequence[str | os.PathLike[str]], *, quiet: bool = False) -> int:
    """Run ``cmd`` from the repository root and return its exit code."""
    out = subprocess.DEVNULL if quiet else None
    try:
        return subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=out, check=False).returncode
    except OSError as exc:  # the executable is missing or not runnable
        if not quiet:
            say(f"cannot run {cmd[0]}: {exc}")
        return 127


def install_key() -> str:
    """What a finished install depends on: pyproject.toml, and where the checkout lives (the
    editable install points at this directory's src/)."""
    digest = hashlib.sha256(PYPROJECT.read_bytes())
    digest.update(b"\0" + str(ROOT).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def read_stamp() -> tuple[str | None, set[str]]:
    """The pyproject.toml hash and the extras of the last finished install, if any."""
    try:
        data = json.loads(STAMP.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, set()
    if not isinstance(data, dict) or data.get("format") != STAMP_FORMAT:
        return None, set()
    digest = data.get("install_key")
    extras = data.get("extras")
    if not isinstance(digest, str) or not isinstance(extras, list):
        return None, set()
    return digest, {x for x in extras if isinstance(x, str)}


def write_stamp(digest: str, extras: set[str]) -> None:
    tmp = STAMP.with_suffix(".tmp")
    payload = {"format": STAMP_FORMAT, "install_key": digest, "extras": sorted(extras)}
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, STAMP)


def venv_works(*, need_pip: bool) -> bool:
    """True if the venv's Python runs, is 3.11+, and (if asked) has a working pip."""
    python = venv_python()
    if not python.exists() or not (VENV / "pyvenv.cfg").exists():
        return False
    probe = "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)"
    if run([python, "-c", probe], quiet=True) != 0:
        return False
    return not need_pip or run([python, "-m", "pip", "--version"], quiet=True) == 0


def make_venv() -> bool:
    if VENV.is_symlink() or VENV.is_file():
        VENV.unlink()
    elif VENV.exists():
        say("removing an unusable .venv")
        shutil.rmtree(VENV)
    say(f"creating .venv with Python {'.'.join(map(str, sys.version_info[:3]))}")
    if run([sys.executable, "-m", "venv", VENV]) != 0:
        say(
            "could not create .venv; on Debian or Ubuntu install the venv module first "
            "(for example: apt-get install python3-venv)"
        )
        return False
    if not venv_works(need_pip=True):
        say("the new .venv has no working pip")
        return False
    return True


def ensure_venv(extras: set[str]) -> bool:
    """Make sure ``.venv`` has an editable install of the project with ``extras``."""
    digest = install_key()
    stamped_digest, installed = read_stamp()
    if stamped_digest == digest and extras <= installed and venv_works(need_pip=False):
        return True
    if stamped_digest is None:
        reason = "no finished install recorded"
    elif stamped_digest != digest:
        reason = "pyproject.toml changed (or the checkout moved)"
    else:
        reason = "new extras"
    if not venv_works(need_pip=True):
        STAMP.unlink(missing_ok=True)
        if not make_venv():
            return False
        installed = set()
        reason = "new .venv"
    # Keep what an earlier command installed (bench after test keeps dev, and the reverse).
    wanted = extras | installed
    target = f".[{','.join(sorted(wanted))}]" if wanted else "."
    say(f"installing -e {target} into .venv ({reason}); this takes a minute")
    STAMP.unlink(missing_ok=True)  # an interrupted install must not look finished
    pip = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    if run([*pip, "install", "--upgrade", "pip"]) != 0:
        say("could not upgrade pip in .venv (continuing with the pip it has)")
    if run([*pip, "install", "--editable", target]) != 0:
        say(f"pip install -e {target} failed")
        return False
    write_stamp(digest, wanted)
    return True


def fuzz_seconds() -> int | None:
    """The fuzz budget per target for `test`, or None if ENTRENOUS_FUZZ_SECONDS is not a number."""
    raw = os.environ.get("ENTRENOUS_FUZZ_SECONDS", str(FUZZ_SECONDS))
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def cmd_test(args: list[str]) -> int:
    seconds = fuzz_seconds()
    if seconds is None:
        return fail("ENTRENOUS_FUZZ_SECONDS must be a whole number of seconds (0 skips fuzzing)")
    if not ensure_venv({"dev", "fuzz"}):
        # Most likely atheris has no wheel for this platform: run the other steps anyway; the
        # fuzz step then fails and says why.
        say("installing with the 'fuzz' extra failed; trying without it (the fuzz step will fail)")
        if not ensure_venv({"dev"}):
            return fail("step 'install' failed")
    py = str(venv_python())
    steps: list[tuple[str, list[str]]] = [
        ("ruff check", [py, "-m", "ruff", "check", "."]),
    ]
    if FORMAT_CHECK:
        steps.append(("ruff format --check", [py, "-m", "ruff", "format", "--check", "."]))
    steps += [
        ("mypy --strict src", [py, "-m", "mypy", "--strict", "src"]),
        ("traceability --check", [py, "tools/traceability.py", "--check"]),
    ]
    for name, cmd in steps:
        say(f"running {name}")
        code = run(cmd)
        if code != 0:
            return fail(f"step '{name}' failed (exit {code})", code)
    say("running pytest")
    code = run([py, "-m", "pytest", *args])
    if code != 0:
        return fail(f"step 'pytest' failed (exit {code})", code)
    if args:
        say("skipping the fuzz step: pytest arguments were given (fuzz with: python3 dev.py fuzz)")
        return 0
    if seconds == 0:
        say("skipping the fuzz step: ENTRENOUS_FUZZ_SECONDS=0")
        return 0
    say(f"running the fuzz targets, {seconds} s each (the last step: its summary is the last line)")
    code = run([py, "fuzz/run.py", "--target", "all", "--seconds", str(seconds)])
    if code != 0:
        return fail(f"step 'fuzz' failed (exit {code}); see fuzz/README.md", code)
    return 0


def cmd_demo(args: list[str]) -> int:
    # Installs the dev extras too, so that `demo` then `test` (the README's order) installs once.
    if not ensure_venv({"dev"}):
        return fail("step 'install' failed")
    return run([venv_python(), "-m", "entrenous", "demo", *args])


def cmd_bench(args: list[str]) -> int:
    if not ensure_venv({"bench"}):
        return fail("step 'install' failed")
    return run([venv_python(), "-m", "benchmarks", *args])


def cmd_fuzz(args: list[str]) -> int:
    if not ensure_venv({"fuzz"}):
        return fail("step 'install' failed (the fuzz extra needs an atheris wheel: fuzz/README.md)")
    return run([venv_python(), "fuzz/run.py", *args])


COMMANDS = {"test": cmd_test, "demo": cmd_demo, "bench": cmd_bench, "fuzz": cmd_fuzz}

USAGE = """\
usage: python3 dev.py test [PYTEST ARGS...]   ruff, format, mypy, traceability, pytest, fuzz
       python3 dev.py fuzz [--target NAME|all] [--seconds N] [--jobs [N]] [--keep-going]
       python3 dev.py demo [DEMO ARGS...]     run the end-to-end demo
       python3 dev.py bench [SUITE] [ARGS...]  run the benchmarks; SUITE: protocol, store,
                                              compliance, scaling, report or all (the default)"""


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - checks the interpreter running dev.py itself
        version = ".".join(map(str, sys.version_info[:3]))
        return fail(
            f"entrenous needs Python 3.11 or newer, this is {version}; "
            "run dev.py with a newer one, for example: python3.12 dev.py test"
        )
    if argv[:1] in (["-h"], ["--help"], ["help"]):
        print(USAGE)
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except KeyboardInterrupt:
        return fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
