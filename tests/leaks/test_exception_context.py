"""LEAK-03, as a lint: a parser's exception holds its whole input (msgpack's ``ExtraData``, a
``UnicodeError``'s ``object``, a ``JSONDecodeError``'s ``doc``), and an error raised inside the
``except`` block that caught it keeps it as ``__context__``, even with ``from None``.

So a ``raise`` inside a handler of a ``try`` whose body decodes (``msgpack.unpackb``,
``json.loads``, ``.decode(...)``, ``.encode(...)``) is a finding, unless the input is listed
below as holding no secret and no plaintext, with the reason. The leak run
(test_leaks_library.py) finds such contexts dynamically; this finds the pattern before it ships.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "entrenous"
DECODERS = {"unpackb", "loads", "decode", "encode", "fromhex"}

#: (file, function): the decoders there read no secret and no plaintext.
ALLOWED: dict[tuple[str, str], str] = {
    ("cli_compliance.py", "_load_trail"): "an exported audit trail (ids, counts, pseudonyms)",
    ("client.py", "open"): "the policy text kept in the store (the controller's rules)",
    ("client.py", "_saved_request"): "a consent request this client sent (the controller's)",
    ("client.py", "conversation"): "a conversation id in hex",
    ("client.py", "_conversation_uid"): "a conversation id in hex",
    ("client.py", "_answer_consent"): "a consent request id in hex",
    ("client.py", "_history"): "a message id in hex; and the library's payload decoder, whose "
    "MalformedEnvelope holds nothing of its input",
    ("compliance/export.py", "_messages"): "the library's payload decoder, whose "
    "MalformedEnvelope holds nothing of its input",
    ("compliance/audit.py", "from_dict"): "an audit event (ids, counts, pseudonyms)",
    ("compliance/audit.py", "head"): "the audit head (a sequence number and a public hash)",
    ("compliance/erasure.py", "from_json"): "an erasure receipt (content-free by design)",
    ("compliance/erasure.py", "verify"): "a receipt's signature in hex (public)",
    ("compliance/holds.py", "release"): "a hold id in hex",
    ("compliance/ledger.py", "verify"): "an audit checkpoint of the ledger (a public hash)",
    ("compliance/policy.py", "load"): "a policy file (the controller's rules)",
    ("compliance/policy.py", "parse"): "a policy text (the controller's rules)",
    ("store/keys.py", "from_json"): "the Argon2id parameters (salt and costs, public)",
}


def findings() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        file = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for function in functions:
            for node in ast.walk(function):
                if not isinstance(node, ast.Try):
                    continue
                calls = {
                    c.func.attr
                    for stmt in node.body
                    for c in ast.walk(stmt)
                    if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
                }
                if not calls & DECODERS:
                    continue
                for handler in node.handlers:
                    raises = [
                        r
                        for s in handler.body
                        for r in ast.walk(s)
                        if isinstance(r, ast.Raise) and r.exc is not None  # not a bare re-raise
                    ]
                    if raises and (file, function.name) not in ALLOWED:
                        found.append(f"{file}:{raises[0].lineno} in {function.name}()")
    return sorted(set(found))


@pytest.mark.req("LEAK-03")
def test_no_error_is_raised_inside_the_handler_of_a_decoder() -> None:
    found = findings()
    assert not found, (
        "an error raised inside the except block of a decoder keeps the decoder's exception "
        "(and the input it holds) as __context__: raise it after the block, or list the "
        "function in ALLOWED (tests/leaks/test_exception_context.py) with why its input holds "
        "no secret:\n" + "\n".join(f"  {f}" for f in found)
    )


@pytest.mark.req("LEAK-03")
def test_every_allowed_function_still_decodes_in_a_try() -> None:
    """A stale entry would let a new decoder of the same name through unseen."""
    names = {(f.split(":")[0], f.split(" in ")[1][:-2]) for f in _all()}
    for entry in ALLOWED:
        assert entry in names, entry


def _all() -> list[str]:
    saved = dict(ALLOWED)
    ALLOWED.clear()
    try:
        return findings()
    finally:
        ALLOWED.update(saved)


@pytest.mark.req("LEAK-03")
def test_the_lint_finds_a_planted_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = tmp_path / "entrenous"
    planted.mkdir()
    (planted / "planted.py").write_text(
        "import msgpack\n"
        "def load(data):\n"
        "    try:\n"
        "        return msgpack.unpackb(data)\n"
        "    except ValueError:\n"
        "        raise RuntimeError('state is not readable') from None\n",
        encoding="utf-8",
    )
    monkeypatch.setitem(globals(), "SRC", planted)
    assert findings() == ["planted.py:6 in load()"]
