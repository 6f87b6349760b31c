"""The workflow on a real SLURM cluster through the shipped profile, as a user runs it.

The cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) is started on
127.0.0.1 by tests/slurm_cluster.py; its one node carries the partitions that
profiles/slurm names. Jobs go through sbatch and are followed with sacct, as
on any cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import RESULT_TABLES, ROOT, SNAKEMAKE, TINY_CONFIG, write_config
from slurm_cluster import LocalSlurm

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

PROFILE = ROOT / "profiles/slurm"
KEYS = ["machine", "device", "runtime", "precision", "model"]


@dataclass
class SlurmRun:
    path: Path
    jobs: list[dict[str, str]]
    output: str


def profile_partitions() -> tuple[str, ...]:
    """Every partition name the profile can ask for (quoted or plain)."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    values = [profile["default-resources"]["slurm_partition"]]
    values += [r["slurm_partition"] for r in profile["set-resources"].values()]
    names = {n for v in values for n in re.findall(r"'([\w-]+)'", v) or [v]}
    return tuple(sorted(names, key=lambda n: n != profile["default-resources"]["slurm_partition"]))


def run_through_slurm(path: Path) -> SlurmRun:
    """The tiny config through the shipped profile on a fresh cluster, then the jobs it ran."""
    write_config(path, yaml.safe_load(yaml.safe_dump(TINY_CONFIG)))
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(path),
        "--workflow-profile",
        str(PROFILE),
        "--local-cores",  # the login node's jobs (tables, figures) one at a time: under `make test`
        "1",  # the tiny run and the other worker's tests share the machine
    ]
    with LocalSlurm(profile_partitions()) as cluster:
        result = subprocess.run(
            command, env=cluster.env, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise AssertionError(
                f"snakemake through SLURM failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}\n"
                f"slurmctld.log:\n{cluster.log_tail('slurmctld.log')}"
            )
        jobs = cluster.jobs()
    return SlurmRun(path, jobs, result.stdout + result.stderr)


@pytest.fixture(scope="session")
def slurm_run(slurm_run_in_background) -> SlurmRun:
    # Started beside the tiny run when both are selected (conftest.py), else when first asked for.
    return slurm_run_in_background.result()


def rule_of(job: dict[str, str]) -> str:
    """The rule a SLURM job ran: the executor puts it in the job's comment."""
    match = re.match(r"rule_(\w+?)_wildcards_", job["Comment"])
    assert match, f"unexpected job comment {job['Comment']!r}"
    return match.group(1)


def test_benchmarks_were_sbatch_jobs_and_cheap_steps_were_not(slurm_run):
    rules = [rule_of(job) for job in slurm_run.jobs]
    models, batches = TINY_CONFIG["models"], TINY_CONFIG["batch_sizes"]
    # Per model: its variant's gate (the fused reference), its search, one job timing all its points
    # (each point's own file is then written where Snakemake runs).
    assert sorted(rules) == sorted(["prepare_variant", "max_batch", "throughput"] * len(models))
    assert len(list((slurm_run.path / "results/raw/ci/throughput").rglob("*.json"))) == len(models) * len(batches)
    assert {job["State"] for job in slurm_run.jobs} == {"COMPLETED"}
    # One SLURM run: every job carries the same run name.
    assert len({job["JobName"] for job in slurm_run.jobs}) == 1
    assert "localrule aggregate_throughput" in slurm_run.output


def test_benchmark_jobs_never_shared_the_node(slurm_run):
    # The profile lets 8 benchmarks be queued at once, and each asks for one
    # of the node's CPUs: only the whole-node allocation keeps them apart.
    spans = sorted(
        (datetime.fromisoformat(job["Start"]), datetime.fromisoformat(job["End"]))
        for job in slurm_run.jobs
    )
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, f"two benchmark jobs shared the node: one ended {end}, one began {start}"
    # ...and they did meet: some job waited in SLURM's queue while another ran.
    times = [
        {k: datetime.fromisoformat(job[k]) for k in ("Submit", "Start", "End")}
        for job in slurm_run.jobs
    ]
    assert any(
        b["Submit"] < a["End"] <= b["Start"] for a in times for b in times if a is not b
    ), "no job was ever queued behind another: the check above proved nothing"


def rows(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A table's key columns in a fixed order, to compare two runs' rows."""
    return table[keys].sort_values(keys).reset_index(drop=True)


def test_tables_and_figures_have_the_shape_of_a_local_run(slurm_run, tiny_run):
    for name in RESULT_TABLES:
        local = tiny_run.tables[name]
        remote = pd.read_csv(slurm_run.path / "results" / name)
        assert list(remote.columns) == list(local.columns), name
        keys = [k for k in KEYS + ["batch_size", "source"] if k in local.columns]
        pd.testing.assert_frame_equal(rows(remote, keys), rows(local, keys), obj=name)
        if "status" in local.columns:
            assert set(remote["status"]) == set(local["status"]), name
    figures = {p.name for p in (slurm_run.path / "results/figures").iterdir()}
    assert figures == {f for f in tiny_run.figures if not f.startswith("latency_vs_load")}  # it serves nothing


def test_every_record_names_the_slurm_job_that_measured_it(slurm_run):
    ids = {job["JobIdRaw"] for job in slurm_run.jobs if rule_of(job) != "prepare_variant"}
    records = [p for p in (slurm_run.path / "results/raw").rglob("*.json") if "rounds" not in p.parts]
    assert {json.loads(p.read_text())["host"]["slurm_job_id"] for p in records} == ids
    timing = {job["JobIdRaw"] for job in slurm_run.jobs if rule_of(job) == "throughput"}
    points = [p for p in records if "throughput" in p.parts]
    assert {json.loads(p.read_text())["host"]["slurm_job_id"] for p in points} == timing
