"""Largest-batch search: dlmark's search against the seed's method.

The seed project doubled from 1024 and then bisected, one fresh process per
try, started when the try was due. Per model, with the same limit, three
searches run one after the other:

- dlmark's search as the workflow runs it (`maxbatch.run_search`: the
  linear prediction, each trial's process started while the one before
  runs);
- the same prediction with each process started when its trial is due,
  the seed's way: the method alone, since its trials are the seed's;
- the seed's doubling and bisecting, with those same trials.

Every trial is a fresh, watched process running two forward passes.

    python benchmarks/max_batch_compare.py [--config config.yaml] [--models m1 m2 ...]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import yaml

from dlmark import config as dlconfig
from dlmark.scenarios import maxbatch


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
    # Per model: (B, trials, seconds) of dlmark's search, of its prediction alone, of the seed's method.
    rows: list[tuple[str, tuple[int, int, float], tuple[int, int, float], tuple[int, int, float]]] = []
    for model in args.models or config["models"]:
        limit = dlconfig.memory_limit_mb(config, model)
        spec = maxbatch.SearchSpec(
            model=model, device="cpu", runtime="mxnet", precision="float32", threads=threads, variant_dir="",
            machine="bench", memory_limit_mb=limit, **settings,
        )
        record = maxbatch.run_search(spec)
        shipped = (record.max_batch_size, record.trials, record.search_seconds)
        trial = maxbatch.isolated_trial(spec.measured(), limit)
        started = time.monotonic()
        alone = maxbatch.find_max_batch(
            trial, limit, upper_bound=settings["upper_bound"], probe=settings["probe"], step=settings["step"]
        )
        method = (alone.max_batch_size, len(alone.trials), time.monotonic() - started)
        started = time.monotonic()
        theirs = find_max_batch_doubling(trial, limit)
        seed = (theirs.max_batch_size, len(theirs.trials), time.monotonic() - started)
        rows.append((model, shipped, method, seed))
        print(
            f"{model:18s} limit {limit:.0f} MiB: dlmark B={shipped[0]} in {shipped[1]} trials, {shipped[2]:.1f} s"
            f" | prediction alone B={method[0]} in {method[1]} trials, {method[2]:.1f} s"
            f" | doubling+bisect B={seed[0]} in {seed[1]} trials, {seed[2]:.1f} s",
            flush=True,
        )

    def total(column: int) -> tuple[int, float]:
        return sum(r[column][1] for r in rows), sum(r[column][2] for r in rows)

    (ours_n, ours_s), (alone_n, alone_s), (seed_n, seed_s) = total(1), total(2), total(3)
    same = sum(r[1][0] == r[2][0] == r[3][0] for r in rows)
    print(
        f"total over {len(rows)} models: dlmark {ours_n} trials, {ours_s:.1f} s; "
        f"prediction alone {alone_n} trials, {alone_s:.1f} s; doubling+bisect {seed_n} trials, {seed_s:.1f} s\n"
        f"speed-up over doubling+bisect: dlmark's search {seed_s / ours_s:.2f}x, the prediction alone "
        f"{seed_s / alone_s:.2f}x ({seed_n / len(rows):.1f} against {alone_n / len(rows):.1f} trials per model); "
        f"same B in all three for {same} of {len(rows)} models"
    )


if __name__ == "__main__":
    main()
