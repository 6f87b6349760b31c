"""Snakemake glue: one serving target (a variant of a model on a device, in one MLPerf scenario)."""

from pathlib import Path

from dlmark import joblog, specs
from dlmark.measure.batcher import BatcherSettings
from dlmark.measure.interference import NoisePolicy
from dlmark.measure.timing import Budget
from dlmark.results import records, tables
from dlmark.scenarios import serving, serving_child

joblog.start(snakemake.log[0])
params = snakemake.params
settings = params.serving
scenario = params.scenario
Path(snakemake.output.logs).mkdir(parents=True, exist_ok=True)
common = dict(
    **specs.from_job(snakemake.wildcards, params.threads, str(Path(snakemake.input.gate).parent)),
    scenario=scenario,
    machine=params.machine,
    min_duration_s=settings["min_duration_s"],
    official_length=settings["official_length"],
    budget=Budget(**params.budget),
    noise=NoisePolicy(**params.noise),
    log_dir=snakemake.output.logs,
    memory_limit_mb=params.memory_limit_mb,
    omp_wait_policy=settings["omp_wait_policy"],
)
delay_s = settings.get("max_queue_delay_ms", 0) / 1e3
workers = settings.get("workers", 1)
try:
    if scenario == "SingleStream":
        # MLPerf's own least query count for SingleStream; early stopping judges its p90.
        spec = serving.ServingSpec(**common, batcher=BatcherSettings(1, 0.0), min_queries=100)
    elif scenario == "Offline":
        rows = [tables.read_record(p) for p in snakemake.input.points]
        batch, throughput = serving.best_batch(rows, settings["offline_batch_size"])
        spec = serving.ServingSpec(
            **common, batcher=BatcherSettings(batch, delay_s, workers, only_largest=True), min_queries=1,
            target_qps=serving_child.OFFLINE_HEADROOM * throughput,
        )
    else:
        offline = tables.read_record(snakemake.input.offline, records.ServingRecord)
        single = tables.read_record(snakemake.input.single_stream, records.ServingRecord)
        start = serving.server_start(offline)
        bound, rule = serving.server_bound(single, settings["latency_bound_factor"], params.latency_bound_ms)
        spec = serving.ServingSpec(
            **common, batcher=BatcherSettings(settings["max_batch_size"], delay_s, workers),
            min_queries=settings["server_min_queries"], target_qps=start, latency_bound_ms=bound,
            max_runs=settings["server_max_runs"],
        )
except serving.NotServable as exc:
    spec = serving.ServingSpec(**common, batcher=BatcherSettings(1, 0.0), min_queries=1)
    result = serving.unserved(spec, serving.ERROR, f"not served: {exc}", planned=False)
else:
    result = serving.measure(spec)
    if scenario == "Server":
        result.latency_bound_rule = rule
tables.write_json(snakemake.output.record, result)
