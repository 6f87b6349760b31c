"""What running through SLURM costs: the tiny test config, locally and on a local cluster.

Runs the same config twice in fresh folders: once as `snakemake --cores 1
--resources gpu=1`, once through `--workflow-profile profiles/slurm` on the
one-node SLURM cluster the tests use (tests/slurm_cluster.py; root and
`make slurm-deps` needed). Prints both wall times and, from SLURM's
accounting, where a job's time went: waiting in the queue, and inside the
job against the measurement the job made.

    python benchmarks/slurm_overhead.py [--out bench/slurm]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SNAKEMAKE, TINY_CONFIG  # noqa: E402
from slurm_cluster import LocalSlurm  # noqa: E402
from test_slurm import profile_partitions, rule_of  # noqa: E402


def run(workdir: Path, extra: list[str], env: dict | None = None) -> float:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    started = time.monotonic()
    result = subprocess.run(command + extra, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    (workdir / "snakemake.out").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"snakemake failed in {workdir}; see {workdir / 'snakemake.out'}")
    return wall


def measured_seconds(workdir: Path) -> dict[str, float]:
    """Each SLURM job's own measurement time (the search's trials, or the timed process)."""
    seconds = {}
    for path in (workdir / "results/raw").rglob("*.json"):
        record = json.loads(path.read_text())
        if "search_seconds" in record:
            spent = record["search_seconds"]
        else:
            spent = (
                datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])
            ).total_seconds()
        seconds[record["host"]["slurm_job_id"]] = spent
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/slurm")
    args = parser.parse_args()

    local_wall = run(args.out / "local", ["--cores", "1", "--resources", "gpu=1"])
    with LocalSlurm(profile_partitions()) as cluster:
        slurm_wall = run(args.out / "slurm", ["--workflow-profile", str(ROOT / "profiles/slurm")], cluster.env)
        jobs = cluster.jobs()

    def seconds(job: dict, start: str, end: str) -> float:
        return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()

    print(f"local run:          {local_wall:6.1f} s")
    print(f"through SLURM:      {slurm_wall:6.1f} s  ({len(jobs)} sbatch jobs)")
    print(f"extra per job:      {(slurm_wall - local_wall) / len(jobs):6.1f} s  ((SLURM - local) / jobs)")
    print("per rule (median, s): queue = submit->start while nothing else ran; in job = start->end;")
    print("                      measured = the record's own process; sacct has 1 s resolution")
    measured_by_job = measured_seconds(args.out / "slurm")
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(rule_of(job), []).append(job)
    busy = [(datetime.fromisoformat(j["Start"]), datetime.fromisoformat(j["End"])) for j in jobs]
    for rule, members in sorted(by_rule.items()):
        free = [
            j for j in members
            if not any(s < datetime.fromisoformat(j["Start"]) and e > datetime.fromisoformat(j["Submit"])
                       for s, e in busy)
        ]  # fmt: skip
        queue = statistics.median(seconds(j, "Submit", "Start") for j in free) if free else float("nan")
        in_job = statistics.median(seconds(j, "Start", "End") for j in members)
        measured = statistics.median(measured_by_job[j["JobIdRaw"]] for j in members)
        print(f"  {rule:<11} n={len(members)}  queue {queue:4.1f}  in job {in_job:5.1f}  measured {measured:5.1f}")


if __name__ == "__main__":
    main()
