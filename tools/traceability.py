#!/usr/bin/env python3
"""Requirement traceability: every requirement in spec/ has a test, every test cites a real one.

Standard library only. Run from anywhere:

    python tools/traceability.py --check    exit 1 (with one line per problem) on any mismatch
    python tools/traceability.py --write    regenerate spec/TRACEABILITY.md

Conventions
-----------
A requirement is defined in ``spec/*.md`` (never in ``spec/TRACEABILITY.md``, which this tool
writes) by a bullet or paragraph that starts with its bold ID::

    - **HS-03** The responder MUST reject an initial message naming an unknown prekey.

or by a table row whose first cell is the bold ID (``| **LIM-01** | ... |``). An ID is a known
prefix (:data:`PREFIXES`), a dash and two or three digits; a bold opening with another prefix
(``**SHA-256**``) is ordinary text, so a new prefix must be added to PREFIXES before it counts.
Every bullet, paragraph or table row
that says MUST, MUST NOT or SHALL carries an ID, or belongs to one: a nested bullet or an indented
continuation paragraph belongs to the item it sits under, and a list belongs to a paragraph that
introduces it with a colon. Fenced code, HTML comments, inline code spans and headings are not
requirements, and neither is the RFC 2119 / RFC 8174 / BCP 14 key-words boilerplate.

A test names the IDs it checks with the registered pytest marker::

    @pytest.mark.req("HS-03", "HS-04")      # on a test function, a test method or a Test* class
    pytestmark = pytest.mark.req("RAT-01")  # on every test of a module (or, in a class, a class)

Markers inside a test's decorators also count (``pytest.param(..., marks=pytest.mark.req(...))``).
A marker anywhere else (on a helper, in a conftest, in a function body) is reported: it would claim
coverage that pytest never runs.

``--check`` reports, each as ``path:line: message``:

(a) an ID defined in spec with no test;  (b) a test naming an ID that is not defined;
(c) an ID defined twice;  (d) a MUST/SHALL statement with no ID;  (e) spec/TRACEABILITY.md
differing from what ``--write`` would generate; and malformed IDs of a known prefix
(``**HS-3**``), markers that are misplaced (not on a collected test) or not string literals.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Known requirement ID prefixes, in the order of the package layering (also the table order).
PREFIXES: tuple[str, ...] = (
    "PRIM",  # primitives
    "ID",  # identity, safety number
    "SN",  # safety numbers
    "PK",  # prekeys
    "BUN",  # prekey bundle
    "HS",  # handshake
    "RAT",  # double ratchet
    "ENV",  # envelope, padding
    "ST",  # serialised state
    "ERR",  # errors, reprs
    "LIM",  # limits
    "STO",  # the encrypted store
    "API",  # the Client API
    "RET",  # retention policy files, rules and sweeps
    "CON",  # consent records (compliance)
    "ROPA",  # controller and record of processing (Art. 30)
    "SWP",  # retention applied in the store: expiry and sweeps
    "DIS",  # disappearing messages
    "HOLD",  # legal holds
    "ERA",  # erasure and its receipt
    "AUD",  # the audit trail
    "EXP",  # access and portability export
    "CLI",  # the compliance command line
    "FLT",  # faults: disk full, read-only, lost journal, key file, clock jumps, concurrency
    "LEAK",  # what never leaks into logs, errors, reprs, exports, audit and receipts
    "ARCH",  # the layers and their import direction
    "MDL",  # two real clients against a reference model
)

SPEC_DIR = "spec"
TESTS_DIR = "tests"
GENERATED = "TRACEABILITY.md"
WRITE_COMMAND = "python tools/traceability.py --write"
CHECK_COMMAND = "python tools/traceability.py --check"
SUMMARY_WIDTH = 120

_ID_SHAPE = r"[A-Z]{2,5}-\d{2,3}"
ID_RE = re.compile(rf"^{_ID_SHAPE}$")
_BULLET = r"(?:[-*+]|\d{1,9}[.)])"
# A bold ID at the start of a bullet or paragraph (optionally in a block quote).
DEFINITION_RE = re.compile(rf"^\s*(?:>\s*)?(?:{_BULLET}\s+)?\*\*({_ID_SHAPE})\*\*")
TABLE_DEFINITION_RE = re.compile(rf"^\s*\|\s*\*\*({_ID_SHAPE})\*\*\s*\|")
BULLET_RE = re.compile(rf"^(\s*)(?:>\s*)?{_BULLET}(?:\s+|$)")
FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING_RE = re.compile(r"^\s{0,3}#{1,6}(?:\s|$)")
THEMATIC_BREAK_RE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
TABLE_ROW_RE = re.compile(r"^\s*\|")
TABLE_DELIMITER_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
NORMATIVE_RE = re.compile(r"\b(?:MUST|SHALL)\b")
BOILERPLATE_RE = re.compile(r"\b(?:RFC\s*2119|RFC\s*8174|BCP\s*14)\b")
CODE_SPAN_RE = re.compile(r"(`+)(?:(?!\1).)+?\1")
SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`*\"'])")


@dataclass(frozen=True)
class Problem:
    """One finding of ``--check``: where (``path:line`` or ``path``) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Requirement:
    id: str
    file: str  # repository-relative, forward slashes
    line: int
    text: str  # the statement after the ID, whitespace collapsed

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class SpecScan:
    requirements: list[Requirement] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # spec files read, sorted
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Reference:
    id: str
    file: str  # the test module, repository-relative
    line: int  # of the ID in the marker
    test: str  # pytest-style node id without parameters: file::Class::function

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class MarkerScan:
    references: list[Reference] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def tests_by_id(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for ref in self.references:
            found.setdefault(ref.id, set()).add(ref.test)
        return found


# --------------------------------------------------------------------------------------------
# spec side


@dataclass
class _Block:
    kind: str  # "item" (list item), "para" (paragraph) or "row" (table row)
    line: int
    indent: int
    own_id: str | None  # the ID this block defines (a known prefix)
    inherited_id: str | None  # the ID of the item or paragraph this block belongs to
    lines: list[str]
    candidate: str | None = None  # a bold ID-shaped opening with an unknown prefix

    @property
    def effective_id(self) -> str | None:
        return self.own_id or self.inherited_id


def _strip_comments(lines: Iterable[str]) -> Iterator[str]:
    """Yield ``lines`` with HTML comments blanked out (line numbers are kept)."""
    in_comment = False
    for line in lines:
        out: list[str] = []
        rest = line
        while rest:
            if in_comment:
                end = rest.find("-->")
                if end < 0:
                    rest = ""
                else:
                    rest = rest[end + 3 :]
                    in_comment = False
            else:
                start = rest.find("<!--")
                if start < 0:
                    out.append(rest)
                    rest = ""
                else:
                    out.append(rest[:start])
                    rest = rest[start + 4 :]
                    in_comment = True
        yield "".join(out)


def _loose_definition_re() -> re.Pattern[str]:
    """A bold opening that tries to be an ID of a known prefix but is malformed (``**HS-3**``)."""
    known = "|".join(PREFIXES)
    return re.compile(rf"^\s*(?:>\s*)?(?:{_BULLET}\s+)?\*\*\s*((?i:{known})\s*-\s*\d+)")


def _definition(pattern: re.Pattern[str], line: str) -> tuple[str | None, str | None]:
    """(ID defined, unknown-prefix candidate) for the first line of a block."""
    match = pattern.match(line)
    if match is None:
        return None, None
    found = match.group(1)
    if found.partition("-")[0] in PREFIXES:
        return found, None
    return None, found


def _markdown_blocks(text: str) -> list[_Block]:
    """Split markdown into list items, paragraphs and table rows, outside code and comments."""
    blocks: list[_Block] = []
    current: _Block | None = None
    open_items: list[tuple[int, str | None]] = []  # (indent, effective id) of enclosing items
    intro_id: str | None = None  # id of a "...:" paragraph that introduces the following list
    fence: str | None = None
    after_blank = True

    def close() -> None:
        nonlocal current, intro_id
        if current is None:
            return
        blocks.append(current)
        if current.kind == "para" and not open_items:
            ends_with_colon = " ".join(current.lines).rstrip().endswith(":")
            intro_id = current.effective_id if ends_with_colon else None
        current = None

    def enclosing_id(indent: int) -> str | None:
        while open_items and open_items[-1][0] >= indent:
            open_items.pop()
        return open_items[-1][1] if open_items else intro_id

    for number, line in enumerate(_strip_comments(text.splitlines()), start=1):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        fence_match = FENCE_RE.match(line)
        if fence_match:
            close()
            fence = fence_match.group(1)
            continue
        if not line.strip():
            close()
            after_blank = True
            continue
        indent = len(line) - len(line.lstrip())
        if HEADING_RE.match(line) or THEMATIC_BREAK_RE.match(line):
            close()
            open_items.clear()
            intro_id = None
            after_blank = True
            continue
        if TABLE_ROW_RE.match(line):
            close()
            open_items.clear()
            intro_id = None
            if not TABLE_DELIMITER_RE.match(line):
                own, candidate = _definition(TABLE_DEFINITION_RE, line)
                blocks.append(_Block("row", number, indent, own, None, [line], candidate))
            after_blank = False
            continue
        if BULLET_RE.match(line):
            close()
            own, candidate = _definition(DEFINITION_RE, line)
            parent = enclosing_id(indent)
            current = _Block("item", number, indent, own, parent, [line], candidate)
            open_items.append((indent, current.effective_id))
        elif current is not None and not after_blank:
            current.lines.append(line)  # lazy continuation of the same item or paragraph
        else:
            close()
            if open_items and indent > open_items[0][0]:
                parent = enclosing_id(indent)  # a continuation paragraph inside a list item
            else:
                open_items.clear()  # a paragraph outside every list
                parent = None
            own, candidate = _definition(DEFINITION_RE, line)
            current = _Block("para", number, indent, own, parent, [line], candidate)
        after_blank = False
    close()
    return blocks


def _statement(block: _Block) -> str:
    """The text of a defining block after its ID, whitespace collapsed."""
    if block.kind == "row":
        cells = [c.strip() for c in block.lines[0].strip().strip("|").split("|")]
        return " ".join(" ".join(c for c in cells[1:] if c).split())
    joined = " ".join(part.strip() for part in block.lines)
    match = DEFINITION_RE.match(joined)
    rest = joined[match.end() :] if match else joined
    return " ".join(rest.lstrip(" :.-\u2013\u2014").split())


def _id_key(requirement_id: str) -> tuple[int, str, int]:
    prefix, _, number = requirement_id.partition("-")
    rank = PREFIXES.index(prefix) if prefix in PREFIXES else len(PREFIXES)
    return rank, prefix, int(number)


def spec_files(root: Path) -> list[Path]:
    spec = root / SPEC_DIR
    if not spec.is_dir():
        return []
    return sorted(p for p in spec.glob("*.md") if p.name != GENERATED and p.is_file())


def scan_spec(root: Path) -> SpecScan:
    """Read every ``spec/*.md`` (but ``TRACEABILITY.md``): requirements and spec-side problems."""
    scan = SpecScan()
    first_site: dict[str, str] = {}
    loose = _loose_definition_re()
    for path in spec_files(root):
        rel = path.relative_to(root).as_posix()
        scan.files.append(rel)
        for block in _markdown_blocks(path.read_text(encoding="utf-8")):
            where = f"{rel}:{block.line}"
            rid = block.own_id
            if rid is not None:
                if rid in first_site:
                    scan.problems.append(
                        Problem(where, f"{rid} is defined twice (first at {first_site[rid]})")
                    )
                else:
                    first_site[rid] = where
                    scan.requirements.append(Requirement(rid, rel, block.line, _statement(block)))
                continue
            malformed = loose.match(block.lines[0]) if block.kind != "row" else None
            if malformed:
                scan.problems.append(
                    Problem(
                        where,
                        f"malformed requirement ID {malformed.group(1)!r}: write it as "
                        "**PREFIX-NN** (a known prefix, a dash, 2 or 3 digits), alone in bold",
                    )
                )
                continue
            body = CODE_SPAN_RE.sub("", " ".join(block.lines))
            keyword = NORMATIVE_RE.search(body)
            if block.inherited_id is None and keyword and not BOILERPLATE_RE.search(body):
                hint = (
                    f" ({block.candidate} has an unknown prefix; if it is meant as an ID, add "
                    "the prefix to PREFIXES in tools/traceability.py)"
                    if block.candidate
                    else ""
                )
                scan.problems.append(
                    Problem(
                        where,
                        f"normative {keyword.group(0)} without a requirement ID: start the bullet "
                        f"or paragraph with **PREFIX-NN**{hint}",
                    )
                )
    return scan


# --------------------------------------------------------------------------------------------
# test side


def _is_req_attribute(node: ast.expr) -> bool:
    """``pytest.mark.req`` or ``mark.req`` (after ``from pytest import mark``)."""
    if not isinstance(node, ast.Attribute) or node.attr != "req":
        return False
    owner = node.value
    if isinstance(owner, ast.Name):
        return owner.id == "mark"
    return (
        isinstance(owner, ast.Attribute)
        and owner.attr == "mark"
        and isinstance(owner.value, ast.Name)
        and owner.value.id == "pytest"
    )


def _req_markers(tree: ast.AST) -> tuple[list[ast.Call], list[ast.Attribute]]:
    """The ``req(...)`` calls in ``tree``, and bare ``req`` attributes never called."""
    calls: list[ast.Call] = []
    called: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_req_attribute(node.func):
            calls.append(node)
            called.add(id(node.func))
    bare = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _is_req_attribute(node) and id(node) not in called
    ]
    calls.sort(key=lambda c: (c.lineno, c.col_offset))
    bare.sort(key=lambda a: (a.lineno, a.col_offset))
    return calls, bare


