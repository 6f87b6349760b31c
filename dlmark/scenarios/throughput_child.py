"""Inside each timing process of a throughput job: every point built, warmed up, then timed in rounds.

`dlmark.scenarios.throughput` starts these processes (forked from one warm
process that ran `preload`) and turns what they return into records.
Here, in the child: each point is built and warmed up, then every round
times one short block of every point still due, in a new random order
each round (a batch size's variants side by side), while the rest of the
machine is watched. The process returns one `ProcessResult` per point.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from dlmark import hardware, runtimes, variants
from dlmark.measure import energy, interference, memory, timing
from dlmark.measure.child import limit_threads, log_progress
from dlmark.results.records import ProcessResult
from dlmark.specs import Measured

# How long each point is timed at a stretch before the round moves on: short against
# the machine's drift (its speed decorrelates within seconds on a shared VM), long
# against a call and the untimed call that starts each block. A block is shorter
# still when that gives `measure.min_seconds` fewer than MIN_ROUNDS rounds.
BLOCK_SECONDS = 0.3
MIN_ROUNDS = 3
# Calls shorter than this get an untimed call at the start of each block (caches and
# threads of a point that waited while others ran); a longer call refills them itself.
REWARM_BELOW_SECONDS = 0.05


@dataclass(frozen=True, kw_only=True)
class ThroughputSpec(Measured):
    """One point: the measured variant at one batch size, and how carefully to time it."""

    batch_size: int
    machine: str
    budget: timing.Budget  # the config's measure block
    noise: interference.NoisePolicy  # the config's noise block
    memory_limit_mb: float | None = None


@dataclass(frozen=True)
class RoundsJob:
    """What one timing process does: every point of a model on a device, in rounds from `seed`.

    `session` and `generation` name the process in its results; `canary_gbs`
    and `canary_gflops` are the drift canaries its parent timed just before it.
    """

    specs: tuple[ThroughputSpec, ...]
    seed: int = 0
    session: str = ""
    generation: int = 0
    canary_gbs: float | None = None
    canary_gflops: float | None = None


def preload(job: RoundsJob) -> None:
    """What every timing process of `job` needs before it builds anything.

    Run once in the warm process that forks them (`launchers.Forker`): thread
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
    began_at, began = time.time(), time.monotonic()
    budget = first.budget
    calls, warm, built = [], [], []
    for spec in job.specs:
        log_progress(f"{spec.model} on {spec.device}, {spec.runtime}/{spec.precision} batch {spec.batch_size}, "
                     f"{spec.threads} thread(s): building and warming up")
        backend = runtimes.get(spec.runtime, spec.precision)
        counts, building = backend.build_counts(), time.perf_counter()
        # The input lives on the device before the clock starts: copying it in
        # would time the host-to-device link, not the model. A compiled or
        # captured variant compiles or captures here.
        calls.append(backend.timed_call(variants.variant_of(spec), spec.batch_size, spec.device))
        after = backend.build_counts()
        built.append(dict(build_seconds=time.perf_counter() - building,
                          build_counts={k: after[k] - counts.get(k, 0) for k in after} or None))
        warm.append(timing.warm_up(calls[-1], budget))
    blocks: list[list[list[float]]] = [[] for _ in calls]
    rng = random.Random(job.seed)
    policy = first.noise
    block_seconds = min(BLOCK_SECONDS, budget.min_seconds / MIN_ROUNDS)
    rewarm = [seconds / n < REWARM_BELOW_SECONDS for n, seconds in warm]
    counter, _ = energy.meter(hardware.device_index(first.device))
    spent = [[0.0, 0.0] for _ in calls]  # each point's joules and seconds over its blocks

    def timed(i: int) -> list[float]:
        if counter is None:
            return timing.time_block(calls[i], block_seconds, rewarm=rewarm[i])
        joules, began = counter.joules(), time.perf_counter()
        block = timing.time_block(calls[i], block_seconds, rewarm=rewarm[i])
        spent[i][0] += counter.joules() - joules
        spent[i][1] += time.perf_counter() - began
        return block

    def due(i: int) -> bool:  # a point leaves the rounds once it has met the stopping rule
        return len(blocks[i]) < MIN_ROUNDS or not timing.enough([x for b in blocks[i] for x in b], budget)

    batch_sizes = [spec.batch_size for spec in job.specs]
    with interference.Watch(first.threads, policy, hardware.device_index(first.device)) as watch:
        while pending := [i for i in range(len(calls)) if due(i)]:
            for i in round_order(pending, batch_sizes, rng):
                blocks[i].append(timed(i))
    log_progress(f"timed {len(calls)} point(s) in {max(len(b) for b in blocks)} rounds")
    facts = dict(
        interference=watch.result.to_dict(), memory_bandwidth_gbs=job.canary_gbs, compute_gflops=job.canary_gflops,
        process_peak_mb=memory.own_peak_mb(),
        launcher="forked", session=job.session, generation=job.generation, began_at=began_at,
        process_seconds=time.monotonic() - began,
    )
    energies = [
        dict(energy_j=j, energy_seconds=s, energy_source=counter.source) if counter else {} for j, s in spent
    ]
    return {"results": [process_result(spec, w, b, **facts, **e, **d)
                        for spec, w, b, e, d in zip(job.specs, warm, blocks, energies, built)]}


def round_order(pending: list[int], batch_sizes: list[int], rng: random.Random) -> list[int]:
    """One round's order: the batch sizes in a random order, and each one's variants one after another.

    A speed-up pairs two variants' blocks of one round, a curve shape two
    batch sizes' blocks. With the variants of a batch side by side (in a
    random order of their own), a speed-up's two blocks run at most a
    block or two apart, where the machine's speed has moved least, while a
    curve's batch sizes are still apart by a random share of the round.
    Against a fully random order, it halved how far resnet18_v1's speed-ups
    moved from one job to the next (docs/validation.md).
    """
    sizes = list(dict.fromkeys(batch_sizes[i] for i in pending))
    rng.shuffle(sizes)
    order = []
    for size in sizes:
        members = [i for i in pending if batch_sizes[i] == size]
        order.extend(rng.sample(members, len(members)))
    return order


def process_result(
    spec: ThroughputSpec, warm: tuple[int, float], blocks: list[list[float]], **facts: Any
) -> ProcessResult:
    """One point's result from this timing process: its calls' summary and its blocks' mean latencies."""
    summary = timing.summarize([x for block in blocks for x in block], spec.batch_size, spec.budget.target_rel_ci,
                               *warm)
    timing.note_budget(summary, spec.budget)
    return ProcessResult(summary=summary, block_ms=[1e3 * sum(b) / len(b) for b in blocks], **facts)
