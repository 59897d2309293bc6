"""Fuzz target: consent requests and records from the peer, and record verification.

The first byte picks the mode:

* 0: the rest is a record's bytes: ``ConsentRecord.from_bytes``, then, if it parses, ``verify``
  against alice's identity and the controller's request, ``state_at`` and the exports;
* 1: the rest is JSON (parsed leniently, as an application might): ``ConsentRequest.from_content``
  and ``ConsentRecord.from_content``;
* 2: the rest drives an ``atheris.FuzzedDataProvider`` that edits a real record's or request's
  content: fields removed, added, or replaced by values of any JSON-ish type (nested lists and
  objects, floats, huge integers, bytes, strings with control characters or lone surrogates).

Allowed: ``InvalidConsentRecord`` and ``InvalidConsentRequest`` only (peer errors; the signature
check's ``ConsentSignatureInvalid`` is an ``InvalidConsentRecord``).
"""

import contextlib
import json
import sys

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous.compliance.consent import ConsentRecord, ConsentRequest
    from entrenous.errors import InvalidConsentRecord, InvalidConsentRequest

WORLD = fuzzlib.consent_world()
ALICE = fuzzlib.protocol_world().alice.public
TEMPLATES = [WORLD.request.to_content(), *(r.to_content() for r in WORLD.records)]
KEYS = sorted({k for t in TEMPLATES for k in t} | {"", "x", "TYPE"})
INTERESTING = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**32,
    2**63,
    2**64 + 1,
    10**30,
    1.0,
    float("nan"),
    float("inf"),
    -0.0,
    "",
    " ",
    "\x00",
    "\ud800",
    "a" * 300,
    "A" * 32,
    "0" * 32,
    "0" * 64,
    "0" * 128,
    "0" * 258,
    "g" * 32,
    b"\x00" * 16,
    [],
    {},
    [[]],
    {"a": {}},
    "entrenous/consent-record",
    "entrenous/consent-request",
    "given",
    "refused",
    "withdrawn",
    "in-band signed",
    "recorded by controller",
    "consent",
    "explicit consent",
    "marketing",
    fuzzlib.NOW_MS,
    fuzzlib.NOW_MS * 10**6,
    253402300799999,
    253402300800000,
]
INTERESTING += [v for t in TEMPLATES for v in t.values()]


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    kind = fdp.ConsumeIntInRange(0, 8 if depth < 3 else 5)
    if kind == 0:
        return INTERESTING[fdp.ConsumeIntInRange(0, len(INTERESTING) - 1)]
    if kind == 1:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))
    if kind == 2:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 80))
    if kind == 3:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)).hex()
    if kind == 4:
        return fdp.ConsumeRegularFloat()
    if kind == 5:
        return fdp.ConsumeBool()
    if kind == 6:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if kind == 7:
        return {
            KEYS[fdp.ConsumeIntInRange(0, len(KEYS) - 1)]: _value(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 4))
        }
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 20))


def _edited(fdp: atheris.FuzzedDataProvider) -> object:
    content: dict[object, object] = dict(TEMPLATES[fdp.ConsumeIntInRange(0, len(TEMPLATES) - 1)])
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        action = fdp.ConsumeIntInRange(0, 3)
        key = KEYS[fdp.ConsumeIntInRange(0, len(KEYS) - 1)]
        if action == 0:
            content.pop(key, None)
        elif action == 1:
            content[key] = _value(fdp)
        elif action == 2:
            content[fdp.ConsumeIntInRange(0, 2)] = _value(fdp)  # a non-string key
        else:
            return _value(fdp)  # not an object at all
    return content


def _check_record(record: ConsentRecord) -> None:
    repr(record)
    record.state_at(fuzzlib.NOW_MS)
    record.to_iso27560(now_ms=fuzzlib.NOW_MS)
    if ConsentRecord.from_bytes(record.to_bytes()) != record:
        raise AssertionError("an accepted record does not round-trip")
    if record.method == "in-band signed":
        record.verify(ALICE, WORLD.request, now_ms=fuzzlib.NOW_MS)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    try:
        if mode == 0:
            _check_record(ConsentRecord.from_bytes(rest))
            return
        if mode == 1:
            try:
                content = json.loads(rest)
            except (ValueError, RecursionError):
                return
        else:
            content = _edited(atheris.FuzzedDataProvider(rest))
        with contextlib.suppress(InvalidConsentRequest):
            repr(ConsentRequest.from_content(content))
        _check_record(ConsentRecord.from_content(content))
    except (InvalidConsentRecord, InvalidConsentRequest):
        pass


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
