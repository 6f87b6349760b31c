"""One throughput point: a model, a device, a runtime, a precision, a batch.

`measure_throughput` is what runs inside each fresh child process;
`run_throughput` is the parent side. It measures the point in several
processes (their spread is part of the measurement), measures again a
process the rest of the machine disturbed, and turns any ending (a result,
an out-of-memory kill, a crash) into one complete record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlmark import drift, hardware, interference, models, runner, runtimes, timing, variants
from dlmark.records import NOISY, OK, Record, ThroughputRecord


@dataclass(frozen=True)
class ThroughputSpec:
    model: str
    device: str
    runtime: str
    precision: str
    batch_size: int
    machine: str
    threads: int
    budget: dict[str, float] = field(default_factory=dict)  # the config's measure block
    noise: dict[str, float] = field(default_factory=dict)  # the config's noise block
    memory_limit_mb: float | None = None
    variant_dir: str = ""  # files of a prepared variant (ONNX, INT8) and its gate


def log_progress(message: str) -> None:
    print(f"[dlmark {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def limit_threads(threads: int) -> None:
    """Pin the framework's thread pools before it is imported.

    oneDNN/OpenMP read these once at start-up, so they must be set in the
    child before `import mxnet`; setting them later changes nothing.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")


def preload(spec: ThroughputSpec) -> None:
    """What every measurement process of `spec` needs before it builds anything.

    Run once in the warm process that forks the repeats (`runner.Forker`):
    thread pools pinned, framework imported, nothing built or run.
    """
    limit_threads(spec.threads)
    runtimes.get(spec.runtime, spec.precision).preload()
    timing.t_quantile_975(2)  # imports scipy here, not between a child's timed calls


def measure_throughput(spec: ThroughputSpec) -> dict[str, Any]:
    """Time the forward pass of one model at one batch size (child side).

    The machine is watched over warm-up and timing together: a neighbour
    that slowed warm-up may also have stretched it into the timed part.
    """
    limit_threads(spec.threads)
    index = hardware.device_index(spec.device)
    backend = runtimes.get(spec.runtime, spec.precision)
    log_progress(f"{spec.model} on {spec.device}, batch {spec.batch_size}, {spec.threads} thread(s)")
    # The input lives on the device before the clock starts: copying it in
    # would time the host-to-device link, not the model.
    call = backend.timed_call(variants.variant_of(spec), spec.batch_size, spec.device)
    baseline = backend.current_memory_mb(spec.device)  # where it computes: RAM, or GPU memory
    budget = timing.Budget(**spec.budget)
    # scipy's import (a second on some machines) before the watch and the clock: inside either, its
    # one-thread CPU time would lower cpu_share and could mark the point noisy.
    timing.t_quantile_975(2)
    with interference.Watch(spec.threads, interference.NoisePolicy(**spec.noise), index) as watch:
        summary = timing.time_calls(call, spec.batch_size, budget, progress=log_progress)
    peak = backend.peak_memory_mb(spec.device)
    result = asdict(summary)
    result.update(
        peak_memory_mb=peak,
        baseline_memory_mb=baseline,
        interference=watch.result.to_dict(),
    )
    return result


def _record(spec: ThroughputSpec, **fields: Any) -> ThroughputRecord:
    common = Record.common(spec.model, spec.device, spec.runtime, spec.precision, spec.machine)
    return ThroughputRecord(
        **common, batch_size=spec.batch_size, threads=spec.threads, settings=asdict(spec), **fields
    )


def unmeasured(spec: ThroughputSpec, status: str, error: str) -> ThroughputRecord:
    """A complete record for a point deliberately not measured, saying why."""
    return _record(spec, status=status, error=error, throughput=None, peak_memory_mb=None)