def _is_test_file(path: Path) -> bool:
    return (path.name.startswith("test_") or path.name.endswith("_test.py")) and (
        path.suffix == ".py"
    )


class _MarkerVisitor:
    def __init__(self, rel: str, collectable: bool, scan: MarkerScan) -> None:
        self.rel = rel
        self.collectable = collectable
        self.scan = scan

    def problem(self, node: ast.AST, message: str) -> None:
        self.scan.problems.append(Problem(f"{self.rel}:{getattr(node, 'lineno', 0)}", message))

    def attach(self, markers: Sequence[ast.expr], test: str | None, why_not: str) -> None:
        for expr in markers:
            calls, bare = _req_markers(expr)
            for attribute in bare:
                self.problem(attribute, "pytest.mark.req needs the requirement IDs as arguments")
            for call in calls:
                if test is None:
                    self.problem(call, f"req marker not on a test: {why_not}")
                    continue
                self.record(call, test)

    def record(self, call: ast.Call, test: str) -> None:
        if call.keywords or not call.args:
            self.problem(call, "pytest.mark.req takes requirement IDs as positional strings only")
        for arg in call.args:
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                self.problem(arg, "pytest.mark.req arguments must be string literals")
                continue
            if not ID_RE.match(arg.value):
                self.problem(arg, f"{arg.value!r} is not a requirement ID (like HS-03)")
                continue
            self.scan.references.append(Reference(arg.value, self.rel, arg.lineno, test))

    def stray(self, node: ast.AST, why: str) -> None:
        calls, bare = _req_markers(node)
        for marker in [*calls, *bare]:
            self.problem(marker, f"req marker not on a test: {why}")

    def visit_body(self, body: list[ast.stmt], classes: list[str], collectable: bool) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                is_test = collectable and stmt.name.startswith("test")
                node_id = "::".join([self.rel, *classes, stmt.name])
                why = self.why_not(f"function {stmt.name!r}", collectable, "test")
                self.attach(stmt.decorator_list, node_id if is_test else None, why)
                for inner in stmt.body:
                    self.stray(inner, "inside a function body (put it on the test)")
                self.stray_defaults(stmt)
            elif isinstance(stmt, ast.ClassDef):
                is_test_class = collectable and stmt.name.startswith("Test")
                node_id = "::".join([self.rel, *classes, stmt.name])
                why = self.why_not(f"class {stmt.name!r}", collectable, "Test")
                self.attach(stmt.decorator_list, node_id if is_test_class else None, why)
                for base in [*stmt.bases, *stmt.keywords]:
                    self.stray(base, "in a class's bases")
                self.visit_body(stmt.body, [*classes, stmt.name], is_test_class)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign) and (
                self.is_pytestmark(stmt)
            ):
                value = stmt.value
                scope = "::".join([self.rel, *classes])
                owner = f"class {classes[-1]!r}" if classes else "this module"
                why = self.why_not(owner, collectable, "Test" if classes else "")
                if value is not None:
                    self.attach([value], scope if collectable else None, why)
            else:
                self.stray(stmt, "assign it with pytestmark = or use it as a decorator")

    def stray_defaults(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for default in [*func.args.defaults, *func.args.kw_defaults]:
            if default is not None:
                self.stray(default, "in a default argument value")

    def why_not(self, what: str, collectable: bool, prefix: str) -> str:
        if not self.collectable:
            return f"{self.rel} is not a test module (name it test_*.py)"
        if not collectable:
            return f"{what} is inside a class pytest does not collect (name it Test*)"
        return f"{what} is not collected by pytest (its name must start with {prefix!r})"

    @staticmethod
    def is_pytestmark(stmt: ast.Assign | ast.AnnAssign | ast.AugAssign) -> bool:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets)


