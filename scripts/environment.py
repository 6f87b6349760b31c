"""Snakemake glue: summarise the run in results/environment.json."""

from dlmark import joblog
from dlmark.results import tables

joblog.start(snakemake.log[0])
summary = tables.environment_summary(
    machine=snakemake.params.machine,
    devices=snakemake.params.devices,
    threads=snakemake.params.threads,
    config=snakemake.params.config,
    tables=dict(snakemake.input.items()),
)
tables.write_json(snakemake.output[0], summary)
