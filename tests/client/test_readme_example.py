"""The README's ten-line conversation runs as written, and does what its comments say."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from entrenous import Client, Conversation, Message, Received, SafetyNumber

README = Path(__file__).resolve().parents[2] / "README.md"

#: The example, exactly as the lead's brief and the README give it (comments aside).
EXAMPLE = textwrap.dedent(
    """\
    from entrenous import Client
    with Client.open("bank.db", key=key_from_keystore) as bank, \\
         Client.open("customer.db", passphrase="correct horse battery staple") as customer:
        bundle = bank.prekey_bundle()
        conv = customer.start_conversation(bundle)
        envelope = conv.send("Guten Tag, ich habe eine Frage zu meinem Konto")
        received = bank.receive(envelope)
        reply = received.conversation.send({"text": "Gern!", "buttons": ["Konto", "Karte"]})
        customer.receive(reply)
        conv.history(limit=50)
        customer.conversations()
        conv.safety_number()
    """
)


def _code_lines(code: str) -> list[str]:
    """Non-blank lines without trailing comments, whitespace-normalised."""
    out = []
    for raw in code.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).rstrip()
        if line.strip():
            out.append(" ".join(line.split()))
    return out


@pytest.mark.req("API-01", "API-03", "API-04", "API-08", "API-09")
def test_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"key_from_keystore": os.urandom(32)}
    exec(compile(EXAMPLE, "README example", "exec"), namespace)  # noqa: S102

    received = namespace["received"]
    assert isinstance(received, Received)
    assert received.new_conversation
    assert received.message.text == "Guten Tag, ich habe eine Frage zu meinem Konto"
    conv = namespace["conv"]
    assert isinstance(conv, Conversation)
    # The files exist, and the stores reopen with the same secrets.
    assert {"bank.db", "bank.db.keys", "customer.db", "customer.db.kdf"} <= {
        p.name for p in tmp_path.iterdir()
    }
    with (
        Client.open("bank.db", key=namespace["key_from_keystore"]) as bank,
        Client.open("customer.db", passphrase="correct horse battery staple") as customer,
    ):
        history = customer.conversation(conv.id).history(limit=50)
        assert [m.direction for m in history] == ["received", "sent"]
        assert all(isinstance(m, Message) for m in history)
        assert history[0].data == {"text": "Gern!", "buttons": ["Konto", "Karte"]}
        assert history[1].text == "Guten Tag, ich habe eine Frage zu meinem Konto"
        assert [c.id for c in customer.conversations()] == [conv.id]
        number = customer.conversation(conv.id).safety_number()
        assert isinstance(number, SafetyNumber)
        assert number == bank.conversations()[0].safety_number()


def test_readme_still_contains_the_example() -> None:
    """The README may add comments and a key line, but not change the code it shows."""
    readme = _code_lines(README.read_text(encoding="utf-8"))
    example = _code_lines(EXAMPLE)
    start = readme.index(example[0])
    body = [line for line in readme[start:] if not line.startswith("key_from_keystore =")]
    assert body[: len(example)] == example
