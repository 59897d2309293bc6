"""The ``entrenous`` command line (also ``python -m entrenous``).

Subcommands:

* ``entrenous demo [--dir DIRECTORY]``: run the end-to-end demo (see :mod:`entrenous.demo`).
* ``entrenous version``: print the library version.
* ``entrenous policy check FILE``: validate a retention/consent policy file (see
  :mod:`entrenous.compliance.policy`) and explain it; with ``--json``, print the result as one
  JSON object (``{"valid": true, "source", "fingerprint", "policy"}`` or
  ``{"valid": false, "source", "problems": [{"location", "line", "column", "message"}]}``).
  Needs no store.
* ``entrenous policy apply FILE --store STORE``: apply the policy to a store; prints its
  fingerprint and how many conversations had their messages' expiry recomputed.
* ``entrenous sweep --store STORE [--dry-run]``: delete the messages whose retention has ended
  (``--dry-run``: report what would go, change nothing); prints how many, per conversation
  with ``--json``, and when the next sweep is due.
* ``entrenous hold place --store STORE (--conversation ID | --subject SUBJECT) --reason R
  [--reference REF]``, ``hold release --store STORE HOLD_ID``, ``hold list --store STORE
  [--all]``: legal holds.
* ``entrenous erase --store STORE (--subject SUBJECT | --conversation ID) [--yes]
  [--receipt FILE]``: erase (GDPR Art. 17). Asks for confirmation on a terminal unless
  ``--yes``; without ``--yes`` and without a terminal it refuses. The signed receipt (JSON)
  goes to ``FILE`` (created 0600) or stdout.
* ``entrenous export --store STORE SUBJECT [--output FILE]``: everything about a data subject
  (JSON, spec/export.schema.json), to ``FILE`` (created 0600) or stdout.
* ``entrenous consent list --store STORE SUBJECT``: a subject's consent records with their
  state now (``--json``: ISO/IEC TS 27560 fields).
* ``entrenous audit verify --store STORE``: verify the audit trail and the consent ledger;
  prints the number of events and the head (seq and hash). ``entrenous audit verify --trail
  FILE [--checkpoint SEQ:HASH]``: verify an exported trail offline, with no store and no key
  (``--checkpoint``: a head recorded earlier that the trail must still contain).
* ``entrenous audit export --store STORE [--output FILE]``: the trail as JSON
  (``{"format", "version", "exported_at", "events", "head", "identity"}``).
* ``entrenous ropa POLICY [--format markdown|json|both] [--output PREFIX]``: the GDPR Art. 30
  record of processing, from the policy alone (no store).

``--json`` (before or after the subcommand) prints one JSON document on stdout for scripts
(``demo`` has no JSON output and refuses it).
Prompts, progress (long sweeps and exports, on a terminal) and errors go to stderr.

The store key is never taken from the command line: ``--key-file PATH`` (32 raw bytes or 64 hex
digits), ``--key-env VAR`` (64 hex digits), ``--passphrase-file PATH``, ``--passphrase-env
VAR``, or a prompt when stdin is a terminal (see :mod:`entrenous.cli_store`). Stores are opened
without a sweep (only ``sweep`` deletes), and a missing store is never created.

Exit status:

* ``0``: success (for ``policy check``: the policy is valid).
* ``1``: a check failed: the audit trail or the consent ledger does not verify (one line names
  the first broken entry). (``demo`` also exits 1 when it refuses to overwrite its stores.)
* ``2``: usage or validation error, nothing done: bad arguments, a policy file that is missing,
  unreadable or refused (one line per problem, ``FILE:LINE: LOCATION: MESSAGE``), no store key,
  a request the library refuses (an unknown hold, a category the policy lacks), an erasure not
  confirmed.
* ``3``: the store cannot be opened or read: missing, wrong key or passphrase, locked by another
  process, damaged, or written by a newer version.
* ``4``: any other error (another library error, a file that cannot be written).
* ``130``: interrupted (Ctrl-C).

Every error is one line on stderr starting with ``entrenous:``, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

import entrenous
from entrenous.cli_output import (
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    HIDDEN_KEY,
    KEY_LIKE,
    CliError,
    error,
    hide_keys,
    print_json,
)
from entrenous.errors import (
    AuditChainBroken,
    ConsentLedgerBroken,
    EntrenousError,
    PolicyError,
    StoreError,
    UsageError,
)

__all__ = ["main"]


#: argparse's "invalid choice: 'WORD'": the word is quoted back only if it could be a
#: mistyped command or value (a short lower-case word), never if it could be a passphrase.
_INVALID_CHOICE = re.compile(r"invalid choice: '((?:[^'\\]|\\.)*)'")
_LOOKS_LIKE_A_CHOICE = re.compile(r"[a-z][a-z0-9_-]{0,23}")


def _shown_choice(match: re.Match[str]) -> str:
    word = match.group(1)
    if _LOOKS_LIKE_A_CHOICE.fullmatch(word):
        return match.group(0)
    if KEY_LIKE.search(word):
        return f"invalid choice: {HIDDEN_KEY}"
    return "invalid choice: (a word not shown)"


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors never print back a word that looks like a key.

    argparse quotes what it did not understand ("unrecognized arguments: ..."): a store key
    pasted after a command by mistake would go to stderr, and from there to a log (LEAK-05).
    Subcommands' parsers are of this class too (argparse makes them of the parent's class).
    """

    def error(self, message: str) -> NoReturn:
        super().error(hide_keys(_INVALID_CHOICE.sub(_shown_choice, message)))

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: None = None
    ) -> argparse.Namespace:
        """argparse's, but of the words it did not understand only option names are quoted
        back: any other word may be a passphrase pasted after the command (LEAK-05)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            shown = [
                word.split("=", 1)[0] + ("=(not shown)" if "=" in word else "")
                if word.startswith("-")
                else HIDDEN_KEY
                if KEY_LIKE.search(word)
                else "(a word not shown)"
                for word in extras
            ]
            self.error(f"unrecognized arguments: {' '.join(shown)}")
        return parsed


def _json_parent() -> _Parser:
    # default=SUPPRESS: a subcommand without --json leaves the global flag's value alone.
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document on stdout (for scripts)",
    )
    return parent


def _build_parser() -> argparse.ArgumentParser:
    from entrenous import cli_compliance

    common = [_json_parent()]
    parser = _Parser(
        prog="entrenous",
        description="entrenous: end-to-end encrypted messaging as a sans-IO library.",
        epilog="Exit status: 0 success, 1 a check failed, 2 usage or validation error, "
        "3 the store cannot be opened, 4 any other error.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {entrenous.__version__}")
    parser.add_argument(
        "--json", action="store_true", default=False, help="print one JSON document on stdout"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="run the end-to-end demo", parents=common, allow_abbrev=False
    )
    demo.add_argument(
        "--dir",
        dest="directory",
        default=None,
        help="directory for the files the demo writes (default: a temporary one)",
    )
    demo.set_defaults(handler=_cmd_demo)

    policy = commands.add_parser(
        "policy",
        help="work with retention/consent policy files",
        parents=common,
        allow_abbrev=False,
    )
    policy_commands = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = policy_commands.add_parser(
        "check",
        help="validate a policy file and explain it",
        description="Validate a policy file and explain it. Exit 0 if valid, 2 if not.",
        parents=common,
        allow_abbrev=False,
    )
    check.add_argument("file", metavar="FILE", help="the policy file (TOML)")
    check.set_defaults(handler=_cmd_policy_check)

    cli_compliance.add_commands(commands, common, policy_commands)

    version = commands.add_parser(
        "version", help="print the library version", parents=common, allow_abbrev=False
    )
    version.set_defaults(handler=_cmd_version)
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from entrenous import demo

    if args.json:
        raise CliError("demo tells a story in text: it has no JSON output")
    return demo.run(args.directory)


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from entrenous.compliance.policy import Policy

    policy = Policy.load(args.file)  # a refused file: see _report_policy_error
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
    if args.json:
        print_json({"version": entrenous.__version__})
    else:
        print(f"entrenous {entrenous.__version__}")
    return EXIT_OK


def _report_policy_error(exc: PolicyError, as_json: bool) -> int:
    """A refused policy file: JSON on stdout, or one line per problem on stderr (RET-15)."""
    if as_json:
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


def _run(args: argparse.Namespace) -> int:
    """Run the handler; turn every expected failure into one line on stderr and a status."""
    store = getattr(args, "store", None)
    try:
        status: int = args.handler(args)
    except CliError as exc:
        error(str(exc))
        return exc.status
    except PolicyError as exc:
        return _report_policy_error(exc, args.json)
    except (AuditChainBroken, ConsentLedgerBroken) as exc:
        error(f"{store}: {exc}" if store else str(exc))
        return EXIT_CHECK_FAILED
    except StoreError as exc:
        error(f"{store}: {exc}" if store else str(exc))
        return EXIT_STORE
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except EntrenousError as exc:
        error(f"{type(exc).__name__}: {exc}")
        return EXIT_ERROR
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        error("interrupted")
        return EXIT_INTERRUPTED
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    from entrenous.cli_store import refuse_secret_in_argv

    words = list(sys.argv[1:] if argv is None else argv)
    try:
        refuse_secret_in_argv(words)
    except CliError as exc:
        error(str(exc))
        return exc.status
    parser = _build_parser()
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning an int
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return _run(args)
