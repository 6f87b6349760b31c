"""How far the comparisons move between runs under each way of taking a ratio from the blocks.

    python benchmarks/ratio_estimators.py [--min-calls N] RESULTS_A RESULTS_B [RESULTS_C ...]

Each argument is a results folder of the same config on one machine. From
the raw rounds files (every point that has blocks, whatever its status),
the speed-ups (each variant over mxnet/float32, same model and batch) and
curve shapes (each point over its variant's smallest batch) are taken
again from the same blocks, over the rounds both points had, as:

- job fastest: the two points' fastest blocks over all the job's processes
  (`dlmark.results.rounds.fastest_blocks`, what the tables use);
- fastest: per process, the two points' fastest blocks (the rule before);
- median: per process, the median of the block-by-block ratios (the rule
  before that);
- mean: per process, the mean of the block-by-block log ratios;

the per-process rules then, as the tables did, the geometric mean over the
processes. For every pair of runs, each ratio's |a - b| / mean(a, b): the
median, p90 and max over the ratios, and those averaged over the pairs.
Then how far the curve shapes moved against what their processes' spread
predicts (per process and job-wide), and, for the tables' rule, how often
each run's 95% interval holds the other run's value.

`--min-calls N` reads each run as if `measure.min_iterations` had been N:
a point whose blocks were one call each (calls slower than a block) keeps
only the blocks it would have had before the stopping rule
(`timing.enough`, with the run's own budget) let it leave the rounds, and
the seconds of timing that saves are printed. Points of several calls a
block never waited on `min_iterations` and are read as they were.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from dlmark.measure import timing
from dlmark.results import rounds
from dlmark.runtimes.base import REFERENCE
from dlmark.scenarios.throughput_child import MIN_ROUNDS


def per_process(rule: Callable[[rounds.Blocks], float]) -> rounds.Estimator:
    """A rule applied in each process, then the geometric mean over the processes (as the tables did)."""
    return lambda processes: rounds.geometric_interval(rule(blocks) for blocks in processes)[0]


ESTIMATORS: dict[str, rounds.Estimator] = {
    "job fastest": rounds.fastest_blocks,
    "fastest": per_process(rounds.process_fastest),
    "median": per_process(lambda blocks: math.exp(float(np.median([math.log(m / t) for m, t in blocks])))),
    "mean": per_process(lambda blocks: math.exp(float(np.mean([math.log(m / t) for m, t in blocks])))),
}


def points(results: Path) -> list[dict]:
    found = []
    for path in sorted(results.glob("raw/*/rounds/*/*.json")):
        found += [p for p in json.loads(path.read_text())["points"] if p.get("process_results")]
    return found


def as_if_min_calls(run: list[dict], min_calls: int) -> tuple[list[dict], float]:
    """`run` as it would have been timed with `min_iterations` = min_calls, and the timing seconds that saves."""
    saved, found = 0.0, []
    for point in run:
        budget = timing.Budget(**{**point["settings"]["budget"], "min_iterations": min_calls})
        results = []
        for process in point["process_results"]:
            blocks = process["block_ms"]
            if process["iterations"] == len(blocks):  # one call a block: the stopping rule sees each block
                seconds = [ms / 1e3 for ms in blocks]
                kept = next((k for k in range(MIN_ROUNDS, len(blocks) + 1) if timing.enough(seconds[:k], budget)),
                            len(blocks))
                saved += sum(seconds[kept:])
                process = {**process, "block_ms": blocks[:kept]}
            results.append(process)
        found.append({**point, "process_results": results})
    return found, saved


def comparisons(run: list[dict], estimator: rounds.Estimator) -> dict[tuple, rounds.PairedRatio]:
    """Every speed-up and curve shape of a run, by what it compares, as the tables pair them."""
    def key(r: rounds.PairedRatio) -> tuple:
        return (r.machine, r.device, r.model, r.runtime, r.precision, r.batch_size)

    found = {("speed-up", *key(r)): r for r in rounds.speedups(run, REFERENCE, estimator)}
    return found | {("shape", *key(r)): r for r in rounds.scaling(run, estimator)}


def explained(values: dict[str, dict[tuple, rounds.PairedRatio]], pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """(RMS of the curve shapes' log differences between runs, the RMS their processes' spread predicts).

    Each ratio's standard error is its interval's half-width over Student's t: if the two match,
    what moves a comparison between runs is what moves it between the processes of one run.
    """
    def error(r: rounds.PairedRatio) -> float:
        return math.log(r.ratio_ci95_high / r.ratio) / timing.t_quantile_975(r.processes - 1)

    moved, predicted = [], []
    for a, b in pairs:
        for k, x in values[a].items():
            if k[0] == "shape" and (y := values[b].get(k)) and x.processes > 1 and y.processes > 1:
                moved.append(math.log(x.ratio / y.ratio) ** 2)
                predicted.append(error(x) ** 2 + error(y) ** 2)
    return math.sqrt(np.mean(moved)), math.sqrt(np.mean(predicted))


def main(folders: list[str], min_calls: int | None = None) -> None:
    runs = {folder: points(Path(folder)) for folder in folders}
    if min_calls is not None:
        for folder, run in runs.items():
            runs[folder], saved = as_if_min_calls(run, min_calls)
            print(f"{folder}: read as if min_iterations were {min_calls}: {saved:.1f} s of timing fewer")
    pairs = list(itertools.combinations(folders, 2))
    summary: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    values_of = {}
    for name, estimator in ESTIMATORS.items():
        values = values_of[name] = {folder: comparisons(run, estimator) for folder, run in runs.items()}
        for a, b in pairs:
            for kind in ("speed-up", "shape"):
                both = [(values[a][k].ratio, values[b][k].ratio) for k in values[a] if k[0] == kind and k in values[b]]
                diff = np.array([abs(x - y) / ((x + y) / 2) for x, y in both])
                if diff.size:
                    stats = (float(np.median(diff)), float(np.quantile(diff, 0.9)), float(diff.max()))
                    summary[name, kind].append(stats)
                    print(f"{a} vs {b}: {kind:8s} {name:11s} over {diff.size:2d}: median {stats[0]:.2%}, "
                          f"p90 {stats[1]:.2%}, max {stats[2]:.2%}")
    print(f"averaged over the {len(pairs)} pairs:")
    for (name, kind), stats in sorted(summary.items(), key=lambda item: (item[0][1], item[0][0])):
        median, p90, worst = np.mean(stats, axis=0)
        print(f"  {kind:8s} {name:11s} median {median:.2%}, p90 {p90:.2%}, max {worst:.2%}")
    for name in ("fastest", "job fastest"):
        moved, spread = explained(values_of[name], pairs)
        print(f"{name}: the curve shapes moved between runs by {moved:.3f} (RMS of the log differences); "
              f"the processes' spread alone predicts {spread:.3f}")
    tables = values_of["job fastest"]
    for kind in ("speed-up", "shape"):
        held = [tables[a][k].ratio_ci95_low <= tables[b][k].ratio <= tables[a][k].ratio_ci95_high
                for a, b in itertools.permutations(folders, 2) for k in tables[a] if k[0] == kind and k in tables[b]]
        if held:
            print(f"the tables' 95% intervals of the {kind}s held the other run's value in "
                  f"{sum(held)} of {len(held)} ({sum(held) / len(held):.0%})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-calls", type=int, help="read the runs as if measure.min_iterations had been N")
    parser.add_argument("results", nargs="+", help="results folders of the same config on one machine")
    args = parser.parse_args()
    if len(args.results) < 2:
        parser.error("give at least two results folders to compare")
    main(args.results, args.min_calls)
