"""End-to-end largest-batch search, checked by trials the test runs itself."""

import json

import child_targets
import pandas as pd
import pytest
from conftest import measured, snakemake, write_config
from PIL import Image

from dlmark import config
from dlmark.measure import launchers
from dlmark.scenarios import maxbatch, memory_trial, throughput
from dlmark.specs import identity

MODEL = "squeezenet1.1"  # about 7 MiB per image: boundaries far apart


@pytest.mark.workflow
def test_the_largest_batch_fits_the_next_does_not_and_a_model_that_never_fits_is_a_row(tmp_path, tiny_config):
    """squeezenet1.1's limit lies halfway between the peaks of batch 20 and 21, so the answer is well
    inside the search range and clear of run-to-run noise; mobilenet0.25's is below what batch 1 needs:
    its rows fail with the reason, and the rest of the run completes."""
    probe = maxbatch.isolated_trial(measured(MODEL), memory_limit_mb=1e9)
    limit = (probe(20).peak_memory_mb + probe(21).peak_memory_mb) / 2
    tiny_config.update(batch_sizes=[1, 32], cpu_memory_limit_mb=limit)
    tiny_config["model_overrides"] = {"mobilenet0.25": {"cpu_memory_limit_mb": 60}}
    tiny_config["measure"].update(min_processes=2, max_processes=2)
    write_config(tmp_path, tiny_config)
    # This stage's figure and the tables (test_plotting draws the others from tables with failed rows).
    snakemake(tmp_path, "results/figures/max_batch_size.png", "results/throughput.csv")

    largest = pd.read_csv(tmp_path / "results/max_batch_size.csv").set_index("model")
    row = largest.loc[MODEL]
    assert row["status"] == "ok" and row["max_batch_size"] == 20
    assert row["memory_limit_mb"] == pytest.approx(limit)
    assert row["memory_at_max_mb"] <= limit
    assert 2 <= row["trials"] <= 6
    # Its own trials, each in a process of its own under the limit: 20 fit and 21 did not, as the probes had it.
    search = json.loads((tmp_path / f"results/raw/ci/max_batch/cpu/mxnet-float32/{MODEL}.json").read_text())
    fits = {t["batch_size"]: t["fits"] for t in search["trial_log"]}
    assert fits[20] and not fits[21]
    # Not even batch 1 fits mobilenet0.25's limit: the search says so after the probe and batch 1.
    assert largest.loc["mobilenet0.25", "max_batch_size"] == 0
    assert largest.loc["mobilenet0.25", "trials"] == 2

    points = pd.read_csv(tmp_path / "results/throughput.csv").set_index(["model", "batch_size"])
    assert points.loc[(MODEL, 1), "status"] == "ok"
    assert points.loc[(MODEL, 32), "status"] == "out_of_memory"
    assert "not run" in points.loc[(MODEL, 32), "error"]
    for batch in (1, 32):  # a failure is a row, not a dead workflow
        failed = points.loc[("mobilenet0.25", batch)]
        assert failed["status"] == "out_of_memory" and pd.isna(failed["throughput"])
        assert "above the largest batch that fits, 0, within 60 MiB" in failed["error"]
    with Image.open(tmp_path / "results/figures/max_batch_size.png") as image:  # drawn with a 0 in its table
        image.verify()


def test_a_killed_trial_counts_as_not_fitting():
    spec = maxbatch.SearchSpec(
        **identity(measured("mobilenet0.25")),
        machine="ci",
        memory_limit_mb=1000,
        **{**config.max_batch_settings({}), "upper_bound": 64},
    )
    # A search forks its trials from one warm process.
    with launchers.Forker(memory_trial.preload_trial, memory_trial.TrialSpec(**identity(spec), batch_size=1)) as starter:
        trial = maxbatch.isolated_trial(spec.measured(), 1000, target=child_targets.killed_above_16, run=starter.run)
        record = maxbatch.run_search(spec, trial)
    assert record.status == "ok"
    assert record.max_batch_size == 16
    notes = [t["note"] or "" for t in record.trial_log if not t["fits"]]
    assert notes and all("SIGKILL" in n for n in notes)


def test_batches_above_the_largest_are_recorded_without_running():
    spec = throughput.ThroughputSpec(
        **identity(measured("resnet18_v1")), batch_size=64, machine="ci",
        budget=config.budget({}, "resnet18_v1"), noise=config.noise_policy({}),
    )
    found = {"status": "ok", "max_batch_size": 40, "memory_limit_mb": 1024, "reached_upper_bound": False}
    record = throughput.skipped_over_max_batch(spec, found)
    assert record.status == "out_of_memory"
    assert "above the largest batch that fits, 40, within 1024 MiB" in record.error
    assert throughput.skipped_over_max_batch(spec, found | {"max_batch_size": 64}) is None
    # A search that stopped at its upper bound proves nothing above it.
    assert throughput.skipped_over_max_batch(spec, found | {"reached_upper_bound": True}) is None


def test_a_trial_reads_the_same_memory_in_a_new_process_as_forked_from_a_warm_one():
    """The framework is imported before its libraries' pages are mapped, wherever the trial runs.

    A new process that imported MXNet only while building read resnet18_v1
    at batch 4 2.5 MiB low: pages mapped after the peak hid part of it.
    """
    spec = memory_trial.TrialSpec(**identity(measured("resnet18_v1")), batch_size=4)
    fresh = launchers.run_isolated(memory_trial.run_trial, spec).value
    with launchers.Forker(memory_trial.preload_trial, spec) as warm:
        forked = warm.run(memory_trial.run_trial, spec).value
    assert forked["peak_memory_mb"] == pytest.approx(fresh["peak_memory_mb"], abs=1)
    assert forked["baseline_mb"] == pytest.approx(fresh["baseline_mb"], abs=1)


def test_a_runtime_that_fails_to_import_makes_error_records_not_a_dead_job(tmp_path, monkeypatch):
    """A broken install: the warm process that forks the trials cannot import MXNet.

    The search and the point each end as a complete record with the error,
    as a crashed trial does, so the rest of the run goes on.
    """
    import mxnet  # noqa: F401  (this process keeps the real one; its children find the broken one first)

    (tmp_path / "mxnet").mkdir()
    (tmp_path / "mxnet" / "__init__.py").write_text("raise ImportError('this MXNet install is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    search = maxbatch.SearchSpec(
        **identity(measured(MODEL)), machine="ci", memory_limit_mb=1000, **config.max_batch_settings({})
    )
    found = maxbatch.run_search(search)
    assert found.status == "error" and "failed to start" in found.error
    point = throughput.ThroughputSpec(
        **identity(measured(MODEL)), batch_size=1, machine="ci",
        budget=config.budget({}, MODEL), noise=config.noise_policy({}),
    )
    record = throughput.run_throughput(point)
    assert record.status == "error" and "failed to start" in record.error and "log says why" in record.error
    assert record.throughput is None
