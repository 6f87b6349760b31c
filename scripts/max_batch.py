"""Snakemake glue: search one model's largest batch size and write its JSON."""

from pathlib import Path

from dlmark import hardware, joblog, maxbatch, results

joblog.start(snakemake.log[0])
w = snakemake.wildcards
spec = maxbatch.SearchSpec(
    model=w.model,
    device=w.device,
    runtime=w.runtime,
    precision=w.precision,
    machine=snakemake.params.machine,
    threads=hardware.resolve_threads(snakemake.params.threads),
    memory_limit_mb=snakemake.params.memory_limit_mb,
    variant_dir=str(Path(snakemake.input.gate).parent),
    **snakemake.params.search,
)
results.write_json(snakemake.output[0], maxbatch.run_search(spec))
