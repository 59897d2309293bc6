"""Traceability between spec/ and tests/ (a meta-test: it checks no requirement itself).

``test_repository_is_traceable`` runs ``tools/traceability.py --check`` on this repository through
the module's functions: every requirement ID defined in spec/*.md has a test, every ID a test names
is defined, no ID is defined twice, no MUST/SHALL statement lacks an ID, and spec/TRACEABILITY.md is
up to date. The other tests run the tool on small trees in ``tmp_path`` to prove that each kind of
mismatch is caught (and that well-formed trees, including an empty or missing spec/, pass).
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "traceability.py"


def _load_tool() -> ModuleType:
    name = "_entrenous_tools_traceability"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


trace = _load_tool()


def make_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path relative to ``root`` -> dedented text) and return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def messages(root: Path) -> list[str]:
    return [str(problem) for problem in trace.check(root)]


SPEC = """
    # Handshake

    The key words MUST, MUST NOT and SHALL are to be interpreted as described in BCP 14
    (RFC 2119, RFC 8174) when, and only when, they appear in all capitals.

    - **HS-01** The initiator MUST send its identity key. It is sent once.
    - **HS-02** The responder MUST reject:
      - a bundle with a bad signature (it MUST NOT fall back);
      - an unknown prekey.

      Rejecting MUST NOT reveal which check failed.

    **HS-10** A paragraph requirement: the responder SHALL consume one-time prekeys
    exactly once, even when it crashes.

    Plain prose with no keywords, and `MUST` in a code span, are fine.

    ```text
    code that says MUST is not a requirement
    ```

    <!-- a comment that says MUST is not one either -->
"""

LIMITS = """
    # Limits

    | ID | Limit | Value |
    | --- | --- | --- |
    | **LIM-01** | An envelope MUST be at most this many bytes | 65536 |

    **ENV-02** Envelopes are padded as follows:

    - every envelope MUST be padded to a multiple of 256 bytes;
    - padding MUST be zero bytes.
"""

TESTS = """
    import pytest

    pytestmark = pytest.mark.req("LIM-01")


    @pytest.mark.req("HS-01", "HS-02")
    def test_handshake() -> None:
        pass


    @pytest.mark.req("ENV-02")
    class TestPadding:
        @pytest.mark.req("HS-10")
        def test_consume_once(self) -> None:
            pass


    @pytest.mark.parametrize("n", [pytest.param(1, marks=pytest.mark.req("HS-02"))])
    def test_param(n: int) -> None:
        pass
