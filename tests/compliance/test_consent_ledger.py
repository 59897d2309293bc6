"""The consent ledger: the entry hash (CON-10) and chain verification naming the first broken
entry (CON-11)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import pytest
from consent_support import DAY, NOW, given, make_request, subject_identity
from hypothesis import given as hypothesis_given
from hypothesis import strategies as st

from entrenous.compliance.consent import (
    GENESIS_HASH,
    LABEL_CONSENT_LEDGER,
    ConsentRecord,
    LedgerEntry,
    chain_entry,
    entry_hash,
    next_entry,
    verify_chain,
)
from entrenous.errors import ConsentLedgerBroken, StateError


@functools.cache
def records() -> tuple[ConsentRecord, ...]:
    """Ten signed records (gives and withdrawals), built once: signing is the slow part."""
    out: list[ConsentRecord] = []
    for i in range(5):
        record = given(make_request(purpose=f"purpose-{i}"), at=NOW + i)
        out += [record, record.withdrawal(subject_identity(), now_ms=NOW + DAY + i)]
    return tuple(out)


def chain(n: int) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    last = None
    for record in records()[:n]:
        last = next_entry(last, record)
        entries.append(last)
    return entries


def broken_at(entries: list[LedgerEntry], **kwargs: object) -> int:
    with pytest.raises(ConsentLedgerBroken) as info:
        verify_chain(entries, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, StateError)
    assert f"entry {info.value.seq}" in str(info.value)
    return info.value.seq


# --- CON-10: the entry hash ----------------------------------------------------------------------


@pytest.mark.req("CON-10")
def test_entries_are_hashed_as_documented() -> None:
    first, second = chain(2)
    assert first.seq == 1
    assert first.prev_hash == GENESIS_HASH == bytes(32)
    assert first.record_bytes == records()[0].to_bytes()
    assert LABEL_CONSENT_LEDGER == b"entrenous/v1 consent ledger"
    expected = hashlib.sha256(
        b"entrenous/v1 consent ledger" + (1).to_bytes(8, "big") + bytes(32) + first.record_bytes
    ).digest()
    assert first.hash == expected == entry_hash(1, GENESIS_HASH, first.record_bytes)
    assert second.seq == 2
    assert second.prev_hash == first.hash
    assert (
        second.hash
        == hashlib.sha256(
            LABEL_CONSENT_LEDGER + (2).to_bytes(8, "big") + first.hash + second.record_bytes
        ).digest()
    )
    assert chain_entry(GENESIS_HASH, 1, records()[0]) == first
    assert first.record() == records()[0]


@pytest.mark.req("CON-10")
def test_entry_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="seq"):
        entry_hash(0, GENESIS_HASH, b"")
    with pytest.raises(ValueError, match="seq"):
        entry_hash(2**63, GENESIS_HASH, b"")
    with pytest.raises(ValueError, match="prev_hash"):
        entry_hash(1, bytes(31), b"")
    with pytest.raises(TypeError):
        chain_entry(GENESIS_HASH, 1, records()[0].to_bytes())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LedgerEntry("1", GENESIS_HASH, b"", bytes(32))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LedgerEntry(1, GENESIS_HASH, "text", bytes(32))  # type: ignore[arg-type]


# --- CON-11: verification ------------------------------------------------------------------------


@pytest.mark.req("CON-11")
def test_an_intact_ledger_verifies() -> None:
    verify_chain([])
    for n in range(1, 11):
        entries = chain(n)
        verify_chain(entries)
        verify_chain(iter(entries))
        verify_chain(entries, checkpoint=(n, entries[-1].hash))


@pytest.mark.req("CON-11")
def test_an_edited_record_is_named() -> None:
    entries = chain(6)
    edited = dataclasses.replace(entries[2], record_bytes=records()[8].to_bytes())
    assert broken_at([*entries[:2], edited, *entries[3:]]) == 3


@pytest.mark.req("CON-11")
def test_an_edit_with_a_recomputed_hash_is_named_by_the_next_link() -> None:
    entries = chain(6)
    forged = chain_entry(entries[2].prev_hash, 3, records()[8])
    assert broken_at([*entries[:2], forged, *entries[3:]]) == 4
    # The last entry has no next link: only a checkpoint catches it.
    last = chain_entry(entries[4].hash, 6, records()[8])
    verify_chain([*entries[:5], last])
    assert broken_at([*entries[:5], last], checkpoint=(6, entries[5].hash)) == 6


@pytest.mark.req("CON-11")
def test_a_removed_row_is_named() -> None:
    entries = chain(6)
    assert broken_at(entries[:2] + entries[3:]) == 3
    assert broken_at(entries[1:]) == 1


@pytest.mark.req("CON-11")
def test_a_removed_tail_needs_the_checkpoint() -> None:
    entries = chain(6)
    verify_chain(entries[:4])
    assert broken_at(entries[:4], checkpoint=(6, entries[5].hash)) == 5
    assert broken_at([], checkpoint=(1, entries[0].hash)) == 1


@pytest.mark.req("CON-11")
def test_swapped_rows_are_named() -> None:
    entries = chain(6)
    swapped = [*entries[:1], entries[3], entries[2], entries[1], *entries[4:]]
    assert broken_at(swapped) == 2
    # The seq column swapped too (the rows read back in seq order): the links break.
    relabelled = [
        entries[0],
        dataclasses.replace(entries[2], seq=2),
        dataclasses.replace(entries[1], seq=3),
        *entries[3:],
    ]
    assert broken_at(relabelled) == 2


@pytest.mark.req("CON-11")
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("prev_hash", bytes(31), "link"),
        ("hash", bytes(33), "hash"),
        ("record_bytes", b"not json", "hash"),
    ],
)
def test_malformed_rows_are_named(field: str, value: bytes, reason: str) -> None:
    entries = chain(3)
    bad = dataclasses.replace(entries[1], **{field: value})
    with pytest.raises(ConsentLedgerBroken, match=reason) as info:
        verify_chain([entries[0], bad, entries[2]])
    assert info.value.seq == 2


@pytest.mark.req("CON-11")
def test_a_row_that_is_not_a_record_is_named_even_with_a_good_hash() -> None:
    entries = chain(2)
    junk = b'{"not":"a record"}'
    bad = LedgerEntry(2, entries[0].hash, junk, entry_hash(2, entries[0].hash, junk))
    with pytest.raises(ConsentLedgerBroken, match="not a well-formed record") as info:
        verify_chain([entries[0], bad])
    assert info.value.seq == 2


@pytest.mark.req("CON-11")
def test_a_record_with_a_bad_signature_is_named_even_with_a_good_hash() -> None:
    entries = chain(3)
    content = records()[2].to_content()
    content["at"] += 1  # signed over the old time
    forged = ConsentRecord.from_content(content)
    bad = chain_entry(entries[1].prev_hash, 2, forged)
    with pytest.raises(ConsentLedgerBroken, match="signature does not verify") as info:
        verify_chain([entries[0], bad])
    assert info.value.seq == 2
    # A record of the controller (unsigned) has no signature to check.
    web_form = ConsentRecord.recorded(
        state="given",
        controller="Bank",
        purpose="marketing",
        notice_version="1",
        notice_sha256=bytes(32),
        at_ms=NOW,
        subject="cust-1",
    )
    verify_chain([entries[0], next_entry(entries[0], web_form)])


@pytest.mark.req("CON-11")
def test_a_checkpoint_that_does_not_match_is_named() -> None:
    entries = chain(4)
    assert broken_at(entries, checkpoint=(2, bytes(32))) == 2


@pytest.mark.req("CON-11")
def test_verify_chain_takes_entries() -> None:
    with pytest.raises(TypeError):
        verify_chain([records()[0]])  # type: ignore[list-item]


@pytest.mark.req("CON-11")
@hypothesis_given(
    n=st.integers(2, 10),
    data=st.data(),
)
def test_verification_names_exactly_the_first_broken_entry(n: int, data: st.DataObject) -> None:
    entries = chain(n)
    kind = data.draw(st.sampled_from(["edit", "flip", "remove", "swap"]), label="kind")
    if kind == "edit":
        k = data.draw(st.integers(1, n), label="k")
        others = [r for r in records() if r.to_bytes() != entries[k - 1].record_bytes]
        other = data.draw(st.sampled_from(others), label="other")
        entries[k - 1] = dataclasses.replace(entries[k - 1], record_bytes=other.to_bytes())
        expected = k
    elif kind == "flip":
        k = data.draw(st.integers(1, n), label="k")
        field = data.draw(st.sampled_from(["prev_hash", "record_bytes", "hash"]), label="field")
        raw = bytearray(getattr(entries[k - 1], field))
        raw[data.draw(st.integers(0, len(raw) - 1), label="byte")] ^= data.draw(
            st.integers(1, 255), label="mask"
        )
        entries[k - 1] = dataclasses.replace(entries[k - 1], **{field: bytes(raw)})
        expected = k
    elif kind == "remove":
        k = data.draw(st.integers(1, n - 1), label="k")  # the last one: see the checkpoint test
        del entries[k - 1]
        expected = k
    else:
        i = data.draw(st.integers(1, n - 1), label="i")
        j = data.draw(st.integers(i + 1, n), label="j")
        entries[i - 1], entries[j - 1] = entries[j - 1], entries[i - 1]
        expected = i
    assert broken_at(entries) == expected


@pytest.mark.req("CON-14")
def test_ledger_entry_repr_shows_seq_and_hash_prefix_only() -> None:
    entry = chain(1)[0]
    assert repr(entry) == f"LedgerEntry(seq=1, hash={entry.hash[:4].hex()}…)"
    assert entry.record_bytes.decode()[:20] not in repr(entry)
