"""The Double Ratchet state machine.

Everything that changes a ratchet's state lives in this file. The rules:

* **Sending** (RAT-01, RAT-03): each message takes the next key of the sending chain, and the
  chain moves on at once. The DH ratchet step is lazy, as in Olm: after a message with a new
  ratchet key of the peer's arrives, our next *send* draws a fresh ratchet key pair and mixes
  ``DH(ours, theirs)`` into the root key. The output equals the eager form of Signal's
  specification; the key pair is drawn only when it is needed.
* **Receiving** (RAT-04..RAT-08): a message on a known chain uses a skipped key (then deleted)
  or advances the chain; a message with a new ratchet key first skips the rest of the current
  chain up to the header's ``previous_length``, then takes a DH step. At most :data:`MAX_SKIP`
  keys are derived for one message, at most :data:`MAX_SKIPPED_KEYS_PER_CHAIN` kept per chain
  and :data:`MAX_RECEIVING_CHAINS` chains kept, oldest evicted first.
* **Atomicity** (RAT-08): decryption computes every change on the side and commits only after
  the AEAD tag verified and the caller's ``finish`` step (unpadding) succeeded. A forged,
  tampered, replayed or refused message leaves the state byte for byte unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from entrenous._primitives import aead
from entrenous._primitives.dh import X25519PrivateKey, X25519PublicKey
from entrenous.errors import (
    AuthenticationError,
    LimitExceeded,
    MessageGapTooLarge,
    ReplayError,
    StateError,
)
from entrenous.protocol import wire
from entrenous.protocol.constants import (
    MAX_RECEIVING_CHAINS,
    MAX_RETIRED_CHAINS,
    MAX_SKIP,
    MAX_SKIPPED_KEYS_PER_CHAIN,
    MAX_UINT32,
)
from entrenous.protocol.ratchet.chain_key import MESSAGE_KEY_SIZE, chain_step, nonce
from entrenous.protocol.ratchet.chain_key import skip as skip_keys
from entrenous.protocol.ratchet.receiver_chain import ReceiverChain
from entrenous.protocol.ratchet.root_key import root_step

T = TypeVar("T")


class Header(NamedTuple):
    """The ratchet header of a message: sent in clear, authenticated as associated data."""

    ratchet_key: bytes
    previous_length: int
    n: int


def _open(message_key: bytes, n: int, ciphertext: bytes, ad: bytes) -> bytes:
    return aead.open_(message_key, nonce(n), ciphertext, ad)


class DoubleRatchet:
    """The ratchet state of one conversation. Its repr shows counters only."""

    __slots__ = (
        "_must_ratchet",
        "_ours",
        "_previous_length",
        "_receiving",
        "_retired",
        "_root",
        "_sending",
        "_sending_n",
        "_theirs",
    )

    def __init__(self) -> None:
        self._root = b""
        self._ours: X25519PrivateKey | None = None
        self._sending: bytes | None = None  # sending chain key
        self._sending_n = 0
        self._previous_length = 0
        self._theirs: bytes | None = None
        self._must_ratchet = False
        self._receiving: list[ReceiverChain] = []  # oldest first
        self._retired: list[bytes] = []  # ratchet keys of evicted chains, oldest first

    @classmethod
    def initiator(
        cls, root_key: bytes, chain_key: bytes, ratchet_key: X25519PrivateKey
    ) -> DoubleRatchet:
        """The initiator's state after the handshake: it may send on ``chain_key`` at once."""
        state = cls()
        state._root, state._sending, state._ours = root_key, chain_key, ratchet_key
        return state

    @classmethod
    def responder(cls, root_key: bytes, chain_key: bytes, their_ratchet: bytes) -> DoubleRatchet:
        """The responder's state: receives on ``chain_key``; its first send takes a DH step."""
        state = cls()
        state._root, state._theirs, state._must_ratchet = root_key, their_ratchet, True
        state._receiving.append(ReceiverChain(their_ratchet, chain_key, 0))
        return state

    # --- sending -------------------------------------------------------------------------------

    def next_sending(self) -> tuple[Header, bytes, bytes]:
        """Advance the sending chain; return the header, the message key and its nonce."""
        if self._must_ratchet or self._sending is None:
            if self._theirs is None:
                raise StateError("ratchet state has neither a sending chain nor a peer key")
            ours = X25519PrivateKey.generate()
            self._root, chain = root_step(self._root, ours.exchange(X25519PublicKey(self._theirs)))
            self._previous_length = self._sending_n if self._sending is not None else 0
            self._ours, self._sending, self._sending_n = ours, chain, 0
            self._must_ratchet = False
        if self._ours is None or self._sending is None:
            raise StateError("ratchet state has no sending key")
        if self._sending_n > MAX_UINT32:
            raise LimitExceeded("messages in one sending chain", MAX_UINT32, self._sending_n)
        header = Header(self._ours.public_key().to_bytes(), self._previous_length, self._sending_n)
        self._sending, message_key = chain_step(self._sending)
        self._sending_n += 1
        return header, message_key, nonce(header.n)

    # --- receiving -----------------------------------------------------------------------------

    def _chain_for(self, ratchet_key: bytes) -> ReceiverChain | None:
        for chain in reversed(self._receiving):
            if chain.ratchet_key == ratchet_key:
                return chain
        return None

    def decrypt(
        self, header: Header, ciphertext: bytes, ad: bytes, finish: Callable[[bytes], T]
    ) -> T:
        """Decrypt one message; commit the new state only if ``finish(plaintext)`` returns.

        Raises :class:`ReplayError`, :class:`MessageGapTooLarge`, :class:`AuthenticationError`,
        or whatever ``finish`` raises; in every such case the state is unchanged.
        """
        chain = self._chain_for(header.ratchet_key)
        if chain is not None:
            return self._decrypt_known(chain, header, ciphertext, ad, finish)
        return self._decrypt_new_chain(header, ciphertext, ad, finish)

    def _decrypt_known(
        self,
        chain: ReceiverChain,
        header: Header,
        ciphertext: bytes,
        ad: bytes,
        finish: Callable[[bytes], T],
    ) -> T:
        if header.n < chain.next_n:
            message_key = chain.skipped.get(header.n)
            if message_key is None:
                raise ReplayError("message already received, or its key was discarded")
            result = finish(_open(message_key, header.n, ciphertext, ad))
            del chain.skipped[header.n]
            return result
        gap = header.n - chain.next_n
        if gap > MAX_SKIP:
            raise MessageGapTooLarge(MAX_SKIP, gap)
        skipped, chain_key = skip_keys(chain.chain_key, chain.next_n, header.n)
        chain_key, message_key = chain_step(chain_key)
        result = finish(_open(message_key, header.n, ciphertext, ad))
        chain.add_skipped(skipped)
        chain.chain_key = chain_key
        chain.next_n = header.n + 1
        return result

    def _decrypt_new_chain(
        self, header: Header, ciphertext: bytes, ad: bytes, finish: Callable[[bytes], T]
    ) -> T:
        # A new ratchet key is only possible once the peer has seen our current one: before our
        # first send (responder) or while our own step is pending, no valid message has one.
        if header.ratchet_key in self._retired:
            raise ReplayError("message of a receiving chain that was discarded")
        if self._ours is None or self._must_ratchet:
            raise AuthenticationError()
        current = self._receiving[-1] if self._receiving else None
        old_gap = 0 if current is None else max(0, header.previous_length - current.next_n)
        # One bound for all the keys this message makes us derive, in both chains.
        if old_gap + header.n > MAX_SKIP:
            raise MessageGapTooLarge(MAX_SKIP, old_gap + header.n)
        old_skipped: list[tuple[int, bytes]] = []
        old_chain_key = b""
        if current is not None and old_gap:
            old_skipped, old_chain_key = skip_keys(
                current.chain_key, current.next_n, header.previous_length
            )
        root, chain_key = root_step(
            self._root, self._ours.exchange(X25519PublicKey(header.ratchet_key))
        )
        skipped, chain_key = skip_keys(chain_key, 0, header.n)
        chain_key, message_key = chain_step(chain_key)
        result = finish(_open(message_key, header.n, ciphertext, ad))
        # --- commit ---
        if current is not None and old_skipped:
            current.add_skipped(old_skipped)
            current.chain_key = old_chain_key
            current.next_n = header.previous_length
        new_chain = ReceiverChain(header.ratchet_key, chain_key, header.n + 1)
        new_chain.add_skipped(skipped)
        self._receiving.append(new_chain)
        evicted = self._receiving[:-MAX_RECEIVING_CHAINS]
        if evicted:
            self._retired.extend(chain.ratchet_key for chain in evicted)
            del self._retired[:-MAX_RETIRED_CHAINS]
            del self._receiving[:-MAX_RECEIVING_CHAINS]
        self._root = root
        self._theirs = header.ratchet_key
        self._must_ratchet = True
        return result

    # --- state ---------------------------------------------------------------------------------

    def to_list(self) -> list[Any]:
        """The state as a msgpack-ready list (secret: the session encrypts it at rest)."""
        return [
            self._root,
            None if self._ours is None else self._ours.to_bytes(),
            self._sending,
            self._sending_n,
            self._previous_length,
            self._theirs,
            self._must_ratchet,
            [
                [c.ratchet_key, c.chain_key, c.next_n, [x for kv in c.skipped.items() for x in kv]]
                for c in self._receiving
            ],
            list(self._retired),
        ]

    @classmethod
    def from_list(cls, fields: list[Any], *, version: int = 2) -> DoubleRatchet:
        """Rebuild a state from :meth:`to_list`; raises ``ValueError`` on any inconsistency.

        ``version`` is the session state's: version 1 had no retired chains.
        """
        if version == 1:
            fields = [*fields, []]
        root, ours, sending, sending_n, previous, theirs, must_ratchet, chains, retired = fields
        state = cls()
        if type(retired) is not list or len(retired) > MAX_RETIRED_CHAINS:
            raise ValueError("bad retired chains")
        state._retired = [_key(k) for k in retired]
        state._root = _key(root)
        state._ours = None if ours is None else X25519PrivateKey(_key(ours))
        state._sending = None if sending is None else _key(sending)
        state._sending_n = _count(sending_n)
        state._previous_length = _count(previous)
        state._theirs = None if theirs is None else _key(theirs)
        if type(must_ratchet) is not bool or type(chains) is not list:
            raise ValueError("bad ratchet state")
        state._must_ratchet = must_ratchet
        if len(chains) > MAX_RECEIVING_CHAINS:
            raise ValueError("too many receiving chains")
        for ratchet_key, chain_key, next_n, flat in chains:
            if (
                type(flat) is not list
                or len(flat) % 2
                or len(flat) > 2 * MAX_SKIPPED_KEYS_PER_CHAIN
            ):
                raise ValueError("bad skipped keys")
            chain = ReceiverChain(_key(ratchet_key), _key(chain_key), _count(next_n))
            for i in range(0, len(flat), 2):
                n, keys = _count(flat[i]), flat[i + 1]
                if not wire.is_bytes(keys, MESSAGE_KEY_SIZE) or n >= chain.next_n:
                    raise ValueError("bad skipped key")
                chain.skipped[n] = keys
            state._receiving.append(chain)
        if state._sending is None and state._theirs is None:
            raise ValueError("ratchet state can neither send nor receive")
        return state

    @property
    def sending_count(self) -> int:
        """Messages sent on the current sending chain."""
        return self._sending_n

    @property
    def skipped_count(self) -> int:
        """Skipped message keys currently kept, over all receiving chains."""
        return sum(len(c.skipped) for c in self._receiving)

    @property
    def receiving_chain_count(self) -> int:
        """Receiving chains currently kept."""
        return len(self._receiving)

    def __repr__(self) -> str:
        return (
            f"DoubleRatchet(sent={self._sending_n}, receiving_chains={len(self._receiving)}, "
            f"skipped={self.skipped_count})"
        )


def _key(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError("expected a 32-byte key")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or not wire.is_uint(value, MAX_UINT32 + 1):
        raise ValueError("expected a message counter")
    return value
