"""Envelopes: authentication of every byte, size limits, versions, strict parsing
(ENV-01..ENV-04, ENV-06).

Single-byte changes and truncations (ENV-05) are in test_mutations.py; padding (ENV-07,
ENV-08) in test_padding.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from protocol_support import (
    INI_CT,
    INI_EPHEMERAL,
    INI_IDENTITY,
    INI_KEM_CT,
    INI_KEM_ID,
    INI_OPK_ID,
    INI_SPK_ID,
    MSG_CT,
    MSG_KIND,
    MSG_N,
    MSG_PREV,
    MSG_RATCHET,
    MSG_SID,
    MSG_VERSION,
    established,
    forge_envelope,
    make_parties,
    pack,
    reencode,
    refused,
    reload,
    start,
    unpack,
)

from entrenous.errors import (
    AuthenticationError,
    EntrenousError,
    EnvelopeTooLarge,
    MalformedEnvelope,
    PlaintextTooLarge,
    UnsupportedVersion,
)
from entrenous.protocol import ParsedEnvelope, Session, parse_envelope
from entrenous.protocol import envelope as envelope_module
from entrenous.protocol.constants import MAX_ENVELOPE_SIZE, MAX_PLAINTEXT_SIZE
from entrenous.protocol.padding import pad


@pytest.fixture
def conversation() -> tuple[Session, Session, bytes, bytes]:
    """Alice and Bob past the handshake. ``initial`` is Alice's first (initial) envelope, held
    back (Bob keeps its skipped key); ``message`` is a message envelope not yet delivered."""
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    initial = a.encrypt(b"initial")
    b, _ = Session.respond(parties.bob, parties.pool, a.encrypt(b"first"), now=0)
    assert a.decrypt(b.encrypt(b"reply")) == b"reply"
    message = a.encrypt(b"message")
    return a, b, initial, message


# --- ENV-01 --------------------------------------------------------------------------------------


@pytest.mark.req("ENV-01", "HS-04")
def test_an_independent_encoder_reproduces_envelopes_byte_for_byte() -> None:
    """forge_envelope implements spec/envelope.md on its own: prefix as AD after the session AD,
    nonce n, the ciphertext object last. The library's envelopes match it exactly."""
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    for text in (b"", b"initial one", bytes(300)):
        expected = forge_envelope(reload(a), pad(text))
        assert a.encrypt(text) == expected
    b, _ = Session.respond(parties.bob, parties.pool, expected, now=0)
    b.encrypt(b"reply")  # Bob's DH step happens on send
    for text in (b"", b"message", bytes(5000)):
        expected = forge_envelope(reload(b), pad(text))
        assert b.encrypt(text) == expected
        assert a.decrypt(expected) == text


@pytest.mark.req("ENV-01")
def test_every_header_field_is_authenticated(
    conversation: tuple[Session, Session, bytes, bytes],
) -> None:
    _a, b, initial, message = conversation
    fields = unpack(message)
    other_key = unpack(initial)[INI_EPHEMERAL]
    changes: dict[str, dict[int, Any]] = {
        "ratchet key": {MSG_RATCHET: other_key},
        "previous length": {MSG_PREV: fields[MSG_PREV] + 1},
        "message number": {MSG_N: fields[MSG_N] + 1},
        "ciphertext": {MSG_CT: bytes([fields[MSG_CT][0] ^ 1]) + fields[MSG_CT][1:]},
        "tag": {MSG_CT: fields[MSG_CT][:-1] + bytes([fields[MSG_CT][-1] ^ 0x80])},
    }
    for name, change in changes.items():
        bad = reencode(message, change)
        error = refused(lambda e=bad: b.decrypt(e), b.to_bytes)
        assert isinstance(error, EntrenousError), name
    # The prefix is bound into the AEAD: the same ciphertext under another valid prefix fails.
    grafted = reencode(message, {MSG_PREV: fields[MSG_PREV] + 1, MSG_CT: fields[MSG_CT]})
    refused(lambda: b.decrypt(grafted), b.to_bytes, AuthenticationError)
    assert b.decrypt(message) == b"message"


