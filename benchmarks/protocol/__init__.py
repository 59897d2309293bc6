"""Protocol benchmarks: entrenous against vodozemac, doubleratchet + x3dh, and a raw floor.

Layout:

* :mod:`~benchmarks.protocol.common`: the workloads, the measuring loop and the peer interfaces.
* one module per implementation: :mod:`~benchmarks.protocol.entrenous_impl`,
  :mod:`~benchmarks.protocol.vodozemac_impl`, :mod:`~benchmarks.protocol.doubleratchet_impl`,
  :mod:`~benchmarks.protocol.floor_impl`.
* :mod:`~benchmarks.protocol.worker`: measures one (implementation, workload) pair in its own
  process and prints the per-iteration timings as JSON.
* :mod:`~benchmarks.protocol.runner`: spawns the workers, computes medians and ratios, prints the
  table and writes the JSON report.
"""
