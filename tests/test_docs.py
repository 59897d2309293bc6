"""The README's code examples run as written, and the demo runs end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entrenous import demo

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.req("ARCH-04")
@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = python_blocks(README.read_text())[index]
    exec(compile(code, f"README.md example {index + 1}", "exec"), {})  # noqa: S102


def test_readme_has_an_example() -> None:
    assert python_blocks(README.read_text())


def test_demo_runs_and_shows_the_relay_only_ciphertext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.run(str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "the customer marks it verified: True" in out
    assert "still verified after the restart: True" in out
    assert "plaintext in the file: True" not in out
    assert out.count("plaintext in the file: False") == 2
    assert "refused with AuthenticationError" in out
    assert "refused with ReplayError" in out
    assert "customer (4 messages, newest first):" in out
    assert "bank reads 'Und die PIN?'" in out
    logged = (tmp_path / "relay.log").read_text()
    # The relay log holds ciphertext only: none of the plaintexts appear in it, in any form.
    for text in ("Guten Tag", "Gern!", "Karte, bitte", "PIN"):
        assert text.encode().hex() not in logged
    assert (tmp_path / "relay.log").stat().st_mode & 0o777 == 0o600
    # The stores stay in the directory, encrypted: no plaintext in any file.
    for path in tmp_path.iterdir():
        assert b"Guten Tag" not in path.read_bytes(), path.name
    # A second run refuses to overwrite the stores.
    assert demo.run(str(tmp_path)) == 1


# --- ARCH-04: every other code example of the documentation -----------------------------------

ROOT = README.parent
#: Documents whose code blocks are checked here (README's python blocks above; its compliance
#: walk-through in tests/test_cli_readme.py; spec/compliance.md's policy in
#: tests/compliance/test_policy_file.py).
DOCUMENTS = (
    "README.md",
    "SECURITY.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "spec").glob("*.md")),
    "benchmarks/README.md",
    "fuzz/README.md",
)


def blocks(path: str, language: str) -> list[str]:
    text = (ROOT / path).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.req("ARCH-04")
def test_every_code_block_is_of_a_language_a_test_runs_or_checks() -> None:
    """A new kind of example (a ``bash`` block, a ``python`` block in a spec) gets a test first."""
    known = {"python", "sh", "toml", ""}
    for path in DOCUMENTS:
        text = (ROOT / path).read_text(encoding="utf-8")
        for language in re.findall(r"^```(\w*)\s*$", text, flags=re.MULTILINE)[::2]:
            assert language in known, (path, language)
    python_blocks = {p: len(blocks(p, "python")) for p in DOCUMENTS if blocks(p, "python")}
    assert python_blocks == {"README.md": 2, "spec/client.md": 1}, python_blocks


@pytest.mark.req("ARCH-04")
def test_the_client_specs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """spec/client.md shows the bank's side of a conversation: the customer's first envelope
    and the bank's key come from outside the block, so the test makes them."""
    import os

    from entrenous import Client

    [code] = blocks("spec/client.md", "python")
    monkeypatch.chdir(tmp_path)
    key = os.urandom(32)
    with Client.open("bank.db", key=key) as bank, Client.open("c.db", key=os.urandom(32)) as c:
        envelope = c.start_conversation(bank.prekey_bundle()).send("Guten Tag")
        namespace = {"key_from_keystore": key, "envelope": envelope}
        bank.close()  # the block opens the store itself
        exec(compile(code, "spec/client.md example", "exec"), namespace)  # noqa: S102
        reply = namespace["envelope"]
        assert c.receive(reply).message.data == {"text": "Gern!", "buttons": ["Konto", "Karte"]}