def skipped_over_max_batch(spec: ThroughputSpec, max_batch: dict[str, Any]) -> ThroughputRecord | None:
    """An out_of_memory record for a batch above the largest that fits, else None.

    Running such a point would only repeat the search's failed trial at a
    larger size (minutes on a CPU, a crashed context on a GPU).
    """
    largest = max_batch.get("max_batch_size")
    if max_batch.get("status") != OK or max_batch.get("reached_upper_bound") or largest is None:
        return None
    if spec.batch_size <= largest:
        return None
    return unmeasured(
        spec,
        runner.OUT_OF_MEMORY,
        f"not run: batch {spec.batch_size} is above the largest batch that fits, "
        f"{largest}, within {max_batch['memory_limit_mb']:.0f} MiB",
    )


def read_gate(spec: ThroughputSpec) -> dict[str, Any]:
    return json.loads((Path(spec.variant_dir) / "gate.json").read_text(encoding="utf-8"))


def failed_gate(spec: ThroughputSpec, gate: dict[str, Any]) -> ThroughputRecord | None:
    """An error record for a variant that failed its correctness gate, else None.

    A variant whose outputs disagree with the reference is wrong, and timing
    it would publish a speed-up for a broken model.
    """
    if gate["passed"]:
        return None
    return unmeasured(
        spec,
        runner.ERROR,
        f"not timed: failed its correctness gate against {gate.get('against', 'mxnet/float32')} "
        f"(max |diff| {gate['max_abs_diff']:.3g}, top-1 agreement {gate['top1_agreement']:.0%})",
    )


def throughput_point(spec: ThroughputSpec, max_batch: dict[str, Any]) -> ThroughputRecord:
    """The record of one point: not timed when its gate failed or it cannot fit, else measured."""
    gate = read_gate(spec) if spec.variant_dir else None
    return (
        (failed_gate(spec, gate) if gate else None)
        or skipped_over_max_batch(spec, max_batch)
        or run_throughput(spec, gate)
    )


def run_throughput(
    spec: ThroughputSpec, gate: dict[str, Any] | None = None, target: Any = measure_throughput
) -> ThroughputRecord:
    """Measure in fresh child processes and return a complete record, whatever happened.

    At least `min_processes` processes, more while their throughputs are
    further apart than `target_rel_ci` (up to `max_processes`). A process
    the machine disturbed waits for quiet and is measured again, up to
    `noise.retries` times per point; one still disturbed after that is
    kept, and the row is `noisy`.

    On a CPU the first process is started afresh and gives the memory
    figures (a resident set); the others are forked from a warm process that
    has already imported the framework (`runner.Forker`), which saves a
    Python start and a framework import per process. On a GPU every process
    is forked: the warm process never touches the device, so each child's
    GPU memory is its own.
    """
    on_gpu = hardware.device_index(spec.device) is not None
    budget = timing.Budget(**spec.budget)
    policy = interference.NoisePolicy(**spec.noise)
    started = dt.datetime.now(dt.timezone.utc)
    kept: list[dict[str, Any]] = []
    retries_left = policy.retries
    remeasured = 0
    failure: runner.Outcome | None = None
    forker: runner.Forker | None = None
    try:
        while len(kept) < budget.max_processes:
            fresh = not kept and not on_gpu  # CPU memory figures come from a process started afresh
            # The CPU's drift canary, here and not in the child (its buffers would count there).
            bandwidth = None if on_gpu else drift.memory_bandwidth_gbs()
            began = time.monotonic()
            if fresh:
                outcome = runner.run_isolated(target, spec, memory_limit_mb=spec.memory_limit_mb)
            else:
                forker = forker or runner.Forker(preload, spec)
                outcome = forker.run(target, spec, memory_limit_mb=spec.memory_limit_mb)
            if outcome.value is None:
                failure = outcome
                break
            # The process's whole life, start-up and model building included.
            outcome.value.update(
                forked=not fresh, process_seconds=time.monotonic() - began, memory_bandwidth_gbs=bandwidth
            )
            disturbed = outcome.value["interference"]["disturbed"]
            if disturbed and retries_left > 0:
                retries_left -= 1
                remeasured += 1
                log_progress(f"process disturbed ({disturbed}); waiting for a quiet machine, then measuring again")
                interference.wait_for_quiet(policy, spec.threads, policy.quiet_wait_seconds, log_progress)
                continue
            kept.append(outcome.value)
            if disturbed and len(kept) >= budget.min_processes:
                break  # the point is noisy whatever follows: more processes would not make it trusted
            if len(kept) >= budget.min_processes:
                spread = timing.process_spread([_summary(v) for v in kept])
                if spread <= budget.target_rel_ci:
                    break
                if len(kept) < budget.max_processes:
                    log_progress(f"processes disagree by {spread:.1%}: measuring in one more")
    finally:
        if forker is not None:
            forker.close()
    finished = dt.datetime.now(dt.timezone.utc)
    fields: dict[str, Any] = dict(
        started_at=started.isoformat(),
        finished_at=finished.isoformat(),
        remeasured=remeasured,
        process_results=kept,
    )
    if gate is not None:
        fields.update(top1_agreement=gate["top1_agreement"], gate_max_abs_diff=gate["max_abs_diff"])
    if failure is not None:
        log_progress(f"{spec.model} batch {spec.batch_size}: {failure.status}: {failure.error}")
        return _record(
            spec,
            status=failure.status,
            error=failure.error + (f" (in process {len(kept) + 1}; earlier ones finished)" if kept else ""),
            throughput=None,
            peak_memory_mb=failure.observed_peak_mb or None,
            processes=len(kept),
            **fields,
        )
    return _measured(spec, budget, kept, fields)


