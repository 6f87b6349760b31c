"""What `dlmark compare` catches between runs of one config, and what it flags that nothing changed.

    python benchmarks/compare_power.py RESULTS_A RESULTS_B [RESULTS_C ...]

Each argument is a results folder of the same config on one CPU machine
(the models may differ). The tables are made again from the raw files, as
the aggregate rule makes them. For every ordered pair of runs:

- false flags: the rows `compare` flags, where no code changed;
- caught: each model in turn slowed by 10, 15 and 25% in NEW (its
  throughput and interval scaled, its canaries left as read), and the
  share of its rows flagged SLOWER.

Three rules side by side: two intervals that must not overlap against the
machine's shift (before), the same against the machine's and each job's
shifts, and the change against its own interval (now).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pandas as pd

from dlmark.results import compare, tables

SLOWDOWNS = (0.10, 0.15, 0.25)
RULES = {
    "intervals apart, machine's shift": dict(apart=compare.intervals_apart, by_job=False),
    "intervals apart, machine's and job's shifts": dict(apart=compare.intervals_apart, by_job=True),
    "the change's interval, both shifts (dlmark compare)": dict(apart=compare.significantly_apart, by_job=True),
}


def table(results: Path) -> pd.DataFrame:
    paths = sorted(results.glob("raw/*/throughput/**/*.json"))
    if not paths:
        sys.exit(f"{results}: no raw throughput files under raw/*/throughput/: give a results folder")
    return tables.throughput_table(paths)


def slowed(frame: pd.DataFrame, model: str, by: float) -> pd.DataFrame:
    frame = frame.copy()
    rows = frame["model"] == model
    for column in ("throughput", "throughput_ci95_low", "throughput_ci95_high"):
        frame.loc[rows, column] *= 1 - by
    return frame


def main(folders: list[str]) -> None:
    if len(folders) < 2:
        sys.exit(__doc__)
    runs = {folder: table(Path(folder)) for folder in folders}
    pairs = list(itertools.permutations(runs.values(), 2))
    print(f"{len(runs)} runs, {len(pairs)} ordered pairs")
    for name, rule in RULES.items():
        flagged = compared = 0
        caught = {by: [0, 0] for by in SLOWDOWNS}
        for old, new in pairs:
            changes, rows, _ = compare.compare(old, new, **rule)
            flagged, compared = flagged + len(changes), compared + rows
            both = new.merge(old, on=compare.KEYS, suffixes=("", "_old"))
            trusted = both[both["status"].isin(compare.TRUSTED) & both["status_old"].isin(compare.TRUSTED)]
            for by, (model, rows) in itertools.product(SLOWDOWNS, trusted.groupby("model")):
                changes, _, _ = compare.compare(old, slowed(new, model, by), **rule)
                caught[by][0] += sum(c.regression and c.key[4] == model for c in changes)
                caught[by][1] += len(rows)
        said = ", ".join(f"{by:.0%} slower: {n}/{of} ({n / of:.0%})" for by, (n, of) in caught.items())
        print(f"{name}\n  false flags {flagged}/{compared} ({flagged / compared:.1%}); caught {said}")


if __name__ == "__main__":
    main(sys.argv[1:])