"""


def good_tree(root: Path) -> Path:
    make_tree(
        root,
        {
            "spec/handshake.md": SPEC,
            "spec/limits.md": LIMITS,
            "tests/protocol/test_handshake.py": TESTS,
        },
    )
    trace.write(root)
    return root


# ------------------------------------------------------------------------------------------
# this repository


def test_repository_is_traceable() -> None:
    problems = trace.check(ROOT)
    assert not problems, "traceability problems:\n" + "\n".join(map(str, problems))


# ------------------------------------------------------------------------------------------
# trees that pass


def test_missing_spec_directory_passes(tmp_path: Path) -> None:
    make_tree(tmp_path, {"tests/test_plain.py": "def test_nothing() -> None:\n    pass\n"})
    assert messages(tmp_path) == []
    assert trace.write(tmp_path) is None
    assert not (tmp_path / "spec").exists()


def test_empty_spec_directory_passes(tmp_path: Path) -> None:
    (tmp_path / "spec").mkdir()
    assert messages(tmp_path) == []


def test_spec_without_requirements_passes_once_written(tmp_path: Path) -> None:
    make_tree(tmp_path, {"spec/intro.md": "# Intro\n\nNo requirements here.\n"})
    assert messages(tmp_path) == [
        "spec/TRACEABILITY.md: missing: run `python tools/traceability.py --write`"
    ]
    trace.write(tmp_path)
    assert messages(tmp_path) == []


def test_consistent_tree_passes(tmp_path: Path) -> None:
    good_tree(tmp_path)
    assert messages(tmp_path) == []


def test_definitions_are_found_with_their_statements(tmp_path: Path) -> None:
    good_tree(tmp_path)
    scan = trace.scan_spec(tmp_path)
    assert scan.problems == []
    found = {r.id: (r.file, r.line, r.text) for r in scan.requirements}
    assert found == {
        "HS-01": (
            "spec/handshake.md",
            6,
            "The initiator MUST send its identity key. It is sent once.",
        ),
        "HS-02": ("spec/handshake.md", 7, "The responder MUST reject:"),
        "HS-10": (
            "spec/handshake.md",
            13,
            "A paragraph requirement: the responder SHALL consume one-time prekeys exactly once, "
            "even when it crashes.",
        ),
        "LIM-01": ("spec/limits.md", 5, "An envelope MUST be at most this many bytes 65536"),
        "ENV-02": ("spec/limits.md", 7, "Envelopes are padded as follows:"),
    }


def test_markers_map_to_pytest_node_ids(tmp_path: Path) -> None:
    good_tree(tmp_path)
    scan = trace.scan_tests(tmp_path)
    assert scan.problems == []
    module = "tests/protocol/test_handshake.py"
    assert scan.tests_by_id() == {
        "LIM-01": {module},
        "HS-01": {f"{module}::test_handshake"},
        "HS-02": {f"{module}::test_handshake", f"{module}::test_param"},
        "ENV-02": {f"{module}::TestPadding"},
        "HS-10": {f"{module}::TestPadding::test_consume_once"},
    }


def test_generated_file_is_sorted_and_deterministic(tmp_path: Path) -> None:
    good_tree(tmp_path)
    target = tmp_path / "spec" / "TRACEABILITY.md"
    first = target.read_text(encoding="utf-8")
    assert trace.write(tmp_path) is None  # unchanged
    assert target.read_text(encoding="utf-8") == first
    assert "python tools/traceability.py --write" in first
    assert first.index("## [handshake.md]") < first.index("## [limits.md]")
    assert first.index("| HS-01 |") < first.index("| HS-02 |") < first.index("| HS-10 |")
    assert first.index("| ENV-02 |") < first.index("| LIM-01 |")  # prefix order, then number
    assert (
        "| HS-02 | The responder MUST reject: | `tests/protocol/test_handshake.py::test_handshake`"
        "<br>`tests/protocol/test_handshake.py::test_param` |" in first
    )
    assert "| HS-01 | The initiator MUST send its identity key. |" in first  # first sentence


def test_summary_is_trimmed_and_table_safe() -> None:
    long = "The responder MUST " + "really " * 40 + "reject it. Second sentence."
    summary = trace.summarise(long)
    assert len(summary) <= 120
    assert summary.endswith("...")
    assert trace.summarise("A MUST hold | B. More.") == "A MUST hold \\| B."
    assert trace.summarise("Use `a b c` here " + "x " * 80).count("`") % 2 == 0


# ------------------------------------------------------------------------------------------
# (a) an ID defined in spec with no test


def test_requirement_without_test_fails(tmp_path: Path) -> None:
    good_tree(tmp_path)
    tests = tmp_path / "tests/protocol/test_handshake.py"
    tests.write_text(
        tests.read_text(encoding="utf-8").replace('"HS-01", "HS-02"', '"HS-02"'), encoding="utf-8"
    )
    trace.write(tmp_path)
    assert messages(tmp_path) == [
        'spec/handshake.md:6: HS-01 has no test: mark one with @pytest.mark.req("HS-01")'
    ]
    assert "| HS-01 | The initiator MUST send its identity key. | **none** |" in (
        tmp_path / "spec/TRACEABILITY.md"
    ).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------
# (b) a test naming an ID that is not defined


def test_undefined_id_in_a_test_fails(tmp_path: Path) -> None:
    good_tree(tmp_path)
    make_tree(
        tmp_path,
        {
            "tests/test_more.py": """
                import pytest

                @pytest.mark.req("HS-01", "HS-99")
                def test_one() -> None:
                    pass

                @pytest.mark.req("HS-99")
                def test_two() -> None:
                    pass
            """
        },
    )
    trace.write(tmp_path)
    assert messages(tmp_path) == [
        "tests/test_more.py:3: HS-99 (on tests/test_more.py::test_one and 1 more marker(s)) "
        "is not defined in spec/*.md"
    ]


def test_ids_named_with_no_spec_at_all_fail(tmp_path: Path) -> None:
    make_tree(tmp_path, {"tests/test_x.py": TESTS})
    problems = messages(tmp_path)
    assert len(problems) == 5
    assert all("is not defined in spec/*.md" in p for p in problems)


# ------------------------------------------------------------------------------------------
# (c) an ID defined twice


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (
            {"spec/handshake.md": textwrap.dedent(SPEC) + "\n- **HS-01** Again.\n"},
            "spec/handshake.md:24",
        ),
        ({"spec/zzz.md": "- **HS-01** Defined in another file.\n"}, "spec/zzz.md:1"),
    ],
)
def test_duplicate_definition_fails(tmp_path: Path, extra: dict[str, str], where: str) -> None:
    good_tree(tmp_path)
    make_tree(tmp_path, extra)
    trace.write(tmp_path)
    assert messages(tmp_path) == [f"{where}: HS-01 is defined twice (first at spec/handshake.md:6)"]


# ------------------------------------------------------------------------------------------
# (d) a MUST / MUST NOT / SHALL statement with no ID


@pytest.mark.parametrize(
    ("text", "line", "keyword"),
    [
        ("A paragraph that MUST have an ID.\n", 1, "MUST"),
        ("Intro.\n\nSecond paragraph,\nwrapped, MUST NOT pass.\n", 3, "MUST"),
        ("- a bullet that SHALL fail\n", 1, "SHALL"),
        ("- **HS-01** fine\n- a sibling that MUST fail\n", 2, "MUST"),
        ("1. a numbered item MUST fail\n", 1, "MUST"),
        ("> a quote that MUST fail\n", 1, "MUST"),
        ("| a | table row that MUST fail |\n", 1, "MUST"),
        ("- **HS-01** fine\n\nA later paragraph MUST fail.\n", 3, "MUST"),
        ("Intro without an ID:\n\n- an item that MUST fail\n", 3, "MUST"),
        ("- **Note** this MUST fail\n", 1, "MUST"),
    ],
)
def test_normative_statement_without_id_fails(
    tmp_path: Path, text: str, line: int, keyword: str
) -> None:
    make_tree(tmp_path, {"spec/x.md": text, "tests/test_x.py": TESTS})
    found = trace.scan_spec(tmp_path).problems
    assert [str(p) for p in found] == [
        f"spec/x.md:{line}: normative {keyword} without a requirement ID: start the bullet "
        "or paragraph with **PREFIX-NN**"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "- **HS-01** parent\n  - a nested item MUST pass\n    - deeper MUST pass too\n",
        "- **HS-01** parent\n\n  an indented continuation MUST pass\n",
        "- **HS-01** parent\n  lazily wrapped line that MUST pass\n",
        "**HS-01** Intro with an ID:\n\n- an item that MUST pass\n- and another MUST\n",
        "```\nMUST in code\n```\n",
        "~~~~\nMUST in code\n~~~~\n",
        "Text with `MUST` in code.\n",
        "<!-- MUST\nin a comment -->\n",
        "# A heading that says MUST\n",
        "lowercase must and shall are prose\n",
        "MUSTARD and MUSTS are words\n",
        "The key words MUST and SHALL are used as in RFC 2119.\n",
        "| **LIM-01** | a table row that MUST pass |\n",
    ],
)
def test_statement_belonging_to_an_id_passes(tmp_path: Path, text: str) -> None:
    make_tree(tmp_path, {"spec/x.md": text})
    assert trace.scan_spec(tmp_path).problems == []


def test_unknown_prefix_is_text_but_gets_a_hint(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {"spec/x.md": "- **SHA-256** is the hash.\n- **QQQ-01** The store MUST fsync.\n"},
    )
    scan = trace.scan_spec(tmp_path)
    assert scan.requirements == []
    [problem] = scan.problems
    assert problem.where == "spec/x.md:2"
    assert "QQQ-01 has an unknown prefix" in problem.message
    assert "PREFIXES" in problem.message


@pytest.mark.parametrize(
    "bad", ["**HS-3**", "**HS-0003**", "**HS-03:**", "**hs-03**", "**HS - 03**"]
)
def test_malformed_id_fails(tmp_path: Path, bad: str) -> None:
    make_tree(tmp_path, {"spec/x.md": f"- {bad} The responder checks it.\n"})
    [problem] = trace.scan_spec(tmp_path).problems
    assert problem.where == "spec/x.md:1"
    assert problem.message.startswith("malformed requirement ID")


def test_traceability_file_is_not_a_source_of_definitions(tmp_path: Path) -> None:
    make_tree(tmp_path, {"spec/TRACEABILITY.md": "- **HS-01** The peer MUST not count.\n"})
    assert trace.scan_spec(tmp_path).requirements == []


# ------------------------------------------------------------------------------------------
# (e) spec/TRACEABILITY.md differing from what --write generates


def test_stale_generated_file_fails(tmp_path: Path) -> None:
    good_tree(tmp_path)
    spec = tmp_path / "spec/handshake.md"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("send its identity key", "send its keys"),
        encoding="utf-8",
    )
    [problem] = messages(tmp_path)
    assert problem.startswith(
        "spec/TRACEABILITY.md: out of date: run `python tools/traceability.py --write`"
    )
    assert "-| HS-01 | The initiator MUST send its identity key. |" in problem
    assert "+| HS-01 | The initiator MUST send its keys. |" in problem
    trace.write(tmp_path)
    assert messages(tmp_path) == []


def test_hand_edited_generated_file_fails(tmp_path: Path) -> None:
    good_tree(tmp_path)
    target = tmp_path / "spec/TRACEABILITY.md"
    target.write_text(target.read_text(encoding="utf-8") + "\nhand-written note\n", "utf-8")
    [problem] = messages(tmp_path)
    assert problem.startswith("spec/TRACEABILITY.md: out of date")


def test_new_test_makes_generated_file_stale(tmp_path: Path) -> None:
    good_tree(tmp_path)
    make_tree(
        tmp_path,
        {
            "tests/test_new.py": """
                import pytest

                @pytest.mark.req("HS-01")
                def test_x() -> None:
                    pass
            """
        },
    )
    [problem] = messages(tmp_path)
    assert problem.startswith("spec/TRACEABILITY.md: out of date")
    assert "tests/test_new.py::test_x" in problem


def test_missing_generated_file_fails(tmp_path: Path) -> None:
    good_tree(tmp_path)
    (tmp_path / "spec/TRACEABILITY.md").unlink()
    assert messages(tmp_path) == [
        "spec/TRACEABILITY.md: missing: run `python tools/traceability.py --write`"
    ]


# ------------------------------------------------------------------------------------------
# markers that would claim coverage pytest never runs


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        (
            "tests/test_m.py",
            "import pytest\n\n@pytest.mark.req('HS-01')\ndef helper():\n    pass\n",
            "tests/test_m.py:3: req marker not on a test: function 'helper' is not collected",
        ),
        (
            "tests/conftest.py",
            "import pytest\n\n@pytest.mark.req('HS-01')\ndef test_x():\n    pass\n",
            "tests/conftest.py:3: req marker not on a test: tests/conftest.py is not a test module",
        ),
        (
            "tests/test_m.py",
            "import pytest\n\nclass Helper:\n    @pytest.mark.req('HS-01')\n    def test_x(self):\n"
            "        pass\n",
            "tests/test_m.py:4: req marker not on a test: function 'test_x' is inside a class",
        ),
        (
            "tests/test_m.py",
            "import pytest\n\ndef test_x():\n    m = pytest.mark.req('HS-01')\n",
            "tests/test_m.py:4: req marker not on a test: inside a function body",
        ),
        (
            "tests/test_m.py",
            "import pytest\n\nREQ = pytest.mark.req('HS-01')\n",
            "tests/test_m.py:3: req marker not on a test: assign it with pytestmark =",
        ),
        (
            "tests/test_m.py",
            "import pytest\n\nID = 'HS-01'\n\n@pytest.mark.req(ID)\ndef test_x():\n    pass\n",
            "tests/test_m.py:5: pytest.mark.req arguments must be string literals",
        ),
        (
            "tests/test_m.py",
            "import pytest\n\n@pytest.mark.req\ndef test_x():\n    pass\n",
            "tests/test_m.py:3: pytest.mark.req needs the requirement IDs as arguments",
        ),
        (
            "tests/test_m.py",
            "import pytest\n\n@pytest.mark.req()\ndef test_x():\n    pass\n",
            "tests/test_m.py:3: pytest.mark.req takes requirement IDs as positional strings only",
        ),
        (
            "tests/test_m.py",
            "from pytest import mark\n\n@mark.req('hs-1')\ndef test_x():\n    pass\n",
            "tests/test_m.py:3: 'hs-1' is not a requirement ID (like HS-03)",
        ),
    ],
)
def test_misplaced_or_malformed_marker_fails(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    make_tree(tmp_path, {"spec/x.md": "- **HS-01** The peer MUST do it.\n", path: source})
    found = [str(p) for p in trace.scan_tests(tmp_path).problems]
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]


# ------------------------------------------------------------------------------------------
# command line


def test_command_line_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_tree(tmp_path)
    (tmp_path / "spec/TRACEABILITY.md").unlink()
    assert trace.main(["--check", "--root", str(tmp_path)]) == 1
    assert "traceability: FAILED, 1 problem(s)" in capsys.readouterr().err

    assert trace.main(["--write", "--root", str(tmp_path)]) == 0
    assert "wrote spec/TRACEABILITY.md" in capsys.readouterr().out

    assert trace.main(["--check", "--root", str(tmp_path)]) == 0
    assert "traceability: OK (5 requirements, each with a test)" in capsys.readouterr().out


def test_command_line_needs_a_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        trace.main([])
    assert exc.value.code == 2
    capsys.readouterr()
