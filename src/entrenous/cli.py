"""The ``entrenous`` command line (also ``python -m entrenous``).

Subcommands:

* ``entrenous demo [--dir DIRECTORY]``: run the end-to-end demo (see :mod:`entrenous.demo`).
* ``entrenous policy check FILE [--json]``: validate a retention/consent policy file (see
  :mod:`entrenous.compliance.policy`) and explain it; with ``--json``, print the result as one
  JSON object on stdout (``{"valid": true, "source", "fingerprint", "policy"}`` or
  ``{"valid": false, "source", "problems": [{"location", "line", "column", "message"}]}``).
* ``entrenous version``: print the library version.

Exit status:

* ``0``: success (for ``policy check``: the policy is valid).
* ``1``: the command could not do its work (for example the demo refusing to overwrite a store).
* ``2``: usage error or refused input: bad arguments, or a policy file that is missing, unreadable
  or invalid. Problems are printed to stderr, one line each (``FILE:LINE: LOCATION: MESSAGE``),
  never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import entrenous

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entrenous",
        description="entrenous: end-to-end encrypted messaging as a sans-IO library.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {entrenous.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="run the end-to-end demo")
    demo.add_argument(
        "--dir",
        dest="directory",
        default=None,
        help="directory for the files the demo writes (default: a temporary one)",
    )
    demo.set_defaults(handler=_cmd_demo)

    policy = commands.add_parser("policy", help="work with retention/consent policy files")
    policy_commands = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = policy_commands.add_parser(
        "check",
        help="validate a policy file and explain it",
        description="Validate a policy file and explain it. Exit 0 if valid, 2 if not.",
    )
    check.add_argument("file", metavar="FILE", help="the policy file (TOML)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_cmd_policy_check)

    version = commands.add_parser("version", help="print the library version")
    version.set_defaults(handler=_cmd_version)
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from entrenous import demo

    return demo.run(args.directory)


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from entrenous.compliance.policy import Policy
    from entrenous.errors import PolicyError

    try:
        policy = Policy.load(args.file)
    except PolicyError as exc:
        if args.json:
            problems = [
                {"location": p.location, "line": p.line, "column": p.column, "message": p.message}
                for p in exc.problems
            ]
            result = {"valid": False, "source": exc.source, "problems": problems}
            print(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            for problem in exc.problems:
                print(problem.format(exc.source), file=sys.stderr)
            count = len(exc.problems)
            print(
                f"entrenous: {exc.source}: policy refused ({count} problem{'s' * (count != 1)})",
                file=sys.stderr,
            )
        return EXIT_USAGE
    if args.json:
        result = {
            "valid": True,
            "source": policy.source,
            "fingerprint": policy.fingerprint,
            "policy": policy.to_json(),
        }
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(policy.explain(), end="")
    return EXIT_OK


def _cmd_version(args: argparse.Namespace) -> int:
    del args
    print(f"entrenous {entrenous.__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning an int
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    status: int = args.handler(args)
    return status
