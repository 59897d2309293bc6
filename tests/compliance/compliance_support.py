"""Helpers of the compliance tests: a clock the test moves, policies, a bank and a customer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from entrenous import Client, Conversation
from entrenous.compliance.policy import Policy

DAY_MS = 86_400_000
#: 2026-01-01T00:00:00Z
START = 1_767_225_600.0

POLICY = """\
version = 1

[controller]
name = "Example Bank AG"
contact = "privacy@bank.example"

[retention.default]
max_age = "30d"

[retention.categories.advice]
description = "Investment advice conversations"
max_age = "5y"

[retention.categories.contract]
description = "Conversations that form or change a contract"
max_age = "11y"
min_age = "10y"
legal_ground = "HGB 257, AO 147"

[retention.categories.marketing]
description = "Offers sent with consent"
max_age = "90d"

[purposes.marketing]
description = "Offers for products the customer does not hold yet"
legal_basis = "consent"
requires_consent = true
notice_version = "2026-01"
consent_valid_for = "365d"
categories = ["marketing"]

[purposes.service]
description = "Answering the customer's questions about their accounts"
legal_basis = "contract"
requires_consent = false
categories = ["advice", "contract"]
"""

NOTICE = "We would like to send you offers for our products. You can withdraw at any time."


def bank_policy(name: str, contact: str, default_max_age: str) -> str:
    """A small policy for the tests that only need one: the default category kept for
    ``default_max_age``, "contract" conversations ten years (HGB 257), and a "marketing" purpose
    that needs consent (notice version v1)."""
    return f"""\
version = 1

[controller]
name = "{name}"
contact = "{contact}"

[retention.default]
max_age = "{default_max_age}"

[retention.categories.contract]
description = "Contract conversations"
max_age = "11y"
min_age = "10y"
legal_ground = "HGB 257"

[purposes.marketing]
description = "Offers"
legal_basis = "consent"
requires_consent = true
notice_version = "v1"
"""


def policy(text: str = POLICY) -> Policy:
    """The test policy (or another text)."""
    return Policy.parse(text)


class Clock:
    """A clock the test moves by hand (seconds since the epoch, like time.time)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, *, days: float = 0, seconds: float = 0) -> None:
        self.now += days * 86_400 + seconds


@dataclass
class Parties:
    """A bank (with the policy) and a customer (without), one conversation each way."""

    bank: Client
    customer: Client
    bank_conv: Conversation
    customer_conv: Conversation
    bank_path: Path
    customer_path: Path
    bank_key: bytes
    customer_key: bytes
    clock: Clock

    def close(self) -> None:
        self.bank.close()
        self.customer.close()

    def reopen_bank(self) -> Client:
        self.bank.close()
        self.bank = Client.open(self.bank_path, key=self.bank_key, clock=self.clock)
        return self.bank

    def exchange(self, count: int, *, text: str = "message") -> list[str]:
        """``count`` messages customer -> bank; the bank's message ids."""
        ids = []
        for i in range(count):
            received = self.bank.receive(self.customer_conv.send(f"{text} {i}"))
            ids.append(received.message.id)
        return ids


def parties(
    directory: Path, *, clock: Clock | None = None, bank_policy: Policy | None = None
) -> Parties:
    """A bank (policy applied) and a customer, after one message each way."""
    clock = clock or Clock()
    bank_key, customer_key = os.urandom(32), os.urandom(32)
    bank_path, customer_path = directory / "bank.db", directory / "customer.db"
    bank = Client.open(bank_path, key=bank_key, clock=clock, policy=bank_policy or policy())
    customer = Client.open(customer_path, key=customer_key, clock=clock)
    customer_conv = customer.start_conversation(bank.prekey_bundle(), peer="bank")
    received = bank.receive(customer_conv.send("hello"))
    customer.receive(received.conversation.send("hello back"))
    return Parties(
        bank,
        customer,
        received.conversation,
        customer_conv,
        bank_path,
        customer_path,
        bank_key,
        customer_key,
        clock,
    )
