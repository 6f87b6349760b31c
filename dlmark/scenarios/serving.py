"""Serving scenarios: what a deployed classifier sustains, judged by MLPerf's LoadGen.

The throughput sweep answers "how fast is one call at batch b". Serving
answers what people who deploy ask, with MLPerf Inference's scenarios:
- SingleStream: one request at a time; its latency (MLPerf's metric: p90);
- Offline: every sample at once; samples per second, the batcher at the
  model's best batch size from the sweep;
- Server: Poisson arrivals; the largest rate whose p99 latency stays
  within a bound, searched over LoadGen runs.

Each target runs in a fresh, watched process (`serving_child.serve` inside
it), so a crash or an out-of-memory kill becomes a row, as a throughput
point's does. This module is the parent side: what each scenario is asked
(from the sweep's rows and the other scenarios' records), and the record
of how it ended.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable

from dlmark.measure import interference, launchers
from dlmark.measure.child import log_progress
from dlmark.results.records import ServingRecord
from dlmark.results.status import ERROR, INVALID, NOISY, OK, TRUSTED
from dlmark.scenarios.serving_child import PROOF_RATIO, ServingSpec, serve
from dlmark.specs import header


class NotServable(ValueError):
    """A scenario that cannot be asked yet (a record it needs failed); the message says which."""


def record(spec: ServingSpec, **fields: Any) -> ServingRecord:
    batcher = dict(max_batch_size=spec.batcher.max_batch_size, max_queue_delay_ms=1e3 * spec.batcher.max_queue_delay_s,
                   workers=spec.batcher.workers)
    return ServingRecord(
        **header(spec, spec.machine), scenario=spec.scenario, threads=spec.threads,
        official_length=spec.official_length, latency_bound_ms=spec.latency_bound_ms, settings=_settings(spec),
        **{"omp_wait_policy": spec.omp_wait_policy, **batcher, **fields},
    )


def _settings(spec: ServingSpec) -> dict[str, Any]:
    settings = asdict(spec)
    settings.pop("log_dir")  # where, not what: the same target measured elsewhere is the same
    return settings


def best_batch(rows: list[dict[str, Any]], batch_size: int | None = None) -> tuple[int, float]:
    """(batch size, throughput) for Offline: the sweep's fastest trusted row, or the one at `batch_size`."""
    trusted = [r for r in rows if r["status"] in TRUSTED and r.get("throughput")]
    if batch_size is not None:
        trusted = [r for r in trusted if r["batch_size"] == batch_size]
    if not trusted:
        at = f" at batch {batch_size}" if batch_size is not None else ""
        raise NotServable(f"no trusted throughput row{at} to size Offline from (the sweep's rows failed or are noisy)")
    row = max(trusted, key=lambda r: r["throughput"])
    return row["batch_size"], row["throughput"]


def server_bound(single_stream: dict[str, Any], factor: float, configured_ms: float | None) -> tuple[float, str]:
    """(bound on the p99 in ms, the rule that gave it): the config's, else `factor` x SingleStream's p99."""
    if configured_ms is not None:
        return configured_ms, "set in config (serving.latency_bound_ms)"
    if single_stream["status"] not in (*TRUSTED, NOISY) or not single_stream.get("latency_ms_p99"):
        raise NotServable(
            f"no latency bound: the SingleStream row is {single_stream['status']} (set serving.latency_bound_ms "
            "for this model, or remeasure SingleStream)"
        )
    p99 = single_stream["latency_ms_p99"]
    noisy = ", a noisy row" if single_stream["status"] == NOISY else ""
    return factor * p99, f"{factor:g} x SingleStream p99 ({p99:.2f} ms{noisy})"


def server_start(offline: dict[str, Any]) -> float:
    """Where Server's search starts: Offline's throughput, noisy or not (the search proves its own answer)."""
    if not offline.get("qps"):
        raise NotServable(f"no Offline throughput to start from: its row is {offline['status']}")
    return offline["qps"]


def timeout_s(spec: ServingSpec) -> float:
    """Generous: a hung run is killed and recorded, never waited on for ever."""
    per_run = (600 if spec.official_length else spec.min_duration_s) * 3 + 120
    return 300 + per_run * (spec.max_runs if spec.scenario == "Server" else 1)


def unserved(spec: ServingSpec, status: str, error: str, planned: bool = True) -> ServingRecord:
    """A complete record of a target that gave no result; `planned=False`: its batcher was never decided."""
    undecided = {} if planned else dict(max_batch_size=None, max_queue_delay_ms=None, workers=None)
    return record(spec, status=status, error=error, **undecided)