def find_test_modules(root: Path) -> list[Path]:
    tests = root / TESTS_DIR
    if not tests.is_dir():
        return []
    found = []
    for path in tests.rglob("*.py"):
        parts = path.relative_to(tests).parts
        if any(part.startswith(".") or part == "__pycache__" for part in parts):
            continue
        found.append(path)
    return sorted(found)


def scan_tests(root: Path) -> MarkerScan:
    """Find every ``pytest.mark.req`` marker under ``tests/`` and the test it belongs to."""
    scan = MarkerScan()
    for path in find_test_modules(root):
        rel = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        if "req" not in source:
            continue
        try:
            tree = ast.parse(source, filename=rel)
        except SyntaxError as exc:
            scan.problems.append(Problem(f"{rel}:{exc.lineno or 0}", f"cannot parse: {exc.msg}"))
            continue
        collectable = _is_test_file(path)
        _MarkerVisitor(rel, collectable, scan).visit_body(tree.body, [], collectable)
    scan.references.sort(key=lambda r: (r.file, r.line, r.id))
    return scan


# --------------------------------------------------------------------------------------------
# report


def summarise(text: str, width: int = SUMMARY_WIDTH) -> str:
    """The first sentence of ``text``, at most about ``width`` characters, safe in a table cell."""
    text = " ".join(text.split())
    end = SENTENCE_END_RE.search(text)
    sentence = text[: end.start()] if end else text
    if len(sentence) > width:
        cut = sentence[: width - 3]
        if " " in cut:
            cut = cut.rsplit(" ", 1)[0]
        cut = cut.rstrip(" ,;:")
        if cut.count("`") % 2:
            cut += "`"
        sentence = cut + "..."
    return sentence.replace("|", "\\|")


