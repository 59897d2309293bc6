"""The layers show in the folders and import in one direction only.

errors -> _primitives -> protocol -> store -> compliance/payload -> client -> demo/cli. A module
may import its own layer and the layers below it, never one above; the primitives stay private
(nothing outside the library imports them, and of the library only the layers above use them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "entrenous"

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


def test_nothing_outside_the_library_imports_the_primitives_except_tests_and_tools() -> None:
    root = SRC.parents[1]
    for folder in ("benchmarks",):
        for path in (root / folder).rglob("*.py"):
            assert not any(i.startswith("entrenous._primitives") for i in _imports(path)), path
