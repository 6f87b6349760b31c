"""One MLPerf LoadGen run: settings in, LoadGen's own verdict and statistics out.

LoadGen (MLCommons' `mlperf_loadgen`, the load generator of MLPerf
Inference) issues the queries of a scenario, times every one from issue to
answer, and judges the run VALID or INVALID. dlmark does neither itself:
it hands LoadGen a system under test (a function that takes queries and
answers them later) and reads the verdict back from LoadGen's detail log,
reasons included.

Two pitfalls shape this module:
- a file `audit.config` in the working directory overrides the settings
  (MLPerf's compliance tests use it), so every run writes its logs into a
  fresh empty folder and runs there;
- `TestSettings.FromConfig` loads MLPerf's own `mlperf.conf` (600 s
  minimums), so at official length it is called first and dlmark's own
  targets are set after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

SCENARIOS = ("SingleStream", "Offline", "Server")
# MLPerf's metric percentile of each scenario's latency (Offline has none).
METRIC_PERCENTILE = {"SingleStream": 90, "Server": 99}
OFFICIAL_MODEL = "resnet50"  # whose rules in mlperf.conf the official length follows
LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
_PERCENTILES = {"50": "p50", "90": "p90", "99": "p99"}


@dataclass(frozen=True)
class RunSettings:
    """What one LoadGen run is asked to do.

    `target_qps` is Server's Poisson arrival rate and Offline's expected
    throughput (LoadGen sizes Offline's one query as 1.1 x that x the
    minimum duration, so it must not be below the real throughput).
    """

    scenario: str
    min_duration_s: float
    min_queries: int
    official_length: bool = False
    target_qps: float | None = None
    latency_bound_ms: float | None = None  # Server's bound on its p99
    expected_latency_ms: float | None = None  # SingleStream's guess, which sizes its query schedule
    samples: int = 1024  # the sample library's size (its performance sample count)
    seed: int = 0


@dataclass(frozen=True)
class RunResult:
    """LoadGen's verdict on one run, from its detail log."""

    scenario: str
    validity: str  # "VALID" or "INVALID"
    samples_per_second: float | None  # Offline/Server: completed; SingleStream: 1 / mean latency
    scheduled_qps: float | None  # Server: the Poisson rate LoadGen issued at
    latency_ms: dict[str, float]  # p50, p90, p99, mean, max: LoadGen's, issue to answer
    queries: int
    duration_s: float
    reasons: list[str]  # why INVALID: LoadGen's own words; empty when VALID
    settings: dict[str, Any]  # RunSettings as asked
    effective: dict[str, Any] = field(default_factory=dict)  # LoadGen's effective_* settings

    @property
    def valid(self) -> bool:
        return self.validity == "VALID"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def test_settings(settings: RunSettings) -> Any:
    """LoadGen's TestSettings for `settings`: MLPerf's own minimums first at official length."""
    import mlperf_loadgen as lg

    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, settings.scenario)
    ts.mode = lg.TestMode.PerformanceOnly
    if settings.official_length:
        # conf_type 0: MLPerf's built-in mlperf.conf only (no user.conf).
        if ts.FromConfig("", OFFICIAL_MODEL, settings.scenario, 0) != 0:
            raise RuntimeError(f"LoadGen could not load mlperf.conf for {OFFICIAL_MODEL}/{settings.scenario}")
    else:
        ts.min_duration_ms = int(settings.min_duration_s * 1000)
        ts.min_query_count = settings.min_queries
    ts.qsl_rng_seed = ts.sample_index_rng_seed = ts.schedule_rng_seed = settings.seed
    if settings.scenario == "Server":
        ts.server_target_qps = float(settings.target_qps)
        ts.server_target_latency_ns = int(settings.latency_bound_ms * 1e6)
        ts.server_target_latency_percentile = METRIC_PERCENTILE["Server"] / 100
    elif settings.scenario == "Offline":
        ts.offline_expected_qps = float(settings.target_qps)
    else:
        ts.single_stream_expected_latency_ns = int((settings.expected_latency_ms or 1.0) * 1e6)
    return ts


