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
from typing import Callable

import numpy as np

from dlmark.results import rounds

REFERENCE = ("mxnet", "float32")

# Per process, from its (mine, theirs) block throughputs over the rounds both had: the log ratio.
ESTIMATORS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "fastest": lambda mine, theirs: math.log(mine.max() / theirs.max()),
    "median": lambda mine, theirs: float(np.median(np.log(mine / theirs))),
    "mean": lambda mine, theirs: float(np.mean(np.log(mine / theirs))),
}


def points(results: Path) -> list[dict]:
    found = []
    for path in sorted(results.glob("raw/*/rounds/*/*.json")):
        found += [p for p in json.loads(path.read_text())["points"] if p.get("process_results")]
    return found


def ratio(record: dict, against: dict, estimator: Callable) -> float | None:
    mine, theirs = rounds.per_block(record), rounds.per_block(against)
    by_process = defaultdict(list)
    for key in set(mine) & set(theirs):
        by_process[key[:2]].append((mine[key], theirs[key]))
    logs = [estimator(*map(np.array, zip(*blocks))) for blocks in by_process.values()]
    return math.exp(float(np.mean(logs))) if logs else None


def comparisons(run: list[dict], estimator: Callable) -> dict[tuple, float]:
    """Every speed-up and curve shape of a run, by what it compares."""
    found = {}
    variant = ("machine", "device", "model", "runtime", "precision")
    for record in run:
        key = tuple(record[k] for k in (*variant, "batch_size"))
        same = [r for r in run if all(r[k] == record[k] for k in variant)]
        smallest = min(same, key=lambda r: r["batch_size"])
        if smallest is not record and (value := ratio(record, smallest, estimator)):
            found["shape", *key] = value
        if (record["runtime"], record["precision"]) != REFERENCE:
            for reference in run:
                if (reference["runtime"], reference["precision"]) == REFERENCE and all(
                    reference[k] == record[k] for k in ("machine", "device", "model", "batch_size")
                ) and (value := ratio(record, reference, estimator)):
                    found["speed-up", *key] = value
    return found


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
