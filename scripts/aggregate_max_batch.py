"""Snakemake glue: merge max-batch JSON files into results/max_batch_size.csv."""

from dlmark import joblog
from dlmark.results import tables

joblog.start(snakemake.log[0])
frame = tables.max_batch_table(snakemake.input)
tables.write_csv(snakemake.output[0], frame)
print(f"{len(frame)} rows -> {snakemake.output[0]}")
