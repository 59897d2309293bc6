"""Library bugs the model of two clients (test_two_clients.py) found, each as a plain example."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from reference import NOTICE, POLICY, PURPOSE  # noqa: E402

from entrenous import Client  # noqa: E402
from entrenous.compliance.policy import Policy  # noqa: E402

START_S = 1_767_225_600


class Clock:
    def __init__(self) -> None:
        self.now = float(START_S)

    def __call__(self) -> float:
        return self.now


@pytest.mark.req("MDL-04")
def test_an_export_holds_the_audit_events_of_consent_given_in_band(tmp_path: Path) -> None:
    """Found by the model: the ``consent.recorded`` event of a consent the subject signed in a
    conversation names the pseudonym of the conversation's ledger key, neither the subject's
    pseudonym nor the conversation id, so the subject's export left it out while it held the
    record itself (EXP-01)."""
    clock = Clock()
    with (
        Client.open(
            tmp_path / "bank.db", key=os.urandom(32), clock=clock, policy=Policy.parse(POLICY)
        ) as bank,
        Client.open(tmp_path / "customer.db", key=os.urandom(32), clock=clock) as customer,
    ):
        theirs = customer.start_conversation(bank.prekey_bundle())
        ours = bank.receive(theirs.send("hello")).conversation
        ours.set_subject("cust-1")
        request = customer.receive(ours.request_consent(PURPOSE, notice=NOTICE))
        request_id = request.message.content["request"]["request_id"]
        bank.receive(theirs.answer_consent(request_id, give=True))

        export = bank.export("cust-1")
        [record] = export["consent_records"]
        consent_events = [e for e in export["audit_events"] if e["action"] == "consent.recorded"]
        assert [e["details"]["record"] for e in consent_events] == [record["record_id"]]
        # The export of another subject still leaves it out (EXP-03).
        assert not [
            e for e in bank.export("cust-2")["audit_events"] if e["action"] == "consent.recorded"
        ]
