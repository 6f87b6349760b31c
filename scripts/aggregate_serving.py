"""Snakemake glue: merge serving JSON files into results/serving.csv."""

from dlmark import joblog
from dlmark.results import tables

joblog.start(snakemake.log[0])
frame = tables.serving_table(snakemake.input)
tables.write_csv(snakemake.output[0], frame)
print(f"{len(frame)} rows -> {snakemake.output[0]}")
