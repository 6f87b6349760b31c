"""Ratios from interleaved blocks: the machine's drift cancels, the processes' spread stays."""

import math

import numpy as np
import pytest

from dlmark.measure import timing
from dlmark.results import rounds

COMMON = dict(family="ResNet", device="cpu", device_name="CPU", machine="m", model="resnet18_v1")


def record(runtime, precision, batch, speed, drift, process_effect=(1.0, 1.0, 1.0), session="job"):
    """A point timed in one job's processes; `drift[g][r]` slows round r of process g for every point alike."""
    processes = [
        dict(session=session, generation=g,
             block_ms=[1e3 * batch / (speed * effect * d) for d in drift[g]])
        for g, effect in enumerate(process_effect)
    ]
    return dict(COMMON, runtime=runtime, precision=precision, batch_size=batch, process_results=processes)


def drifting(seed=0, processes=3, rounds_=6, spread=0.3):
    """Each block slowed by up to `spread`: the shared VM, the same for every point of a round."""
    rng = np.random.default_rng(seed)
    return (1 - spread * rng.random((processes, rounds_))).tolist()


def test_a_drift_shared_by_both_points_cancels_in_their_ratio():
    drift = drifting()
    fast, slow = record("mxnet", "int8", 8, 300.0, drift), record("mxnet", "float32", 8, 100.0, drift)
    ratio = rounds.paired(fast, slow)
    assert ratio.ratio == pytest.approx(3.0)
    assert ratio.ratio_ci95_low == pytest.approx(3.0) and ratio.ratio_ci95_high == pytest.approx(3.0)
    assert ratio.processes == 3
    # The same two points' throughputs, each averaged alone, carry the drift: their own spread is wide.
    each = [batch / (np.mean(p["block_ms"]) / 1e3) for p in slow["process_results"] for batch in [8]]
    assert max(each) / min(each) > 1.05


def test_the_spread_between_processes_sets_the_interval():
    drift = drifting()
    effects = (1.0, 1.06, 0.95)
    fast = record("mxnet", "int8", 8, 300.0, drift, process_effect=effects)
    slow = record("mxnet", "float32", 8, 100.0, drift)
    ratio = rounds.paired(fast, slow)
    # The value: both points' fastest blocks over all the processes.
    expected = max(300.0 * e * max(d) for e, d in zip(effects, drift)) / max(100.0 * max(d) for d in drift)
    assert ratio.ratio == pytest.approx(expected)
    # The interval: the processes' own ratios (3.0, 3.18, 2.85) give its width, placed around the value.
    logs = np.log([3.0, 3.18, 2.85])
    half = timing.t_quantile_975(2) * logs.std(ddof=1) / math.sqrt(3)
    assert ratio.ratio_ci95_low == pytest.approx(expected * math.exp(-half))
    assert ratio.ratio_ci95_high == pytest.approx(expected * math.exp(half))


def test_a_spell_that_slows_one_member_through_a_whole_process_stays_out_of_the_ratio():
    """In the second of three processes every batch-1 block fell in a spell that slowed it 30% and missed
    batch 8's (a memory-bound batch 1 suffers most): that process's own fastest blocks read 1.6 / 0.7,
    and the geometric mean of the processes' ratios, the rule before, 1.80. The job's fastest blocks
    read 1.6; the disagreeing process widens the interval instead."""
    quiet = [[1.0] * 6] * 3
    spell = [[1.0] * 6, [0.7] * 6, [1.0] * 6]
    small, large = record("mxnet", "float32", 1, 100.0, spell), record("mxnet", "float32", 8, 160.0, quiet)
    ratio = rounds.paired(large, small)
    assert ratio.ratio == pytest.approx(1.6)
    assert ratio.ratio_ci95_low < 1.6 < ratio.ratio_ci95_high
    assert ratio.ratio_ci95_high > 1.6 * 1.3  # a process 43% off is no 2% interval


