"""The README's code examples run as written, and the demo runs end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entrenous import demo

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


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
