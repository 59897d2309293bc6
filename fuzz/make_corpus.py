"""Write the seed corpora of the fuzz targets into fuzz/corpus/<target>/, from real outputs.

    python fuzz/make_corpus.py            # (re)write every corpus
    python fuzz/make_corpus.py --check    # exit 1 if a fresh run differs from the files

Deterministic: the fixtures come from fuzz/fuzzlib.py (the vectors' identities and a seeded
randomness seam), so a re-run writes the same files byte for byte. Each file is named by the
SHA-1 of its content, as libFuzzer names the inputs it keeps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzzlib

CORPUS = fuzzlib.FUZZ / "corpus"


def _envelope() -> list[bytes]:
    world = fuzzlib.protocol_world()
    # Every envelope of the conversation, plus the oversize and near-empty edge cases.
    return [*world.envelopes, b"\x97", b"\x97\x01\x02" + bytes(16)]


def _bundle() -> list[bytes]:
    bundles = fuzzlib.protocol_world().bundles
    # Mode 0: as served; mode 1: without the signature (the harness signs).
    return [b"\x00" + b for b in bundles] + [b"\x01" + b[:-66] for b in bundles]


def _handshake() -> list[bytes]:
    initial = fuzzlib.protocol_world().initial
    return [bytes([mode]) + envelope for mode in (0, 1) for envelope in initial]


def _state() -> list[bytes]:
    world = fuzzlib.protocol_world()
    return [world.bob_state, world.alice_state, world.pool_before, world.pool_after]


def _policy() -> list[bytes]:
    example = (fuzzlib.ROOT / "examples" / "policy.toml").read_bytes()
    small = (
        b'version = 1\n[controller]\nname = "A"\ncontact = "a@b.example"\n'
        b'[retention.default]\nmax_age = "2y"\n'
    )
    return [example, small, small + b'[retention.categories.x]\nmax_age = "forever"\n']


def _consent() -> list[bytes]:
    world = fuzzlib.consent_world()
    seeds = [b"\x00" + r.to_bytes() for r in world.records]
    seeds += [b"\x01" + json.dumps(world.request.to_content()).encode()]
    seeds += [b"\x01" + json.dumps(r.to_content()).encode() for r in world.records[:2]]
    seeds += [b"\x02" + bytes(range(i, i + 64)) for i in range(0, 192, 64)]
    return seeds


def _store() -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        store = fuzzlib.build_store_world(Path(tmp))
        image = fuzzlib.plaintext_image(store, fuzzlib.STORE_KEY)
    drbg = fuzzlib.Drbg(b"entrenous/v1 fuzz store seeds")
    return [
        b"\x02" + image,
        b"\x00",
        b"\x00" + bytes(4096),
        b"\x00" + b"SQLite format 3\x00" + bytes(4080),
        b"\x00" + drbg(8192),
        b"\x01\x10\x00" + drbg(8192),
    ]


TARGETS = {
    "envelope": _envelope,
    "bundle": _bundle,
    "handshake": _handshake,
    "state": _state,
    "policy": _policy,
    "consent": _consent,
    "store": _store,
}


def build() -> dict[str, dict[str, bytes]]:
    """Every target's seeds, by file name."""
    return {
        name: {hashlib.sha1(seed).hexdigest(): seed for seed in make()}  # noqa: S324 - a name
        for name, make in TARGETS.items()
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    corpora = build()
    if args.check:
        same = all(
            {p.name: p.read_bytes() for p in (CORPUS / name).glob("*")} == seeds
            for name, seeds in corpora.items()
        )
        print("corpus up to date" if same else "corpus differs: run python fuzz/make_corpus.py")
        return 0 if same else 1
    for name, seeds in corpora.items():
        directory = CORPUS / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for file_name, seed in sorted(seeds.items()):
            (directory / file_name).write_bytes(seed)
    total = sum(len(s) for seeds in corpora.values() for s in seeds.values())
    count = sum(len(seeds) for seeds in corpora.values())
    print(f"wrote {count} seeds ({total:,} bytes) into {CORPUS.relative_to(fuzzlib.ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
