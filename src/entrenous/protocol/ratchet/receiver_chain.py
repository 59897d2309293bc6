"""A receiving chain: the peer's ratchet key, our chain key for it, and its skipped keys.

Skipped message keys (for messages that have not arrived yet) are kept in message-number order,
at most :data:`MAX_SKIPPED_KEYS_PER_CHAIN` per chain; beyond that the oldest are discarded first
(RAT-06). A key is deleted when its message is decrypted (RAT-04).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from entrenous.protocol.constants import MAX_SKIPPED_KEYS_PER_CHAIN


@dataclass(slots=True, eq=False)
class ReceiverChain:
    """One receiving chain. Holds secrets: its repr shows the key prefix and counters only."""

    ratchet_key: bytes
    chain_key: bytes
    next_n: int
    skipped: dict[int, bytes] = field(default_factory=dict)

    def add_skipped(self, keys: list[tuple[int, bytes]]) -> None:
        """Remember skipped message keys, discarding the oldest beyond the per-chain cap."""
        for n, key in keys:
            self.skipped[n] = key
        excess = len(self.skipped) - MAX_SKIPPED_KEYS_PER_CHAIN
        if excess > 0:
            for n in sorted(self.skipped)[:excess]:
                del self.skipped[n]

    def copy(self) -> ReceiverChain:
        """A deep copy (the skipped-key map is not shared)."""
        return ReceiverChain(self.ratchet_key, self.chain_key, self.next_n, dict(self.skipped))

    def __repr__(self) -> str:
        return (
            f"ReceiverChain(ratchet_key={self.ratchet_key[:4].hex()}…, next_n={self.next_n}, "
            f"skipped={len(self.skipped)})"
        )
