"""The largest batch size that fits a memory limit, in a handful of trials.

Memory of an inference pass grows almost linearly with the batch size
(weights and workspace once, activations per image), so two cheap trials
at small batches predict the boundary; trials at the prediction and one
step beyond it then prove it. Only when memory bends away from the line
does the search fall back to bracketing, and then it still guesses by
interpolation rather than halving.

Each trial runs in a child process of its own, forked from a warm process
that imported the framework once (`dlmark.measure.launchers.Forker`): MXNet
never returns memory after an allocation failure, and a trial killed for
going over the limit, by us or by the kernel, simply counts as "does not
fit".
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from dlmark import hardware, runtimes
from dlmark.measure import launchers
from dlmark.measure.child import log_progress
from dlmark.results.records import MaxBatchRecord
from dlmark.results.status import ERROR, OK, OUT_OF_MEMORY
from dlmark.scenarios.memory_trial import TrialSpec, preload_trial, run_trial
from dlmark.specs import Measured, header, identity


@dataclass
class Trial:
    batch_size: int
    fits: bool
    peak_memory_mb: float  # a lower bound only when the trial was stopped early
    seconds: float
    note: str | None = None
    complete: bool = True  # ran to the end, so its peak is the true peak
    baseline_mb: float | None = None  # memory before the first forward pass
    mapped_files_mb: float | None = None  # pages of mapped files beside the peak (CPU), not in it


@dataclass
class SearchResult:
    max_batch_size: int
    memory_limit_mb: float
    memory_at_max_mb: float | None
    trials: list[Trial] = field(default_factory=list)
    reached_upper_bound: bool = False
    method: str = "linear"


TrialFn = Callable[[int], Trial]


# On a CPU, a trial may run past the limit up to this factor before it is
# stopped: a trial that completes gives its true peak, which places the
# next guess far better than "somewhere above the limit" does.
CPU_OVERSHOOT = 1.5


def isolated_trial(
    measured: Measured,
    memory_limit_mb: float,
    target: Callable[[TrialSpec], dict[str, Any]] = run_trial,
    run: Callable[..., launchers.Outcome] = launchers.run_isolated,
) -> TrialFn:
    """A trial function that runs each batch size in a watched child process.

    `run` starts that process: afresh (`launchers.run_isolated`), or forked
    from a warm process (`launchers.Forker.run`, as a search does). Either
    way the child's own memory is the trial's: on a CPU its anonymous pages,
    the inherited ones included (`dlmark.measure.memory`); on a GPU the
    device memory it allocated.
    """

    on_cpu = measured.device == "cpu"

    def trial(batch_size: int) -> Trial:
        started = time.monotonic()
        outcome = run(
            target,
            TrialSpec(**identity(measured), batch_size=batch_size),
            memory_limit_mb=memory_limit_mb * CPU_OVERSHOOT if on_cpu else None,
        )
        seconds = time.monotonic() - started
        if outcome.status == OK and outcome.value is not None:
            peak = float(outcome.value["peak_memory_mb"])
            fits = peak <= memory_limit_mb
            baseline = outcome.value.get("baseline_mb")
            files = outcome.value.get("resident_set", {}).get("file_mb") if on_cpu else None
            return Trial(batch_size, fits, peak, seconds, None if fits else "over the limit", True, baseline, files)
        if outcome.status == OUT_OF_MEMORY:
            return Trial(batch_size, False, outcome.observed_peak_mb, seconds, outcome.error, False)
        raise RuntimeError(f"trial of {measured.model} at batch {batch_size} failed: {outcome.error}")

    return trial


def _line_crossing(a: Trial, b: Trial, limit: float) -> float | None:
    """Batch size where the line through trials a and b reaches `limit`."""
    if a.batch_size == b.batch_size:
        return None
    slope = (b.peak_memory_mb - a.peak_memory_mb) / (b.batch_size - a.batch_size)
    if slope <= 0:
        return None
    return a.batch_size + (limit - a.peak_memory_mb) / slope


def _next_guess(lo: Trial, below: Trial | None, hi: Trial | None, limit: float) -> float | None:
    """Where memory is predicted to reach `limit`, strictly between the fitting `lo` and failing `hi`.

    Once a trial failed with its true peak known, the line from `lo` to it
    brackets the limit, and its crossing lies between them. Before that,
    the line through the two largest fitting trials extrapolates (memory is
    close to linear in the batch size). A failed trial whose peak is not
    known (stopped as it crossed the limit) halves the bracket where the
    extrapolation reaches beyond it. Extrapolating again after a failure
    cost INT8 resnet18_v1, whose memory bends upward, a sixth trial: from 8
    and 61 it predicted 154.6 after 155 had failed, and 154 failed too.
    """
    if hi is not None and hi.complete and hi.peak_memory_mb > limit:
        return _line_crossing(lo, hi, limit)
    if below is None and lo.baseline_mb is not None:
        # One trial so far: the line from the memory before any forward pass.
        below = Trial(0, True, lo.baseline_mb, 0.0)
    guess = _line_crossing(below, lo, limit) if below is not None else None
    if hi is not None and (guess is None or guess >= hi.batch_size):
        guess = (lo.batch_size + hi.batch_size) / 2
    return guess


def _next_batch(
    lo_trial: Trial, below: Trial | None, hi_trial: Trial | None, memory_limit_mb: float, upper_bound: int, step: int
) -> int:
    """The next batch to try: the step nearest the line's crossing, strictly between lo and hi.

    The nearest step to the prediction, not the one below it: the pair that
    proves the boundary (B fits, B + step does not) is then found in two
    trials whenever the line is within a step of the true crossing,
    whichever side it errs on. If the line says lo is the answer, this
    tries lo + step, which settles it.
    """
    lo = lo_trial.batch_size
    guess = _next_guess(lo_trial, below, hi_trial, memory_limit_mb)
    if guess is None:  # no usable line yet: double
        guess = lo * 2
    ceiling = upper_bound if hi_trial is None else hi_trial.batch_size - 1
    steps = round((min(guess, ceiling) - lo) / step)
    return lo + min(max(1, steps), (ceiling - lo) // step) * step


def find_max_batch(
    trial: TrialFn,
    memory_limit_mb: float,
    *,
    upper_bound: int,
    probe: int,
    step: int,
    log: Callable[[str], None] = lambda _: None,
) -> SearchResult:
    """Largest batch B with trial(B) fitting and trial(B+step) not (or B = upper bound).

    Batch sizes above 1 are tried in multiples of `step` above the last
    fitting one, so the answer is exact to `step` images.

    Invariant: the trial `lo` fits, the trial `hi` does not (None while
    unknown). The small `probe` batch comes first: with the memory its
    process held before the first forward pass, it gives the line. If the
    probe does not fit, batch 1 is tried (if that fails too, the answer is
    0). Each next batch is the predicted boundary, clamped strictly inside
    (lo, hi).
    """
    result = SearchResult(0, memory_limit_mb, None)

    def attempt(batch: int) -> Trial:
        t = trial(batch)
        result.trials.append(t)
        log(
            f"trial {len(result.trials)}: batch {batch} "
            f"{'fits' if t.fits else 'does not fit'} (peak {t.peak_memory_mb:.0f} MiB, {t.seconds:.1f} s)"
        )
        return t

    def nothing_fits() -> SearchResult:
        log(f"batch 1 needs more than the limit of {memory_limit_mb:.0f} MiB: max batch size 0")
        return result

    probe = min(max(probe, 1), upper_bound)
    first = attempt(probe)
    hi_trial: Trial | None = None
    if first.fits:
        lo_trial = first
    else:
        hi_trial = first
        if probe == 1:
            return nothing_fits()
        lo_trial = attempt(1)
        if not lo_trial.fits:
            return nothing_fits()
    below: Trial | None = None
    while True:
        lo = lo_trial.batch_size
        hi = None if hi_trial is None else hi_trial.batch_size
        if lo + step > upper_bound or (hi is not None and hi <= lo + step):
            break
        t = attempt(_next_batch(lo_trial, below, hi_trial, memory_limit_mb, upper_bound, step))
        if t.fits:
            below, lo_trial = lo_trial, t
        else:
            hi_trial = t
    lo = lo_trial.batch_size
    hi = None if hi_trial is None else hi_trial.batch_size
    result.max_batch_size = lo
    result.reached_upper_bound = hi is None
    result.memory_at_max_mb = lo_trial.peak_memory_mb
    return result


@dataclass(frozen=True, kw_only=True)
class SearchSpec(Measured):
    machine: str
    memory_limit_mb: float | None  # None on a GPU: its memory less the margin
    # The config's max_batch block (its defaults live in the schema only).
    upper_bound: int
    probe: int
    step: int
    gpu_memory_margin_mb: float


def memory_limit_for(spec: SearchSpec) -> float:
    """The limit the search works against, on a CPU (config) or a GPU (NVML)."""
    if spec.device == "cpu":
        if spec.memory_limit_mb is None:
            raise ValueError("a CPU search needs cpu_memory_limit_mb from the config")
        return spec.memory_limit_mb
    index = hardware.device_index(spec.device)
    total = hardware.gpu_total_memory_mb(index)
    return total - spec.gpu_memory_margin_mb


def run_search(spec: SearchSpec, trial: TrialFn | None = None) -> MaxBatchRecord:
    """Search and return a complete record, also when a trial crashes."""
    limit = memory_limit_for(spec)
    log_progress(f"{spec.model} on {spec.device}: largest batch within {limit:.0f} MiB (up to {spec.upper_bound})")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            if trial is None:
                # Trials fork from one warm process that imported the framework
                # and never built a network nor touched a GPU.
                warm = TrialSpec(**identity(spec), batch_size=1)
                run = stack.enter_context(launchers.Forker(preload_trial, warm)).run
                trial = isolated_trial(spec.measured(), limit, run=run)
            result = find_max_batch(
                trial, limit, upper_bound=spec.upper_bound, probe=spec.probe, step=spec.step, log=log_progress
            )
            status, error = OK, None
        except RuntimeError as exc:
            result, status, error = SearchResult(0, limit, None), ERROR, str(exc)
    log_progress(f"{spec.model}: max batch size {result.max_batch_size} after {len(result.trials)} trials")
    return MaxBatchRecord(
        **header(spec, spec.machine),
        status=status,
        error=error,
        max_batch_size=result.max_batch_size,
        memory_limit_mb=limit,
        memory_at_max_mb=result.memory_at_max_mb,
        trials=len(result.trials),
        search_seconds=time.monotonic() - started,
        reached_upper_bound=result.reached_upper_bound,
        step=spec.step,
        method=result.method,
        memory_note=runtimes.get(spec.runtime, spec.precision).memory_note if spec.device == "cpu" else None,
        trial_log=[asdict(t) for t in result.trials],
        settings=asdict(spec),
    )
