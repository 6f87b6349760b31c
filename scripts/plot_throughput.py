"""Snakemake glue: draw throughput_vs_batch_size.png/.svg."""

import pandas as pd

from dlmark import joblog
from dlmark.results import plotting

joblog.start(snakemake.log[0])
figure = plotting.throughput_vs_batch_size(pd.read_csv(snakemake.input[0]))
plotting.save(figure, snakemake.output.png, snakemake.output.svg)
