"""Retention and consent policy files: what a compliance team writes, checked before it is used.

A policy is a TOML file (``version = 1``) that says how long messages are kept, per conversation
category and per conversation, which purposes the app processes messages for and on which legal
basis, and who the controller is. spec/compliance.md ("Retention policy files") is the reference;
``examples/policy.toml`` is a complete example. In short::

    version = 1

    [controller]
    name = "Musterbank AG"
    contact = "privacy@musterbank.example"

    [retention.default]
    max_age = "2y"  # or "forever": never implied by a missing key

    [retention.categories.contract]
    description = "Account and loan contracts"
    max_age = "11y"
    min_age = "10y"  # must keep: statutory retention
    legal_ground = "HGB §257, AO §147"  # required with min_age

    [purposes.marketing]
    description = "Product offers"
    legal_basis = "consent"
    requires_consent = true
    notice_version = "2025-01"

This module owns the file format and the rules derived from it: parsing durations, resolving the
rule of a conversation (override > category > default) and computing a message's expiry. It does
no I/O beyond reading the file in :meth:`Policy.load`, and imports only the errors, the
primitives (for SHA-256) and :mod:`entrenous.compliance.consent` (whose identifier rules and
limits a policy's purposes must meet).

Everything wrong with a file is reported at once, in one :class:`~entrenous.errors.PolicyError`
whose problems carry the dotted location of the bad key and its line when it can be found. A
problem's message quotes names, durations and ids from the file, never free text (descriptions,
contacts, legal grounds).
"""

from __future__ import annotations

import bisect
import difflib
import functools
import json
import os
import re
import stat
import tomllib
import types
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from entrenous._primitives import kdf
from entrenous.compliance import retention
from entrenous.compliance.consent import (
    MAX_CONTROLLER_BYTES,
    MAX_VALIDITY_MS,
    NOTICE_VERSION_PATTERN,
    PURPOSE_PATTERN,
    canonical_json,
)
from entrenous.errors import PolicyError, PolicyProblem, UsageError

__all__ = [
    "FOREVER",
    "LEGAL_BASES",
    "MAX_DURATION_MS",
    "MAX_POLICY_SIZE",
    "MIN_DURATION_MS",
    "POLICY_VERSION",
    "UNITS_MS",
    "CategoryRule",
    "Controller",
    "ConversationRule",
    "DefaultRule",
    "Disappearing",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "PolicyProblem",
    "Purpose",
    "Retention",
    "RetentionRule",
    "Ropa",
    "format_duration",
    "parse_duration",
]

# --- the numbers ---------------------------------------------------------------------------------

#: The only file format version this code reads.
POLICY_VERSION: Final = 1

#: A policy is a page or two of TOML; the limit bounds the time and memory of a check.
MAX_POLICY_SIZE: Final = 1 << 20

#: Past this many problems a file is no near miss: the rest are summarised in one line.
MAX_PROBLEMS: Final = 100

#: Milliseconds per unit. A year is 365 days (no calendar arithmetic: statutes that count in
#: calendar years are met by writing one more year or a few more days).
UNITS_MS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "s": 1_000,
        "min": 60_000,
        "h": 3_600_000,
        "d": 86_400_000,
        "w": 604_800_000,
        "y": 31_536_000_000,
    }
)

#: Shortest non-zero duration: sweeps run at open and on the app's timer, so a rule below a minute
#: means nothing in practice and is most likely a unit mix-up.
MIN_DURATION_MS: Final = 60_000

#: Longest finite duration: no statute asks for more; anything longer is a unit mix-up (typically
#: milliseconds written as seconds). Keeping longer is written ``"forever"``.
MAX_DURATION_MS: Final = 200 * 31_536_000_000

#: Free-text fields (descriptions, legal grounds, list entries).
MAX_TEXT_LENGTH: Final = 4_096

#: The word for "no maximum age".
FOREVER: Final = "forever"

#: The lawful bases of GDPR Art. 6(1), (a) to (f), as written in the file.
LEGAL_BASES: Final = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
)

