"""Opening a store from the command line: where its key comes from, and never creating one.

The store key never comes from the command line itself (argv shows in the process list and the
shell history). It comes from exactly one of:

* ``--key-file PATH``: a file holding the 32 raw key bytes or 64 hexadecimal digits, optionally
  followed by a newline;
* ``--key-env VAR``: 64 hexadecimal digits in the environment variable ``VAR``;
* ``--passphrase-file PATH`` / ``--passphrase-env VAR``: the passphrase of a passphrase store
  (one trailing newline of the file is not part of it);
* with none of them, a prompt (``getpass``, nothing echoed) when stdin is a terminal: for the
  passphrase if the store has a ``.kdf`` file beside it, else for the key in hex. Without a
  terminal the command stops (exit 2) and says how to give the key.

Only existing stores are opened (:meth:`Client.open` would create a missing one), and never with
a sweep: only ``entrenous sweep`` deletes expired messages.
"""

from __future__ import annotations

import argparse
import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from entrenous.cli_output import EXIT_STORE, HIDDEN_KEY, KEY_LIKE, CliError, stdin_is_tty
from entrenous.client import Client
from entrenous.errors import WrongKey
from entrenous.store.keys import KEY_SIZE, kdf_path
from entrenous.store.sqlcipher import creation_marker

#: The options that say where the key is (one at most).
KEY_OPTIONS = ("--key-file", "--key-env", "--passphrase-file", "--passphrase-env")
#: Options a user might try that would put the secret itself on the command line.
REFUSED_OPTIONS = ("--key", "--passphrase", "--password")
HOW_TO_GIVE_THE_KEY = (
    "give the store key with --key-file PATH, --key-env VAR, --passphrase-file PATH or "
    "--passphrase-env VAR, or run on a terminal to be asked for it"
)
#: The most a key or passphrase file may hold: a key file is at most 66 bytes, and nobody types
#: a 64 KiB passphrase. Reading stops there, so a wrong path (a device) cannot hang the command.
_MAX_SECRET_FILE = 65_536


@dataclass(frozen=True, slots=True)
class Secret:
    """A store key or a passphrase (exactly one). Its repr shows which, never the value."""

    key: bytes | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:
        return "Secret(key)" if self.key is not None else "Secret(passphrase)"