def on_gpu(spec: ThroughputSpec) -> bool:
    return hardware.device_index(spec.device) is not None


def _summary(value: dict[str, Any]) -> timing.Summary:
    known = timing.Summary.__dataclass_fields__
    return timing.Summary(**{k: v for k, v in value.items() if k in known})


def _measured(
    spec: ThroughputSpec, budget: timing.Budget, kept: list[dict[str, Any]], fields: dict[str, Any]
) -> ThroughputRecord:
    summaries = [_summary(v) for v in kept]
    combined = timing.combine(summaries, spec.batch_size, budget.target_rel_ci)
    watched = [v["interference"] for v in kept]
    disturbed = [w["disturbed"] for w in watched if w["disturbed"]]
    disturbance = (
        f"{len(disturbed)} of {len(kept)} processes disturbed after {fields['remeasured']} "
        f"remeasured: {disturbed[-1]}"
        if disturbed
        else None
    )
    notes = [s.budget_note for s in summaries if s.budget_note]
    shares = [w["interference"] for w in watched if w["interference"] is not None]
    record = _record(
        spec,
        status=NOISY if disturbed else OK,
        disturbance=disturbance,
        error="; ".join(dict.fromkeys(notes)) or None,
        # A forked process's resident set leaves out pages its warm parent
        # touched: on a CPU the memory figures are the fresh first process's.
        peak_memory_mb=kept[0]["peak_memory_mb"],
        baseline_memory_mb=kept[0]["baseline_memory_mb"],
        mapped_files_mb=kept[0].get("resident_set", {}).get("file_mb") if not on_gpu(spec) else None,
        # Counted here, not in the measured process: counting imports MXNet,
        # whose libraries would count in another runtime's memory.
        gflops_per_image=models.gflops_per_image(spec.model),
        cpu_share=min(w["cpu_share"] for w in watched),
        memory_bandwidth_gbs=drift.median_bandwidth(kept),
        interference=max(shares) if shares else None,
        **asdict(combined),
        **fields,
    )
    log_progress(
        f"{spec.model} batch {spec.batch_size}: {record.throughput:.2f} img/s "
        f"[{record.throughput_ci95_low:.2f}, {record.throughput_ci95_high:.2f}] over "
        f"{record.processes} processes" + (f"; NOISY: {disturbance}" if disturbed else "")
    )
    return record
