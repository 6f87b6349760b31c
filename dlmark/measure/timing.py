"""Timing one synchronised call over and over, and deciding when to stop.

A benchmark is only as good as its stopping rule. A fixed number of calls
either wastes time on a stable model or stops too early on a noisy one, so
dlmark repeats until the 95% confidence interval of the mean latency is as
narrow as asked, within a time budget, and says how wide it really was.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

# A call slower than the budget allows still gets `min_iterations` calls,
# up to this many times `max_seconds`; past that the row says so.
MAX_BUDGET_EXTENSION = 10.0


@dataclass(frozen=True)
class Budget:
    """How long to warm up and measure, and in how many processes.

    The config's `measure` block, with the schema's defaults filled in
    (schemas/config.schema.yaml is the one place defaults are written).
    """

    warmup_min_seconds: float
    warmup_max_seconds: float
    warmup_tolerance: float
    min_seconds: float
    max_seconds: float
    min_iterations: int
    target_rel_ci: float
    min_processes: int
    max_processes: int

    def __post_init__(self) -> None:
        if self.min_seconds > self.max_seconds:
            raise ValueError(
                f"measure.min_seconds ({self.min_seconds}) exceeds "
                f"measure.max_seconds ({self.max_seconds}); make min <= max"
            )
        if self.warmup_min_seconds > self.warmup_max_seconds:
            raise ValueError(
                "measure.warmup_min_seconds exceeds measure.warmup_max_seconds; make min <= max"
            )
        if self.min_iterations < 2:
            raise ValueError("measure.min_iterations must be at least 2 for a confidence interval")
        if self.min_processes < 2:
            raise ValueError(
                "measure.min_processes must be at least 2: process-to-process variation is part of "
                "the measurement"
            )
        if self.min_processes > self.max_processes:
            raise ValueError(
                f"measure.min_processes ({self.min_processes}) exceeds measure.max_processes "
                f"({self.max_processes}); make min <= max"
            )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Summary:
    """Statistics of the timed calls of one benchmark point."""

    iterations: int
    measure_seconds: float
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_ci95_halfwidth: float
    throughput: float
    throughput_ci95_low: float
    throughput_ci95_high: float
    rel_ci95: float
    converged: bool
    warmup_iterations: int
    warmup_seconds: float
    budget_note: str | None = None  # why fewer calls or more time than the budget says
    latencies_ms: list[float] = field(repr=False, default_factory=list)


def mean_ci95(samples: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (Student's t).

    Student's t rather than the normal quantile because the early stopping
    checks happen at small sample sizes where 1.96 would be optimistic.
    """
    n = len(samples)
    if n == 0:
        raise ValueError("no samples")
    mean = float(np.mean(samples))
    if n == 1:
        return mean, math.inf
    sem = float(np.std(samples, ddof=1)) / math.sqrt(n)
    return mean, t_quantile_975(n - 1) * sem


@lru_cache(maxsize=4096)
def t_quantile_975(dof: int) -> float:
    """Student's t 97.5% quantile; cached, as the stopping rule asks after every call."""
    from scipy import stats  # imported on first use: it costs the job's parent 0.3 s

    return float(stats.t.ppf(0.975, dof))


def is_precise_enough(samples: Sequence[float], target_rel_ci: float) -> bool:
    """True once the 95% CI half-width is within `target_rel_ci` of the mean."""
    if len(samples) < 2:
        return False
    mean, half = mean_ci95(samples)
    return mean > 0 and half / mean <= target_rel_ci


def is_warm(recent_s: Sequence[float], tolerance: float, window: int = 3) -> bool:
    """True when the last `window` calls agree within `tolerance`.

    First calls pay for graph building, memory-pool growth and kernel
    selection; they are much slower than later ones and their costs vanish
    at different calls for different runtimes. Waiting for a few calls in a
    row to agree removes them without guessing a fixed count.
    """
    if len(recent_s) < window:
        return False
    last = recent_s[-window:]
    return max(last) <= (1.0 + tolerance) * min(last)


