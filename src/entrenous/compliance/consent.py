"""Consent (GDPR Art. 7): requests, records signed by the data subject, the ledger, exports.

This module owns the consent data and its rules, and nothing else: it never stores, sends or
reads a clock. Time comes in as ``now_ms`` / ``at_ms`` (int milliseconds since the epoch, UTC)
and randomness from :func:`entrenous._primitives.rand.random_bytes` (whose private seam the
example generator pins). The client sends requests and records as control messages and keeps the
ledger rows in its store; this module says what they contain and whether they are valid.

The flow (spec/compliance.md, "Consent records"):

1. The controller builds a :class:`ConsentRequest` (purpose, notice text and its SHA-256) and sends
   ``request.to_content()`` inside the conversation.
2. The subject's client shows the notice and answers with :meth:`ConsentRecord.answer`: a record
   (given or refused) signed by the subject's identity key. Withdrawal is one call as well
   (:meth:`ConsentRecord.withdrawal`), a new signed record for the same purpose.
3. The controller checks the answer with :meth:`ConsentRecord.verify` against the subject's
   identity and the request it sent, and appends it to the hash-chained ledger
   (:func:`chain_entry`); :func:`verify_chain` checks the ledger offline and names the first
   broken entry.
4. Before processing for a purpose that needs consent, :func:`require_consent` raises
   :class:`~entrenous.errors.ConsentRequired` unless a valid, unexpired, unwithdrawn record exists.

Records export to ISO/IEC TS 27560 fields (:meth:`ConsentRecord.to_iso27560`) and to a Kantara
Consent Receipt v1.1 (:meth:`ConsentRecord.to_kantara_receipt`).

Errors from the peer's input are :class:`~entrenous.errors.InvalidConsentRequest` and
:class:`~entrenous.errors.InvalidConsentRecord` (a :class:`~entrenous.errors.PeerError`); a broken
ledger is :class:`~entrenous.errors.ConsentLedgerBroken`. Their messages name the field or the
check, never a value: subject ids, names and notice texts are personal data or may contain it.
Programmer mistakes (a wrong type, a malformed purpose name passed by the application) stay
``TypeError`` / ``ValueError``; a notice beyond the size limit is
:class:`~entrenous.errors.LimitExceeded`. Reprs show ids and states only.

This module imports errors, the primitives and the protocol's identities; never the store, the
client, the CLI or the demo.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from entrenous._primitives.kdf import constant_time_equal, sha256
from entrenous._primitives.rand import random_bytes
from entrenous.errors import (
    AuthenticationError,
    ConsentLedgerBroken,
    ConsentRequired,
    ConsentSignatureInvalid,
    EntrenousError,
    InvalidConsentRecord,
    InvalidConsentRequest,
    LimitExceeded,
)
from entrenous.protocol.identity import Identity, PublicIdentity

__all__ = [
    "GENESIS_HASH",
    "LABEL_CONSENT_LEDGER",
    "LABEL_CONSENT_RECORD",
    "PURPOSE_PATTERN",
    "ConsentRecord",
    "ConsentRequest",
    "ConsentState",
    "ControllerInfo",
    "LedgerEntry",
    "ReceiptController",
    "ReceiptPurpose",
    "canonical_json",
    "chain_entry",
    "consent_state",
    "current_consent",
    "entry_hash",
    "next_entry",
    "require_consent",
    "verify_chain",
]

# --- formats and labels --------------------------------------------------------------------------

#: Version of the request and record formats (the ``version`` field of both).
CONSENT_FORMAT_VERSION: Final = 1
REQUEST_TYPE: Final = "entrenous/consent-request"
RECORD_TYPE: Final = "entrenous/consent-record"
#: Signature context of a consent record: the subject signs ``LABEL_CONSENT_RECORD || body``.
LABEL_CONSENT_RECORD: Final = b"entrenous/v1 consent record"
#: Hash context of a ledger entry (see :func:`entry_hash`).
LABEL_CONSENT_LEDGER: Final = b"entrenous/v1 consent ledger"
#: The ``prev_hash`` of the first ledger entry.
GENESIS_HASH: Final = bytes(32)

LegalBasis = Literal["consent", "explicit consent"]
Method = Literal["in-band signed", "recorded by controller"]
RecordState = Literal["given", "refused", "withdrawn"]
#: What :func:`consent_state` and :meth:`ConsentRecord.state_at` answer.
ConsentState = Literal["given", "refused", "withdrawn", "expired", "none"]

#: GDPR Art. 6(1)(a) consent, and Art. 9(2)(a) explicit consent (special categories of data).
LEGAL_BASES: Final[tuple[LegalBasis, ...]] = ("consent", "explicit consent")
METHOD_SIGNED: Final[Method] = "in-band signed"
METHOD_RECORDED: Final[Method] = "recorded by controller"
METHODS: Final[tuple[Method, ...]] = (METHOD_SIGNED, METHOD_RECORDED)
STATES: Final[tuple[RecordState, ...]] = ("given", "refused", "withdrawn")

#: How a subject withdraws (27560's ``withdrawal_method``): as easily as consent was given.
WITHDRAWAL_METHOD: Final = (
    "a withdrawal record signed by the subject in the conversation with the controller"
)

# --- limits (each with its reason) -----------------------------------------------------------

#: Largest notice text, in UTF-8 bytes: a long privacy notice fits; the request (with JSON escapes)
#: must still fit in one message payload.
MAX_NOTICE_BYTES: Final = 16384
#: Largest request as canonical JSON: one message payload holds 32,768 bytes, and the client wraps
#: the request in a control message, so 2 KiB are left for the wrapper.
MAX_REQUEST_SIZE: Final = 30720
#: Largest record as canonical JSON, checked before a stored or received record is parsed. The
#: largest valid record (every text field at its limit, all escaped) is under 2,500 bytes.
MAX_RECORD_SIZE: Final = 4096
#: Largest controller name and subject id, in UTF-8 bytes: names and ids, not documents.
MAX_CONTROLLER_BYTES: Final = 256
MAX_SUBJECT_BYTES: Final = 256
#: Longest validity a request may ask for: 100 years (of 365.25 days), far beyond any sane consent.
MAX_VALIDITY_MS: Final = 36525 * 24 * 3600 * 1000
#: The latest time a record may carry: the end of year 9999 (as the message payload's limit).
MAX_TIME_MS: Final = 253402300799999
#: Clock difference tolerated between the two ends: a record may be dated this much before the
#: request it answers, or after the verifier's ``now_ms``.
MAX_CLOCK_SKEW_MS: Final = 5 * 60 * 1000

#: A purpose is an identifier the policy file names ("marketing", "advice.v2"): lowercase ASCII
#: letters and digits, with ``.``, ``_`` or ``-`` inside, at most 64 characters. It appears in
#: error messages, so it must never be free text.
PURPOSE_PATTERN: Final = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?", re.ASCII)
#: A notice version ("2025-01", "v3.1"): ASCII letters, digits and ``._:+-``, at most 64.
NOTICE_VERSION_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}", re.ASCII)
_HEX = frozenset("0123456789abcdef")
_NOTICE_CONTROLS = frozenset("\t\n\r")

_REQUEST_KEYS: Final = frozenset(
    {
        "type",
        "version",
        "request_id",
        "controller",
        "purpose",
        "legal_basis",
        "notice_version",
        "notice_text",
        "notice_sha256",
        "requested_at",
        "valid_for_ms",
        "subject",
    }
)
_RECORD_KEYS: Final = frozenset(
    {
        "type",
        "version",
        "record_id",
        "request_id",
        "subject",
        "subject_identity",
        "controller",
        "purpose",
        "legal_basis",
        "notice_version",
        "notice_sha256",
        "method",
        "state",
        "at",
        "expires_at",
        "signature",
    }
)


def canonical_json(value: Any) -> bytes:
    """The canonical JSON of ``value``: sorted keys, no spaces, UTF-8, no NaN (what is signed)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