def add_store_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--store STORE`` and the key options."""
    parser.add_argument(
        "--store",
        required=required,
        metavar="STORE",
        help="the store file (it must exist: the command line never creates a store)",
    )
    add_key_options(parser)


def add_key_options(parser: argparse.ArgumentParser) -> None:
    """The four ways to give the store key (mutually exclusive)."""
    group = parser.add_argument_group(
        "store key (never on the command line; without one of these, you are asked on a terminal)"
    )
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--key-file", metavar="PATH", help="a file with the 32-byte key, raw or as 64 hex digits"
    )
    exclusive.add_argument(
        "--key-env", metavar="VAR", help="an environment variable with the key as 64 hex digits"
    )
    exclusive.add_argument(
        "--passphrase-file", metavar="PATH", help="a file with the store's passphrase"
    )
    exclusive.add_argument(
        "--passphrase-env", metavar="VAR", help="an environment variable with the passphrase"
    )


def key_option_given(args: argparse.Namespace) -> bool:
    """Whether any of the key options was given."""
    return any(getattr(args, name.lstrip("-").replace("-", "_"), None) for name in KEY_OPTIONS)


def refuse_secret_in_argv(argv: list[str]) -> None:
    """Stop (exit 2) if argv tries to carry a key or passphrase; never echo what followed."""
    for word in argv:
        if word == "--":
            return
        name = word.split("=", 1)[0]
        if name in REFUSED_OPTIONS:
            raise CliError(
                f"{name}: the store key is never taken from the command line (it would show in "
                f"the process list and the shell history); {HOW_TO_GIVE_THE_KEY}"
            )


def _shown(name: str) -> str:
    """A path or variable name for a message, unless it looks like a key typed by mistake."""
    return HIDDEN_KEY if KEY_LIKE.search(name) else name


def parse_key(data: bytes, where: str) -> bytes:
    """The 32-byte key in ``data``: raw, or 64 hex digits; one trailing newline allowed."""
    if len(data) == KEY_SIZE:
        return data
    if len(data) == KEY_SIZE + 1 and data.endswith(b"\n"):
        return data[:KEY_SIZE]  # raw bytes and a newline
    body = data.removesuffix(b"\n").removesuffix(b"\r") if data.endswith(b"\n") else data
    if len(body) == 2 * KEY_SIZE and KEY_LIKE.fullmatch(body.decode("latin-1")):
        return bytes.fromhex(body.decode("ascii"))
    raise CliError(
        f"{where} does not hold a store key: expected 32 raw bytes or 64 hexadecimal digits "
        "(optionally followed by a newline)"
    )


def _read_secret_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise CliError(f"cannot read the {what} file {_shown(path)}: {exc.strerror}") from None
    if len(data) > _MAX_SECRET_FILE:
        raise CliError(f"the {what} file {_shown(path)} is too large to hold a {what}")
    return data


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise CliError(f"the environment variable {_shown(name)} (for the {what}) is not set")
    return value


def _passphrase(text: str, where: str) -> str:
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not text:
        raise CliError(f"{where} holds an empty passphrase")
    return text


def secret_from(args: argparse.Namespace, store: Path) -> Secret:
    """The key or passphrase the options name, or the one typed at a prompt (see the module)."""
    if args.key_file is not None:
        where = f"the key file {_shown(args.key_file)}"
        return Secret(key=parse_key(_read_secret_file(args.key_file, "key"), where))
    if args.key_env is not None:
        value = _env(args.key_env, "key").strip()
        where = f"the environment variable {_shown(args.key_env)}"
        if not KEY_LIKE.fullmatch(value):
            raise CliError(f"{where} does not hold a store key: expected 64 hexadecimal digits")
        return Secret(key=bytes.fromhex(value))
    if args.passphrase_file is not None:
        data = _read_secret_file(args.passphrase_file, "passphrase")
        where = f"the passphrase file {_shown(args.passphrase_file)}"
        try:
            text: str | None = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None  # raised below: the UnicodeDecodeError holds the file's bytes
        if text is None:
            raise CliError(f"{where} is not UTF-8 text")
        return Secret(passphrase=_passphrase(text, where))
    if args.passphrase_env is not None:
        where = f"the environment variable {_shown(args.passphrase_env)}"
        return Secret(passphrase=_passphrase(_env(args.passphrase_env, "passphrase"), where))
    if not stdin_is_tty():
        raise CliError(
            f"no store key, and stdin is not a terminal to ask for it: {HOW_TO_GIVE_THE_KEY}"
        )
    return _prompt(store)


def _prompt(store: Path) -> Secret:
    try:
        if kdf_path(store).exists():
            typed = getpass.getpass(f"Passphrase for {store}: ")
            if not typed:
                raise CliError("no passphrase entered")
            return Secret(passphrase=typed)
        typed = getpass.getpass(f"Key for {store} (64 hexadecimal digits): ").strip()
    except EOFError:
        raise CliError("no key entered") from None
    if not typed:
        raise CliError("no key entered")
    if not KEY_LIKE.fullmatch(typed):
        raise CliError("that is not a store key: expected 64 hexadecimal digits")
    return Secret(key=bytes.fromhex(typed))


def check_store(path: Path) -> None:
    """Refuse (exit 3) a store that does not exist or was never completely created."""
    if not path.exists():
        raise CliError(
            f"{path}: no such store (the command line opens existing stores only)", EXIT_STORE
        )
    if path.is_dir():
        raise CliError(f"{path}: is a directory, not a store", EXIT_STORE)
    if creation_marker(path.resolve()).exists():
        raise CliError(
            f"{path}: the store's creation was interrupted: it is not a complete store",
            EXIT_STORE,
        )


def open_store(args: argparse.Namespace) -> Client:
    """Open the existing store ``args.store`` with the key the options give; never sweep."""
    path = Path(args.store)
    check_store(path)
    secret = secret_from(args, path)
    try:
        return Client.open(path, key=secret.key, passphrase=secret.passphrase, sweep=False)
    except WrongKey as exc:
        if secret.key is not None and kdf_path(path.resolve()).exists():
            raise WrongKey(
                f"{exc} (this store has a passphrase: give it with --passphrase-file or "
                "--passphrase-env)"
            ) from None
        raise
