"""Snakemake glue: draw throughput_vs_accuracy.png/.svg."""

import pandas as pd

from dlmark import joblog
from dlmark.results import plotting

joblog.start(snakemake.log[0])
figure = plotting.throughput_vs_accuracy(
    pd.read_csv(snakemake.input.throughput),
    pd.read_csv(snakemake.input.accuracy),
    snakemake.params.batch_size,
)
plotting.save(figure, snakemake.output.png, snakemake.output.svg)