# --- field checks ------------------------------------------------------------------------------
# Each check raises _Invalid with a message naming the field, never its value. The constructors
# turn it into ValueError (or LimitExceeded for a size limit): the caller built a bad value. The
# parsers turn it into InvalidConsentRequest / InvalidConsentRecord: the peer sent it.


class _Invalid(Exception):
    def __init__(self, message: str, limit: tuple[str, int, int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.limit = limit

    def local(self) -> Exception:
        if self.limit is not None:
            return LimitExceeded(*self.limit)
        return ValueError(self.message)


def _text(value: object, name: str, max_bytes: int, *, notice: bool = False) -> str:
    if type(value) is not str:
        raise _Invalid(f"{name} must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        size = -1  # raised below: the UnicodeEncodeError holds the peer's whole text (LEAK-03)
    if size < 0:
        raise _Invalid(f"{name} is not valid Unicode text")
    if size > max_bytes:
        raise _Invalid(
            f"{name}: {size} bytes exceed the limit of {max_bytes}",
            (f"consent {name} in bytes", max_bytes, size),
        )
    if not value.strip():
        raise _Invalid(f"{name} must not be empty")
    allowed = _NOTICE_CONTROLS if notice else frozenset()
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        raise _Invalid(f"{name} must not contain control characters")
    return value


def _optional_text(value: object, name: str, max_bytes: int) -> str | None:
    return None if value is None else _text(value, name, max_bytes)


def _pattern(value: object, name: str, pattern: re.Pattern[str]) -> str:
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise _Invalid(f"{name} must match {pattern.pattern}")
    return value


def _time(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_TIME_MS:
        raise _Invalid(f"{name} must be an integer of milliseconds in 0..{MAX_TIME_MS}")
    return value


def _optional_time(value: object, name: str) -> int | None:
    return None if value is None else _time(value, name)


def _raw(value: object, name: str, size: int) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise _Invalid(f"{name} must be {size} bytes")
    return value


def _choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if type(value) is not str or value not in choices:
        raise _Invalid(f"{name} must be one of {', '.join(choices)}")
    return value


def _hex(value: object, name: str, size: int) -> bytes:
    if type(value) is not str or len(value) != 2 * size or not set(value) <= _HEX:
        raise _Invalid(f"{name} must be {2 * size} lowercase hex digits")
    return bytes.fromhex(value)


def _optional_hex(value: object, name: str, size: int) -> bytes | None:
    return None if value is None else _hex(value, name, size)


def _check_keys(content: object, keys: frozenset[str], kind: str, what: str) -> Mapping[str, Any]:
    if not isinstance(content, Mapping):
        raise _Invalid(f"a {what} must be a JSON object")
    present = set(content)
    if not all(type(k) is str for k in present):
        raise _Invalid(f"a {what} has a non-string key")
    # Type and version first: a later version may have other fields, and should say so.
    if content.get("type") != kind:
        raise _Invalid(f"a {what} must have type {kind!r}")
    version = content.get("version")
    if type(version) is not int or version != CONSENT_FORMAT_VERSION:
        shown = version if type(version) is int and 0 <= version < 2**32 else "?"
        raise _Invalid(f"unsupported {what} version {shown}")
    if present != keys:
        missing, extra = sorted(keys - present), sorted(present - keys)
        # Field names of the format only: an unknown key is the peer's text, so it is counted.
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"{len(extra)} unknown field(s)"] if extra else []
        raise _Invalid(f"a {what} has the wrong fields: {'; '.join(parts)}")
    return content


def _purpose_arg(purpose: object) -> str:
    """Check a purpose the application passes in (ValueError: it is the caller's mistake)."""
    try:
        return _pattern(purpose, "purpose", PURPOSE_PATTERN)
    except _Invalid as exc:
        raise exc.local() from None


def _iso(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds (``...T12:00:00.000Z``)."""
    stamp = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> bytes:
    """16 random bytes with the RFC 9562 version-4 bits set, so the id is also a valid UUIDv4."""
    raw = bytearray(random_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


# --- the request ---------------------------------------------------------------------------------


def _check_request(
    *,
    request_id: object,
    controller: object,
    purpose: object,
    legal_basis: object,
    notice_version: object,
    notice_text: object,
    requested_at: object,
    valid_for_ms: object,
    subject: object,
) -> None:
    _raw(request_id, "request_id", 16)
    _text(controller, "controller", MAX_CONTROLLER_BYTES)
    _pattern(purpose, "purpose", PURPOSE_PATTERN)
    _choice(legal_basis, "legal_basis", LEGAL_BASES)
    _pattern(notice_version, "notice_version", NOTICE_VERSION_PATTERN)
    _text(notice_text, "notice_text", MAX_NOTICE_BYTES, notice=True)
    _time(requested_at, "requested_at")
    if valid_for_ms is not None and (
        type(valid_for_ms) is not int or not 1 <= valid_for_ms <= MAX_VALIDITY_MS
    ):
        raise _Invalid(f"valid_for_ms must be null or an integer in 1..{MAX_VALIDITY_MS}")
    _optional_text(subject, "subject", MAX_SUBJECT_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConsentRequest:
    """A controller's request for consent to one purpose, with the notice the subject will see.

    It travels inside the conversation as a control message (:meth:`to_content`). The notice's
    SHA-256 is computed from the text, so a record that quotes it proves which text was shown.
    ``subject`` is the controller's own id for the data subject (optional); the answer repeats it,
    so the signed record binds the subject's identity key to that id. Build one with
    :meth:`create`; its repr shows the request id only.
    """

    request_id: bytes
    controller: str
    purpose: str
    notice_version: str
    notice_text: str
    requested_at: int
    valid_for_ms: int | None = None
    subject: str | None = None
    legal_basis: LegalBasis = "consent"
    notice_sha256: bytes = field(init=False)

    def __post_init__(self) -> None:
        try:
            _check_request(
                request_id=self.request_id,
                controller=self.controller,
                purpose=self.purpose,
                legal_basis=self.legal_basis,
                notice_version=self.notice_version,
                notice_text=self.notice_text,
                requested_at=self.requested_at,
                valid_for_ms=self.valid_for_ms,
                subject=self.subject,
            )
        except _Invalid as exc:
            raise exc.local() from None
        object.__setattr__(self, "notice_sha256", sha256(self.notice_text.encode("utf-8")))
        size = len(canonical_json(self.to_content()))
        if size > MAX_REQUEST_SIZE:
            raise LimitExceeded("consent request size in bytes", MAX_REQUEST_SIZE, size)

    @classmethod
    def create(
        cls,
        *,
        controller: str,
        purpose: str,
        notice_version: str,
        notice_text: str,
        now_ms: int,
        valid_for_ms: int | None = None,
        subject: str | None = None,
        legal_basis: LegalBasis = "consent",
    ) -> ConsentRequest:
        """A new request with a fresh random id, made at ``now_ms``."""
        return cls(
            request_id=_new_id(),
            controller=controller,
            purpose=purpose,
            notice_version=notice_version,
            notice_text=notice_text,
            requested_at=now_ms,
            valid_for_ms=valid_for_ms,
            subject=subject,
            legal_basis=legal_basis,
        )

    def to_content(self) -> dict[str, Any]:
        """The request as a JSON-compatible mapping (the payload of the control message)."""
        return {
            "type": REQUEST_TYPE,
            "version": CONSENT_FORMAT_VERSION,
            "request_id": self.request_id.hex(),
            "controller": self.controller,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "notice_version": self.notice_version,
            "notice_text": self.notice_text,
            "notice_sha256": self.notice_sha256.hex(),
            "requested_at": self.requested_at,
            "valid_for_ms": self.valid_for_ms,
            "subject": self.subject,
        }

    @classmethod
    def from_content(cls, content: object) -> ConsentRequest:
        """Parse a request received from the peer; :class:`InvalidConsentRequest` if unacceptable.

        Every field must be present with its exact type (no extra fields, no floats for times,
        lowercase hex), within its limit, and ``notice_sha256`` must be the notice's hash.
        """
        try:
            data = _check_keys(content, _REQUEST_KEYS, REQUEST_TYPE, "consent request")
            fields: dict[str, Any] = {
                "request_id": _hex(data["request_id"], "request_id", 16),
                "controller": data["controller"],
                "purpose": data["purpose"],
                "legal_basis": data["legal_basis"],
                "notice_version": data["notice_version"],
                "notice_text": data["notice_text"],
                "requested_at": data["requested_at"],
                "valid_for_ms": data["valid_for_ms"],
                "subject": data["subject"],
            }
            _check_request(**fields)
            claimed = _hex(data["notice_sha256"], "notice_sha256", 32)
        except _Invalid as exc:
            raise InvalidConsentRequest(f"consent request: {exc.message}") from None
        try:
            request = cls(**fields)
        except LimitExceeded as exc:
            raise InvalidConsentRequest(f"consent request: {exc}") from None
        if not constant_time_equal(claimed, request.notice_sha256):
            raise InvalidConsentRequest("consent request: notice_sha256 is not the notice's hash")
        return request

    def __repr__(self) -> str:
        return f"ConsentRequest(request_id={self.request_id.hex()})"


# --- the record ----------------------------------------------------------------------------------


def _check_record(
    *,
    record_id: object,
    request_id: object,
    subject: object,
    subject_identity: object,
    controller: object,
    purpose: object,
    legal_basis: object,
    notice_version: object,
    notice_sha256: object,
    method: object,
    state: object,
    at: object,
    expires_at: object,
    signature: object,
) -> None:
    _raw(record_id, "record_id", 16)
    if request_id is not None:
        _raw(request_id, "request_id", 16)
    _optional_text(subject, "subject", MAX_SUBJECT_BYTES)
    if subject_identity is not None and not isinstance(subject_identity, PublicIdentity):
        raise _Invalid("subject_identity must be a PublicIdentity")
    _text(controller, "controller", MAX_CONTROLLER_BYTES)
    _pattern(purpose, "purpose", PURPOSE_PATTERN)
    _choice(legal_basis, "legal_basis", LEGAL_BASES)
    _pattern(notice_version, "notice_version", NOTICE_VERSION_PATTERN)
    _raw(notice_sha256, "notice_sha256", 32)
    _choice(method, "method", METHODS)
    _choice(state, "state", STATES)
    at_ms = _time(at, "at")
    expires = _optional_time(expires_at, "expires_at")
    if expires is not None:
        if state != "given":
            raise _Invalid("expires_at must be null unless the state is given")
        if expires <= at_ms:
            raise _Invalid("expires_at must be later than at")
    if signature is not None:
        _raw(signature, "signature", 64)
    if method == METHOD_SIGNED:
        if subject_identity is None or signature is None:
            raise _Invalid("an in-band signed record needs subject_identity and signature")
    else:
        if signature is not None:
            raise _Invalid("a record recorded by the controller carries no signature")
        if subject is None and subject_identity is None:
            raise _Invalid("a record needs a subject or a subject_identity")


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConsentRecord:
    """One consent event for one subject and purpose: given, refused or withdrawn.

    ``method`` is ``"in-band signed"`` for a record the subject's client signed with the subject's
    identity key (build with :meth:`answer`, :meth:`withdrawal` or :meth:`sign`; check with
    :meth:`verify`), or ``"recorded by controller"`` for one the controller records from another
    channel such as a web form (:meth:`recorded`), which carries no signature. ``at`` is the time
    of the event on the recording side's clock; ``expires_at`` (given records only) ends the
    consent. "Expired" is not stored: :meth:`state_at` computes it.

    Values are checked when a record is built (``ValueError`` for a bad value). Its repr shows the
    record id, the request id and the state only.
    """

    record_id: bytes
    request_id: bytes | None
    subject: str | None
    subject_identity: PublicIdentity | None
    controller: str
    purpose: str
    legal_basis: LegalBasis
    notice_version: str
    notice_sha256: bytes
    method: Method
    state: RecordState
    at: int
    expires_at: int | None
    signature: bytes | None

    def __post_init__(self) -> None:
        try:
            _check_record(**self._fields())
        except _Invalid as exc:
            raise exc.local() from None

    def _fields(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "request_id": self.request_id,
            "subject": self.subject,
            "subject_identity": self.subject_identity,
            "controller": self.controller,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "notice_version": self.notice_version,
            "notice_sha256": self.notice_sha256,
            "method": self.method,
            "state": self.state,
            "at": self.at,
            "expires_at": self.expires_at,
            "signature": self.signature,
        }

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def sign(
        cls,
        identity: Identity,
        *,
        state: RecordState,
        controller: str,
        purpose: str,
        notice_version: str,
        notice_sha256: bytes,
        at_ms: int,
        subject: str | None = None,
        request_id: bytes | None = None,
        expires_at: int | None = None,
        legal_basis: LegalBasis = "consent",
    ) -> ConsentRecord:
        """A new record signed by the subject's ``identity`` (method ``"in-band signed"``).

        Most callers use :meth:`answer` or :meth:`withdrawal`, which fill the fields from the
        request or the earlier record.
        """
        if not isinstance(identity, Identity):
            raise TypeError("a consent record is signed with an Identity")
        fields: dict[str, Any] = {
            "record_id": _new_id(),
            "request_id": request_id,
            "subject": subject,
            "subject_identity": identity.public,
            "controller": controller,
            "purpose": purpose,
            "legal_basis": legal_basis,
            "notice_version": notice_version,
            "notice_sha256": notice_sha256,
            "method": METHOD_SIGNED,
            "state": state,
            "at": at_ms,
            "expires_at": expires_at,
            "signature": bytes(64),  # placeholder for the checks; replaced below
        }
        try:
            _check_record(**fields)
        except _Invalid as exc:
            raise exc.local() from None
        fields["signature"] = identity._sign(LABEL_CONSENT_RECORD + _signed_body(fields))
        return cls(**fields)

    @classmethod
    def answer(
        cls, identity: Identity, request: ConsentRequest, *, give: bool, now_ms: int
    ) -> ConsentRecord:
        """The subject's signed answer to ``request``: given (``give=True``) or refused.

        A given answer to a request with ``valid_for_ms`` expires that long after ``now_ms``, or
        at the end of the year 9999 if that comes first (sooner than asked, never longer).
        """
        if not isinstance(request, ConsentRequest):
            raise TypeError("answer() needs the ConsentRequest being answered")
        expires_at = None
        if give and request.valid_for_ms is not None:
            expires_at = min(now_ms + request.valid_for_ms, MAX_TIME_MS)
        return cls.sign(
            identity,
            state="given" if give else "refused",
            controller=request.controller,
            purpose=request.purpose,
            notice_version=request.notice_version,
            notice_sha256=request.notice_sha256,
            at_ms=now_ms,
            subject=request.subject,
            request_id=request.request_id,
            expires_at=expires_at,
            legal_basis=request.legal_basis,
        )

    def withdrawal(self, identity: Identity, *, now_ms: int) -> ConsentRecord:
        """A signed record withdrawing this given consent (same purpose, controller and notice).

        As easy as giving (Art. 7(3)): one call, one record. ``identity`` is the subject's, who
        may withdraw a consent the controller recorded through another channel as well.
        """
        if self.state != "given":
            raise ValueError("only a given consent can be withdrawn")
        return ConsentRecord.sign(
            identity,
            state="withdrawn",
            controller=self.controller,
            purpose=self.purpose,
            notice_version=self.notice_version,
            notice_sha256=self.notice_sha256,
            at_ms=now_ms,
            subject=self.subject,
            request_id=self.request_id,
            legal_basis=self.legal_basis,
        )

    @classmethod
    def recorded(
        cls,
        *,
        state: RecordState,
        controller: str,
        purpose: str,
        notice_version: str,
        notice_sha256: bytes,
        at_ms: int,
        subject: str | None = None,
        subject_identity: PublicIdentity | None = None,
        request_id: bytes | None = None,
        expires_at: int | None = None,
        legal_basis: LegalBasis = "consent",
    ) -> ConsentRecord:
        """A record the controller makes of consent collected elsewhere (a web form, paper).

        Unsigned (method ``"recorded by controller"``): its evidence is the controller's own
        ledger and audit trail, not the subject's signature.
        """
        return cls(
            record_id=_new_id(),
            request_id=request_id,
            subject=subject,
            subject_identity=subject_identity,
            controller=controller,
            purpose=purpose,
            legal_basis=legal_basis,
            notice_version=notice_version,
            notice_sha256=notice_sha256,
            method=METHOD_RECORDED,
            state=state,
            at=at_ms,
            expires_at=expires_at,
            signature=None,
        )

    # -- encoding ------------------------------------------------------------------------------

    def to_content(self) -> dict[str, Any]:
        """The record as a JSON-compatible mapping (for the control message and the ledger)."""
        content = _body(self._fields())
        content["signature"] = None if self.signature is None else self.signature.hex()
        return content

    def signed_bytes(self) -> bytes:
        """What the signature covers, after :data:`LABEL_CONSENT_RECORD`: the canonical JSON of
        :meth:`to_content` without its ``signature`` field."""
        return _signed_body(self._fields())

    def to_bytes(self) -> bytes:
        """The canonical JSON of :meth:`to_content`: the bytes a ledger entry stores and hashes."""
        return canonical_json(self.to_content())

    @classmethod
    def from_content(cls, content: object) -> ConsentRecord:
        """Parse a record received from the peer or read back from the ledger.

        :class:`InvalidConsentRecord` for anything unacceptable: missing, extra or mistyped
        fields, uppercase hex, an invalid public identity, broken invariants (a signed record
        without signature, an expiry on a refusal). The signature is not checked here: call
        :meth:`verify`.
        """
        try:
            data = _check_keys(content, _RECORD_KEYS, RECORD_TYPE, "consent record")
            identity_bytes = _optional_hex(
                data["subject_identity"], "subject_identity", PublicIdentity.SIZE
            )
            fields: dict[str, Any] = {
                "record_id": _hex(data["record_id"], "record_id", 16),
                "request_id": _optional_hex(data["request_id"], "request_id", 16),
                "subject": data["subject"],
                "subject_identity": None,
                "controller": data["controller"],
                "purpose": data["purpose"],
                "legal_basis": data["legal_basis"],
                "notice_version": data["notice_version"],
                "notice_sha256": _hex(data["notice_sha256"], "notice_sha256", 32),
                "method": data["method"],
                "state": data["state"],
                "at": data["at"],
                "expires_at": data["expires_at"],
                "signature": _optional_hex(data["signature"], "signature", 64),
            }
            if identity_bytes is not None:
                try:
                    fields["subject_identity"] = PublicIdentity.from_bytes(identity_bytes)
                except EntrenousError:
                    raise _Invalid("subject_identity is not a valid public identity") from None
            _check_record(**fields)
        except _Invalid as exc:
            raise InvalidConsentRecord(f"consent record: {exc.message}") from None
        return cls(**fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsentRecord:
        """Parse :meth:`to_bytes` output strictly: size first, then JSON, then canonical form."""
        if not isinstance(data, bytes):
            raise TypeError("a consent record must be bytes")
        if len(data) > MAX_RECORD_SIZE:
            raise InvalidConsentRecord(
                f"consent record: {len(data)} bytes exceed the limit of {MAX_RECORD_SIZE}"
            )
        refused = False
        try:
            content = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=_no_duplicates,
                parse_constant=_no_constant,
            )
        except (ValueError, RecursionError):
            refused = True  # raised below: a JSONDecodeError holds the whole record
        if refused:
            raise InvalidConsentRecord("consent record: not well-formed JSON")
        record = cls.from_content(content)
        if record.to_bytes() != data:
            raise InvalidConsentRecord("consent record: not in canonical form")
        return record

    # -- checking ------------------------------------------------------------------------------

    def verify(
        self,
        expected_identity: PublicIdentity,
        request: ConsentRequest | None = None,
        *,
        now_ms: int | None = None,
    ) -> None:
        """Check that the subject ``expected_identity`` signed this record, and what it answers.

        Raises :class:`InvalidConsentRecord` naming the failed check: the record is not signed
        (recorded by the controller), names another identity, does not answer ``request`` (a
        different request id, purpose, controller, legal basis, notice version, notice hash or
        subject), is dated before the request or after ``now_ms`` (each beyond
        :data:`MAX_CLOCK_SKEW_MS`), or expires later than the request allows. A bad signature
        raises :class:`ConsentSignatureInvalid` (an :class:`InvalidConsentRecord` that is also the
        opaque :class:`AuthenticationError`).

        With ``request=None`` only the signature and the identity are checked: re-verifying a
        stored record. A controller accepting an answer passes the request it sent.
        """
        if not isinstance(expected_identity, PublicIdentity):
            raise TypeError("verify() needs the subject's PublicIdentity")
        if self.method != METHOD_SIGNED or self.signature is None:
            raise InvalidConsentRecord("consent record is not signed by its subject")
        if self.subject_identity is None or self.subject_identity != expected_identity:
            raise InvalidConsentRecord("consent record names another subject identity")
        try:
            expected_identity.verify_key.verify(
                self.signature, LABEL_CONSENT_RECORD + self.signed_bytes()
            )
        except AuthenticationError:
            raise ConsentSignatureInvalid() from None
        if request is not None:
            self._check_answers(request)
        if now_ms is not None and self.at > now_ms + MAX_CLOCK_SKEW_MS:
            raise InvalidConsentRecord("consent record is dated in the future")

    def _check_answers(self, request: ConsentRequest) -> None:
        if not isinstance(request, ConsentRequest):
            raise TypeError("request must be a ConsentRequest")
        pairs: list[tuple[str, bool]] = [
            (
                "request_id",
                self.request_id is not None
                and constant_time_equal(self.request_id, request.request_id),
            ),
            ("controller", self.controller == request.controller),
            ("purpose", self.purpose == request.purpose),
            ("legal_basis", self.legal_basis == request.legal_basis),
            ("notice_version", self.notice_version == request.notice_version),
            ("notice_sha256", constant_time_equal(self.notice_sha256, request.notice_sha256)),
            ("subject", self.subject == request.subject),
        ]
        for name, same in pairs:
            if not same:
                raise InvalidConsentRecord(f"consent record does not answer the request: {name}")
        if self.at < request.requested_at - MAX_CLOCK_SKEW_MS:
            raise InvalidConsentRecord("consent record is dated before the request")
        limit = request.valid_for_ms
        if (
            self.state == "given"
            and limit is not None
            and (self.expires_at is None or self.expires_at - self.at > limit)
        ):
            raise InvalidConsentRecord("consent record expires later than the request allows")

    def state_at(self, now_ms: int) -> ConsentState:
        """The record's state at ``now_ms``: its own, or ``"expired"`` once a given one lapsed."""
        if self.state == "given" and self.expires_at is not None and now_ms >= self.expires_at:
            return "expired"
        return self.state

    # -- exports -------------------------------------------------------------------------------

    def principal_id(self) -> str:
        """The data subject's id for exports: ``subject``, or ``entrenous-identity:<hex>`` (the
        Ed25519 key of the subject's identity) when the record has no app subject id."""
        if self.subject is not None:
            return self.subject
        assert self.subject_identity is not None  # noqa: S101 - guaranteed by _check_record
        return "entrenous-identity:" + self.subject_identity.verify_key.to_bytes().hex()

    def to_iso27560(self, *, now_ms: int | None = None) -> dict[str, Any]:
        """The record's ISO/IEC TS 27560:2023 fields (spec/compliance.md has the mapping table).

        Keys are 27560's field names. Fields 27560 wants that a record does not hold (PII types,
        storage locations, retention, recipients, jurisdiction, language) come from the
        controller's records of processing and are left to the caller to add. With ``now_ms``,
        ``event_state`` is the state at that time (``"expired"`` included).
        """
        event: dict[str, Any] = {
            "event_time": _iso(self.at),
            "validity_duration": None
            if self.expires_at is None
            else _iso_duration(self.expires_at - self.at),
            "entity_id": self.principal_id()
            if self.method == METHOD_SIGNED
            else f"controller:{self.controller}",
            "event_type": "explicit" if self.method == METHOD_SIGNED else "expressed",
            "event_state": self.state if now_ms is None else self.state_at(now_ms),
        }
        return {
            "schema_version": "entrenous-consent-record-v1 (ISO/IEC TS 27560:2023)",
            "record_id": str(uuid.UUID(bytes=self.record_id)),
            "pii_principal_id": self.principal_id(),
            "privacy_notice": {
                "version": self.notice_version,
                "sha256": self.notice_sha256.hex(),
            },
            "purposes": [{"purpose": self.purpose, "lawful_basis": self.legal_basis}],
            "pii_controllers": [{"party_name": self.controller, "party_role": "controller"}],
            "collection_method": self.method,
            "withdrawal_method": WITHDRAWAL_METHOD,
            "events": [event],
            "x_entrenous": {
                "request_id": None if self.request_id is None else self.request_id.hex(),
                "subject_identity": None
                if self.subject_identity is None
                else self.subject_identity.to_bytes().hex(),
                "signature": None if self.signature is None else self.signature.hex(),
                "expires_at": None if self.expires_at is None else _iso(self.expires_at),
            },
        }

    def to_kantara_receipt(
        self, controller_info: ControllerInfo, *, include_record: bool = True
    ) -> dict[str, Any]:
        """A Kantara Initiative Consent Receipt v1.1 (``KI-CR-v1.1.0``) for this given consent.

        ``controller_info`` supplies what a record does not hold: jurisdiction, language, policy
        URL, the controllers' contact details, the service, and the purpose's categories
        (keyed by this record's purpose). ``consentReceiptID`` is the record id as a UUID;
        ``consentTimestamp`` is ``at`` in whole seconds. With ``include_record`` the receipt
        carries the record itself (with the subject's signature) as the extension field
        ``x-entrenous-record``. Only a given record has a receipt (``ValueError`` otherwise).
        """
        if not isinstance(controller_info, ControllerInfo):
            raise TypeError("controller_info must be a ControllerInfo")
        if self.state != "given":
            raise ValueError("a consent receipt is for a given consent only")
        details = controller_info.purposes.get(self.purpose)
        if details is None:
            raise ValueError(f"controller_info has no receipt details for purpose {self.purpose!r}")
        termination = details.termination
        if termination is None:
            termination = "withdrawal by the PII principal"
            if self.expires_at is not None:
                termination += f", or at the latest {_iso(self.expires_at)}"
        purpose: dict[str, Any] = {
            "purpose": details.description or self.purpose,
            "purposeCategory": list(details.purpose_category),
            "consentType": "EXPLICIT",
            "piiCategory": list(details.pii_category),
            "primaryPurpose": details.primary_purpose,
            "termination": termination,
            "thirdPartyDisclosure": details.third_party_disclosure,
        }
        if details.third_party_name is not None:
            purpose["thirdPartyName"] = details.third_party_name
        receipt: dict[str, Any] = {
            "version": "KI-CR-v1.1.0",
            "jurisdiction": controller_info.jurisdiction,
            "consentTimestamp": self.at // 1000,
            "collectionMethod": self.method,
            "consentReceiptID": str(uuid.UUID(bytes=self.record_id)),
            "language": controller_info.language,
            "piiPrincipalId": self.principal_id(),
            "piiControllers": [c.to_kantara() for c in controller_info.controllers],
            "policyUrl": controller_info.policy_url,
            "services": [{"service": controller_info.service, "purposes": [purpose]}],
            "sensitive": controller_info.sensitive,
            "spiCat": list(controller_info.spi_categories),
        }
        if controller_info.public_key is not None:
            receipt["publicKey"] = controller_info.public_key
        if include_record:
            receipt["x-entrenous-record"] = self.to_content()
        return receipt

    def __repr__(self) -> str:
        request = "None" if self.request_id is None else self.request_id.hex()
        return (
            f"ConsentRecord(record_id={self.record_id.hex()}, request_id={request}, "
            f"state={self.state})"
        )


def _body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The record's JSON fields without ``signature``."""
    identity = fields["subject_identity"]
    request_id = fields["request_id"]
    return {
        "type": RECORD_TYPE,
        "version": CONSENT_FORMAT_VERSION,
        "record_id": fields["record_id"].hex(),
        "request_id": None if request_id is None else request_id.hex(),
        "subject": fields["subject"],
        "subject_identity": None if identity is None else identity.to_bytes().hex(),
        "controller": fields["controller"],
        "purpose": fields["purpose"],
        "legal_basis": fields["legal_basis"],
        "notice_version": fields["notice_version"],
        "notice_sha256": fields["notice_sha256"].hex(),
        "method": fields["method"],
        "state": fields["state"],
        "at": fields["at"],
        "expires_at": fields["expires_at"],
    }


def _signed_body(fields: Mapping[str, Any]) -> bytes:
    return canonical_json(_body(fields))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and infinity are not JSON")


def _iso_duration(ms: int) -> str:
    """A duration in milliseconds as ISO 8601 (``PT86400S``, ``PT1.5S``)."""
    seconds, rest = divmod(ms, 1000)
    if rest == 0:
        return f"PT{seconds}S"
    return f"PT{seconds}.{rest:03d}".rstrip("0") + "S"


# --- the ledger ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class LedgerEntry:
    """One row of the append-only consent ledger, as stored.

    ``hash = SHA-256(LABEL_CONSENT_LEDGER || seq as 8 bytes big-endian || prev_hash ||
    record_bytes)``; the first entry has ``seq`` 1 and ``prev_hash`` :data:`GENESIS_HASH`.
    Built by :func:`chain_entry`; rows read back from storage are taken as they are (sizes are
    checked by :func:`verify_chain`, which names the broken entry). The repr shows the sequence
    number and a hash prefix only.
    """

    seq: int
    prev_hash: bytes
    record_bytes: bytes
    hash: bytes

    def __post_init__(self) -> None:
        if type(self.seq) is not int:
            raise TypeError("seq must be an int")
        for name in ("prev_hash", "record_bytes", "hash"):
            if type(getattr(self, name)) is not bytes:
                raise TypeError(f"{name} must be bytes")

    def record(self) -> ConsentRecord:
        """The record this entry holds (strictly parsed; :class:`InvalidConsentRecord` if not)."""
        return ConsentRecord.from_bytes(self.record_bytes)

    def __repr__(self) -> str:
        return f"LedgerEntry(seq={self.seq}, hash={self.hash[:4].hex()}…)"


#: Sequence numbers are 1..2**63 - 1 (they are hashed as 8 unsigned bytes; SQLite's INTEGER).
MAX_SEQ: Final = 2**63 - 1


def entry_hash(seq: int, prev_hash: bytes, record_bytes: bytes) -> bytes:
    """The hash of a ledger entry (see :class:`LedgerEntry`)."""
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"seq must be in 1..{MAX_SEQ}")
    if type(prev_hash) is not bytes or len(prev_hash) != 32:
        raise ValueError("prev_hash must be 32 bytes")
    return sha256(LABEL_CONSENT_LEDGER, seq.to_bytes(8, "big"), prev_hash, record_bytes)


def chain_entry(prev_hash: bytes, seq: int, record: ConsentRecord) -> LedgerEntry:
    """The ledger entry appending ``record`` as entry ``seq`` after the entry hashed ``prev_hash``.

    The first entry is ``chain_entry(GENESIS_HASH, 1, record)``.
    """
    if not isinstance(record, ConsentRecord):
        raise TypeError("the ledger holds ConsentRecords")
    data = record.to_bytes()
    return LedgerEntry(seq, prev_hash, data, entry_hash(seq, prev_hash, data))


def next_entry(last: LedgerEntry | None, record: ConsentRecord) -> LedgerEntry:
    """The entry appending ``record`` after ``last`` (``None``: the ledger is empty)."""
    if last is None:
        return chain_entry(GENESIS_HASH, 1, record)
    return chain_entry(last.hash, last.seq + 1, record)


def verify_chain(
    entries: Iterable[LedgerEntry], *, checkpoint: tuple[int, bytes] | None = None
) -> None:
    """Check the whole ledger, oldest first; :class:`ConsentLedgerBroken` names the first break.

    Entry ``n`` (counting from 1) must have ``seq`` n, link to the previous entry's hash, have the
    hash of its own content, and hold a well-formed canonical record which, when signed in-band,
    carries a valid signature of the identity it names. So an edited row is named
    by its own seq (or, if the editor recomputed its hash, by the next entry's seq, whose link
    breaks), a removed row by the seq that is missing, and swapped rows by the first position out
    of order. A removed tail leaves a valid shorter chain: pass ``checkpoint=(seq, hash)`` (a
    later entry's hash kept elsewhere, for example in the audit trail) to detect it.
    """
    expected_prev = GENESIS_HASH
    position = 0
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, LedgerEntry):
            raise TypeError("verify_chain() takes LedgerEntry values")
        if entry.seq != position:
            raise ConsentLedgerBroken(position, "an entry is missing or out of order")
        if len(entry.prev_hash) != 32 or not constant_time_equal(entry.prev_hash, expected_prev):
            raise ConsentLedgerBroken(position, "the link to the previous entry is broken")
        actual = entry_hash(entry.seq, entry.prev_hash, entry.record_bytes)
        if len(entry.hash) != 32 or not constant_time_equal(entry.hash, actual):
            raise ConsentLedgerBroken(position, "the entry does not match its hash")
        try:
            record = entry.record()
        except InvalidConsentRecord:
            raise ConsentLedgerBroken(position, "the entry is not a well-formed record") from None
        if record.subject_identity is not None and record.method == METHOD_SIGNED:
            try:
                record.verify(record.subject_identity)
            except InvalidConsentRecord:
                raise ConsentLedgerBroken(
                    position, "the record's signature does not verify"
                ) from None
        if (
            checkpoint is not None
            and checkpoint[0] == position
            and not constant_time_equal(entry.hash, checkpoint[1])
        ):
            raise ConsentLedgerBroken(position, "the entry does not match the checkpoint")
        expected_prev = entry.hash
    if checkpoint is not None and checkpoint[0] > position:
        raise ConsentLedgerBroken(position + 1, "entries up to the checkpoint are missing")


# --- deciding ------------------------------------------------------------------------------------


def _decide(
    records: Iterable[ConsentRecord],
    subject: str | None,
    purpose: str,
    now_ms: int,
    identity: PublicIdentity | None,
) -> tuple[ConsentState, ConsentRecord | None]:
    purpose = _purpose_arg(purpose)
    if subject is None and identity is None:
        raise ValueError("name the data subject: a subject id, an identity, or both")
    key = None if identity is None else identity.to_bytes()
    seen: set[bytes] = set()
    latest_given: tuple[int, ConsentRecord] | None = None
    negatives: list[tuple[int, ConsentRecord]] = []
    for position, record in enumerate(records):
        if not isinstance(record, ConsentRecord):
            raise TypeError("records must be ConsentRecords")
        if record.purpose != purpose or record.record_id in seen:
            continue  # another purpose, or a replayed copy of a record already counted
        by_subject = subject is not None and record.subject == subject
        by_identity = (
            key is not None
            and record.subject_identity is not None
            and constant_time_equal(record.subject_identity.to_bytes(), key)
        )
        if not (by_subject or by_identity):
            continue
        seen.add(record.record_id)
        if record.state == "given":
            latest_given = (position, record)
        else:
            negatives.append((position, record))
    if latest_given is None:
        return (negatives[-1][1].state if negatives else "none"), None
    given_at, given = latest_given
    # A refusal or withdrawal defeats the latest given record if it came later in the ledger, or
    # is dated at or after it (a withdrawal delivered before an older given record still wins).
    defeating = [r for pos, r in negatives if pos > given_at or r.at >= given.at]
    if defeating:
        return defeating[-1].state, None
    state = given.state_at(now_ms)
    return state, (given if state == "given" else None)


def consent_state(
    records: Iterable[ConsentRecord],
    subject: str | None,
    purpose: str,
    now_ms: int,
    *,
    identity: PublicIdentity | None = None,
) -> ConsentState:
    """The state of ``subject``'s consent to ``purpose`` at ``now_ms``.

    ``records`` are the ledger's records, oldest first. A record concerns the subject when its
    ``subject`` equals ``subject`` or its ``subject_identity`` equals ``identity`` (either
    suffices; pass both when both are known, so that a withdrawal signed without the app's
    subject id still counts). The latest given record decides unless a refusal or withdrawal
    comes after it in the ledger or is dated at or after it (then that one decides); a given
    record past its ``expires_at`` is ``"expired"``; ``"none"`` when nothing was recorded. A
    record id seen twice counts once.
    """
    return _decide(records, subject, purpose, now_ms, identity)[0]


def current_consent(
    records: Iterable[ConsentRecord],
    subject: str | None,
    purpose: str,
    now_ms: int,
    *,
    identity: PublicIdentity | None = None,
) -> ConsentRecord | None:
    """The given record that makes consent valid now, or ``None`` (see :func:`consent_state`)."""
    return _decide(records, subject, purpose, now_ms, identity)[1]


def require_consent(
    records: Iterable[ConsentRecord],
    subject: str | None,
    purpose: str,
    now_ms: int,
    *,
    identity: PublicIdentity | None = None,
) -> ConsentRecord:
    """The valid given record, or :class:`~entrenous.errors.ConsentRequired` naming the purpose.

    The error's ``reason`` is ``"none recorded"``, ``"refused"``, ``"withdrawn"`` or
    ``"expired"``; its message holds the purpose and the reason, never the subject.
    """
    state, record = _decide(records, subject, purpose, now_ms, identity)
    if record is None:
        raise ConsentRequired(purpose, "none recorded" if state == "none" else state)
    return record


# --- receipt configuration -------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReceiptController(_Model):
    """One ``piiControllers`` entry of a Kantara receipt: who controls the data, and how to reach
    them. ``address`` is a schema.org PostalAddress (``streetAddress``, ``addressCountry``...)."""

    name: StrictStr = Field(min_length=1)
    contact: StrictStr = Field(min_length=1)
    address: dict[StrictStr, StrictStr] = Field(min_length=1)
    email: StrictStr = Field(min_length=1)
    phone: StrictStr = Field(min_length=1)
    url: StrictStr | None = None
    on_behalf: StrictBool = False

    def to_kantara(self) -> dict[str, Any]:
        """This controller in the receipt's field names."""
        out: dict[str, Any] = {
            "piiController": self.name,
            "onBehalf": self.on_behalf,
            "contact": self.contact,
            "address": dict(self.address),
            "email": self.email,
            "phone": self.phone,
        }
        if self.url is not None:
            out["piiControllerUrl"] = self.url
        return out


class ReceiptPurpose(_Model):
    """What a Kantara receipt says about one purpose (keyed by purpose id in ControllerInfo).

    ``termination`` defaults to "withdrawal by the PII principal" plus the record's expiry.
    ``third_party_name`` is required when ``third_party_disclosure`` is true.
    """

    description: StrictStr | None = None
    purpose_category: tuple[StrictStr, ...] = Field(min_length=1)
    pii_category: tuple[StrictStr, ...] = Field(min_length=1)
    primary_purpose: StrictBool
    third_party_disclosure: StrictBool
    third_party_name: StrictStr | None = None
    termination: StrictStr | None = None

    @model_validator(mode="after")
    def _third_party_named(self) -> ReceiptPurpose:
        if self.third_party_disclosure and not self.third_party_name:
            raise ValueError("third_party_name is required when third_party_disclosure is true")
        return self


class ControllerInfo(_Model):
    """What a Kantara Consent Receipt needs beyond the record: the controller's side.

    Typically loaded once from the application's configuration (``ControllerInfo.model_validate``
    of a TOML table); unknown fields are refused.
    """

    jurisdiction: StrictStr = Field(min_length=1)
    language: StrictStr = Field(min_length=2)
    policy_url: StrictStr = Field(min_length=1)
    controllers: tuple[ReceiptController, ...] = Field(min_length=1)
    service: StrictStr = Field(min_length=1)
    purposes: dict[StrictStr, ReceiptPurpose]
    sensitive: StrictBool = False
    spi_categories: tuple[StrictStr, ...] = ()
    public_key: StrictStr | None = None

    @model_validator(mode="after")
    def _check(self) -> ControllerInfo:
        for purpose in self.purposes:
            if PURPOSE_PATTERN.fullmatch(purpose) is None:
                raise ValueError(f"purposes: key must match {PURPOSE_PATTERN.pattern}")
        if self.sensitive and not self.spi_categories:
            raise ValueError("spi_categories is required when sensitive is true")
        return self
