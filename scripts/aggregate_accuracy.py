"""Snakemake glue: measured and published accuracies into results/accuracy.csv."""

from dlmark import joblog
from dlmark.results import tables

joblog.start(snakemake.log[0])
frame = tables.accuracy_table(snakemake.input, snakemake.params.models)
tables.write_csv(snakemake.output[0], frame)
print(f"{len(frame)} rows ({int((frame['source'] == 'measured').sum())} measured) -> {snakemake.output[0]}")
