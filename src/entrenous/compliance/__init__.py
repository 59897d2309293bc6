"""The compliance layer: retention, erasure, consent, export and audit around the store.

Everything here is pure policy and bookkeeping on top of the layers below (errors, primitives,
protocol, store); it never imports the client, the CLI or the demo.
"""
