"""Comparing two runs, and merging result folders from several machines.

A change counts only when it is both real and large: the difference of the
two runs' throughputs must lie outside its own 95% interval (the two
rows' half-widths combined in quadrature: on a CPU they include the
machine's own drift over its run, see dlmark.measure.drift), and the
relative change must pass a threshold. Asking instead that the two
intervals not overlap is a test at about 0.5%, not 5%, and missed most
real slowdowns (docs/validation.md, "What compare catches").

A machine can also change between runs: a shared VM's host gets busier,
and every row slows, code unchanged. Each CPU row carries the drift
canaries' readings (`dlmark.measure.drift`): memory bandwidth, and a core's
speed at a cache-resident matrix product, timed before each of its job's
processes. Two levels of them tell how the machine moved: the machine's
(the median over its timing jobs) and each timing job's own, since a
shared VM's speed moves from job to job, not only from run to run. A
row's change is judged against the band from no change to those shifts:
a row slowed by no more than the machine or its own job's canaries (plus
the threshold) is the machine's doing, and is not flagged; one slowed
beyond it is. A code change moves a row, never the canaries timed
beside it.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


def job_shifts(old: pd.DataFrame, new: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """Per (machine, model) on a CPU, each canary's shift between the two runs' timing jobs of that model.

    A job's rows share its processes' readings (`drift.job_readings`); a
    model whose raw files were not remeasured reads a shift of 0.
    """
    shifts: dict[tuple[str, str], dict[str, float]] = {}
    cpu = [frame[frame["device"] == "cpu"] for frame in (old, new)]
    for canary in drift.CANARIES:
        if canary not in old or canary not in new:  # a table from before that canary
            continue
        levels = [frame.dropna(subset=[canary]).groupby(["machine", "model"])[canary].median() for frame in cpu]
        for key, before in levels[0].items():
            after = levels[1].get(key)
            if after is not None and before > 0:
                shifts.setdefault(key, {})[canary] = float(after / before - 1.0)
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


def significantly_apart(both: pd.DataFrame, first: str, second: str) -> pd.Series:
    """Rows of a merged table whose throughput changed beyond the 95% interval of the change itself.

    In logs, the change against the two rows' half-widths on the sides
    that face each other, combined in quadrature: the interval of a
    difference of two independent estimates. Two 95% intervals that do
    not overlap is a far stricter test (Schenker & Gentleman, 2001).
    """
    change = np.log(both[f"throughput{second}"] / both[f"throughput{first}"])
    sides = {
        suffix: (
            np.log(both[f"throughput{suffix}"] / both[f"throughput_ci95_low{suffix}"]),
            np.log(both[f"throughput_ci95_high{suffix}"] / both[f"throughput{suffix}"]),
        )
        for suffix in (first, second)
    }
    (low_1, high_1), (low_2, high_2) = sides[first], sides[second]
    width = np.where(change < 0, np.hypot(low_1, high_2), np.hypot(high_1, low_2))
    return pd.Series(np.abs(change) > width, index=both.index)  # an open side (NaN, inf) is never apart


def compare(
    old: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.05, *, apart=significantly_apart, by_job: bool = True
) -> tuple[list[Change], int, int]:
    """Changes beyond the interval of the change, the machine's and the job's shifts and `threshold`;
    the rows compared; the noisy rows left out.

    `apart` and `by_job` let benchmarks/compare_power.py measure the rules
    this one replaced: `intervals_apart`, and the machine's shift alone.
    Only trusted rows compare: a `noisy` row was measured on a busy or slowed machine,
    and a change it shows may be the neighbour's.
    """
    shifts, jobs = machine_shifts(old, new), job_shifts(old, new) if by_job else {}
    both = old.merge(new, on=KEYS, suffixes=("_old", "_new"))
    noisy = int(((both["status_old"] == NOISY) | (both["status_new"] == NOISY)).sum())
    both = both[both["status_old"].isin(TRUSTED) & both["status_new"].isin(TRUSTED)]
    changes = []
    both = both.assign(apart=apart(both, "_old", "_new"))
    for _, row in both.iterrows():
        relative = row["throughput_new"] / row["throughput_old"] - 1.0
        shift = []
        if row["device"] == "cpu":
            shift = [*shifts.get(row["machine"], {}).values(), *jobs.get((row["machine"], row["model"]), {}).values()]
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
        f"compared {compared} rows; {len(changes)} changed beyond the 95% interval of the change "
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


def _moved(shifts: dict[str, float], least: float) -> list[str]:
    return [
        f"{drift.CANARIES[canary]} was {abs(shift):.1%} {'lower' if shift < 0 else 'higher'}"
        for canary, shift in shifts.items()
        if abs(shift) >= least
    ]


def shift_note(old: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.05) -> str | None:
    """What the machine itself did between the runs, by its canaries; then each timing job whose own
    canaries moved further than the machine's by more than `threshold`."""
    lines = []
    machines = machine_shifts(old, new)
    for machine, shifts in machines.items():
        if moved := _moved(shifts, 0.01):
            lines.append(
                f"  the machine's {' and its '.join(moved)} in NEW on {machine} (its drift canaries): a CPU "
                "row's change is judged against that shift, and one within it (and the threshold) is not flagged"
            )
    for (machine, model), shifts in job_shifts(old, new).items():
        level = machines.get(machine, {})
        apart = {c: shift for c, shift in shifts.items() if abs(shift - level.get(c, 0.0)) > threshold}
        if moved := _moved(apart, 0.0):
            lines.append(
                f"  {model}'s timing job on {machine}: its {' and its '.join(moved)} in NEW (the canaries "
                "timed beside its own processes): its rows are judged against that shift too"
            )
    return "\n".join(lines) or None


def run_compare(old: str, new: str, threshold: float) -> int:
    """Print the comparison; exit status 1 when anything got slower (for CI jobs)."""
    old_rows, new_rows = _throughput_csv(old), _throughput_csv(new)
    changes, compared, noisy = compare(old_rows, new_rows, threshold)
    print(report(changes, compared, threshold, noisy))
    shifted = shift_note(old_rows, new_rows, threshold)
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