def test_a_slow_spell_that_hits_one_member_in_half_the_rounds_stays_out_of_the_ratio():
    """The batch-1 blocks of rounds 0-2 fell in a spell that slowed them 20% and missed batch 8's: a median
    of block-by-block ratios (1.6, 1.6, 1.6, 2.0, 2.0, 2.0) would read 1.8; the fastest blocks read 1.6."""
    quiet = [[1.0] * 6] * 3
    spell = [[0.8, 0.8, 0.8, 1.0, 1.0, 1.0]] * 3
    small, large = record("mxnet", "float32", 1, 100.0, spell), record("mxnet", "float32", 8, 160.0, quiet)
    ratio = rounds.paired(large, small)
    assert ratio.ratio == pytest.approx(1.6)
    # Each member's fastest block is taken over the rounds both had: a round only one had is no extra chance.
    extra = record("mxnet", "float32", 8, 160.0, [[1.0] * 6 + [1.5]] * 3)
    assert rounds.paired(extra, small).ratio == pytest.approx(1.6)


def test_only_blocks_of_the_same_job_and_process_pair():
    drift = drifting()
    ours = record("mxnet", "int8", 8, 300.0, drift)
    theirs = record("mxnet", "float32", 8, 100.0, drift, session="another job")
    assert rounds.paired(ours, theirs) is None


def test_speedups_and_curve_shapes_pick_their_partners():
    drift = drifting()
    points = [record("mxnet", "float32", 1, 100.0, drift), record("mxnet", "float32", 8, 160.0, drift),
              record("mxnet", "int8", 1, 250.0, drift), record("mxnet", "int8", 8, 480.0, drift)]
    speedups = {(r.precision, r.batch_size): r.ratio for r in rounds.speedups(points, ("mxnet", "float32"))}
    assert speedups == pytest.approx({("int8", 1): 2.5, ("int8", 8): 3.0})
    shapes = {(r.precision, r.batch_size, r.against_batch_size): r.ratio for r in rounds.scaling(points)}
    assert shapes == pytest.approx({("float32", 8, 1): 1.6, ("int8", 8, 1): 1.92})


def test_one_process_gives_an_interval_open_above():
    assert rounds.geometric_interval([2.0]) == (2.0, 0.0, math.inf, 1)


def test_a_block_times_at_least_one_call_after_the_untimed_one():
    calls = []
    ticks = iter(range(0, 10**12, 10**9))  # every clock read is a second later
    samples = timing.time_block(lambda: calls.append(1), 0.5, clock=lambda: next(ticks))
    assert len(samples) == 1 and len(calls) == 2  # the untimed call, then one of a second
    assert timing.time_block(lambda: calls.append(1), 0.5, clock=lambda: next(ticks), rewarm=False) == [1.0]


def test_a_rounds_variants_of_one_batch_run_side_by_side_and_its_batches_in_a_fresh_order():
    """The points a speed-up pairs are neighbours in every round; the batch sizes' order still varies."""
    import random

    from dlmark.scenarios.throughput_child import round_order

    batch_sizes = [1, 4, 16, 1, 4, 16, 1, 4, 16]  # three variants' points, in the job's order
    rng = random.Random(0)
    orders = [round_order(list(range(9)), batch_sizes, rng) for _ in range(40)]
    for order in orders:
        assert sorted(order) == list(range(9))
        sizes = [batch_sizes[i] for i in order]
        assert all(len(set(sizes[k:k + 3])) == 1 for k in (0, 3, 6))  # each batch's three variants together
    assert len({tuple(batch_sizes[i] for i in o[::3]) for o in orders}) == 6  # every order of the batches
    assert len({tuple(o[:3]) for o in orders}) > 1  # and the variants' own order varies
    # A point that has left the rounds leaves its neighbours together.
    for _ in range(10):
        sizes = [batch_sizes[i] for i in round_order([0, 1, 4, 7], batch_sizes, rng)]
        assert sizes in ([1, 4, 4, 4], [4, 4, 4, 1])
