"""``entrenous demo``: a customer and her bank's support bot, end to end.

The demo runs both ends in one process and plays the relay in between, printing what each side
holds and what the relay sees. It uses the protocol layer directly; the encrypted store and the
``Client`` API build on it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from entrenous.errors import EntrenousError
from entrenous.protocol import Identity, PrekeyPool, Session


def _show(envelope: bytes) -> str:
    return f"{len(envelope):>5} bytes  {envelope[:24].hex()}…"


def run(directory: str | None = None, *, now: int | None = None) -> int:
    """Run the demo; the relay's log goes to ``directory`` (default: a temporary one)."""
    import time

    clock = int(time.time()) if now is None else now
    with tempfile.TemporaryDirectory(prefix="entrenous-demo-") as tmp:
        folder = Path(directory) if directory else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        relay_log = folder / "relay.log"
        relay: list[bytes] = []

        def carry(sender: str, envelope: bytes) -> bytes:
            relay.append(envelope)
            print(f"   relay sees {sender}: {_show(envelope)}")
            return envelope

        print("entrenous demo: a customer and her bank's support bot\n")
        bank, customer = Identity.generate(), Identity.generate()
        prekeys = PrekeyPool.create(bank, now=clock)
        bundle = prekeys.issue_bundle(now=clock)
        print(f"1. The bank publishes a signed prekey bundle ({len(bundle)} bytes).")

        print("2. The customer starts a conversation from it, with no round trip:")
        conv = Session.initiate(customer, bundle)
        question = "Guten Tag, ich habe eine Frage zu meinem Konto"
        envelope = carry("customer → bank", conv.encrypt(question.encode()))
        bot, text = Session.respond(bank, prekeys, envelope, now=clock)
        print(f"   bank bot reads: {text.decode()!r}")

        print("3. The bot answers with a structured payload (buttons):")
        payload = {"text": "Gern!", "buttons": ["Konto", "Karte"]}
        reply = carry("bank → customer", bot.encrypt(json.dumps(payload).encode()))
        print(f"   customer reads: {json.loads(conv.decrypt(reply))}")

        print("4. Both compare the safety number (aloud, or by QR code):")
        print(f"   customer: {conv.safety_number()}")
        print(f"   bank:     {bot.safety_number()}")
        print(f"   match: {conv.safety_number().matches(bot.safety_number())}")

        print("5. Both restart: each saves its session state and loads it again.")
        conv = Session.from_bytes(conv.to_bytes())
        bot = Session.from_bytes(bot.to_bytes())
        envelope = carry("customer → bank", conv.encrypt(b"Danke, die Karte bitte."))
        print(f"   bank bot reads after the restart: {bot.decrypt(envelope).decode()!r}")

        print("6. The relay misbehaves:")
        envelope = carry("customer → bank", conv.encrypt(b"Und die PIN?"))
        forged = bytearray(envelope)
        forged[-5] ^= 0x01
        for label, attempt in (("flips one bit", bytes(forged)), ("delivers", envelope)):
            try:
                print(f"   relay {label}: bank bot reads {bot.decrypt(attempt).decode()!r}")
            except EntrenousError as exc:
                print(f"   relay {label}: refused with {type(exc).__name__} ({exc})")
        try:
            bot.decrypt(envelope)
        except EntrenousError as exc:
            print(f"   relay replays it: refused with {type(exc).__name__} ({exc})")

        relay_log.write_text("".join(e.hex() + "\n" for e in relay))
        os.chmod(relay_log, 0o600)
        shown = relay_log if directory else "a temporary directory"
        print(f"\nThe relay saw {len(relay)} envelopes, ciphertext only (logged to {shown}).")
    return 0
