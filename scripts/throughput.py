"""Snakemake glue: measure one throughput point and write its JSON."""

from dlmark import benchmark, joblog, results

joblog.redirect(snakemake.log[0])
w = snakemake.wildcards
spec = benchmark.ThroughputSpec(
    model=w.model,
    device=w.device,
    runtime=w.runtime,
    precision=w.precision,
    batch_size=int(w.batch),
    machine=snakemake.params.machine,
    threads=snakemake.params.threads,
    budget=snakemake.params.budget,
    memory_limit_mb=snakemake.params.memory_limit_mb,
)
results.write_json(snakemake.output[0], benchmark.run_throughput(spec))
