"""Throughput points: a model, a device, a runtime, a precision, a batch.

A model's points on a device are measured together (`dlmark.rounds`): in
each of several processes ("generations"), every point is built and warmed
up, then timed in rounds of short blocks, one block of every point a
round, in a new random order each round. Drift of a shared machine then
hits every point alike, and ratios between points (the throughput curve,
the speed-ups) are taken block by block, under a second apart. The
processes are forked from one warm process that has imported the
runtimes; their spread is part of each point's interval.

Memory is not read from those processes (each holds every point): each
point's memory comes from a fresh process of its own that builds it and
runs it twice, as a largest-batch trial does (`maxbatch.run_trial`).

`measure_rounds` runs inside each timing process; `run_rounds` is the
parent side. A disturbed process is measured again, and any ending (a
result, an out-of-memory kill, a crash) becomes one complete record per
point.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlmark import drift, hardware, interference, maxbatch, models, runner, runtimes, timing, variants
from dlmark.child import limit_threads, log_progress
from dlmark.records import NOISY, OK, Record, ThroughputRecord

# How long each point is timed at a stretch before the round moves on: short against
# the machine's drift (its speed decorrelates within seconds on a shared VM), long
# against a call and the untimed call that starts each block. A block is shorter
# still when that gives `measure.min_seconds` fewer than MIN_ROUNDS rounds.
BLOCK_SECONDS = 0.3
MIN_ROUNDS = 3
# Calls shorter than this get an untimed call at the start of each block (caches and
# threads of a point that waited while others ran); a longer call refills them itself.
REWARM_BELOW_SECONDS = 0.05


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


@dataclass(frozen=True)
class RoundsJob:
    """What one timing process does: every point of a model on a device, in rounds from `seed`."""

    specs: tuple[ThroughputSpec, ...]
    seed: int = 0


def preload(job: RoundsJob) -> None:
    """What every timing process of `job` needs before it builds anything.

    Run once in the warm process that forks them (`runner.Forker`): thread
    pools pinned, every runtime of the points imported, nothing built or run.
    """
    limit_threads(job.specs[0].threads)
    for runtime, precision in dict.fromkeys((s.runtime, s.precision) for s in job.specs):
        runtimes.get(runtime, precision).preload()
    timing.t_quantile_975(2)  # imports scipy here, not between a child's timed calls


def measure_rounds(job: RoundsJob) -> dict[str, Any]:
    """Build, warm up, then time every point of `job` in rounds of blocks (child side).

    Every point has a block in each of the first MIN_ROUNDS rounds, and
    stays in the rounds until it has met the stopping rule
    (`timing.enough`): a point whose calls are slow needs fewer rounds
    than one that is noisy. Its ratios pair the rounds both points had.
    The machine is watched over the rounds.
    """
    first = job.specs[0]
    limit_threads(first.threads)
    budget = timing.Budget(**first.budget)
    calls, warm = [], []
    for spec in job.specs:
        log_progress(f"{spec.model} on {spec.device}, {spec.runtime}/{spec.precision} batch {spec.batch_size}, "
                     f"{spec.threads} thread(s): building and warming up")
        backend = runtimes.get(spec.runtime, spec.precision)
        # The input lives on the device before the clock starts: copying it in
        # would time the host-to-device link, not the model.
        calls.append(backend.timed_call(variants.variant_of(spec), spec.batch_size, spec.device))
        warm.append(timing.warm_up(calls[-1], budget))
    blocks: list[list[list[float]]] = [[] for _ in calls]
    rng = random.Random(job.seed)
    policy = interference.NoisePolicy(**first.noise)
    block_seconds = min(BLOCK_SECONDS, budget.min_seconds / MIN_ROUNDS)
    rewarm = [seconds / n < REWARM_BELOW_SECONDS for n, seconds in warm]
    def due(i: int) -> bool:  # a point leaves the rounds once it has met the stopping rule
        return len(blocks[i]) < MIN_ROUNDS or not timing.enough([x for b in blocks[i] for x in b], budget)

    with interference.Watch(first.threads, policy, hardware.device_index(first.device)) as watch:
        while pending := [i for i in range(len(calls)) if due(i)]:
            for i in rng.sample(pending, len(pending)):
                blocks[i].append(timing.time_block(calls[i], block_seconds, rewarm=rewarm[i]))
    log_progress(f"timed {len(calls)} point(s) in {max(len(b) for b in blocks)} rounds")
    return {
        "points": [
            {"warmup_iterations": n, "warmup_seconds": seconds, "blocks_s": mine}
            for (n, seconds), mine in zip(warm, blocks)
        ],
        "interference": watch.result.to_dict(),
    }


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


def throughput_points(
    specs: list[ThroughputSpec], max_batches: dict[tuple[str, str], dict[str, Any]]
) -> list[ThroughputRecord]:
    """The records of a model's points on a device, in the order of `specs`.

    A point whose variant failed its gate, or whose batch is above the
    largest that fits, is recorded without running; the rest are measured
    together (`run_rounds`). `max_batches` holds each variant's
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
    """One throughput point while it is measured: its spec, memory and what its processes gave so far."""

    spec: ThroughputSpec
    gate: dict[str, Any] | None = None
    memory: dict[str, Any] = field(default_factory=dict)  # from its own memory trial
    kept: list[dict[str, Any]] = field(default_factory=list)
    failure: runner.Outcome | None = None


