"""Comparing two runs, and merging result folders from several machines.

A change counts only when it is both real and large: the two runs' 95%
confidence intervals must not overlap (else it may be noise; on a CPU they
include the machine's own drift over its run, see dlmark.measure.drift), and the
relative change must pass a threshold.

A machine can also change between runs: a shared VM's host gets busier,
and every row slows, code unchanged. Each CPU row carries the drift
canaries' readings (`dlmark.measure.drift`): memory bandwidth, and a core's
speed at a cache-resident matrix product. The two runs' canary levels tell
how the machine itself moved, in memory and in compute, which need not
move alike. A row's change is then judged against the band from no change
to the machine's shifts: a row slowed by no more than the machine (plus
the threshold) is the machine's doing, and is not flagged; one slowed
beyond it is.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dlmark.measure import drift
from dlmark.results.status import NOISY, TRUSTED

KEYS = ["machine", "device", "runtime", "precision", "model", "batch_size"]


def machine_shift(old: pd.DataFrame, new: pd.DataFrame, canary: str = drift.BANDWIDTH) -> dict[str, float]:
    """Per machine label, the relative change of one canary's level (`drift.machine_level`) from old to new.

    A machine missing from the result had no reading of that canary in one of the runs.
    """
    shifts = {}
    for machine in sorted(set(old["machine"]) & set(new["machine"])):
        levels = [
            drift.machine_level(frame[(frame["machine"] == machine) & (frame["device"] == "cpu")], canary)
            for frame in (old, new)
        ]
        if levels[0] and levels[1]:
            shifts[machine] = levels[1] / levels[0] - 1.0
    return shifts


def machine_shifts(old: pd.DataFrame, new: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per machine label, each canary's shift that both runs read (`drift.CANARIES`)."""
    shifts: dict[str, dict[str, float]] = {}
    for canary in drift.CANARIES:
        for machine, shift in machine_shift(old, new, canary).items():
            shifts.setdefault(machine, {})[canary] = shift
    return shifts


def beyond_shift(relative: float, shifts: float | list[float], threshold: float) -> bool:
    """Whether a row's relative change lies more than `threshold` outside [no change, the machine's shifts].

    With both canaries, the band spans both: a compute-bound model follows
    the cores, a memory-bound one the memory, and a row's bound is not known.
    """
    values = [shifts] if isinstance(shifts, float | int) else list(shifts)
    low, high = min([0.0, *values]), max([0.0, *values])
    return relative < low - threshold or relative > high + threshold


@dataclass
class Change:
    key: tuple
    old: float
    new: float
    old_latency_ms: float
    new_latency_ms: float

    @property
    def relative(self) -> float:
        return self.new / self.old - 1.0

    @property
    def regression(self) -> bool:
        return self.new < self.old


def _throughput_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / "throughput.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give a results folder or a throughput.csv")
    return pd.read_csv(path)


def intervals_apart(both: pd.DataFrame, first: str, second: str) -> pd.Series:
    """Rows of a merged table whose two throughput intervals (column suffixes) do not overlap."""
    return (both[f"throughput_ci95_high{second}"] < both[f"throughput_ci95_low{first}"]) | (
        both[f"throughput_ci95_low{second}"] > both[f"throughput_ci95_high{first}"]
    )


def compare(
    old: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.05
) -> tuple[list[Change], int, int]:
    """Changes beyond both runs' intervals, the machine's own shift and `threshold`; the rows compared;
    the noisy rows left out.

    Only trusted rows compare: a `noisy` row was measured on a busy or slowed machine,
    and a change it shows may be the neighbour's.
    """
    shifts = machine_shifts(old, new)
    both = old.merge(new, on=KEYS, suffixes=("_old", "_new"))
    noisy = int(((both["status_old"] == NOISY) | (both["status_new"] == NOISY)).sum())
    both = both[both["status_old"].isin(TRUSTED) & both["status_new"].isin(TRUSTED)]
    changes = []
    both = both.assign(apart=intervals_apart(both, "_old", "_new"))
    for _, row in both.iterrows():
        relative = row["throughput_new"] / row["throughput_old"] - 1.0
        shift = list(shifts.get(row["machine"], {}).values()) if row["device"] == "cpu" else []
        if row["apart"] and beyond_shift(relative, shift, threshold):
            changes.append(
                Change(
                    tuple(row[k] for k in KEYS),
                    row["throughput_old"],
                    row["throughput_new"],
                    row["latency_ms_mean_old"],
                    row["latency_ms_mean_new"],
                )
            )
    return changes, len(both), noisy


