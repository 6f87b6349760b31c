"""Snakemake glue: merge max-batch JSON files into results/max_batch_size.csv."""

from dlmark import joblog, results

joblog.start(snakemake.log[0])
frame = results.max_batch_table(snakemake.input)
results.write_csv(snakemake.output[0], frame)
print(f"{len(frame)} rows -> {snakemake.output[0]}")
