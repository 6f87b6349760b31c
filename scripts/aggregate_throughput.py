"""Snakemake glue: merge throughput JSON files into results/throughput.csv."""

from dlmark import joblog
from dlmark.results import tables

joblog.start(snakemake.log[0])
frame = tables.throughput_table(snakemake.input)
tables.write_csv(snakemake.output[0], frame)
print(f"{len(frame)} rows, {int((frame['status'] != 'ok').sum())} not ok -> {snakemake.output[0]}")