def summarize(
    latencies_s: Sequence[float],
    batch_size: int,
    target_rel_ci: float,
    warmup_iterations: int = 0,
    warmup_seconds: float = 0.0,
) -> Summary:
    """Latency percentiles and throughput with its confidence interval.

    Throughput is images per second of the mean call, batch / mean latency,
    so its interval is the latency interval mapped through that function.
    """
    lat = np.asarray(latencies_s, dtype=float)
    mean, half = mean_ci95(lat)
    p50, p90, p99 = np.percentile(lat, [50, 90, 99])
    low_lat = mean + half
    high_lat = mean - half
    throughput = batch_size / mean
    return Summary(
        iterations=int(lat.size),
        measure_seconds=float(lat.sum()),
        latency_ms_mean=mean * 1e3,
        latency_ms_p50=float(p50) * 1e3,
        latency_ms_p90=float(p90) * 1e3,
        latency_ms_p99=float(p99) * 1e3,
        latency_ms_ci95_halfwidth=half * 1e3,
        throughput=throughput,
        throughput_ci95_low=batch_size / low_lat if math.isfinite(low_lat) else 0.0,
        throughput_ci95_high=batch_size / high_lat if high_lat > 0 else math.inf,
        rel_ci95=half / mean if mean > 0 else math.inf,
        converged=bool(half / mean <= target_rel_ci) if mean > 0 else False,
        warmup_iterations=warmup_iterations,
        warmup_seconds=warmup_seconds,
        latencies_ms=[float(x) * 1e3 for x in lat],
    )


MIN_WARMUP_CALLS = 2


def warm_up(
    call: Callable[[], None], budget: Budget, clock: Callable[[], int] = time.perf_counter_ns
) -> tuple[int, float]:
    """Call until three calls in a row agree (or the cap): (calls, seconds).

    The first call pays one-time costs (kernel selection, allocator
    growth): it alone says nothing of the next, so the cap ends a warm-up
    only after a second call.
    """
    warm: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        call()
        warm.append((clock() - t0) / 1e9)
        elapsed = (clock() - start) / 1e9
        if elapsed >= budget.warmup_max_seconds and len(warm) >= MIN_WARMUP_CALLS:
            break
        if elapsed >= budget.warmup_min_seconds and is_warm(warm, budget.warmup_tolerance):
            break
    return len(warm), (clock() - start) / 1e9


def enough(samples: Sequence[float], budget: Budget) -> bool:
    """The stopping rule: the CI target after the minimums, else the budget (see `time_calls`)."""
    elapsed = float(sum(samples))
    if elapsed >= budget.max_seconds * MAX_BUDGET_EXTENSION:
        return True
    if len(samples) < budget.min_iterations:
        return False
    return elapsed >= budget.max_seconds or (
        elapsed >= budget.min_seconds and is_precise_enough(samples, budget.target_rel_ci)
    )


def time_block(
    call: Callable[[], None], seconds: float, clock: Callable[[], int] = time.perf_counter_ns, rewarm: bool = True
) -> list[float]:
    """An untimed call (with `rewarm`), then timed calls for about `seconds`, at least one: latencies in seconds.

    The untimed call lets a point that waited while others ran refill its
    caches and wake its threads before the clock runs again.
    """
    if rewarm:
        call()
    samples: list[float] = []
    start = clock()
    while not samples or (clock() - start) / 1e9 < seconds:
        t0 = clock()
        call()
        samples.append((clock() - t0) / 1e9)
    return samples


def note_budget(summary: Summary, budget: Budget) -> None:
    """Say in the summary why it has fewer calls or more time than the budget."""
    if summary.iterations < budget.min_iterations:
        summary.budget_note = (
            f"only {summary.iterations} of {budget.min_iterations} calls in "
            f"{MAX_BUDGET_EXTENSION:g}x max_seconds: calls are too slow for this budget"
        )
    elif summary.measure_seconds > budget.max_seconds * 1.05:
        summary.budget_note = f"budget extended to {summary.measure_seconds:.1f} s to reach {budget.min_iterations} calls"