# --- durations -----------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"([0-9]+)(s|min|h|d|w|y)")
_LOOSE_RE = re.compile(r"\+?([0-9]+(?:[.,][0-9]*)?)\s*([A-Za-z]*)")
_MAX_DIGITS = 16  # more digits are above the maximum in any unit; checked before int() runs
_UNIT_WORDS: Final = {
    **dict.fromkeys(("sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("mins", "minute", "minutes"), "min"),
    **dict.fromkeys(("hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("day", "days"), "d"),
    **dict.fromkeys(("wk", "wks", "week", "weeks"), "w"),
    **dict.fromkeys(("yr", "yrs", "year", "years", "a"), "y"),
}
_MONTH_WORDS: Final = frozenset(("mo", "mon", "mth", "month", "months"))
_FOREVER_WORDS: Final = frozenset(("never", "infinite", "infinity", "inf", "unlimited", "none"))
_BARE_NUMBER = (
    'give a unit, e.g. "30d": a bare number is ambiguous between seconds and milliseconds'
)
_UNITS_HINT = 'use a whole number and one of the units s, min, h, d, w, y (e.g. "30d")'


_SHOWABLE_RE = re.compile(r"[+-]?[0-9]{1,24}(?:[.,][0-9]{0,6})? ?[A-Za-z]{0,6}")


def _show(text: str) -> str:
    """``text`` quoted for a message when it is shaped like a duration (a number and at most six
    letters), else a neutral phrase: messages never quote free text."""
    return f'"{text}"' if _SHOWABLE_RE.fullmatch(text) else "the value"


def _approximately(ms: int) -> str:
    """``ms`` as a duration: exact when it is whole seconds, else rounded in the largest unit."""
    if ms % 1000 == 0:
        return format_duration(ms)
    for unit in ("y", "w", "d", "h", "min", "s"):
        if ms >= UNITS_MS[unit]:
            return f"about {round(ms / UNITS_MS[unit])}{unit}"
    return f"{ms} ms"


def _why_not_a_duration(text: str, allow_forever: bool) -> str:
    """The message for a string that is not ``<integer><unit>``: name the likely mistake."""
    stripped = text.strip()
    example = ' such as "30d"' + (' or "forever"' if allow_forever else "")
    if not stripped:
        return f"empty: expected a duration{example}"
    if stripped.lower() == FOREVER or stripped.lower() in _FOREVER_WORDS:
        if allow_forever:
            return 'to keep forever, write "forever" (lowercase, exactly)'
        return 'cannot be "forever" here: ' + _UNITS_HINT
    if stripped.startswith("-"):
        return f"{_show(text)} is negative: durations are positive"
    loose = _LOOSE_RE.fullmatch(stripped)
    if loose is None:
        return f"{_show(text)} is not a duration: {_UNITS_HINT}" + (
            ', or "forever"' if allow_forever else ""
        )
    number, unit = loose.groups()
    if "." in number or "," in number:
        return f'{_show(text)}: whole numbers only; use a smaller unit (e.g. "36h", not "1.5d")'
    if not unit:
        return _BARE_NUMBER
    if unit in ("m", "M"):
        return '"m" is ambiguous (minutes or months?): write "min" for minutes, days for months'
    if unit == "ms":
        return 'milliseconds are not a unit here (the smallest is "s"): ' + _UNITS_HINT
    if unit.lower() in _MONTH_WORDS:
        return f'months differ in length: write days, e.g. "{int(number) * 30}d"'
    canonical = unit.lower() if unit.lower() in UNITS_MS else _UNIT_WORDS.get(unit.lower())
    if canonical is not None:
        return f'write "{int(number)}{canonical}" (units: s, min, h, d, w, y; no spaces)'
    shown = f' "{unit}"' if len(unit) <= 6 else ""
    return f"unknown unit{shown}: {_UNITS_HINT}"


def parse_duration(
    text: str, *, allow_forever: bool = True, allow_zero: bool = False
) -> int | None:
    """Parse a policy duration into milliseconds; ``None`` for ``"forever"``.

    A duration is ``<integer><unit>`` with no space, the unit one of ``s``, ``min``, ``h``,
    ``d``, ``w``, ``y`` (``y`` = 365 days), between :data:`MIN_DURATION_MS` (1 minute) and
    :data:`MAX_DURATION_MS` (200 years); zero only when ``allow_zero``; ``"forever"`` only when
    ``allow_forever``. Raises ``ValueError`` with a message that names the likely mistake (a
    bare number, a missing unit, seconds that look like milliseconds).
    """
    if not isinstance(text, str):
        raise TypeError(f"a duration is a str, not {type(text).__name__}")
    if text == FOREVER:
        if allow_forever:
            return None
        raise ValueError('cannot be "forever" here: ' + _UNITS_HINT)
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(_why_not_a_duration(text, allow_forever))
    digits, unit = match.groups()
    too_long = f"{_show(text)} is above the maximum of 200y"
    if len(digits) > _MAX_DIGITS:
        raise ValueError(too_long)
    count = int(digits)
    ms = count * UNITS_MS[unit]
    if ms == 0:
        if allow_zero:
            return 0
        raise ValueError(f"{_show(text)} is zero: a duration here must be positive")
    if ms < MIN_DURATION_MS:
        raise ValueError(f'{_show(text)} is below the minimum of 1 minute ("1min")')
    if ms > MAX_DURATION_MS:
        if unit == "s" and count <= MAX_DURATION_MS:
            raise ValueError(
                f"{too_long}; it looks like milliseconds ({count} ms is "
                f"{_approximately(count)}): durations here are never in milliseconds, "
                'write e.g. "90d"'
            )
        raise ValueError(too_long + ' (to keep without limit, write "forever")')
    return ms


def format_duration(ms: int | None) -> str:
    """The canonical text of a duration: the largest unit that divides it, ``"forever"`` for None.

    ``parse_duration(format_duration(ms)) == ms`` for every whole number of seconds in range.
    """
    if ms is None:
        return FOREVER
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TypeError("a duration is an int of milliseconds or None")
    if ms < 0 or ms % 1000:
        raise ValueError("a policy duration is a non-negative whole number of seconds")
    if ms == 0:
        return "0s"
    for unit in ("y", "w", "d", "h", "min", "s"):
        if ms % UNITS_MS[unit] == 0:
            return f"{ms // UNITS_MS[unit]}{unit}"
    raise AssertionError("unreachable: every whole second divides by 1000")  # pragma: no cover


def _duration(*, forever: str | None, zero: bool) -> BeforeValidator:
    """A pydantic validator for a duration field; ``forever``: the refusal for ``"forever"``
    (None: "forever" is allowed)."""

    def check(value: object) -> int | None:
        example = ' such as "30d"' + (' or "forever"' if forever is None else "")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise PydanticCustomError(
                "duration_type", "{reason}", {"reason": f"expected a duration{example}"}
            )
        if not isinstance(value, str):
            raise PydanticCustomError("duration_number", "{reason}", {"reason": _BARE_NUMBER})
        if value == FOREVER and forever is not None:
            raise PydanticCustomError("duration_forever", "{reason}", {"reason": forever})
        try:
            return parse_duration(value, allow_forever=forever is None, allow_zero=zero)
        except ValueError as exc:
            raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None

    return BeforeValidator(check)


# --- names, texts and lists ----------------------------------------------------------------------

#: Names of categories and purposes: the consent module's purpose identifiers, so that every
#: purpose of a policy can be asked for consent ("marketing", "advice.v2").
_NAME_RE = PURPOSE_PATTERN
_CONVERSATION_ID_RE = re.compile(r"[0-9a-f]{32}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


def _custom(reason: str) -> PydanticCustomError:
    return PydanticCustomError("policy", "{reason}", {"reason": reason})


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise _custom(
            "not a valid name: lowercase letters and digits, with '.', '_' or '-' inside, "
            "at most 64 characters"
        )
    return value


def _check_notice_version(value: str) -> str:
    if not NOTICE_VERSION_PATTERN.fullmatch(value):
        raise _custom(
            "not a notice version: letters, digits and '.', '_', ':', '+', '-', starting with a "
            'letter or digit, at most 64 characters (e.g. "2025-03", "v3.1")'
        )
    return value


def _check_controller_name(value: str) -> str:
    _check_text(value)
    if len(value.encode("utf-8")) > MAX_CONTROLLER_BYTES:
        raise _custom(f"longer than {MAX_CONTROLLER_BYTES} bytes (it goes into consent records)")
    return value


def _check_conversation_id(value: str) -> str:
    if not _CONVERSATION_ID_RE.fullmatch(value):
        if _CONVERSATION_ID_RE.fullmatch(value.lower()):
            raise _custom("not a conversation id: write the 32 hexadecimal digits in lowercase")
        raise _custom("not a conversation id: expected 32 lowercase hexadecimal digits")
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise _custom("must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise _custom(f"longer than {MAX_TEXT_LENGTH} characters")
    if any(unicodedata.category(char) == "Cc" and char not in "\t\n\r" for char in value):
        raise _custom("must not contain control characters")
    return value


def _check_sha256(value: str) -> str:
    if not _SHA256_RE.fullmatch(value):
        raise _custom("not a SHA-256: expected 64 lowercase hexadecimal digits")
    return value


def _check_email(value: str) -> str:
    if not _EMAIL_RE.fullmatch(value) or len(value) > 254:
        raise _custom("not an email address (expected name@domain.example)")
    return value


def _check_unique(values: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            raise _custom(f"items [{seen[value]}] and [{index}] are the same")
        seen[value] = index
    return values


Name = Annotated[str, AfterValidator(_check_name)]
ConversationId = Annotated[str, AfterValidator(_check_conversation_id)]
Text = Annotated[str, AfterValidator(_check_text)]
ControllerName = Annotated[str, AfterValidator(_check_controller_name)]
NoticeVersion = Annotated[str, AfterValidator(_check_notice_version)]
Email = Annotated[str, AfterValidator(_check_email)]
Sha256Hex = Annotated[str, AfterValidator(_check_sha256)]
NameList = Annotated[list[Name], AfterValidator(_check_unique)]
TextList = Annotated[list[Text], AfterValidator(_check_unique)]
MaxAge = Annotated[int | None, _duration(forever=None, zero=False)]
MinAge = Annotated[
    int,
    _duration(
        forever='a minimum age cannot be "forever": write the statutory period, e.g. "10y"',
        zero=True,
    ),
]


def _check_validity(value: int) -> int:
    if value > MAX_VALIDITY_MS:
        raise _custom(
            f"above the longest consent validity, {format_duration(MAX_VALIDITY_MS)} (100 years "
            "of 365.25 days)"
        )
    return value


ValidFor = Annotated[
    int,
    _duration(
        forever="leave consent_valid_for out for consent that does not lapse with time",
        zero=False,
    ),
    AfterValidator(_check_validity),
]

# --- the file, as pydantic models ----------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, hide_input_in_errors=True, populate_by_name=False
    )


class Controller(_Model):
    """``[controller]``: who decides on the processing (GDPR Art. 4(7)), for Art. 30 records."""

    name: ControllerName
    contact: Email
    dpo: Text | None = None
    representative: Text | None = None


class DefaultRule(_Model):
    """``[retention.default]``: the rule of a conversation with no category and no override."""

    max_age_ms: MaxAge = Field(alias="max_age")
    min_age_ms: MinAge = Field(default=0, alias="min_age")
    legal_ground: Text | None = None


class CategoryRule(_Model):
    """``[retention.categories.NAME]``: the rule of the conversations the app labels NAME."""

    description: Text
    max_age_ms: MaxAge = Field(alias="max_age")
    min_age_ms: MinAge = Field(default=0, alias="min_age")
    legal_ground: Text | None = None


class ConversationRule(_Model):
    """``[retention.conversations."ID"]``: an override for one conversation.

    Each key it sets replaces the same key of the rule it applies over (the category it names,
    else the conversation's own category, else the default); keys it leaves out are inherited.
    """

    category: Name | None = None
    max_age_ms: MaxAge = Field(default=None, alias="max_age")
    min_age_ms: MinAge = Field(default=0, alias="min_age")
    legal_ground: Text | None = None

    @property
    def sets_max_age(self) -> bool:
        """Whether the override writes ``max_age`` (``max_age_ms`` None then means forever)."""
        return "max_age_ms" in self.model_fields_set

    @property
    def sets_min_age(self) -> bool:
        """Whether the override writes ``min_age`` (with its ``legal_ground``)."""
        return "min_age_ms" in self.model_fields_set


class Retention(_Model):
    """``[retention]``: the default rule, per-category rules and per-conversation overrides."""

    default: DefaultRule
    categories: dict[Name, CategoryRule] = Field(default_factory=dict)
    conversations: dict[ConversationId, ConversationRule] = Field(default_factory=dict)


class Disappearing(_Model):
    """``[disappearing]``: whether in-band disappearing-message timers are applied."""

    allowed: bool


class Purpose(_Model):
    """``[purposes.NAME]``: a purpose of processing, its legal basis and its Art. 30 facts."""

    description: Text
    legal_basis: Literal[
        "consent",
        "contract",
        "legal_obligation",
        "vital_interests",
        "public_task",
        "legitimate_interests",
    ]
    requires_consent: bool
    notice_version: NoticeVersion | None = None
    notice_sha256: Sha256Hex | None = None
    consent_valid_for_ms: ValidFor | None = Field(default=None, alias="consent_valid_for")
    categories: NameList = Field(default_factory=list)
    data_categories: TextList = Field(default_factory=list)
    data_subjects: TextList = Field(default_factory=list)
    recipients: TextList = Field(default_factory=list)
    transfers: TextList = Field(default_factory=list)


class Ropa(_Model):
    """``[ropa]``: extra lines for the record of processing activities (GDPR Art. 30)."""

    security_measures: TextList = Field(default_factory=list)


class PolicyFile(_Model):
    """The whole file. Build it through :meth:`Policy.parse`, which also checks consistency."""

    version: Literal[1]
    controller: Controller
    retention: Retention
    disappearing: Disappearing = Disappearing(allowed=True)
    purposes: dict[Name, Purpose] = Field(default_factory=dict)
    ropa: Ropa = Ropa()


# --- resolved rules ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """The retention that applies to one conversation, resolved from the policy.

    ``max_age_ms`` None means keep forever; ``min_age_ms`` 0 means no minimum. ``source`` is the
    dotted path of the most specific table that applied (``retention.conversations.<id>``,
    ``retention.categories.<name>`` or ``retention.default``); ``category`` the category whose
    rule it builds on (None: the default). ``legal_ground`` goes with ``min_age_ms``.
    """

    max_age_ms: int | None
    min_age_ms: int
    source: str
    category: str | None = None
    legal_ground: str | None = None

    @property
    def keeps_forever(self) -> bool:
        """True when the rule has no maximum age."""
        return self.max_age_ms is None

    def describe(self) -> str:
        """``delete after 2y, keep at least 10y (HGB §257)`` and the like."""
        if self.max_age_ms is None:
            text = "keep forever"
        else:
            text = f"delete after {format_duration(self.max_age_ms)}"
        if self.min_age_ms:
            text += f", keep at least {format_duration(self.min_age_ms)}"
            if self.legal_ground:
                text += f" ({self.legal_ground})"
        else:
            text += ", no minimum age"
        return text


# --- positions in the TOML text ------------------------------------------------------------------

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END_RE = re.compile(r"\s*\(at end of document\)$")

Loc = tuple[str | int, ...]


def _parse_keys(line: str, pos: int) -> tuple[tuple[str, ...], int] | None:
    """The dotted key starting at ``line[pos:]`` and the position after it, or None."""
    keys: list[str] = []
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos >= len(line):
            return None
        char = line[pos]
        if char == '"':
            end, chars = pos + 1, []
            while end < len(line) and line[end] != '"':
                if line[end] == "\\" and end + 1 < len(line):
                    end += 1
                chars.append(line[end])
                end += 1
            if end >= len(line):
                return None
            keys.append("".join(chars))
            pos = end + 1
        elif char == "'":
            end = line.find("'", pos + 1)
            if end < 0:
                return None
            keys.append(line[pos + 1 : end])
            pos = end + 1
        else:
            match = _BARE_KEY_RE.match(line, pos)
            if match is None:
                return None
            keys.append(match.group())
            pos = match.end()
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == ".":
            pos += 1
            continue
        return tuple(keys), pos


class _Positions:
    """Line numbers of the tables and keys of a TOML text, found by a cheap line scan.

    Good enough to point at a key: it follows table headers, dotted keys and quoted keys, and
    skips multi-line strings; it does not descend into inline tables or arrays (their key's line
    is used). A key defined twice is remembered for tomllib's "Cannot overwrite" error, which in
    Python 3.11 has no position.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self.duplicate: tuple[tuple[str, ...], int, int] | None = None
        table: tuple[str, ...] = ()
        in_string: str | None = None
        for number, line in enumerate(text.split("\n"), start=1):
            if in_string is not None:
                if in_string in line:
                    in_string = None
                continue
            stripped = line.lstrip(" \t")
            if not stripped or stripped[0] == "#":
                continue
            if stripped.startswith("[["):
                parsed = _parse_keys(stripped, 2)
                if parsed is not None and stripped.startswith("]]", parsed[1]):
                    table = parsed[0]
                    self.lines.setdefault(table, number)
                continue
            if stripped[0] == "[":
                parsed = _parse_keys(stripped, 1)
                if parsed is not None and stripped.startswith("]", parsed[1]):
                    table = parsed[0]
                    self._note(table, number)
                continue
            parsed = _parse_keys(stripped, 0)
            if parsed is None or not stripped.startswith("=", parsed[1]):
                continue
            self._note(table + parsed[0], number)
            value = stripped[parsed[1] + 1 :].lstrip(" \t")
            for quote in ('"""', "'''"):
                if value.startswith(quote) and quote not in value[3:]:
                    in_string = quote

    def _note(self, path: tuple[str, ...], number: int) -> None:
        if path in self.lines:
            if self.duplicate is None:
                self.duplicate = (path, number, self.lines[path])
        else:
            self.lines[path] = number

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc`` or of the nearest enclosing table or key that has one."""
        keys = tuple(part for part in loc if isinstance(part, str))
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return None


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        shown = part if _BARE_KEY_RE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
        out += f".{shown}" if out else shown
    return out


# --- turning pydantic's errors into problems -----------------------------------------------------

_TYPE_MESSAGES: Final = {
    "string_type": "expected a string (in double quotes)",
    "bool_type": "expected true or false",
    "list_type": 'expected a list, e.g. ["a", "b"]',
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "int_type": "expected an integer",
}

_MISSING_HINTS: Final = {
    "version": "missing: write version = 1 at the top of the file",
    "max_age": 'missing: write a duration such as "2y", or "forever" to keep forever '
    "(keeping forever is never implied)",
    "allowed": "missing: write allowed = true or allowed = false",
    "requires_consent": 'missing: write requires_consent = true if legal_basis = "consent", '
    "else false",
    "legal_basis": "missing: one of " + ", ".join(LEGAL_BASES),
}


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` from a field annotation."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            rest = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _fields_by_key(model: type[BaseModel]) -> dict[str, Any]:
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class of the table at ``loc`` (for listing the keys it allows)."""
    current: Any = PolicyFile
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = _fields_by_key(current)
            if part not in fields:
                return None
            current = fields[str(part)]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unknown_key_message(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    allowed = sorted(_fields_by_key(model)) if model is not None else []
    message = "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    if close:
        message += f'; did you mean "{close[0]}"?'
    if allowed:
        message += f" (allowed here: {', '.join(allowed)})"
    return message


#: A problem's message, or a function that makes it: messages that cost something (suggestions)
#: are made only for the problems that are reported.
_Message = str | Callable[[], str]


def _pydantic_problems(error: ValidationError) -> list[tuple[Loc, _Message]]:
    found: list[tuple[Loc, _Message]] = []
    for detail in error.errors(include_url=False, include_input=False):
        loc: Loc = tuple(part for part in detail["loc"] if part != "[key]")
        kind = detail["type"]
        last = loc[-1] if loc else ""
        message: _Message
        if kind == "extra_forbidden":
            message = functools.partial(_unknown_key_message, loc)
        elif kind == "missing":
            message = _MISSING_HINTS.get(str(last), "missing: this key is required")
        elif kind == "literal_error" and last == "legal_basis":
            message = "expected one of " + ", ".join(LEGAL_BASES) + " (GDPR Art. 6(1) (a)-(f))"
        elif kind in _TYPE_MESSAGES:
            message = _TYPE_MESSAGES[kind]
        else:
            message = detail["msg"]
        found.append((loc, message))
    return found


# --- consistency: what no single key can be checked for -----------------------------------------
#
# These checks run on every table, even one with bad keys, so that a file's problems are reported
# at once: each key is validated on its own (:func:`_keys`), and a check runs when the keys it
# compares are valid (a bad key is reported by the whole-file validation, once).

_INVALID: Final = object()  # a key that is present but does not validate on its own


@functools.cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    target: Any = info.annotation
    if info.metadata:
        annotated: Any = Annotated
        target = annotated[(target, *info.metadata)]
    return TypeAdapter(target, config=ConfigDict(strict=True))


@dataclass(frozen=True, slots=True)
class _Keys:
    """The keys of one table, each validated on its own, by field name.

    ``get`` gives the value (the default for an absent optional key), or :data:`_INVALID` for a
    key that is bad or required and missing.
    """

    values: Mapping[str, Any]
    present: frozenset[str]  # field names whose key the table writes

    def get(self, name: str) -> Any:
        return self.values.get(name, _INVALID)

    def valid(self, *names: str) -> bool:
        return all(self.get(name) is not _INVALID for name in names)


@functools.cache
def _defaults(model: type[BaseModel]) -> Mapping[str, Any]:
    """The default of each optional field (shared: :class:`_Keys` never changes a value)."""
    return MappingProxyType(
        {
            name: info.get_default(call_default_factory=True)
            for name, info in model.model_fields.items()
            if not info.is_required()
        }
    )


def _keys(model: type[BaseModel], table: object) -> _Keys | None:
    if not isinstance(table, dict):
        return None
    values: dict[str, Any] = dict(_defaults(model))
    present: set[str] = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in table:
            present.add(name)
            values.pop(name, None)
            try:
                values[name] = _adapter(model, name).validate_python(table[key])
            except ValidationError:
                continue
    return _Keys(MappingProxyType(values), frozenset(present))


_NO_GROUND_FOR_MIN: Final = (
    "missing: a min_age needs the legal ground that requires it "
    '(e.g. legal_ground = "HGB §257, AO §147")'
)
_GROUND_WITHOUT_MIN: Final = "legal_ground without a min_age: it names the law behind a minimum age"


def _order_problems(path: Loc, rule: _Keys) -> list[tuple[Loc, str]]:
    """min_age <= max_age."""
    max_age, min_age = rule.get("max_age_ms"), rule.get("min_age_ms")
    if not rule.valid("max_age_ms", "min_age_ms") or max_age is None or min_age <= max_age:
        return []
    message = (
        f"min_age {format_duration(min_age)} is above max_age {format_duration(max_age)}: "
        "a rule cannot require keeping messages longer than it allows"
    )
    return [((*path, "min_age"), message)]


def _ground_problems(path: Loc, rule: _Keys) -> list[tuple[Loc, str]]:
    """legal_ground exactly when there is a min_age."""
    if not rule.valid("min_age_ms", "legal_ground"):
        return []
    min_age = rule.get("min_age_ms")
    if min_age and rule.get("legal_ground") is None:
        return [((*path, "legal_ground"), _NO_GROUND_FOR_MIN)]
    if not min_age and "legal_ground" in rule.present:
        return [((*path, "legal_ground"), _GROUND_WITHOUT_MIN)]
    return []


def _rule_problems(path: Loc, rule: _Keys) -> list[tuple[Loc, str]]:
    return _order_problems(path, rule) + _ground_problems(path, rule)


#: Listing and suggesting names stay cheap and short whatever the file holds.
_LISTED_NAMES: Final = 10
_SUGGEST_AMONG: Final = 100
_LISTED_CONFLICTS: Final = 3


@dataclass(frozen=True, slots=True)
class _Names:
    """The category names a file defines, as a set and sorted (sorted once, for messages)."""

    names: frozenset[str]
    ordered: tuple[str, ...]

    def __contains__(self, name: object) -> bool:
        return name in self.names


def _unknown_category(name: str, known: _Names) -> str:
    defined = known.ordered
    listing = ", ".join(defined[:_LISTED_NAMES]) if defined else "none"
    if len(defined) > _LISTED_NAMES:
        listing += f" and {len(defined) - _LISTED_NAMES} more"
    message = f'unknown category "{name}" (categories defined in retention.categories: {listing})'
    if len(defined) <= _SUGGEST_AMONG:
        close = difflib.get_close_matches(name, defined, n=1, cutoff=0.6)
        message += f'; did you mean "{close[0]}"?' if close else ""
    return message


class _Bases:
    """The rules an override may build on (the default and every category), sorted once so that
    checking an override costs a binary search, not a pass over the categories."""

    def __init__(self, default: _Keys | None, categories: Mapping[str, _Keys | None]) -> None:
        self.categories = categories
        rules: list[tuple[str, str | None, _Keys | None]] = [("retention.default", None, default)]
        rules += [(f"retention.categories.{n}", n, k) for n, k in categories.items()]
        minimums: list[tuple[int, str, str | None]] = []
        maximums: list[tuple[int, str, str | None]] = []
        for path, category, keys in rules:
            if keys is None:
                continue
            min_age, max_age = keys.get("min_age_ms"), keys.get("max_age_ms")
            if min_age is not _INVALID and min_age:
                minimums.append((min_age, path, category))
            if max_age is not _INVALID and max_age is not None:
                maximums.append((max_age, path, category))
        # Most severe first: the highest minimums, the lowest maximums.
        self._by_min = sorted(minimums, key=lambda item: (-item[0], item[1]))
        self._by_max = sorted(maximums, key=lambda item: (item[0], item[1]))
        self._negated_mins = [-item[0] for item in self._by_min]
        self._maxes = [item[0] for item in self._by_max]

    def minimums_above(self, max_age: int) -> tuple[int, list[tuple[int, str, str | None]]]:
        """How many rules have a minimum above ``max_age``, and the first few of them."""
        count = bisect.bisect_left(self._negated_mins, -max_age)
        return count, self._by_min[: min(count, _LISTED_CONFLICTS)]

    def maximums_below(self, min_age: int) -> tuple[int, list[tuple[int, str, str | None]]]:
        """How many rules have a finite maximum below ``min_age``, and the first few of them."""
        count = bisect.bisect_left(self._maxes, min_age)
        return count, self._by_max[: min(count, _LISTED_CONFLICTS)]


def _override_problems(
    cid: str, rule: _Keys, bases: _Bases, known: _Names | None
) -> list[tuple[Loc, str]]:
    path: Loc = ("retention", "conversations", cid)
    if not rule.present:
        return [(path, "an override must set at least one of category, max_age, min_age")]
    found: list[tuple[Loc, str]] = []
    category = rule.get("category")
    if category is _INVALID:
        return found  # which rule it builds on is unknown; its own problem is reported
    if category is not None and known is not None and category not in known:
        found.append(((*path, "category"), _unknown_category(category, known)))
    sets_max, sets_min = "max_age_ms" in rule.present, "min_age_ms" in rule.present
    if sets_min or "legal_ground" in rule.present:
        found += _ground_problems(path, rule)
    if sets_min and sets_max:
        return found + _order_problems(path, rule)
    # The override inherits a maximum or a minimum: check it against every rule it may build on
    # (the category it names, or else the default and every category).
    own, inherited = ("max_age", "min_age") if sets_max else ("min_age", "max_age")
    value = rule.get(f"{own}_ms")
    if value is _INVALID or value is None:
        return found
    if category is not None:
        named = bases.categories.get(category)
        bases = _Bases(None, {category: named} if named is not None else {})
    count, worst = bases.minimums_above(value) if sets_max else bases.maximums_below(value)
    if not count:
        return found
    shown = []
    for age, name, conflicting in worst:
        when = ""
        if category is None and conflicting is not None:
            when = f", when the conversation's category is {conflicting}"
        shown.append(f"{name} ({format_duration(age)}{when})")
    if count > len(worst):
        shown.append(f"and {count - len(worst)} more")
    fix = "set min_age here" if sets_max else "set max_age here too"
    if sets_max and category is None:
        fix += ", or name the conversation's category"
    relation = "below" if sets_max else "above"
    message = (
        f"{own} {format_duration(value)} is {relation} the {inherited} of "
        + "; ".join(shown)
        + f": {fix}"
    )
    found.append(((*path, own), message))
    return found


def _purpose_problems(
    name: str, purpose: _Keys, table: Mapping[str, Any], known: _Names | None
) -> list[tuple[Loc, str]]:
    path: Loc = ("purposes", name)
    found: list[tuple[Loc, str]] = []
    basis = purpose.get("legal_basis")
    if basis is not _INVALID:
        is_consent = basis == "consent"
        requires = purpose.get("requires_consent")
        if requires is True and not is_consent:
            found.append(
                (
                    (*path, "requires_consent"),
                    f"must be false: the legal basis is {basis}, not consent "
                    '(requires_consent is true exactly when legal_basis = "consent")',
                )
            )
        if requires is False and is_consent:
            found.append(
                (
                    (*path, "requires_consent"),
                    "must be true: the legal basis is consent (requires_consent is true exactly "
                    'when legal_basis = "consent")',
                )
            )
        if is_consent and "notice_version" not in purpose.present:
            message = "missing: consent is given to a notice; name its version"
            found.append(((*path, "notice_version"), message))
        if not is_consent and "consent_valid_for_ms" in purpose.present:
            message = "only a purpose whose legal basis is consent has consent_valid_for"
            found.append(((*path, "consent_valid_for"), message))
    unversioned = "notice_version" not in purpose.present
    if "notice_sha256" in purpose.present and unversioned and basis != "consent":
        found.append(((*path, "notice_version"), "missing: notice_sha256 needs notice_version"))
    listed = table.get("categories")
    if known is not None and isinstance(listed, list):
        for index, category in enumerate(listed):
            if isinstance(category, str) and _NAME_RE.fullmatch(category) and category not in known:
                where: Loc = (*path, "categories", index)
                found.append((where, _unknown_category(category, known)))
    return found


def _consistency_problems(raw: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Problems across keys, on whatever parts of ``raw`` validate on their own."""
    found: list[tuple[Loc, str]] = []
    retention = raw.get("retention")
    if not isinstance(retention, dict):
        retention = {"categories": None}  # categories unknown: references cannot be checked
    default = _keys(DefaultRule, retention.get("default"))
    if default is not None:
        found += _rule_problems(("retention", "default"), default)
    raw_categories = retention.get("categories", {})
    known: _Names | None = None
    categories: dict[str, _Keys | None] = {}
    if isinstance(raw_categories, dict):
        known = _Names(frozenset(raw_categories), tuple(sorted(raw_categories)))
        for name, table in raw_categories.items():
            categories[name] = rule = _keys(CategoryRule, table)
            if rule is not None:
                found += _rule_problems(("retention", "categories", name), rule)
    conversations = retention.get("conversations", {})
    if isinstance(conversations, dict):
        bases = _Bases(default, categories)
        for cid, table in conversations.items():
            override = _keys(ConversationRule, table)
            if override is not None:
                found += _override_problems(cid, override, bases, known)
    purposes = raw.get("purposes", {})
    if isinstance(purposes, dict):
        for name, table in purposes.items():
            purpose = _keys(Purpose, table)
            if purpose is not None:
                found += _purpose_problems(name, purpose, table, known)
    return found


# --- the policy ----------------------------------------------------------------------------------

_ARTICLE_6_LETTER: Final = dict(zip(LEGAL_BASES, "abcdef", strict=True))


def _refuse(source: str, found: list[tuple[Loc, _Message]], positions: _Positions) -> PolicyError:
    """The error for ``found``, in line order, at most :data:`MAX_PROBLEMS` of them."""
    located = [(positions.line_of(loc), _format_loc(loc), message) for loc, message in found]
    located.sort(key=lambda item: (item[0] is None, item[0] or 0, item[1]))
    problems = [
        PolicyProblem(location, message if isinstance(message, str) else message(), line)
        for line, location, message in located[:MAX_PROBLEMS]
    ]
    if len(located) > MAX_PROBLEMS:
        rest = len(located) - MAX_PROBLEMS
        problems.append(PolicyProblem("", f"... and {rest} more problems"))
    return PolicyError(source, problems)


class Policy:
    """A checked retention/consent policy. Immutable; build it with :meth:`load` or :meth:`parse`.

    Two policies are equal when their :attr:`fingerprint` is: the same rules, however written.
    """

    __slots__ = ("_fingerprint", "_json", "_model", "_source", "_text")

    _model: PolicyFile
    _source: str
    _text: str
    _json: dict[str, Any]
    _fingerprint: str

    def __init__(self) -> None:
        raise TypeError("use Policy.load(path) or Policy.parse(text)")

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read and check the policy file at ``path`` (UTF-8, at most :data:`MAX_POLICY_SIZE`).

        Raises :class:`PolicyError` for a missing, unreadable, oversized or non-UTF-8 file as for
        a wrong one.
        """
        source = os.fspath(path)
        if not isinstance(source, str):
            raise TypeError("the policy path must be a str or a path, not bytes")

        def refuse(message: str, line: int | None = None) -> PolicyError:
            return PolicyError(source, [PolicyProblem("", message, line)])

        try:
            info = os.stat(source)
            if stat.S_ISDIR(info.st_mode):
                raise refuse("is a directory, not a policy file")
            if not stat.S_ISREG(info.st_mode):
                raise refuse("is not a regular file")
            if info.st_size > MAX_POLICY_SIZE:
                raise refuse(f"larger than the limit of {MAX_POLICY_SIZE} bytes (1 MiB)")
            with Path(source).open("rb") as handle:
                data = handle.read(MAX_POLICY_SIZE + 1)
        except FileNotFoundError:
            raise refuse("no such file") from None
        except PermissionError:
            raise refuse("cannot read the file: permission denied") from None
        except OSError as exc:
            raise refuse(f"cannot read the file: {exc.strerror or type(exc).__name__}") from None
        if len(data) > MAX_POLICY_SIZE:
            raise refuse(f"larger than the limit of {MAX_POLICY_SIZE} bytes (1 MiB)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise refuse("not UTF-8: a policy file must be UTF-8 text", line) from None
        return cls.parse(text.removeprefix("\ufeff"), source=source)

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> Policy:
        """Check the policy in ``text`` (TOML); ``source`` names it in problems.

        Raises :class:`PolicyError` listing every problem found.
        """
        if not isinstance(text, str):
            raise TypeError(f"the policy text must be a str, not {type(text).__name__}")
        if not isinstance(source, str):
            raise TypeError("source must be a str")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            line = text.count("\n", 0, exc.start) + 1
            problem = PolicyProblem("", "not valid Unicode (a lone surrogate)", line)
            raise PolicyError(source, [problem]) from None
        if size > MAX_POLICY_SIZE:
            problem = PolicyProblem("", f"larger than the limit of {MAX_POLICY_SIZE} bytes (1 MiB)")
            raise PolicyError(source, [problem])
        positions = _Positions(text)
        raw = cls._toml(text, source, positions)

        found: list[tuple[Loc, _Message]] = []
        version = raw.get("version")
        if version is not None and (type(version) is not int or version != POLICY_VERSION):
            if isinstance(version, int) and not isinstance(version, bool):
                message = f"unsupported policy version {version}: this library reads version 1"
                problem = PolicyProblem("version", message, positions.line_of(("version",)))
                raise PolicyError(source, [problem])
            found.append((("version",), "expected the integer 1"))
            raw = {**raw, "version": POLICY_VERSION}
        model: PolicyFile | None = None
        try:
            model = PolicyFile.model_validate(raw)
        except ValidationError as exc:
            found += _pydantic_problems(exc)
        found += _consistency_problems(raw)
        if found or model is None:
            raise _refuse(source, found, positions)

        policy = object.__new__(cls)
        policy._model = model
        policy._source = source
        policy._text = text
        policy._json = _to_json(model)
        policy._fingerprint = kdf.sha256(canonical_json(policy._json)).hex()
        return policy

    @staticmethod
    def _toml(text: str, source: str, positions: _Positions) -> dict[str, Any]:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            line = column = None
            at = _TOML_POSITION_RE.search(message)
            if at is not None:
                line, column = int(at.group(1)), int(at.group(2))
                message = message[: at.start()]
            elif _TOML_END_RE.search(message):
                message = _TOML_END_RE.sub("", message)
                line = text.rstrip().count("\n") + 1
            if positions.duplicate is not None and message.startswith("Cannot "):
                path, again, first = positions.duplicate
                problem = PolicyProblem(
                    _format_loc(path), f"defined twice (first at line {first})", again
                )
            else:
                problem = PolicyProblem("", f"not valid TOML: {message}", line, column)
        except RecursionError:
            problem = PolicyProblem("", "not valid TOML here: nested too deeply")
        except ValueError:  # an integer of thousands of digits
            problem = PolicyProblem("", "not valid TOML here: a number too large to read")
        raise PolicyError(source, [problem]) from None

    # --- what the file says -----------------------------------------------------------------

    @property
    def source(self) -> str:
        """The path the policy was loaded from, or the ``source`` given to :meth:`parse`."""
        return self._source

    @property
    def text(self) -> str:
        """The TOML text exactly as read (without a byte-order mark), for the store to keep."""
        return self._text

    @property
    def fingerprint(self) -> str:
        """Hex SHA-256 of the canonical JSON of :meth:`to_json`.

        Comments, layout, key order and equivalent durations (``"720h"``, ``"30d"``) do not
        change it; any change of a rule, purpose or controller field does.
        """
        return self._fingerprint

    @property
    def model(self) -> PolicyFile:
        """The validated file (durations in milliseconds, ``*_ms`` fields)."""
        return self._model

    @property
    def controller(self) -> Controller:
        """``[controller]``."""
        return self._model.controller

    @property
    def default(self) -> DefaultRule:
        """``[retention.default]``."""
        return self._model.retention.default

    @property
    def categories(self) -> Mapping[str, CategoryRule]:
        """The conversation categories (``[retention.categories.*]``) by name."""
        return MappingProxyType(self._model.retention.categories)

    @property
    def conversations(self) -> Mapping[str, ConversationRule]:
        """The per-conversation overrides by conversation id."""
        return MappingProxyType(self._model.retention.conversations)

    @property
    def purposes(self) -> Mapping[str, Purpose]:
        """The purposes of processing (``[purposes.*]``) by name."""
        return MappingProxyType(self._model.purposes)

    @property
    def disappearing_allowed(self) -> bool:
        """Whether in-band disappearing-message timers apply (``[disappearing] allowed``)."""
        return self._model.disappearing.allowed

    @property
    def security_measures(self) -> tuple[str, ...]:
        """``[ropa] security_measures``: extra lines for the record of processing."""
        return tuple(self._model.ropa.security_measures)

    def purpose(self, name: str) -> Purpose:
        """The purpose called ``name``; :class:`UsageError` if the policy has none by that name."""
        if not isinstance(name, str):
            raise TypeError("a purpose name is a str")
        found = self._model.purposes.get(name)
        if found is None:
            shown = f' "{name}"' if _NAME_RE.fullmatch(name) else ""
            defined = ", ".join(sorted(self._model.purposes)) or "none"
            raise UsageError(f"unknown purpose{shown} (the policy defines: {defined})")
        return found

    # --- rules ------------------------------------------------------------------------------

    def rule_for(
        self, category: str | None = None, conversation_id: str | None = None
    ) -> RetentionRule:
        """The retention rule of a conversation: its override, else its category, else the
        default.

        An override that names a category builds on that category (whatever ``category`` says);
        keys an override leaves out are inherited from the rule it builds on. An unknown category
        or a malformed conversation id raises :class:`UsageError`.
        """
        override: ConversationRule | None = None
        if conversation_id is not None:
            if not isinstance(conversation_id, str):
                raise TypeError("a conversation id is a str")
            if not _CONVERSATION_ID_RE.fullmatch(conversation_id):
                raise UsageError("not a conversation id (expected 32 lowercase hex digits)")
            override = self._model.retention.conversations.get(conversation_id)
        if category is not None and not isinstance(category, str):
            raise TypeError("a category is a str or None")
        if override is not None and override.category is not None:
            category = override.category
        base: DefaultRule | CategoryRule
        if category is None:
            base, source = self._model.retention.default, "retention.default"
        else:
            found = self._model.retention.categories.get(category)
            if found is None:
                shown = f' "{category}"' if _NAME_RE.fullmatch(category) else ""
                defined = ", ".join(sorted(self._model.retention.categories)) or "none"
                raise UsageError(
                    f"unknown retention category{shown} (the policy defines: {defined})"
                )
            base, source = found, f"retention.categories.{category}"
        max_age, min_age, ground = base.max_age_ms, base.min_age_ms, base.legal_ground
        if override is not None:
            source = f"retention.conversations.{conversation_id}"
            if override.sets_max_age:
                max_age = override.max_age_ms
            if override.sets_min_age:
                min_age, ground = override.min_age_ms, override.legal_ground
        return RetentionRule(
            max_age_ms=max_age,
            min_age_ms=min_age,
            source=source,
            category=category,
            legal_ground=ground if min_age else None,
        )

    def expires_at(
        self, stored_at_ms: int, rule: RetentionRule, timer_ms: int | None = None
    ) -> int | None:
        """When a message stored at ``stored_at_ms`` under ``rule`` must be deleted; None: never.

        ``expires_at = stored_at + max(min_age, min(max_age, timer))``, where a missing
        ``max_age`` (forever) or ``timer`` drops out of the ``min``, and when both are missing
        the message is kept forever. A disappearing-message timer thus shortens storage down to
        the minimum age but never below it, and never extends it beyond the maximum age. When
        the policy does not allow disappearing messages, ``timer_ms`` is ignored. (A legal hold
        outranks all of this: the sweep skips held messages whatever their expiry.)
        """
        for name, value in (("stored_at_ms", stored_at_ms), ("timer_ms", timer_ms)):
            if value is None and name == "timer_ms":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int of milliseconds")
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if not isinstance(rule, RetentionRule):
            raise TypeError("rule must be a RetentionRule (from rule_for)")
        timer = timer_ms if self._model.disappearing.allowed else None
        return retention.expires_at(
            stored_at_ms, min_ms=rule.min_age_ms, max_ms=rule.max_age_ms, timer_ms=timer
        )

    # --- output -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The policy, normalised, as JSON-compatible data (durations in canonical text).

        Defaults are filled in, overrides list only the keys they set; ``json.dumps`` it.
        """
        return json.loads(canonical_json(self._json))  # type: ignore[no-any-return]

    def explain(self) -> str:
        """A summary for people: the rules, the purposes, and notes worth a second look."""
        model = self._model
        c = model.controller
        lines = [
            f"Policy {self._source}: valid (version {POLICY_VERSION})",
            f"Fingerprint: {self._fingerprint}",
            f"Controller: {c.name} <{c.contact}>"
            + (f"; DPO: {c.dpo}" if c.dpo else "")
            + (f"; representative: {c.representative}" if c.representative else ""),
            "",
            "Retention (a conversation override beats its category, a category beats the default):",
            f"  default: {self.rule_for().describe()}",
        ]
        for name, category in sorted(model.retention.categories.items()):
            rule = self.rule_for(name)
            lines.append(f"  category {name} ({category.description}): {rule.describe()}")
        for cid in sorted(model.retention.conversations):
            rule = self.rule_for(None, cid)
            base = f"over category {rule.category}" if rule.category else "over the default"
            lines.append(f"  conversation {cid} ({base}): {rule.describe()}")
        if model.disappearing.allowed:
            lines += [
                "",
                "Disappearing messages: allowed. A timer shortens storage down to the rule's "
                "minimum age, never below it, and never extends it beyond the maximum age; a "
                "legal hold outranks any timer.",
            ]
        else:
            lines += ["", "Disappearing messages: not allowed (timers are ignored)."]
        lines += ["", "Purposes:" if model.purposes else "Purposes: none"]
        for name, purpose in sorted(model.purposes.items()):
            letter = _ARTICLE_6_LETTER[purpose.legal_basis]
            text = f"  {name}: {purpose.legal_basis} (GDPR Art. 6(1)({letter}))"
            if purpose.requires_consent:
                text += f"; requires consent to notice {purpose.notice_version}"
                if purpose.consent_valid_for_ms is not None:
                    text += f", valid for {format_duration(purpose.consent_valid_for_ms)}"
            if purpose.categories:
                text += "; categories: " + ", ".join(purpose.categories)
            lines.append(text)
        notes = self._notes()
        if notes:
            lines += ["", "Notes:", *(f"  - {note}" for note in notes)]
        return "\n".join(lines) + "\n"

    def _notes(self) -> list[str]:
        """Legal but worth a look: keeping forever, consent without expiry, unused categories."""
        model = self._model
        notes = []
        if model.retention.default.max_age_ms is None:
            notes.append("the default rule keeps messages forever (GDPR Art. 5(1)(e))")
        for name, category in sorted(model.retention.categories.items()):
            if category.max_age_ms is None:
                notes.append(f"category {name} keeps messages forever")
        used = {c for p in model.purposes.values() for c in p.categories}
        for name in sorted(set(model.retention.categories) - used):
            if model.purposes:
                notes.append(f"category {name} is used by no purpose")
        for name, purpose in sorted(model.purposes.items()):
            if purpose.requires_consent and purpose.consent_valid_for_ms is None:
                notes.append(f"consent for {name} does not lapse with time (no consent_valid_for)")
            if purpose.requires_consent and purpose.notice_sha256 is None:
                notes.append(f"purpose {name} has no notice_sha256 to prove the notice's text")
        return notes

    # --- identity ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return kdf.constant_time_equal(
            self._fingerprint.encode("ascii"), other._fingerprint.encode("ascii")
        )

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        return f"Policy(source={self._source!r}, fingerprint={self._fingerprint[:16]}...)"


def _to_json(model: PolicyFile) -> dict[str, Any]:
    def rule(r: DefaultRule | CategoryRule) -> dict[str, Any]:
        return {
            "max_age": format_duration(r.max_age_ms),
            "min_age": format_duration(r.min_age_ms),
            "legal_ground": r.legal_ground,
        }

    def override(r: ConversationRule) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if r.category is not None:
            out["category"] = r.category
        if r.sets_max_age:
            out["max_age"] = format_duration(r.max_age_ms)
        if r.sets_min_age:
            out["min_age"] = format_duration(r.min_age_ms)
            out["legal_ground"] = r.legal_ground
        return out

    def purpose(p: Purpose) -> dict[str, Any]:
        data = p.model_dump(by_alias=True)
        valid_for = p.consent_valid_for_ms
        data["consent_valid_for"] = None if valid_for is None else format_duration(valid_for)
        return data

    retention = model.retention
    return {
        "version": model.version,
        "controller": model.controller.model_dump(),
        "retention": {
            "default": rule(retention.default),
            "categories": {
                name: {"description": c.description, **rule(c)}
                for name, c in retention.categories.items()
            },
            "conversations": {cid: override(o) for cid, o in retention.conversations.items()},
        },
        "disappearing": {"allowed": model.disappearing.allowed},
        "purposes": {name: purpose(p) for name, p in model.purposes.items()},
        "ropa": {"security_measures": list(model.ropa.security_measures)},
    }
