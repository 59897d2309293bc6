"""Two real clients against a reference model (a Hypothesis state machine; spec/hardening.md MDL).

A bank (with the policies of reference.py) and a customer, each a ``Client`` on a real encrypted
store in a temporary folder, share one clock that the rules move in small and large steps. The
customer starts conversations with the bank; both send; a network carries the envelopes and
delivers them in order, out of order, twice, never, tampered or in batches; either client
restarts; both sweep; either sets a disappearing timer. The bank files conversations under
subjects, peer labels and categories, switches policy, places and releases legal holds, erases
conversations and subjects, asks for consent and records it, sends for a purpose that needs
consent, and exports a subject. The customer answers and withdraws consent and erases a
conversation. After every step the model (reference.py) says what each side's histories,
expiries, consent states, receipts, exports and audit trail must be; the invariants compare.

CI runs a reduced count; ``ENTRENOUS_MODEL_EXAMPLES=3000`` (and, optionally,
``ENTRENOUS_MODEL_STEPS``) runs a long campaign (SECURITY.md, "A model of two clients").
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

_HERE = Path(__file__).resolve().parent
for _folder in (_HERE, _HERE.parent / "protocol"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from protocol_support import is_initial, ratchet_key_of  # noqa: E402
from reference import (  # noqa: E402
    BANK,
    CUSTOMER,
    NOTICE,
    POLICIES,
    POLICY,
    PREKEY_SURELY_VALID_MS,
    PURPOSE,
    Conv,
    Hold,
    Model,
    Msg,
    Record,
    Request,
    View,
)

from entrenous import Client, Conversation  # noqa: E402
from entrenous.compliance.policy import Policy  # noqa: E402
from entrenous.errors import (  # noqa: E402
    ConsentRequired,
    EntrenousError,
    InvalidConsentRecord,
    ReplayError,
    UsageError,
)
from entrenous.protocol.constants import MAX_RECEIVING_CHAINS  # noqa: E402

#: 2026-01-01T00:00:00Z, in seconds (the clients' clock) and ms (the model's).
START_S = 1_767_225_600
EXAMPLES = int(os.environ.get("ENTRENOUS_MODEL_EXAMPLES", "0"))
STEPS = int(os.environ.get("ENTRENOUS_MODEL_STEPS", "40"))
#: A file where a long run writes its tally every 50 examples.
PROGRESS = os.environ.get("ENTRENOUS_MODEL_PROGRESS")
MAX_CONVERSATIONS = 3
SUBJECTS = ["cust-1", "cust-2"]
CATEGORIES = [None, "contract", "marketing"]
#: Clock steps in seconds: within a message's life, across a day, across every rule's age.
STEPS_S = [1, 1, 61, 3600, 3600, 11 * 3600, 86_400, 86_400 + 1, 2 * 86_400, 5 * 86_400]

#: What the examples exercised (printed by the test with -s; for judging the model's reach).
SEEN: Counter[str] = Counter()

#: Disappearing timers: off, shorter than every rule, between them, longer than some.
TIMERS_MS = [None, 3_600_000, 12 * 3_600_000, 3 * 86_400_000]

picks = st.integers(min_value=0, max_value=2**16)
sides = st.sampled_from([BANK, CUSTOMER])


class Clock:
    """The one clock both clients read (seconds since the epoch, as time.time)."""

    def __init__(self) -> None:
        self.now = float(START_S)

    def __call__(self) -> float:
        return self.now


@dataclass
class Flight:
    """One envelope on the network, and what its delivery must store."""

    number: int
    sender: str
    conv: int
    data: bytes
    message: Msg  # as the sender stored it (the receiver stores it with its own time)
    ratchet_key: bytes
    initial: bool
    timer: int | bool | None = False  # a disappearing timer set (False: not a timer message)
    request: Request | None = None  # a consent request the customer must keep
    record: Record | None = None  # a consent record the bank must append
    delivered: bool = False
    dropped: bool = False

    @property
    def receiver(self) -> str:
        return CUSTOMER if self.sender == BANK else BANK


def ms(moment: datetime | None) -> int | None:
    """A datetime the API returns, in ms since the epoch (as the model counts)."""
    return None if moment is None else round(moment.timestamp() * 1000)


def flip(data: bytes, where: int) -> bytes:
    index, bit = divmod(where % (8 * len(data)), 8)
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


class TwoClients(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="entrenous-model-"))
        self.clock = Clock()
        self.keys = {BANK: os.urandom(32), CUSTOMER: os.urandom(32)}
        self.paths = {BANK: self.folder / "bank.db", CUSTOMER: self.folder / "customer.db"}
        self.clients: dict[str, Client] = {}
        self.open(BANK, policy=Policy.parse(POLICY))
        self.open(CUSTOMER)
        self.model = Model(now=START_S * 1000)
        self.flights: list[Flight] = []
        self.counter = 0
        # The request each consent record answers (record id -> request id).
        self.record_requests: dict[str, str] = {}
        self.customer_receipts = 0
        # The bank's receipts: (receipt id, subject erased or None, conversations erased from).
        self.bank_receipts: list[tuple[str, str | None, set[int]]] = []
        SEEN["state machines run"] += 1

    # --- plumbing ---------------------------------------------------------------------------

    def open(self, side: str, policy: Policy | None = None) -> Client:
        client = Client.open(self.paths[side], key=self.keys[side], clock=self.clock, policy=policy)
        self.clients[side] = client
        return client

    def teardown(self) -> None:
        for client in self.clients.values():
            client.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        if PROGRESS and SEEN["state machines run"] % 50 == 0:
            # A long run's tally so far, in case it is stopped before it ends.
            Path(PROGRESS).write_text(
                "".join(f"{count:10} {what}\n" for what, count in sorted(SEEN.items()))
            )

    def handle(self, side: str, conv: Conv) -> Conversation:
        view = conv.sides[side]
        assert view.id is not None
        return self.clients[side].conversation(view.id)

    def text(self) -> str:
        self.counter += 1
        return f"message {self.counter}"

    def existing(self, side: str) -> list[Conv]:
        return [c for c in self.model.convs if c.sides[side].exists]

    def pick(self, items: list[Any], choice: int) -> Any:
        return items[choice % len(items)]

    def waiting(self, receiver: str | None = None) -> list[Flight]:
        return [
            f
            for f in self.flights
            if not f.delivered and not f.dropped and receiver in (None, f.receiver)
        ]

    def newest(self, side: str, conv: Conv) -> Any:
        """The message a call just stored on ``side`` (history is newest first)."""
        return self.handle(side, conv).history(limit=1)[0]

    # --- sending ----------------------------------------------------------------------------

    def sent(
        self, side: str, conv: Conv, envelope: bytes, *, text: str | None, control: str | None
    ) -> Flight:
        """Record in the model what a send stored, and put the envelope on the network."""
        stored = self.newest(side, conv)
        assert stored.direction == "sent" and stored.control == control
        assert stored.text == text
        view = conv.sides[side]
        message = Msg(
            stored.id,
            "sent",
            text,
            control,
            self.model.now,
            self.model.now,
            self.model.stored_timer(side, view),
        )
        view.messages.append(message)
        flight = Flight(
            len(self.flights),
            side,
            conv.number,
            envelope,
            message,
            ratchet_key_of(envelope),
            is_initial(envelope),
        )
        self.flights.append(flight)
        return flight

    @initialize(
        subject=st.sampled_from([None, *SUBJECTS]),
        category=st.sampled_from(CATEGORIES),
        answer=st.sampled_from([None, True, False]),
    )
    def first_conversation(
        self, subject: str | None, category: str | None, answer: bool | None
    ) -> None:
        """Each example starts with a conversation both sides have, filed by the bank, and
        often a consent asked for and answered."""
        self.start_conversation()
        self.deliver_one(self.flights[-1])
        if subject is not None:
            self.set_subject(0, subject)
        if category is not None:
            self.set_category(0, category)
        self.converse(BANK, 0)
        if answer is not None:
            self.request_consent(0, True)
            self.answer_consent(0, answer, True)

    @precondition(lambda self: len(self.model.convs) < MAX_CONVERSATIONS)
    @rule()
    def start_conversation(self) -> None:
        """The customer starts a conversation from a fresh bundle and sends its first message."""
        bundle = self.clients[BANK].prekey_bundle()
        handle = self.clients[CUSTOMER].start_conversation(bundle, peer="bank")
        conv = Conv(
            len(self.model.convs),
            self.model.now,
            {BANK: View(), CUSTOMER: View(id=handle.id, created_at=self.model.now)},
        )
        self.model.convs.append(conv)
        text = self.text()
        self.sent(CUSTOMER, conv, handle.send(text), text=text, control=None)

    @precondition(lambda self: self.model.convs)
    @rule(side=sides, choice=picks)
    def send(self, side: str, choice: int) -> None:
        """A text message (the customer's carry the handshake until the bank has answered)."""
        candidates = self.existing(side)
        if not candidates:
            return
        conv = self.pick(candidates, choice)
        text = self.text()
        self.sent(side, conv, self.handle(side, conv).send(text), text=text, control=None)

    @precondition(lambda self: self.model.convs)
    @rule(side=sides, choice=picks)
    def converse(self, side: str, choice: int) -> None:
        """A well-behaved network for once: send, and deliver at once."""
        count = len(self.flights)
        self.send(side, choice)
        if len(self.flights) > count:
            self.deliver_one(self.flights[-1])

    @precondition(lambda self: self.model.convs)
    @rule(side=sides, choice=picks, timer=st.sampled_from(TIMERS_MS), deliver=st.booleans())
    def set_disappearing(self, side: str, choice: int, timer: int | None, deliver: bool) -> None:
        """DIS-01 to DIS-04: a timer agreed in band, applied by the sender from its message on
        and by the receiver from its receipt on; a policy without timers refuses to set one."""
        candidates = self.existing(side)
        if not candidates:
            return
        conv = self.pick(candidates, choice)
        handle = self.handle(side, conv)
        after = None if timer is None else timedelta(milliseconds=timer)
        if timer is not None and not self.model.timers_apply(side):
            with pytest.raises(UsageError):
                handle.set_disappearing(after)
            return
        envelope = handle.set_disappearing(after)
        view = conv.sides[side]
        view.timer_ms = timer
        self.model.log(side, "timer.changed", ("conv", str(conv.number)))
        SEEN[f"timer set by {side}"] += 1
        flight = self.sent(side, conv, envelope, text=None, control="timer")
        flight.timer = timer
        if deliver:
            self.deliver_one(flight)

    @precondition(lambda self: self.existing(BANK))
    @rule(choice=picks)
    def send_for_purpose(self, choice: int) -> None:
        """CON-17: the bank sends for a purpose that needs consent; refused exactly when the
        model has no valid consent, and then nothing is stored."""
        conv = self.pick(self.existing(BANK), choice)
        text = self.text()
        before = len(conv.sides[BANK].messages)
        state = self.model.bank_consent(conv)
        handle = self.handle(BANK, conv)
        SEEN[f"purpose send with consent {state}"] += 1
        if state != "given":
            with pytest.raises(ConsentRequired) as info:
                handle.send(text, purpose=PURPOSE)
            expected = "none recorded" if state == "none" else state
            assert info.value.reason == expected
            assert len(handle.history(limit=1000)) == before
            return
        self.sent(BANK, conv, handle.send(text, purpose=PURPOSE), text=text, control=None)

    # --- the network ------------------------------------------------------------------------

    def deliver_one(self, flight: Flight, data: bytes | None = None) -> None:
        """Deliver a genuine envelope (or ``data``, a tampered copy) and check the outcome."""
        receiver = flight.receiver
        client = self.clients[receiver]
        if data is not None:
            outcome = self.expect(flight, tampered=True)
            self.check_outcome(flight, outcome, self.attempt(client, data), tampered=True)
            return
        outcome = self.expect(flight, tampered=False)
        self.check_outcome(flight, outcome, self.attempt(client, flight.data), tampered=False)

    @staticmethod
    def attempt(client: Client, data: bytes) -> Any:
        try:
            return client.receive(data)
        except EntrenousError as exc:
            return exc

    def expect(self, flight: Flight, *, tampered: bool) -> str:
        """What the receiver must do: "accept", "replay" (ReplayError), "refuse" (any typed
        error), "record-refused" (InvalidConsentRecord) or "either" (see reference.py)."""
        conv = self.model.convs[flight.conv]
        view = conv.sides[flight.receiver]
        if tampered:
            return "refuse"
        if view.gone:
            return "refuse"
        if view.id is None:
            assert flight.initial, "only an initial envelope can start the bank's side"
            if self.model.now - conv.bundle_at >= PREKEY_SURELY_VALID_MS:
                return "either"
            return "accept"
        if flight.ratchet_key in view.chains[:-MAX_RECEIVING_CHAINS]:
            return "refuse"  # its receiving chain was evicted (RAT-07)
        if flight.delivered:
            return "replay"
        if flight.record is not None:
            found = self.bank_request(conv, flight.record)
            if found is None:
                return "refuse"
            flag = found.withdrawn if flight.record.state == "withdrawn" else found.answered
            if flag:
                return "record-refused"
        return "accept"

    def bank_request(self, conv: Conv, record: Record) -> Request | None:
        return conv.sides[BANK].requests.get(self.record_requests[record.record_id])

    def check_outcome(self, flight: Flight, outcome: str, result: Any, *, tampered: bool) -> None:
        receiver = flight.receiver
        SEEN[f"deliver {outcome} to {receiver}{' (tampered)' if tampered else ''}"] += 1
        if outcome == "either":
            outcome = "refuse" if isinstance(result, EntrenousError) else "accept"
        if outcome != "accept":
            assert isinstance(result, EntrenousError), f"accepted, expected {outcome}: {flight}"
            if outcome == "replay":
                assert isinstance(result, ReplayError), repr(result)
            if outcome == "record-refused":
                assert isinstance(result, InvalidConsentRecord), repr(result)
            return
        assert not isinstance(result, EntrenousError), f"refused {result!r}: {flight}"
        self.accepted(flight, result.conversation.id, result.message, result.new_conversation)

    def accepted(self, flight: Flight, conversation_id: str, message: Any, new: bool) -> None:
        """The model's side of an accepted envelope."""
        receiver = flight.receiver
        conv = self.model.convs[flight.conv]
        view = conv.sides[receiver]
        assert new == (view.id is None)
        if view.id is None:
            view.id = conversation_id
            view.created_at = self.model.now
        assert conversation_id == view.id
        assert message.id == flight.message.id
        assert message.direction == "received"
        assert message.text == flight.message.text and message.control == flight.message.control
        flight.delivered = True
        if flight.timer is not False:
            view.timer_ms = flight.timer
            self.model.log(receiver, "timer.changed", ("conv", str(conv.number)))
        view.messages.append(
            Msg(
                flight.message.id,
                "received",
                flight.message.text,
                flight.message.control,
                self.model.now,
                flight.message.sent_at,
                self.model.stored_timer(receiver, view),
            )
        )
        if flight.ratchet_key not in view.chains:
            view.chains.append(flight.ratchet_key)
        if flight.request is not None:
            view.requests[flight.request.request_id] = Request(
                flight.request.request_id, flight.request.subject, flight.request.valid_ms
            )
        if flight.record is not None:
            request = self.bank_request(conv, flight.record)
            assert request is not None
            if flight.record.state == "withdrawn":
                request.withdrawn = True
            else:
                request.answered = True
            self.model.ledgers[BANK].append(flight.record)
            self.model.log(BANK, "consent.recorded", ("conv", str(conv.number)))

    @precondition(lambda self: self.waiting())
    @rule(side=sides)
    def deliver_in_order(self, side: str) -> None:
        """The oldest envelope still on its way to ``side``."""
        waiting = self.waiting(side)
        if waiting:
            self.deliver_one(waiting[0])

    @precondition(lambda self: self.waiting())
    @rule(choice=picks)
    def deliver_reordered(self, choice: int) -> None:
        self.deliver_one(self.pick(self.waiting(), choice))

    @precondition(lambda self: any(f.delivered for f in self.flights))
    @rule(choice=picks)
    def deliver_again(self, choice: int) -> None:
        """A duplicate: ReplayError (or a typed refusal if its chain or conversation is gone)."""
        self.deliver_one(self.pick([f for f in self.flights if f.delivered], choice))

    @precondition(lambda self: self.waiting())
    @rule(choice=picks)
    def drop(self, choice: int) -> None:
        self.pick(self.waiting(), choice).dropped = True

    @precondition(lambda self: self.flights)
    @rule(choice=picks, where=st.integers(min_value=0, max_value=2**20))
    def tamper(self, choice: int, where: int) -> None:
        """A flipped bit: a typed error, nothing stored; the genuine copy still delivers."""
        flight = self.pick(self.flights, choice)
        self.deliver_one(flight, flip(flight.data, where))

    @precondition(lambda self: self.flights)
    @rule(
        side=sides,
        items=st.lists(
            st.tuples(picks, st.sampled_from(["new", "new", "again", "tampered"]), picks),
            min_size=1,
            max_size=6,
        ),
    )
    def deliver_batch(self, side: str, items: list[tuple[int, str, int]]) -> None:
        """API-07: receive_many with one outcome per envelope, in order."""
        batch: list[tuple[Flight, bytes | None]] = []
        for choice, kind, where in items:
            mine = [f for f in self.flights if f.receiver == side and not f.dropped]
            if kind == "new":
                mine = [f for f in mine if not f.delivered] or mine
            if not mine:
                continue
            flight = self.pick(mine, choice)
            batch.append((flight, flip(flight.data, where) if kind == "tampered" else None))
        if not batch:
            return
        outcomes = self.clients[side].receive_many([data or f.data for f, data in batch])
        assert [o.index for o in outcomes] == list(range(len(batch)))
        for (flight, data), outcome in zip(batch, outcomes, strict=True):
            expected = self.expect(flight, tampered=data is not None)
            result = outcome.received if outcome.ok else outcome.error
            self.check_outcome(flight, expected, result, tampered=data is not None)

    # --- time, restarts and sweeps ----------------------------------------------------------

    @rule(name=st.sampled_from(sorted(POLICIES)))
    def apply_policy(self, name: str) -> None:
        """SWP-06: another policy (same categories) recomputes every expiry; audited unless it
        is the one applied already."""
        self.clients[BANK].apply_policy(Policy.parse(POLICIES[name].text))
        if name != self.model.policy:
            SEEN["policy changed"] += 1
            self.model.policy = name
            self.model.log(BANK, "policy.applied")

    @rule(step=st.sampled_from(STEPS_S))
    def advance_clock(self, step: int) -> None:
        self.clock.now += step
        self.model.now += step * 1000

    @rule(side=sides, step=st.sampled_from([0, *STEPS_S]))
    def restart(self, side: str, step: int) -> None:
        """Close and reopen with the same key: everything stays, and the open sweeps."""
        self.advance_clock(step)
        self.clients[side].close()
        client = self.open(side)
        self.model.sweep(side)
        assert client.identity is not None

    @rule(side=sides, dry_run=st.booleans(), step=st.sampled_from([0, *STEPS_S]))
    def sweep(self, side: str, dry_run: bool, step: int) -> None:
        """A sweep (or a dry run), usually after the clock moved."""
        self.advance_clock(step)
        report = self.clients[side].sweep(dry_run=dry_run)
        expected = self.model.would_sweep(side) if dry_run else self.model.sweep(side)
        assert report.by_conversation == expected
        SEEN[f"sweep {side} dry={dry_run} deleting {bool(expected)}"] += 1
        assert report.deleted == sum(expected.values())

    # --- the bank's compliance actions ------------------------------------------------------

    @precondition(lambda self: self.existing(BANK))
    @rule(choice=picks, subject=st.sampled_from([None, *SUBJECTS]))
    def set_subject(self, choice: int, subject: str | None) -> None:
        conv = self.pick(self.existing(BANK), choice)
        view = conv.sides[BANK]
        if self.model.escapes((view.subject, view.peer), (subject, view.peer)):  # HOLD-05
            SEEN["hold escape refused"] += 1
            with pytest.raises(UsageError):
                self.handle(BANK, conv).set_subject(subject)
            return
        self.handle(BANK, conv).set_subject(subject)
        view.subject = subject
        about = [("conv", str(conv.number))] + ([("subject", subject)] if subject else [])
        self.model.log(BANK, "conversation.classified", *about)

    @precondition(lambda self: self.existing(BANK))
    @rule(choice=picks, peer=st.sampled_from(SUBJECTS))
    def set_peer(self, choice: int, peer: str) -> None:
        """The peer label names the data subject when no subject id does."""
        conv = self.pick(self.existing(BANK), choice)
        view = conv.sides[BANK]
        if self.model.escapes((view.subject, view.peer), (view.subject, peer)):  # HOLD-05
            SEEN["hold escape by peer label refused"] += 1
            with pytest.raises(UsageError):
                self.handle(BANK, conv).set_peer(peer)
            return
        self.handle(BANK, conv).set_peer(peer)
        view.peer = peer
        self.model.log(
            BANK, "conversation.classified", ("conv", str(conv.number)), ("subject", peer)
        )

    @precondition(lambda self: self.existing(BANK))
    @rule(choice=picks, category=st.sampled_from(CATEGORIES))
    def set_category(self, choice: int, category: str | None) -> None:
        conv = self.pick(self.existing(BANK), choice)
        self.handle(BANK, conv).set_category(category)
        conv.sides[BANK].category = category
        self.model.log(BANK, "conversation.classified", ("conv", str(conv.number)))

    @rule(choice=picks, on_subject=st.booleans(), subject=st.sampled_from(SUBJECTS))
    def place_hold(self, choice: int, on_subject: bool, subject: str) -> None:
        bank = self.clients[BANK]
        convs = self.existing(BANK)
        if on_subject or not convs:
            hold = bank.place_hold(subject=subject, reason="complaint", reference="K-1")
            self.model.holds.append(Hold(hold.id, None, subject))
            self.model.log(BANK, "hold.placed", ("subject", subject))
        else:
            conv = self.pick(convs, choice)
            hold = bank.place_hold(conversation=self.handle(BANK, conv), reason="audit")
            self.model.holds.append(Hold(hold.id, conv.number, None))
            self.model.log(BANK, "hold.placed", ("conv", str(conv.number)))

    @precondition(lambda self: any(h.active for h in self.model.holds))
    @rule(choice=picks)
    def release_hold(self, choice: int) -> None:
        hold = self.pick([h for h in self.model.holds if h.active], choice)
        self.clients[BANK].release_hold(hold.hold_id)
        hold.active = False
        about = (
            ("conv", str(hold.conversation)) if hold.subject is None else ("subject", hold.subject)
        )
        self.model.log(BANK, "hold.released", about)

    @precondition(lambda self: self.existing(BANK))
    @rule(choice=picks, by_subject=st.booleans(), subject=st.sampled_from(SUBJECTS))
    def erase(self, choice: int, by_subject: bool, subject: str) -> None:
        bank = self.clients[BANK]
        if by_subject:
            targets = self.model.conversations_of(subject)
            ids = [c.sides[BANK].id for c in targets]
            receipt = bank.erase(subject=subject)
        else:
            conv = self.pick(self.existing(BANK), choice)
            targets = [conv]
            ids = [conv.sides[BANK].id]
            receipt = bank.erase(conversation=self.handle(BANK, conv))
        receipt.verify(bank.identity)
        erased, kept = self.model.erase(targets, subject if by_subject else None)
        # The receipt's message ids are a set: the spec gives them no order.
        for item in receipt.erased:
            item["message_ids"] = sorted(item["message_ids"])
        # Subject erasure lists the conversations oldest first; compare per conversation.
        assert sorted(receipt.erased, key=lambda i: i["conversation"]) == sorted(
            erased, key=lambda i: str(i["conversation"])
        ), (receipt.erased, erased)
        got_kept = [{**k, "holds": sorted(k["holds"])} for k in receipt.kept]
        assert sorted(got_kept, key=lambda i: i["conversation"]) == sorted(
            kept, key=lambda i: str(i["conversation"])
        ), (receipt.kept, kept)
        SEEN[f"erase: {len(erased)} erased, {len(kept)} kept"] += 1
        numbers = {c.sides[BANK].id: c.number for c in targets}
        self.bank_receipts.append(
            (
                receipt.receipt_id,
                subject if by_subject else None,
                {numbers[i["conversation"]] for i in receipt.erased},
            )
        )
        SEEN.update(f"erase kept: {k['ground']}" for k in kept)
        assert {i["conversation"] for i in receipt.erased} | {
            i["conversation"] for i in receipt.kept
        } == set(ids)

    @precondition(lambda self: self.existing(CUSTOMER))
    @rule(choice=picks)
    def customer_erase(self, choice: int) -> None:
        """The customer (no policy, no holds) erases a conversation: all of it goes; the bank's
        envelopes in it are refused from then on."""
        customer = self.clients[CUSTOMER]
        conv = self.pick(self.existing(CUSTOMER), choice)
        view = conv.sides[CUSTOMER]
        receipt = customer.erase(conversation=self.handle(CUSTOMER, conv))
        receipt.verify(customer.identity)
        for item in receipt.erased:
            item["message_ids"] = sorted(item["message_ids"])
        assert receipt.erased == [
            {
                "conversation": view.id,
                "messages": len(view.messages),
                "message_ids": sorted(m.id for m in view.messages),
                "conversation_deleted": True,
            }
        ]
        assert receipt.kept == []
        SEEN["customer erase"] += 1
        view.messages = []
        view.gone = True
        self.model.log(CUSTOMER, "erasure")
        self.customer_receipts += 1

    @precondition(lambda self: self.existing(BANK))
    @rule(choice=picks, deliver=st.booleans())
    def request_consent(self, choice: int, deliver: bool) -> None:
        conv = self.pick(self.existing(BANK), choice)
        envelope = self.handle(BANK, conv).request_consent(PURPOSE, notice=NOTICE)
        stored = self.newest(BANK, conv)
        request_id = stored.content["request"]["request_id"]
        request = Request(request_id, conv.sides[BANK].subject, self.model.rules.consent_ms)
        conv.sides[BANK].requests[request_id] = request
        flight = self.sent(BANK, conv, envelope, text=None, control="consent_request")
        flight.request = request
        if deliver:
            self.deliver_one(flight)

    @rule(subject=st.sampled_from(SUBJECTS), give=st.booleans())
    def record_consent(self, subject: str, give: bool) -> None:
        """Consent collected through another channel (CON-17: a refusal after a valid consent
        is recorded as a withdrawal)."""
        state = self.model.recorded_state(subject, give)
        record = self.clients[BANK].record_consent(
            subject=subject, purpose=PURPOSE, give=give, notice=NOTICE
        )
        assert record.state == state
        SEEN[f"record_consent {state}"] += 1
        expires = self.model.now + self.model.rules.consent_ms if give else None
        assert record.expires_at == expires
        self.model.ledgers[BANK].append(
            Record(
                record.record_id.hex(),
                ("subject", subject),
                state,
                self.model.now,
                expires,
                subject,
                False,
            )
        )
        self.model.log(BANK, "consent.recorded", ("subject", subject))

    @precondition(lambda self: self.existing(BANK))
    @rule(subject=st.sampled_from(SUBJECTS))
    def export(self, subject: str) -> None:
        data = self.clients[BANK].export(subject)
        convs = self.model.conversations_of(subject)
        got = {c["id"]: c for c in data["conversations"]}
        assert set(got) == {c.sides[BANK].id for c in convs}
        for conv in convs:
            view = conv.sides[BANK]
            exported = got[view.id]
            assert exported["subject"] == view.subject and exported["peer"] == view.peer
            assert exported["category"] == view.category
            assert [(m["id"], m["direction"]) for m in exported["messages"]] == [
                (m.id, m.direction) for m in view.messages
            ]
            for m, e in zip(view.messages, exported["messages"], strict=True):
                if m.text is not None:
                    assert e["kind"] == "text" and e["content"] == m.text
                else:
                    assert e["kind"] == "control"
        records = self.model.subject_records(subject)
        assert [r["record_id"] for r in data["consent_records"]] == [r.record_id for r in records]
        assert [h["id"] for h in data["holds"]] == self.model.subject_holds(subject)
        mine = {c.number for c in convs}
        assert [r["receipt_id"] for r in data["erasure_receipts"]] == [
            receipt_id
            for receipt_id, erased_subject, erased_from in self.bank_receipts
            if erased_subject == subject or erased_from & mine
        ]
        seqs = [e["seq"] for e in data["audit_events"]]
        assert seqs == self.model.exported_events(subject), (
            seqs,
            self.model.exported_events(subject),
        )
        self.model.log(BANK, "export", ("subject", subject))

    # --- the customer's consent -------------------------------------------------------------

    @precondition(
        lambda self: any(
            not r.answered
            for c in self.existing(CUSTOMER)
            for r in c.sides[CUSTOMER].requests.values()
        )
    )
    @rule(choice=picks, give=st.booleans(), deliver=st.booleans())
    def answer_consent(self, choice: int, give: bool, deliver: bool) -> None:
        pending = [
            (c, r)
            for c in self.existing(CUSTOMER)
            for r in c.sides[CUSTOMER].requests.values()
            if not r.answered
        ]
        conv, request = self.pick(pending, choice)
        envelope = self.handle(CUSTOMER, conv).answer_consent(request.request_id, give=give)
        request.answered = True
        SEEN[f"answer give={give}"] += 1
        flight = self.customer_record(conv, envelope, request, "given" if give else "refused")
        if deliver:
            self.deliver_one(flight)

    def customer_record(self, conv: Conv, envelope: bytes, request: Request, state: str) -> Flight:
        stored = self.newest(CUSTOMER, conv)
        content = stored.content["record"]
        record = Record(
            content["record_id"],
            ("own", str(conv.number)),
            state,  # type: ignore[arg-type]
            self.model.now,
            self.model.now + request.valid_ms if state == "given" else None,
            request.subject,
            True,
        )
        assert content["state"] == state and content.get("expires_at") == record.expires_at
        self.model.ledgers[CUSTOMER].append(record)
        self.model.log(CUSTOMER, "consent.recorded")
        flight = self.sent(CUSTOMER, conv, envelope, text=None, control="consent_record")
        flight.record = Record(
            record.record_id,
            ("conv", str(conv.number)),
            record.state,
            record.at,
            record.expires_at,
            record.subject,
            True,
        )
        self.record_requests[record.record_id] = request.request_id
        return flight

    @precondition(
        lambda self: any(self.model.customer_consent(c) == "given" for c in self.existing(CUSTOMER))
    )
    @rule(choice=picks, deliver=st.booleans())
    def withdraw_consent(self, choice: int, deliver: bool) -> None:
        # Mostly a conversation where the customer's consent is given, sometimes any (refused).
        mine = self.existing(CUSTOMER)
        given = [c for c in mine if self.model.customer_consent(c) == "given"]
        conv = self.pick(given if given and choice % 4 else mine, choice // 4)
        handle = self.handle(CUSTOMER, conv)
        own = [r for r in self.model.ledgers[CUSTOMER] if r.key == ("own", str(conv.number))]
        SEEN[f"withdraw with {self.model.customer_consent(conv)}"] += 1
        if self.model.customer_consent(conv) != "given":
            with pytest.raises(UsageError):
                handle.withdraw_consent(PURPOSE)
            return
        given = [r for r in own if r.state == "given"][-1]
        request_id = self.record_requests[given.record_id]
        envelope = handle.withdraw_consent(PURPOSE)
        request = conv.sides[CUSTOMER].requests[request_id]
        request.withdrawn = True
        flight = self.customer_record(conv, envelope, request, "withdrawn")
        if deliver:
            self.deliver_one(flight)

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def histories_match(self) -> None:
        SEEN["steps run (invariants checked)"] += 1
        for side in (BANK, CUSTOMER):
            client = self.clients[side]
            assert {c.id for c in client.conversations()} == {
                c.sides[side].id for c in self.existing(side)
            }
            for conv in self.existing(side):
                view = conv.sides[side]
                history = self.handle(side, conv).history(limit=1000)
                got = [
                    (m.id, m.direction, m.text, m.control, ms(m.sent_at), ms(m.received_at))
                    for m in reversed(history)
                ]
                want = [
                    (
                        m.id,
                        m.direction,
                        m.text,
                        m.control,
                        m.sent_at,
                        m.stored_at if m.direction == "received" else None,
                    )
                    for m in view.messages
                ]
                assert got == want, (side, conv.number)
                expiries = [ms(m.expires_at) for m in reversed(history)]
                assert expiries == [self.model.expires(side, view, m) for m in view.messages]
            assert ms(client.next_sweep_at()) == self.model.next_sweep(side)

    @invariant()
    def consent_matches(self) -> None:
        for conv in self.existing(BANK):
            assert self.handle(BANK, conv).consent(PURPOSE) == self.model.bank_consent(conv)
        for conv in self.existing(CUSTOMER):
            assert self.handle(CUSTOMER, conv).consent(PURPOSE) == self.model.customer_consent(conv)

    @invariant()
    def audit_matches(self) -> None:
        for side in (BANK, CUSTOMER):
            client = self.clients[side]
            kinds = [e.action for e in client.audit_events()]
            assert kinds == self.model.audit[side], side
            assert client.verify_audit() == len(kinds)
        assert len(self.clients[BANK].erasure_receipts()) == self.model.receipts
        assert len(self.clients[CUSTOMER].erasure_receipts()) == self.customer_receipts
        active = sorted(h.id for h in self.clients[BANK].holds())
        assert active == sorted(h.hold_id for h in self.model.holds if h.active)


def _settings() -> settings:
    profile = settings()
    examples = EXAMPLES or min(profile.max_examples, 60)
    return settings(
        profile,
        max_examples=examples,
        stateful_step_count=STEPS,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        report_multiple_bugs=False,
    )


@pytest.mark.req("MDL-01", "MDL-02", "MDL-03", "MDL-04", "MDL-05")
def test_two_clients_against_the_reference_model() -> None:
    SEEN.clear()
    run_state_machine_as_test(TwoClients, settings=_settings())
    for what, count in sorted(SEEN.items()):
        print(f"{count:8} {what}")
