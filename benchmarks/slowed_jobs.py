"""Do the drift canaries pick out the timing jobs that ran slow? Each job against its model's median over runs.

    python benchmarks/slowed_jobs.py RESULTS_A RESULTS_B [RESULTS_C ...]

Each argument is a results folder of the same config on one CPU machine
(the models may differ: a job is compared with the same model's jobs of
the other runs). For every timing job, from its raw rounds file, whatever
status the table gave its rows:
- each canary's reading (the median over the job's processes) over its
  run's level, the median over the run's jobs, as the table judges it
  (`dlmark.measure.drift`);
- how far its points' throughputs were from the same points' median over
  the runs: the mean over its points, and its worst point;
- how far its curve (each point over its smallest batch, from paired
  rounds) was from the median curve, at its worst point.
Then, for the jobs below and above `drift.SLOW_MACHINE` of each canary, how
many ran slower, and the correlation of each canary with the jobs'
deviations.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from dlmark.measure import drift
from dlmark.results import rounds


def run_jobs(results: Path) -> dict[str, dict]:
    """Per model of one run: its measured points, and each canary over the run's level."""
    found = {}
    for path in sorted(results.glob("raw/*/rounds/cpu/*.json")):
        points = [p for p in json.loads(path.read_text())["points"] if p.get("process_results")]
        if points:
            readings = {c: [r.get(c) for r in points[0]["process_results"]] for c in drift.CANARIES}
            found[path.stem] = {"points": points, **{c: drift.median_bandwidth(v) for c, v in readings.items()}}
    for canary in drift.CANARIES:
        values = [j[canary] for j in found.values() if j[canary] is not None]
        level = float(np.median(values)) if values else None
        for job in found.values():
            job[canary] = job[canary] / level if level and job[canary] is not None else None
    return found


def point_key(p: dict) -> tuple:
    return p["runtime"], p["precision"], p["batch_size"]


def main(folders: list[str]) -> None:
    if len(folders) < 2:
        raise SystemExit(__doc__)
    runs = {folder: run_jobs(Path(folder)) for folder in folders}
    speeds: dict[tuple, list[float]] = defaultdict(list)
    curves: dict[tuple, list[float]] = defaultdict(list)
    for jobs in runs.values():
        for model, job in jobs.items():
            for p in job["points"]:
                speeds[model, *point_key(p)].append(float(np.median([r["throughput"] for r in p["process_results"]])))
            for ratio in rounds.scaling(job["points"]):
                curves[model, ratio.runtime, ratio.precision, ratio.batch_size].append(ratio.ratio)
    rows = []
    for folder, jobs in runs.items():
        for model, job in jobs.items():
            devs = [float(np.median([r["throughput"] for r in p["process_results"]]))
                    / float(np.median(speeds[model, *point_key(p)])) - 1 for p in job["points"]]
            shapes = [abs(r.ratio / float(np.median(curves[model, r.runtime, r.precision, r.batch_size])) - 1)
                      for r in rounds.scaling(job["points"])]
            rows.append((folder, model, job, float(np.mean(devs)), min(devs, key=lambda d: -abs(d)),
                         max(shapes, default=float("nan"))))
    rows.sort(key=lambda r: r[2][drift.COMPUTE] or 0)
    print(f"{'run':28s} {'model':15s} core  copy   mean dev  worst point  worst curve")
    for folder, model, job, mean, worst, shape in rows:
        core, copy = job[drift.COMPUTE], job[drift.BANDWIDTH]
        print(f"{folder[-28:]:28s} {model:15s} {core or float('nan'):.2f}  {copy or float('nan'):.2f}  "
              f"{mean:+8.1%}  {worst:+10.1%}  {shape:10.1%}")
    for canary, name in drift.CANARIES.items():
        judged = [(r[2][canary], r[3]) for r in rows if r[2][canary] is not None]
        low = [d for c, d in judged if c < drift.SLOW_MACHINE]
        high = [d for c, d in judged if c >= drift.SLOW_MACHINE]
        r = np.corrcoef([c for c, _ in judged], [d for _, d in judged])[0, 1]
        print(f"{canary} ({name}), over {len(judged)} jobs: correlation with the jobs' mean deviation {r:+.2f}; "
              f"{len(low)} below {drift.SLOW_MACHINE}, {sum(d < 0 for d in low)} of them slower "
              f"({min(low, default=float('nan')):+.1%} to {max(low, default=float('nan')):+.1%}); "
              f"{len(high)} at or above, {sum(d < 0 for d in high)} slower")


if __name__ == "__main__":
    main(sys.argv[1:])
