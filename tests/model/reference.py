"""The reference model of tests/model/test_two_clients.py: what a bank and a customer must hold.

Plain Python, no entrenous code: each rule of spec/compliance.md and spec/client.md that the
state machine exercises is written here again, from the spec, as simply as possible. The
state machine drives the real clients and this model side by side and compares them.

Times are milliseconds of the one shared clock. Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DAY_MS = 86_400_000
MINUTE_MS = 60_000
#: A signed prekey stays valid at least this long after the bundle that carries it was issued
#: (rotation after 7 days, then a grace of 30 days): an initial envelope delivered sooner must be
#: accepted; one delivered later may be refused (the model then follows the library).
PREKEY_SURELY_VALID_MS = 30 * DAY_MS

BANK, CUSTOMER = "bank", "customer"
Side = Literal["bank", "customer"]

#: The bank's policy (spec/compliance.md "Retention policy files"): ages short enough that the
#: clock the rules move makes sweeps delete some messages and keep others.
POLICY = """\
version = 1

[controller]
name = "Model Bank AG"
contact = "privacy@bank.example"

[retention.default]
max_age = "2d"

[retention.categories.contract]
description = "Conversations that form or change a contract"
max_age = "6d"
min_age = "4d"
legal_ground = "HGB 257"

[retention.categories.marketing]
description = "Offers sent with consent"
max_age = "1d"

[purposes.marketing]
description = "Offers for products the customer does not hold yet"
legal_basis = "consent"
requires_consent = true
notice_version = "2026-01"
consent_valid_for = "3d"
categories = ["marketing"]
"""
NOTICE = "We would like to send you offers. You can withdraw at any time."
PURPOSE = "marketing"
#: A second policy the bank may apply instead (SWP-06): other ages, the same categories.
POLICY_B = (
    POLICY.replace('max_age = "2d"', 'max_age = "3d"')
    .replace('max_age = "6d"\nmin_age = "4d"', 'max_age = "5d"\nmin_age = "2d"')
    .replace('max_age = "1d"', 'max_age = "12h"')
    .replace('consent_valid_for = "3d"', 'consent_valid_for = "2d"')
    + "\n[disappearing]\nallowed = false\n"
)


@dataclass(frozen=True)
class Rules:
    """What the model needs of a policy: (min_age, max_age) in ms per category (None: the
    default rule), and how long a consent lasts."""

    text: str
    ages: dict[str | None, tuple[int, int]]
    consent_ms: int
    timers: bool  # whether disappearing timers apply (RET-13)


POLICIES = {
    "A": Rules(
        POLICY,
        {None: (0, 2 * DAY_MS), "contract": (4 * DAY_MS, 6 * DAY_MS), "marketing": (0, DAY_MS)},
        3 * DAY_MS,
        True,
    ),
    "B": Rules(
        POLICY_B,
        {
            None: (0, 3 * DAY_MS),
            "contract": (2 * DAY_MS, 5 * DAY_MS),
            "marketing": (0, DAY_MS // 2),
        },
        2 * DAY_MS,
        False,
    ),
}
LEGAL_HOLD_GROUND = "legal hold (GDPR Art. 17(3)(e))"
CONTRACT_GROUND = "minimum retention (retention.categories.contract: HGB 257)"


@dataclass
class Msg:
    """One stored message on one side. ``id`` is the payload's message id (hex, both sides)."""

    id: str
    direction: Literal["sent", "received"]
    text: str | None
    control: str | None
    stored_at: int  # this side's clock: sent_at for a sent message, received_at otherwise
    sent_at: int  # the sender's clock
    timer_ms: int | None = None  # the disappearing timer it was stored under


@dataclass
class Record:
    """One consent ledger entry: a record under a ledger key, in ledger order."""

    record_id: str
    key: tuple[str, str]  # ("conv", model conversation) | ("own", ...) | ("subject", subject id)
    state: Literal["given", "refused", "withdrawn"]
    at: int
    expires_at: int | None
    subject: str | None  # the record's own subject field
    signed: bool  # signed in band by the customer's identity


@dataclass
class Request:
    """A consent request sent by the bank in a conversation."""

    request_id: str
    subject: str | None
    valid_ms: int  # how long a consent given in answer lasts (the policy's, when asked)
    answered: bool = False  # on the bank: an answer arrived; on the customer: it answered
    withdrawn: bool = False


@dataclass
class View:
    """One side's view of one conversation."""

    id: str | None = None  # the local conversation id, once it exists
    gone: bool = False  # erased (the bank only)
    messages: list[Msg] = field(default_factory=list)
    category: str | None = None
    subject: str | None = None
    peer: str | None = None  # the application's label for the peer
    timer_ms: int | None = None  # the disappearing timer agreed in the conversation
    requests: dict[str, Request] = field(default_factory=dict)
    chains: list[bytes] = field(default_factory=list)  # ratchet keys in order of first receipt
    created_at: int = 0

    @property
    def exists(self) -> bool:
        return self.id is not None and not self.gone

    @property
    def data_subject(self) -> str | None:
        """Its subject id, else its peer label (spec/compliance.md, Erasure)."""
        return self.subject or self.peer