@pytest.mark.req("ENV-01")
def test_message_and_initial_envelopes_have_the_documented_layout(
    conversation: tuple[Session, Session, bytes, bytes],
) -> None:
    a, _b, initial, message = conversation
    m = unpack(message)
    assert len(m) == 7
    assert (m[MSG_VERSION], m[MSG_KIND]) == (1, 2)
    assert m[MSG_SID] == a.session_id
    assert len(m[MSG_RATCHET]) == 32
    assert len(m[MSG_CT]) == 64 + 16
    i = unpack(initial)
    assert len(i) == 13
    assert (i[0], i[1]) == (1, 1)
    assert i[INI_IDENTITY] == a.our_identity.to_bytes()
    assert len(i[INI_EPHEMERAL]) == 32
    assert len(i[INI_KEM_CT]) == 1088
    assert all(type(i[k]) is int for k in (INI_SPK_ID, INI_OPK_ID, INI_KEM_ID))
    parsed = parse_envelope(message)
    assert isinstance(parsed, ParsedEnvelope)
    assert not parsed.is_initial
    assert parsed.session_id == a.session_id
    assert parsed.ciphertext == m[MSG_CT]
    assert parsed.prefix + pack(parsed.ciphertext) == message
    parsed_initial = parse_envelope(initial)
    assert parsed_initial.is_initial
    assert parsed_initial.initial is not None
    assert parsed_initial.initial.kem_ciphertext == i[INI_KEM_CT]
    assert parsed_initial.prefix + pack(parsed_initial.ciphertext) == initial


def test_session_accepts_a_parsed_envelope(
    conversation: tuple[Session, Session, bytes, bytes],
) -> None:
    _a, b, _initial, message = conversation
    assert b.decrypt(parse_envelope(message)) == b"message"


# --- ENV-02 --------------------------------------------------------------------------------------


