"""Which drift canary follows the machine: each timing job's throughput shift against its canaries' shifts.

    python benchmarks/canaries.py RESULTS_A RESULTS_B [RESULTS_C ...]

Each argument is a results folder of the same config on one CPU machine.
For every pair of runs and every model, a job's shift is the geometric mean
over its points of the throughput ratio (the median over its processes),
beside the shift of the median over its processes of each canary
(dlmark.measure.drift). A canary that tracks the machine's speed correlates
with the jobs' shifts over all pairs; one that does not, does not.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from dlmark.measure import drift


def jobs(results: Path) -> dict[str, dict]:
    """Per model: the median throughput of each point over its processes, and each canary's median."""
    out = {}
    for path in sorted(results.glob("raw/*/rounds/cpu/*.json")):
        points = [p for p in json.loads(path.read_text())["points"] if p.get("process_results")]
        if not points:
            continue
        processes = {r["generation"]: r for r in points[0]["process_results"]}
        out[path.stem] = {
            "throughput": {
                (p["runtime"], p["precision"], p["batch_size"]): float(
                    np.median([r["throughput"] for r in p["process_results"]])
                )
                for p in points
            },
            **{
                canary: float(np.median([r[canary] for r in processes.values() if r.get(canary)]))
                if any(r.get(canary) for r in processes.values())
                else None
                for canary in drift.CANARIES
            },
        }
    return out


def main(folders: list[str]) -> None:
    if len(folders) < 2:
        raise SystemExit(__doc__)
    runs = {folder: jobs(Path(folder)) for folder in folders}
    shifts: dict[str, list[float]] = {"throughput": [], **{c: [] for c in drift.CANARIES}}
    for a, b in itertools.combinations(runs, 2):
        print(f"{b} over {a}")
        for model in sorted(set(runs[a]) & set(runs[b])):
            old, new = runs[a][model], runs[b][model]
            keys = set(old["throughput"]) & set(new["throughput"])
            if not keys or any(old[c] is None or new[c] is None for c in drift.CANARIES):
                continue
            speed = float(np.exp(np.mean([np.log(new["throughput"][k] / old["throughput"][k]) for k in keys])))
            shifts["throughput"].append(speed - 1)
            said = []
            for canary in drift.CANARIES:
                shifts[canary].append(new[canary] / old[canary] - 1)
                said.append(f"{canary} {shifts[canary][-1]:+.1%}")
            print(f"  {model:16s} throughput {speed - 1:+.1%}   " + "   ".join(said))
    print(f"over {len(shifts['throughput'])} job pairs, correlation with the jobs' throughput shifts:")
    for canary, name in drift.CANARIES.items():
        r = np.corrcoef(shifts["throughput"], shifts[canary])[0, 1]
        print(f"  {canary} ({name}): {r:+.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
