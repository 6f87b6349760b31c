"""Report, provenance, merging machines and comparing runs, on a real tiny run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import snakemake

pytestmark = pytest.mark.workflow
DLMARK = Path(sys.executable).parent / "dlmark"


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory) -> Path:
    return tiny_run.copy(tmp_path_factory.mktemp("sharing") / "run")


def test_report_is_self_contained_and_names_every_figure(run):
    snakemake(run, "--report", "results/report.html")
    report = run / "results/report.html"
    assert report.stat().st_size > 10_000
    text = report.read_text(errors="replace")
    for figure in ("throughput_vs_batch_size", "memory_vs_batch_size", "max_batch_size",
                   "throughput_vs_accuracy", "throughput_vs_device"):
        assert figure in text


def test_every_result_carries_its_provenance(run):
    environment = json.loads((run / "results/environment.json").read_text())
    assert environment["machine"] == "ci"
    assert environment["workflow"]["git_commit"]
    assert environment["host"]["cpu"] and environment["host"]["packages"]["mxnet"].startswith("1.9")
    assert environment["tables"]["throughput"]["rows"] == 4
    frame = pd.read_csv(run / "results/throughput.csv")
    assert frame["settings_hash"].str.fullmatch(r"[0-9a-f]{12}").all()
    assert frame["settings_hash"].nunique() == 4  # the batch size is a setting too
    assert frame["git_commit"].notna().all()
    raw = json.loads(next((run / "results/raw/ci/throughput").rglob("*.json")).read_text())
    assert {"cpu_flags", "physical_cores", "python", "packages"} <= set(raw["host"])


def relabel(source: Path, target: Path, machine: str) -> None:
    """A results folder as another machine would have produced it."""
    for path in (source / "results/raw/ci").rglob("*.json"):
        record = json.loads(path.read_text())
        record["machine"] = machine
        out = target / "raw" / machine / path.relative_to(source / "results/raw/ci")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record))


MERGED = ("results/throughput.csv", "results/serving.csv", "results/max_batch_size.csv",
          "results/figures/throughput_vs_device.png")


def test_merging_another_machine_gives_the_union_without_duplicates(run, tmp_path):
    other = tmp_path / "other-results"
    relabel(run, other, "lab-gpu-host")
    merge = [str(DLMARK), "merge", str(other), "--into", str(run / "results")]
    first = subprocess.run(merge, capture_output=True, text=True, check=True)
    # 4 points, 2 largest-batch searches, 2 models' rounds files, 3 serving scenarios.
    assert "copied 11 result file(s), 0 already present" in first.stdout
    # Nothing to measure: the tables again, and the figure that sets machines side by side (the
    # others are drawn from such tables in test_plotting).
    snakemake(run, *MERGED, cores=2)
    frame = pd.read_csv(run / "results/throughput.csv")
    assert sorted(frame["machine"].unique()) == ["ci", "lab-gpu-host"]
    assert len(frame) == 8
    served = pd.read_csv(run / "results/serving.csv")
    assert len(served) == 6 and sorted(served["machine"].unique()) == ["ci", "lab-gpu-host"]
    again = subprocess.run(merge, capture_output=True, text=True, check=True)
    assert "copied 0 result file(s), 11 already present" in again.stdout
    snakemake(run, *MERGED)
    assert len(pd.read_csv(run / "results/throughput.csv")) == 8
    assert len(pd.read_csv(run / "results/max_batch_size.csv")) == 4


def test_merge_refuses_to_clobber_the_same_label(run, tmp_path):
    clash = tmp_path / "clash"
    shutil.copytree(run / "results/raw", clash / "raw")
    victim = next((clash / "raw/ci/throughput").rglob("*.json"))
    victim.write_text(victim.read_text().replace('"iterations"', '"iterations_x"'))
    done = subprocess.run([str(DLMARK), "merge", str(clash), "--into", str(run / "results")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "same machine label" in done.stderr


def with_intervals(source: Path, target: Path, rel: float = 0.03) -> Path:
    """The run's rows with intervals of a known width.

    A tiny run's intervals come from 3 short processes on whatever machine
    runs the suite; on a busy one they exceed the throughput itself. The
    tests below check compare's judgement, so they set the width.
    """
    frame = pd.read_csv(source)
    frame["throughput_ci95_low"] = frame["throughput"] * (1 - rel)
    frame["throughput_ci95_high"] = frame["throughput"] * (1 + rel)
    frame.to_csv(target, index=False)
    return target


def scaled(source: Path, target: Path, factor) -> Path:
    frame = pd.read_csv(source)
    factors = factor(len(frame)) if callable(factor) else np.full(len(frame), factor)
    for column in ("throughput", "throughput_ci95_low", "throughput_ci95_high"):
        frame[column] = frame[column] * factors
    frame["latency_ms_mean"] = frame["latency_ms_mean"] / factors
    frame.to_csv(target, index=False)
    return target


def test_compare_flags_a_halving(run, tmp_path):
    old = with_intervals(run / "results/throughput.csv", tmp_path / "old.csv")
    new = scaled(old, tmp_path / "slow.csv", 0.5)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(new)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stdout.count("SLOWER") == len(pd.read_csv(old))
    assert "(-50.0%)" in done.stdout


def test_compare_leaves_noisy_rows_out_and_says_so(run, tmp_path):
    old = with_intervals(run / "results/throughput.csv", tmp_path / "old.csv")
    frame = pd.read_csv(old)
    frame.loc[0, "status"] = "noisy"
    noisy = tmp_path / "noisy.csv"
    frame.to_csv(noisy, index=False)
    new = scaled(noisy, tmp_path / "slow.csv", 0.5)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(new)], capture_output=True, text=True)
    assert done.stdout.count("SLOWER") == len(frame) - 1
    assert "left out 1 row(s) that are noisy" in done.stdout


def test_compare_is_quiet_within_noise(run, tmp_path):
    old = with_intervals(run / "results/throughput.csv", tmp_path / "old.csv")
    frame = pd.read_csv(old)
    # Each row moved by a random amount inside its own confidence interval.
    half = ((frame["throughput_ci95_high"] - frame["throughput_ci95_low"]) / 2 / frame["throughput"]).to_numpy()
    rng = np.random.default_rng(1)
    new = scaled(old, tmp_path / "noisy.csv", lambda n: 1 + rng.uniform(-1, 1, n) * half)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(new)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "0 changed" in done.stdout


def test_compare_says_how_much_each_machine_drifted(run, tmp_path):
    old = run / "results/throughput.csv"
    frame = pd.read_csv(old)
    assert frame["machine_drift"].isna().all()  # the tiny run has fewer CPU rows than a drift needs
    frame["machine_drift"] = 0.025
    drifted = tmp_path / "drifted.csv"
    frame.to_csv(drifted, index=False)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(drifted)], capture_output=True, text=True)
    assert "unknown in the old run, 2.5% in the new" in done.stdout
    quiet = subprocess.run([str(DLMARK), "compare", str(old), str(old)], capture_output=True, text=True)
    assert "drift" not in quiet.stdout


def test_compare_tells_a_slower_machine_from_slower_code(run, tmp_path):
    """Every row 40% slower with the machine's canary 40% lower: the machine, said once, nothing flagged.
    One row slowed twice as much: flagged, beyond the machine's shift."""
    old = with_intervals(run / "results/throughput.csv", tmp_path / "old.csv")
    slower = pd.read_csv(scaled(old, tmp_path / "slow.csv", 0.6))
    slower["memory_bandwidth_gbs"] *= 0.6
    slower.to_csv(tmp_path / "machine.csv", index=False)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(tmp_path / "machine.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "0 changed" in done.stdout
    assert "memory bandwidth was 40.0% lower in NEW on ci" in done.stdout
    code = slower.copy()
    for column in ("throughput", "throughput_ci95_low", "throughput_ci95_high"):
        code.loc[0, column] *= 0.5  # 70% slower in all, against the machine's 40%
    code.to_csv(tmp_path / "code.csv", index=False)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(tmp_path / "code.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stdout.count("SLOWER") == 1 and "(-70.0%)" in done.stdout


def test_compare_follows_the_cores_when_memory_stays_put(run, tmp_path):
    """Every row 60% faster while the copy canary read the same and the core canary 60% higher (a VM's
    cores sped up, its memory did not): the machine, nothing flagged. A row slowed 30% on that machine
    is flagged: the band spans no change to the shifts, and a slowdown lies outside it."""
    old = with_intervals(run / "results/throughput.csv", tmp_path / "old.csv")
    assert pd.read_csv(old)["compute_gflops"].notna().all()  # every CPU row carries the core canary
    faster = pd.read_csv(scaled(old, tmp_path / "fast.csv", 1.6))
    faster["compute_gflops"] *= 1.6
    faster.to_csv(tmp_path / "cores.csv", index=False)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(tmp_path / "cores.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "0 changed" in done.stdout, done.stdout
    assert "core speed (a cache-resident matrix product) was 60.0% higher in NEW on ci" in done.stdout
    assert "memory bandwidth was" not in done.stdout
    scaled(old, tmp_path / "fast2.csv", 1.6)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(tmp_path / "fast2.csv")],
                          capture_output=True, text=True)
    compared = int(re.search(r"compared (\d+) rows", done.stdout).group(1))
    assert compared > 0 and done.stdout.count("faster") == compared, done.stdout  # no canary moved: all flagged
    code = faster.copy()
    for column in ("throughput", "throughput_ci95_low", "throughput_ci95_high"):
        code.loc[0, column] *= 0.7 / 1.6
    code.to_csv(tmp_path / "code.csv", index=False)
    done = subprocess.run([str(DLMARK), "compare", str(old), str(tmp_path / "code.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout.count("SLOWER") == 1 and "(-30.0%)" in done.stdout, done.stdout
