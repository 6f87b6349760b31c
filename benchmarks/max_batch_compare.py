"""Largest-batch search: dlmark's linear prediction against the seed's method.

The seed project doubled from 1024 and then bisected, one fresh process per
try. Both methods here use the same trial (a fresh, watched process, two
forward passes) and the same limit, one model after the other, so their
trial counts and wall times compare directly.

    python benchmarks/max_batch_compare.py [--config config.yaml] [--models m1 m2 ...]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import yaml

from dlmark import config as dlconfig, maxbatch


def find_max_batch_doubling(
    trial: maxbatch.TrialFn,
    memory_limit_mb: float,
    start: int = 1024,
    upper_bound: int = 1 << 16,
    log: Callable[[str], None] = lambda _: None,
) -> maxbatch.SearchResult:
    """The seed project's method, kept to compare against: double, then bisect."""
    result = maxbatch.SearchResult(0, memory_limit_mb, None, method="doubling")

    def attempt(batch: int) -> bool:
        t = trial(batch)
        result.trials.append(t)
        log(f"trial {len(result.trials)}: batch {batch} {'fits' if t.fits else 'does not fit'}")
        return t.fits

    lo, hi = 0, start
    while attempt(hi):
        lo, hi = hi, hi * 2
        if hi > upper_bound:
            result.max_batch_size, result.reached_upper_bound = lo, True
            return result
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if attempt(mid):
            lo = mid
        else:
            hi = mid
    result.max_batch_size = lo
    result.memory_at_max_mb = next(
        (t.peak_memory_mb for t in reversed(result.trials) if t.fits and t.batch_size == lo), None
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--models", nargs="*")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    threads = dlconfig.cpu_threads(config)
    settings = dlconfig.max_batch_settings(config)
    rows = []
    for model in args.models or config["models"]:
        limit = dlconfig.memory_limit_mb(config, model)
        trial = maxbatch.isolated_trial(model, "cpu", threads, limit)
        started = time.monotonic()
        ours = maxbatch.find_max_batch(
            trial, limit, upper_bound=settings["upper_bound"], probe=settings["probe"], step=settings["step"]
        )
        ours_s = time.monotonic() - started
        started = time.monotonic()
        seed = find_max_batch_doubling(trial, limit)
        seed_s = time.monotonic() - started
        rows.append((model, ours.max_batch_size, len(ours.trials), ours_s, seed.max_batch_size, len(seed.trials), seed_s))
        print(
            f"{model:18s} limit {limit:.0f} MiB: linear B={ours.max_batch_size} in {len(ours.trials)} trials, "
            f"{ours_s:.1f} s | doubling+bisect B={seed.max_batch_size} in {len(seed.trials)} trials, {seed_s:.1f} s",
            flush=True,
        )
    ours_total = sum(r[3] for r in rows)
    seed_total = sum(r[6] for r in rows)
    same = sum(r[1] == r[4] for r in rows)
    print(
        f"total: linear {sum(r[2] for r in rows)} trials ({sum(r[2] for r in rows) / len(rows):.2f} per model), "
        f"{ours_total:.1f} s; doubling+bisect {sum(r[5] for r in rows)} trials "
        f"({sum(r[5] for r in rows) / len(rows):.2f} per model), {seed_total:.1f} s; "
        f"speed-up {seed_total / ours_total:.2f}x; same B for {same} of {len(rows)} models"
    )


if __name__ == "__main__":
    main()
