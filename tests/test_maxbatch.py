import importlib.util
from pathlib import Path

import pytest

from dlmark import config
from dlmark.scenarios import maxbatch


def search(trial, **changes):
    """find_max_batch with the config's default settings, as the workflow runs it."""
    settings = {**config.max_batch_settings({}), **changes}
    return maxbatch.find_max_batch(
        trial, LIMIT, upper_bound=settings["upper_bound"], probe=settings["probe"], step=settings["step"]
    )


def synthetic(memory_of):
    """A trial whose peak memory follows `memory_of(batch)`; counts calls."""
    calls = []

    def trial(batch):
        calls.append(batch)
        peak = memory_of(batch)
        return maxbatch.Trial(batch, peak <= LIMIT, peak, 0.0, baseline_mb=memory_of(0))

    return trial, calls


LIMIT = 1000.0


def brute_force(memory_of, upper=4096):
    return max((b for b in range(1, upper + 1) if memory_of(b) <= LIMIT), default=0)


@pytest.mark.parametrize(
    "memory_of",
    [
        lambda b: 100 + 7.3 * b,  # linear, like most CNNs
        lambda b: 250 + 1.1 * b,
        lambda b: 100 + 5 * b + 0.01 * b * b,  # bends upward
        lambda b: 100 + 30 * b ** 0.8,  # bends downward
        lambda b: 100 + 7 * b + (40 if b > 64 else 0),  # a step (a new pool chunk)
    ],
)
def test_finds_the_exact_boundary(memory_of):
    trial, calls = synthetic(memory_of)
    result = search(trial, upper_bound=4096)
    expected = brute_force(memory_of)
    assert result.max_batch_size == expected
    # The proof is in the trials: B fitted and B+1 did not.
    tried = {t.batch_size: t.fits for t in result.trials}
    assert tried[expected] is True and tried[expected + 1] is False
    assert len(result.trials) == len(calls) <= 8


def test_linear_memory_needs_three_trials():
    trial, calls = synthetic(lambda b: 100 + 7.3 * b)
    result = search(trial)
    assert result.max_batch_size == 123
    assert calls == [8, 123, 124]  # the probe, the prediction, the proof
    assert result.memory_at_max_mb == pytest.approx(100 + 7.3 * 123)


def test_limit_below_batch_one_gives_zero_after_two_trials():
    trial, calls = synthetic(lambda b: 1500 + b)
    result = search(trial)
    assert result.max_batch_size == 0
    assert calls == [8, 1]


def test_upper_bound_stops_a_runaway_search():
    trial, _ = synthetic(lambda b: 10 + 0.001 * b)
    result = search(trial, upper_bound=256)
    assert result.max_batch_size == 256
    assert result.reached_upper_bound
    assert max(t.batch_size for t in result.trials) == 256


def test_a_trial_stopped_early_is_not_used_as_a_true_peak():
    # Trials above the limit are stopped as soon as they cross it, so their
    # peak reads just above the limit; interpolating with it would creep.
    memory_of = lambda b: 100 + 5 * b + 0.01 * b * b  # noqa: E731

    def trial(batch):
        peak = memory_of(batch)
        if peak > LIMIT:
            return maxbatch.Trial(batch, False, LIMIT + 1, 0.0, "stopped", complete=False)
        return maxbatch.Trial(batch, True, peak, 0.0)

    result = search(trial)
    assert result.max_batch_size == brute_force(memory_of)
    # Bisection once the line has overshot. Trying the batch nearest to each
    # prediction (not the one below) costs a retry here, where lines through
    # fitting trials overshoot a memory curve that bends upward.
    assert len(result.trials) <= 11


def test_the_nearest_batch_to_the_prediction_is_tried_first():
    # Memory per image falls a little beyond batch 78, so the line through
    # the trials at 8 and 78 predicts a crossing at 123.7 while 124 still
    # fits. Trying the nearest batch (124) and then 125 proves it in four
    # trials; trying the batch below (123) would have needed 124 and 125.
    memory_of = lambda b: 60 + 7.6 * b if b <= 78 else 652.8 + 7.5 * (b - 78)  # noqa: E731

    def trial(batch):
        peak = memory_of(batch)
        return maxbatch.Trial(batch, peak <= LIMIT, peak, 0.0, baseline_mb=20.0)

    result = search(trial)
    assert result.max_batch_size == brute_force(memory_of) == 124
    assert [t.batch_size for t in result.trials] == [8, 78, 124, 125]


def test_after_a_failed_trial_the_line_runs_to_it():
    """INT8 resnet18_v1 in a default run (limit 450 MiB): its memory bends upward past batch 61. The line
    through the probe and 61 predicts 154.6, and 155 fails; from then on the line from 61 to the failed
    trial predicts within a batch, so the proof takes five trials, where extrapolating again took six."""
    measured = [(8, 223.5), (61, 305.36), (149, 448.51), (150, 450.29), (154, 457.2), (155, 458.28)]

    def memory_of(batch):
        (b0, m0), (b1, m1) = next((p, q) for p, q in zip(measured, measured[1:]) if batch <= q[0])
        return m0 + (m1 - m0) * (batch - b0) / (b1 - b0)

    def trial(batch):
        return maxbatch.Trial(batch, memory_of(batch) <= 450, memory_of(batch), 0.0, baseline_mb=189.09)

    result = maxbatch.find_max_batch(trial, 450.0, upper_bound=512, probe=8, step=1)
    assert result.max_batch_size == 149
    assert [t.batch_size for t in result.trials] == [8, 61, 155, 150, 149]


def test_step_sets_the_granularity():
    trial, _ = synthetic(lambda b: 100 + 7.3 * b)
    result = search(trial, step=8)
    tried = {t.batch_size: t.fits for t in result.trials}
    assert tried[result.max_batch_size] and not tried[result.max_batch_size + 8]
    assert 123 - 8 < result.max_batch_size <= 123


def seed_method():
    """The seed project's search lives with the benchmark that compares against it."""
    path = Path(__file__).parents[1] / "benchmarks" / "max_batch_compare.py"
    spec = importlib.util.spec_from_file_location("max_batch_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doubling_and_bisecting_agrees_but_needs_more_trials():
    memory_of = lambda b: 100 + 7.3 * b  # noqa: E731
    fast, _ = synthetic(memory_of)
    seed, _ = synthetic(memory_of)
    ours = search(fast)
    theirs = seed_method().find_max_batch_doubling(seed, LIMIT)
    assert ours.max_batch_size == theirs.max_batch_size == 123
    assert len(theirs.trials) == 11  # 1024, then bisecting [0, 1024)
    assert len(ours.trials) < len(theirs.trials)
