"""Helpers of the leak checks: the secrets a run has, where to look for them, and a fast scanner.

Not a test module. A :class:`Scanner` knows every secret of a run (store keys, passphrases, the
data-key file's key and its data keys, identity and prekey private keys, the pseudonym key, the
ratchet's root, chain and skipped message keys, read from the stores with the test's knowledge of
the internals) and every plaintext marker (unique strings sent as message text), and looks for
them in texts and bytes in every encoding a leak could take:

* raw bytes (in a bytes haystack), their ``repr`` escapes and their Latin-1 decoding (in text);
* hexadecimal, both cases;
* base64, standard and urlsafe, padded or not, at the three alignments a secret can have inside
  a longer base64 blob (the characters that carry only the secret's bits are looked for);
* base32; and, for the passphrase and the markers, their UTF-8 text too.

Every form is cut into windows of :data:`WINDOW` characters (bytes) and every window is indexed,
so a text is scanned once, window by window, with a set lookup each: a leak of any 8 bytes of a
32-byte key (16 hex digits) is caught, not only a whole key. Needles shorter than a window (the
demo's short plaintexts) are looked for as they are.
"""

from __future__ import annotations

import base64
import gc
import logging
import math
import sys
import traceback
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS, _TESTS / "protocol"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from protocol_support import R_CHAINS, R_OURS, R_ROOT, R_SENDING  # noqa: E402

from entrenous.client import Client  # noqa: E402
from entrenous.protocol import Session  # noqa: E402
from entrenous.store.keys import key_file_key  # noqa: E402

#: Characters (or bytes) per indexed window: 16 hex digits are 8 bytes of a key.
WINDOW = 16


@dataclass(frozen=True)
class Finding:
    """One needle found in one haystack."""

    where: str
    label: str
    form: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.label} ({self.form}) in {self.where}: …{self.excerpt}…"


def _b64_cores(secret: bytes) -> Iterator[tuple[str, str]]:
    """The base64 characters that carry only ``secret``'s bits, at the three alignments."""
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + secret).decode()
        start = math.ceil(8 * offset / 6)  # characters holding a bit of the prefix
        end = ((offset + len(secret)) // 3) * 4  # characters a following byte cannot change
        core = encoded[start:end]
        yield f"base64@{offset}", core
        yield f"urlsafe base64@{offset}", core.replace("+", "-").replace("/", "_")


def text_forms(value: bytes, *, text: str | None = None) -> Iterator[tuple[str, str]]:
    """Every text form of a secret worth looking for (see the module)."""
    hexed = value.hex()
    yield "hex", hexed
    yield "HEX", hexed.upper()
    yield from _b64_cores(value)
    yield "base32", base64.b32encode(value).decode().rstrip("=")
    yield "repr", repr(value)[2:-1]
    yield "latin-1", value.decode("latin-1")
    if text is not None:
        yield "text", text


@dataclass(repr=False)
class Scanner:
    """Every secret and marker of a run, indexed for a fast scan."""

    _text: dict[str, tuple[str, str]] = field(default_factory=dict)
    _raw: dict[bytes, tuple[str, str]] = field(default_factory=dict)
    _short: list[tuple[str, str, str]] = field(default_factory=list)
    secrets: dict[bytes, str] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)

    def add_secret(self, label: str, value: bytes | str) -> None:
        """A secret (bytes, or text such as a passphrase) never to appear anywhere."""
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if raw in self.secrets or not raw:
            return
        self.secrets[raw] = label
        self._index(f"secret {label}", raw, value if isinstance(value, str) else None)

    def add_marker(self, marker: str, owner: str) -> None:
        """A plaintext marker, allowed only where ``owner``'s messages may be shown."""
        self.markers[marker] = owner
        self._index(f"marker of {owner}", marker.encode("utf-8"), marker)

    def _index(self, label: str, raw: bytes, text: str | None) -> None:
        for form, value in text_forms(raw, text=text):
            if form == "latin-1" and text is not None:
                continue  # the same as the text form for ASCII; UTF-8 text is the one shown
            if len(value) < WINDOW:
                # Short needles are looked for as they are, in the forms that cannot match by
                # chance: a 5-letter word or 8 hex digits, not 3 base64 characters.
                if (form == "text" and len(value) >= 5) or (
                    form in ("hex", "HEX") and len(value) >= 8
                ):
                    self._short.append((label, form, value))
                continue
            for i in range(len(value) - WINDOW + 1):
                self._text.setdefault(value[i : i + WINDOW], (label, form))
        for i in range(len(raw) - WINDOW + 1):
            self._raw.setdefault(raw[i : i + WINDOW], (label, "raw bytes"))

    def find(
        self, haystack: str | bytes, where: str, *, allowed_owners: Iterable[str] = ()
    ) -> list[Finding]:
        """Every needle in ``haystack`` (markers of ``allowed_owners`` excepted)."""
        allowed = {f"marker of {owner}" for owner in allowed_owners}
        found: dict[tuple[str, str], Finding] = {}

        def hit(label: str, form: str, text: str, at: int) -> None:
            if label not in allowed and (label, form) not in found:
                excerpt = text[max(0, at - 20) : at + WINDOW + 20]
                found[label, form] = Finding(where, label, form, excerpt)

        if isinstance(haystack, bytes | bytearray):
            data = bytes(haystack)
            raw_index = self._raw
            for i in range(len(data) - WINDOW + 1):
                entry = raw_index.get(data[i : i + WINDOW])
                if entry is not None:
                    hit(*entry, data.decode("latin-1"), i)
            text = data.decode("latin-1")
        else:
            text = haystack
        index = self._text
        for i in range(len(text) - WINDOW + 1):
            entry = index.get(text[i : i + WINDOW])
            if entry is not None:
                hit(*entry, text, i)
        for label, form, value in self._short:
            at = text.find(value)
            if at != -1:
                hit(label, form, text, at)
        return list(found.values())