def measure(spec: ServingSpec, target: Callable[[ServingSpec], dict[str, Any]] = serve) -> ServingRecord:
    """Run one serving target in a fresh watched process and record how it ended.

    A run the rest of the machine disturbed waits for a quiet machine and is
    measured again, up to `noise.retries` times, as a throughput process is;
    one still disturbed is kept as `noisy`.
    """
    for retry in range(spec.noise.retries + 1):
        found = _measure_once(spec, target)
        if found.status != NOISY or retry == spec.noise.retries:
            return found
        log_progress(f"disturbed ({found.disturbance}); waiting for a quiet machine, then serving again")
        interference.wait_for_quiet(spec.noise, spec.threads, spec.noise.quiet_wait_seconds, log_progress)
    return found


def _measure_once(spec: ServingSpec, target: Callable[[ServingSpec], dict[str, Any]]) -> ServingRecord:
    outcome = launchers.run_isolated(
        target, spec, memory_limit_mb=spec.memory_limit_mb, timeout_s=timeout_s(spec)
    )
    if outcome.status != OK or outcome.value is None:
        return unserved(spec, outcome.status, outcome.error or "the serving process gave no result")
    value = outcome.value
    if value.get("batch_error"):
        return unserved(spec, ERROR, "a batch failed while serving: " + value["batch_error"])
    runs = [
        dict(run, interference=watch, batches=batches, direct=direct)
        for run, watch, batches, direct in zip(value["runs"], value["interference"], value["batch_sizes"], value["direct"])
    ]
    sustained = value["sustained"]
    reported = runs[sustained if sustained is not None else -1]
    disturbed = "; ".join(
        f"run {i}: {r['interference']['disturbed']}" for i, r in enumerate(runs) if r["interference"].get("disturbed")
    )
    proof = _proof(runs, reported) if spec.scenario == "Server" else None
    valid = sustained is not None and reported["validity"] == "VALID"
    status = (NOISY if disturbed else OK) if valid else INVALID
    latency = reported["latency_ms"]
    fields = dict(
        status=status,
        loadgen_result=reported["validity"],
        qps=_answer(spec, reported),
        samples_per_second=reported["samples_per_second"],
        latency_ms_p50=latency.get("p50"),
        latency_ms_p90=latency.get("p90"),
        latency_ms_p99=latency.get("p99"),
        duration_s=reported["duration_s"],
        queries=reported["queries"],
        loadgen_runs=len(runs),
        **_overhead(spec, reported),
        proof_qps=proof,
        search=value.get("search") or None,
        reasons="; ".join(reported["reasons"]) or None,
        disturbance=disturbed or None,
        runs=runs,
        omp_wait_policy=value.get("omp_wait_policy"),  # what the process ran with, set or inherited
    )
    log_progress(f"{spec.model} {spec.scenario}: {status}, {fields['qps'] or 0:.4g} queries/s")
    return record(spec, **fields)


def _overhead(spec: ServingSpec, run: dict[str, Any]) -> dict[str, float | None]:
    """The serving loop's cost against its call timed bare beside the run: Offline in rate, SingleStream in p90."""
    direct = run.get("direct")
    served = run["samples_per_second"] if spec.scenario == "Offline" else run["latency_ms"].get("p90")
    if not direct or not served:
        return {}
    if spec.scenario == "Offline":
        overhead = 1 - served / direct["samples_per_second"]
    else:
        overhead = served / direct["latency_ms_p90"] - 1
    return dict(direct_samples_per_second=direct["samples_per_second"], direct_latency_ms_p90=direct["latency_ms_p90"],
                loop_overhead_pct=100 * overhead)


def _answer(spec: ServingSpec, run: dict[str, Any]) -> float | None:
    """The scenario's answer: Server's scheduled rate; the others' completed samples (or queries) per second."""
    if spec.scenario == "Server":
        return run["settings"]["target_qps"]
    return run["samples_per_second"]


def _proof(runs: list[dict[str, Any]], reported: dict[str, Any]) -> float | None:
    """The lowest INVALID rate above the sustained one, if within the proof's ratio."""
    rate = reported["settings"]["target_qps"]
    above = [r["settings"]["target_qps"] for r in runs if r["validity"] != "VALID" and r["settings"]["target_qps"] > rate]
    return min(above) if above and min(above) <= PROOF_RATIO * rate * (1 + 1e-9) else None

