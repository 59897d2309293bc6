"""The README's "For compliance teams" stays true: its policy excerpt is the example file's, its
walk-through runs as written (each ``entrenous`` line through ``main``, in order, on a store
like the one it describes), and its exit-status table is the command line's.

tests/test_docs.py runs the README's ``python`` blocks only; the ``sh`` blocks are run here.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from cli_support import EXAMPLE, ROOT, SUBJECT, FakeTTY, build_bank
from entrenous.cli import main
from entrenous.cli_output import (
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
)
from entrenous.client import Client
from entrenous.compliance.erasure import ErasureReceipt
from entrenous.compliance.policy import Policy

README = ROOT / "README.md"
HEADING = "## For compliance teams"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start : end if end != -1 else len(text)]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), flags=re.DOTALL)


def commands() -> list[list[str]]:
    found = []
    for block in blocks("sh"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(words)
    return found


def test_the_walk_through_uses_every_compliance_command() -> None:
    used = commands()
    assert all(words[0] == "entrenous" for words in used), used
    names = [" ".join(w for w in words[1:3] if not w.startswith("-")) for words in used]
    for expected in (
        "policy check",
        "policy apply",
        "sweep",
        "hold place",
        "hold list",
        "hold release",
        "export",
        "consent list",
        "erase",
        "audit verify",
        "audit export",
        "ropa",
    ):
        assert any(name.startswith(expected) for name in names), expected


def test_the_policy_excerpt_is_the_example_files() -> None:
    [excerpt] = blocks("toml")
    lines = set(EXAMPLE.read_text(encoding="utf-8").splitlines())
    for line in excerpt.splitlines():
        if line.strip():
            assert line in lines, line


@pytest.mark.req("CLI-02")
def test_the_exit_status_table_is_the_command_lines() -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section(), flags=re.MULTILINE)
    table = {int(status): meaning for status, meaning in rows}
    assert sorted(table) == [EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_STORE, EXIT_ERROR]
    assert "audit trail or the consent ledger" in table[EXIT_CHECK_FAILED]
    assert "no key" in table[EXIT_USAGE]
    assert "wrong key" in table[EXIT_STORE]


@pytest.mark.req("ARCH-04")
def test_the_walk_through_runs_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store like the README's: the bank's conversations, under an older policy (a longer
    # default), so that applying examples/policy.toml recomputes and the sweep has work.
    older = EXAMPLE.read_text(encoding="utf-8").replace('max_age = "2y"', 'max_age = "4y"', 1)
    bank = build_bank(tmp_path, policy=Policy.parse(older))
    bank.write_key_file()
    (tmp_path / "examples").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "examples" / "policy.toml")
    monkeypatch.chdir(tmp_path)

    printed: list[tuple[list[str], str]] = []
    for words in commands():
        argv = words[1:]
        if "HOLD_ID" in argv:
            with Client.open(bank.path, key=bank.key, sweep=False) as client:
                [hold] = client.holds()
            argv = [hold.id if word == "HOLD_ID" else word for word in argv]
        # The erasure asks; the person at the terminal answers yes.
        stdin = FakeTTY("yes\n") if argv[0] == "erase" else io.StringIO("")
        monkeypatch.setattr("sys.stdin", stdin)
        capsys.readouterr()
        status = main(argv)
        out, err = capsys.readouterr()
        assert status == 0, (argv, err)
        printed.append((argv, out))

    def output(*start: str) -> str:
        [out] = [out for argv, out in printed if argv[: len(start)] == list(start)]
        return out

    assert "Conversations recomputed: 3" in output("policy", "apply")
    assert output("sweep", "--store", "bank.db", "--key-file", "bank.key", "--dry-run").startswith(
        "Dry run: 8 expired messages in 2 conversations"
    )
    swept = printed[3]  # the fourth command: the sweep itself
    assert swept[0][0] == "sweep" and "--dry-run" not in swept[0]
    assert swept[1].startswith("Deleted 8 expired messages from 2 conversations.")
    export = json.loads((tmp_path / "customer-42.json").read_text(encoding="utf-8"))
    assert export["subject"]["id"] == SUBJECT
    receipt = ErasureReceipt.from_json((tmp_path / "erasure-customer-42.json").read_bytes())
    assert receipt.kept_messages == 2  # the contract conversation: 10 years of retention
    assert " events verified." in output("audit", "verify", "--store")
    assert " events verified offline." in output("audit", "verify", "--trail")
    assert (tmp_path / "ropa.md").exists() and (tmp_path / "ropa.json").exists()
