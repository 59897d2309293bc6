"""Measure one (implementation, workload) pair in this process and print the result as JSON.

    python -m benchmarks.protocol.worker IMPL WORKLOAD --rounds N [--warmup N]

The runner starts one such process per pair, so no implementation warms caches, allocators or
imports for another. stdout carries exactly one JSON object with the keys ``impl``,
``workload``, ``status`` ("ok", "n/a", "unavailable" or "error"), ``reason`` (why it is not
"ok", else null), ``version`` and ``configuration`` of the implementation, ``ops_per_iteration``,
``rounds``, ``warmup`` and ``samples_ns``: one :func:`time.perf_counter_ns` difference per timed
iteration. The exit status is 0 unless the status is "error" (the traceback then goes to
stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import traceback
from typing import Any

from benchmarks.protocol.common import (
    WORKLOADS,
    AsyncPeer,
    NotApplicable,
    Peer,
    PeerUnavailable,
    SyncPeer,
    measure,
    measure_async,
)

#: Implementation name -> module defining ``PEER``, in the order the table shows them.
IMPLEMENTATIONS: dict[str, str] = {
    "entrenous": "benchmarks.protocol.entrenous_impl",
    "vodozemac": "benchmarks.protocol.vodozemac_impl",
    "doubleratchet": "benchmarks.protocol.doubleratchet_impl",
    "floor": "benchmarks.protocol.floor_impl",
}


def load_peer(impl: str) -> Peer:
    """Import the implementation's module and create its peer.

    Raises :class:`PeerUnavailable` when the implementation's package is missing.
    """
    module = importlib.import_module(IMPLEMENTATIONS[impl])
    peer: Peer = module.PEER()
    return peer


async def _run_async(peer: AsyncPeer, workload: str, rounds: int, warmup: int) -> list[int]:
    case = await peer.build(workload)
    return await measure_async(case, rounds, warmup)


def run(impl: str, workload: str, rounds: int, warmup: int) -> dict[str, Any]:
    """Set up and measure one pair; never raises (a failure becomes the "error" status)."""
    result: dict[str, Any] = {
        "impl": impl,
        "workload": workload,
        "status": "ok",
        "reason": None,
        "version": None,
        "configuration": None,
        "ops_per_iteration": WORKLOADS[workload].ops_per_iteration,
        "rounds": rounds,
        "warmup": warmup,
        "samples_ns": [],
    }
    try:
        peer = load_peer(impl)
        result["version"] = peer.version()
        result["configuration"] = peer.configuration
        if isinstance(peer, AsyncPeer):
            # One event loop for the whole process: set-up, warm-up and timed loop alike.
            samples = asyncio.run(_run_async(peer, workload, rounds, warmup))
        else:
            assert isinstance(peer, SyncPeer)
            samples = measure(peer.build(workload), rounds, warmup)
        result["samples_ns"] = samples
    except PeerUnavailable as exc:
        result.update(status="unavailable", reason=str(exc))
    except NotApplicable as exc:
        result.update(status="n/a", reason=str(exc))
    except Exception as exc:
        traceback.print_exc()
        result.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.protocol.worker",
        description="Measure one implementation on one workload; print JSON on stdout.",
    )
    parser.add_argument("impl", choices=list(IMPLEMENTATIONS))
    parser.add_argument("workload", choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, required=True, help="timed iterations")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed iterations first (default: rounds/10)"
    )
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else max(3, args.rounds // 10)
    result = run(args.impl, args.workload, args.rounds, warmup)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 1 if result["status"] == "error" else 0


if __name__ == "__main__":
    raise SystemExit(main())