def run(settings: RunSettings, issue: Callable[[list[int]], None], log_dir: str | Path) -> RunResult:
    """One LoadGen run against a system under test; its logs are kept in `log_dir`.

    `issue(ids)` takes the ids of a query's samples and must return at
    once; the system under test answers each later through `respond`.
    """
    import mlperf_loadgen as lg

    log_dir = Path(log_dir).resolve()  # the run changes into a clean folder
    ts = test_settings(settings)
    sut = lg.ConstructSUT(lambda samples: issue([s.id for s in samples]), lambda: None)
    qsl = lg.ConstructQSL(settings.samples, settings.samples, lambda indices: None, lambda indices: None)
    try:
        with tempfile.TemporaryDirectory(prefix="dlmark-loadgen-") as clean, _working_directory(clean):
            log_settings = lg.LogSettings()
            log_settings.log_output.outdir = clean
            log_settings.log_output.copy_summary_to_stdout = False
            began = time.monotonic()
            lg.StartTestWithLogSettings(sut, qsl, ts, log_settings)
            duration = time.monotonic() - began
            log_dir.mkdir(parents=True, exist_ok=True)
            for name in LOG_FILES:
                os.replace(Path(clean) / name, log_dir / name)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    return read_result(log_dir / "mlperf_log_detail.txt", settings, duration)


def respond(ids: list[int]) -> None:
    """Tell LoadGen these samples are answered (performance runs carry no data)."""
    import mlperf_loadgen as lg

    lg.QuerySamplesComplete([lg.QuerySampleResponse(i, 0, 0) for i in ids])


@contextlib.contextmanager
def _working_directory(path: str):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def detail_values(path: str | Path) -> dict[str, Any]:
    """Every key LoadGen logged in its detail log, the last value of each (`:::MLLOG {json}` lines)."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            entry = json.loads(line[len(":::MLLOG "):])
        except json.JSONDecodeError:
            continue
        values[entry.get("key")] = entry.get("value")
        if entry.get("metadata", {}).get("is_error"):
            errors.append(f"{entry.get('key')}: {entry.get('value')}")
    values["_errors"] = errors
    return values


# How `_reasons` words a p99 over the bound; any other reason of a Server run is early stopping's or a count's.
OVER_THE_BOUND = "latency constraint not met"


def over_the_bound(reasons: list[str]) -> bool:
    """Whether LoadGen's reasons for an INVALID run include the latency itself, not only early stopping."""
    return any(r.startswith(OVER_THE_BOUND) for r in reasons)


def _reasons(values: dict[str, Any]) -> list[str]:
    """Why LoadGen judged a run INVALID, in its own words."""
    if values.get("result_validity") == "VALID":
        return []
    reasons = []
    if values.get("result_perf_constraints_met") is False:
        reasons.append(f"{OVER_THE_BOUND}: " + str(values.get("result_invalid_reason", "")).strip())
    if values.get("result_min_duration_met") is False:
        reasons.append("minimum duration not met")
    if values.get("result_min_queries_met") is False:
        reasons.append("minimum query count not met")
    if values.get("early_stopping_met") is False:
        text = re.sub(r"\s+", " ", str(values.get("early_stopping_result", ""))).strip(" *")
        reasons.append("early stopping not met: " + text.replace(" * ", "; "))
    reasons.extend(values["_errors"])
    return reasons or ["LoadGen gave no reason"]


def read_result(path: str | Path, settings: RunSettings, duration_s: float) -> RunResult:
    values = detail_values(path)
    latency = {
        name: values[f"result_{pct}.00_percentile_latency_ns"] / 1e6
        for pct, name in _PERCENTILES.items()
        if f"result_{pct}.00_percentile_latency_ns" in values
    }
    for key, name in (("result_mean_latency_ns", "mean"), ("result_max_latency_ns", "max")):
        if key in values:
            latency[name] = values[key] / 1e6
    if settings.scenario == "SingleStream":
        rate = 1e3 / latency["mean"] if latency.get("mean") else None
    else:
        rate = values.get("result_completed_samples_per_sec", values.get("result_samples_per_second"))
    return RunResult(
        scenario=settings.scenario,
        validity=str(values.get("result_validity", "INVALID")),
        samples_per_second=rate,
        scheduled_qps=values.get("result_scheduled_samples_per_sec"),
        latency_ms=latency,
        queries=int(values.get("result_query_count", 0)),
        duration_s=duration_s,
        reasons=_reasons(values),
        settings=asdict(settings),
        effective={k[len("effective_"):]: v for k, v in values.items() if k.startswith("effective_")},
    )
