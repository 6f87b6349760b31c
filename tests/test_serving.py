"""Serving scenarios: the batcher, MLPerf's real LoadGen against a fixed-service system, the records."""

from __future__ import annotations

import dataclasses
import functools
import threading
import time

import pytest

from conftest import measured
from dlmark import config as dlconfig
from dlmark.measure import loadgen
from dlmark.measure.batcher import BatcherSettings, DynamicBatcher
from dlmark.results.records import ServingRecord
from dlmark.results.status import ERROR, INVALID, NOISY, OK
from dlmark.scenarios import serving, serving_child
from dlmark.specs import identity

import child_targets

SERVICE_S = 0.004  # child_targets.serve_fixed_service: 4 ms a batch, whatever its size


def spec(tmp_path, scenario, **given) -> serving_child.ServingSpec:
    fields = dict(
        scenario=scenario, machine="test", batcher=BatcherSettings(1, 0.0), min_duration_s=1.0, min_queries=1,
        official_length=False, budget=dlconfig.budget({}, "mobilenet0.25"), noise=dlconfig.noise_policy({}),
        log_dir=str(tmp_path / scenario),
    )
    return serving_child.ServingSpec(**identity(measured("mobilenet0.25")), **{**fields, **given})


def test_the_batcher_runs_full_batches_at_once_and_a_partial_one_after_the_delay():
    ran, answered = [], []
    done = threading.Event()
    batcher = DynamicBatcher(BatcherSettings(4, 0.05), ran.append, lambda ids: (answered.extend(ids), done.set()))
    try:
        batcher.submit(range(9))  # two full batches at once, then one request that waits for company
        began = time.monotonic()
        while len(answered) < 9:
            time.sleep(0.001)
        waited = time.monotonic() - began
    finally:
        batcher.close()
    assert ran == [4, 4, 1] and sorted(answered) == list(range(9))
    assert waited >= 0.05  # the last one waited out its delay
    assert BatcherSettings(8, 0).padded_sizes() == [1, 2, 4, 8] and BatcherSettings(6, 0).padded(5) == 6
    assert BatcherSettings(32, 0, only_largest=True).padded(3) == 32  # Offline: one size, the last batch padded


@pytest.mark.quiet  # a latency held to a few percent of a 4 ms service time
def test_offline_through_loadgen_serves_at_the_systems_own_rate(tmp_path):
    """8 samples per 20 ms batch (a real model's batch of 8 takes longer): 400 samples/s, within 3%.

    The serving loop's own cost is about 0.15 ms a batch here (answering
    LoadGen, taking the next batch): 4% of a 4 ms batch.
    """
    given = spec(tmp_path, "Offline", batcher=BatcherSettings(8, 0.002), target_qps=500.0)
    record = serving.measure(given, target=functools.partial(child_targets.serve_fixed_service, service_s=0.020))
    assert record.loadgen_result == "VALID", record.reasons
    assert record.samples_per_second == pytest.approx(8 / 0.020, rel=0.03)
    # The same batch timed bare beside the run: the loop's overhead is the row's own, a few percent at most.
    assert record.direct_samples_per_second == pytest.approx(8 / 0.020, rel=0.01)
    assert record.loop_overhead_pct == pytest.approx(100 * (1 - record.samples_per_second / record.direct_samples_per_second))
    assert -1 < record.loop_overhead_pct < 3
    assert record.runs[0]["direct"]["batch_size"] == 8 and record.runs[0]["direct"]["calls"] >= 40
    assert (tmp_path / "Offline/run0/mlperf_log_detail.txt").exists()
    assert (tmp_path / "Offline/run0/mlperf_log_summary.txt").exists()


@pytest.mark.quiet  # a latency held to a few percent of a 4 ms service time
def test_the_server_search_finds_a_valid_rate_below_capacity_and_proves_the_one_above_invalid(tmp_path):
    """One request per 4 ms batch: capacity 250/s; a 40 ms bound on the p99 holds below it."""
    given = spec(tmp_path, "Server", batcher=BatcherSettings(1, 0.0), min_queries=500, target_qps=250.0,
                 latency_bound_ms=40.0)
    result = child_targets.serve_fixed_service(given)
    runs = [loadgen.RunResult(**r) for r in result["runs"]]
    sustained = runs[result["sustained"]]
    assert len(runs) <= 8
    assert sustained.valid and sustained.latency_ms["p99"] <= 40.0
    rate = sustained.settings["target_qps"]
    assert rate < 1 / SERVICE_S
    above = [r for r in runs if not r.valid and rate < r.settings["target_qps"] <= 1.1 * rate * (1 + 1e-9)]
    assert above, result["search"]
    assert all(r.reasons for r in runs if not r.valid)  # LoadGen's reasons kept with every INVALID run
    assert "was INVALID" in result["search"]