def render(spec: SpecScan, tests: MarkerScan) -> str:
    """The content of spec/TRACEABILITY.md."""
    covered = tests.tests_by_id()
    by_file: dict[str, list[Requirement]] = {}
    for requirement in spec.requirements:
        by_file.setdefault(requirement.file, []).append(requirement)
    total = len(spec.requirements)
    with_tests = sum(1 for r in spec.requirements if covered.get(r.id))
    out = [
        "# Requirement traceability",
        "",
        f"<!-- Generated by `{WRITE_COMMAND}`: do not edit by hand. -->",
        "",
        f"Generated by `{WRITE_COMMAND}` from the requirement IDs defined in `spec/*.md` and the",
        "`@pytest.mark.req(...)` markers of the tests under `tests/`. Do not edit it by hand:",
        f"`{CHECK_COMMAND}` (part of `python3 dev.py test`) fails when it is out of date.",
        "",
        f"Requirements: {total}, covered by at least one test: {with_tests}, "
        f"spec files with requirements: {len(by_file)}.",
    ]
    for file in sorted(by_file):
        name = file.rsplit("/", 1)[-1]
        out += [
            "",
            f"## [{name}]({name})",
            "",
            "| ID | Requirement | Tests |",
            "| --- | --- | --- |",
        ]
        for requirement in sorted(by_file[file], key=lambda r: _id_key(r.id)):
            names = sorted(covered.get(requirement.id, ()))
            cell = "<br>".join(f"`{n}`" for n in names) if names else "**none**"
            out.append(f"| {requirement.id} | {summarise(requirement.text)} | {cell} |")
    return "\n".join(out) + "\n"


