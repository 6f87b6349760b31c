"""Snakemake glue: measured and published accuracies into results/accuracy.csv."""

from dlmark import joblog, results

joblog.start(snakemake.log[0])
frame = results.accuracy_table(snakemake.input, snakemake.params.models)
results.write_csv(snakemake.output[0], frame)
print(f"{len(frame)} rows ({int((frame['source'] == 'measured').sum())} measured) -> {snakemake.output[0]}")
