"""Snakemake glue: measure one throughput point and write its JSON."""

from pathlib import Path

from dlmark import benchmark, hardware, joblog, records, results

joblog.start(snakemake.log[0])
w = snakemake.wildcards
spec = benchmark.ThroughputSpec(
    model=w.model,
    device=w.device,
    runtime=w.runtime,
    precision=w.precision,
    batch_size=int(w.batch),
    machine=snakemake.params.machine,
    threads=hardware.resolve_threads(snakemake.params.threads),
    budget=snakemake.params.budget,
    noise=snakemake.params.noise,
    memory_limit_mb=snakemake.params.memory_limit_mb,
    variant_dir=str(Path(snakemake.input.gate).parent),
)
max_batch = results.read_record(snakemake.input.max_batch, records.MaxBatchRecord)
results.write_json(snakemake.output[0], benchmark.throughput_point(spec, max_batch))
