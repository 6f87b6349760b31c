"""Snakemake glue: speed-ups and curve shapes from paired rounds, into results/speedup.csv and scaling.csv."""

import pandas as pd

from dlmark import joblog
from dlmark.results import tables

joblog.start(snakemake.log[0])
ratios = tables.comparison_tables(snakemake.input.points, pd.read_csv(snakemake.input.table))
for name, frame in ratios.items():
    tables.write_csv(snakemake.output[name], frame)
    print(f"{len(frame)} {name} ratios -> {snakemake.output[name]}")
