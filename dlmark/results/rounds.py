"""Interleaved rounds: what is compared is measured together, and compared over the rounds both had.

A shared VM's speed drifts: its host's other tenants take memory bandwidth
and cache, and nothing inside the VM shows it. Measured on the development
VMs (2-core AMD EPYC): one model's speed had an autocorrelation of 0.8 at
0.6 s and 0.2 at 6 s, and processes of one point seconds apart differed by
up to 30% while each one's own interval was 2%. Two points measured
minutes apart (or even a few seconds apart, in separate processes) carry
different drift, and a ratio of them carries the difference.

So the points a comparison is made of (a model's batch sizes: its curve;
its variants at one batch: the speed-ups) are timed in one process, in
rounds of short blocks (`throughput_child.BLOCK_SECONDS`), one block of every
point a round, in a fresh random order each round (randomized multiple
interleaved trials; Abedi and Brecht, ICPE 2017). A ratio is taken over
the rounds both members had: each member's fastest block over all the
job's processes, since what the machine adds to a block (a neighbour's
burst, a stall of the host, a slow spell that lasts a whole process) only
ever slows it (`PairedRatio` says what that gained). What differs from
one process to the next (memory layout, allocation, as pyperf found; the
machine's state while it ran) does not cancel that way, so a comparison
rests on several processes, and its 95% interval is Student's t over the
processes' own ratios: the process-to-process spread is in it, the
machine's drift is not.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from dlmark.measure import timing


def per_block(record: dict[str, Any]) -> dict[tuple[str, int, int], float]:
    """A throughput record's blocks by (job, timing process, round): each block's throughput."""
    found = {}
    batch = record["batch_size"]
    for process in record.get("process_results") or []:
        for round_index, latency_ms in enumerate(process.get("block_ms") or []):
            found[str(process.get("session")), int(process["generation"]), round_index] = batch / (latency_ms / 1e3)
    return found


@dataclass(frozen=True)
class PairedRatio:
    """One member's throughput over another's, from the rounds in which both were measured.

    The ratio of the two members' fastest blocks over the rounds both had,
    in every timing process of the job (the same number of chances each,
    so neither is favoured). The machine only ever takes time from a
    block, and a slow spell hits the blocks of one batch size more than
    another's: a memory-bound batch 1 more than a batch 8. Such a spell
    can cover a whole process of a few seconds, and then that process's
    own fastest blocks carry it. Over four default runs on a 2-core AMD
    EPYC VM (2026-12-07, six pairs, the same raw blocks read each way),
    the curve shapes moved between runs by a p90 of 4.0% (median 1.6%)
    this way, against 7.5% (2.6%) from each process's fastest blocks
    (the geometric mean over the processes) and 12.3% (3.2%) from the
    median of block-by-block ratios; the speed-ups by a max of 3.9%
    against 4.8% and 5.7% (docs/validation.md). The minimum time as the
    robust estimate under noise that only adds: Chen and Revels, "Robust
    benchmarking in noisy environments" (2016). The 95% interval is
    Student's t over the logarithms of each process's own ratio (from its
    own fastest blocks; `processes` of them), placed around the ratio: in
    those runs it held the next run's value for 91% of the curve shapes
    and 89% of the speed-ups.
    """

    model: str
    family: str
    device: str
    device_name: str
    machine: str
    runtime: str
    precision: str
    batch_size: int
    against_runtime: str
    against_precision: str
    against_batch_size: int
    ratio: float
    ratio_ci95_low: float
    ratio_ci95_high: float
    processes: int

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def geometric_interval(ratios: Iterable[float]) -> tuple[float, float, float, int]:
    """(geometric mean, 95% low, 95% high, count) of ratios; open above with fewer than two."""
    logs = np.log(np.asarray(list(ratios), dtype=float))
    if logs.size == 0:
        return math.nan, math.nan, math.nan, 0
    center = float(logs.mean())
    if logs.size < 2:
        return math.exp(center), 0.0, math.inf, 1
    half = timing.t_quantile_975(logs.size - 1) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return math.exp(center), math.exp(center - half), math.exp(center + half), int(logs.size)


# One timing process's blocks of two points, over the rounds both had: (mine, theirs) throughputs.
Blocks = list[tuple[float, float]]
# A ratio from every process's shared blocks: the tables' rule, or one a benchmark weighs against it.
Estimator = Callable[[list[Blocks]], float]


def process_fastest(blocks: Blocks) -> float:
    """One process's ratio: its two points' fastest blocks. It sets the interval, and was the rule before."""
    return max(m for m, _ in blocks) / max(t for _, t in blocks)


def fastest_blocks(processes: list[Blocks]) -> float:
    """The tables' rule (`PairedRatio`): the two points' fastest blocks over every process's shared rounds."""
    return (max(m for blocks in processes for m, _ in blocks)
            / max(t for blocks in processes for _, t in blocks))


def paired(record: dict[str, Any], against: dict[str, Any], estimate: Estimator = fastest_blocks
           ) -> PairedRatio | None:
    """`record`'s throughput over `against`'s from their shared rounds (`PairedRatio`); None when no round holds both.

    `estimate` is the tables' rule unless a benchmark weighs another
    (benchmarks/ratio_estimators.py). The interval is the processes' own
    ratios' spread (Student's t over their logarithms), placed around the
    estimate.
    """
    mine, theirs = per_block(record), per_block(against)
    by_process: dict[tuple[str, int], Blocks] = defaultdict(list)
    for key in sorted(set(mine) & set(theirs)):
        by_process[key[:2]].append((mine[key], theirs[key]))
    if not by_process:
        return None
    processes = list(by_process.values())
    center, low, high, count = geometric_interval(process_fastest(blocks) for blocks in processes)
    ratio = estimate(processes)
    low, high = ratio * low / center, ratio * high / center
    return PairedRatio(
        **{k: record[k] for k in ("model", "family", "device", "device_name", "machine", "runtime", "precision")},
        batch_size=int(record["batch_size"]),
        against_runtime=against["runtime"],
        against_precision=against["precision"],
        against_batch_size=int(against["batch_size"]),
        ratio=ratio,
        ratio_ci95_low=low,
        ratio_ci95_high=high,
        processes=count,
    )


def _by(records: Iterable[dict[str, Any]], *keys: str) -> dict[tuple, dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in records}


def speedups(records: Sequence[dict[str, Any]], reference: tuple[str, str],
             estimate: Estimator = fastest_blocks) -> list[PairedRatio]:
    """Every variant over the reference variant, same machine, device, model and batch size."""
    where = ("machine", "device", "model", "batch_size")
    references = _by((r for r in records if (r["runtime"], r["precision"]) == reference), *where)
    found = []
    for record in records:
        against = references.get(tuple(record[k] for k in where))
        if against is not None and (record["runtime"], record["precision"]) != reference:
            if (ratio := paired(record, against, estimate)) is not None:
                found.append(ratio)
    return found


def scaling(records: Sequence[dict[str, Any]], estimate: Estimator = fastest_blocks) -> list[PairedRatio]:
    """Each point over the same variant's smallest batch: the shape of its throughput curve."""
    variant = ("machine", "device", "model", "runtime", "precision")
    smallest: dict[tuple, dict[str, Any]] = {}
    for record in records:
        key = tuple(record[k] for k in variant)
        if key not in smallest or record["batch_size"] < smallest[key]["batch_size"]:
            smallest[key] = record
    found = []
    for record in records:
        against = smallest[tuple(record[k] for k in variant)]
        if against is not record and (ratio := paired(record, against, estimate)) is not None:
            found.append(ratio)
    return found
