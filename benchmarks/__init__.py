"""Benchmarks for entrenous, run side by side with the peers a user would pick instead.

``python -m benchmarks`` (or ``python3 dev.py bench``) runs them; see ``benchmarks/README.md``.
Nothing in here is part of the library: it is never imported by ``entrenous`` or its tests.
"""
