"""``entrenous policy check FILE [--json]`` (RET-15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from policy_support import EXAMPLE, base, to_toml

from entrenous.cli import main
from entrenous.compliance.policy import Policy

pytestmark = pytest.mark.req("RET-15")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _broken(tmp_path: Path) -> Path:
    doc = base()
    doc["controller"]["contact"] = "nobody"
    doc["retention"]["categories"]["contract"]["min_age"] = "12y"
    doc["retention"]["default"]["max_age"] = 30
    return _write(tmp_path, to_toml(doc))


def test_a_valid_file_exits_0_with_an_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out == Policy.load(EXAMPLE).explain()
    assert f"Policy {EXAMPLE}: valid (version 1)" in out
    assert "category contract" in out
    assert err == ""


def test_an_invalid_file_exits_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _broken(tmp_path)
    assert main(["policy", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines == [
        f"{path}:5: controller.contact: not an email address (expected name@domain.example)",
        f"{path}:8: retention.default.max_age: give a unit, e.g. "
        '"30d": a bare number is ambiguous between seconds and milliseconds',
        f"{path}:19: retention.categories.contract.min_age: min_age 12y is above max_age 11y: "
        "a rule cannot require keeping messages longer than it allows",
        f"entrenous: {path}: policy refused (3 problems)",
    ]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "expected"),
    [("missing.toml", "no such file"), (".", "is a directory, not a policy file")],
)
def test_unreadable_paths_exit_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, expected: str
) -> None:
    path = tmp_path / name
    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"{path}: {expected}"
    assert "policy refused (1 problem)" in err
    assert "Traceback" not in err


def test_a_syntax_error_shows_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "version = 1\n[controller\n")
    assert main(["policy", "check", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:2:12: not valid TOML: ")


def test_json_for_a_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(EXAMPLE), "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    policy = Policy.load(EXAMPLE)
    assert result == {
        "valid": True,
        "source": str(EXAMPLE),
        "fingerprint": policy.fingerprint,
        "policy": policy.to_json(),
    }
    assert err == ""


def test_json_for_an_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _broken(tmp_path)
    assert main(["policy", "check", "--json", str(path)]) == 2
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["valid"] is False
    assert result["source"] == str(path)
    assert [p["location"] for p in result["problems"]] == [
        "controller.contact",
        "retention.default.max_age",
        "retention.categories.contract.min_age",
    ]
    assert result["problems"][0] == {
        "location": "controller.contact",
        "line": 5,
        "column": None,
        "message": "not an email address (expected name@domain.example)",
    }
    assert err == ""


def test_json_for_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", "--json", str(tmp_path / "x.toml")]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["problems"] == [
        {"location": "", "line": None, "column": None, "message": "no such file"}
    ]


@pytest.mark.parametrize("argv", [["policy"], ["policy", "check"], ["policy", "apply-now", "x"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: entrenous policy" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--json" in out
    assert "FILE" in out


def test_the_check_needs_no_store_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, to_toml(base()))
    assert main(["policy", "check", path.name]) == 0
    assert list(tmp_path.iterdir()) == [path]  # nothing written, no store opened
    capsys.readouterr()


def test_the_installed_command_runs_it() -> None:
    done = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "entrenous", "policy", "check", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "valid (version 1)" in done.stdout