def generated_path(root: Path) -> Path:
    return root / SPEC_DIR / GENERATED


def check(root: Path) -> list[Problem]:
    """Every problem ``--check`` reports for the repository at ``root`` (empty: all good)."""
    spec = scan_spec(root)
    tests = scan_tests(root)
    problems = [*spec.problems, *tests.problems]

    covered = tests.tests_by_id()
    for requirement in sorted(spec.requirements, key=lambda r: (r.file, r.line)):
        if not covered.get(requirement.id):
            problems.append(
                Problem(
                    requirement.where,
                    f"{requirement.id} has no test: mark one with "
                    f'@pytest.mark.req("{requirement.id}")',
                )
            )
    defined = {r.id for r in spec.requirements}
    undefined: dict[str, list[Reference]] = {}
    for ref in tests.references:  # sorted by file and line
        if ref.id not in defined:
            undefined.setdefault(ref.id, []).append(ref)
    for rid, refs in sorted(
        undefined.items(), key=lambda item: (item[1][0].file, item[1][0].line, item[0])
    ):
        others = f" and {len(refs) - 1} more marker(s)" if len(refs) > 1 else ""
        problems.append(
            Problem(
                refs[0].where,
                f"{rid} (on {refs[0].test}{others}) is not defined in spec/*.md",
            )
        )

    target = generated_path(root)
    if spec.files or target.exists():
        expected = render(spec, tests)
        rel = target.relative_to(root).as_posix()
        if not target.exists():
            problems.append(Problem(rel, f"missing: run `{WRITE_COMMAND}`"))
        else:
            actual = target.read_text(encoding="utf-8")
            if actual != expected:
                diff = difflib.unified_diff(
                    actual.splitlines(),
                    expected.splitlines(),
                    "committed",
                    "generated",
                    n=0,
                    lineterm="",
                )
                shown = [line for line in diff if not line.startswith(("---", "+++", "@@"))]
                detail = "\n".join(f"    {line}" for line in shown[:12])
                more = f"\n    ... ({len(shown) - 12} more lines)" if len(shown) > 12 else ""
                problems.append(Problem(rel, f"out of date: run `{WRITE_COMMAND}`\n{detail}{more}"))
    return problems


