"""`dlmark compare`'s judgement on tables built here: which changes it flags, and which shift explains.

The command itself runs on a real tiny run in test_results_sharing.
"""

import pandas as pd

from dlmark.results import compare
from dlmark.results.records import ThroughputRecord

MODELS = ("resnet18_v1", "mobilenet1.0", "squeezenet1.1", "densenet121")


def table(rel: float = 0.03, **jobs: tuple[float, float]) -> pd.DataFrame:
    """Four models' timing jobs, two batches each, at 100 img/s within +-rel; `jobs` scales a model's
    (throughput, core canary), keyed by the model's name with '.' as '_'."""
    rows = []
    for model in MODELS:
        speed, cores = jobs.get(model.replace(".", "_"), (1.0, 1.0))
        for batch in (1, 8):
            rows.append({c: None for c in ThroughputRecord.columns()} | {
                "machine": "vm", "device": "cpu", "runtime": "mxnet", "precision": "float32", "model": model,
                "batch_size": batch, "status": "ok", "throughput": 100.0 * speed,
                "throughput_ci95_low": 100.0 * speed * (1 - rel), "throughput_ci95_high": 100.0 * speed * (1 + rel),
                "latency_ms_mean": batch * 10.0 / speed, "memory_bandwidth_gbs": 12.0, "compute_gflops": 60.0 * cores,
            })
    return pd.DataFrame(rows)


def flagged(changes: list[compare.Change]) -> set[tuple[str, int, bool]]:
    return {(c.key[4], c.key[5], c.regression) for c in changes}


def test_a_job_whose_own_core_canary_moved_as_its_rows_did_is_not_flagged_and_a_slowed_one_is():
    """resnet18_v1's job ran 25% faster with its core canary 25% higher; the machine's level (the median
    over four jobs) did not move. mobilenet1.0 ran 25% slower with its canaries as before: code."""
    old = table()
    new = table(resnet18_v1=(1.25, 1.25), mobilenet1_0=(0.75, 1.0))
    changes, compared, noisy = compare.compare(old, new)
    assert (compared, noisy) == (8, 0)
    assert flagged(changes) == {("mobilenet1.0", 1, True), ("mobilenet1.0", 8, True)}
    by_machine = compare.compare(old, new, by_job=False)[0]  # the machine's shift alone: flagged as faster
    assert ("resnet18_v1", 1, False) in flagged(by_machine)
    note = compare.shift_note(old, new)
    assert "resnet18_v1's timing job on vm: its core speed (a cache-resident matrix product) was 25.0% higher" in note
    assert "mobilenet1.0" not in note and "the machine's" not in note


def test_a_change_beyond_its_own_interval_is_flagged_though_the_two_intervals_overlap():
    """+-5% intervals: 8% slower overlaps (95 against 96.6) but lies beyond the change's interval
    (sqrt(2) x 5%, about 7.1%); 4% slower lies within it and within the threshold."""
    old = table(rel=0.05)
    new = table(rel=0.05, squeezenet1_1=(0.92, 1.0), densenet121=(0.96, 1.0))
    both = old.merge(new, on=compare.KEYS, suffixes=("_old", "_new"))
    assert not compare.intervals_apart(both, "_old", "_new").any()
    changes, _, _ = compare.compare(old, new)
    assert flagged(changes) == {("squeezenet1.1", 1, True), ("squeezenet1.1", 8, True)}


def test_an_open_interval_is_never_apart():
    old, new = table(), table(mobilenet1_0=(0.5, 1.0))
    new.loc[new["model"] == "mobilenet1.0", "throughput_ci95_high"] = float("inf")
    assert flagged(compare.compare(old, new)[0]) == set()
