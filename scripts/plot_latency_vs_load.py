"""Snakemake glue: draw latency_vs_load.png/.svg from the serving records."""

import pandas as pd

from dlmark import joblog
from dlmark.results import plotting, tables

joblog.start(snakemake.log[0])
figure = plotting.latency_vs_load(tables.serving_runs(snakemake.input.records), pd.read_csv(snakemake.input.table))
plotting.save(figure, snakemake.output.png, snakemake.output.svg)
