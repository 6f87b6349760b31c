"""Interleaved rounds: what is compared is measured together, and compared per round.

A shared VM's speed drifts over minutes: its host's other tenants take
memory bandwidth and cache, and nothing inside the VM shows it. Measured on
the development VM (2-core AMD EPYC), one model's speed had an
autocorrelation of 0.8 at 0.6 s and 0.2 at 6 s, and two runs of the same
config differed by up to 28% on points whose own processes agreed within
2%: the processes of a point ran within seconds of each other, while the
points a figure compares ran minutes apart.

So the points a comparison is made of (a model's batch sizes: its curve;
its variants at one batch: the speed-ups) are measured in rounds, one
process of every point a round, in a fresh random order each round
(randomized multiple interleaved trials; Abedi and Brecht, ICPE 2017). A
round takes seconds to a minute, the rounds spread over the job's minutes,
and drift then hits every member alike. A ratio is taken within each round
(the same moment for both members) and its interval comes from the rounds'
spread, not from dividing two independent intervals.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from dlmark import timing

Member = TypeVar("Member")


def interleave(
    members: Sequence[Member],
    due: Callable[[Member], bool],
    measure: Callable[[Member, int], None],
    rng: random.Random,
    log: Callable[[str], None] = lambda _: None,
) -> int:
    """Measure every member still `due` once per round, in a new random order each round.

    Returns the number of rounds. `measure(member, round)` runs one
    process of that member; `due` says whether it needs another (its
    processes disagree, or it has fewer than its minimum).
    """
    round_index = 0
    while pending := [m for m in members if due(m)]:
        order = rng.sample(pending, len(pending))
        log(f"round {round_index + 1}: {len(order)} point(s) in a random order")
        for member in order:
            measure(member, round_index)
        round_index += 1
    return round_index


def per_round(record: dict[str, Any]) -> dict[tuple[str, int], float]:
    """A throughput record's processes by (job, round): each one's throughput."""
    found = {}
    batch = record["batch_size"]
    for process in record.get("process_results") or []:
        if process.get("round") is None or not process.get("latency_ms_mean"):
            continue
        found[str(process.get("session")), int(process["round"])] = batch / (process["latency_ms_mean"] / 1e3)
    return found


@dataclass(frozen=True)
class PairedRatio:
    """One member's throughput over another's, from the rounds in which both were measured.

    The value is the geometric mean of the per-round ratios and its 95%
    interval Student's t over their logarithms: each round's two processes
    ran minutes apart at most, so the drift between rounds cancels, and
    what is left is the two points' own process-to-process spread.
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
    rounds: int

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def ratio_of_rounds(ratios: Iterable[float]) -> tuple[float, float, float, int]:
    """(geometric mean, 95% low, 95% high, count) of per-round ratios; open with fewer than two."""
    logs = np.log(np.asarray(list(ratios), dtype=float))
    if logs.size == 0:
        return math.nan, math.nan, math.nan, 0
    center = float(logs.mean())
    if logs.size < 2:
        return math.exp(center), 0.0, math.inf, 1
    half = timing.t_quantile_975(logs.size - 1) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return math.exp(center), math.exp(center - half), math.exp(center + half), int(logs.size)


def paired(record: dict[str, Any], against: dict[str, Any]) -> PairedRatio | None:
    """`record`'s throughput over `against`'s, round by round; None when no round holds both."""
    mine, theirs = per_round(record), per_round(against)
    shared = sorted(set(mine) & set(theirs))
    if not shared:
        return None
    ratio, low, high, count = ratio_of_rounds(mine[k] / theirs[k] for k in shared)
    return PairedRatio(
        **{k: record[k] for k in ("model", "family", "device", "device_name", "machine", "runtime", "precision")},
        batch_size=int(record["batch_size"]),
        against_runtime=against["runtime"],
        against_precision=against["precision"],
        against_batch_size=int(against["batch_size"]),
        ratio=ratio,
        ratio_ci95_low=low,
        ratio_ci95_high=high,
        rounds=count,
    )


def _by(records: Iterable[dict[str, Any]], *keys: str) -> dict[tuple, dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in records}


def speedups(records: Sequence[dict[str, Any]], reference: tuple[str, str]) -> list[PairedRatio]:
    """Every variant over the reference variant, same machine, device, model and batch size."""
    where = ("machine", "device", "model", "batch_size")
    references = _by((r for r in records if (r["runtime"], r["precision"]) == reference), *where)
    found = []
    for record in records:
        against = references.get(tuple(record[k] for k in where))
        if against is not None and (record["runtime"], record["precision"]) != reference:
            if (ratio := paired(record, against)) is not None:
                found.append(ratio)
    return found


def scaling(records: Sequence[dict[str, Any]]) -> list[PairedRatio]:
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
        if against is not record and (ratio := paired(record, against)) is not None:
            found.append(ratio)
    return found