@pytest.mark.req("ARCH-04")
def test_the_store_specs_sqlcipher_session_opens_a_store(tmp_path: Path) -> None:
    """spec/store.md says an auditor opens the store with the standard sqlcipher shell: the
    same statements, through SQLCipher's Python binding, open a store the library wrote."""
    import os

    from sqlcipher3 import dbapi2 as sqlcipher

    from entrenous import Client

    [session] = blocks("spec/store.md", "")
    statements = [
        line.removeprefix("sqlite> ") for line in session.splitlines() if line.startswith("sqlite>")
    ]
    assert len(statements) == 2, statements
    key = os.urandom(32)
    with Client.open(tmp_path / "bank.db", key=key, clock=lambda: 1.0) as bank:
        other = Client.open(tmp_path / "c.db", key=os.urandom(32))
        bank.receive(other.start_conversation(bank.prekey_bundle()).send("hi"))
        other.close()
    connection = sqlcipher.connect(str(tmp_path / "bank.db"))
    try:
        connection.execute(statements[0].replace("<the 64 hex digits of K>", key.hex()))
        rows = connection.execute(statements[1].rstrip(";")).fetchall()
    finally:
        connection.close()
    assert len(rows) == 1 and rows[0][2] == 1000


def _dev_commands() -> set[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("entrenous_dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return set(module.COMMANDS)


def _shell_lines(path: str) -> list[list[str]]:
    import shlex

    found = []
    for block in blocks(path, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(words)
    return found


#: Where the options of each command's program are defined.
_PROGRAMS = {"bench": "benchmarks", "fuzz": "fuzz", "test": "fuzz", "demo": "src/entrenous"}


@pytest.mark.req("ARCH-04")
@pytest.mark.parametrize("path", ["README.md", "benchmarks/README.md", "fuzz/README.md"])
def test_the_shell_examples_name_commands_options_and_files_that_exist(path: str) -> None:
    """The benchmark and fuzz commands run for minutes to hours, so they are not run here (the
    suites have their own tests); what they name must exist: dev.py's subcommand, each option
    in the program it reaches, each module given to ``python -m`` and each file."""
    commands = _dev_commands()
    lines = [w for w in _shell_lines(path) if w[0] != "entrenous"]  # test_cli_readme runs those
    assert lines
    for line in lines:
        words = line[1:] if line[0] == "PYTHONPATH=src" else line
        if words[:2] == ["python3", "dev.py"]:
            assert words[2] in commands, words
            program = ROOT / _PROGRAMS[words[2]]
        elif words[:2] == ["python", "-m"]:
            program = ROOT / (words[2].replace(".", "/") + ".py")
            assert program.exists(), words
        else:
            assert words[0].endswith("python"), words  # .venv/bin/python: dev.py makes it
            program = ROOT / words[1]
            assert program.exists(), words
        sources = [program] if program.is_file() else sorted(program.rglob("*.py"))
        text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
        for word in words[1:]:
            if word.startswith("--"):
                assert f'"{word}"' in text, (path, words, word)
            elif "/" in word and not word.startswith("benchmarks/results"):
                assert (ROOT / word).exists(), (path, word)


@pytest.mark.req("ARCH-04")
def test_the_examples_folder_is_what_the_docs_use() -> None:
    """examples/ holds the policy the README and the CLI tests use; it parses."""
    from entrenous import Policy

    assert sorted(p.name for p in (ROOT / "examples").iterdir()) == ["policy.toml"]
    assert Policy.load(ROOT / "examples" / "policy.toml").controller.name


@pytest.mark.req("ARCH-04")
def test_the_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``>>>`` example in the library's docstrings runs (doctest), in a scratch folder,
    with ``key`` a fresh store key."""
    import doctest
    import importlib
    import os
    import pkgutil

    import entrenous

    monkeypatch.chdir(tmp_path)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(verbose=False)
    examples = 0
    names = [
        m.name
        for m in pkgutil.walk_packages(entrenous.__path__, "entrenous.")
        if not m.name.endswith("__main__")  # runs the command line when imported
    ]
    for name in ["entrenous", *names]:
        module = importlib.import_module(name)
        for test in finder.find(module, globs={**vars(module), "key": os.urandom(32)}):
            examples += len(test.examples)
            runner.run(test)
    assert examples >= 1
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted == examples, result
    assert (tmp_path / "bank.db").exists()  # client.py's example ran, in the scratch folder
