"""The clock jumping backwards and forwards (FLT-07).

The client takes every time from its injectable clock (API-11). Jumps of minutes and years, in
both directions, around sends, receives, sweeps, holds, consents, prekey rotation, audit and
export: each call either works on the time it is given or raises a typed error, history keeps
the order of arrival, the audit trail and the consent ledger verify, and nothing is deleted
except what the policy deletes on the clock it is given. A clock that gives no time of the years
1970 to 9999 (negative, NaN, infinite, year 10000 or later) is refused with ``UsageError`` by
every call that reads it, and changes nothing (it raised builtin errors before: TypeError,
ValueError, OverflowError).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from compliance_support import START, Clock, Parties, parties
from fault_support import integrity
from store_support import logical_state

from entrenous import cli_output
from entrenous.errors import ConsentRequired, UnknownPrekey, UsageError

MINUTE, DAY, YEAR = 60.0, 86_400.0, 365 * 86_400.0
LAST_MS = 253402300799999  # the last millisecond of the year 9999


@pytest.fixture
def clocked(tmp_path: Path) -> Parties:
    world = parties(tmp_path, clock=Clock())
    yield world
    world.close()


def talk(world: Parties, text: str) -> tuple[str, str]:
    """One message each way; the bank's ids of the two."""
    received = world.bank.receive(world.customer_conv.send(text))
    world.customer.receive(world.bank_conv.send(f"re: {text}"))
    sent = world.bank_conv.history(1)[0]
    return received.message.id, sent.id


def contents(world: Parties) -> list[object]:
    return [m.content for m in reversed(world.bank_conv.history(1000))]


@pytest.mark.req("FLT-07")
def test_history_keeps_the_order_of_arrival_across_jumps(clocked: Parties) -> None:
    clock = clocked.clock
    expected: list[object] = ["hello", "hello back"]
    for jump in (-5 * MINUTE, -3 * YEAR, 5 * MINUTE, 3 * YEAR):
        clock.now = START
        talk(clocked, f"before {jump}")
        clock.now += jump
        talk(clocked, f"after {jump}")
        clock.now = START
        talk(clocked, f"back {jump}")
        expected += [f"{w} {jump}" for t in ("before", "after", "back") for w in (t, f"re: {t}")]
        times = {m.content: m.received_at for m in clocked.bank_conv.history(1000)}
        assert times[f"after {jump}"] == datetime.fromtimestamp(START + jump, tz=UTC)
    assert contents(clocked) == expected
    assert clocked.bank.verify_audit() > 0
    # The open sweeps: what arrived while the clock was 3 years behind expired (30 days) on
    # the clock it was stored under, and goes now. Nothing else does.
    reopened = clocked.reopen_bank()
    history = reopened.conversation(clocked.bank_conv.id).history(1000)
    swept = {f"after {-3 * YEAR}", f"re: after {-3 * YEAR}"}
    assert [m.content for m in reversed(history)] == [c for c in expected if c not in swept]
    integrity(reopened)


@pytest.mark.req("FLT-07")
def test_a_sweep_deletes_what_the_clock_it_is_given_says_has_expired(clocked: Parties) -> None:
    """Default retention 30 days. A message stored while the clock was a year behind expires a
    year early in real time: the library cannot tell a jump from time passing (a limit)."""
    clock = clocked.clock
    clocked.customer_conv.send("lost on the wire")  # a gap the ratchet skips later
    talk(clocked, "now")
    clock.now -= YEAR
    talk(clocked, "a year behind")
    assert clocked.bank.sweep().deleted == 0  # nothing has expired on this clock
    next_at = clocked.bank.next_sweep_at()
    assert next_at == datetime.fromtimestamp(clock.now + 30 * DAY, tz=UTC)
    clock.now += 10 * DAY  # still 355 days behind: the first messages are not due
    assert clocked.bank.sweep().deleted == 0
    clock.now = START + MINUTE  # back to the right time: the year-behind messages are 335 d old
    report = clocked.bank.sweep()
    assert report.deleted == 2
    assert contents(clocked) == ["hello", "hello back", "now", "re: now"]
    clock.now = START + 31 * DAY
    assert clocked.bank.sweep().deleted == 4
    assert clocked.bank.verify_audit() > 0


@pytest.mark.req("FLT-07")
def test_a_hold_released_before_it_was_placed_on_the_clock(clocked: Parties) -> None:
    clock = clocked.clock
    clocked.bank_conv.set_subject("cust-9")
    hold = clocked.bank.place_hold(subject="cust-9", reason="audit")
    clock.now -= 2 * YEAR
    released = clocked.bank.release_hold(hold.id)
    assert released.released_at is not None and released.released_at < released.placed_at
    clock.now = START + 2 * YEAR  # the held messages are long expired now: swept
    assert clocked.bank.sweep().deleted == 2
    assert clocked.bank.verify_audit() > 0
    assert [h.active for h in clocked.bank.holds(active_only=False)] == [False]


@pytest.mark.req("FLT-07")
def test_consent_follows_the_clock_both_ways(clocked: Parties) -> None:
    clock = clocked.clock
    clocked.bank_conv.set_category("marketing")
    clocked.bank_conv.set_subject("cust-9")
    clocked.bank.record_consent(
        subject="cust-9",
        purpose="marketing",
        notice_version="2026-01",
        notice="offers",
        valid_for=timedelta(days=365),
    )
    clock.now -= 2 * YEAR  # before the consent was recorded: a recorded consent still counts
    assert clocked.customer.receive(clocked.bank_conv.send("offer", purpose="marketing"))
    clock.now = START + 366 * DAY  # expired on this clock
    with pytest.raises(ConsentRequired, match="expired"):
        clocked.bank_conv.send("late offer", purpose="marketing")
    clock.now = START + DAY  # and valid again when the clock comes back
    assert clocked.customer.receive(clocked.bank_conv.send("offer 2", purpose="marketing"))
    assert clocked.bank.verify_consent_ledger() == 1
    assert clocked.bank.export("cust-9")["consent_records"]


