"""The machine's own drift over a run, and what it does to a row's interval.

A point's processes run within seconds of each other, so their spread says
nothing of slower changes of the machine itself. On a shared VM the host's
other tenants take memory bandwidth and cache for minutes at a time; no
counter inside the VM shows it (steal stays 0; docs/methodology.md, "The
machine's own drift", has what was measured).

So before every measuring process on a CPU, its parent times a fixed canary: copying
a buffer larger than any cache, which the same neighbours slow. (In the
parent, between processes: its buffers must not count in the child's
memory, and it must not run while the child is timed.) Over one machine's
rows the canary's spread estimates the drift, and `with_machine_drift`
widens each row's interval by it when the table is made: the interval then
says what measuring again at another time would give, not only what the
processes of one moment agreed on. The raw files keep the processes'
interval; `machine_speed` shows where in the drift each row was measured.

Beside it the parent times a second canary, of the core rather than of
memory: a matrix product small enough to stay in cache, on one thread. A
machine can get faster or slower in its cores while its memory bandwidth
stays put (a 2-core AMD VM whose copy canary read 47.7% higher four hours
later ran compute-bound models 54 to 90% faster: docs/validation.md), so
`dlmark compare` judges a row's change against both canaries' shifts.
Within a run, a timing job whose core canary read below SLOW_MACHINE of
the machine's level makes its rows noisy as the memory canary's does: on
that AMD VM, the five of 43 jobs that read 0.74 to 0.84 all ran slower
than the same model's median over ten runs (4.9 to 18.7%), while their
memory canary read normal.
"""

from __future__ import annotations

import functools
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from dlmark.results.status import NOISY, OK

if TYPE_CHECKING:
    import pandas as pd

CANARY_MB = 64  # larger than the last-level cache of the CPUs this runs on
# A row whose canary (either one) read below this share of its machine's median was measured on
# a slowed machine (chosen from five default runs for the copy canary, checked on 43 timing jobs
# for the core canary: docs/validation.md).
SLOW_MACHINE = 0.85
CANARY_SECONDS = 0.1
COMPUTE_N = 128  # three 64 KiB matrices: in any core's L2, so the product times the core, not memory
# The two canaries' columns in the records.
BANDWIDTH = "memory_bandwidth_gbs"
COMPUTE = "compute_gflops"
CANARIES = {BANDWIDTH: "memory bandwidth", COMPUTE: "core speed (a cache-resident matrix product)"}
MIN_ROWS = 8  # fewer rows on a machine give no estimate of its drift
MIN_JOBS = 3  # fewer timing jobs give no level of the core canary to judge one of them against
Z95 = 1.959964


@functools.cache
def _buffers() -> tuple[np.ndarray, np.ndarray]:
    """Kept for the life of the process: paging 128 MiB in again would cost more than the canary."""
    source = np.ones(CANARY_MB * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)
    return source, target


def memory_bandwidth_gbs(seconds: float = CANARY_SECONDS) -> float:
    """Copy bandwidth (GB/s read + written) of one thread, median over `seconds` of copies."""
    source, target = _buffers()
    rates = []
    started = time.perf_counter()
    while len(rates) < 3 or time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        np.copyto(target, source)
        rates.append(2 * source.nbytes / (time.perf_counter() - t0) / 1e9)
    return float(np.median(rates))


@functools.cache
def _matrices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.random.default_rng(0).random((COMPUTE_N, COMPUTE_N), dtype=np.float32)
    return a, a.T.copy(), np.empty_like(a)


def compute_gflops(seconds: float = CANARY_SECONDS) -> float:
    """Matrix-product rate (GFLOP/s) of one core on cache-resident float32, median over `seconds`.

    One BLAS thread: by default the library splits a product over threads by
    its size and the core count, and waking them costs more than a small
    product (on a 2-core AMD VM a 64-wide one read 28 GFLOP/s on the default
    threads against 41 on one). One thread times a core the same way on
    every machine and every run.
    """
    from threadpoolctl import threadpool_limits  # here: GPU nodes never time this canary

    a, b, out = _matrices()
    rates = []
    with threadpool_limits(limits=1, user_api="blas"):
        started = time.perf_counter()
        while len(rates) < 3 or time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            rates.append(2 * COMPUTE_N**3 / (time.perf_counter() - t0) / 1e9)
    return float(np.median(rates))


def median_bandwidth(readings: list[float | None]) -> float | None:
    """A row's canary: the median of its processes' readings (none on a GPU)."""
    values = [r for r in readings if r is not None]
    return float(np.median(values)) if values else None


