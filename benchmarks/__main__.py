"""``python -m benchmarks [protocol|store|compliance|all] [OPTIONS]`` (``benchmarks/README.md``).

* ``protocol``: the protocol benchmarks (entrenous against vodozemac, doubleratchet + x3dh and a
  floor of the primitives); options as in ``python -m benchmarks protocol --help``.
* ``store``: the store benchmarks (the client over SQLCipher 4 against raw sqlcipher3 floors, on
  populated stores of two sizes); options as in ``python -m benchmarks store --help``.
* ``compliance``: the compliance benchmarks (sweep, erasure and export through the client
  against raw sqlcipher3 floors, on populated stores of two sizes); options as in
  ``python -m benchmarks compliance --help``.
* ``all`` (the default): the three suites, one after the other. Only the options they all
  share are accepted: ``--quick`` and ``--passes N``. Each suite writes its own JSON report
  (``benchmarks/results/protocol.json``, ``store.json``, ``compliance.json``).

The exit status is 1 if a worker of any suite failed, else 0 (a missed target is reported, not
an error).
"""

from __future__ import annotations

import argparse
import sys

SUITES = ("protocol", "store", "compliance", "all")


def _protocol(argv: list[str]) -> int:
    from benchmarks.protocol.runner import main as protocol_main

    return protocol_main(argv)


def _store(argv: list[str]) -> int:
    from benchmarks.store.runner import main as store_main

    return store_main(argv)


def _compliance(argv: list[str]) -> int:
    from benchmarks.compliance.runner import main as compliance_main

    return compliance_main(argv)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    suite = "all"
    if args and args[0] in SUITES:
        suite = args.pop(0)
    elif args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if suite == "protocol":
        return _protocol(args)
    if suite == "store":
        return _store(args)
    if suite == "compliance":
        return _compliance(args)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks [all]",
        description="Run the protocol, the store and the compliance benchmarks, one suite after "
        "the other. For the options of one suite, run `python -m benchmarks protocol --help` "
        "(or `store`, `compliance`).",
    )
    parser.add_argument("--quick", action="store_true", help="a short run of every suite")
    parser.add_argument("--passes", type=int, metavar="N", help="passes of each suite")
    common = parser.parse_args(args)
    shared = ["--quick"] if common.quick else []
    if common.passes is not None:
        shared += ["--passes", str(common.passes)]
    status = _protocol(shared)
    print(flush=True)
    status = max(status, _store(shared))
    print(flush=True)
    return max(status, _compliance(shared))


if __name__ == "__main__":
    raise SystemExit(main())
