"""Repeatability: the same config measured twice, row by row.

    python benchmarks/repeatability.py results_a/throughput.csv results_b/throughput.csv

Prints the median (and 90th percentile) of |a - b| / mean(a, b) over the
throughput of rows present and ok in both; `make bench-repeat` produces the
two tables by running the default config twice in scratch folders.
"""

from __future__ import annotations

import sys

import pandas as pd

KEYS = ["machine", "device", "runtime", "precision", "model", "batch_size"]


def main(first: str, second: str) -> None:
    a = pd.read_csv(first)
    b = pd.read_csv(second)
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    both = both[(both["status_a"] == "ok") & (both["status_b"] == "ok")]
    mean = (both["throughput_a"] + both["throughput_b"]) / 2
    diff = (both["throughput_a"] - both["throughput_b"]).abs() / mean
    overlap = (both["throughput_ci95_low_a"] <= both["throughput_ci95_high_b"]) & (
        both["throughput_ci95_low_b"] <= both["throughput_ci95_high_a"]
    )
    for _, row in both.assign(diff=diff).sort_values("diff", ascending=False).head(5).iterrows():
        print(f"  {row['model']:18s} batch {row['batch_size']:3d}: {row['throughput_a']:8.2f} vs {row['throughput_b']:8.2f} img/s ({row['diff']:.1%})")
    print(
        f"repeatability over {len(both)} rows: median |diff| {diff.median():.2%}, "
        f"p90 {diff.quantile(0.9):.2%}, max {diff.max():.2%}; "
        f"CIs overlap in {overlap.mean():.0%} of rows (target: median <= 3%)"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
