"""The layers show in the folders and import in one direction only.

errors -> _primitives -> protocol -> store -> compliance/payload -> client -> demo/cli. A module
may import its own layer and the layers below it, never one above; the primitives stay private
(nothing outside the library imports them, and of the library only the layers above use them).

Checked twice, by two independent readers of the imports: this file's own walk of the syntax
trees, and import-linter's contracts in pyproject.toml ([tool.importlinter], run here as
``lint-imports``), which also follow imports inside functions and through ``import a.b`` forms,
and say which external packages a layer may use (ARCH-01 to ARCH-03).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "entrenous"

#: Layer of each module or package (by its first name under ``entrenous``), lowest first.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_primitives": 1,
    "protocol": 2,
    "store": 3,
    "compliance": 4,
    "payload": 4,
    "client": 5,
    "demo": 6,
    "cli": 6,
    "cli_compliance": 6,
    "cli_output": 6,
    "cli_store": 6,
    "__main__": 6,
    "__init__": 6,
}


def _layer(module: str) -> int:
    if module == "entrenous":
        return LAYERS["__init__"]  # the package root re-exports the top layer
    return LAYERS[module.split(".")[1]]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("entrenous")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "entrenous":  # from entrenous import payload: the modules
                found += [f"entrenous.{a.name}" for a in node.names]
            elif node.module.startswith("entrenous."):
                found.append(node.module)
    return found


MODULES = sorted(SRC.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts if parts[-1] != "__init__" or len(parts) == 2 else parts[:-1])


@pytest.mark.req("ARCH-01")
@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_only(path: Path) -> None:
    module = _name(path)
    if module == "entrenous":
        return  # the package's public surface re-exports from every layer
    own = _layer(module)
    for imported in _imports(path):
        assert _layer(imported) <= own, f"{module} (layer {own}) imports {imported}"


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        name = _name(path)
        if name != "entrenous":
            assert name.split(".")[1] in LAYERS, name


@pytest.mark.req("ARCH-02")
def test_nothing_outside_the_library_imports_the_primitives_except_tests_and_tools() -> None:
    root = SRC.parents[1]
    for folder in ("benchmarks",):
        for path in (root / folder).rglob("*.py"):
            assert not any(i.startswith("entrenous._primitives") for i in _imports(path)), path


# --- import-linter (ARCH-01 to ARCH-03) -----------------------------------------------------------


def _lint_imports(root: Path, source: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the pyproject.toml in ``root``, with ``source`` (a src folder) first on
    the path; the venv's own executable, no cache."""
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert executable, (
        "import-linter is not installed: it is in the 'dev' extra (pip install -e '.[dev]', or "
        "python3 dev.py test, which installs it)"
    )
    path = os.pathsep.join([str(source), str(root), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(  # noqa: S603 - the venv's own tool, fixed arguments
        [executable, "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.req("ARCH-01", "ARCH-02", "ARCH-03")
def test_the_import_linter_contracts_are_kept() -> None:
    result = _lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, (
        "lint-imports: an import breaks a contract of pyproject.toml's [tool.importlinter] "
        "(the layers: errors -> _primitives -> protocol -> store -> compliance/payload -> "
        "client -> demo/cli, never upwards; the primitives private; the protocol sans-IO):\n"
        + result.stdout[-6000:]
        + result.stderr[-2000:]
    )
    assert "broken" in result.stdout and "0 broken" in result.stdout, result.stdout


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


@pytest.mark.req("ARCH-01")
def test_the_import_linter_layers_are_this_files_layers() -> None:
    """The two checks agree: the contract's layers, top first, are LAYERS' groups."""
    layers = _contracts()["layers"]["layers"]
    assert isinstance(layers, list)
    contract = [
        sorted(name.strip().removeprefix("entrenous.") for name in layer.split(":"))
        for layer in layers
    ]
    ours: dict[int, list[str]] = {}
    for name, level in LAYERS.items():
        if name != "__init__":  # the package root re-exports; it is in no layer
            ours.setdefault(level, []).append(name)
    assert contract == [sorted(ours[level]) for level in sorted(ours, reverse=True)]


@pytest.mark.req("ARCH-01", "ARCH-02")
@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("protocol/wire.py", "from entrenous.store import base", "layers"),
        ("_primitives/aead.py", "import entrenous.protocol.padding", "layers"),
        ("compliance/audit.py", "from entrenous import client", "layers"),
        ("cli_output.py", "from entrenous._primitives import rand", "primitives-private"),
        ("protocol/padding.py", "import sqlcipher3", "protocol-sans-io"),
    ],
)
def test_import_linter_catches_a_planted_import(
    tmp_path: Path, module: str, planted: str, broken: str
) -> None:
    """A copy of the library with one forbidden import planted (inside a function, where a
    reader of top-level imports would not look): lint-imports names the contract it breaks."""
    shutil.copytree(SRC, tmp_path / "src" / "entrenous")
    # The benchmarks' code only: their results hold cached stores of gigabytes.
    shutil.copytree(
        ROOT / "benchmarks", tmp_path / "benchmarks", ignore=shutil.ignore_patterns("results")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "entrenous" / module
    target.write_text(
        target.read_text(encoding="utf-8") + f"\n\ndef _planted() -> None:\n    {planted}\n",
        encoding="utf-8",
    )
    result = _lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0, result.stdout
    assert "1 broken" in result.stdout, result.stdout
    name = str(_contracts()[broken]["name"])
    assert name.split(" (", maxsplit=1)[0][:60] in " ".join(result.stdout.split()), result.stdout