def test_the_search_brackets_down_when_the_first_rate_fails():
    """A system that sustains 30 queries/s from an Offline of 100: halve, then close in."""

    def run_at(rate):
        ok = rate <= 30
        return loadgen.RunResult("Server", "VALID" if ok else "INVALID", rate, rate, {"p99": 1.0}, 500, 1.0,
                                 [] if ok else ["latency constraint not met"], {"target_qps": rate})

    runs, sustained, why = serving_child.server_search(run_at, 100.0, 8)
    rate = runs[sustained].settings["target_qps"]
    assert 30 / 1.1 <= rate <= 30 and len(runs) <= 8 and "was INVALID" in why
    runs, sustained, why = serving_child.server_search(lambda r: run_at(r * 1000), 100.0, 3)  # nothing VALID
    assert sustained is None and "no rate" in why


def test_a_proof_invalid_by_early_stopping_alone_says_so():
    """Above 30 queries/s one query of the few hundred goes over the bound: INVALID with the p99 under it."""

    def run_at(rate):
        ok = rate <= 30
        reasons = [] if ok else ["early stopping not met: Run unsuccessful.; Processed 500 queries."]
        return loadgen.RunResult("Server", "VALID" if ok else "INVALID", rate, rate, {"p99": 48.4}, 500, 1.0,
                                 reasons, {"target_qps": rate})

    _, _, why = serving_child.server_search(run_at, 100.0, 8)
    assert "was INVALID, by early stopping alone (its p99 of 48.4 ms was within the bound" in why
    over = lambda rate: dataclasses.replace(run_at(rate), reasons=["latency constraint not met: Reduce target QPS"])
    _, _, why = serving_child.server_search(lambda r: run_at(r) if r <= 30 else over(r), 100.0, 8)
    assert why.endswith("was INVALID")


def test_the_search_stops_halving_once_the_bound_lies_below_the_latency_at_light_load():
    """A p99 that stays near 12 ms at every light load never meets a 10 ms bound: one halving shows it."""

    def run_at(rate):
        p99 = 12.0 + rate / 1000  # the load's part fades; the system's own latency stays
        return loadgen.RunResult("Server", "INVALID", rate, rate, {"p99": p99}, 500, 500 / rate,
                                 ["latency constraint not met"], {"target_qps": rate, "latency_bound_ms": 10.0})

    runs, sustained, why = serving_child.server_search(run_at, 4000.0, 8)  # first try: 2000/s, p99 14 ms
    assert sustained is None and len(runs) == 2  # 1000/s gave 13 ms: halving bought under 10%
    assert "no rate was VALID: at 1000 queries/s" in why and "below this system's latency at light load" in why
    # While halving still cuts the p99 by more than a tenth, the search goes on down.
    def steep(rate):
        return loadgen.RunResult("Server", "INVALID", rate, rate, {"p99": 12.0 + rate / 10}, 500, 500 / rate,
                                 ["latency constraint not met"], {"target_qps": rate, "latency_bound_ms": 10.0})

    runs, _, why = serving_child.server_search(steep, 4000.0, 8)
    assert len(runs) > 2
    # ... but not past 16 first runs of LoadGen's time: each halving doubles a run of 500 queries.
    assert [r.settings["target_qps"] for r in runs] == [2000, 1000, 500, 250]  # 0.25 + 0.5 + 1 + 2 s
    assert "no rate down to 250 queries/s was VALID (latency constraint not met)" in why
    assert "a run at 125 queries/s would take about 4 s, past 16 x the first run's 0.25 s" in why


def test_an_offline_query_that_ended_early_is_asked_again_at_its_own_rate(tmp_path):
    """Offline expecting a tenth of its rate ends its one query before the minimum duration: asked again at
    its own rate, VALID. (A short query's rate counts the batcher's start: on a loaded machine the second
    query, longer, can run faster still and end early too, and a third is asked.)"""
    given = spec(tmp_path, "Offline", batcher=BatcherSettings(8, 0.002), target_qps=200.0)
    record = serving.measure(given, target=child_targets.serve_fixed_service)
    first, *again = record.runs
    assert first["validity"] == "INVALID" and first["reasons"] == [serving_child.TOO_SHORT]
    assert 1 <= len(again) < serving_child.OFFLINE_MAX_RUNS
    for before, run in zip(record.runs, again):
        assert before["reasons"] == [serving_child.TOO_SHORT]
        assert run["settings"]["target_qps"] == pytest.approx(serving_child.OFFLINE_HEADROOM * before["samples_per_second"])
    assert record.loadgen_result == "VALID" and record.loadgen_runs == len(record.runs) and "ended early" in record.search
    assert (tmp_path / "Offline/run1/mlperf_log_detail.txt").exists()
    ServingRecord.validate(record.to_dict())


