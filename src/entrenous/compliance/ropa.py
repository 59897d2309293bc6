"""The record of processing activities (GDPR Art. 30(1)), generated from the policy (ROPA).

One record per purpose of the policy, with the fields Art. 30(1) lists: (a) the controller, its
representative and its data protection officer; (b) the purpose; (c) the categories of data
subjects and of personal data; (d) the recipients; (e) transfers to third countries; (f) the time
limits for erasure (from the retention rules of the conversation categories the purpose uses);
(g) the technical and organisational security measures (the library's own, listed here, plus
the policy's ``[ropa] security_measures``). Written as JSON (:func:`build`) and Markdown
(:func:`to_markdown`).
"""

from __future__ import annotations

from typing import Any

from entrenous.compliance.policy import Policy, format_duration

#: What the library itself does, for Art. 30(1)(g) and Art. 32.
LIBRARY_MEASURES = (
    "End-to-end encryption of every message (X25519 + ML-KEM-768 key agreement, Double Ratchet, "
    "ChaCha20-Poly1305): relays and servers see ciphertext only",
    "Local store encrypted with SQLCipher 4 (AES-256, HMAC-SHA512 per page) under a key from "
    "the platform keystore or an Argon2id-stretched passphrase",
    "Message bodies sealed a second time under per-conversation data keys kept in a separate "
    "file; erasure destroys these keys (crypto-shredding), backups of the store included",
    "Retention enforced by sweeps from the policy; legal holds; signed erasure receipts",
    "Consent ledger and audit trail, append-only and hash-chained, verifiable offline",
    "No message content or personal data in logs, errors or the audit trail",
)


def _limit(policy: Policy, category: str | None, conversation: str | None = None) -> dict[str, Any]:
    rule = policy.rule_for(category, conversation)
    return {
        "category": rule.category or "(default)",
        "conversation": conversation,
        "erase_after": "never (kept forever)"
        if rule.max_age_ms is None
        else format_duration(rule.max_age_ms),
        "keep_at_least": None if not rule.min_age_ms else format_duration(rule.min_age_ms),
        "legal_ground": rule.legal_ground,
    }


def build(policy: Policy) -> dict[str, Any]:
    """The Art. 30(1) record of ``policy`` as JSON-compatible data."""
    controller = policy.controller
    activities = []
    for name, purpose in sorted(policy.purposes.items()):
        categories: list[str | None] = [*purpose.categories] or [None]
        activities.append(
            {
                "purpose": name,
                "description": purpose.description,
                "legal_basis": purpose.legal_basis,
                "requires_consent": purpose.requires_consent,
                "notice_version": purpose.notice_version,
                "data_subjects": list(purpose.data_subjects),
                "personal_data": list(purpose.data_categories),
                "recipients": list(purpose.recipients),
                "third_country_transfers": list(purpose.transfers),
                "time_limits": [_limit(policy, c) for c in categories],
            }
        )
    return {
        "record": "GDPR Art. 30(1) record of processing activities",
        "policy_fingerprint": policy.fingerprint,
        "controller": {
            "name": controller.name,
            "contact": controller.contact,
            "representative": controller.representative,
            "data_protection_officer": controller.dpo,
        },
        "activities": activities,
        "default_time_limit": _limit(policy, None),
        # Per-conversation overrides change how long some data is kept: listed one by one.
        "conversation_time_limits": [
            _limit(policy, None, conversation) for conversation in sorted(policy.conversations)
        ],
        "security_measures": [*LIBRARY_MEASURES, *policy.security_measures],
    }


def _cell(value: object) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return "; ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(record: dict[str, Any]) -> str:
    """The record as Markdown, for people."""
    c = record["controller"]
    lines = [
        "# Record of processing activities (GDPR Art. 30(1))",
        "",
        f"Generated from the policy with fingerprint `{record['policy_fingerprint']}`.",
        "",
        "## Controller",
        "",
        f"- Name: {_cell(c['name'])}",
        f"- Contact: {_cell(c['contact'])}",
        f"- Representative: {_cell(c['representative'])}",
        f"- Data protection officer: {_cell(c['data_protection_officer'])}",
        "",
    ]
    for activity in record["activities"]:
        lines += [
            f"## Purpose: {activity['purpose']}",
            "",
            f"{_cell(activity['description'])}",
            "",
            "| field | value |",
            "| --- | --- |",
            f"| legal basis (Art. 6(1)) | {_cell(activity['legal_basis'])} |",
            f"| needs consent | {'yes' if activity['requires_consent'] else 'no'} |",
            f"| notice version | {_cell(activity['notice_version'])} |",
            f"| categories of data subjects | {_cell(activity['data_subjects'])} |",
            f"| categories of personal data | {_cell(activity['personal_data'])} |",
            f"| recipients | {_cell(activity['recipients'])} |",
            f"| transfers to third countries | {_cell(activity['third_country_transfers'])} |",
            "",
            "Time limits for erasure:",
            "",
        ]
        for limit in activity["time_limits"]:
            lines.append(_limit_line(limit))
        lines.append("")
    lines += ["## Default time limit", "", _limit_line(record["default_time_limit"]), ""]
    if record["conversation_time_limits"]:
        lines += ["## Time limits of single conversations (overrides)", ""]
        lines += [_limit_line(limit) for limit in record["conversation_time_limits"]]
        lines.append("")
    lines += ["## Technical and organisational security measures", ""]
    lines += [f"- {_cell(m)}" for m in record["security_measures"]]
    return "\n".join(lines) + "\n"


def _limit_line(limit: dict[str, Any]) -> str:
    name = limit["category"]
    if limit.get("conversation"):
        name = f"conversation {limit['conversation']} ({name})"
    text = f"- {name}: erase after {limit['erase_after']}"
    if limit["keep_at_least"]:
        text += f", keep at least {limit['keep_at_least']}"
        if limit["legal_ground"]:
            text += f" ({limit['legal_ground']})"
    return text
