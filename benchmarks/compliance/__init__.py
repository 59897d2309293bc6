"""Compliance benchmarks: sweep, erasure and export through ``entrenous.Client`` on populated
stores, against raw sqlcipher3 floors (see ``benchmarks/README.md``)."""