# --- gathering the secrets of a store ------------------------------------------------------------


def ratchet_secrets(state: bytes) -> list[bytes]:
    """Root, ratchet, chain and skipped message keys of a saved session."""
    ratchet = msgpack.unpackb(Session.from_bytes(state).to_bytes(), raw=False)[7]
    found = [ratchet[R_ROOT]]
    found += [k for k in (ratchet[R_OURS], ratchet[R_SENDING]) if k is not None]
    for _ratchet_key, chain_key, _next_n, flat in ratchet[R_CHAINS]:
        found.append(chain_key)
        found += flat[1::2]
    return [bytes(k) for k in found]


def prekey_secrets(saved: bytes) -> list[bytes]:
    """Every private key and seed of a saved prekey pool."""
    _version, _next_id, generations, one_time, one_time_kem = msgpack.unpackb(saved, raw=False)
    found: list[bytes] = []
    for _spk_id, spk, _kem_id, kem_seed, *_rest in generations:
        found += [spk, kem_seed]
    found += [key for _id, key in one_time]
    found += [seed for _id, seed in one_time_kem]
    return [bytes(k) for k in found]


def gather(scanner: Scanner, name: str, client: Client, store_key: bytes) -> None:
    """Add every secret ``client``'s store holds now (call it after each step: keys change)."""
    scanner.add_secret(f"{name} store key", store_key)
    scanner.add_secret(f"{name} data-key file key", key_file_key(store_key))
    store = client._store
    for secret_name, blob in store._connection.execute("SELECT name, value FROM secrets"):
        value = bytes(blob)
        if secret_name == "identity":
            scanner.add_secret(f"{name} identity signing seed", value[1:33])
            scanner.add_secret(f"{name} identity X25519 key", value[33:65])
        elif secret_name == "prekeys":
            for key in prekey_secrets(value):
                scanner.add_secret(f"{name} prekey private key", key)
        else:
            scanner.add_secret(f"{name} {secret_name}", value)
    for (key,) in store._keys._connection.execute("SELECT key FROM data_keys"):
        scanner.add_secret(f"{name} data key", bytes(key))
    for (state,) in store._connection.execute("SELECT state FROM conversations"):
        for key in ratchet_secrets(bytes(state)):
            scanner.add_secret(f"{name} ratchet key", key)
    for session in client._sessions.values():
        for key in ratchet_secrets(session.to_bytes()):
            scanner.add_secret(f"{name} ratchet key", key)


# --- where to look -------------------------------------------------------------------------------


class Collector(logging.Handler):
    """A root handler at DEBUG that keeps every record of every logger, formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def debug_logging() -> Iterator[Collector]:
    """Every logger at DEBUG into one collector (third-party loggers and warnings included)."""
    root = logging.getLogger()
    collector = Collector()
    saved = root.level, {name: lg.level for name, lg in _loggers()}
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    logging.captureWarnings(True)  # warnings go to the "py.warnings" logger, so here too
    for _name, lg in _loggers():
        lg.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            yield collector
    finally:
        logging.captureWarnings(False)
        root.removeHandler(collector)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def _loggers() -> list[tuple[str, logging.Logger]]:
    return [
        (name, lg)
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    ]


def describe_exception(exc: BaseException) -> str:
    """str, repr, args and the formatted traceback of ``exc`` and of every exception behind it
    (``__cause__`` and ``__context__``, suppressed contexts included: a debugger or an error
    reporter can reach them)."""
    parts: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts += [type(current).__qualname__, str(current), repr(current)]
        parts += [repr(arg) for arg in current.args]
        parts += [repr(v) for k, v in vars(current).items()] if hasattr(current, "__dict__") else []
        parts += traceback.format_exception(current)
        parts += [repr(n) for n in getattr(current, "__notes__", ())]
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "\n".join(parts)


def library_object_reprs() -> list[tuple[str, str]]:
    """``repr`` and ``str`` of every live object of a class of the library."""
    out: list[tuple[str, str]] = []
    for obj in gc.get_objects():
        cls = type(obj)
        module = cls.__dict__.get("__module__") if isinstance(cls.__dict__, dict) else None
        module = getattr(cls, "__module__", None) if module is None else module
        if not isinstance(module, str) or not module.startswith("entrenous"):
            continue
        if isinstance(obj, type):
            continue
        if isinstance(obj, BaseException):
            continue  # exceptions are described with their chains
        try:
            shown = f"{obj!r}\n{obj!s}"
        except Exception as exc:
            shown = f"<repr failed: {type(exc).__name__}>"
        out.append((f"repr of a {cls.__module__}.{cls.__qualname__}", shown))
    return out


def report(findings: list[Finding]) -> str:
    """A message naming every finding (for an assertion)."""
    return "secrets or plaintext leaked:\n" + "\n".join(f"  {f}" for f in findings[:40])


def as_text(value: Any) -> str:
    """A value (str, bytes, or anything with a repr) as text to scan."""
    if isinstance(value, str):
        return value
    return repr(value)
