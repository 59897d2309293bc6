"""The compliance command line (spec/compliance.md, "The command line"): every subcommand on a
real store, their JSON output, their exit statuses, and what they must never do."""

from __future__ import annotations

import fcntl
import io
import json
import os
import stat
import time
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from cli_support import (
    EXAMPLE,
    OTHER_SUBJECT,
    SCHEMA,
    SUBJECT,
    Bank,
    FakeTTY,
    build_bank,
    one_error_line,
    run,
)
from entrenous import cli_output
from entrenous.client import Client
from entrenous.compliance import retention, ropa
from entrenous.compliance.erasure import ErasureReceipt
from entrenous.compliance.policy import Policy
from entrenous.errors import StateError

Capsys = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Bank:
    return build_bank(tmp_path_factory.mktemp("bank-template"))


@pytest.fixture
def bank(template: Bank, tmp_path: Path) -> Bank:
    return template.copy_to(tmp_path)


@pytest.fixture
def key_file(bank: Bank) -> Path:
    return bank.write_key_file()


@pytest.fixture
def no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is not a terminal (as under pytest, but say so)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


def store_args(bank: Bank, key_file: Path) -> list[str]:
    return ["--store", str(bank.path), "--key-file", str(key_file)]


def audit_actions(bank: Bank) -> list[str]:
    with bank.open() as client:
        return [e.action for e in client.audit_events()]


def due(bank: Bank) -> int:
    with bank.open() as client:
        return client.sweep(dry_run=True).deleted


# --- policy apply ----------------------------------------------------------------------------


