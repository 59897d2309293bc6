"""The compliance subcommands of the command line: policy, sweep, hold, erase, export, consent,
audit and ropa (the list, the options and the exit statuses are in :mod:`entrenous.cli`).

Each ``cmd_*`` takes the parsed arguments and returns the exit status, or raises: a
:class:`~entrenous.cli_output.CliError` or a library error, which :func:`entrenous.cli.main`
turns into one line on stderr and its status. Results go to stdout: text for people, or one
JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from entrenous.cli_output import (
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    OutputFile,
    confirm,
    error,
    human_time,
    iso_ms,
    iso_time,
    json_text,
    note,
    plural,
    print_json,
    progress,
    stdin_is_tty,
    write_private,
)
from entrenous.cli_store import add_key_options, add_store_options, key_option_given, open_store
from entrenous.client import Client
from entrenous.compliance import audit, ropa
from entrenous.compliance.holds import Hold
from entrenous.compliance.policy import Policy
from entrenous.errors import AuditChainBroken, ConsentLedgerBroken

Handler = Callable[[argparse.Namespace], int]

#: The format name of an exported audit trail (``entrenous audit export``).
TRAIL_FORMAT = "entrenous-audit-trail"
TRAIL_VERSION = 1
#: The longest subject id (as the client's labels).
_MAX_SUBJECT = 256
_CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")
_CHECKPOINT = re.compile(r"([1-9][0-9]{0,18}):([0-9a-f]{64})")


# --- argument types ------------------------------------------------------------------------------


def _subject(value: str) -> str:
    if not value or len(value) > _MAX_SUBJECT:
        raise argparse.ArgumentTypeError(
            f"a subject id is 1 to {_MAX_SUBJECT} characters (the app's id of the data subject)"
        )
    return value


def _conversation_id(value: str) -> str:
    if not _CONVERSATION_ID.fullmatch(value):
        raise argparse.ArgumentTypeError("a conversation id is 32 lowercase hexadecimal digits")
    return value


def _checkpoint(value: str) -> tuple[int, bytes]:
    found = _CHECKPOINT.fullmatch(value)
    if found is None:
        raise argparse.ArgumentTypeError("a checkpoint is SEQ:HASH (HASH: 64 hex digits)")
    return int(found.group(1)), bytes.fromhex(found.group(2))


# --- the parser ----------------------------------------------------------------------------------


def add_commands(
    commands: Any,  # argparse's _SubParsersAction (private type)
    common: Sequence[argparse.ArgumentParser],
    policy_commands: Any,
) -> None:
    """Add the compliance subcommands (``common``: the parents every command takes)."""

    def command(into: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = into.add_parser(
            name, help=help_text, description=help_text, parents=common, allow_abbrev=False
        )
        parser.set_defaults(handler=handler)
        return parser

    apply = command(policy_commands, "apply", cmd_policy_apply, "apply a policy file to a store")
    apply.add_argument("file", metavar="FILE", help="the policy file (TOML)")
    add_store_options(apply)

    sweep = command(commands, "sweep", cmd_sweep, "delete the messages whose retention has ended")
    add_store_options(sweep)
    sweep.add_argument(
        "--dry-run", action="store_true", help="report what would be deleted, change nothing"
    )

    hold = commands.add_parser(
        "hold", help="legal holds: place, release, list", parents=common, allow_abbrev=False
    )
    holds = hold.add_subparsers(dest="hold_command", metavar="COMMAND", required=True)
    place = command(holds, "place", cmd_hold_place, "place a legal hold")
    add_store_options(place)
    target = place.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--conversation", metavar="ID", type=_conversation_id, help="hold one conversation"
    )
    target.add_argument(
        "--subject",
        metavar="SUBJECT",
        type=_subject,
        help="hold every conversation of a data subject (subject id or peer label), later ones too",
    )
    place.add_argument("--reason", required=True, help="why (kept in the store, never audited)")
    place.add_argument("--reference", help="a case or file reference")
    release = command(holds, "release", cmd_hold_release, "release a legal hold")
    add_store_options(release)
    release.add_argument("hold_id", metavar="HOLD_ID")
    listing = command(holds, "list", cmd_hold_list, "list the legal holds")
    add_store_options(listing)
    listing.add_argument("--all", action="store_true", help="released holds too")

    erase = command(
        commands, "erase", cmd_erase, "erase a data subject or a conversation (GDPR Art. 17)"
    )
    add_store_options(erase)
    target = erase.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--subject",
        metavar="SUBJECT",
        type=_subject,
        help="erase every conversation of a data subject (subject id or peer label)",
    )
    target.add_argument(
        "--conversation", metavar="ID", type=_conversation_id, help="erase one conversation"
    )
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.add_argument(
        "--receipt", metavar="FILE", help="write the signed receipt here (default: stdout)"
    )

    export = command(
        commands, "export", cmd_export, "export what the store holds about a data subject"
    )
    add_store_options(export)
    export.add_argument("subject", metavar="SUBJECT", type=_subject)
    export.add_argument("--output", metavar="FILE", help="write here (mode 0600), not to stdout")

    consent = commands.add_parser(
        "consent", help="consent records", parents=common, allow_abbrev=False
    )
    consents = consent.add_subparsers(dest="consent_command", metavar="COMMAND", required=True)
    listed = command(consents, "list", cmd_consent_list, "list a data subject's consent records")
    add_store_options(listed)
    listed.add_argument("subject", metavar="SUBJECT", type=_subject)

    trail = commands.add_parser(
        "audit", help="the audit trail: verify, export", parents=common, allow_abbrev=False
    )
    trails = trail.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    verify = command(
        trails,
        "verify",
        cmd_audit_verify,
        "verify a store's audit trail and consent ledger, or an exported trail offline",
    )
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", metavar="STORE", help="the store to verify")
    source.add_argument(
        "--trail", metavar="FILE", help="an exported trail, verified offline (no store, no key)"
    )
    verify.add_argument(
        "--checkpoint",
        metavar="SEQ:HASH",
        type=_checkpoint,
        help="with --trail: a head recorded earlier, which the trail must still contain",
    )
    add_key_options(verify)
    exported = command(trails, "export", cmd_audit_export, "export the audit trail as JSON")
    add_store_options(exported)
    exported.add_argument("--output", metavar="FILE", help="write here (mode 0600), not to stdout")

    record = command(
        commands, "ropa", cmd_ropa, "write the GDPR Art. 30 record of processing from a policy"
    )
    record.add_argument("policy", metavar="POLICY", help="the policy file (TOML)")
    record.add_argument("--format", choices=("markdown", "json", "both"), default=None)
    record.add_argument(
        "--output",
        metavar="PREFIX",
        help="write PREFIX.md and/or PREFIX.json (default: print one format to stdout)",
    )


# --- policy --------------------------------------------------------------------------------------


def cmd_policy_apply(args: argparse.Namespace) -> int:
    """``policy apply FILE --store STORE``."""
    policy = Policy.load(args.file)
    with open_store(args) as client:
        previous = client.policy
        applied = previous is None or previous.fingerprint != policy.fingerprint
        recomputed = 0
        if applied:
            recomputed = len(client.conversations())
            client.apply_policy(policy)
        next_sweep = client.next_sweep_at()
    if args.json:
        print_json(
            {
                "store": args.store,
                "source": policy.source,
                "applied": applied,
                "fingerprint": policy.fingerprint,
                "previous": None if previous is None else previous.fingerprint,
                "conversations_recomputed": recomputed,
                "next_sweep_at": iso_time(next_sweep),
            }
        )
        return EXIT_OK
    if applied:
        print(f"Applied policy {policy.source} to {args.store}.")
        print(f"Fingerprint: {policy.fingerprint}")
        print(f"Conversations recomputed: {recomputed}")
    else:
        print(f"Policy {policy.source} is already applied to {args.store}: nothing recomputed.")
        print(f"Fingerprint: {policy.fingerprint}")
    print(f"Next sweep due: {human_time(next_sweep, never='never (no message expires)')}")
    return EXIT_OK


# --- sweep ---------------------------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    """``sweep --store STORE [--dry-run]``."""
    with open_store(args) as client:
        done = "due" if args.dry_run else "deleted"
        shown = progress("sweeping", "message", done, as_json=args.json)
        try:
            report = client.sweep(dry_run=args.dry_run, progress=shown)
        finally:
            shown.done()
        next_sweep = client.next_sweep_at()
    if args.json:
        print_json({"store": args.store, **report.to_dict(), "next_sweep_at": iso_time(next_sweep)})
        return EXIT_OK
    messages = plural(report.deleted, "expired message")
    conversations = plural(len(report.by_conversation), "conversation")
    if args.dry_run:
        print(f"Dry run: {messages} in {conversations} would be deleted; nothing was changed.")
    else:
        print(f"Deleted {messages} from {conversations}.")
    if report.held_conversations:
        held = plural(report.held_conversations, "conversation")
        print(f"Kept under a legal hold: {held} (not swept whatever their expiry).")
    due = "now" if args.dry_run and report.deleted else human_time(next_sweep, never="")
    print(f"Next sweep due: {due or 'never (no message expires)'}")
    return EXIT_OK


# --- legal holds ---------------------------------------------------------------------------------


def _hold_dict(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "scope": "conversation" if hold.conversation_id is not None else "subject",
        "conversation": hold.conversation_id,
        "subject": hold.subject,
        "reason": hold.reason,
        "reference": hold.reference,
        "placed_at": iso_time(hold.placed_at),
        "released_at": iso_time(hold.released_at),
        "active": hold.active,
    }


def _hold_target(hold: Hold) -> str:
    if hold.conversation_id is not None:
        return f"conversation {hold.conversation_id}"
    return f"subject {hold.subject!r}"


def cmd_hold_place(args: argparse.Namespace) -> int:
    """``hold place --store S (--conversation ID | --subject SUBJ) --reason R``."""
    with open_store(args) as client:
        hold = client.place_hold(
            conversation=args.conversation,
            subject=args.subject,
            reason=args.reason,
            reference=args.reference,
        )
    if args.json:
        print_json(_hold_dict(hold))
    else:
        print(f"Placed legal hold {hold.id} on {_hold_target(hold)}.")
        print("Nothing it covers is swept or erased until it is released.")
    return EXIT_OK


def cmd_hold_release(args: argparse.Namespace) -> int:
    """``hold release --store S HOLD_ID``."""
    with open_store(args) as client:
        hold = client.release_hold(args.hold_id)
    if args.json:
        print_json(_hold_dict(hold))
    else:
        print(f"Released legal hold {hold.id} on {_hold_target(hold)}.")
    return EXIT_OK


def cmd_hold_list(args: argparse.Namespace) -> int:
    """``hold list --store S [--all]``."""
    with open_store(args) as client:
        found = client.holds(active_only=not args.all)
    if args.json:
        print_json({"store": args.store, "holds": [_hold_dict(h) for h in found]})
        return EXIT_OK
    if not found:
        print(f"No {'' if args.all else 'active '}legal holds in {args.store}.")
        return EXIT_OK
    for hold in found:
        state = "active" if hold.active else f"released {human_time(hold.released_at)}"
        print(f"{hold.id}  {state}  {_hold_target(hold)}")
        print(f"    placed {human_time(hold.placed_at)}; reason: {hold.reason}")
        if hold.reference:
            print(f"    reference: {hold.reference}")
    return EXIT_OK


# --- erasure -------------------------------------------------------------------------------------


def _erasure_question(client: Client, args: argparse.Namespace) -> str:
    if args.conversation is not None:
        client.conversation(args.conversation)  # UsageError if there is none
        what = f"conversation {args.conversation}"
    else:
        count = sum(1 for c in client.conversations() if args.subject in (c.subject, c.peer))
        what = f"data subject {args.subject!r} ({plural(count, 'conversation')})"
    return (
        f"Erase {what} from {args.store}? Messages under a legal hold or a minimum retention "
        "are kept. This cannot be undone. Type yes to erase:"
    )


def cmd_erase(args: argparse.Namespace) -> int:
    """``erase --store S (--subject SUBJ | --conversation ID) [--yes] [--receipt FILE]``."""
    if not args.yes and not stdin_is_tty():
        raise CliError(
            "erase: refused without confirmation: stdin is not a terminal to ask on "
            "(add --yes to erase without asking)"
        )
    with open_store(args) as client:
        if not args.yes and not confirm(_erasure_question(client, args)):
            raise CliError("erase: not confirmed; nothing was erased")
        # Created before erasing: an unwritable receipt path fails before anything is erased.
        out = OutputFile(args.receipt) if args.receipt is not None else None
        try:
            receipt = client.erase(subject=args.subject, conversation=args.conversation)
            text = json_text(receipt.to_dict())
            if out is not None:
                try:
                    out.commit(text)
                except OSError as exc:
                    raise CliError(
                        f"erased, but the receipt could not be written to {args.receipt} "
                        f"({exc.strerror}); it is kept in the store as receipt "
                        f"{receipt.receipt_id}",
                        EXIT_ERROR,
                    ) from None
        finally:
            if out is not None:
                out.discard()
    summary = {
        "receipt_id": receipt.receipt_id,
        "erased_messages": receipt.erased_messages,
        "kept_messages": receipt.kept_messages,
        "receipt_file": args.receipt,
    }
    if args.json:
        print_json({**summary, "receipt": receipt.to_dict()})
        return EXIT_OK
    lines = [
        f"Erased {plural(receipt.erased_messages, 'message')} "
        f"from {plural(len(receipt.erased), 'conversation')}; "
        f"kept {plural(receipt.kept_messages, 'message')}.",
    ]
    for kept in receipt.kept:
        lines.append(
            f"  kept {plural(int(kept.get('messages', 0)), 'message')} of conversation "
            f"{kept.get('conversation')}: {kept.get('ground')}"
        )
    if args.receipt is not None:
        lines.append(f"Signed receipt {receipt.receipt_id} written to {args.receipt}.")
        for line in lines:
            print(line)
    else:
        for line in lines:
            note(line)  # stdout carries the receipt itself
        print(text, end="")
    return EXIT_OK


# --- export --------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """``export --store S SUBJECT [--output FILE]``."""
    out = OutputFile(args.output) if args.output is not None else None
    try:
        with open_store(args) as client:
            shown = progress("exporting", "conversation", "read", as_json=args.json)
            try:
                data = client.export(args.subject, progress=shown)
            finally:
                shown.done()
        if out is None:
            print_json(data)
            return EXIT_OK
        out.commit(json_text(data))
    finally:
        if out is not None:
            out.discard()
    counts = {
        "conversations": len(data["conversations"]),
        "messages": sum(len(c["messages"]) for c in data["conversations"]),
        "consent_records": len(data["consent_records"]),
        "holds": len(data["holds"]),
        "erasure_receipts": len(data["erasure_receipts"]),
        "audit_events": len(data["audit_events"]),
    }
    if args.json:
        print_json({"output": args.output, "subject": args.subject, **counts})
    else:
        print(f"Exported data subject {args.subject!r} to {args.output} (readable by you only):")
        print("  " + ", ".join(plural(n, _COUNTED[name]) for name, n in counts.items()))
    return EXIT_OK


#: What the counts of an export count, in the singular.
_COUNTED = {
    "conversations": "conversation",
    "messages": "message",
    "consent_records": "consent record",
    "holds": "legal hold",
    "erasure_receipts": "erasure receipt",
    "audit_events": "audit event",
}


# --- consent -------------------------------------------------------------------------------------


def cmd_consent_list(args: argparse.Namespace) -> int:
    """``consent list --store S SUBJECT``."""
    with open_store(args) as client:
        records = client.consent_records(args.subject)
    now = int(time.time() * 1000)
    if args.json:
        print_json(
            {
                "subject": args.subject,
                "at": iso_ms(now),
                "records": [r.to_iso27560(now_ms=now) for r in records],
            }
        )
        return EXIT_OK
    if not records:
        print(f"No consent records about {args.subject!r} in {args.store}.")
        return EXIT_OK
    print(f"Consent records about {args.subject!r} (oldest first; state as of now):")
    for record in records:
        state = record.state_at(now)
        line = (
            f"  {human_time(record.at)}  {record.purpose}  {state}  "
            f"(notice {record.notice_version}, {record.method})"
        )
        if record.state == "given":
            line += f", expires {human_time(record.expires_at)}"
        print(line)
    return EXIT_OK


# --- audit ---------------------------------------------------------------------------------------


def _broken(what: str, where: str, seq: int, reason: str, as_json: bool) -> int:
    if as_json:
        print_json(
            {"valid": False, "what": what, "source": where, "broken_at": seq, "reason": reason}
        )
    error(f"{where}: {what} broken at entry {seq}: {reason}")
    return EXIT_CHECK_FAILED


def _head_dict(head: tuple[int, bytes] | None) -> dict[str, Any] | None:
    return None if head is None else {"seq": head[0], "hash": head[1].hex()}


def _head_text(head: tuple[int, bytes] | None) -> str:
    return "none (empty trail)" if head is None else f"seq {head[0]}, hash {head[1].hex()}"


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """``audit verify --store S`` or ``audit verify --trail FILE [--checkpoint SEQ:HASH]``."""
    if args.trail is not None:
        if key_option_given(args):
            raise CliError("audit verify --trail works offline: it takes no store key")
        return _verify_trail(args)
    if args.checkpoint is not None:
        raise CliError("--checkpoint goes with --trail (an exported trail)")
    with open_store(args) as client:
        try:
            count = client.verify_audit()
        except AuditChainBroken as exc:
            return _broken("audit trail", args.store, exc.seq, exc.reason, args.json)
        head = audit.head(client._store)  # the stored head, which verify_audit just matched
        try:
            records = client.verify_consent_ledger()
        except ConsentLedgerBroken as exc:
            return _broken("consent ledger", args.store, exc.seq, exc.reason, args.json)
    if args.json:
        print_json(
            {
                "valid": True,
                "source": args.store,
                "events": count,
                "head": _head_dict(head),
                "consent_records": records,
            }
        )
    else:
        print(f"Audit trail of {args.store}: {plural(count, 'event')} verified.")
        print(f"Head: {_head_text(head)}")
        print(f"Consent ledger: {plural(records, 'record')} verified.")
    return EXIT_OK


def _load_trail(path: str) -> tuple[list[audit.AuditEvent], tuple[int, bytes] | None, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read the trail {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not an exported audit trail (not UTF-8 text)") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path}: not an exported audit trail (not JSON: {exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("events"), list)
        or "head" not in data
        or data.get("format", TRAIL_FORMAT) != TRAIL_FORMAT
        or data.get("version", TRAIL_VERSION) != TRAIL_VERSION
    ):
        raise CliError(f"{path}: not an exported audit trail (see entrenous audit export)")
    events = []
    for index, item in enumerate(data["events"]):
        try:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            events.append(audit.AuditEvent.from_dict(item))
        except ValueError as exc:
            raise CliError(f"{path}: event {index + 1} of the file is malformed: {exc}") from None
    raw_head = data["head"]
    head = None
    if raw_head is not None:
        try:
            seq, digest = raw_head["seq"], bytes.fromhex(raw_head["hash"])
            if type(seq) is not int or len(digest) != 32:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise CliError(f"{path}: the trail's head is malformed") from None
        head = (seq, digest)
    return events, head, data.get("identity")


def _verify_trail(args: argparse.Namespace) -> int:
    events, head, identity = _load_trail(args.trail)
    try:
        count = audit.verify_events(events, head)
    except AuditChainBroken as exc:
        return _broken("audit trail", args.trail, exc.seq, exc.reason, args.json)
    if args.checkpoint is not None:
        seq, digest = args.checkpoint
        if seq > count or events[seq - 1].hash != digest:
            reason = "the trail ends before it" if seq > count else "another entry is there"
            reason = f"it does not match the checkpoint ({reason})"
            return _broken("audit trail", args.trail, seq, reason, args.json)
    if args.json:
        print_json(
            {
                "valid": True,
                "source": args.trail,
                "events": count,
                "head": _head_dict(head),
                "identity": identity,
                "checkpoint": None
                if args.checkpoint is None
                else {"seq": args.checkpoint[0], "hash": args.checkpoint[1].hex()},
            }
        )
    else:
        print(f"Exported audit trail {args.trail}: {plural(count, 'event')} verified offline.")
        print(f"Head: {_head_text(head)}")
        if args.checkpoint is not None:
            print(f"Checkpoint seq {args.checkpoint[0]}: present and unchanged.")
        if isinstance(identity, str):
            print(f"Exported by identity: {identity}")
    return EXIT_OK


def cmd_audit_export(args: argparse.Namespace) -> int:
    """``audit export --store S [--output FILE]``."""
    out = OutputFile(args.output) if args.output is not None else None
    try:
        with open_store(args) as client:
            events = [e.to_dict() for e in client.audit_events()]
            head = audit.head(client._store)  # as stored: verification compares it to the events
            identity = client.identity.to_bytes().hex()
        trail = {
            "format": TRAIL_FORMAT,
            "version": TRAIL_VERSION,
            "exported_at": iso_ms(int(time.time() * 1000)),
            "events": events,
            "head": _head_dict(head),
            "identity": identity,
        }
        if out is None:
            print_json(trail)
            return EXIT_OK
        out.commit(json_text(trail))
    finally:
        if out is not None:
            out.discard()
    if args.json:
        print_json({"output": args.output, "events": len(events), "head": _head_dict(head)})
    else:
        print(f"Exported {plural(len(events), 'audit event')} of {args.store} to {args.output}.")
        print(f"Head: {_head_text(head)}")
    return EXIT_OK


# --- record of processing ----------------------------------------------------------------------


def cmd_ropa(args: argparse.Namespace) -> int:
    """``ropa POLICY [--format markdown|json|both] [--output PREFIX]``."""
    policy = Policy.load(args.policy)
    record = ropa.build(policy)
    chosen = args.format
    if args.output is None:
        chosen = chosen or ("json" if args.json else "markdown")
        if chosen == "both":
            raise CliError("ropa --format both writes two files: give --output PREFIX")
        if args.json and chosen == "markdown":
            raise CliError("--json prints JSON: use --format json, or --output PREFIX")
        if chosen == "json":
            print_json(record)
        else:
            print(ropa.to_markdown(record), end="")
        return EXIT_OK
    chosen = chosen or "both"
    written = []
    if chosen in ("markdown", "both"):
        written.append(f"{args.output}.md")
        write_private(written[-1], ropa.to_markdown(record))
    if chosen in ("json", "both"):
        written.append(f"{args.output}.json")
        write_private(written[-1], json_text(record))
    if args.json:
        print_json({"source": policy.source, "fingerprint": policy.fingerprint, "written": written})
    else:
        print(f"Wrote the GDPR Art. 30 record of {policy.source} to {' and '.join(written)}.")
        print(f"Policy fingerprint: {policy.fingerprint}")
    return EXIT_OK
