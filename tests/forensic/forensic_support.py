"""An independent reader of SQLCipher 4 files, for forensic tests (not library code).

A test that erases data must look at every byte a file could still hold: live rows, but also free
pages, the unused space inside pages, and every WAL frame physically present (frames after the
last commit and frames of earlier WAL generations included), not only what SQL returns. This
module decrypts each page of a SQLCipher 4 database (or WAL) with ``cryptography`` directly. It
imports nothing from ``entrenous``: it checks the library and the format instead of trusting
them.

The format (SQLCipher 4 defaults, ``cipher_compatibility = 4``, raw key ``PRAGMA key =
"x'<64 hex>'"``), from SQLCipher's ``sqlcipher_page_cipher``, ``sqlcipher_page_hmac`` and
``sqlcipher_cipher_ctx_key_derive`` (src/sqlcipher.c, earlier src/crypto_impl.c):

* The file is a sequence of ``page_size`` (4096) byte pages, numbered from 1. The first 16 bytes
  of page 1 are the random salt, stored in clear where SQLite has ``"SQLite format 3\\0"``.
* Each page ends with an 80-byte reserve: a 16-byte random IV, then a 64-byte HMAC-SHA512 tag.
* The encryption key is the raw key itself (no PBKDF2 with a raw key). The HMAC key is
  ``PBKDF2-HMAC-SHA512(encryption key, salt XOR 0x3a.., 2 iterations, 32 bytes)``.
* The tag is ``HMAC-SHA512(hmac key, ciphertext || IV || page number as 4 bytes little-endian)``.
* The content (page 1: bytes 16..4016; other pages: 0..4016) is AES-256-CBC under the IV, no
  padding.
* A WAL frame (24-byte header, then one page) holds its page encrypted exactly like the database
  page of the same number, page 1 with the salt in front; the WAL file starts with a 32-byte
  header. A rollback journal (``-journal``) is not decoded here.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

PAGE_SIZE = 4096
SALT_SIZE = 16
IV_SIZE = 16
HMAC_SIZE = 64
RESERVE_SIZE = IV_SIZE + HMAC_SIZE  # 80
HMAC_SALT_MASK = 0x3A
HMAC_KDF_ITERATIONS = 2
SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_HEADER_SIZE = 32
WAL_FRAME_HEADER_SIZE = 24
WAL_MAGICS = (0x377F0682, 0x377F0683)
#: SQLite's lock-byte page (the page holding file offset 2**30) is never written: it has no tag.
_LOCK_BYTE_OFFSET = 0x40000000
#: spec/store.md, "Keys".
KEY_FILE_LABEL = b"entrenous/v1 data-key file"
#: The files a store may leave beside ``<store>`` (spec/store.md, "Files").
STORE_SUFFIXES = ("", "-wal", "-shm", "-journal", ".keys", ".keys-journal")


class ForensicError(Exception):
    """A file is not what the reader expects (wrong key, tampered page, unknown layout)."""


@dataclass(frozen=True, slots=True)
class PageKeys:
    """The two keys of a SQLCipher 4 database opened with a raw key."""

    encryption: bytes
    mac: bytes

    @classmethod
    def derive(cls, raw_key: bytes, salt: bytes) -> PageKeys:
        """The encryption key (``raw_key`` itself) and the HMAC key derived from it and ``salt``."""
        if len(raw_key) != 32:
            raise ValueError("a SQLCipher raw key is 32 bytes")
        if len(salt) != SALT_SIZE:
            raise ValueError("a SQLCipher salt is 16 bytes")
        mac_salt = bytes(b ^ HMAC_SALT_MASK for b in salt)
        mac = PBKDF2HMAC(
            algorithm=hashes.SHA512(), length=32, salt=mac_salt, iterations=HMAC_KDF_ITERATIONS
        ).derive(raw_key)
        return cls(bytes(raw_key), mac)


def _lock_byte_page(page_size: int) -> int:
    return _LOCK_BYTE_OFFSET // page_size + 1


def decrypt_page(
    stored: bytes, page_no: int, keys: PageKeys, *, verify: bool = True, where: str = "page"
) -> bytes:
    """The plaintext of one stored page (as SQLite sees it: reserve zeroed).

    ``stored`` is the whole page as written (page 1 with its salt in front). Page 1 comes back
    with ``"SQLite format 3\\0"`` in place of the salt. :class:`ForensicError` if the tag does not
    match, unless ``verify`` is false (then a wrong key yields noise, not an error).
    """
    page_size = len(stored)
    start = SALT_SIZE if page_no == 1 else 0
    end = page_size - RESERVE_SIZE
    ciphertext = stored[start:end]
    iv = stored[end : end + IV_SIZE]
    tag = stored[end + IV_SIZE :]
    if verify:
        expected = hmac.new(
            keys.mac, ciphertext + iv + struct.pack("<I", page_no), "sha512"
        ).digest()
        if not hmac.compare_digest(expected, tag):
            raise ForensicError(f"HMAC mismatch on {where} {page_no} (wrong key or altered)")
    decryptor = Cipher(algorithms.AES(keys.encryption), modes.CBC(iv)).decryptor()
    plaintext = decryptor.update(ciphertext) + decryptor.finalize()
    return (SQLITE_MAGIC if page_no == 1 else b"") + plaintext + bytes(RESERVE_SIZE)


def read_salt(path: str | os.PathLike[str]) -> bytes:
    """The 16-byte salt at the start of a SQLCipher database file."""
    with open(path, "rb") as handle:
        salt = handle.read(SALT_SIZE)
    if len(salt) != SALT_SIZE:
        raise ForensicError(f"{Path(path).name} is too short to be a SQLCipher database")
    if salt == SQLITE_MAGIC:
        raise ForensicError(f"{Path(path).name} is a plain SQLite database, not SQLCipher")
    return salt


def decrypt_pages(
    path: str | os.PathLike[str],
    raw_key: bytes,
    *,
    page_size: int = PAGE_SIZE,
    verify: bool = True,
) -> list[bytes]:
    """Every page of a SQLCipher 4 database file, decrypted, in file order (index 0 = page 1).

    Free pages, freelist trunk pages and the unused space inside pages come back too: nothing is
    interpreted. Each page's HMAC is checked (:class:`ForensicError` on a mismatch) unless
    ``verify`` is false.
    """
    data = Path(path).read_bytes()
    if not data or len(data) % page_size:
        raise ForensicError(
            f"{Path(path).name} is {len(data)} bytes, not a whole number of {page_size}-byte pages"
        )
    keys = PageKeys.derive(raw_key, read_salt(path))
    skip = _lock_byte_page(page_size)
    pages = []
    for index in range(len(data) // page_size):
        page_no = index + 1
        stored = data[index * page_size : page_no * page_size]
        if page_no == skip:
            pages.append(bytes(page_size))
            continue
        pages.append(decrypt_page(stored, page_no, keys, verify=verify))
    return pages


def decrypt_wal(
    path: str | os.PathLike[str],
    raw_key: bytes,
    salt: bytes,
    *,
    page_size: int = PAGE_SIZE,
    verify: bool = True,
) -> list[tuple[int, bytes]]:
    """``(page number, plaintext)`` of every whole frame physically present in a WAL file.

    ``salt`` is the main database's (:func:`read_salt`): WAL pages are encrypted with the
    database's keys. Frames after the last commit and frames of an earlier WAL generation (left
    behind by a checkpoint that reset the log without truncating it) are all returned. An empty
    file gives ``[]``; a partial frame at the end is ignored (scan it raw).
    """
    data = Path(path).read_bytes()
    if not data:
        return []
    name = Path(path).name
    if len(data) < WAL_HEADER_SIZE:
        raise ForensicError(f"{name} is shorter than a WAL header")
    magic, _version, header_page_size = struct.unpack(">III", data[:12])
    if magic not in WAL_MAGICS:
        raise ForensicError(f"{name} is not a WAL file (magic {magic:#010x})")
    if header_page_size != page_size:
        raise ForensicError(f"{name} has {header_page_size}-byte pages, not {page_size}")
    keys = PageKeys.derive(raw_key, salt)
    frame_size = WAL_FRAME_HEADER_SIZE + page_size
    frames = []
    offset = WAL_HEADER_SIZE
    while offset + frame_size <= len(data):
        (page_no,) = struct.unpack(">I", data[offset : offset + 4])
        stored = data[offset + WAL_FRAME_HEADER_SIZE : offset + frame_size]
        frame = (offset - WAL_HEADER_SIZE) // frame_size + 1
        if page_no == 0:
            raise ForensicError(f"{name} frame {frame} names page 0")
        plaintext = decrypt_page(stored, page_no, keys, verify=verify, where=f"{name} frame page")
        frames.append((page_no, plaintext))
        offset += frame_size
    return frames


def freelist_pages(pages: list[bytes]) -> set[int]:
    """The page numbers on the freelist (trunk and leaf pages) of decrypted database pages.

    From the SQLite file format: header offset 32 holds the first trunk page; a trunk page holds
    the next trunk, a leaf count, then the leaf page numbers (all 4-byte big-endian).
    """
    free: set[int] = set()
    (trunk,) = struct.unpack(">I", pages[0][32:36])
    while trunk:
        if trunk in free or trunk > len(pages):
            raise ForensicError(f"the freelist loops or points past the file (page {trunk})")
        free.add(trunk)
        page = pages[trunk - 1]
        following, count = struct.unpack(">II", page[:8])
        free.update(struct.unpack(f">{count}I", page[8 : 8 + 4 * count]))
        trunk = following
    return free


def plaintext_bytes_of(
    path: str | os.PathLike[str], raw_key: bytes, *, page_size: int = PAGE_SIZE
) -> bytes:
    """All decrypted pages of a database file and of its ``-wal`` (if any), concatenated.

    For ``marker in plaintext_bytes_of(...)`` scans. Every HMAC is verified, so a wrong key fails
    loudly instead of yielding noise that contains no marker. A ``-journal`` beside the file
    raises :class:`ForensicError`: this reader does not decode rollback journals, and a scan that
    skipped one would pass without having looked.
    """
    store = Path(path)
    journal = store.with_name(store.name + "-journal")
    if journal.exists() and journal.stat().st_size:
        raise ForensicError(f"{journal.name} is present; rollback journals are not decoded")
    parts = decrypt_pages(store, raw_key, page_size=page_size)
    wal = store.with_name(store.name + "-wal")
    if wal.exists():
        salt = read_salt(store)
        parts += [page for _, page in decrypt_wal(wal, raw_key, salt, page_size=page_size)]
    return b"".join(parts)


def raw_bytes_of(paths: Iterable[str | os.PathLike[str]]) -> bytes:
    """The raw contents of the given files that exist, concatenated (missing ones are skipped)."""
    return b"".join(Path(p).read_bytes() for p in paths if Path(p).exists())


def store_files(store: str | os.PathLike[str]) -> list[Path]:
    """The files of a store that exist now: the store, its WAL, shm, journal and key file."""
    base = Path(store)
    found = [base.with_name(base.name + suffix) for suffix in STORE_SUFFIXES]
    return [path for path in found if path.exists()]


def key_file_key_independent(store_key: bytes) -> bytes:
    """The data-key file's key: HKDF-SHA256(ikm = K, salt = "", info = label), per spec/store.md."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=KEY_FILE_LABEL).derive(
        store_key
    )
