"""Throughput points: a model, a device, a runtime, a precision, a batch.

A model's points on a device are measured together (`dlmark.results.rounds`): in
each of several processes ("generations"), every point is built and warmed
up, then timed in rounds of short blocks, one block of every point a
round, in a new random order each round. Drift of a shared machine then
hits every point alike, and ratios between points (the throughput curve,
the speed-ups) are taken block by block, under a second apart. The
processes are forked from one warm process that has imported the
runtimes; their spread is part of each point's interval.

Memory is not read from those processes (each holds every point): each
point's memory comes from a process of its own that builds it and runs it
twice, as a largest-batch trial does (`memory_trial.run_trial`).

`run_rounds` is the parent side; inside each timing process runs
`throughput_child.measure_rounds`. A disturbed process is measured again, and any ending (a
result, an out-of-memory kill, a crash) becomes one complete record per
point.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlmark import hardware, models, runtimes
from dlmark.measure import drift, energy, interference, launchers, timing
from dlmark.measure.child import log_progress
from dlmark.results.records import ProcessResult, ThroughputRecord
from dlmark.results.status import ERROR, NOISY, OK, OUT_OF_MEMORY
from dlmark.scenarios import memory_trial
from dlmark.scenarios.throughput_child import RoundsJob, ThroughputSpec, measure_rounds, preload
from dlmark.specs import header, identity


def _record(spec: ThroughputSpec, **fields: Any) -> ThroughputRecord:
    return ThroughputRecord(
        **header(spec, spec.machine), batch_size=spec.batch_size, threads=spec.threads, settings=asdict(spec),
        **fields,
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
        OUT_OF_MEMORY,
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
    detail = gate.get("error") or (
        f"max |diff| {gate['max_abs_diff']:.3g}, top-1 agreement {gate['top1_agreement']:.0%}"
    )
    return unmeasured(
        spec,
        ERROR,
        f"not timed: failed its correctness gate on {gate.get('gated_on', 'cpu')} against "
        f"{gate.get('against', 'mxnet/float32')} ({detail})",
    )


def throughput_points(
    specs: list[ThroughputSpec],
    max_batches: dict[tuple[str, str], dict[str, Any]],
    device_gates: dict[str, dict[str, Any]] | None = None,
) -> list[ThroughputRecord]:
    """The records of a model's points on a device, in the order of `specs`.

    A point whose variant failed its gate, or whose batch is above the
    largest that fits, is recorded without running; the rest are measured
    together (`run_rounds`). `max_batches` holds each variant's
    largest-batch record, by (runtime, precision); `device_gates`, on a
    GPU, the gates made there (`variants.device_gates`), which replace the
    CPU's.
    """
    gates = [
        (device_gates or {}).get(f"{spec.runtime}/{spec.precision}") or (read_gate(spec) if spec.variant_dir else None)
        for spec in specs
    ]
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
    """One throughput point while it is measured: its spec, memory and what its processes gave so far."""

    spec: ThroughputSpec
    gate: dict[str, Any] | None = None
    memory: dict[str, Any] = field(default_factory=dict)  # from its own memory trial
    kept: list[ProcessResult] = field(default_factory=list)
    failure: launchers.Outcome | None = None


def on_gpu(spec: ThroughputSpec) -> bool:
    return hardware.device_index(spec.device) is not None


def measure_memory(points: list[Point]) -> None:
    """Each point's memory, from a process of its own that builds it and runs it twice.

    Forked from a warm process that imported the runtime and built nothing
    (`launchers.Forker`). On a CPU the child's own memory counts the pages
    it inherited, as a new process counts its own import: the same peaks,
    within a new process's own spread (docs/validation.md), without a 3 s
    import per point. On a GPU the warm process never touched the device.
    A point over its memory limit is out_of_memory and is not timed.
    """
    with contextlib.ExitStack() as stack:
        warm: dict[tuple[str, str], launchers.Forker] = {}
        unstarted: dict[tuple[str, str], launchers.Outcome] = {}  # runtimes that did not import
        for point in points:
            spec = point.spec
            trial = memory_trial.TrialSpec(**identity(spec), batch_size=spec.batch_size)
            key = (spec.runtime, spec.precision)
            if key not in warm and key not in unstarted:
                try:
                    warm[key] = stack.enter_context(launchers.Forker(memory_trial.preload_trial, trial))
                except RuntimeError as exc:  # every point of that runtime is an error row
                    unstarted[key] = launchers.Outcome(ERROR, None, f"{exc}; the job's log says why", 0.0)
            outcome = unstarted.get(key) or warm[key].run(
                memory_trial.run_trial, trial, memory_limit_mb=spec.memory_limit_mb
            )
            if outcome.value is None:
                point.failure = outcome
                log_progress(f"{spec.model} batch {spec.batch_size} memory: {outcome.status}: {outcome.error}")
                continue
            point.memory = outcome.value


def _due(points: list[Point], generations: int) -> bool:
    """Whether the points need another timing process: fewer than the minimum, or they still disagree.

    A kept process that was disturbed makes its points noisy whatever
    follows, so more processes would not make them trusted.
    """
    live = [p for p in points if p.failure is None]
    if not live:
        return False
    budget = live[0].spec.budget
    if generations >= budget.max_processes:
        return False
    if generations < budget.min_processes:
        return True
    if any(r.disturbed for r in live[0].kept):
        return False
    spreads = {p.spec.batch_size: timing.process_spread([r.summary for r in p.kept]) for p in live}
    worst = max(spreads.values())
    if worst > budget.target_rel_ci:
        log_progress(f"the processes of a point disagree by up to {worst:.1%}: measuring in one more")
        return True
    return False


def run_rounds(
    specs: list[ThroughputSpec],
    gates: list[dict[str, Any] | None] | None = None,
    target: Any = measure_rounds,
    rng: random.Random | None = None,
) -> list[ThroughputRecord]:
    """Measure a model's points on one device together and return one complete record each.

    Memory first (a process per point), then timing: at least
    `min_processes` processes that each hold every point, more while a
    point's processes are further apart than `target_rel_ci` (up to
    `max_processes`). A process the machine disturbed waits for quiet and
    is measured again, up to `noise.retries` times; one still disturbed
    after that is kept, and its points are `noisy`.
    """
    rng = rng or random.Random()
    points = [Point(spec, gate) for spec, gate in zip(specs, gates or [None] * len(specs))]
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    measure_memory(points)
    live = [p for p in points if p.failure is None]
    remeasured = 0
    if live:
        first = live[0].spec
        policy = first.noise
        retries_left = policy.retries
        session = uuid.uuid4().hex[:12]  # pairs a ratio's blocks with those of the same job only
        # A timing process holds every point at once, each within its own limit.
        limit = None if first.memory_limit_mb is None else first.memory_limit_mb * len(live)
        job = RoundsJob(tuple(p.spec for p in live))
        with launchers.Forker(preload, job) as forker:
            while _due(live, len(live[0].kept)):
                generation = len(live[0].kept)
                # The CPU's drift canaries, here and not in the child (their buffers would count there).
                cpu = not on_gpu(first)
                bandwidth = drift.memory_bandwidth_gbs() if cpu else None
                gflops = drift.compute_gflops() if cpu else None
                one = RoundsJob(job.specs, rng.randrange(2**32), session, generation, bandwidth, gflops)
                outcome = forker.run(target, one, memory_limit_mb=limit)
                if outcome.value is None:
                    log_progress(f"{first.model}: timing process {generation + 1}: {outcome.status}: {outcome.error}")
                    for point in live:
                        point.failure = outcome
                    break
                made: list[ProcessResult] = outcome.value["results"]
                disturbed = made[0].disturbed
                if disturbed and retries_left > 0:
                    retries_left -= 1
                    remeasured += 1
                    log_progress(f"process disturbed ({disturbed}); waiting for a quiet machine, then measuring again")
                    interference.wait_for_quiet(policy, first.threads, policy.quiet_wait_seconds, log_progress)
                    continue
                for point, result in zip(live, made):
                    point.kept.append(result)
    return [_finish(point, started, remeasured) for point in points]


def run_throughput(
    spec: ThroughputSpec, gate: dict[str, Any] | None = None, target: Any = measure_rounds
) -> ThroughputRecord:
    """One point alone: its rounds hold only itself."""
    return run_rounds([spec], [gate], target)[0]


def _finish(point: Point, started_at: str, remeasured: int) -> ThroughputRecord:
    """The point's record, from its processes or from the failure that ended it."""
    spec, kept = point.spec, point.kept
    fields: dict[str, Any] = dict(
        started_at=started_at,
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        remeasured=remeasured,
        process_results=kept,
        memory_trial=point.memory,
    )
    if point.gate is not None:
        fields.update(top1_agreement=point.gate["top1_agreement"], gate_max_abs_diff=point.gate["max_abs_diff"],
                      gate_device=point.gate.get("gated_on", "cpu"))
    failure = point.failure
    if failure is not None:
        return _record(
            spec,
            status=failure.status,
            error=failure.error + (f" (in timing process {len(kept) + 1}; earlier ones finished)" if kept else ""),
            throughput=None,
            peak_memory_mb=point.memory.get("peak_memory_mb") or failure.observed_peak_mb or None,
            processes=len(kept),
            **fields,
        )
    return _measured(point, fields)