def time_calls(
    call: Callable[[], None],
    batch_size: int,
    budget: Budget,
    clock: Callable[[], int] = time.perf_counter_ns,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Warm up, then time `call` until the CI target or the budget is reached.

    `call` must block until the device has finished (the caller wraps the
    forward pass with its synchronisation), so each sample is one complete
    inference. Wall-clock budgets are measured from the same clock.
    """
    warm_calls, warmup_seconds = warm_up(call, budget, clock)
    if progress:
        progress(f"warm-up: {warm_calls} calls in {warmup_seconds:.2f} s")
    samples: list[float] = []
    next_report = 5.0
    while not enough(samples, budget):
        t0 = clock()
        call()
        samples.append((clock() - t0) / 1e9)
        elapsed = float(sum(samples))
        if progress and elapsed >= next_report:
            mean, half = mean_ci95(samples)
            progress(f"measuring: {len(samples)} calls, {elapsed:.1f} s, ci95 +/-{half / mean:.1%}")
            next_report += 5.0
    summary = summarize(samples, batch_size, budget.target_rel_ci, warm_calls, warmup_seconds)
    note_budget(summary, budget)
    if progress:
        progress(
            f"measured: {summary.iterations} calls in {summary.measure_seconds:.2f} s, "
            f"{summary.throughput:.2f} img/s, ci95 +/-{summary.rel_ci95:.1%}"
            + ("" if summary.converged else " (budget spent before the CI target)")
        )
    return summary


@dataclass
class Combined:
    """One point's numbers from several processes' summaries.

    Process-to-process variation (memory layout, allocator state, clock
    frequency) is often larger than the variation between calls in one
    process, so the interval comes from the processes' mean latencies
    (Student's t over processes), widened to the calls' own interval if
    that is wider. Latency percentiles pool every call.
    """

    throughput: float
    throughput_ci95_low: float
    throughput_ci95_high: float
    rel_ci95: float
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    iterations: int
    measure_seconds: float
    warmup_seconds: float
    converged: bool
    processes: int


def process_spread(summaries: Sequence[Summary]) -> float:
    """Relative range of the processes' throughputs: (max - min) / mean."""
    values = [s.throughput for s in summaries]
    return (max(values) - min(values)) / float(np.mean(values))


def combine(summaries: Sequence[Summary], batch_size: int, target_rel_ci: float) -> Combined:
    """Throughput and its 95% interval across processes (see `Combined`)."""
    means = [s.latency_ms_mean / 1e3 for s in summaries]
    mean = float(np.mean(means))
    k = len(means)
    between = mean_ci95(means)[1] if k > 1 else math.inf
    within = math.sqrt(sum((s.latency_ms_ci95_halfwidth / 1e3) ** 2 for s in summaries)) / k
    half = max(between, within) if k > 1 else within
    pooled = np.concatenate([np.asarray(s.latencies_ms, dtype=float) for s in summaries])
    p50, p90, p99 = np.percentile(pooled, [50, 90, 99]) if pooled.size else (math.nan,) * 3
    low_lat, high_lat = mean + half, mean - half
    rel = half / mean if mean > 0 else math.inf
    return Combined(
        throughput=batch_size / mean,
        throughput_ci95_low=batch_size / low_lat if math.isfinite(low_lat) else 0.0,
        throughput_ci95_high=batch_size / high_lat if high_lat > 0 else math.inf,
        rel_ci95=rel,
        latency_ms_mean=mean * 1e3,
        latency_ms_p50=float(p50),
        latency_ms_p90=float(p90),
        latency_ms_p99=float(p99),
        iterations=sum(s.iterations for s in summaries),
        measure_seconds=sum(s.measure_seconds for s in summaries),
        warmup_seconds=sum(s.warmup_seconds for s in summaries),
        # Each process reached its own target, and they agree within it.
        converged=all(s.converged for s in summaries) and process_spread(summaries) <= target_rel_ci,
        processes=k,
    )
