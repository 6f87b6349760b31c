"""Repeatability: the same config measured twice, row by row.

    python benchmarks/repeatability.py results_a/throughput.csv results_b/throughput.csv

Prints the median (and 90th percentile) of |a - b| / mean(a, b) over the
throughput of rows present and ok in both, how often the tables' 95%
intervals overlap, and how often the processes' own intervals (the raw
files', without the machine's drift; see dlmark.drift) overlap. `make
bench-repeat` produces the two tables by running the default config twice
in scratch folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from dlmark import compare, results

KEYS = ["machine", "device", "runtime", "precision", "model", "batch_size"]


def overlap(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    both = both[(both["status_a"] == "ok") & (both["status_b"] == "ok")]
    return ~compare.intervals_apart(both, "_a", "_b")


def processes_only(csv: str) -> pd.DataFrame:
    """The rows with the intervals their raw files hold: the processes' alone."""
    paths = sorted(Path(csv).parent.glob("raw/*/throughput/**/*.json"))
    return results.table((results.read_record(p) for p in paths), results.THROUGHPUT_COLUMNS)


def main(first: str, second: str) -> None:
    a = pd.read_csv(first)
    b = pd.read_csv(second)
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    both = both[(both["status_a"] == "ok") & (both["status_b"] == "ok")]
    mean = (both["throughput_a"] + both["throughput_b"]) / 2
    diff = (both["throughput_a"] - both["throughput_b"]).abs() / mean
    for _, row in both.assign(diff=diff).sort_values("diff", ascending=False).head(5).iterrows():
        print(f"  {row['model']:18s} batch {row['batch_size']:3d}: {row['throughput_a']:8.2f} vs {row['throughput_b']:8.2f} img/s ({row['diff']:.1%})")
    drift = [
        f"{t['machine_drift'].dropna().max():.1%}" if t["machine_drift"].notna().any() else "unknown"
        for t in (a, b)
    ]
    print(
        f"repeatability over {len(both)} rows: median |diff| {diff.median():.2%}, "
        f"p90 {diff.quantile(0.9):.2%}, max {diff.max():.2%}; "
        f"95% intervals overlap in {overlap(a, b).mean():.0%} of rows "
        f"({overlap(processes_only(first), processes_only(second)).mean():.0%} without the machine's drift, "
        f"which was {drift[0]} and {drift[1]})"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
