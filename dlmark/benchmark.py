"""Throughput points: a model, a device, a runtime, a precision, a batch.

`measure_throughput` is what runs inside each fresh child process;
`run_rounds` is the parent side. It measures a model's points together, in
interleaved rounds of one process each (`dlmark.rounds`: drift then hits
every point alike), in several processes per point (their spread is part
of the measurement), measures again a process the rest of the machine
disturbed, and turns any ending (a result, an out-of-memory kill, a crash)
into one complete record per point.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlmark import drift, hardware, interference, models, rounds, runner, runtimes, timing, variants
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


def throughput_points(specs: list[ThroughputSpec], max_batches: dict[tuple[str, str], dict[str, Any]]) -> list[ThroughputRecord]:
    """The records of a model's points, in the order of `specs`.

    A point whose variant failed its gate, or whose batch is above the
    largest that fits, is recorded without running; the rest are measured
    together in interleaved rounds. `max_batches` holds each variant's
    largest-batch record, by (runtime, precision).
    """
    gates = [read_gate(spec) if spec.variant_dir else None for spec in specs]
    decided = [
        (failed_gate(spec, gate) if gate else None)
        or skipped_over_max_batch(spec, max_batches[spec.runtime, spec.precision])
        for spec, gate in zip(specs, gates)
    ]
    to_measure = [i for i, record in enumerate(decided) if record is None]
    measured = iter(run_rounds([specs[i] for i in to_measure], [gates[i] for i in to_measure]))
    return [record or next(measured) for record in decided]


@dataclass
class Point:
    """One throughput point while its rounds run: its spec and what its processes gave so far."""

    spec: ThroughputSpec
    gate: dict[str, Any] | None = None
    kept: list[dict[str, Any]] = field(default_factory=list)
    remeasured: int = 0  # processes discarded as disturbed and measured again
    retries_left: int = 0
    failure: runner.Outcome | None = None
    started_at: str = ""

    def __post_init__(self) -> None:
        self.retries_left = interference.NoisePolicy(**self.spec.noise).retries

    def due(self) -> bool:
        """Whether it needs another process: fewer than the minimum, or they still disagree.

        A kept process that was disturbed makes the point noisy whatever
        follows, so more processes would not make it trusted.
        """
        budget = timing.Budget(**self.spec.budget)
        if self.failure is not None or len(self.kept) >= budget.max_processes:
            return False
        if len(self.kept) < budget.min_processes:
            return True
        if any(v["interference"]["disturbed"] for v in self.kept):
            return False
        spread = timing.process_spread([_summary(v) for v in self.kept])
        if spread > budget.target_rel_ci:
            log_progress(f"{self.spec.model} batch {self.spec.batch_size}: processes disagree by {spread:.1%}")
            return True
        return False


class Launchers:
    """How a point's processes start: the first on a CPU afresh, the rest forked.

    A CPU's memory figures come from the fresh first process (a forked
    child's resident set leaves out pages its warm parent touched). Every
    other process, and every one on a GPU (the warm process never touches
    the device, so a child's GPU memory is its own), is forked from a warm
    process per variant that has already imported the framework
    (`runner.Forker`), which saves a Python start and an import each.
    """

    def __init__(self) -> None:
        self._forkers: dict[tuple[str, str], runner.Forker] = {}

    def run(self, point: Point, target: Any) -> runner.Outcome:
        spec = point.spec
        if not point.kept and not on_gpu(spec):
            return runner.run_isolated(target, spec, memory_limit_mb=spec.memory_limit_mb)
        key = (spec.runtime, spec.precision)
        if key not in self._forkers:
            self._forkers[key] = runner.Forker(preload, spec)
        return self._forkers[key].run(target, spec, memory_limit_mb=spec.memory_limit_mb)

    def close(self) -> None:
        for forker in self._forkers.values():
            forker.close()
        self._forkers.clear()


def measure_process(point: Point, launchers: Launchers, session: str, round_index: int, target: Any) -> None:
    """One process of `point` for round `round_index`; a disturbed one waits for quiet and is measured again.

    A failure (crash, out of memory) ends the point: later rounds skip it.
    """
    spec = point.spec
    policy = interference.NoisePolicy(**spec.noise)
    point.started_at = point.started_at or dt.datetime.now(dt.timezone.utc).isoformat()
    while True:
        fresh = not point.kept and not on_gpu(spec)
        # The CPU's drift canary, here and not in the child (its buffers would count there).
        bandwidth = None if on_gpu(spec) else drift.memory_bandwidth_gbs()
        began, began_at = time.monotonic(), time.time()
        outcome = launchers.run(point, target)
        if outcome.value is None:
            point.failure = outcome
            log_progress(f"{spec.model} batch {spec.batch_size}: {outcome.status}: {outcome.error}")
            return
        # The process's whole life, start-up and model building included.
        outcome.value.update(
            forked=not fresh,
            process_seconds=time.monotonic() - began,
            memory_bandwidth_gbs=bandwidth,
            session=session,
            round=round_index,
            began_at=began_at,
        )
        disturbed = outcome.value["interference"]["disturbed"]
        if not disturbed or point.retries_left <= 0:
            point.kept.append(outcome.value)
            return
        point.retries_left -= 1
        point.remeasured += 1
        log_progress(f"process disturbed ({disturbed}); waiting for a quiet machine, then measuring again")
        interference.wait_for_quiet(policy, spec.threads, policy.quiet_wait_seconds, log_progress)


def run_rounds(
    specs: list[ThroughputSpec],
    gates: list[dict[str, Any] | None] | None = None,
    target: Any = measure_throughput,
    rng: random.Random | None = None,
) -> list[ThroughputRecord]:
    """Measure points together in interleaved rounds and return one complete record each (`dlmark.rounds`).

    Each round runs one process of every point still due, in a random
    order: at least `min_processes` rounds, more for the points whose
    processes are further apart than `target_rel_ci` (up to
    `max_processes`). A process the machine disturbed waits for quiet and
    is measured again, up to `noise.retries` times per point; one still
    disturbed after that is kept, and the row is `noisy`.
    """
    points = [Point(spec, gate) for spec, gate in zip(specs, gates or [None] * len(specs))]
    session = uuid.uuid4().hex[:12]  # pairs a ratio's processes with those of the same job only
    launchers = Launchers()
    try:
        rounds.interleave(
            points,
            Point.due,
            lambda point, r: measure_process(point, launchers, session, r, target),
            rng or random.Random(),
            log_progress,
        )
    finally:
        launchers.close()
    return [_finish(point) for point in points]


def run_throughput(
    spec: ThroughputSpec, gate: dict[str, Any] | None = None, target: Any = measure_throughput
) -> ThroughputRecord:
    """One point alone: its rounds are its processes."""
    return run_rounds([spec], [gate], target)[0]


def _finish(point: Point) -> ThroughputRecord:
    """The point's record, from its processes or from the failure that ended it."""
    spec, kept = point.spec, point.kept
    fields: dict[str, Any] = dict(
        started_at=point.started_at,
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        remeasured=point.remeasured,
        process_results=kept,
    )
    if point.gate is not None:
        fields.update(top1_agreement=point.gate["top1_agreement"], gate_max_abs_diff=point.gate["max_abs_diff"])
    failure = point.failure
    if failure is not None:
        return _record(
            spec,
            status=failure.status,
            error=failure.error + (f" (in process {len(kept) + 1}; earlier ones finished)" if kept else ""),
            throughput=None,
            peak_memory_mb=failure.observed_peak_mb or None,
            processes=len(kept),
            **fields,
        )
    return _measured(spec, timing.Budget(**spec.budget), kept, fields)


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