@pytest.mark.req("FLT-07")
def test_signed_prekeys_rotate_on_the_clock_and_old_bundles_are_refused(
    clocked: Parties,
) -> None:
    clock = clocked.clock
    old_bundle = clocked.bank.prekey_bundle()
    clock.now -= 3 * YEAR  # backwards: no rotation, bundles keep working
    behind = clocked.bank.prekey_bundle()
    conv = clocked.customer.start_conversation(behind)
    assert clocked.bank.receive(conv.send("from the past")).new_conversation
    clock.now = START + 3 * YEAR  # forwards: rotated, the old generation is past its grace
    fresh = clocked.bank.prekey_bundle()
    assert fresh != old_bundle
    stale = clocked.customer.start_conversation(old_bundle)
    before = logical_state(clocked.bank)
    with pytest.raises(UnknownPrekey):
        clocked.bank.receive(stale.send("too late"))
    assert logical_state(clocked.bank) == before
    started = clocked.customer.start_conversation(fresh)
    assert clocked.bank.receive(started.send("fresh")).new_conversation


@pytest.mark.req("FLT-07")
def test_a_clock_outside_the_years_1970_to_9999_is_refused(
    clocked: Parties, tmp_path: Path
) -> None:
    clock = clocked.clock
    talk(clocked, "kept")
    before = logical_state(clocked.bank)
    calls = {
        "send": lambda: clocked.bank_conv.send("x"),
        "receive": lambda: clocked.bank.receive(clocked.customer_conv.send("y")),
        "sweep": clocked.bank.sweep,
        "bundle": clocked.bank.prekey_bundle,
        "hold": lambda: clocked.bank.place_hold(subject="s", reason="r"),
        "export": lambda: clocked.bank.export("s"),
        "erase": lambda: clocked.bank.erase(subject="s"),
    }
    # Negative, NaN, infinite, the year 10000 and the year 36812.
    for bad in (-1.0, float("nan"), float("inf"), float("-inf"), 253_402_300_800.0, 2.0**40):
        clock.now = bad
        for name, call in calls.items():
            with pytest.raises(UsageError, match="clock"):
                call()
            assert logical_state(clocked.bank) == before, (bad, name)
        with pytest.raises(UsageError, match="clock"):
            type(clocked.bank).open(tmp_path / "new.db", key=b"k" * 32, clock=clock)
    clock.now = START + MINUTE
    talk(clocked, "after")
    assert contents(clocked)[-4:] == ["kept", "re: kept", "after", "re: after"]


@pytest.mark.req("FLT-07")
def test_expiries_past_the_year_9999_stay_readable(clocked: Parties) -> None:
    """Regression: a clock late in the year 9999 (inside the range the client accepts) and a
    retention period reaching past it stored an expiry that no ``datetime`` holds: history,
    next_sweep_at and the receipt of a timer change raised a builtin ValueError ("year 10000 is
    out of range"), and the conversation's history could not be read again. An expiry past the
    year 9999 is kept as it is (no clock reaches it) and reads as that year's last millisecond."""
    clocked.clock.now = datetime(9999, 12, 20, tzinfo=UTC).timestamp()
    talk(clocked, "late")  # the bank's default: 30 days
    last = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert clocked.bank.next_sweep_at() is not None
    for message in clocked.bank_conv.history(2):
        assert message.expires_at is not None and message.expires_at <= last
    clocked.bank_conv.set_category("contract")  # 10 to 11 years: recomputed by the store
    assert all(m.expires_at is not None for m in clocked.bank_conv.history(2))
    envelope = clocked.bank_conv.set_disappearing(timedelta(days=30))
    clocked.customer.receive(envelope)
    assert clocked.customer_conv.history(1)[0].expires_at is not None
    clocked.bank_conv.set_subject("cust-9")
    exported = clocked.bank.export("cust-9")
    assert "9999-12-31T23:59:59." in json.dumps(exported)
    assert (cli_output.iso_ms(2**53) or "").startswith("9999-12-31T23:59:59.")
    assert cli_output.human_time(2**53) == "9999-12-31 23:59:59 UTC"


@pytest.mark.req("FLT-07")
def test_a_consent_given_late_in_the_year_9999_ends_with_it(clocked: Parties) -> None:
    """Regression: on a clock late in the year 9999 (accepted), a consent valid for a year
    raised a builtin ValueError: record_consent ("expires_at must be an integer of milliseconds
    in 0..") and answer_consent ("the consent would expire after the year 9999"). Its validity
    now ends with the year 9999 (sooner than asked: never longer than the subject agreed)."""
    clocked.clock.now = datetime(9999, 12, 20, tzinfo=UTC).timestamp()
    clocked.bank_conv.set_category("marketing")
    clocked.bank_conv.set_subject("cust-9")
    recorded = clocked.bank.record_consent(
        subject="cust-9",
        purpose="marketing",
        notice_version="2026-01",
        notice="offers",
        valid_for=timedelta(days=365),
    )
    assert recorded.expires_at == LAST_MS
    request = clocked.customer.receive(
        clocked.bank_conv.request_consent("marketing", notice="offers")
    ).message.content["request"]
    answer = clocked.customer_conv.answer_consent(str(request["request_id"]), give=True)
    clocked.bank.receive(answer)
    assert clocked.customer_conv.consent("marketing") == "given"