def job_readings(rows: "pd.DataFrame", column: str = BANDWIDTH) -> "pd.Series":
    """The canary once per timing job: a job's rows share its processes' readings (one model's
    points are timed together), so counted per row, one model with many variants and batches
    would outvote the rest, and where the canary swings from job to job, its reading would
    decide which models look slowed (docs/validation.md has the run where it did)."""
    if column not in rows:  # a table from before that canary
        import pandas as pd

        return pd.Series(dtype=float)
    readings = rows.dropna(subset=[column])
    return readings.drop_duplicates(["model", column])[column].astype(float)


def machine_level(rows: "pd.DataFrame", column: str = BANDWIDTH) -> float | None:
    """A machine's typical canary (either one, by column): the median over its timing jobs."""
    readings = job_readings(rows, column)
    return float(readings.median()) if len(readings) else None


def drift_of(bandwidths: "pd.Series") -> tuple[float, float] | None:
    """(median bandwidth, relative drift as a robust standard deviation), or None with too few rows."""
    values = np.log(bandwidths.dropna().to_numpy(dtype=float))
    if values.size < MIN_ROWS:
        return None
    center = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - center)))  # MAD: a few outliers do not inflate it
    return math.exp(center), sigma


def with_machine_drift(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Fill machine_speed and machine_drift of CPU rows, widen their intervals, mark slowed rows.

    Per machine, over its CPU rows: machine_speed is a row's canary over the
    machine's level (`machine_level`, the median over its timing jobs),
    machine_drift the canary's relative spread over its rows. Each side of
    the interval becomes sqrt(side^2 + (1.96 * drift)^2), relative to the
    throughput; an open side stays open. An ok row measured while either
    canary read below SLOW_MACHINE of its level (the core canary's once the
    machine has MIN_JOBS timing jobs) becomes noisy: the machine was slowed
    in a way its CPU counters do not show. GPU rows are left as measured:
    the canaries time the host, not the GPU.
    """
    frame = frame.copy()
    for column in ("machine_speed", "machine_drift"):
        frame[column] = frame[column].astype(float)
    for _, rows in frame[frame["device"] == "cpu"].groupby("machine"):
        if (estimate := drift_of(rows[BANDWIDTH])) is not None:
            _widen_and_mark(frame, rows, estimate[1])
        cores = job_readings(rows, COMPUTE)
        if len(cores) >= MIN_JOBS:
            speed = rows[COMPUTE].astype(float) / float(cores.median())
            _mark_slowed(frame, rows.index, speed, "cores ran at {:.2f} of their", len(cores))
    return frame


def _widen_and_mark(frame: "pd.DataFrame", rows: "pd.DataFrame", sigma: float) -> None:
    """One machine's rows: machine_speed and machine_drift from the copy canary, intervals widened, slowed rows marked."""
    jobs = job_readings(rows)  # never empty here: drift_of found readings
    index = rows.index
    frame.loc[index, "machine_speed"] = rows[BANDWIDTH].astype(float) / float(jobs.median())
    frame.loc[index, "machine_drift"] = sigma
    throughput = rows["throughput"].astype(float)
    low = (1 - rows["throughput_ci95_low"].astype(float) / throughput).clip(lower=0)
    high = (rows["throughput_ci95_high"].astype(float) / throughput - 1).clip(lower=0)
    extra = (Z95 * sigma) ** 2
    frame.loc[index, "throughput_ci95_low"] = throughput * (1 - np.sqrt(low**2 + extra)).clip(lower=0)
    frame.loc[index, "throughput_ci95_high"] = throughput * (1 + np.sqrt(high**2 + extra))
    _mark_slowed(frame, index, frame.loc[index, "machine_speed"], "memory bandwidth was {:.2f} of its", len(jobs))


def _mark_slowed(frame: "pd.DataFrame", index: "pd.Index", speed: "pd.Series", said: str, jobs: int) -> None:
    """Make noisy the ok rows of `index` whose canary (`speed`, over its level) read below SLOW_MACHINE.

    `said` words the reading, "memory bandwidth was {:.2f} of its": the
    disturbance names the canary that saw it.
    """
    slowed = index[(frame.loc[index, "status"] == OK).to_numpy() & (speed < SLOW_MACHINE).to_numpy()]
    frame.loc[slowed, "status"] = NOISY
    frame.loc[slowed, "disturbance"] = [
        f"measured while the machine's {said.format(speed[i])} median over {jobs} timing jobs "
        f"(slowed from outside, e.g. by the host's other tenants)"
        for i in slowed
    ]