def _energy(kept: list[ProcessResult], throughput: float | None) -> dict[str, Any]:
    """Mean power over the point's timed blocks, all processes together, and energy per image from it.

    Power over the blocks divided by the throughput: each block's calls
    and its untimed first call ran at the same power.
    """
    measured = [r for r in kept if r.energy_j is not None]
    if not measured or not throughput:
        return {}
    total = energy.Energy(sum(r.energy_j for r in measured), sum(r.energy_seconds for r in measured),
                          measured[0].energy_source)
    if total.power_w is None:
        return {"energy_note": total.note}
    return {"power_w_mean": total.power_w, "energy_j_per_image": total.power_w / throughput}


def _measured(point: Point, fields: dict[str, Any]) -> ThroughputRecord:
    spec, kept, memory = point.spec, point.kept, point.memory
    summaries = [r.summary for r in kept]
    combined = timing.combine(summaries, spec.batch_size, spec.budget.target_rel_ci)
    watched = [r.interference for r in kept]
    disturbed = [w["disturbed"] for w in watched if w["disturbed"]]
    disturbance = (
        f"{len(disturbed)} of {len(kept)} processes disturbed after {fields['remeasured']} "
        f"remeasured: {disturbed[-1]}"
        if disturbed
        else None
    )
    notes = [s.budget_note for s in summaries if s.budget_note]
    spent = _energy(kept, combined.throughput)
    shares = [w["interference"] for w in watched if w["interference"] is not None]
    record = _record(
        spec,
        status=NOISY if disturbed else OK,
        disturbance=disturbance,
        error="; ".join(dict.fromkeys(notes)) or None,
        peak_memory_mb=memory["peak_memory_mb"],
        baseline_memory_mb=memory["baseline_mb"],
        mapped_files_mb=None if on_gpu(spec) else memory.get("resident_set", {}).get("file_mb"),
        memory_note=None if on_gpu(spec) else runtimes.get(spec.runtime, spec.precision).memory_note,
        # Counted here, not in the measured process: counting imports MXNet,
        # whose libraries would count in another runtime's memory.
        gflops_per_image=models.gflops_per_image(spec.model),
        cpu_share=min(w["cpu_share"] for w in watched),
        memory_bandwidth_gbs=drift.median_bandwidth([r.memory_bandwidth_gbs for r in kept]),
        compute_gflops=drift.median_bandwidth([r.compute_gflops for r in kept]),
        interference=max(shares) if shares else None,
        **spent,
        **asdict(combined),
        **fields,
    )
    log_progress(
        f"{spec.model} {spec.runtime}/{spec.precision} batch {spec.batch_size}: {record.throughput:.2f} img/s "
        f"[{record.throughput_ci95_low:.2f}, {record.throughput_ci95_high:.2f}] over "
        f"{record.processes} processes" + (f"; NOISY: {disturbance}" if disturbed else "")
    )
    return record
