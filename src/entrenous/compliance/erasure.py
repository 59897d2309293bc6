"""Erasure (GDPR Art. 17) by crypto-shredding, with a signed, content-free receipt (ERA).

For each conversation of the request:

* under an active legal hold: everything is kept (Art. 17(3)(e)), and the receipt says which
  holds;
* otherwise the messages still inside their minimum retention (statutory retention, e.g.
  Art. 17(3)(b)) are kept and re-sealed under a fresh data key, all others are deleted, and
  the old data key is destroyed: the erased bodies can no longer be decrypted anywhere, in a
  backup of the store taken before the erasure included;
* if nothing is kept, the conversation itself (its ratchet state, the peer's identity, its
  labels) is deleted too and all its data keys are destroyed.

The deletions, the receipt and its audit event commit in one transaction; the data keys are
destroyed right after it commits (and, should the process die in between, when the store is next
opened), then the write-ahead log is truncated. An erasure is therefore either not started or
complete, never half done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from entrenous._primitives.rand import random_bytes
from entrenous.compliance import audit
from entrenous.compliance.consent import canonical_json
from entrenous.errors import AuthenticationError, ComplianceError
from entrenous.protocol.identity import Identity, PublicIdentity
from entrenous.store.base import ConversationRecord, HoldRecord, Store

LABEL_RECEIPT = b"entrenous/v1 erasure receipt"
RECEIPT_VERSION = 1

Scope = Literal["subject", "conversation"]


@dataclass(frozen=True, slots=True)
class Retained:
    """Why some messages of a conversation are kept: a ground and, if known, an end."""

    min_age_ms: int
    ground: str


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """What an erasure erased and kept, and on which legal ground; signed, content-free.

    ``erased`` and ``kept`` are lists of JSON-compatible mappings (conversation ids, message
    ids, counts, grounds, times in ms). :meth:`verify` checks the signature against the public
    identity of the client that erased.
    """

    receipt_id: str
    at: int
    scope: Scope
    target: str
    erased: list[dict[str, Any]]
    kept: list[dict[str, Any]]
    signer: str
    signature: str

    @property
    def erased_messages(self) -> int:
        """How many messages were erased."""
        return sum(int(item["messages"]) for item in self.erased)

    @property
    def kept_messages(self) -> int:
        """How many messages were kept (under a hold or a minimum retention)."""
        return sum(int(item.get("messages", 0)) for item in self.kept)

    def _signed_part(self) -> dict[str, Any]:
        return {
            "version": RECEIPT_VERSION,
            "receipt_id": self.receipt_id,
            "at": self.at,
            "scope": self.scope,
            "target": self.target,
            "erased": self.erased,
            "kept": self.kept,
            "signer": self.signer,
        }

    def to_dict(self) -> dict[str, Any]:
        """The receipt as JSON-compatible data."""
        return {**self._signed_part(), "signature": self.signature}

    def to_json(self) -> str:
        """The receipt as canonical JSON text."""
        return canonical_json(self.to_dict()).decode("utf-8")

    @classmethod
    def from_json(cls, text: str | bytes) -> ErasureReceipt:
        """A receipt from :meth:`to_json`; :class:`ComplianceError` if it is not one."""
        try:
            data = json.loads(text)
            if not isinstance(data, Mapping) or data.get("version") != RECEIPT_VERSION:
                raise ValueError("version")
            erased: list[object] = list(data["erased"])
            kept: list[object] = list(data["kept"])
            # Each item a mapping whose count is an int (the erased ones must have one).
            for item in erased:
                if not isinstance(item, dict) or type(item["messages"]) is not int:
                    raise ValueError("erased")
            for item in kept:
                if not isinstance(item, dict) or type(item.get("messages", 0)) is not int:
                    raise ValueError("kept")
            receipt = cls(
                receipt_id=str(data["receipt_id"]),
                at=int(data["at"]),
                scope=data["scope"],
                target=str(data["target"]),
                erased=[item for item in erased if isinstance(item, dict)],
                kept=[item for item in kept if isinstance(item, dict)],
                signer=str(data["signer"]),
                signature=str(data["signature"]),
            )
        except (ValueError, KeyError, TypeError):
            raise ComplianceError("not an erasure receipt of this version") from None
        if receipt.scope not in ("subject", "conversation"):
            raise ComplianceError("not an erasure receipt of this version")
        return receipt

    def verify(self, identity: PublicIdentity) -> None:
        """Check the signature; :class:`AuthenticationError` if it is not ``identity``'s."""
        if self.signer != identity.key_bytes.hex():
            raise AuthenticationError("the receipt was not signed by this identity")
        try:
            signature = bytes.fromhex(self.signature)
        except ValueError:
            raise AuthenticationError from None
        identity.verify_key.verify(signature, LABEL_RECEIPT + canonical_json(self._signed_part()))

    def __repr__(self) -> str:
        return (
            f"ErasureReceipt(id={self.receipt_id}, scope={self.scope}, "
            f"erased={self.erased_messages}, kept={self.kept_messages})"
        )


