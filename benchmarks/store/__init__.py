"""Store benchmarks: entrenous's encrypted store (SQLCipher 4) against raw sqlcipher3 inserts.

See ``benchmarks/README.md`` ("Store benchmarks") and :mod:`benchmarks.store.runner`.
"""
