"""``entrenous audit verify`` and ``audit export`` (CLI-09, CLI-10): a store's trail and consent
ledger checked, a tampered row named, and an exported trail verified offline, with no store and
no key."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from cli_support import Bank, build_bank, one_error_line, run
from entrenous.compliance import audit

Capsys = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Bank:
    return build_bank(tmp_path_factory.mktemp("bank-template"))


@pytest.fixture
def bank(template: Bank, tmp_path: Path) -> Bank:
    return template.copy_to(tmp_path)


@pytest.fixture
def args(bank: Bank) -> list[str]:
    return ["--store", str(bank.path), "--key-file", str(bank.write_key_file())]


def tamper(bank: Bank, statement: str, params: tuple[object, ...] = ()) -> None:
    with bank.open() as client:
        client._store._connection.execute(statement, params)


def head_of(bank: Bank) -> tuple[int, str]:
    with bank.open() as client:
        last = client.audit_events()[-1]
    return last.seq, last.hash.hex()


@pytest.mark.req("CLI-09")
def test_verify_prints_the_count_and_the_head(bank: Bank, args: list[str], capsys: Capsys) -> None:
    seq, digest = head_of(bank)
    result = run(capsys, "audit", "verify", *args)
    assert result.status == 0, result.err
    assert result.out.splitlines() == [
        f"Audit trail of {bank.path}: {seq} events verified.",
        f"Head: seq {seq}, hash {digest}",
        "Consent ledger: 1 record verified.",
    ]
    document = json.loads(run(capsys, "audit", "verify", *args, "--json").out)
    assert document == {
        "valid": True,
        "source": str(bank.path),
        "events": seq,
        "head": {"seq": seq, "hash": digest},
        "consent_records": 1,
    }


@pytest.mark.req("CLI-09", "CLI-02", "CLI-03")
@pytest.mark.parametrize(
    ("statement", "params", "broken", "reason"),
    [
        (
            "UPDATE audit_events SET details = ? WHERE seq = 3",
            (b'{"conversation":"x"}',),
            3,
            "its content does not match its hash",
        ),
        ("UPDATE audit_events SET at = at + 1 WHERE seq = 2", (), 2, "its content does not match"),
        ("DELETE FROM audit_events WHERE seq = 4", (), 4, "this entry is missing"),
    ],
    ids=["details", "time", "removed"],
)
def test_a_tampered_trail_exits_1_naming_the_first_broken_entry(
    bank: Bank,
    args: list[str],
    capsys: Capsys,
    statement: str,
    params: tuple[object, ...],
    broken: int,
    reason: str,
) -> None:
    tamper(bank, statement, params)
    result = run(capsys, "audit", "verify", *args)
    assert result.status == 1
    assert one_error_line(result).startswith(
        f"entrenous: {bank.path}: audit trail broken at entry {broken}: {reason}"
    )
    assert result.out == ""
    document = json.loads(run(capsys, "--json", "audit", "verify", *args).out)
    assert document["valid"] is False and document["broken_at"] == broken
    assert document["what"] == "audit trail"


@pytest.mark.req("CLI-09", "CLI-02")
def test_a_tampered_consent_ledger_exits_1(bank: Bank, args: list[str], capsys: Capsys) -> None:
    tamper(bank, "UPDATE consent_ledger SET hash = ? WHERE seq = 1", (bytes(32),))
    result = run(capsys, "audit", "verify", *args)
    assert result.status == 1
    assert one_error_line(result).startswith(
        f"entrenous: {bank.path}: consent ledger broken at entry 1: "
    )


def export_trail(capsys: Capsys, args: list[str], path: Path) -> dict[str, Any]:
    result = run(capsys, "audit", "export", *args, "--output", path)
    assert result.status == 0, result.err
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.req("CLI-10", "CLI-08")
def test_an_exported_trail_verifies_offline(
    bank: Bank, args: list[str], tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "trail.json"
    trail = export_trail(capsys, args, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seq, digest = head_of(bank)
    with bank.open() as client:
        assert trail["events"] == [e.to_dict() for e in client.audit_events()]
        assert trail["identity"] == client.identity.to_bytes().hex()
    assert trail["head"] == {"seq": seq, "hash": digest}
    assert trail["format"] == "entrenous-audit-trail" and trail["version"] == 1
    # The same check the command runs, by hand with the library's functions:
    events = [audit.AuditEvent.from_dict(e) for e in trail["events"]]
    assert audit.verify_events(events, (seq, bytes.fromhex(digest))) == seq

    bank.path.unlink()  # offline: no store, no key
    result = run(capsys, "audit", "verify", "--trail", path)
    assert result.status == 0, result.err
    assert result.out.splitlines()[:2] == [
        f"Exported audit trail {path}: {seq} events verified offline.",
        f"Head: seq {seq}, hash {digest}",
    ]
    document = json.loads(run(capsys, "audit", "verify", "--trail", path, "--json").out)
    assert document["valid"] is True and document["events"] == seq
    assert document["identity"] == trail["identity"]
    checked = run(
        capsys, "audit", "verify", "--trail", path, "--checkpoint", f"2:{events[1].hash.hex()}"
    )
    assert checked.status == 0 and "Checkpoint seq 2: present and unchanged." in checked.out


@pytest.mark.req("CLI-10")
def test_audit_export_to_stdout(bank: Bank, args: list[str], capsys: Capsys) -> None:
    result = run(capsys, "audit", "export", *args)
    assert result.status == 0
    trail = json.loads(result.out)
    assert set(trail) == {"format", "version", "exported_at", "events", "head", "identity"}


def _edit(path: Path, change: Any) -> None:
    trail = json.loads(path.read_text(encoding="utf-8"))
    change(trail)
    path.write_text(json.dumps(trail), encoding="utf-8")


@pytest.mark.req("CLI-10", "CLI-02")
@pytest.mark.parametrize(
    ("change", "broken", "reason"),
    [
        (lambda t: t["events"][2]["details"].update(x=1), 3, "its content does not match its hash"),
        (lambda t: t["events"].pop(1), 2, "this entry is missing"),
        (lambda t: t["events"].pop(), None, "entries"),
        # Entry 3 moved before 2: entry 2 is found missing where it should be.
        (lambda t: t["events"].insert(1, t["events"].pop(2)), 2, "this entry is missing"),
        (lambda t: t["head"].update(hash="00" * 32), None, "does not match the recorded head"),
    ],
    ids=["edited", "removed", "cut-off", "reordered", "head"],
)
def test_a_trail_tampered_offline_exits_1_naming_the_entry(
    bank: Bank,
    args: list[str],
    tmp_path: Path,
    capsys: Capsys,
    change: Any,
    broken: int | None,
    reason: str,
) -> None:
    path = tmp_path / "trail.json"
    trail = export_trail(capsys, args, path)
    count = len(trail["events"])
    _edit(path, change)
    result = run(capsys, "audit", "verify", "--trail", path)
    assert result.status == 1
    line = one_error_line(result)
    expected = broken if broken is not None else count
    assert line.startswith(f"entrenous: {path}: audit trail broken at entry {expected}: "), line
    assert reason in line


@pytest.mark.req("CLI-10")
def test_a_rewritten_trail_fails_an_earlier_checkpoint(
    bank: Bank, args: list[str], tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "trail.json"
    trail = export_trail(capsys, args, path)
    checkpoint = f"3:{trail['events'][2]['hash']}"
    # Whoever holds the store can rewrite the trail and every hash after a change: it still
    # verifies on its own, but not against a head recorded before.
    events = [audit.AuditEvent.from_dict(e) for e in trail["events"]]
    prev = audit.GENESIS
    rewritten = []
    for event in events:
        details = {**event.details, "x": 1} if event.seq == 2 else event.details
        digest = audit.event_hash(prev, event.seq, event.at, event.action, details)
        rewritten.append(audit.AuditEvent(event.seq, event.at, event.action, details, prev, digest))
        prev = digest
    trail["events"] = [e.to_dict() for e in rewritten]
    trail["head"] = {"seq": len(rewritten), "hash": prev.hex()}
    path.write_text(json.dumps(trail), encoding="utf-8")
    assert run(capsys, "audit", "verify", "--trail", path).status == 0
    result = run(capsys, "audit", "verify", "--trail", path, "--checkpoint", checkpoint)
    assert result.status == 1
    assert one_error_line(result) == (
        f"entrenous: {path}: audit trail broken at entry 3: it does not match the checkpoint "
        "(another entry is there)"
    )
    late = run(capsys, "audit", "verify", "--trail", path, "--checkpoint", f"99:{'00' * 32}")
    assert late.status == 1 and "the trail ends before it" in late.err


@pytest.mark.req("CLI-10", "CLI-02")
def test_offline_verification_refusals(
    bank: Bank, args: list[str], tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "trail.json"
    export_trail(capsys, args, path)
    with_key = run(capsys, "audit", "verify", "--trail", path, "--key-file", args[3])
    assert with_key.status == 2 and "takes no store key" in one_error_line(with_key)
    both = run(capsys, "audit", "verify", "--trail", path, "--store", bank.path)
    assert both.status == 2
    checkpoint_on_store = run(capsys, "audit", "verify", *args, "--checkpoint", f"1:{'00' * 32}")
    assert checkpoint_on_store.status == 2
    bad = tmp_path / "bad.json"
    for text, message in [
        ("{", "not JSON"),
        ("[]", "not an exported audit trail"),
        ('{"events": [1], "head": null}', "event 1 of the file is malformed"),
        ('{"events": [], "head": {"seq": "1"}}', "the trail's head is malformed"),
        ('{"format": "other", "events": [], "head": null}', "not an exported audit trail"),
    ]:
        bad.write_text(text, encoding="utf-8")
        result = run(capsys, "audit", "verify", "--trail", bad)
        assert result.status == 2, text
        assert message in one_error_line(result), text
    missing = run(capsys, "audit", "verify", "--trail", tmp_path / "none.json")
    assert missing.status == 2 and "cannot read the trail" in one_error_line(missing)
    bad_checkpoint = run(capsys, "audit", "verify", "--trail", path, "--checkpoint", "x")
    assert bad_checkpoint.status == 2
    empty = tmp_path / "empty.json"
    empty.write_text('{"events": [], "head": null}', encoding="utf-8")
    assert run(capsys, "audit", "verify", "--trail", empty).status == 0
