"""A memory trial: one variant at one batch size, run twice in a process of its own.

The unit both memory measurements share: the largest-batch search runs
trials until one fits and the next does not, and each throughput point's
memory is the trial at its batch (`scenarios.throughput`). The process's
own peak (`dlmark.measure.memory`) is the trial's memory, so the process
runs nothing else; a launcher (`dlmark.measure.launchers`) starts it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from dlmark import runtimes, variants
from dlmark.measure import memory
from dlmark.measure.child import limit_threads
from dlmark.specs import Measured


@dataclass(frozen=True, kw_only=True)
class TrialSpec(Measured):
    """One trial: the measured variant at one batch size, run twice in a process of its own."""

    batch_size: int


def memory_process(spec: TrialSpec) -> runtimes.Backend:
    """Ready this process to measure memory: thread pools pinned, the runtime's memory settings set."""
    limit_threads(spec.threads)
    backend = runtimes.get(spec.runtime, spec.precision)
    if spec.device == "cpu":
        memory.fix_mmap_threshold()  # the same allocations, the same peak, in every process
        for name, value in backend.memory_environment.items():
            os.environ.setdefault(name, value)  # before the framework is imported: read once there
    return backend


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Two forward passes at one batch size; report the process's peak memory.

    Runs in the child. Two calls, not one: the second shows whether memory
    settles after the first call's allocations (static_alloc plans once).
    """
    backend = memory_process(spec)
    on_cpu = spec.device == "cpu"
    # The framework imported (done already where a warm process forked this
    # one), then its libraries' pages mapped before anything is built, so that
    # none is mapped after the peak: in a new process that imported only
    # while building, resnet18_v1's INT8 trial at batch 1 read 216.8 to 217.1
    # MiB against 223.8 (docs/validation.md, "Memory trials forked").
    backend.preload()
    files_mb = memory.map_file_pages() if on_cpu else None
    call = backend.memory_call(variants.variant_of(spec), spec.batch_size, spec.device)
    if on_cpu:
        memory.release_free_heap()
    # Weights, framework and input, before any activation: the line's intercept.
    baseline = backend.current_memory_mb(spec.device)
    for _ in range(2):
        call()
    peak = backend.peak_memory_mb(spec.device)
    return {"peak_memory_mb": peak, "baseline_mb": baseline, "files_mapped_first_mb": files_mb}


def preload_trial(spec: TrialSpec) -> None:
    """Readies a trial's process before its batch is known: thread pools pinned, framework imported.

    Run by the warm process that forks the trials of a search or of a
    model's throughput points.
    """
    memory_process(spec).preload()
