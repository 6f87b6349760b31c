"""One throughput point: a model, a device, a runtime, a precision, a batch.

`measure_throughput` is what runs inside the fresh child process;
`run_throughput` is the parent side that turns any ending (a result, an
out-of-memory kill, a crash) into one complete record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlmark import hardware, memory, models, provenance, runner, timing, variants

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ThroughputSpec:
    model: str
    device: str
    runtime: str
    precision: str
    batch_size: int
    machine: str
    threads: int
    budget: dict[str, float] = field(default_factory=dict)
    memory_limit_mb: float | None = None
    variant_dir: str = ""  # files of a prepared variant (ONNX, INT8); empty for the reference


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


def measure_throughput(spec: ThroughputSpec) -> dict[str, Any]:
    """Time the forward pass of one model at one batch size (child side)."""
    limit_threads(spec.threads)
    import mxnet as mx

    index = hardware.device_index(spec.device)
    ctx = mx.cpu() if index is None else mx.gpu(index)
    log_progress(f"{spec.model} on {spec.device}, batch {spec.batch_size}, {spec.threads} thread(s)")
    gflops = models.gflops_per_image(spec.model)
    # The input lives on the device before the clock starts: copying it in
    # would time the host-to-device link, not the model.
    variant = variants.VariantSpec(spec.model, spec.runtime, spec.precision, spec.variant_dir, spec.threads)
    call = variants.timed_call(variant, spec.batch_size, ctx)
    baseline = memory.current_rss_mb()
    summary = timing.time_calls(call, spec.batch_size, timing.Budget(**spec.budget), progress=log_progress)
    peak = memory.peak_rss_mb() if index is None else memory.gpu_memory_used_mb(index)
    result = asdict(summary)
    result.update(
        peak_memory_mb=peak,
        baseline_memory_mb=baseline,
        gflops_per_image=gflops,
    )
    return result


# Metrics a failed point does not have: null in JSON, empty in the CSV.
EMPTY_METRICS: dict[str, Any] = dict.fromkeys(
    (
        "throughput",
        "latency_ms_mean",
        "latency_ms_p50",
        "latency_ms_p90",
        "latency_ms_p99",
        "throughput_ci95_low",
        "throughput_ci95_high",
        "peak_memory_mb",
        "gflops_per_image",
    )
)
EMPTY_METRICS.update(iterations=0, measure_seconds=0.0)


def base_record(model: str, device: str, runtime: str, precision: str, machine: str) -> dict[str, Any]:
    """The columns every result table starts with, plus the host facts."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "family": models.model_info(model).family,
        "device": device,
        "device_name": hardware.device_name(device),
        "machine": machine,
        "runtime": runtime,
        "precision": precision,
        "software": hardware.software(runtime),
        "host": hardware.host_facts(),
        **provenance.workflow_version(),
    }


def unmeasured(spec: ThroughputSpec, status: str, error: str) -> dict[str, Any]:
    """A complete record for a point deliberately not measured, saying why."""
    record = base_record(spec.model, spec.device, spec.runtime, spec.precision, spec.machine)
    record.update(EMPTY_METRICS)
    record.update(
        batch_size=spec.batch_size, status=status, error=error, threads=spec.threads, settings=asdict(spec)
    )
    return record


def skipped_over_max_batch(spec: ThroughputSpec, max_batch: dict[str, Any]) -> dict[str, Any] | None:
    """An out_of_memory record for a batch above the largest that fits, else None.

    Running such a point would only repeat the search's failed trial at a
    larger size (minutes on a CPU, a crashed context on a GPU).
    """
    largest = max_batch.get("max_batch_size")
    if max_batch.get("status") != "ok" or max_batch.get("reached_upper_bound") or largest is None:
        return None
    if spec.batch_size <= largest:
        return None
    return unmeasured(
        spec,
        runner.OUT_OF_MEMORY,
        f"not run: batch {spec.batch_size} is above the largest batch that fits, "
        f"{largest}, within {max_batch['memory_limit_mb']:.0f} MiB",
    )


def failed_gate(spec: ThroughputSpec, gate_path: str | list) -> dict[str, Any] | None:
    """An error record for a variant that failed its correctness gate, else None.

    A variant whose outputs disagree with float32 is wrong, and timing it
    would publish a speed-up for a broken model.
    """
    if not gate_path:
        return None
    with open(gate_path, encoding="utf-8") as f:
        gate = json.load(f)
    if gate["passed"]:
        return None
    return unmeasured(
        spec,
        runner.ERROR,
        f"not timed: failed its correctness gate against mxnet/float32 (max |diff| "
        f"{gate['max_abs_diff']:.3g}, top-1 agreement {gate['top1_agreement']:.0%})",
    )


def run_throughput(spec: ThroughputSpec) -> dict[str, Any]:
    """Measure in a child process and return a complete record, whatever happened."""
    started = dt.datetime.now(dt.timezone.utc)
    outcome = runner.run_isolated(
        measure_throughput, spec, memory_limit_mb=spec.memory_limit_mb
    )
    finished = dt.datetime.now(dt.timezone.utc)
    record = base_record(spec.model, spec.device, spec.runtime, spec.precision, spec.machine)
    record.update(EMPTY_METRICS)
    if spec.variant_dir:
        gate = json.loads((Path(spec.variant_dir) / "gate.json").read_text())
        record.update(top1_agreement=gate["top1_agreement"], gate_max_abs_diff=gate["max_abs_diff"])
    record.update(
        batch_size=spec.batch_size,
        status=outcome.status,
        error=outcome.error,
        threads=spec.threads,
        started_at=started.isoformat(),
        finished_at=finished.isoformat(),
        settings=asdict(spec),
    )
    if outcome.value is not None:
        record.update(outcome.value)
    else:
        record["peak_memory_mb"] = outcome.observed_peak_mb or None
        log_progress(f"{spec.model} batch {spec.batch_size}: {outcome.status}: {outcome.error}")
    return record