def _policy_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "variant.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.req("CLI-12")
def test_policy_apply_prints_the_fingerprint_and_the_conversations_recomputed(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    variant = _policy_variant(tmp_path, 'max_age = "2y"', 'max_age = "4y"')
    fingerprint = Policy.load(variant).fingerprint
    result = run(capsys, "policy", "apply", variant, *store_args(bank, key_file))
    assert result.status == 0, result.err
    assert f"Fingerprint: {fingerprint}" in result.out
    assert "Conversations recomputed: 3" in result.out
    assert due(bank) == 4  # the default rule now keeps 4 years: only the support conversation
    with bank.open() as client:
        assert client.policy is not None and client.policy.fingerprint == fingerprint
        assert client.audit_events()[-1].action == "policy.applied"
    again = run(capsys, "--json", "policy", "apply", variant, *store_args(bank, key_file))
    assert again.status == 0
    assert json.loads(again.out) == {
        "store": str(bank.path),
        "source": str(variant),
        "applied": False,
        "fingerprint": fingerprint,
        "previous": fingerprint,
        "conversations_recomputed": 0,
        "next_sweep_at": json.loads(again.out)["next_sweep_at"],
    }
    assert audit_actions(bank).count("policy.applied") == 2  # the builder's and this one


@pytest.mark.req("CLI-12", "CLI-02")
def test_policy_apply_refuses_a_policy_without_a_category_in_use(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("[retention.categories.contract]")
    end = text.index("[retention.categories.marketing]")
    lacking = tmp_path / "lacking.toml"
    lacking.write_text(
        text[:start] + text[end:].replace(', "contract"', "").replace('["contract"]', "[]"),
        encoding="utf-8",
    )
    assert "contract" not in Policy.load(lacking).categories
    before = audit_actions(bank)
    result = run(capsys, "policy", "apply", lacking, *store_args(bank, key_file))
    assert result.status == 2
    assert "missing from the policy" in one_error_line(result)
    assert audit_actions(bank) == before


@pytest.mark.req("CLI-12", "CLI-02", "CLI-03")
def test_policy_apply_of_a_refused_file_exits_2_with_its_problems(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    broken = _policy_variant(tmp_path, 'max_age = "2y"', "max_age = 30")
    result = run(capsys, "policy", "apply", broken, *store_args(bank, key_file))
    assert result.status == 2
    lines = result.err.splitlines()
    assert lines[0].startswith(f"{broken}:") and "retention.default.max_age" in lines[0]
    assert lines[-1] == f"entrenous: {broken}: policy refused (1 problem)"
    assert "Traceback" not in result.err


# --- sweep -----------------------------------------------------------------------------------


@pytest.mark.req("CLI-13", "CLI-05")
def test_sweep_dry_run_reports_and_changes_nothing(
    bank: Bank, key_file: Path, capsys: Capsys
) -> None:
    before = audit_actions(bank)
    result = run(capsys, "sweep", *store_args(bank, key_file), "--dry-run")
    assert result.status == 0, result.err
    assert result.out.startswith("Dry run: 8 expired messages in 2 conversations would be deleted")
    assert "Next sweep due: now" in result.out
    assert due(bank) == 8
    assert audit_actions(bank) == before


@pytest.mark.req("CLI-13", "CLI-04")
def test_sweep_deletes_and_reports_per_conversation_in_json(
    bank: Bank, key_file: Path, capsys: Capsys
) -> None:
    result = run(capsys, "sweep", *store_args(bank, key_file), "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["deleted"] == 8 and report["dry_run"] is False
    assert report["by_conversation"] == {
        bank.subject_conversations[0]: 4,
        bank.other_conversation: 4,
    }
    assert report["next_sweep_at"].endswith("Z")  # the recent messages expire in two years
    assert due(bank) == 0
    assert audit_actions(bank)[-1] == "sweep"
    again = run(capsys, "sweep", *store_args(bank, key_file))
    assert again.out.startswith("Deleted 0 expired messages from 0 conversations.")
    assert "Next sweep due: 20" in again.out


@pytest.mark.req("CLI-13", "CLI-14")
def test_sweep_skips_held_conversations_and_says_so(
    bank: Bank, key_file: Path, capsys: Capsys
) -> None:
    placed = run(
        capsys, "hold", "place", *store_args(bank, key_file), "--subject", SUBJECT, "--reason", "x"
    )
    assert placed.status == 0
    result = run(capsys, "sweep", *store_args(bank, key_file))
    assert result.out.startswith("Deleted 4 expired messages from 1 conversation.")
    assert "Kept under a legal hold: 2 conversations" in result.out


# --- no side effects, no store creation ------------------------------------------------------


READ_ONLY_COMMANDS = [
    ["hold", "list"],
    ["consent", "list", SUBJECT],
    ["audit", "verify"],
    ["audit", "export"],
    ["export", OTHER_SUBJECT],
    ["sweep", "--dry-run"],
]


@pytest.mark.req("CLI-05")
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_only_sweep_deletes_expired_messages(
    bank: Bank, key_file: Path, capsys: Capsys, command: list[str]
) -> None:
    result = run(capsys, *command, *store_args(bank, key_file))
    assert result.status == 0, result.err
    assert due(bank) == 8
    assert "sweep" not in audit_actions(bank)


@pytest.mark.req("CLI-06", "CLI-02")
@pytest.mark.parametrize(
    "command",
    [
        ["sweep"],
        ["hold", "list"],
        ["export", SUBJECT],
        ["audit", "verify"],
        ["policy", "apply", str(EXAMPLE)],
        ["erase", "--subject", SUBJECT, "--yes"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_missing_store_is_never_created(
    tmp_path: Path, capsys: Capsys, command: list[str]
) -> None:
    key = tmp_path / "k"
    key.write_text("00" * 32)
    missing = tmp_path / "missing.db"
    result = run(capsys, *command, "--store", missing, "--key-file", key)
    assert result.status == 3
    assert one_error_line(result) == (
        f"entrenous: {missing}: no such store (the command line opens existing stores only)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]


@pytest.mark.req("CLI-06")
def test_a_half_created_store_or_a_directory_is_refused(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    marker = bank.path.with_name(bank.path.name + ".creating")
    marker.touch()
    result = run(capsys, "hold", "list", *store_args(bank, key_file))
    assert result.status == 3 and "creation was interrupted" in one_error_line(result)
    assert bank.path.exists() and marker.exists()  # left for the library to deal with
    result = run(capsys, "hold", "list", "--store", tmp_path, "--key-file", key_file)
    assert result.status == 3 and "is a directory" in one_error_line(result)


# --- legal holds -----------------------------------------------------------------------------


@pytest.mark.req("CLI-14", "CLI-04")
def test_hold_place_list_release(bank: Bank, key_file: Path, capsys: Capsys) -> None:
    args = store_args(bank, key_file)
    conversation = bank.other_conversation
    placed = run(
        capsys,
        "--json",
        "hold",
        "place",
        *args,
        "--conversation",
        conversation,
        "--reason",
        "BaFin inquiry",
        "--reference",
        "BA-2026-3",
    )
    assert placed.status == 0, placed.err
    hold = json.loads(placed.out)
    assert hold["scope"] == "conversation" and hold["conversation"] == conversation
    assert hold["reason"] == "BaFin inquiry" and hold["reference"] == "BA-2026-3"
    assert hold["active"] is True and hold["released_at"] is None
    by_subject = run(capsys, "hold", "place", *args, "--subject", SUBJECT, "--reason", "complaint")
    assert by_subject.status == 0
    assert f"on subject '{SUBJECT}'" in by_subject.out

    listed = run(capsys, "hold", "list", *args)
    assert hold["id"] in listed.out and "BaFin inquiry" in listed.out and "BA-2026-3" in listed.out
    released = run(capsys, "hold", "release", *args, hold["id"])
    assert released.status == 0
    assert released.out == f"Released legal hold {hold['id']} on conversation {conversation}.\n"
    active = json.loads(run(capsys, "hold", "list", *args, "--json").out)["holds"]
    assert [h["scope"] for h in active] == ["subject"]
    everything = json.loads(run(capsys, "hold", "list", *args, "--all", "--json").out)["holds"]
    assert everything[0]["id"] == hold["id"] and everything[0]["released_at"] is not None
    assert audit_actions(bank)[-3:] == ["hold.placed", "hold.placed", "hold.released"]


@pytest.mark.req("CLI-14", "CLI-02")
def test_hold_errors_are_usage_errors(bank: Bank, key_file: Path, capsys: Capsys) -> None:
    args = store_args(bank, key_file)
    unknown = run(capsys, "hold", "release", *args, "ab" * 16)
    assert unknown.status == 2
    assert one_error_line(unknown) == "entrenous: no active hold with this id"
    missing = run(capsys, "hold", "place", *args, "--conversation", "cd" * 16, "--reason", "x")
    assert missing.status == 2
    assert one_error_line(missing) == "entrenous: no such conversation in this store"
    blank = run(capsys, "hold", "place", *args, "--subject", SUBJECT, "--reason", " ")
    assert blank.status == 2 and "non-empty reason" in one_error_line(blank)
    both = run(capsys, "hold", "place", *args, "--subject", "a", "--conversation", "cd" * 16)
    assert both.status == 2 and "not allowed with argument" in both.err
    bad_id = run(capsys, "hold", "place", *args, "--conversation", "xyz", "--reason", "x")
    assert bad_id.status == 2 and "32 lowercase hexadecimal digits" in bad_id.err
    assert "hold.placed" not in audit_actions(bank)


# --- erasure ---------------------------------------------------------------------------------


@pytest.mark.req("CLI-07", "CLI-02")
def test_erase_without_yes_refuses_when_stdin_is_not_a_terminal(
    bank: Bank, key_file: Path, capsys: Capsys, no_tty: None
) -> None:
    result = run(capsys, "erase", *store_args(bank, key_file), "--subject", SUBJECT)
    assert result.status == 2
    assert one_error_line(result) == (
        "entrenous: erase: refused without confirmation: stdin is not a terminal to ask on "
        "(add --yes to erase without asking)"
    )
    assert result.out == ""
    assert "erasure" not in audit_actions(bank)


@pytest.mark.req("CLI-07")
@pytest.mark.parametrize(("answer", "erased"), [("yes\n", True), ("n\n", False), ("", False)])
def test_erase_asks_on_a_terminal(
    bank: Bank,
    key_file: Path,
    tmp_path: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    erased: bool,
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTTY(answer))
    receipt = tmp_path / "receipt.json"
    result = run(
        capsys, "erase", *store_args(bank, key_file), "--subject", SUBJECT, "--receipt", receipt
    )
    assert f"Erase data subject '{SUBJECT}' (2 conversations) from {bank.path}?" in result.err
    assert ("erasure" in audit_actions(bank)) is erased
    if erased:
        assert result.status == 0, result.err
        assert receipt.exists()
    else:
        assert result.status == 2
        # (A terminal echoes the answer and its newline; this fake stdin does not.)
        assert result.err.endswith("entrenous: erase: not confirmed; nothing was erased\n")
        assert not receipt.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.req("CLI-07", "CLI-08")
def test_erase_writes_the_signed_receipt_to_a_file(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    receipt_path = tmp_path / "receipt.json"
    result = run(
        capsys,
        "erase",
        *store_args(bank, key_file),
        "--subject",
        SUBJECT,
        "--yes",
        "--receipt",
        receipt_path,
    )
    assert result.status == 0, result.err
    receipt = ErasureReceipt.from_json(receipt_path.read_text(encoding="utf-8"))
    assert stat.S_IMODE(receipt_path.stat().st_mode) == 0o600
    with bank.open() as client:
        receipt.verify(client.identity)
        assert [r.receipt_id for r in client.erasure_receipts()] == [receipt.receipt_id]
        assert SUBJECT not in receipt.to_json()  # the target is a pseudonym
    # The first conversation is gone (6 messages), the contract one kept (minimum retention).
    assert receipt.erased_messages == 6 and receipt.kept_messages == 2
    assert [k["conversation"] for k in receipt.kept] == [bank.subject_conversations[1]]
    assert result.out.splitlines()[0] == "Erased 6 messages from 2 conversations; kept 2 messages."
    assert "minimum retention" in result.out
    assert f"Signed receipt {receipt.receipt_id} written to {receipt_path}." in result.out


@pytest.mark.req("CLI-07", "CLI-04")
def test_erase_prints_the_receipt_on_stdout_without_a_file(
    bank: Bank, key_file: Path, capsys: Capsys
) -> None:
    conversation = bank.other_conversation
    args = store_args(bank, key_file)
    result = run(capsys, "erase", *args, "--conversation", conversation, "--yes")
    assert result.status == 0, result.err
    receipt = ErasureReceipt.from_json(result.out)  # stdout is the receipt, nothing else
    assert receipt.scope == "conversation" and receipt.target == conversation
    assert "Erased 4 messages from 1 conversation" in result.err
    gone = run(capsys, "--json", "erase", *args, "--conversation", conversation, "--yes")
    assert gone.status == 2 and gone.out == ""
    assert one_error_line(gone) == "entrenous: no such conversation in this store"
    result = run(capsys, "erase", *args, "--subject", "nobody", "--yes", "--json")
    document = json.loads(result.out)
    assert document["erased_messages"] == 0 and document["receipt_file"] is None
    assert ErasureReceipt.from_json(json.dumps(document["receipt"])).scope == "subject"


@pytest.mark.req("CLI-07", "CLI-02")
def test_an_unwritable_receipt_path_fails_before_anything_is_erased(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    target = tmp_path / "no-such-folder" / "receipt.json"
    args = store_args(bank, key_file)
    result = run(capsys, "erase", *args, "--subject", SUBJECT, "--yes", "--receipt", target)
    assert result.status == 4
    assert "No such file or directory" in one_error_line(result)
    assert "erasure" not in audit_actions(bank)


# --- export ----------------------------------------------------------------------------------


@pytest.mark.req("CLI-08", "EXP-01")
def test_export_to_a_private_file_validates_against_the_schema(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    output = tmp_path / "export.json"
    result = run(capsys, "export", *store_args(bank, key_file), SUBJECT, "--output", output)
    assert result.status == 0, result.err
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    exported = json.loads(output.read_text(encoding="utf-8"))
    jsonschema.validate(exported, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert exported["subject"]["id"] == SUBJECT
    assert {c["id"] for c in exported["conversations"]} == set(bank.subject_conversations)
    assert result.out.splitlines() == [
        f"Exported data subject '{SUBJECT}' to {output} (readable by you only):",
        result.out.splitlines()[1],
    ]
    assert "2 conversations, 8 messages, 1 consent record, 0 legal holds," in result.out
    assert audit_actions(bank)[-1] == "export"
    # An existing file is replaced, and stays private.
    output.chmod(0o644)
    again = run(capsys, "export", *store_args(bank, key_file), SUBJECT, "--output", output)
    assert again.status == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def _old(path: Path) -> Path:
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


@pytest.mark.req("CLI-08")
def test_an_export_removes_what_a_killed_export_left_and_nothing_else(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    output = tmp_path / "export.json"
    # A writer killed before its rename leaves its temporary file, maybe with the export in it.
    killed = tmp_path / ".export.json.k1ll3d_x.tmp"
    killed.write_text('{"half an export": ', encoding="utf-8")
    killed.chmod(0o600)
    _old(killed)
    # A live writer's temporary file is locked; a fresh one may not be locked yet; others are
    # not this target's.
    live = tmp_path / ".export.json.l1v3wr1t.tmp"
    live.write_bytes(b"")
    _old(live)
    fresh = tmp_path / ".export.json.fr3sh_wr.tmp"
    fresh.write_bytes(b"")
    other = tmp_path / ".receipt.json.0th3r_wr.tmp"
    other.write_bytes(b"")
    _old(other)
    with live.open("rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        result = run(capsys, "export", *store_args(bank, key_file), SUBJECT, "--output", output)
    assert result.status == 0, result.err
    assert not killed.exists()
    assert live.exists() and fresh.exists() and other.exists()
    assert json.loads(output.read_text(encoding="utf-8"))["subject"]["id"] == SUBJECT
    # Once the live writer is gone and the fresh one is old, they are leftovers too.
    _old(fresh)
    assert sorted(cli_output.remove_leftovers(output)) == sorted([live, fresh])
    assert other.exists()


@pytest.mark.req("CLI-08")
def test_only_this_targets_own_temporary_names_are_leftovers(tmp_path: Path) -> None:
    """Regression: every old, unlocked ``.<target>.*.tmp`` was taken for a leftover, so writing
    ``a`` removed another target's temporary file (``.a.b.<random>.tmp`` of ``a.b``) and files
    that the command line never made (``.a.backup.tmp``). Only the names that the writer makes
    (the prefix, eight characters of ``tempfile``'s alphabet, the suffix) are leftovers."""
    target = tmp_path / "a"
    names = (".a.k1ll3d_x.tmp", ".a.b.k1ll3d_x.tmp", ".a.backup.tmp", ".a.my notes.tmp")
    for name in names:
        (tmp_path / name).write_bytes(b"")
    ours, *others = [_old(tmp_path / name) for name in names]
    assert cli_output.remove_leftovers(target) == [ours]
    assert all(path.exists() for path in others)


@pytest.mark.req("CLI-08")
def test_a_writer_holds_its_temporary_file_until_it_is_in_place(tmp_path: Path) -> None:
    target = tmp_path / "receipt.json"
    with cli_output.OutputFile(target) as out:
        (temporary,) = tmp_path.glob(".receipt.json.*.tmp")
        _old(temporary)
        assert cli_output.remove_leftovers(target) == []  # locked by this writer
        out.commit("{}\n")
    assert target.read_text(encoding="utf-8") == "{}\n"
    assert list(tmp_path.glob(".receipt.json.*.tmp")) == []


@pytest.mark.req("EXP-01")
def test_an_export_after_a_sweep_validates(bank: Bank, key_file: Path, capsys: Capsys) -> None:
    # A sweep's audit event lists conversation ids; the export used to crash on it.
    assert run(capsys, "sweep", *store_args(bank, key_file)).status == 0
    result = run(capsys, "export", *store_args(bank, key_file), SUBJECT)
    assert result.status == 0, result.err
    exported = json.loads(result.out)
    jsonschema.validate(exported, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert "sweep" in {e["action"] for e in exported["audit_events"]}
    assert sum(len(c["messages"]) for c in exported["conversations"]) == 4


@pytest.mark.req("CLI-08", "CLI-04")
def test_export_to_stdout_and_its_json_summary(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    result = run(capsys, "export", *store_args(bank, key_file), OTHER_SUBJECT)
    exported = json.loads(result.out)
    jsonschema.validate(exported, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert [c["id"] for c in exported["conversations"]] == [bank.other_conversation]
    output = tmp_path / "other.json"
    summary = run(
        capsys, "--json", "export", *store_args(bank, key_file), OTHER_SUBJECT, "--output", output
    )
    assert json.loads(summary.out) == {
        "output": str(output),
        "subject": OTHER_SUBJECT,
        "conversations": 1,
        "messages": 4,
        "consent_records": 0,
        "holds": 0,
        "erasure_receipts": 0,
        "audit_events": json.loads(summary.out)["audit_events"],
    }


# --- consent ---------------------------------------------------------------------------------


@pytest.mark.req("CLI-15", "CLI-04")
def test_consent_list_shows_the_records_with_their_state_now(
    bank: Bank, key_file: Path, capsys: Capsys
) -> None:
    result = run(capsys, "consent", "list", *store_args(bank, key_file), SUBJECT)
    assert result.status == 0, result.err
    [line] = [line for line in result.out.splitlines() if "marketing" in line]
    assert "  given  (notice 2025-03, recorded by controller), expires 20" in line
    listed = run(capsys, "consent", "list", *store_args(bank, key_file), SUBJECT, "--json")
    as_json = json.loads(listed.out)
    with bank.open() as client:
        [record] = client.consent_records(SUBJECT)
    assert as_json["subject"] == SUBJECT
    [iso] = as_json["records"]
    assert iso == record.to_iso27560(now_ms=parse_iso(as_json["at"]))
    assert iso["events"][0]["event_state"] == "given"
    none = run(capsys, "consent", "list", *store_args(bank, key_file), OTHER_SUBJECT)
    assert none.out == f"No consent records about '{OTHER_SUBJECT}' in {bank.path}.\n"


@pytest.mark.req("CLI-15")
def test_a_lapsed_consent_is_listed_as_expired(bank: Bank, key_file: Path, capsys: Capsys) -> None:
    three_days_ago = time.time() - 3 * 86_400
    with Client.open(bank.path, key=bank.key, clock=lambda: three_days_ago, sweep=False) as client:
        client.record_consent(
            subject=OTHER_SUBJECT, purpose="marketing", valid_for=timedelta(days=1)
        )
    result = run(capsys, "consent", "list", *store_args(bank, key_file), OTHER_SUBJECT)
    assert "  marketing  expired  (notice 2025-03, recorded by controller)" in result.out
    listed = run(capsys, "--json", "consent", "list", *store_args(bank, key_file), OTHER_SUBJECT)
    [record] = json.loads(listed.out)["records"]
    assert record["events"][0]["event_state"] == "expired"


def parse_iso(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# --- record of processing --------------------------------------------------------------------


@pytest.mark.req("ROPA-01", "CLI-16", "CLI-08")
def test_ropa_in_both_formats(tmp_path: Path, capsys: Capsys) -> None:
    policy = Policy.load(EXAMPLE)
    record = ropa.build(policy)
    prefix = tmp_path / "ropa"
    result = run(capsys, "ropa", EXAMPLE, "--output", prefix)
    assert result.status == 0, result.err
    markdown = (tmp_path / "ropa.md").read_text(encoding="utf-8")
    assert stat.S_IMODE((tmp_path / "ropa.md").stat().st_mode) == 0o600
    assert markdown == ropa.to_markdown(record)
    assert json.loads((tmp_path / "ropa.json").read_text(encoding="utf-8")) == record
    assert markdown.startswith("# Record of processing activities (GDPR Art. 30(1))")
    for name in policy.purposes:
        assert f"## Purpose: {name}" in markdown
    assert f"Policy fingerprint: {policy.fingerprint}" in result.out

    assert run(capsys, "ropa", EXAMPLE).out == ropa.to_markdown(record)
    assert json.loads(run(capsys, "ropa", EXAMPLE, "--format", "json").out) == record
    assert json.loads(run(capsys, "--json", "ropa", EXAMPLE).out) == record
    only_json = run(capsys, "ropa", EXAMPLE, "--format", "json", "--output", tmp_path / "j")
    assert only_json.status == 0 and (tmp_path / "j.json").exists()
    assert not (tmp_path / "j.md").exists()
    written = json.loads(run(capsys, "ropa", EXAMPLE, "--output", prefix, "--json").out)
    assert written["written"] == [f"{prefix}.md", f"{prefix}.json"]


@pytest.mark.req("CLI-16", "CLI-02")
def test_ropa_refusals(tmp_path: Path, capsys: Capsys) -> None:
    both = run(capsys, "ropa", EXAMPLE, "--format", "both")
    assert both.status == 2 and "give --output PREFIX" in one_error_line(both)
    markdown_as_json = run(capsys, "--json", "ropa", EXAMPLE, "--format", "markdown")
    assert markdown_as_json.status == 2 and markdown_as_json.out == ""
    missing = run(capsys, "ropa", tmp_path / "none.toml")
    assert missing.status == 2 and "no such file" in missing.err


# --- --json, exit statuses, one-line errors --------------------------------------------------


@pytest.mark.req("CLI-04")
@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_json_is_accepted_before_or_after_the_subcommand(
    bank: Bank, key_file: Path, capsys: Capsys, before: bool
) -> None:
    commands = [
        ["version"],
        ["policy", "check", str(EXAMPLE)],
        ["hold", "list", *store_args(bank, key_file)],
        ["sweep", "--dry-run", *store_args(bank, key_file)],
        ["consent", "list", *store_args(bank, key_file), SUBJECT],
        ["audit", "verify", *store_args(bank, key_file)],
        ["ropa", str(EXAMPLE)],
    ]
    for command in commands:
        argv = ["--json", *command] if before else [*command, "--json"]
        result = run(capsys, *argv)
        assert result.status == 0, (command, result.err)
        json.loads(result.out)  # exactly one JSON document, nothing else on stdout
        assert result.err == ""


@pytest.mark.req("CLI-04")
def test_the_demo_refuses_json(tmp_path: Path, capsys: Capsys) -> None:
    result = run(capsys, "--json", "demo", "--dir", tmp_path)
    assert result.status == 2 and "no JSON output" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.req("CLI-02", "CLI-03")
def test_other_library_errors_exit_4_in_one_line(
    bank: Bank, key_file: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Client, **kwargs: object) -> object:
        raise StateError("something unexpected\nover two lines")

    monkeypatch.setattr(Client, "sweep", broken)
    result = run(capsys, "sweep", *store_args(bank, key_file))
    assert result.status == 4
    assert one_error_line(result) == "entrenous: StateError: something unexpected over two lines"


@pytest.mark.req("CLI-02", "CLI-03")
def test_an_unwritable_output_exits_4_in_one_line(
    bank: Bank, key_file: Path, tmp_path: Path, capsys: Capsys
) -> None:
    target = tmp_path / "missing" / "out.json"
    result = run(capsys, "audit", "export", *store_args(bank, key_file), "--output", target)
    assert result.status == 4
    assert "No such file or directory" in one_error_line(result)


@pytest.mark.req("CLI-02")
def test_usage_errors_exit_2(capsys: Capsys) -> None:
    assert run(capsys, "sweep").status == 2  # --store is required
    assert run(capsys, "erase", "--store", "x").status == 2  # a target is required
    assert run(capsys, "hold").status == 2
    # No abbreviations: "--key-f" is not taken for --key-file (the missing store would say 3).
    abbreviated = run(capsys, "sweep", "--store", "missing.db", "--key-f", "k")
    assert abbreviated.status == 2 and "unrecognized arguments: --key-f" in abbreviated.err


@pytest.mark.req("CLI-02")
def test_a_locked_store_exits_3(bank: Bank, key_file: Path, capsys: Capsys) -> None:
    with bank.open():
        result = run(capsys, "hold", "list", *store_args(bank, key_file))
    assert result.status == 3
    assert one_error_line(result) == (
        f"entrenous: {bank.path}: the store is open in another process or client"
    )


@pytest.mark.req("CLI-02")
def test_a_store_from_a_newer_version_exits_3(bank: Bank, key_file: Path, capsys: Capsys) -> None:
    with bank.open() as client:
        client._store._connection.execute("PRAGMA user_version = 999")
    result = run(capsys, "hold", "list", *store_args(bank, key_file))
    assert result.status == 3
    assert "newer than this library supports" in one_error_line(result)


@pytest.mark.req("CLI-02")
def test_a_damaged_store_exits_3(bank: Bank, key_file: Path, capsys: Capsys) -> None:
    bank.path.write_bytes(b"\x00" * 8192)
    result = run(capsys, "hold", "list", *store_args(bank, key_file))
    assert result.status == 3
    assert one_error_line(result).startswith(f"entrenous: {bank.path}: ")


# --- progress --------------------------------------------------------------------------------


@pytest.mark.req("CLI-11")
def test_the_library_reports_progress_per_batch_and_conversation(bank: Bank) -> None:
    with bank.open() as client:
        exported: list[int] = []
        client.export(SUBJECT, progress=exported.append)
        assert exported == [1, 2]
        dry: list[int] = []
        client.sweep(dry_run=True, progress=dry.append)
        assert dry == [8]
        batches: list[int] = []
        now = int(time.time() * 1000)
        report = retention.sweep(
            client._store, now=now, dry_run=False, batch=3, progress=batches.append
        )
        assert report.deleted == 8 and batches == [3, 6, 8]
        assert client.sweep(progress=batches.append).deleted == 0
        assert batches == [3, 6, 8]  # nothing deleted: no batch, no call


@pytest.mark.req("CLI-11")
@pytest.mark.parametrize("tty", [True, False])
def test_sweep_and_export_show_progress_on_a_terminal_only(
    bank: Bank, key_file: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    monkeypatch.setattr(cli_output, "stderr_is_tty", lambda: tty)
    swept = run(capsys, "sweep", *store_args(bank, key_file))
    exported = run(capsys, "export", *store_args(bank, key_file), SUBJECT)
    as_json = run(capsys, "--json", "export", *store_args(bank, key_file), SUBJECT)
    if tty:
        assert swept.err == "\rsweeping: 8 messages deleted\n"
        assert exported.err == (
            "\rexporting: 1 conversation read\rexporting: 2 conversations read\n"
        )
    else:
        assert swept.err == exported.err == ""
    assert as_json.err == ""
    json.loads(exported.out)
