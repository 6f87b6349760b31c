"""Snakemake glue: search one model's largest batch size and write its JSON."""

from pathlib import Path

from dlmark import joblog, specs
from dlmark.results import tables
from dlmark.scenarios import maxbatch

joblog.start(snakemake.log[0])
params = snakemake.params
spec = maxbatch.SearchSpec(
    **specs.from_job(snakemake.wildcards, params.threads, str(Path(snakemake.input.gate).parent)),
    machine=params.machine,
    memory_limit_mb=params.memory_limit_mb,
    **params.search,
)
tables.write_json(snakemake.output[0], maxbatch.run_search(spec))
