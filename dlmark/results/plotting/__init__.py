"""Figures drawn from the result tables.

Each function takes a tidy table and returns a matplotlib Figure; saving
is separate so tests can inspect figures. Figures are meant to be read at a
glance and printed: titles say what and where, axes carry units, every
panel names its model.

The figures live in three modules, `curves` (against the batch size),
`choices` (what helps choose a model, variant or device) and `serving`
(latency against load), on the house
style of `style`; this package names them all, so a script reads
`plotting.speedup(...)` without knowing which module draws it.
"""

from dlmark.results.plotting.choices import (  # noqa: F401  (the package's figures)
    max_batch_size,
    pareto_front,
    pick_batch,
    energy_vs_throughput,
    pick_speedups,
    speedup,
    throughput_vs_accuracy,
    throughput_vs_device,
)
from dlmark.results.plotting.curves import memory_vs_batch_size, throughput_vs_batch_size  # noqa: F401
from dlmark.results.plotting.serving import latency_vs_load  # noqa: F401
from dlmark.results.plotting.style import panel_rows, save  # noqa: F401
