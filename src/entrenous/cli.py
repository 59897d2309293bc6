"""The ``entrenous`` command line (also ``python -m entrenous``).

Subcommands:

* ``entrenous demo [--dir DIRECTORY]``: run the end-to-end demo (see :mod:`entrenous.demo`).
* ``entrenous version``: print the library version.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import entrenous

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

    version = commands.add_parser("version", help="print the library version")
    version.set_defaults(handler=_cmd_version)
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from entrenous import demo

    return demo.run(args.directory)


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
        return exc.code if isinstance(exc.code, int) else 2
    status: int = args.handler(args)
    return status
