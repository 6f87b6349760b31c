"""End-to-end: the real workflow on a tiny config, as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, SNAKEMAKE, jobs_run, mtimes, snakemake, write_config
from PIL import Image

from dlmark.results import rounds, tables
from dlmark.scenarios import serving

pytestmark = pytest.mark.workflow

RAW = "results/raw/ci/throughput/cpu/mxnet-float32"
TABLE = "results/throughput.csv"
FIGURES = [
    "throughput_vs_batch_size.png",
    "memory_vs_batch_size.png",
    "max_batch_size.png",
    "throughput_vs_accuracy.png",
    "latency_vs_load.png",
]


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory) -> Path:
    """One complete tiny run, shared by the ordered tests of this module."""
    return tiny_run.copy(tmp_path_factory.mktemp("workflow") / "run")


def test_throughput_table_is_complete_and_consistent(workdir):
    frame = pd.read_csv(workdir / "results/throughput.csv")
    assert list(frame.columns) == tables.THROUGHPUT_COLUMNS
    assert len(frame) == 4
    assert set(frame["status"]) == {"ok"}
    assert (frame["throughput"] > 0).all()
    assert (frame["latency_ms_p50"] <= frame["latency_ms_p90"]).all()
    assert (frame["latency_ms_p90"] <= frame["latency_ms_p99"]).all()
    assert (frame["throughput_ci95_low"] <= frame["throughput"]).all()
    # An interval may be open above (no upper bound) when the processes disagree widely, as they may
    # beside the other worker's tests; a bound that is there holds the throughput.
    high = frame["throughput_ci95_high"]
    assert (high.isna() | (frame["throughput"] <= high)).all()
    assert (frame["peak_memory_mb"] > frame["baseline_memory_mb"]).all()
    assert (frame["gflops_per_image"] > 0).all()
    assert set(frame["machine"]) == {"ci"}
    assert frame["software"].str.startswith("mxnet 1.9").all()
    assert set(frame["family"]) == {"MobileNet", "SqueezeNet"}


def test_energy_comes_from_the_cpus_counter_or_the_environment_says_why_there_is_none(workdir):
    source = json.loads((workdir / "results/environment.json").read_text())["energy"]["cpu"]
    frame = pd.read_csv(workdir / "results/throughput.csv")
    if source.startswith("not measured"):  # these VMs expose no RAPL counter
        assert "RAPL" in source and frame["energy_j_per_image"].isna().all()
    else:
        assert (frame["energy_j_per_image"] > 0).all() and (frame["power_w_mean"] > 0).all()


def test_without_validation_data_published_accuracies_are_used(workdir):
    frame = pd.read_csv(workdir / "results/accuracy.csv")
    assert list(frame.columns) == tables.ACCURACY_COLUMNS
    assert sorted(frame["model"]) == ["mobilenet0.25", "squeezenet1.1"]
    assert set(frame["source"]) == {"published"}
    assert frame.set_index("model").loc["squeezenet1.1", "top1"] == 0.5496


def test_figures_decode_as_images(workdir):
    for name in FIGURES:
        with Image.open(workdir / "results/figures" / name) as image:
            image.verify()
            assert image.size[0] > 600 and image.size[1] > 400


def test_benchmarks_never_overlap_even_with_more_cores(workdir):
    """Jobs never overlap (a model's points interleave inside its one job, by design)."""
    jobs: dict[str, list] = {}
    for path in (workdir / "results/raw/ci/throughput").rglob("*.json"):
        record = json.loads(path.read_text())
        jobs.setdefault(record["model"], []).append((record["started_at"], record["finished_at"]))
    spans = sorted((min(s for s, _ in points), max(e for _, e in points)) for points in jobs.values())
    assert len(spans) == 2
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, f"benchmarks overlapped: one ended {end}, the next began {start}"


def test_a_models_points_are_measured_in_interleaved_rounds_and_compared_per_round(workdir):
    """Every timing process holds both points and times them in alternating blocks; ratios pair the blocks."""
    records = [json.loads((workdir / RAW / f"squeezenet1.1/bs{b}.json").read_text()) for b in (1, 2)]
    one, two = (r["process_results"] for r in records)
    assert len(one) == len(two) == 3  # three timing processes, each holding both points
    for first, second in zip(one, two):
        assert (first["session"], first["generation"]) == (second["session"], second["generation"])
        assert min(len(first["block_ms"]), len(second["block_ms"])) >= 3  # both in every round until one is done
    assert len({p["generation"] for p in one}) == 3
    # Memory comes from a process of its own per point, not from the processes holding both.
    assert all(r["peak_memory_mb"] == r["memory_trial"]["peak_memory_mb"] for r in records)
    scaling = pd.read_csv(workdir / "results/scaling.csv")
    assert list(scaling.columns) == rounds.PairedRatio.columns()
    row = scaling.set_index("model").loc["squeezenet1.1"]
    assert (row["batch_size"], row["against_batch_size"], row["processes"]) == (2, 1, 3)
    assert row["ratio_ci95_low"] <= row["ratio"] <= row["ratio_ci95_high"]
    speedup = pd.read_csv(workdir / "results/speedup.csv")
    assert speedup.empty and list(speedup.columns) == list(scaling.columns)  # one variant: nothing to pair


def test_second_run_does_nothing(workdir):
    before = mtimes(workdir)
    result = snakemake(workdir)
    assert "Nothing to be done" in result.stdout + result.stderr
    assert mtimes(workdir) == before


def planned(workdir: Path, config: dict) -> str:
    """What Snakemake would run under `config` (a dry run); the run's own config is left as it was."""
    original = (workdir / "config.yaml").read_text()
    write_config(workdir, config)
    try:
        result = snakemake(workdir, "-n")
    finally:
        (workdir / "config.yaml").write_text(original)
    return result.stdout + result.stderr


def test_changing_one_models_batch_list_plans_that_model_only(workdir, served_config):
    """A dry run's plan is the rerun (test_noisy_points... runs one): one model's job, its three points."""
    before = mtimes(workdir)
    served_config["model_overrides"] = {"mobilenet0.25": {"batch_sizes": [1, 2, 4]}}
    plan = planned(workdir, served_config)
    stats = jobs_run(plan)
    assert stats.get("throughput") == 1 and stats.get("throughput_point") == 3
    assert "max_batch" not in stats and "prepare_variant" not in stats  # its search and gate stand
    assert "results/raw/ci/rounds/cpu/mobilenet0.25.json" in plan
    assert "results/raw/ci/rounds/cpu/squeezenet1.1.json" not in plan
    assert f"{RAW}/mobilenet0.25/bs4.json" in plan
    assert mtimes(workdir) == before


def test_changing_one_models_budget_plans_that_model_only(workdir, served_config):
    served_config["model_overrides"] = {"squeezenet1.1": {"measure": {"max_seconds": 0.6}}}
    plan = planned(workdir, served_config)
    stats = jobs_run(plan)
    assert stats.get("throughput") == 1 and stats.get("throughput_point") == 2
    assert "results/raw/ci/rounds/cpu/squeezenet1.1.json" in plan
    assert "results/raw/ci/rounds/cpu/mobilenet0.25.json" not in plan
    assert "Params have changed" in plan  # the budget reached the job through its params


SERVED = "results/raw/ci/serving/cpu/mxnet-float32/mobilenet0.25"


def test_serving_scenarios_are_judged_by_loadgen_with_its_logs_kept(workdir):
    frame = pd.read_csv(workdir / "results/serving.csv")
    assert list(frame.columns) == tables.SERVING_COLUMNS
    assert list(frame["scenario"]) == ["SingleStream", "Offline", "Server"]
    rows = frame.set_index("scenario")
    assert (rows.loc[["SingleStream", "Offline"], "loadgen_result"] == "VALID").all()
    # The sweep's fastest trusted batch of [1, 2] (which one, a machine shared with the other worker decides).
    sweep = pd.read_csv(workdir / "results/throughput.csv").query(
        "model == 'mobilenet0.25' and runtime == 'mxnet' and precision == 'float32'")
    assert rows.loc["Offline", "max_batch_size"] == serving.best_batch(sweep.to_dict("records"))[0]
    # Each Offline and SingleStream row carries its call timed bare beside it, and the loop's cost against that.
    # Its size is not asserted here: beside the other pytest worker on 2 cores a SingleStream p90 once read
    # 80% over the bare call's (CI). How small it is on a quiet machine is bench-serving's to show, and
    # test_serving's fake model checks the arithmetic at a few percent.
    offline, single = rows.loc["Offline"], rows.loc["SingleStream"]
    assert offline["direct_samples_per_second"] > 0 and single["direct_latency_ms_p90"] > 0
    assert offline["loop_overhead_pct"] == pytest.approx(
        100 * (1 - offline["samples_per_second"] / offline["direct_samples_per_second"]))
    assert single["loop_overhead_pct"] == pytest.approx(
        100 * (single["latency_ms_p90"] / single["direct_latency_ms_p90"] - 1))
    assert pd.isna(rows.loc["Server", "loop_overhead_pct"])
    assert (rows["omp_wait_policy"] == "ACTIVE").all()  # the config's default, as each serving process saw it
    server = rows.loc["Server"]
    assert server["loadgen_result"] == "VALID" and server["latency_ms_p99"] <= server["latency_bound_ms"]
    assert server["loadgen_runs"] <= 6
    # The proof, or why the search stopped without one. (Not "below Offline": on a VM whose speed
    # drifts, a Server job measured in a fast minute once sustained 457 queries/s after an Offline of 393.)
    assert server["proof_qps"] <= 1.1 * server["qps"] * (1 + 1e-9) or server["search"].startswith("stopped after")
    assert server["latency_bound_rule"].startswith("20 x SingleStream p99")
    for scenario in ("SingleStream", "Offline", "Server"):
        assert (workdir / SERVED / f"{scenario}.loadgen/run0/mlperf_log_detail.txt").exists()


def test_changing_one_models_latency_bound_plans_its_server_target_only(workdir, served_config):
    served_config["serving"]["latency_bound_ms"] = {"mobilenet0.25": 50.0}
    stats = jobs_run(plan := planned(workdir, served_config))
    assert stats.get("serving_server") == 1 and f"{SERVED}/Server.json" in plan
    assert not {"serving_offline", "serving_single_stream", "throughput", "max_batch"} & set(stats)


def test_noisy_points_are_announced_and_remeasured_by_name(tiny_run, tmp_path):
    workdir = tiny_run.copy(tmp_path / "run")
    # Mark one finished point noisy, as a busy machine would have left it.
    point = workdir / RAW / "squeezenet1.1/bs2.json"
    record = json.loads(point.read_text())
    record.update(status="noisy", disturbance="1 of 3 processes disturbed: test")
    point.write_text(json.dumps(record))
    # The table is the target: the figures drawn from it are test_plotting's, and redrawing
    # them twice here took most of a minute.
    summary = snakemake(workdir, TABLE, "--forcerun", "aggregate_throughput")
    assert "1 throughput point(s) are noisy" in summary.stdout + summary.stderr
    assert "hollow" in (summary.stdout + summary.stderr)
    listed = subprocess.run(
        [str(SNAKEMAKE.parent / "dlmark"), "points", "--status", "noisy"],
        cwd=workdir, capture_output=True, text=True, check=True,
    ).stdout.split()
    # The model's rounds file: its job measures the point again, with the model's other points.
    assert listed == ["results/raw/ci/rounds/cpu/squeezenet1.1.json"]
    before = mtimes(workdir)
    rerun = snakemake(workdir, TABLE, "--forcerun", *listed)
    assert jobs_run(rerun.stdout + rerun.stderr).get("throughput") == 1
    after = mtimes(workdir)
    assert sorted(p for p in after if after[p] != before[p]) == [
        f"{RAW}/squeezenet1.1/bs1.json", f"{RAW}/squeezenet1.1/bs2.json"]
    frame = pd.read_csv(workdir / TABLE)
    assert (frame["status"] == "ok").all()


def test_a_subset_of_the_shipped_config_runs_without_editing_it(tmp_path):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    result = snakemake(tmp_path, "-n", "--config", "models=[squeezenet1.1]")
    output = result.stdout + result.stderr
    assert output.count("model_overrides of models not in this run's models are ignored") == 1
    assert "squeezenet1.1" in output and "resnet18_v1/bs" not in output


def test_config_errors_are_reported_together_before_any_job(tmp_path, tiny_config):
    """The wiring of the config checks: each message is unit-tested in test_config.py."""
    tiny_config.update(models=["resnet18v1"], devices=["cpu", "gpu0"])
    tiny_config["measure"].update(min_seconds=3, max_seconds=1)
    write_config(tmp_path, tiny_config)
    result = snakemake(tmp_path, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "unknown model 'resnet18v1'. Did you mean resnet18_v1" in output
    assert "'gpu0' is not on this machine" in output
    assert "config measure: measure.min_seconds (3) exceeds measure.max_seconds (1)" in output
    assert "Traceback" not in output and "InputFunctionException" not in output
    assert not (tmp_path / "results").exists()
