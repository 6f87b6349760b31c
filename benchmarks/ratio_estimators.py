"""How far the comparisons move between runs under each way of taking a ratio from a process's blocks.

    python benchmarks/ratio_estimators.py RESULTS_A RESULTS_B [RESULTS_C ...]

Each argument is a results folder of the same config on one machine. From
the raw rounds files (every point that has blocks, whatever its status),
the speed-ups (each variant over mxnet/float32, same model and batch) and
curve shapes (each point over its variant's smallest batch) are taken
again from the same blocks, per timing process, as:

- fastest: the two points' fastest blocks over the rounds both had
  (`dlmark.results.rounds`, what the tables use);
- median: the median of the block-by-block ratios over those rounds (the
  rule before it);
- mean: the mean of the block-by-block log ratios;

then, as the tables do, the geometric mean over the processes. For every
pair of runs, each ratio's |a - b| / mean(a, b): the median, p90 and max
over the ratios, and those averaged over the pairs.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from dlmark.results import rounds
from dlmark.runtimes.base import REFERENCE

# Per process, from its (mine, theirs) block throughputs over the rounds both had: the ratio.
ESTIMATORS: dict[str, rounds.PerProcess] = {
    "fastest": rounds.fastest_blocks,
    "median": lambda blocks: math.exp(float(np.median([math.log(m / t) for m, t in blocks]))),
    "mean": lambda blocks: math.exp(float(np.mean([math.log(m / t) for m, t in blocks]))),
}


def points(results: Path) -> list[dict]:
    found = []
    for path in sorted(results.glob("raw/*/rounds/*/*.json")):
        found += [p for p in json.loads(path.read_text())["points"] if p.get("process_results")]
    return found


def comparisons(run: list[dict], estimator: rounds.PerProcess) -> dict[tuple, float]:
    """Every speed-up and curve shape of a run, by what it compares, as the tables pair them."""
    def key(r: rounds.PairedRatio) -> tuple:
        return (r.machine, r.device, r.model, r.runtime, r.precision, r.batch_size)

    found = {("speed-up", *key(r)): r.ratio for r in rounds.speedups(run, REFERENCE, estimator)}
    return found | {("shape", *key(r)): r.ratio for r in rounds.scaling(run, estimator)}


def main(folders: list[str]) -> None:
    runs = {folder: points(Path(folder)) for folder in folders}
    summary: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for name, estimator in ESTIMATORS.items():
        values = {folder: comparisons(run, estimator) for folder, run in runs.items()}
        for a, b in itertools.combinations(folders, 2):
            for kind in ("speed-up", "shape"):
                keys = [k for k in values[a] if k[0] == kind and k in values[b]]
                diff = np.array([abs(values[a][k] - values[b][k]) / ((values[a][k] + values[b][k]) / 2) for k in keys])
                if diff.size:
                    stats = (float(np.median(diff)), float(np.quantile(diff, 0.9)), float(diff.max()))
                    summary[name, kind].append(stats)
                    print(f"{a} vs {b}: {kind:8s} {name:8s} over {diff.size:2d}: median {stats[0]:.2%}, "
                          f"p90 {stats[1]:.2%}, max {stats[2]:.2%}")
    print(f"averaged over the {len(list(itertools.combinations(folders, 2)))} pairs:")
    for (name, kind), stats in sorted(summary.items(), key=lambda item: (item[0][1], item[0][0])):
        median, p90, worst = np.mean(stats, axis=0)
        print(f"  {kind:8s} {name:8s} median {median:.2%}, p90 {p90:.2%}, max {worst:.2%}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1:])