def report(changes: list[Change], compared: int, threshold: float, noisy: int = 0) -> str:
    lines = [
        f"compared {compared} rows; {len(changes)} changed beyond their 95% confidence intervals "
        f"and {threshold:.0%}"
    ]
    if noisy:
        lines.append(
            f"  left out {noisy} row(s) that are noisy in either run (measured on a busy or slowed machine): "
            "remeasure them on a quiet machine to compare them"
        )
    for c in sorted(changes, key=lambda c: c.relative):
        machine, device, runtime, precision, model, batch = c.key
        kind = "SLOWER" if c.regression else "faster"
        lines.append(
            f"  {kind:6s} {model} batch {batch} on {machine}/{device} {runtime}/{precision}: "
            f"{c.old:.2f} -> {c.new:.2f} img/s ({c.relative:+.1%}), "
            f"latency {c.old_latency_ms:.2f} -> {c.new_latency_ms:.2f} ms"
        )
    return "\n".join(lines)


def drift_note(old: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """How much each run's machine drifted (dlmark.measure.drift): the intervals include it."""
    if "machine_drift" not in old or "machine_drift" not in new:
        return None
    drifts = [frame["machine_drift"].dropna() for frame in (old, new)]
    if all(d.empty for d in drifts):
        return None
    said = [f"{d.max():.1%}" if not d.empty else "unknown" for d in drifts]
    return (
        f"  the machine's own drift (spread of its memory-bandwidth canary over the rows): "
        f"{said[0]} in the old run, {said[1]} in the new; the CPU rows' intervals include it"
    )


def shift_note(old: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """What the machine itself did between the runs, by its canaries."""
    lines = []
    for machine, shifts in machine_shifts(old, new).items():
        moved = [
            f"{drift.CANARIES[canary]} was {abs(shift):.1%} {'lower' if shift < 0 else 'higher'}"
            for canary, shift in shifts.items()
            if abs(shift) >= 0.01
        ]
        if moved:
            lines.append(
                f"  the machine's {' and its '.join(moved)} in NEW on {machine} (its drift canaries): a CPU "
                "row's change is judged against that shift, and one within it (and the threshold) is not flagged"
            )
    return "\n".join(lines) or None


def run_compare(old: str, new: str, threshold: float) -> int:
    """Print the comparison; exit status 1 when anything got slower (for CI jobs)."""
    old_rows, new_rows = _throughput_csv(old), _throughput_csv(new)
    changes, compared, noisy = compare(old_rows, new_rows, threshold)
    print(report(changes, compared, threshold, noisy))
    shifted = shift_note(old_rows, new_rows)
    if shifted:
        print(shifted)
    note = drift_note(old_rows, new_rows)
    if note:
        print(note)
    if compared == 0:
        print("nothing to compare: no rows share machine, device, runtime, precision, model and batch")
        return 2
    return 1 if any(c.regression for c in changes) else 0


def merge(source: str | Path, into: str | Path = "results") -> tuple[int, int]:
    """Copy another results folder's raw files into `into`; (copied, already there).

    Raw files are keyed by their path (machine label first), so a copy never
    clobbers: an identical file is skipped, a different one with the same
    path is refused, as it would silently replace a measurement.
    """
    source_raw = Path(source) / "raw"
    if not source_raw.is_dir():
        raise FileNotFoundError(f"{source_raw} not found: give the results/ folder of another run")
    pairs = [(p, Path(into) / "raw" / p.relative_to(source_raw)) for p in sorted(source_raw.rglob("*.json"))]
    existing = [(p, t) for p, t in pairs if t.exists()]
    conflicts = [str(t) for p, t in existing if not filecmp.cmp(p, t, shallow=False)]
    if conflicts:  # checked before copying anything: all or nothing
        raise FileExistsError(
            f"{len(conflicts)} file(s) already exist with other results, e.g. {conflicts[0]}: "
            "the two runs used the same machine label; rerun one with another `machine` in its config"
        )
    for path, target in pairs:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return len(pairs) - len(existing), len(existing)
