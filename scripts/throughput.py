"""Snakemake glue: measure one throughput point and write its JSON."""

from dlmark import benchmark, hardware, joblog, results

joblog.redirect(snakemake.log[0])
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
    memory_limit_mb=snakemake.params.memory_limit_mb,
    variant_dir=snakemake.params.variant_dir,
)
max_batch = results.read_record(snakemake.input.max_batch, results.MAX_BATCH_RECORD_SCHEMA)
record = (
    benchmark.failed_gate(spec, snakemake.input.gate)
    or benchmark.skipped_over_max_batch(spec, max_batch)
    or benchmark.run_throughput(spec)
)
results.write_json(snakemake.output[0], record)
