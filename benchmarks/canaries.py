"""Which drift canary follows the machine: each timing job's throughput shift against its canaries' shifts.

    python benchmarks/canaries.py RESULTS_A RESULTS_B [RESULTS_C ...]

Each argument is a results folder of the same config on one CPU machine
(the models may differ: a job is compared with the same model's jobs of
the other runs). Read from the raw rounds files, whatever status the table
gave their rows. Two reports:

- Shifts: for every pair of runs and every model, a job's shift is the
  geometric mean over its points of the throughput ratio (the median over
  its processes), beside the shift of the median over its processes of
  each canary (dlmark.measure.drift). A canary that tracks the machine's
  speed correlates with the jobs' shifts over all pairs.
- Slowed jobs: every job's canaries over its run's level (the median over
  the run's jobs, as the table judges them), beside how far its points'
  throughputs were from the same points' median over the runs (mean and
  worst point) and its curve from the median curve (worst point); then,
  per canary, how many jobs below and above `drift.SLOW_MACHINE` ran slower.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from dlmark.measure import drift
from dlmark.results import rounds


def jobs(results: Path) -> dict[str, dict]:
    """Per model: the median throughput of each point over its processes, its curve, and each canary's median."""
    out = {}
    for path in sorted(results.glob("raw/*/rounds/cpu/*.json")):
        points = [p for p in json.loads(path.read_text())["points"] if p.get("process_results")]
        if not points:
            continue
        processes = {r["generation"]: r for r in points[0]["process_results"]}
        out[path.stem] = {
            "curve": {(r.runtime, r.precision, r.batch_size): r.ratio for r in rounds.scaling(points)},
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


def shifts_report(runs: dict[str, dict[str, dict]]) -> None:
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


def slowed_report(runs: dict[str, dict[str, dict]]) -> None:
    medians: dict[str, dict[tuple, list[float]]] = {"throughput": defaultdict(list), "curve": defaultdict(list)}
    for found in runs.values():
        for model, job in found.items():
            for kind, seen in medians.items():
                for key, value in job[kind].items():
                    seen[model, *key].append(value)

    def off(model: str, kind: str, key: tuple, value: float) -> float:
        return value / float(np.median(medians[kind][model, *key])) - 1

    rows = []
    for folder, found in runs.items():
        levels = {c: np.median([j[c] for j in found.values() if j[c] is not None] or [np.nan]) for c in drift.CANARIES}
        for model, job in found.items():
            devs = [off(model, "throughput", k, v) for k, v in job["throughput"].items()]
            curve = [abs(off(model, "curve", k, v)) for k, v in job["curve"].items()]
            read = {c: job[c] / levels[c] if job[c] is not None else None for c in drift.CANARIES}
            rows.append((folder, model, read, float(np.mean(devs)), max(devs, key=abs), max(curve, default=np.nan)))
    rows.sort(key=lambda r: r[2][drift.COMPUTE] or 0)
    print(f"{'run':28s} {'model':15s} core  copy   mean dev  worst point  worst curve")
    for folder, model, read, mean, worst, shape in rows:
        core, copy = (read[c] or np.nan for c in (drift.COMPUTE, drift.BANDWIDTH))
        print(f"{folder[-28:]:28s} {model:15s} {core:.2f}  {copy:.2f}  {mean:+8.1%}  {worst:+10.1%}  {shape:10.1%}")
    for canary, name in drift.CANARIES.items():
        judged = [(r[2][canary], r[3]) for r in rows if r[2][canary] is not None]
        low = [d for c, d in judged if c < drift.SLOW_MACHINE]
        high = [d for c, d in judged if c >= drift.SLOW_MACHINE]
        r = np.corrcoef([c for c, _ in judged], [d for _, d in judged])[0, 1]
        print(f"{canary} ({name}), over {len(judged)} jobs: correlation with the jobs' mean deviation {r:+.2f}; "
              f"{len(low)} below {drift.SLOW_MACHINE}, {sum(d < 0 for d in low)} of them slower "
              f"({min(low, default=np.nan):+.1%} to {max(low, default=np.nan):+.1%}); "
              f"{len(high)} at or above, {sum(d < 0 for d in high)} slower")


def main(folders: list[str]) -> None:
    if len(folders) < 2:
        raise SystemExit(__doc__)
    runs = {folder: jobs(Path(folder)) for folder in folders}
    shifts_report(runs)
    slowed_report(runs)


if __name__ == "__main__":
    main(sys.argv[1:])
