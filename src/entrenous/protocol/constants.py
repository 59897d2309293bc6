"""Protocol constants: versions, limits and every domain-separation label, in one place.

Each limit sits beside its reason. Every HKDF ``info`` and every HMAC/ signature context string is
defined here and nowhere else, so an auditor can see at a glance that no two uses share a label
(spec/protocol.md, "Key schedule", lists them with the same names).
"""

from __future__ import annotations

from typing import Final

# --- versions ----------------------------------------------------------------------------------

PROTOCOL_NAME: Final = b"entrenous/v1"
ENVELOPE_VERSION: Final = 1
BUNDLE_VERSION: Final = 1
IDENTITY_VERSION: Final = 1
SESSION_STATE_VERSION: Final = 2
PREKEY_POOL_VERSION: Final = 1

# --- domain-separation labels ------------------------------------------------------------------
# HKDF info labels (each used by exactly one derivation).
LABEL_HANDSHAKE: Final = b"entrenous/v1 pqxdh X25519 ML-KEM-768 SHA-256"
LABEL_ROOT: Final = b"entrenous/v1 root ratchet"
# HMAC input of the symmetric-key ratchet (the chain key is the HMAC key).
LABEL_CHAIN_STEP: Final = b"entrenous/v1 chain step"
# Hash and signature contexts.
LABEL_TRANSCRIPT: Final = b"entrenous/v1 pqxdh transcript"
LABEL_SESSION_ID: Final = b"entrenous/v1 session id"
LABEL_SESSION_AD: Final = b"entrenous/v1 session associated data"
LABEL_IDENTITY_BINDING: Final = b"entrenous/v1 identity binding"
LABEL_BUNDLE_SIGNATURE: Final = b"entrenous/v1 prekey bundle"
LABEL_SAFETY_NUMBER: Final = b"entrenous/v1 safety number"
LABEL_FINGERPRINT: Final = b"entrenous/v1 fingerprint"

# Signal's PQXDH prefixes the DH outputs with 32 0xFF bytes (for the X25519 curve) so that the
# KDF input can never collide with an XEdDSA-style encoding of a scalar.
HANDSHAKE_KDF_PREFIX: Final = b"\xff" * 32

# --- limits ------------------------------------------------------------------------------------

#: The most messages one receiving chain may skip in one step. A gap beyond it is refused
#: (MessageGapTooLarge) before any key is derived: each skipped key costs an HMAC, so an
#: attacker naming n = 2**32 - 1 must not make us loop. The bound covers the whole message: a
#: new chain's n plus the rest of the previous chain. vodozemac's MAX_MESSAGE_GAP is also 2,000
#: (libsignal allows 25,000); 2,000 covers a realistic offline backlog.
MAX_SKIP: Final = 2000
#: The most skipped message keys kept per receiving chain; when a new gap would exceed it, the
#: oldest skipped keys of that chain are discarded first (their messages become undecryptable).
MAX_SKIPPED_KEYS_PER_CHAIN: Final = 2000
#: Receiving chains kept (the current one and older ones with skipped keys); oldest evicted first.
#: vodozemac keeps 5 (MAX_RECEIVING_CHAINS); libsignal keeps 5 previous session states.
MAX_RECEIVING_CHAINS: Final = 5
#: Ratchet keys of evicted receiving chains remembered, so that a late or replayed message of
#: such a chain is refused as a replay at once, without the X25519 exchange a new key costs.
MAX_RETIRED_CHAINS: Final = 20
#: Largest envelope accepted, checked before the bytes are parsed. Sized for the largest
#: plaintext plus the initial-message fields (an ML-KEM ciphertext and an identity).
MAX_ENVELOPE_SIZE: Final = 65536
#: Largest plaintext accepted by ``encrypt`` (before padding).
MAX_PLAINTEXT_SIZE: Final = 57344
#: Message numbers and prekey ids are unsigned 32-bit on the wire.
MAX_UINT32: Final = 2**32 - 1
#: Padding: every padded plaintext is at least this long, so short messages all look alike.
MIN_PADDED_SIZE: Final = 64

# --- prekey lifetimes (seconds) -----------------------------------------------------------------

#: A signed prekey (and the last-resort ML-KEM prekey issued with it) is replaced after this age.
SIGNED_PREKEY_ROTATION: Final = 7 * 24 * 3600
#: A replaced signed prekey is kept this long so that initial messages built from an older
#: bundle still arrive; after it, they are refused with UnknownPrekey.
SIGNED_PREKEY_GRACE: Final = 30 * 24 * 3600
#: The most one-time prekeys of each kind a pool holds before the oldest unused are dropped.
MAX_ONE_TIME_PREKEYS: Final = 10000
#: The most handshakes remembered per last-resort prekey for replay detection; beyond it that
#: generation accepts no more last-resort handshakes (the next rotation starts a fresh memory).
MAX_REPLAY_CACHE: Final = 100000
#: Generations a pool can hold: one current, and those replaced within the grace period (one
#: rotation a week, 30 days of grace); on-demand rotations beyond it drop the oldest.
MAX_GENERATIONS: Final = 8
#: Largest serialised prekey pool accepted (full one-time pools and replay memories fit).
MAX_POOL_STATE_SIZE: Final = 16 * 1024 * 1024
