"""``python -m benchmarks``: run the protocol benchmarks (see ``benchmarks/README.md``)."""

from __future__ import annotations

from benchmarks.protocol.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
