"""The store key: a raw 32-byte key from the platform keystore, or a passphrase.

* ``key=``: used as the SQLCipher key as it is (``PRAGMA key = "x'<64 hex digits>'"``), so an
  auditor can open the store with the standard ``sqlcipher`` shell (spec/store.md).
* ``passphrase=``: stretched with Argon2id (libsodium, through PyNaCl) into that raw key. The
  salt and cost parameters are kept beside the store in ``<store>.kdf`` (JSON, not secret), so
  they can be raised later without losing the store.

The data-key file has a key of its own, derived from the store key with HKDF under its own
label, so one secret opens both and neither key is used for two purposes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash

from entrenous._primitives.kdf import hkdf_sha256
from entrenous._primitives.rand import random_bytes
from entrenous.errors import StoreCorrupt, StoreError

KEY_SIZE = 32
LABEL_KEY_FILE = b"entrenous/v1 data-key file"
KDF_FORMAT = "entrenous-kdf"
KDF_VERSION = 1
#: Argon2id costs for new stores: libsodium's "interactive" limits (2 passes, 64 MiB), above the
#: OWASP minimum for Argon2id (19 MiB, 2 passes). Stored per store, so they can be raised.
DEFAULT_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
#: Refuse parameter files asking for absurd work (a tampered file must not hang the open).
_MAX_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE * 4
_MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE * 4


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters of a passphrase store (public values)."""

    salt: bytes
    opslimit: int
    memlimit: int

    def to_json(self) -> str:
        """The ``<store>.kdf`` file's contents."""
        return json.dumps(
            {
                "format": KDF_FORMAT,
                "version": KDF_VERSION,
                "algorithm": "argon2id",
                "opslimit": self.opslimit,
                "memlimit": self.memlimit,
                "salt": self.salt.hex(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> KdfParams:
        """Parse a ``<store>.kdf`` file; :class:`StoreCorrupt` if it is not one."""
        try:
            data: Any = json.loads(text)
            ok = (
                isinstance(data, dict)
                and data.get("format") == KDF_FORMAT
                and data.get("version") == KDF_VERSION
                and data.get("algorithm") == "argon2id"
            )
            salt = bytes.fromhex(data["salt"]) if ok else b""
            opslimit, memlimit = data["opslimit"], data["memlimit"]
        except (ValueError, KeyError, TypeError):
            raise StoreCorrupt("the key-derivation parameter file is not readable") from None
        if (
            not ok
            or len(salt) != nacl.pwhash.argon2id.SALTBYTES
            or type(opslimit) is not int
            or type(memlimit) is not int
            or not nacl.pwhash.argon2id.OPSLIMIT_MIN <= opslimit <= _MAX_OPSLIMIT
            or not nacl.pwhash.argon2id.MEMLIMIT_MIN <= memlimit <= _MAX_MEMLIMIT
        ):
            raise StoreCorrupt("the key-derivation parameter file is not valid")
        return cls(salt, opslimit, memlimit)

    @classmethod
    def new(cls) -> KdfParams:
        """Fresh parameters for a new store."""
        return cls(random_bytes(nacl.pwhash.argon2id.SALTBYTES), DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT)

    def derive(self, passphrase: str) -> bytes:
        """The raw store key for ``passphrase``."""
        return nacl.pwhash.argon2id.kdf(
            KEY_SIZE,
            passphrase.encode("utf-8"),
            self.salt,
            opslimit=self.opslimit,
            memlimit=self.memlimit,
        )


def kdf_path(store: Path) -> Path:
    """Where a passphrase store keeps its Argon2id parameters."""
    return store.with_name(store.name + ".kdf")


def check_secret(key: object, passphrase: object) -> None:
    """Refuse a wrong combination or shape of ``key`` / ``passphrase`` before touching disk."""
    if (key is None) == (passphrase is None):
        raise ValueError("give exactly one of key= and passphrase=")
    if key is not None:
        if not isinstance(key, bytes | bytearray):
            raise TypeError("key must be bytes")
        if len(key) != KEY_SIZE:
            raise ValueError(f"key must be {KEY_SIZE} bytes")
    elif not isinstance(passphrase, str) or not passphrase:
        raise ValueError("passphrase must be a non-empty str")


def resolve_key(
    store: Path, *, key: bytes | None, passphrase: str | None, creating: bool
) -> tuple[bytes, KdfParams | None]:
    """The raw store key from exactly one of ``key`` and ``passphrase``.

    For a new passphrase store, fresh parameters are returned for the caller to write once the
    store exists; nothing is written here.
    """
    if (key is None) == (passphrase is None):
        raise ValueError("give exactly one of key= and passphrase=")
    if key is not None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"key must be {KEY_SIZE} bytes")
        return bytes(key), None
    if not isinstance(passphrase, str) or not passphrase:
        raise ValueError("passphrase must be a non-empty str")
    path = kdf_path(store)
    if creating:
        params = KdfParams.new()
        return params.derive(passphrase), params
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreCorrupt(
            "this store has no key-derivation parameter file: it was created with a raw key, "
            "or the file was lost"
        ) from None
    except (OSError, UnicodeDecodeError):
        raise StoreCorrupt("the key-derivation parameter file is not readable") from None
    try:
        return KdfParams.from_json(text).derive(passphrase), None
    except (nacl.exceptions.RuntimeError, MemoryError):
        raise StoreCorrupt("the key-derivation parameters cannot be used here") from None


def write_kdf_params(store: Path, params: KdfParams) -> None:
    """Write the parameter file atomically, readable by the owner only."""
    path = kdf_path(store)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(params.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path.name} ({exc.strerror})") from None


def key_file_key(store_key: bytes) -> bytes:
    """The key of the data-key file, derived from the store key."""
    return hkdf_sha256(store_key, salt=b"", info=LABEL_KEY_FILE, length=KEY_SIZE)
