"""``entrenous demo``: a customer and her bank's support bot, end to end, on encrypted stores.

Both ends run in this process, each with its own store; the demo plays the relay in between and
prints what the relay sees beside what each end keeps.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from entrenous.client import Client
from entrenous.errors import EntrenousError


def _show(envelope: bytes) -> str:
    return f"{len(envelope):>5} bytes  {envelope[:20].hex()}…"


def _files(folder: Path, name: str) -> str:
    sizes = [
        f"{p.name} {p.stat().st_size:,} B"
        for p in sorted(folder.iterdir())
        if p.name.startswith(name) and not p.name.endswith(".lock")
    ]
    return ", ".join(sizes)


def run(directory: str | None = None) -> int:
    """Run the demo with its stores in ``directory`` (default: a temporary one)."""
    with tempfile.TemporaryDirectory(prefix="entrenous-demo-") as tmp:
        folder = Path(directory) if directory else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        bank_db, customer_db = folder / "bank.db", folder / "customer.db"
        if bank_db.exists() or customer_db.exists():
            print(f"demo: {folder} already has demo stores; remove them or choose another --dir")
            return 1
        bank_key = os.urandom(32)  # a real app takes this from the platform keystore
        passphrase = "correct horse battery staple"  # noqa: S105 - the demo's sample passphrase
        relay: list[bytes] = []

        def carry(label: str, envelope: bytes) -> bytes:
            relay.append(envelope)
            print(f"   relay sees {label}: {_show(envelope)}")
            return envelope

        print("entrenous demo: a customer and her bank's support bot\n")
        with (
            Client.open(bank_db, key=bank_key) as bank,
            Client.open(customer_db, passphrase=passphrase) as customer,
        ):
            bundle = bank.prekey_bundle()
            print(f"1. The bank publishes a signed prekey bundle ({len(bundle):,} bytes).")
            print("2. The customer starts a conversation from it, with no round trip:")
            conv = customer.start_conversation(bundle, peer="bank")
            question = "Guten Tag, ich habe eine Frage zu meinem Konto"
            received = bank.receive(carry("customer → bank", conv.send(question)))
            print(f"   bank bot reads: {received.message.text!r}")
            print("3. The bot answers with a structured payload (buttons):")
            payload = {"text": "Gern! Worum geht es?", "buttons": ["Konto", "Karte"]}
            bot_conv = received.conversation
            answer = customer.receive(carry("bank → customer", bot_conv.send(payload)))
            print(f"   customer reads: {answer.message.data}")
            customer.receive(carry("bank → customer", bot_conv.send("Ich höre.")))
            bank.receive(carry("customer → bank", conv.send("Karte, bitte.")))
            print("4. Both compare the safety number (aloud, or by QR code):")
            print(f"   customer: {conv.safety_number()}")
            print(f"   bank:     {bot_conv.safety_number()}")
            conv.mark_verified(bot_conv.safety_number())
            print(f"   the customer marks it verified: {conv.is_verified}")
            bot_id, conv_id = bot_conv.id, conv.id

        print("5. What each end keeps (SQLCipher 4, bodies encrypted again per conversation):")
        for name in ("bank.db", "customer.db"):
            head = (folder / name).read_bytes()
            leaked = any(t.encode() in head for t in (question, "Karte, bitte", "Worum geht es"))
            print(f"   {_files(folder, name)}")
            print(f"     first bytes {head[:16].hex()}…  plaintext in the file: {leaked}")

        print("6. Both restart, reopen their stores and read the history:")
        with (
            Client.open(bank_db, key=bank_key) as bank,
            Client.open(customer_db, passphrase=passphrase) as customer,
        ):
            for who, client, conversation_id in (
                ("customer", customer, conv_id),
                ("bank", bank, bot_id),
            ):
                history = client.conversation(conversation_id).history(limit=10)
                print(f"   {who} ({len(history)} messages, newest first):")
                for message in history:
                    arrow = "→" if message.direction == "sent" else "←"
                    print(f"     {arrow} {message.content}")
            bot_conv = bank.conversation(bot_id)
            conv = customer.conversation(conv_id)
            print(f"   still verified after the restart: {conv.is_verified}")

            print("7. The relay misbehaves:")
            envelope = carry("customer → bank", conv.send("Und die PIN?"))
            forged = bytearray(envelope)
            forged[-5] ^= 0x01
            for label, attempt in (("flips one bit", bytes(forged)), ("delivers", envelope)):
                try:
                    print(f"   relay {label}: bank reads {bank.receive(attempt).message.text!r}")
                except EntrenousError as exc:
                    print(f"   relay {label}: refused with {type(exc).__name__} ({exc})")
            try:
                bank.receive(envelope)
            except EntrenousError as exc:
                print(f"   relay replays it: refused with {type(exc).__name__} ({exc})")

        (folder / "relay.log").write_text("".join(e.hex() + "\n" for e in relay))
        os.chmod(folder / "relay.log", 0o600)
        where = folder if directory else "a temporary directory, now deleted"
        print(f"\nThe relay saw {len(relay)} envelopes, ciphertext only. Files: {where}.")
    return 0
