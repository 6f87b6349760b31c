"""Inside the serving process: the model behind a dynamic batcher, driven by MLPerf's LoadGen.

`dlmark.scenarios.serving` starts this process (a fresh one per target,
watched like every measurement) and turns what it returns into a record.
Here the model is built for the batch sizes the batcher runs (a batch
is padded to the next of them), with one input per size already on the
device (the sample library is held there);
every size is warmed up; then LoadGen runs the scenario against the
batcher, once for SingleStream, once for Offline (twice when its one
query ended early, `offline_runs`), several times for Server, whose
sustained rate is searched (`server_search`). The machine is
watched over each run. SingleStream's and Offline's call is also timed
bare just before and after each run (`direct_timing`): the same work
without the serving loop, in the same minute, so the row carries the
loop's overhead.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlmark import hardware, runtimes, variants
from dlmark.measure import interference, loadgen, timing
from dlmark.measure.batcher import BatcherSettings, DynamicBatcher
from dlmark.measure.child import limit_threads, log_progress
from dlmark.specs import Measured

# Server's search: the proof of its boundary is a run at this multiple of the sustained
# rate that LoadGen judged INVALID; the first rate tried is this share of Offline's.
PROOF_RATIO = 1.1
FIRST_SHARE = 0.5
# Offline's throughput is above any Server rate the batcher sustains, by a margin kept
# for the search's upper end (a rate there is tried, not assumed INVALID).
CEILING_SHARE = 1.05
# While nothing is VALID the search halves the rate, and a run lasts min_queries / rate:
# each halving doubles its length. Once halving leaves the p99 above the bound and at more
# than this share of the run before, the latency is no longer the load's: the bound lies
# below what the system gives at light load, and the search stops. (On a 2-core VM a bound
# of 3 x SingleStream's p99 went on to 9.8 queries/s, a 51 s run, with the p99 at 10.5-12.5 ms
# from 39 queries/s down: its next halving would have run 100 s.)
LIGHT_LOAD_SHARE = 0.9
# A p99 that keeps falling as the rate halves, yet stays above the bound, would go on doubling
# the run's length up to `max_runs` (500 queries from 50/s down to 0.4/s is 21 minutes of
# runs, past the target's timeout): the descent stops before LoadGen's time would pass this
# many times the first run's length (its 1 + 2 + 4 + 8 runs fit; one more halving does not).
DESCENT_FIRST_RUNS = 16
# Offline's expected rate is a throughput times this: LoadGen sizes its one query as
# 1.1 x the expected rate x the minimum duration, and a query that ends before the
# minimum is INVALID. The sweep's throughput sizes the first run; a run that still ended
# early (the sweep was measured in a slower minute: in one CI run the Offline query of
# the tiny config ended early) is asked again, sized from its own rate, up to
# OFFLINE_MAX_RUNS runs in all: a short query's rate counts the batcher's start, so it
# can fall short of the next, longer one's (in a CI run beside the other worker's tests,
# a first query at 1342 samples/s sized a second that ran at 1908 and ended early too).
OFFLINE_HEADROOM = 1.25
OFFLINE_MAX_RUNS = 3
TOO_SHORT = "minimum duration not met"
# The serving loop's overhead, measured in the row: Offline's and SingleStream's call timed
# bare, back to back as the sweep times it, for this share of the minimum duration just
# before and again just after each run (at most DIRECT_MAX_S a side). The sweep's own row
# was measured minutes earlier, and on a shared VM whose speed drifts that alone moved
# Offline against it by 3-8%; the bare blocks beside the run share its minute.
DIRECT_SHARE = 0.5
DIRECT_MAX_S = 30.0


@dataclass(frozen=True, kw_only=True)
class ServingSpec(Measured):
    """One serving target: a variant of a model on a device, in one LoadGen scenario."""

    scenario: str
    machine: str
    batcher: BatcherSettings
    min_duration_s: float
    min_queries: int
    official_length: bool
    budget: timing.Budget  # the config's measure block: how each batch size warms up
    noise: interference.NoisePolicy
    log_dir: str  # LoadGen's logs of every run, beside the raw JSON
    memory_limit_mb: float | None = None
    target_qps: float | None = None  # Offline: expected throughput; Server: Offline's measured one
    latency_bound_ms: float | None = None  # Server
    expected_latency_ms: float | None = None  # SingleStream
    max_runs: int = 8  # Server's search
    omp_wait_policy: str | None = None  # OMP_WAIT_POLICY in the serving process; None: the environment's


def run_settings(spec: ServingSpec, **given: Any) -> loadgen.RunSettings:
    return loadgen.RunSettings(
        scenario=spec.scenario, min_duration_s=spec.min_duration_s, min_queries=spec.min_queries,
        official_length=spec.official_length, latency_bound_ms=spec.latency_bound_ms,
        expected_latency_ms=spec.expected_latency_ms, **given,
    )


def server_search(
    run_at: Callable[[float], loadgen.RunResult], offline_qps: float, max_runs: int
) -> tuple[list[loadgen.RunResult], int | None, str]:
    """The largest Poisson rate LoadGen judges VALID, bracketed from Offline's throughput.

    Starts at FIRST_SHARE of it and halves while INVALID (until the
    latency is the system's own, or the runs would grow too long); once a rate is
    VALID, tries the geometric middle between it and the lowest INVALID
    rate (or CEILING_SHARE of Offline's while none is), until an INVALID
    rate lies within PROOF_RATIO of a VALID one: that pair is the proof.
    Returns every run, the index of the sustained one (None if none was
    VALID) and why the search stopped.
    """
    runs: list[loadgen.RunResult] = []
    valid: list[tuple[float, int]] = []
    invalid: list[tuple[float, int]] = []
    rate = FIRST_SHARE * offline_qps
    while len(runs) < max_runs:
        result = run_at(rate)
        runs.append(result)
        (valid if result.valid else invalid).append((rate, len(runs) - 1))
        lo = max(valid) if valid else None
        hi, proof = min(invalid) if invalid else (None, None)
        if lo and hi and hi <= PROOF_RATIO * lo[0] * (1 + 1e-9):
            said = f"{hi:.4g} queries/s (x{hi / lo[0]:.3f}) was INVALID"
            return runs, lo[1], said + _only_early_stopping(runs[proof])
        if lo is None:
            if floor := _light_load_floor(runs) or _descent_too_long(runs, hi / 2):
                return runs, None, floor
            rate = hi / 2
        else:
            upper = hi if hi is not None else max(CEILING_SHARE * offline_qps, PROOF_RATIO * lo[0])
            rate = max(math.sqrt(lo[0] * upper), PROOF_RATIO * lo[0]) if hi is None else math.sqrt(lo[0] * hi)
    lo = max(valid) if valid else None
    if lo is None:
        return runs, None, f"no rate down to {min(invalid)[0]:.4g} queries/s was VALID in {max_runs} runs"
    hi = min(invalid)[0] if invalid else None
    bracket = f"below {hi:.4g} (x{hi / lo[0]:.3f})" if hi else "no INVALID rate found"
    return runs, lo[1], f"stopped after {max_runs} runs: {bracket}"


def _only_early_stopping(run: loadgen.RunResult) -> str:
    """What the search's proof says when its INVALID run met the bound: ", by early stopping alone (...)".

    With a few hundred queries LoadGen's early stopping cannot vouch for a
    p99 once any query went over the bound, so such a run is INVALID with
    its p99 under it: the rate may hold in a longer run.
    """
    if loadgen.over_the_bound(run.reasons):
        return ""
    p99 = run.latency_ms.get("p99")
    within = f"its p99 of {p99:.3g} ms was within the bound" if p99 is not None else "its p99 was within the bound"
    return (f", by early stopping alone ({within}; from {run.queries} queries LoadGen could not vouch for it, "
            "so a longer run might hold the rate)")


def offline_runs(run_at: Callable[[float], loadgen.RunResult], expected_qps: float) -> list[loadgen.RunResult]:
    """Offline's runs: one sized from `expected_qps`, and another, sized from the last one's rate, while
    a query ended too soon (up to OFFLINE_MAX_RUNS)."""
    runs = [run_at(expected_qps)]
    while len(runs) < OFFLINE_MAX_RUNS:
        last = runs[-1]
        if last.valid or last.reasons != [TOO_SHORT] or not last.samples_per_second:
            break
        runs.append(run_at(OFFLINE_HEADROOM * last.samples_per_second))
    return runs


def direct_call_size(spec: ServingSpec) -> int | None:
    """The batch size timed bare beside the run, or None where no one loop is the same work.

    Offline runs full batches of the batcher's size, SingleStream batches
    of one; with more than one worker the batches overlap and no single
    loop of calls does what the batcher does.
    """
    if spec.batcher.workers != 1:
        return None
    return {"Offline": spec.batcher.max_batch_size, "SingleStream": 1}.get(spec.scenario)


def direct_timing(size: int, before: list[float], after: list[float]) -> dict[str, Any]:
    """What the bare blocks beside a run measured: images per second, the calls' p90, each side's rate."""
    def rate(samples: list[float]) -> float:
        return size * len(samples) / sum(samples)

    both = before + after
    return {
        "batch_size": size, "calls": len(both), "samples_per_second": rate(both),
        "latency_ms_p90": 1e3 * float(np.percentile(both, 90)),  # as the sweep's rows take it
        "before_samples_per_second": rate(before), "after_samples_per_second": rate(after),
    }


def _descent_too_long(runs: list[loadgen.RunResult], rate: float) -> str | None:
    """Why the next, slower run is not tried: with it, LoadGen's time would pass DESCENT_FIRST_RUNS first runs."""
    last = runs[-1]
    # A run lasts its minimum duration or its minimum queries at the rate, whichever is longer:
    # scaling the last run's length by the rate over-estimates it only where the duration ruled.
    expected = last.duration_s * last.settings["target_qps"] / rate
    spent = sum(r.duration_s for r in runs)
    budget = DESCENT_FIRST_RUNS * runs[0].duration_s
    if spent + expected <= budget:
        return None
    why = "; ".join(reason.split(":")[0] for reason in last.reasons) or "INVALID"  # LoadGen's, first clause
    return (
        f"no rate down to {last.settings['target_qps']:.4g} queries/s was VALID ({why}); "
        f"a run at {rate:.4g} queries/s would take about {expected:.3g} s, past {DESCENT_FIRST_RUNS} x the "
        f"first run's {runs[0].duration_s:.3g} s"
    )


def _light_load_floor(runs: list[loadgen.RunResult]) -> str | None:
    """Why halving the rate again is pointless, when the last halving left the p99 over the bound and about where it was."""
    if len(runs) < 2:
        return None
    before, last = runs[-2], runs[-1]
    bound = last.settings.get("latency_bound_ms")
    p99, earlier = last.latency_ms.get("p99"), before.latency_ms.get("p99")
    if bound is None or p99 is None or earlier is None or p99 <= bound or p99 < LIGHT_LOAD_SHARE * earlier:
        return None
    return (
        f"no rate was VALID: at {last.settings['target_qps']:.4g} queries/s, half the rate before, the p99 was "
        f"{p99:.3g} ms (from {earlier:.3g}), still above the {bound:.3g} ms bound: the bound lies below this "
        "system's latency at light load"
    )


def serve(spec: ServingSpec) -> dict[str, Any]:
    """Build the model, warm every batch size, then run the scenario through LoadGen (child side)."""
    if spec.omp_wait_policy:  # read once, when the framework's OpenMP starts: before `runtimes.get`
        os.environ["OMP_WAIT_POLICY"] = spec.omp_wait_policy
    limit_threads(spec.threads)
    began = time.monotonic()
    sizes = spec.batcher.padded_sizes()
    log_progress(f"{spec.model} on {spec.device}, {spec.runtime}/{spec.precision}, {spec.scenario}: "
                 f"building for batches of {', '.join(map(str, sizes))}")
    backend = runtimes.get(spec.runtime, spec.precision)
    calls = backend.batch_calls(variants.variant_of(spec), sizes, spec.device)
    for call in calls.values():
        timing.warm_up(call, spec.budget)
    return dict(run_scenario(spec, calls), process_seconds=time.monotonic() - began,
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))


def run_scenario(spec: ServingSpec, calls: dict[int, Callable[[], None]]) -> dict[str, Any]:
    """LoadGen's runs of the scenario against the batcher over `calls`, one per padded batch size."""
    # The serving process idles between requests by design: its CPU share says nothing.
    policy = dataclasses.replace(spec.noise, min_cpu_share=0.0)
    gpu = hardware.device_index(spec.device)
    watched: list[dict[str, Any]] = []
    direct: list[dict[str, Any] | None] = []
    size = direct_call_size(spec)
    seconds = min(DIRECT_SHARE * spec.min_duration_s, DIRECT_MAX_S)
    batches: list[dict[int, int]] = []
    errors: list[str] = []

    def run_at(qps: float | None) -> loadgen.RunResult:
        n = len(watched)
        batcher = DynamicBatcher(spec.batcher, lambda size: calls[spec.batcher.padded(size)](), loadgen.respond)
        try:
            with interference.Watch(spec.threads, policy, gpu) as watch:
                before = timing.time_block(calls[size], seconds) if size else []
                result = loadgen.run(run_settings(spec, target_qps=qps), batcher.submit, Path(spec.log_dir) / f"run{n}")
                after = timing.time_block(calls[size], seconds) if size else []
        finally:
            batcher.close()
        watched.append(watch.result.to_dict())
        direct.append(direct_timing(size, before, after) if size else None)
        batches.append(dict(sorted(batcher.batch_sizes.items())))
        if batcher.error:
            errors.append(batcher.error)
        log_progress(f"{spec.scenario}" + (f" at {qps:.4g} queries/s" if qps else "") +
                     f": {result.validity}, p99 {result.latency_ms.get('p99', float('nan')):.1f} ms")
        return result

    sustained: int | None = 0
    stopped = ""
    if spec.scenario == "Server":
        runs, sustained, stopped = server_search(run_at, spec.target_qps, spec.max_runs)
    elif spec.scenario == "Offline":
        runs = offline_runs(run_at, spec.target_qps)
        sustained = len(runs) - 1
        stopped = (f"the query ended early {sustained} time(s); each asked again at {OFFLINE_HEADROOM:g} x its rate"
                   if sustained else "")
    else:
        runs = [run_at(spec.target_qps)]
    return {
        "runs": [r.to_dict() for r in runs],
        "interference": watched,
        "direct": direct,
        "batch_sizes": batches,
        "sustained": sustained,
        "search": stopped,
        "batch_error": errors[0] if errors else None,
    }
