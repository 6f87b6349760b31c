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

import yaml

from dlmark import config as dlconfig, maxbatch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--models", nargs="*")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    threads = dlconfig.cpu_threads(config)
    upper = (config.get("max_batch") or {}).get("upper_bound", 1024)
    rows = []
    for model in args.models or config["models"]:
        limit = dlconfig.memory_limit_mb(config, model)
        trial = maxbatch.isolated_trial(model, "cpu", threads, limit)
        started = time.monotonic()
        ours = maxbatch.find_max_batch(trial, limit, upper_bound=upper)
        ours_s = time.monotonic() - started
        started = time.monotonic()
        seed = maxbatch.find_max_batch_doubling(trial, limit)
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
