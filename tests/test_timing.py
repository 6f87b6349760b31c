import math

import pytest

from dlmark import config
from dlmark.measure import timing


def budget(**changes) -> timing.Budget:
    """The schema's measure defaults with `changes`."""
    return timing.Budget(**{**config.section_defaults("measure"), **changes})


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
    settings = budget(
        warmup_min_seconds=0.0, warmup_max_seconds=60, min_seconds=0.1, max_seconds=5
    )
    s = timing.time_calls(device.call, 1, settings, clock=device.clock)
    assert s.warmup_iterations == 6  # the 3 slow calls, then 3 that agree
    assert s.latency_ms_mean == pytest.approx(10.0)
    assert s.converged
    # Stops as soon as min_seconds and the CI target are both met.
    assert s.measure_seconds == pytest.approx(0.1, abs=0.011)


def test_a_first_call_longer_than_the_warm_up_cap_is_never_the_whole_warm_up():
    # Seen on an H200: a first call of 2.3 s (cuDNN's set-up) against a 1 s cap.
    device = FakeDevice([2.3] + [0.010] * 10_000)
    settings = budget(warmup_min_seconds=0.2, warmup_max_seconds=1.0, min_seconds=0.1, max_seconds=5)
    s = timing.time_calls(device.call, 1, settings, clock=device.clock)
    assert s.warmup_iterations == 2
    assert s.latency_ms_mean == pytest.approx(10.0)


def test_noisy_device_stops_at_the_budget_and_says_so():
    pattern = [0.010, 0.030] * 100_000
    device = FakeDevice([0.01] * 3 + pattern)
    settings = budget(
        warmup_min_seconds=0.0, min_seconds=0.1, max_seconds=2.0, target_rel_ci=0.0001
    )
    s = timing.time_calls(device.call, 8, settings, clock=device.clock)
    assert not s.converged
    assert s.measure_seconds == pytest.approx(2.0, abs=0.031)
    assert s.rel_ci95 > 0.0001
    assert s.throughput_ci95_low < s.throughput < s.throughput_ci95_high


def test_min_iterations_respected_for_slow_calls():
    device = FakeDevice([0.5] * 100)
    settings = budget(warmup_min_seconds=0.0, min_seconds=0.1, max_seconds=100, min_iterations=7)
    s = timing.time_calls(device.call, 1, settings, clock=device.clock)
    assert s.iterations == 7


def test_calls_slower_than_the_budget_still_get_min_iterations_and_say_so():
    device = FakeDevice([0.8] * 100)  # 5 calls need 4 s; the budget says 1 s
    settings = budget(warmup_min_seconds=0.0, warmup_max_seconds=0.1, min_seconds=0.1, max_seconds=1,
                      min_iterations=5)
    s = timing.time_calls(device.call, 1, settings, clock=device.clock)
    assert s.iterations == 5
    assert "extended" in s.budget_note


def test_the_extension_is_bounded_and_the_row_says_why():
    device = FakeDevice([4.0] * 100)  # 10 x max_seconds holds 3 calls, not 5
    settings = budget(warmup_min_seconds=0.0, warmup_max_seconds=0.1, min_seconds=0.1, max_seconds=1,
                      min_iterations=5)
    s = timing.time_calls(device.call, 1, settings, clock=device.clock)
    assert s.iterations == 3
    assert "only 3 of 5 calls" in s.budget_note


def summary(throughputs_and_halfwidths, batch=1):
    """Summaries of processes with these mean throughputs (and latency CI half-widths, ms)."""
    out = []
    for throughput, half_ms in throughputs_and_halfwidths:
        latency_ms = batch / throughput * 1e3
        out.append(timing.Summary(
            iterations=10, measure_seconds=1.0, latency_ms_mean=latency_ms, latency_ms_p50=latency_ms,
            latency_ms_p90=latency_ms, latency_ms_p99=latency_ms, latency_ms_ci95_halfwidth=half_ms,
            throughput=throughput, throughput_ci95_low=throughput, throughput_ci95_high=throughput,
            rel_ci95=half_ms / latency_ms, converged=True, warmup_iterations=3, warmup_seconds=0.5,
            latencies_ms=[latency_ms] * 10,
        ))
    return out


def test_the_interval_spans_the_processes_not_only_their_calls():
    # Each process is precise on its own (tiny call-to-call CI), but the two disagree by 10%.
    combined = timing.combine(summary([(100.0, 0.001), (110.0, 0.001)]), 1, target_rel_ci=0.02)
    assert combined.processes == 2 and combined.iterations == 20
    assert combined.throughput_ci95_low < 100.0 and combined.throughput_ci95_high > 110.0
    assert not combined.converged  # they disagree beyond the 2% target
    # Means of latencies, so 1 / mean(1/100, 1/110).
    assert combined.throughput == pytest.approx(1 / ((1 / 100 + 1 / 110) / 2))


def test_agreeing_processes_keep_their_own_interval_when_it_is_wider():
    wide = 0.5  # ms, on a 10 ms call
    combined = timing.combine(summary([(100.0, wide), (100.0, wide)]), 1, target_rel_ci=0.2)
    assert combined.rel_ci95 == pytest.approx(((wide**2 * 2) ** 0.5 / 2) / 10.0)
    assert combined.converged


def test_process_spread_is_the_relative_range():
    assert timing.process_spread(summary([(90.0, 0), (100.0, 0), (110.0, 0)])) == pytest.approx(0.2)


def test_budget_needs_two_processes_at_least():
    with pytest.raises(ValueError, match="min_processes must be at least 2"):
        budget(min_processes=1)


def test_budget_rejects_min_above_max():
    with pytest.raises(ValueError, match="min_seconds"):
        budget(min_seconds=5, max_seconds=1)