@pytest.mark.req("ENV-02")
def test_oversized_envelope_is_refused_before_parsing(
    conversation: tuple[Session, Session, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, initial, message = conversation
    parties = make_parties()

    def must_not_parse(*args: object, **kwargs: object) -> list[Any]:
        raise AssertionError("an oversized envelope was parsed")

    monkeypatch.setattr(envelope_module.wire, "unpack_array", must_not_parse)
    for size in (MAX_ENVELOPE_SIZE + 1, 10 * MAX_ENVELOPE_SIZE):
        data = message + bytes(size - len(message))
        with pytest.raises(EnvelopeTooLarge) as info:
            parse_envelope(data)
        assert (info.value.limit, info.value.value) == (MAX_ENVELOPE_SIZE, size)
        refused(lambda d=data: b.decrypt(d), b.to_bytes, EnvelopeTooLarge)
        refused(lambda d=data: a.decrypt(d), a.to_bytes, EnvelopeTooLarge)
        oversized_initial = initial + bytes(size - len(initial))
        refused(
            lambda d=oversized_initial: Session.respond(parties.bob, parties.pool, d, now=0),
            parties.pool.to_bytes,
            EnvelopeTooLarge,
        )


@pytest.mark.req("ENV-02", "ENV-04")
def test_envelope_of_exactly_the_maximum_size_is_parsed() -> None:
    # Garbage of the maximum size is not "too large": it reaches the parser and is malformed.
    with pytest.raises(MalformedEnvelope):
        parse_envelope(bytes(MAX_ENVELOPE_SIZE))
    # A well-formed message envelope of exactly the maximum size parses.
    fields = unpack(established()[0].encrypt(b""))
    header = len(pack([*fields[:MSG_CT], b""])) - 2  # everything before the ciphertext object
    ciphertext = bytes(MAX_ENVELOPE_SIZE - header - 3)
    data = pack([*fields[:MSG_CT], ciphertext])
    assert len(data) == MAX_ENVELOPE_SIZE
    assert parse_envelope(data).ciphertext == ciphertext


# --- ENV-03 --------------------------------------------------------------------------------------


@pytest.mark.req("ENV-03")
@pytest.mark.parametrize("version", [0, 2, 3, 127, 255, 2**32 - 1])
def test_unknown_envelope_version_is_refused(
    conversation: tuple[Session, Session, bytes, bytes], version: int
) -> None:
    _a, b, initial, message = conversation
    parties = make_parties()
    for envelope in (message, initial):
        bad = reencode(envelope, {0: version})
        with pytest.raises(UnsupportedVersion) as info:
            parse_envelope(bad)
        assert info.value.version == version
        refused(lambda e=bad: b.decrypt(e), b.to_bytes, UnsupportedVersion)
    refused(
        lambda: Session.respond(parties.bob, parties.pool, reencode(initial, {0: version}), now=0),
        parties.pool.to_bytes,
        UnsupportedVersion,
    )


# --- ENV-04 --------------------------------------------------------------------------------------


def _message_cases(fields: list[Any]) -> dict[str, list[Any]]:
    sid, key, ct = fields[MSG_SID], fields[MSG_RATCHET], fields[MSG_CT]
    return {
        "version as bytes": [b"\x01", *fields[1:]],
        "version as nil": [None, *fields[1:]],
        "version as bool": [True, *fields[1:]],
        "kind 0": [1, 0, *fields[2:]],
        "kind 3": [1, 3, *fields[2:]],
        "kind 255": [1, 255, *fields[2:]],
        "kind as bool": [1, True, *fields[2:]],
        "kind 1 with message fields": [1, 1, *fields[2:]],
        "six fields": fields[:6],
        "eight fields": [*fields, b""],
        "one field": fields[:1],
        "no field": [],
        "session id 15 bytes": [1, 2, sid[:15], *fields[3:]],
        "session id 17 bytes": [1, 2, sid + b"\x00", *fields[3:]],
        "session id as int": [1, 2, 7, *fields[3:]],
        "ratchet key 31 bytes": [*fields[:3], key[:31], *fields[4:]],
        "ratchet key 33 bytes": [*fields[:3], key + b"\x00", *fields[4:]],
        "ratchet key nil": [*fields[:3], None, *fields[4:]],
        "previous length negative": [*fields[:4], -1, *fields[5:]],
        "previous length 2**32": [*fields[:4], 2**32, *fields[5:]],
        "previous length as bool": [*fields[:4], False, *fields[5:]],
        "previous length as bytes": [*fields[:4], b"\x00", *fields[5:]],
        "n negative": [*fields[:5], -1, ct],
        "n 2**32": [*fields[:5], 2**32, ct],
        "n as nil": [*fields[:5], None, ct],
        "ciphertext shorter than a tag": [*fields[:6], ct[:15]],
        "ciphertext empty": [*fields[:6], b""],
        "ciphertext as int": [*fields[:6], 0],
    }


def _initial_cases(fields: list[Any]) -> dict[str, list[Any]]:
    def with_(index: int, value: Any) -> list[Any]:
        changed = list(fields)
        changed[index] = value
        return changed

    return {
        "initial with twelve fields": fields[:12],
        "initial with fourteen fields": [*fields, b""],
        "kind 2 with initial fields": with_(1, 2),
        "identity 128 bytes": with_(INI_IDENTITY, fields[INI_IDENTITY][:128]),
        "identity nil": with_(INI_IDENTITY, None),
        "ephemeral 33 bytes": with_(INI_EPHEMERAL, fields[INI_EPHEMERAL] + b"\x00"),
        "signed prekey id negative": with_(INI_SPK_ID, -1),
        "signed prekey id nil": with_(INI_SPK_ID, None),
        "one-time prekey id as bytes": with_(INI_OPK_ID, b"\x01"),
        "one-time prekey id 2**32": with_(INI_OPK_ID, 2**32),
        "kem prekey id as bool": with_(INI_KEM_ID, True),
        "kem ciphertext 1087 bytes": with_(INI_KEM_CT, fields[INI_KEM_CT][:-1]),
        "kem ciphertext 1089 bytes": with_(INI_KEM_CT, fields[INI_KEM_CT] + b"\x00"),
        "ciphertext shorter than a tag": with_(INI_CT, fields[INI_CT][:15]),
    }


@pytest.mark.req("ENV-04")
def test_fields_of_wrong_type_size_or_count_and_unknown_kinds_are_malformed(
    conversation: tuple[Session, Session, bytes, bytes],
) -> None:
    _a, b, initial, message = conversation
    parties = make_parties()
    cases = {**_message_cases(unpack(message)), **_initial_cases(unpack(initial))}
    for name, fields in cases.items():
        data = pack(fields)
        with pytest.raises(MalformedEnvelope):
            parse_envelope(data)
        refused(lambda d=data: b.decrypt(d), b.to_bytes, MalformedEnvelope)
        refused(
            lambda d=data: Session.respond(parties.bob, parties.pool, d, now=0),
            parties.pool.to_bytes,
            MalformedEnvelope,
        )
        assert name


@pytest.mark.req("ENV-04")
def test_non_canonical_encodings_and_trailing_bytes_are_malformed(
    conversation: tuple[Session, Session, bytes, bytes],
) -> None:
    _a, b, initial, message = conversation
    fields = unpack(message)
    encoded = [pack(f) for f in fields]
    assert fields[MSG_N] < 128

    def assemble(parts: list[bytes], header: bytes = b"\x97") -> bytes:
        return header + b"".join(parts)

    assert assemble(encoded) == message

    def replace(index: int, form: bytes) -> bytes:
        parts = list(encoded)
        parts[index] = form
        return assemble(parts)

    ct = fields[MSG_CT]
    bad = {
        "uint8 version": replace(MSG_VERSION, b"\xcc\x01"),
        "uint16 kind": replace(MSG_KIND, b"\xcd\x00\x02"),
        "uint32 n": replace(MSG_N, b"\xce" + fields[MSG_N].to_bytes(4, "big")),
        "uint64 previous length": replace(MSG_PREV, b"\xcf" + fields[MSG_PREV].to_bytes(8, "big")),
        "bin16 session id": replace(MSG_SID, b"\xc5\x00\x10" + fields[MSG_SID]),
        "bin32 ratchet key": replace(MSG_RATCHET, b"\xc6\x00\x00\x00\x20" + fields[MSG_RATCHET]),
        "bin16 short ciphertext": replace(MSG_CT, b"\xc5" + len(ct).to_bytes(2, "big") + ct),
        "str session id": replace(MSG_SID, b"\xb0" + fields[MSG_SID]),
        "array16 header": assemble(encoded, b"\xdc\x00\x07"),
        "array32 header": assemble(encoded, b"\xdd\x00\x00\x00\x07"),
        "trailing zero": message + b"\x00",
        "trailing nil": message + b"\xc0",
        "trailing envelope": message + message,
        "initial with trailing byte": initial + b"\x00",
    }
    for name, data in bad.items():
        with pytest.raises(MalformedEnvelope):
            parse_envelope(data)
        refused(lambda d=data: b.decrypt(d), b.to_bytes, MalformedEnvelope)
        assert name


@pytest.mark.req("ENV-04")
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc0",
        b"\xc1",  # never used
        b"\x01",
        b"\x90",
        b"\x80",
        b"\x81\x01\x02",
        b"\xa5hello",
        b"\xcb" + bytes(8),
        b"\xd4\x01\x00",
        b"\x97\x91\x01" + bytes(6),
        b"\x92\x01\x81\x01\x02",
        b"\x9f" + bytes(15),  # fifteen fields
    ],
)
def test_input_that_is_not_a_flat_array_of_scalars_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        parse_envelope(data)