def test_an_invalid_run_is_a_row_with_loadgens_reasons(tmp_path):
    """A bound below the system's own 4 ms service time: no rate is VALID, and the row says why."""
    given = spec(tmp_path, "Server", target_qps=100.0, latency_bound_ms=1.0, min_duration_s=0.5)
    record = serving.measure(given, target=child_targets.serve_fixed_service)
    assert record.status == INVALID and record.loadgen_result == "INVALID" and record.qps is not None
    assert "latency constraint not met" in record.reasons and record.search.startswith("no rate")
    ServingRecord.validate(record.to_dict())


def test_a_crashed_or_failing_system_under_test_becomes_a_row(tmp_path, monkeypatch):
    given = spec(tmp_path, "SingleStream")
    crashed = serving.measure(given, target=child_targets.serve_then_segfault)
    assert crashed.status == ERROR and "SIGSEGV" in crashed.error and crashed.qps is None
    monkeypatch.setenv("DLMARK_TEST_FAIL_BATCH", "1")
    failed = serving.measure(given, target=child_targets.serve_fixed_service)
    assert failed.status == ERROR and "the model failed" in failed.error
    for record in (crashed, failed):
        ServingRecord.validate(record.to_dict())


@pytest.mark.quiet  # a latency held to a few percent of a 4 ms service time
def test_single_stream_is_ok_with_its_percentiles(tmp_path):
    # The hypervisor's steal is the host's: a CI VM stole 5-6% here, and this test is about the percentiles.
    host_steal_allowed = dataclasses.replace(dlconfig.noise_policy({}), max_steal=1.0)
    given = spec(tmp_path, "SingleStream", min_queries=100, noise=host_steal_allowed)
    record = serving.measure(given, target=child_targets.serve_fixed_service)
    assert record.status == OK, (record.reasons, record.disturbance)
    assert SERVICE_S * 1e3 <= record.latency_ms_p50 <= record.latency_ms_p90 <= record.latency_ms_p99
    assert record.qps == pytest.approx(1 / SERVICE_S, rel=0.1)
    assert record.direct_latency_ms_p90 == pytest.approx(SERVICE_S * 1e3, rel=0.05)  # batch 1 timed bare
    assert record.loop_overhead_pct == pytest.approx(100 * (record.latency_ms_p90 / record.direct_latency_ms_p90 - 1))


def test_a_disturbed_serving_run_waits_and_is_served_again_then_kept_noisy_with_its_reason(tmp_path):
    always_disturbed = dataclasses.replace(dlconfig.noise_policy({}), max_steal=-1.0, retries=1, quiet_wait_seconds=0.2)
    record = serving.measure(spec(tmp_path, "SingleStream", min_queries=100, min_duration_s=0.5, noise=always_disturbed),
                             target=child_targets.serve_fixed_service)
    assert record.status == NOISY and record.loadgen_result == "VALID"
    assert "the hypervisor stole" in record.disturbance and record.qps  # the numbers are kept
    assert (tmp_path / "SingleStream/run0/mlperf_log_detail.txt").exists()


def test_the_bare_call_beside_a_run_is_the_scenarios_batch_and_none_where_workers_overlap(tmp_path):
    offline = spec(tmp_path, "Offline", batcher=BatcherSettings(8, 0.002, only_largest=True))
    assert serving_child.direct_call_size(offline) == 8
    assert serving_child.direct_call_size(spec(tmp_path, "SingleStream")) == 1
    assert serving_child.direct_call_size(spec(tmp_path, "Server")) is None
    assert serving_child.direct_call_size(dataclasses.replace(offline, batcher=BatcherSettings(8, 0.002, 2))) is None
    timed = serving_child.direct_timing(8, before=[0.02, 0.02], after=[0.04, 0.04])
    assert timed["samples_per_second"] == pytest.approx(32 / 0.12)  # 4 calls of 8 in 0.12 s
    assert (timed["before_samples_per_second"], timed["after_samples_per_second"]) == pytest.approx((400, 200))
    assert timed["latency_ms_p90"] == pytest.approx(40.0)


