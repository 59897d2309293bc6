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
def test_readme_example_runs(index: int) -> None:
    code = python_blocks(README.read_text())[index]
    exec(compile(code, f"README.md example {index + 1}", "exec"), {})  # noqa: S102


def test_readme_has_an_example() -> None:
    assert python_blocks(README.read_text())


def test_demo_runs_and_shows_the_relay_only_ciphertext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.run(str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "match: True" in out
    assert "refused with AuthenticationError" in out
    assert "refused with ReplayError" in out
    assert "bank bot reads after the restart: 'Danke, die Karte bitte.'" in out
    logged = (tmp_path / "relay.log").read_text()
    # The relay log holds ciphertext only: none of the plaintexts appear in it, in any form.
    for text in ("Guten Tag", "Gern!", "Danke", "PIN"):
        assert text.encode().hex() not in logged
    assert (tmp_path / "relay.log").stat().st_mode & 0o777 == 0o600
