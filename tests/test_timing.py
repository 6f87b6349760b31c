import math

import pytest

from dlmark import timing


def test_mean_ci95_matches_students_t_by_hand():
    mean, half = timing.mean_ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    # sd = sqrt(2.5), sem = sd / sqrt(5), t(0.975, 4) = 2.7764
    assert mean == 3.0
    assert half == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)


def test_single_sample_has_no_interval():
    assert timing.mean_ci95([2.0])[1] == math.inf
    assert not timing.is_precise_enough([2.0], 0.5)


def test_precision_rule():
    assert timing.is_precise_enough([1.0, 1.001, 0.999, 1.0], 0.02)
    assert not timing.is_precise_enough([1.0, 2.0, 0.5, 1.5], 0.02)


def test_warm_needs_a_window_that_agrees():
    assert not timing.is_warm([5.0, 1.0], 0.1)
    assert not timing.is_warm([5.0, 1.0, 1.05, 2.0], 0.1)
    assert timing.is_warm([5.0, 2.0, 1.0, 1.05, 1.02], 0.1)


def test_summary_orders_percentiles_and_brackets_throughput():
    lat = [0.010, 0.011, 0.012, 0.010, 0.020, 0.011, 0.010, 0.013]
    s = timing.summarize(lat, batch_size=4, target_rel_ci=0.02)
    assert s.latency_ms_p50 <= s.latency_ms_p90 <= s.latency_ms_p99
    assert s.throughput_ci95_low <= s.throughput <= s.throughput_ci95_high
    assert s.throughput == pytest.approx(4 / (sum(lat) / len(lat)))
    assert s.iterations == len(lat)
    assert s.measure_seconds == pytest.approx(sum(lat))


class FakeDevice:
    """A call whose duration follows a script; the clock advances by it."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now_ns = 0
        self.calls = 0

    def clock(self):
        return self.now_ns

    def call(self):
        d = self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1
        self.now_ns += int(d * 1e9)


def test_warm_up_lasts_until_first_call_costs_are_gone():
    # Three slow first calls (graph build, allocation), then steady 10 ms.
    device = FakeDevice([1.0, 0.5, 0.2] + [0.010] * 10_000)
    budget = timing.Budget(
        warmup_min_seconds=0.0, warmup_max_seconds=60, min_seconds=0.1, max_seconds=5
    )
    s = timing.time_calls(device.call, 1, budget, clock=device.clock)
    assert s.warmup_iterations == 6  # the 3 slow calls, then 3 that agree
    assert s.latency_ms_mean == pytest.approx(10.0)
    assert s.converged
    # Stops as soon as min_seconds and the CI target are both met.
    assert s.measure_seconds == pytest.approx(0.1, abs=0.011)


def test_noisy_device_stops_at_the_budget_and_says_so():
    pattern = [0.010, 0.030] * 100_000
    device = FakeDevice([0.01] * 3 + pattern)
    budget = timing.Budget(
        warmup_min_seconds=0.0, min_seconds=0.1, max_seconds=2.0, target_rel_ci=0.0001
    )
    s = timing.time_calls(device.call, 8, budget, clock=device.clock)
    assert not s.converged
    assert s.measure_seconds == pytest.approx(2.0, abs=0.031)
    assert s.rel_ci95 > 0.0001
    assert s.throughput_ci95_low < s.throughput < s.throughput_ci95_high


def test_min_iterations_respected_for_slow_calls():
    device = FakeDevice([0.5] * 100)
    budget = timing.Budget(
        warmup_min_seconds=0.0, min_seconds=0.1, max_seconds=100, min_iterations=7
    )
    s = timing.time_calls(device.call, 1, budget, clock=device.clock)
    assert s.iterations == 7


def test_budget_rejects_min_above_max():
    with pytest.raises(ValueError, match="min_seconds"):
        timing.Budget(min_seconds=5, max_seconds=1)
