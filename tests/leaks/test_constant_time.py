"""LEAK-06: secrets are compared in constant time. A lint over the library's syntax trees.

Every ``==``, ``!=``, ``in`` and ``not in`` in ``src/entrenous`` whose operand *looks* secret (its
name says key, secret, MAC, tag, digest, hash, signature, chain, seed, passphrase, ...) is a
finding, unless the other side is a constant or ``None``, or the name says it is no secret (an
id, a size, a count, a label, a public key), or the comparison is on the allow-list below with
its reason. Secret bytes are compared with :func:`entrenous._primitives.kdf.constant_time_equal`
(``hmac.compare_digest``) or libsodium's ``sodium_memcmp``; outside the primitives, only the
helper is used. The lint is tested on planted comparisons (it must flag ``if mac == expected:``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "entrenous"

#: Words that make a name look secret (matched against the name's words, lower case).
SECRET_WORDS = re.compile(
    r"(^|_)(key|keys|secret|secrets|mac|tag|digest|hash|hmac|signature|sig|chain|seed|"
    r"passphrase|password|root|shared|prk|okm|ikm|sk|priv|private)($|_)"
)
#: Words that say a name is no secret, whatever else it says.
PUBLIC_WORDS = re.compile(
    r"(^|_)(id|ids|size|len|length|count|n|number|index|name|names|label|kind|version|"
    r"public|pub|verify|identity|fingerprint|generation|type|format|log|prev|previous|"
    r"source|at|seq|rows|row|expected_seq|sessions)($|_)"
)
#: The constant-time comparisons the library may use.
CONSTANT_TIME = {"constant_time_equal", "compare_digest", "sodium_memcmp"}


@dataclass(frozen=True)
class Allowed:
    """A comparison the lint flags that compares no secret (with why)."""

    file: str
    source: str
    reason: str


#: Reviewed comparisons that touch a secret-looking name but compare no secret.
ALLOWED: tuple[Allowed, ...] = (
    Allowed(
        "cli_compliance.py",
        "events[seq - 1].hash != digest",
        "an audit entry's hash against a checkpoint the auditor typed: both public (the head is "
        "printed by `entrenous audit verify` and written into every exported trail)",
    ),
    Allowed(
        "client.py",
        "key in seen",
        "a set of (conversation uid, message id) pairs: a dictionary key made of ids",
    ),
    Allowed(
        "compliance/consent.py",
        "present != keys",
        "the field names of a consent record against the format's: names, not key material",
    ),
    Allowed(
        "compliance/erasure.py",
        "self.signer != identity.key_bytes.hex()",
        "the receipt's signer against a public identity key (the signature is checked next, by "
        "libsodium)",
    ),
    Allowed("compliance/policy.py", "key in table", "a TOML key name of the policy file"),
    Allowed("compliance/policy.py", "keys in self.lines", "a TOML key path of the policy file"),
    Allowed(
        "protocol/ratchet/double_ratchet.py",
        "chain.ratchet_key == ratchet_key",
        "the peer's public ratchet keys (sent in clear in every envelope header)",
    ),
    Allowed(
        "protocol/ratchet/double_ratchet.py",
        "header.ratchet_key in self._retired",
        "the peer's public ratchet key against the retired public ones (in clear in headers)",
    ),
)


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    source: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source}"


def _words(node: ast.expr) -> str | None:
    """The name a comparison operand goes by (``x``, ``a.x``, ``x[i]``, ``x.hex()``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            return node.slice.value  # data["hash"]
        return _words(node.value)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("len", "type", "isinstance", "int", "id"):
            return None  # a length or a type: no secret
        if isinstance(func, ast.Attribute) and func.attr in ("hex", "to_bytes", "digest", "encode"):
            return _words(func.value)
        return None
    return None


def looks_secret(node: ast.expr) -> bool:
    """True if ``node``'s name says secret and nothing in it says public."""
    name = _words(node)
    if name is None or name.isupper():  # constants (KEY_SIZE, LABEL_KEY) are not secrets
        return False
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().lstrip("_")
    return bool(SECRET_WORDS.search(snake)) and not PUBLIC_WORDS.search(snake)


def _trivial(node: ast.expr) -> bool:
    """A constant, ``None``, a literal collection of constants: comparing with it is public."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(isinstance(e, ast.Constant) for e in node.elts)
    return False


def lint(source: str, file: str) -> list[Finding]:
    """The comparisons of ``source`` that may compare a secret with ``==``, ``!=`` or ``in``."""
    found: list[Finding] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            if not isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
                continue
            if _trivial(left) or _trivial(right):
                continue
            if looks_secret(left) or looks_secret(right):
                text = ast.get_source_segment(source, node) or ast.dump(node)
                found.append(Finding(file, node.lineno, " ".join(text.split())))
    return found


def _library() -> list[Finding]:
    found: list[Finding] = []
    for path in sorted(SRC.rglob("*.py")):
        found += lint(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)))
    return found


def _allowed(finding: Finding) -> bool:
    return any(a.file == finding.file and a.source in finding.source for a in ALLOWED)


@pytest.mark.req("LEAK-06")
def test_no_secret_is_compared_with_equality() -> None:
    findings = [f for f in _library() if not _allowed(f)]
    assert not findings, (
        "secret-looking values compared with ==, != or in (use "
        "entrenous._primitives.kdf.constant_time_equal, or add the comparison to ALLOWED in "
        "tests/leaks/test_constant_time.py with the reason it compares no secret):\n"
        + "\n".join(f"  {f}" for f in findings)
    )


@pytest.mark.req("LEAK-06")
def test_every_allowed_comparison_still_exists() -> None:
    """An allow-list entry whose comparison is gone is stale: it would hide a new one."""
    found = _library()
    for allowed in ALLOWED:
        assert any(f.file == allowed.file and allowed.source in f.source for f in found), allowed


@pytest.mark.req("LEAK-06")
@pytest.mark.parametrize(
    "planted",
    [
        "if mac == expected:\n    pass",
        "ok = tag != computed_tag",
        "ok = self._root_key == other._root_key",
        "ok = stored['hash'] == digest",
        "ok = signature in seen",
        "ok = key.hex() == typed",
        "ok = chain_key == previous_chain",
        "ok = passphrase == confirm",
        "ok = a == sharedSecret",
    ],
)
def test_the_lint_finds_a_planted_comparison(planted: str) -> None:
    assert lint(planted, "planted.py"), planted


@pytest.mark.req("LEAK-06")
@pytest.mark.parametrize(
    "harmless",
    [
        "ok = len(key) != KEY_SIZE",
        "ok = key is None",
        "ok = key_id == wanted_id",
        "ok = kind == 'key'",
        "ok = constant_time_equal(mac, expected)",
        "ok = public_key == other_public_key",
        "ok = type(key) is bytes",
        "ok = data['format'] == KEY_FILE_FORMAT",
    ],
)
def test_the_lint_leaves_harmless_comparisons_alone(harmless: str) -> None:
    assert not lint(harmless, "harmless.py"), harmless


def _calls(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


@pytest.mark.req("LEAK-06")
def test_above_the_primitives_only_the_helper_compares_secrets() -> None:
    """One helper: the layers above the primitives call ``constant_time_equal``, never
    ``hmac.compare_digest`` or libsodium directly (so the choice is made in one place)."""
    users = []
    for path in sorted(SRC.rglob("*.py")):
        calls = _calls(path) & CONSTANT_TIME
        if "_primitives" not in path.parts:
            assert calls <= {"constant_time_equal"}, (path, calls)
        if calls:
            users.append(path.relative_to(SRC).as_posix())
    # The modules that check MACs, signatures' inputs, hashes and keys do use it.
    for module in (
        "compliance/audit.py",
        "compliance/consent.py",
        "protocol/identity.py",
        "protocol/session.py",
        "store/sqlcipher.py",
    ):
        assert module in users, module