def write(root: Path) -> Path | None:
    """Regenerate spec/TRACEABILITY.md; return its path if it changed, None if not (or no spec/)."""
    if not (root / SPEC_DIR).is_dir():
        return None
    target = generated_path(root)
    content = render(scan_spec(root), scan_tests(root))
    if target.exists() and target.read_text(encoding="utf-8") == content:
        return None
    with target.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(content)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="traceability", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report mismatches, exit 1 if any")
    mode.add_argument("--write", action="store_true", help="regenerate spec/TRACEABILITY.md")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository root (default: the parent of tools/)",
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()

    if args.write:
        changed = write(root)
        rel = f"{SPEC_DIR}/{GENERATED}"
        if not (root / SPEC_DIR).is_dir():
            print(f"traceability: no {SPEC_DIR}/ directory, nothing to write")
        elif changed is None:
            print(f"traceability: {rel} is up to date")
        else:
            print(f"traceability: wrote {rel}")
        remaining = check(root)
        if remaining:
            print(f"traceability: {len(remaining)} problem(s) remain; run `{CHECK_COMMAND}`")
        return 0

    problems = check(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    spec = scan_spec(root)
    if problems:
        print(f"traceability: FAILED, {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"traceability: OK ({len(spec.requirements)} requirements, each with a test)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
