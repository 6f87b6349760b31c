"""Energy from cumulative counters: RAPL's sysfs files (made here), wrap-around, short windows, per image."""

from __future__ import annotations

import pytest

from dlmark.measure import energy
from dlmark.measure.timing import Summary
from dlmark.results.records import ProcessResult
from dlmark.scenarios import throughput


def zone(root, name, uj, range_uj=1_000_000):
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "energy_uj").write_text(str(uj))
    (path / "max_energy_range_uj").write_text(str(range_uj))
    return path


def test_rapl_sums_the_packages_and_undoes_each_counters_wrap_around(tmp_path):
    zone(tmp_path, "intel-rapl:0", 900_000)
    zone(tmp_path, "intel-rapl:1", 100_000)
    zone(tmp_path, "intel-rapl:0:0", 5)  # a core subzone: inside package 0, never added again
    counter, why = energy.meter(None, str(tmp_path))
    assert why is None and counter.source == "rapl"
    start = counter.joules()
    (tmp_path / "intel-rapl:0/energy_uj").write_text("200000")  # wrapped: +300,001 uJ
    (tmp_path / "intel-rapl:1/energy_uj").write_text("150000")  # +50,000 uJ
    assert counter.joules() - start == pytest.approx(0.350001)


def test_without_a_counter_the_reason_is_given(tmp_path):
    counter, why = energy.meter(None, str(tmp_path / "none"))
    assert counter is None and "exposes no RAPL energy counter" in why


def result(joules, seconds):
    summary = Summary(1, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1000.0, 1000.0, 1000.0, 0.0, True, 1, 0.1)
    return ProcessResult(summary=summary, block_ms=[1.0], interference={}, memory_bandwidth_gbs=None,
                         process_peak_mb=None, launcher="forked", session="s", generation=0, began_at=0.0,
                         process_seconds=1.0, energy_j=joules, energy_seconds=seconds, energy_source="nvml")


def test_a_points_power_spans_its_processes_and_its_energy_per_image_is_power_over_throughput():
    found = throughput._energy([result(300.0, 1.0), result(100.0, 1.0)], throughput=1000.0)
    assert found == {"power_w_mean": 200.0, "energy_j_per_image": 0.2}
    short = throughput._energy([result(30.0, 0.2), result(30.0, 0.3)], throughput=1000.0)
    assert short == {"energy_note": short["energy_note"]} and "0.50 s of timed calls is shorter" in short["energy_note"]
    assert throughput._energy([], throughput=1000.0) == {}
