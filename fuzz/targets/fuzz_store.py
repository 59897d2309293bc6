"""Fuzz target: opening a store from arbitrary bytes (``Client.open`` with a fixed key).

The first byte picks the mode (each input starts from an empty scratch directory):

* 0: the rest is written as the store file ``bank.db``, with no data-key file;
* 1: the rest is split in two (at a point the next two bytes choose): ``bank.db`` and
  ``bank.db.keys``;
* 2: the rest is a *plain* SQLite database image. The harness encrypts it under the store key
  (``sqlcipher_export``) and puts the real data-key file of the fixture store beside it, so the
  input gets past SQLCipher's page authentication and reaches the store's own reading of its
  schema, metadata, identity, prekeys, policy and rows (what a store damaged by someone holding
  the key, or by a bug, looks like). Seeds are the plain image of a real store.

Allowed: ``StoreError`` subclasses only (``WrongKey``, ``StoreCorrupt``, ``SchemaTooNew`` ...),
as ``Client.open`` documents. A store that opens must also close.
"""

import shutil
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["entrenous"]):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import fuzzlib
    from entrenous import Client
    from entrenous.errors import StoreError

SCRATCH = fuzzlib.scratch_dir("store")


def _fixture_key_file() -> bytes:
    directory = SCRATCH / "fixture"
    directory.mkdir()
    store = fuzzlib.build_store_world(directory)
    data = store.with_name(store.name + ".keys").read_bytes()
    shutil.rmtree(directory)
    return data


KEY_FILE = _fixture_key_file()
WORK = SCRATCH / "work"


def _clock() -> float:
    return float(fuzzlib.NOW)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    store = WORK / "bank.db"
    keys = WORK / "bank.db.keys"
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        store.write_bytes(rest)
    elif mode == 1:
        cut = int.from_bytes(rest[:2], "big") % (len(rest) + 1) if len(rest) >= 2 else 0
        store.write_bytes(rest[2:][:cut])
        keys.write_bytes(rest[2:][cut:])
    else:
        image = WORK / "image.db"
        image.write_bytes(rest)
        ok = fuzzlib.encrypt_image(image, store, fuzzlib.STORE_KEY)
        image.unlink()
        if not ok:
            return  # SQLite itself cannot read the image: nothing reaches the library
        keys.write_bytes(KEY_FILE)
    try:
        client = Client.open(store, key=fuzzlib.STORE_KEY, clock=_clock)
    except StoreError:
        return
    client.close()


if __name__ == "__main__":
    fuzzlib.fuzz(test_one_input)
