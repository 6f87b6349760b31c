"""Repeatability: the same config measured twice, row by row.

    python benchmarks/repeatability.py results_a/throughput.csv results_b/throughput.csv

Prints, over what both runs trusted:
- the comparisons people choose by: speed-ups (speedup.csv) and curve
  shapes (scaling.csv: throughput at b over the smallest batch), each
  |a - b| / mean(a, b);
- memory: |a - b| in MiB of every row's peak memory, and of its baseline;
- absolute throughput: |a - b| / mean(a, b), how often the tables' 95%
  intervals overlap, and how often the processes' own intervals (the raw
  files', without the machine's drift; see dlmark.measure.drift) overlap.
`make bench-repeat` produces the two tables by running the default config
twice in scratch folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from dlmark.results import compare, tables

KEYS = ["machine", "device", "runtime", "precision", "model", "batch_size"]


def overlap(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    both = both[(both["status_a"] == "ok") & (both["status_b"] == "ok")]
    return ~compare.intervals_apart(both, "_a", "_b")


def processes_only(csv: str) -> pd.DataFrame:
    """The rows with the intervals their raw files hold: the processes' alone."""
    paths = sorted(Path(csv).parent.glob("raw/*/throughput/**/*.json"))
    return tables.table((tables.read_record(p) for p in paths), tables.THROUGHPUT_COLUMNS)


def ratios(first: str, second: str, name: str, keys: list[str]) -> None:
    """How well two runs agree on a table of paired ratios (speedup.csv, scaling.csv)."""
    a, b = (pd.read_csv(Path(csv).parent / f"{name}.csv") for csv in (first, second))
    both = a.merge(b, on=keys, suffixes=("_a", "_b"))
    if both.empty:
        print(f"{name}: no ratio in both runs")
        return
    diff = (both["ratio_a"] - both["ratio_b"]).abs() / ((both["ratio_a"] + both["ratio_b"]) / 2)
    worst = both.assign(diff=diff).sort_values("diff").iloc[-1]
    print(
        f"{name} over {len(both)} ratios: median |diff| {diff.median():.2%}, p90 {diff.quantile(0.9):.2%}, "
        f"max {diff.max():.2%} ({worst['model']} {worst['runtime']}/{worst['precision']} batch "
        f"{worst['batch_size']}: {worst['ratio_a']:.3f} vs {worst['ratio_b']:.3f})"
    )


def memory(a: pd.DataFrame, b: pd.DataFrame) -> None:
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b")).dropna(subset=["peak_memory_mb_a", "peak_memory_mb_b"])
    for column in ("peak_memory_mb", "baseline_memory_mb", "mapped_files_mb"):
        diff = (both[f"{column}_a"] - both[f"{column}_b"]).abs()
        print(f"{column} over {len(both)} rows: median |diff| {diff.median():.2f} MiB, max {diff.max():.2f} MiB")


def main(first: str, second: str) -> None:
    keys = ["machine", "device", "model", "runtime", "precision", "batch_size", "against_runtime",
            "against_precision", "against_batch_size"]
    ratios(first, second, "speedup", keys)
    ratios(first, second, "scaling", keys)
    a = pd.read_csv(first)
    b = pd.read_csv(second)
    memory(a, b)
    for table in (a, b):
        noisy = table[table["status"] == "noisy"]
        print(f"noisy rows: {len(noisy)} of {len(table)}" + "".join(
            f"\n  {r['model']} {r['runtime']}/{r['precision']} batch {r['batch_size']}: {r['disturbance']}"
            for _, r in noisy.iterrows()))
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
