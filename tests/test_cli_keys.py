"""Where the command line takes the store key from (CLI-01): a file, the environment or a
prompt, never argv; and what it says when there is none, or the wrong one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cli_support import (
    PASSPHRASE,
    Bank,
    FakeTTY,
    build_bank,
    build_passphrase_store,
    one_error_line,
    run,
)
from entrenous.cli_output import CliError
from entrenous.cli_store import Secret, parse_key

Capsys = pytest.CaptureFixture[str]
pytestmark = pytest.mark.req("CLI-01")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Bank:
    return build_bank(tmp_path_factory.mktemp("bank-template"))


@pytest.fixture
def bank(template: Bank, tmp_path: Path) -> Bank:
    return template.copy_to(tmp_path)


@pytest.fixture(scope="module")
def passphrase_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_passphrase_store(tmp_path_factory.mktemp("passphrase"))


@pytest.fixture(autouse=True)
def no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is not a terminal unless a test says otherwise."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


def holds(capsys: Capsys, store: Path, *key_args: str | Path) -> tuple[int, str, str]:
    result = run(capsys, "hold", "list", "--store", store, *key_args)
    return result.status, result.out, result.err


@pytest.mark.parametrize(
    ("hex_digits", "newline"), [(True, True), (True, False), (False, True), (False, False)]
)
def test_a_key_file_holds_hex_digits_or_raw_bytes(
    bank: Bank, capsys: Capsys, hex_digits: bool, newline: bool
) -> None:
    path = bank.write_key_file(hex_digits=hex_digits, newline=newline)
    status, out, err = holds(capsys, bank.path, "--key-file", path)
    assert (status, err) == (0, "")
    assert out == f"No active legal holds in {bank.path}.\n"


def test_a_key_in_uppercase_hex_with_a_crlf_is_accepted(bank: Bank, capsys: Capsys) -> None:
    path = bank.path.with_name("upper.key")
    path.write_bytes(bank.key.hex().upper().encode() + b"\r\n")
    assert holds(capsys, bank.path, "--key-file", path)[0] == 0


@pytest.mark.parametrize(
    "content",
    [b"", b"00" * 31, b"zz" * 32, b"00" * 32 + b"\n\n", b"\x01" * 33, b" " + b"00" * 32],
    ids=["empty", "short", "not-hex", "two-newlines", "33-raw", "leading-space"],
)
def test_a_key_file_that_holds_no_key_is_a_usage_error(
    bank: Bank, capsys: Capsys, content: bytes
) -> None:
    path = bank.path.with_name("bad.key")
    path.write_bytes(content)
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-file", path)
    assert result.status == 2
    assert one_error_line(result) == (
        f"entrenous: the key file {path} does not hold a store key: expected 32 raw bytes or "
        "64 hexadecimal digits (optionally followed by a newline)"
    )


def test_a_missing_key_file_is_a_usage_error(bank: Bank, capsys: Capsys) -> None:
    missing = bank.path.with_name("missing.key")
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-file", missing)
    assert result.status == 2
    assert one_error_line(result) == (
        f"entrenous: cannot read the key file {missing}: No such file or directory"
    )


def test_a_key_given_where_a_path_belongs_is_not_echoed(bank: Bank, capsys: Capsys) -> None:
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-file", bank.key.hex())
    assert result.status == 2
    assert bank.key.hex() not in result.err
    assert "(not shown: it looks like a key)" in one_error_line(result)
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-env", bank.key.hex())
    assert result.status == 2 and bank.key.hex() not in result.err


def test_a_key_from_the_environment(
    bank: Bank, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANK_STORE_KEY", bank.key.hex() + "\n")
    assert holds(capsys, bank.path, "--key-env", "BANK_STORE_KEY")[0] == 0
    monkeypatch.setenv("BANK_STORE_KEY", "not a key")
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-env", "BANK_STORE_KEY")
    assert result.status == 2
    assert one_error_line(result) == (
        "entrenous: the environment variable BANK_STORE_KEY does not hold a store key: "
        "expected 64 hexadecimal digits"
    )
    monkeypatch.delenv("BANK_STORE_KEY")
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-env", "BANK_STORE_KEY")
    assert result.status == 2
    assert "BANK_STORE_KEY (for the key) is not set" in one_error_line(result)


def test_a_passphrase_from_a_file_or_the_environment(
    passphrase_store: Path, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n", encoding="utf-8")
    assert holds(capsys, passphrase_store, "--passphrase-file", path)[0] == 0
    monkeypatch.setenv("BANK_PASSPHRASE", PASSPHRASE)
    assert holds(capsys, passphrase_store, "--passphrase-env", "BANK_PASSPHRASE")[0] == 0
    path.write_text("\n", encoding="utf-8")
    result = run(capsys, "hold", "list", "--store", passphrase_store, "--passphrase-file", path)
    assert result.status == 2 and "holds an empty passphrase" in one_error_line(result)


@pytest.mark.req("CLI-02")
def test_a_wrong_key_or_passphrase_cannot_open_the_store(
    bank: Bank, passphrase_store: Path, tmp_path: Path, capsys: Capsys
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("11" * 32 + "\n")
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-file", wrong)
    assert result.status == 3
    assert one_error_line(result) == (
        f"entrenous: {bank.path}: the key or passphrase does not open this store "
        "(or it is not an entrenous store)"
    )
    # A key for a passphrase store: the message says what the store wants.
    result = run(capsys, "hold", "list", "--store", passphrase_store, "--key-file", wrong)
    assert result.status == 3
    assert "this store has a passphrase: give it with --passphrase-file" in one_error_line(result)
    wrong.write_text("not the passphrase\n")
    result = run(capsys, "hold", "list", "--store", passphrase_store, "--passphrase-file", wrong)
    assert result.status == 3
    # A passphrase for a raw-key store.
    result = run(capsys, "hold", "list", "--store", bank.path, "--passphrase-file", wrong)
    assert result.status == 3 and "created with a raw key" in one_error_line(result)


def test_without_a_key_and_without_a_terminal_it_says_how_to_give_one(
    bank: Bank, capsys: Capsys
) -> None:
    result = run(capsys, "hold", "list", "--store", bank.path)
    assert result.status == 2
    assert one_error_line(result) == (
        "entrenous: no store key, and stdin is not a terminal to ask for it: give the store key "
        "with --key-file PATH, --key-env VAR, --passphrase-file PATH or --passphrase-env VAR, "
        "or run on a terminal to be asked for it"
    )
    assert result.out == ""


def test_on_a_terminal_it_asks_for_the_key_or_the_passphrase(
    bank: Bank, passphrase_store: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTTY(""))
    prompts: list[str] = []
    answers = iter([bank.key.hex(), PASSPHRASE, "", "no key"])

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", getpass)
    assert holds(capsys, bank.path)[0] == 0
    assert holds(capsys, passphrase_store)[0] == 0
    empty = run(capsys, "hold", "list", "--store", bank.path)
    assert empty.status == 2 and one_error_line(empty) == "entrenous: no key entered"
    wrong = run(capsys, "hold", "list", "--store", bank.path)
    assert wrong.status == 2 and "expected 64 hexadecimal digits" in one_error_line(wrong)
    assert prompts == [
        f"Key for {bank.path} (64 hexadecimal digits): ",
        f"Passphrase for {passphrase_store}: ",
        f"Key for {bank.path} (64 hexadecimal digits): ",
        f"Key for {bank.path} (64 hexadecimal digits): ",
    ]


def test_a_missing_store_is_refused_before_asking_for_a_key(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTTY(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt: pytest.fail("asked for a key"))
    result = run(capsys, "hold", "list", "--store", tmp_path / "none.db")
    assert result.status == 3


@pytest.mark.parametrize("option", ["--key", "--passphrase", "--password"])
@pytest.mark.parametrize("joined", [False, True])
def test_no_option_takes_the_key_itself(
    bank: Bank, capsys: Capsys, option: str, joined: bool
) -> None:
    secret = bank.key.hex()
    words = [f"{option}={secret}"] if joined else [option, secret]
    for command in (["hold", "list"], ["sweep"], ["erase", "--subject", "x", "--yes"]):
        result = run(capsys, *command, "--store", bank.path, *words)
        assert result.status == 2
        line = one_error_line(result)
        assert line.startswith(f"entrenous: {option}: the store key is never taken from the ")
        assert secret not in result.err and secret not in result.out


def test_two_key_options_are_a_usage_error(bank: Bank, capsys: Capsys) -> None:
    key = bank.write_key_file()
    result = run(capsys, "hold", "list", "--store", bank.path, "--key-file", key, "--key-env", "X")
    assert result.status == 2 and "not allowed with argument" in result.err


def test_secrets_do_not_show_in_reprs() -> None:
    key = bytes(range(32))
    assert repr(Secret(key=key)) == "Secret(key)"
    assert repr(Secret(passphrase=PASSPHRASE)) == "Secret(passphrase)"
    assert parse_key(key + b"\n", "x") == key
    with pytest.raises(CliError) as caught:
        parse_key(key[:31], "the file")
    assert key.hex() not in str(caught.value)