@dataclass
class Conv:
    """A conversation the customer started (index ``number``), with both sides' views."""

    number: int
    bundle_at: int
    sides: dict[str, View]


@dataclass
class Hold:
    hold_id: str
    conversation: int | None
    subject: str | None
    active: bool = True
    redacted: bool = False  # released, and its subject erased since (ERA-02)


def decide(records: list[Record], subject: str | None, by_identity: bool, now: int) -> str:
    """CON-08 written again: the state of a consent from ledger records (oldest first).

    A record concerns the subject when its subject field is ``subject`` or it is signed by the
    identity (``by_identity``: there is only one customer identity in the model).
    """
    latest: tuple[int, Record] | None = None
    negatives: list[tuple[int, Record]] = []
    for position, record in enumerate(records):
        if not (
            (subject is not None and record.subject == subject) or (by_identity and record.signed)
        ):
            continue
        if record.state == "given":
            latest = (position, record)
        else:
            negatives.append((position, record))
    if latest is None:
        return negatives[-1][1].state if negatives else "none"
    at, given = latest
    defeating = [r for p, r in negatives if p > at or r.at >= given.at]
    if defeating:
        return defeating[-1].state
    if given.expires_at is not None and now >= given.expires_at:
        return "expired"
    return "given"


@dataclass
class Model:
    """Both clients as the spec says they must be."""

    now: int
    convs: list[Conv] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    ledgers: dict[str, list[Record]] = field(default_factory=lambda: {BANK: [], CUSTOMER: []})
    audit: dict[str, list[str]] = field(
        default_factory=lambda: {BANK: ["policy.applied"], CUSTOMER: []}
    )
    #: What each audit event is about, per event of ``audit``: ("conv", n) for a conversation
    #: it names, ("subject", id) for a subject whose pseudonym it names.
    about: dict[str, list[frozenset[tuple[str, str]]]] = field(
        default_factory=lambda: {BANK: [frozenset()], CUSTOMER: []}
    )
    receipts: int = 0
    policy: str = "A"  # the key in POLICIES of the policy the bank applies

    @property
    def rules(self) -> Rules:
        return POLICIES[self.policy]

    def log(self, side: str, kind: str, *about: tuple[str, str]) -> None:
        """An audit event the side must append now (AUD-01)."""
        self.audit[side].append(kind)
        self.about[side].append(frozenset(about))

    def exported_events(self, subject: str) -> list[int]:
        """EXP-01: the seqs of the bank's audit events about a subject: naming its pseudonym or
        one of its conversations (the consent records signed in them included)."""
        mine = {("subject", subject)} | {
            ("conv", str(c.number)) for c in self.conversations_of(subject)
        }
        return [seq for seq, about in enumerate(self.about[BANK], start=1) if about & mine]

    # --- retention ----------------------------------------------------------------------------

    def timers_apply(self, side: str) -> bool:
        """The customer has no policy (timers apply); the bank's policy says."""
        return side == CUSTOMER or self.rules.timers

    def stored_timer(self, side: str, view: View) -> int | None:
        """The timer a message stored now is stored under (DIS-01; none where not allowed)."""
        return view.timer_ms if self.timers_apply(side) else None

    def expires(self, side: str, view: View, message: Msg) -> int | None:
        """SWP-01: stored_at + max(min_age, min(max_age, timer)); the customer has no policy, so
        only a timer bounds its messages; a policy without timers ignores them (RET-13)."""
        timer = message.timer_ms if self.timers_apply(side) else None
        if side == CUSTOMER:
            return None if timer is None else message.stored_at + timer
        low, high = self.rules.ages[view.category]
        keep = high if timer is None else min(high, timer)
        return message.stored_at + max(low, keep)

    def holds_covering(self, conv: Conv) -> list[Hold]:
        """HOLD-03: the bank's active holds on the conversation or on its subject."""
        view = conv.sides[BANK]
        return [
            h
            for h in self.holds
            if h.active
            and (
                h.conversation == conv.number
                or (h.subject is not None and h.subject in (view.subject, view.peer))
            )
        ]

    def sweep(self, side: str) -> dict[str, int]:
        """What a sweep deletes now, per local conversation id; applies it and its audit event."""
        deleted: dict[str, int] = {}
        touched: list[tuple[str, str]] = []
        for conv in self.convs:
            view = conv.sides[side]
            if not view.exists or (side == BANK and self.holds_covering(conv)):
                continue
            keep = []
            for message in view.messages:
                expiry = self.expires(side, view, message)
                if expiry is not None and expiry <= self.now:
                    assert view.id is not None
                    deleted[view.id] = deleted.get(view.id, 0) + 1
                    touched.append(("conv", str(conv.number)))
                else:
                    keep.append(message)
            view.messages = keep
        if deleted:
            self.log(side, "sweep", *touched)
        return deleted

    def next_sweep(self, side: str) -> int | None:
        """SWP-05: the earliest expiry of a message no hold covers."""
        due = [
            expiry
            for conv in self.convs
            if conv.sides[side].exists and not (side == BANK and self.holds_covering(conv))
            for message in conv.sides[side].messages
            if (expiry := self.expires(side, conv.sides[side], message)) is not None
        ]
        return min(due, default=None)

    def would_sweep(self, side: str) -> dict[str, int]:
        """A dry run: what :meth:`sweep` would delete, changing nothing."""
        out: dict[str, int] = {}
        for conv in self.convs:
            view = conv.sides[side]
            if not view.exists or (side == BANK and self.holds_covering(conv)):
                continue
            for message in view.messages:
                expiry = self.expires(side, view, message)
                if expiry is not None and expiry <= self.now:
                    assert view.id is not None
                    out[view.id] = out.get(view.id, 0) + 1
        return out

    # --- subjects and erasure -----------------------------------------------------------------

    def conversations_of(self, subject: str) -> list[Conv]:
        """The bank's conversations whose data subject is ``subject``."""
        return [
            c for c in self.convs if c.sides[BANK].exists and c.sides[BANK].data_subject == subject
        ]

    def escapes(
        self, before: tuple[str | None, str | None], after: tuple[str | None, str | None]
    ) -> bool:
        """HOLD-05: relabelling (subject id, peer label) before -> after leaves a subject hold."""
        return any(
            h.active and h.subject is not None and h.subject in before and h.subject not in after
            for h in self.holds
        )

    def erase(
        self, targets: list[Conv], subject: str | None = None
    ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """ERA-02 to ERA-05 on the bank: (erased, kept) as the receipt must list them."""
        erased: list[dict[str, object]] = []
        kept: list[dict[str, object]] = []
        for conv in targets:
            view = conv.sides[BANK]
            covering = self.holds_covering(conv)
            if covering:
                kept.append(
                    {
                        "conversation": view.id,
                        "messages": len(view.messages),
                        "ground": LEGAL_HOLD_GROUND,
                        "holds": sorted(h.hold_id for h in covering),
                        "until": None,
                    }
                )
                continue
            min_age = self.rules.ages[view.category][0]
            cutoff = self.now - min_age
            stay = [m for m in view.messages if min_age > 0 and m.stored_at >= cutoff]
            gone = [m for m in view.messages if m not in stay]
            if stay:
                kept.append(
                    {
                        "conversation": view.id,
                        "messages": len(stay),
                        "ground": CONTRACT_GROUND,
                        "holds": [],
                        "until": max(m.stored_at for m in stay) + min_age,
                    }
                )
                view.messages = stay
            else:
                view.messages = []
                view.gone = True
            erased.append(
                {
                    "conversation": view.id,
                    "messages": len(gone),
                    "message_ids": sorted(m.id for m in gone),
                    "conversation_deleted": not stay,
                }
            )
        self.receipts += 1
        if subject is not None:
            for hold in self.holds:
                if not hold.active and hold.subject == subject:
                    hold.redacted = True
        named = {c.sides[BANK].id: ("conv", str(c.number)) for c in targets}
        about = [named[str(item["conversation"])] for item in erased]
        if subject is not None:
            about.append(("subject", subject))
        else:
            about.append(("conv", str(targets[0].number)))
        self.log(BANK, "erasure", *about)
        return erased, kept

    # --- consent ------------------------------------------------------------------------------

    def bank_consent(self, conv: Conv) -> str:
        """CON-17: the bank's view of the customer's consent in a conversation: the records
        signed in it and those recorded for its data subject, in ledger order."""
        subject = conv.sides[BANK].data_subject
        records = [
            r
            for r in self.ledgers[BANK]
            if r.key == ("conv", str(conv.number))
            or (subject is not None and r.key == ("subject", subject))
        ]
        return decide(records, subject, True, self.now)

    def customer_consent(self, conv: Conv) -> str:
        """The customer's own answers and withdrawals in a conversation (its own ledger)."""
        records = [r for r in self.ledgers[CUSTOMER] if r.key == ("own", str(conv.number))]
        return decide(records, None, True, self.now)

    def subject_holds(self, subject: str) -> list[str]:
        """EXP-01: the ids of the holds on the subject or on one of its conversations."""
        mine = {c.number for c in self.conversations_of(subject)}
        return [
            h.hold_id
            for h in self.holds
            if (h.subject == subject and not h.redacted) or h.conversation in mine
        ]

    def subject_records(self, subject: str) -> list[Record]:
        """Every bank record about a subject: recorded for it, or signed in its conversations."""
        keys = {("subject", subject)} | {
            ("conv", str(c.number)) for c in self.conversations_of(subject)
        }
        return [r for r in self.ledgers[BANK] if r.key in keys]

    def recorded_state(self, subject: str, give: bool) -> str:
        """The state ``record_consent(give=...)`` records: a refusal is a withdrawal when a
        consent of the subject is valid now (CON-17), as the client decides it."""
        if give:
            return "given"
        kept = self.subject_records(subject)
        if decide(kept, subject, False, self.now) == "given":
            return "withdrawn"
        if any(r.signed for r in kept) and decide(kept, subject, True, self.now) == "given":
            return "withdrawn"
        return "refused"