def test_parse_refuses_non_bytes(conversation: tuple[Session, Session, bytes, bytes]) -> None:
    _a, b, _initial, message = conversation
    with pytest.raises(TypeError):
        parse_envelope(bytearray(message))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        b.decrypt(memoryview(message))  # type: ignore[arg-type]


# --- ENV-06 --------------------------------------------------------------------------------------


@pytest.mark.req("ENV-06")
def test_largest_plaintext_is_accepted_even_in_an_initial_envelope() -> None:
    parties = make_parties()
    a = Session.initiate(parties.alice, parties.bundle)
    largest = bytes(range(256)) * (MAX_PLAINTEXT_SIZE // 256)
    assert len(largest) == MAX_PLAINTEXT_SIZE
    envelope = a.encrypt(largest)
    assert len(envelope) == 60727 <= MAX_ENVELOPE_SIZE
    b, plaintext = Session.respond(parties.bob, parties.pool, envelope, now=0)
    assert plaintext == largest
    reply = b.encrypt(largest)
    assert len(reply) <= MAX_ENVELOPE_SIZE
    assert a.decrypt(reply) == largest


@pytest.mark.req("ENV-06")
@pytest.mark.parametrize("excess", [1, 2, 10_000, MAX_ENVELOPE_SIZE])
def test_larger_plaintext_is_refused_and_changes_nothing(excess: int) -> None:
    for pending in (True, False):
        a, b = start(make_parties()) if pending else established()
        too_large = bytes(MAX_PLAINTEXT_SIZE + excess)
        error = refused(lambda t=too_large, s=a: s.encrypt(t), a.to_bytes, PlaintextTooLarge)
        assert isinstance(error, PlaintextTooLarge)
        assert (error.limit, error.value) == (MAX_PLAINTEXT_SIZE, MAX_PLAINTEXT_SIZE + excess)
        # The refused call consumed no message number.
        assert b.decrypt(a.encrypt(b"after")) == b"after"


def test_encrypt_refuses_non_bytes() -> None:
    a, _b = established()
    for bad in ("text", bytearray(b"x"), None):
        with pytest.raises(TypeError):
            a.encrypt(bad)  # type: ignore[arg-type]