def on_gpu(spec: ThroughputSpec) -> bool:
    return hardware.device_index(spec.device) is not None


def measure_memory(points: list[Point]) -> None:
    """Each point's memory, from a process of its own that builds it and runs it twice.

    On a CPU a fresh process, started (and importing its runtime) while the
    one before runs (`runner.Prestarted`): its own memory is the point's.
    On a GPU forked from a warm process that never touched the device. A
    point over its memory limit is out_of_memory and is not timed.
    """
    with contextlib.ExitStack() as stack:
        starters: dict[tuple[str, str], Any] = {}
        for point in points:
            spec = point.spec
            trial = maxbatch.TrialSpec(spec.model, spec.device, spec.batch_size, spec.threads,
                                       spec.runtime, spec.precision, spec.variant_dir)
            key = (spec.runtime, spec.precision)
            if key not in starters:
                ready = runner.Forker if on_gpu(spec) else runner.Prestarted
                starters[key] = stack.enter_context(ready(maxbatch.preload_trial, trial))
            outcome = starters[key].run(maxbatch.run_trial, trial, memory_limit_mb=spec.memory_limit_mb)
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
    budget = timing.Budget(**live[0].spec.budget)
    if generations >= budget.max_processes:
        return False
    if generations < budget.min_processes:
        return True
    if any(v["interference"]["disturbed"] for v in live[0].kept):
        return False
    spreads = {p.spec.batch_size: timing.process_spread([_summary(v) for v in p.kept]) for p in live}
    worst = max(spreads.values())
    if worst > budget.target_rel_ci:
        log_progress(f"the processes of a point disagree by up to {worst:.1%}: measuring in one more")
        return True
    return False


def _process_result(spec: ThroughputSpec, answer: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """One point's result from one timing process: its summary and its blocks' mean latencies."""
    latencies = [x for block in answer["blocks_s"] for x in block]
    budget = timing.Budget(**spec.budget)
    summary = timing.summarize(latencies, spec.batch_size, budget.target_rel_ci,
                               answer["warmup_iterations"], answer["warmup_seconds"])
    timing.note_budget(summary, budget)
    return dict(asdict(summary), block_ms=[1e3 * sum(b) / len(b) for b in answer["blocks_s"]], **facts)


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
        policy = interference.NoisePolicy(**first.noise)
        retries_left = policy.retries
        session = uuid.uuid4().hex[:12]  # pairs a ratio's blocks with those of the same job only
        # A timing process holds every point at once, each within its own limit.
        limit = None if first.memory_limit_mb is None else first.memory_limit_mb * len(live)
        job = RoundsJob(tuple(p.spec for p in live))
        with runner.Forker(preload, job) as forker:
            while _due(live, len(live[0].kept)):
                generation = len(live[0].kept)
                # The CPU's drift canary, here and not in the child (its buffers would count there).
                bandwidth = None if on_gpu(first) else drift.memory_bandwidth_gbs()
                began, began_at = time.monotonic(), time.time()
                outcome = forker.run(target, RoundsJob(job.specs, rng.randrange(2**32)), memory_limit_mb=limit)
                if outcome.value is None:
                    log_progress(f"{first.model}: timing process {generation + 1}: {outcome.status}: {outcome.error}")
                    for point in live:
                        point.failure = outcome
                    break
                disturbed = outcome.value["interference"]["disturbed"]
                if disturbed and retries_left > 0:
                    retries_left -= 1
                    remeasured += 1
                    log_progress(f"process disturbed ({disturbed}); waiting for a quiet machine, then measuring again")
                    interference.wait_for_quiet(policy, first.threads, policy.quiet_wait_seconds, log_progress)
                    continue
                facts = dict(interference=outcome.value["interference"], memory_bandwidth_gbs=bandwidth,
                             process_seconds=time.monotonic() - began, began_at=began_at, forked=True,
                             session=session, generation=generation)
                for point, answer in zip(live, outcome.value["points"]):
                    point.kept.append(_process_result(point.spec, answer, **facts))
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
        fields.update(top1_agreement=point.gate["top1_agreement"], gate_max_abs_diff=point.gate["max_abs_diff"])
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


def _summary(value: dict[str, Any]) -> timing.Summary:
    known = timing.Summary.__dataclass_fields__
    return timing.Summary(**{k: v for k, v in value.items() if k in known})


def _measured(point: Point, fields: dict[str, Any]) -> ThroughputRecord:
    spec, kept, memory = point.spec, point.kept, point.memory
    summaries = [_summary(v) for v in kept]
    combined = timing.combine(summaries, spec.batch_size, timing.Budget(**spec.budget).target_rel_ci)
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
        peak_memory_mb=memory["peak_memory_mb"],
        baseline_memory_mb=memory["baseline_mb"],
        mapped_files_mb=None if on_gpu(spec) else memory.get("resident_set", {}).get("file_mb"),
        memory_note=None if on_gpu(spec) else runtimes.get(spec.runtime, spec.precision).memory_note,
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
        f"{spec.model} {spec.runtime}/{spec.precision} batch {spec.batch_size}: {record.throughput:.2f} img/s "
        f"[{record.throughput_ci95_low:.2f}, {record.throughput_ci95_high:.2f}] over "
        f"{record.processes} processes" + (f"; NOISY: {disturbance}" if disturbed else "")
    )
    return record