def erase(
    store: Store,
    identity: Identity,
    conversations: list[ConversationRecord],
    *,
    scope: Scope,
    target: str,
    now: int,
    retained: Callable[[ConversationRecord], Retained | None],
    other_kept: list[dict[str, Any]] | None = None,
    subject: str | None = None,
) -> ErasureReceipt:
    """Erase ``conversations`` (see the module); return the signed receipt.

    ``target`` is the conversation id or the subject's pseudonym (never the subject id);
    ``subject`` the subject id of a subject erasure (its released holds are redacted).
    ``retained`` gives a conversation's minimum retention, if any. The caller runs
    :meth:`Store.shred_pending` and :meth:`Store.truncate_journal` after this returns.
    """
    erased: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    with store.transaction():
        holds = store.holds(active_only=True)
        for record in conversations:
            conversation_id = record.uid.hex()
            covering = _covering(holds, record)
            if covering:
                kept.append(
                    {
                        "conversation": conversation_id,
                        "messages": len(store.messages_of(record.uid)),
                        "ground": "legal hold (GDPR Art. 17(3)(e))",
                        "holds": [h.uid.hex() for h in covering],
                        "until": None,
                    }
                )
                continue
            rule = retained(record) or Retained(0, "")
            cutoff = now - rule.min_age_ms
            stay: list[tuple[bytes, int]] = []
            if rule.min_age_ms > 0:
                stay = store.messages_of(record.uid, stored_from=cutoff)
            if not stay:
                # The ids for the receipt are read as the rows are deleted (one pass).
                gone = store.erase_conversation(record.uid)
            else:
                gone = store.messages_of(record.uid, stored_before=cutoff)
                store.prune_and_reseal(record.uid, keep_stored_from=cutoff)
                kept.append(
                    {
                        "conversation": conversation_id,
                        "messages": len(stay),
                        "ground": rule.ground,
                        "holds": [],
                        "until": max(t for _, t in stay) + rule.min_age_ms,
                    }
                )
            erased.append(
                {
                    "conversation": conversation_id,
                    "messages": len(gone),
                    "message_ids": [uid.hex() for uid, _ in gone],
                    "conversation_deleted": not stay,
                }
            )
        kept.extend(other_kept or [])
        _redact_released_holds(store, subject, erased, target)
        receipt = _sign(identity, scope, target, now, erased, kept)
        store.add_erasure(bytes.fromhex(receipt.receipt_id), now, receipt.to_json().encode())
        audit.append(
            store,
            "erasure",
            {
                "receipt": receipt.receipt_id,
                "scope": scope,
                "target": target,
                "conversations": [item["conversation"] for item in erased],
                "erased_messages": receipt.erased_messages,
                "kept_messages": receipt.kept_messages,
            },
            at=now,
        )
    return receipt


def _redact_released_holds(
    store: Store, subject: str | None, erased: list[dict[str, Any]], target: str
) -> None:
    """Released holds on the erased subject, or on a deleted conversation, keep no personal data.

    Their reason and reference are free text that may name the person; a subject hold's subject
    becomes ``erased:<pseudonym>``. Active holds kept the data and keep their records.
    """
    deleted = {bytes.fromhex(i["conversation"]) for i in erased if i["conversation_deleted"]}
    for hold in store.holds(active_only=False):
        if hold.released_at is None:
            continue
        if subject is not None and hold.subject == subject:
            store.redact_hold(hold.uid, "erased:" + target)
        elif hold.conversation_uid is not None and hold.conversation_uid in deleted:
            store.redact_hold(hold.uid, None)


def _covering(holds: list[HoldRecord], record: ConversationRecord) -> list[HoldRecord]:
    return [
        hold
        for hold in holds
        if hold.conversation_uid == record.uid
        or (hold.subject is not None and hold.subject in (record.subject, record.peer))
    ]


def _sign(
    identity: Identity,
    scope: Scope,
    target: str,
    now: int,
    erased: list[dict[str, Any]],
    kept: list[dict[str, Any]],
) -> ErasureReceipt:
    unsigned = ErasureReceipt(
        receipt_id=random_bytes(16).hex(),
        at=now,
        scope=scope,
        target=target,
        erased=erased,
        kept=kept,
        signer=identity.public.key_bytes.hex(),
        signature="",
    )
    signature = identity._sign(LABEL_RECEIPT + canonical_json(unsigned._signed_part()))
    return ErasureReceipt(
        receipt_id=unsigned.receipt_id,
        at=now,
        scope=scope,
        target=target,
        erased=erased,
        kept=kept,
        signer=unsigned.signer,
        signature=signature.hex(),
    )
