"""``python -m benchmarks [protocol|store|compliance|scaling|report|all] [OPTIONS]``.

See ``benchmarks/README.md``.

* ``protocol``: the protocol benchmarks (entrenous against vodozemac, doubleratchet + x3dh and a
  floor of the primitives); options as in ``python -m benchmarks protocol --help``.
* ``store``: the store benchmarks (the client over SQLCipher 4 against raw sqlcipher3 floors, on
  populated stores of two sizes); options as in ``python -m benchmarks store --help``.
* ``compliance``: the compliance benchmarks (sweep, erasure and export through the client
  against raw sqlcipher3 floors, on populated stores of two sizes); options as in
  ``python -m benchmarks compliance --help``.
* ``scaling``: the history page, the sweep and the erasure (and their floors) at three store
  sizes, for the plot of cost against store size; options as in
  ``python -m benchmarks scaling --help``.
* ``report``: write ``benchmarks/RESULTS.md`` and its plot again from the JSON reports in
  ``benchmarks/results/``, measuring nothing; options as in ``python -m benchmarks report --help``.
* ``all`` (the default): the three suites one after the other, then the scaling run (which
  reuses the points the store and compliance suites just measured), then the report
  (``benchmarks/RESULTS.md``, ``benchmarks/cost-vs-store-size.png``). Only the options they all
  share are accepted: ``--quick`` and ``--passes N``. Each suite writes its own JSON report
  (``benchmarks/results/protocol.json``, ``store.json``, ``compliance.json``, ``scaling.json``).

The exit status is 1 if a worker of any suite failed, else 0 (a missed target is reported, not
an error).
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import environment

SUITES = ("protocol", "store", "compliance", "scaling", "report", "all")


def _protocol(argv: list[str]) -> int:
    from benchmarks.protocol.runner import main as protocol_main

    return protocol_main(argv)


def _store(argv: list[str]) -> int:
    from benchmarks.store.runner import main as store_main

    return store_main(argv)


def _compliance(argv: list[str]) -> int:
    from benchmarks.compliance.runner import main as compliance_main

    return compliance_main(argv)


def _scaling(argv: list[str]) -> int:
    from benchmarks.scaling import main as scaling_main

    return scaling_main(argv)


def _report(argv: list[str]) -> int:
    from benchmarks.report import main as report_main

    return report_main(argv)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    environment.set_command(args)
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
    if suite == "scaling":
        return _scaling(args)
    if suite == "report":
        return _report(args)
    from benchmarks.protocol.runner import passes_option

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks [all]",
        description="Run the protocol, the store and the compliance benchmarks, one suite after "
        "the other, then the scaling run, and write benchmarks/RESULTS.md. For the options of "
        "one suite, run `python -m benchmarks protocol --help` (or `store`, `compliance`, "
        "`scaling`, `report`).",
    )
    parser.add_argument("--quick", action="store_true", help="a short run of every suite")
    parser.add_argument("--passes", type=passes_option, metavar="N", help="passes of each suite")
    common = parser.parse_args(args)
    shared = ["--quick"] if common.quick else []
    if common.passes is not None:
        shared += ["--passes", str(common.passes)]
    began = time.time()
    status = _protocol(shared)
    print(flush=True)
    status = max(status, _store(shared))
    print(flush=True)
    status = max(status, _compliance(shared))
    print(flush=True)
    from benchmarks import report

    # Only reports this run wrote (a suite that stopped early leaves an older one behind).
    fresh = [report.RESULTS_DIR / name for name in ("store.json", "compliance.json")]
    reuse = [f"--reuse={p}" for p in fresh if p.is_file() and p.stat().st_mtime >= began]
    status = max(status, _scaling(shared + reuse))
    print(flush=True)
    out, skipped = report.write_report()
    print(f"report: {out}" + (f" (plot skipped: {skipped})" if skipped else ""))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