def test_offline_is_sized_from_the_fastest_trusted_row_and_server_bound_follows_the_rule():
    rows = [{"status": "ok", "batch_size": 1, "throughput": 10.0}, {"status": "ok", "batch_size": 4, "throughput": 30.0},
            {"status": "noisy", "batch_size": 8, "throughput": 50.0}]
    assert serving.best_batch(rows) == (4, 30.0)
    assert serving.best_batch(rows, 1) == (1, 10.0)
    with pytest.raises(serving.NotServable, match="no trusted throughput row at batch 8"):
        serving.best_batch(rows, 8)
    assert serving.server_bound({"status": "ok", "latency_ms_p99": 5.0}, 4, None) == (20.0, "4 x SingleStream p99 (5.00 ms)")
    assert serving.server_bound({"status": "error"}, 4, 15.0)[0] == 15.0
    assert serving.server_bound({"status": "noisy", "latency_ms_p99": 5.0}, 4, None)[1].endswith("a noisy row)")
    assert serving.server_start({"status": "noisy", "qps": 40.0}) == 40.0
    with pytest.raises(serving.NotServable, match="no Offline throughput to start from: its row is error"):
        serving.server_start({"status": "error", "qps": None})
    with pytest.raises(serving.NotServable, match="latency_bound_ms"):
        serving.server_bound({"status": "error"}, 4, None)


@pytest.mark.parametrize(
    "serving_block, message",
    [
        ({"models": ["resnet_50"]}, "serving.models: unknown model 'resnet_50'"),
        ({"models": ["squeezenet1.1"], "variants": [{"runtime": "mxnet", "precision": "float64"}]},
         "serving.variants: mxnet/float64 is not a known variant"),
        ({"models": ["squeezenet1.1"], "latency_bound_ms": {"mobilenet0.25": 10}},
         "latency_bound_ms: 'mobilenet0.25' is not in serving.models"),
        ({"scenarios": ["MultiStream"]}, "serving.scenarios[0]"),
        ({"latency_bound_factor": 1}, "serving.latency_bound_factor"),
        ({"omp_wait_policy": "spin"}, "serving.omp_wait_policy"),
    ],
)
def test_a_wrong_serving_block_is_refused_with_its_fix(serving_block, message):
    config = {"models": ["mobilenet0.25", "squeezenet1.1"], "batch_sizes": [1], "serving": serving_block}
    with pytest.raises(dlconfig.ConfigError) as error:
        dlconfig.check(config, dlconfig.load_schema(dlconfig.SCHEMA), gpus=[])
    assert message in str(error.value)


def test_what_a_run_does_not_benchmark_it_does_not_serve():
    """A subset of models, or a variant a model is not benchmarked with: not served, and named."""
    config = {"models": ["squeezenet1.1"], "batch_sizes": [1], "devices": ["cpu"],
              "variants": [{"runtime": "mxnet", "precision": "float32"}],
              "serving": {"models": ["squeezenet1.1", "mobilenet0.25"],
                          "variants": [{"runtime": "mxnet", "precision": "float32"},
                                       {"runtime": "mxnet", "precision": "int8"}]}}
    dlconfig.check(config, dlconfig.load_schema(dlconfig.SCHEMA), gpus=[])
    assert dlconfig.unserved(config) == ["squeezenet1.1 mxnet/int8", "mobilenet0.25"]
    assert {(t.model, t.precision) for t in dlconfig.serving_targets(config)} == {("squeezenet1.1", "float32")}


def test_official_length_takes_mlperfs_own_minimums_and_keeps_the_scenarios_targets():
    short = loadgen.test_settings(loadgen.RunSettings("Server", 2.0, 500, target_qps=40.0, latency_bound_ms=20.0))
    official = loadgen.test_settings(loadgen.RunSettings("Server", 2.0, 500, official_length=True, target_qps=40.0,
                                                         latency_bound_ms=20.0))
    assert (short.min_duration_ms, short.min_query_count) == (2000, 500)
    assert official.min_duration_ms == 600_000  # mlperf.conf's, for every scenario
    assert official.server_target_qps == 40.0 and official.server_target_latency_ns == 20_000_000
    offline = loadgen.test_settings(loadgen.RunSettings("Offline", 2.0, 1, official_length=True, target_qps=100.0))
    assert offline.min_query_count == 24576  # MLPerf's least Offline sample count


def test_the_end_of_a_run_names_the_serving_targets_that_are_not_ok(tmp_path):
    from dlmark.results import tables

    folder = tmp_path / "raw/ci/serving/cpu/mxnet-float32/mobilenet0.25"
    folder.mkdir(parents=True)
    (folder / "SingleStream.json").write_text('{"status": "ok"}')
    (folder / "Server.json").write_text('{"status": "invalid"}')
    summary = tables.run_summary(tmp_path, "ci")
    assert "1 serving target(s) are not ok" in summary and "mobilenet0.25 Server invalid" in summary
    assert f"--forcerun {folder / 'Server.json'}" in summary
