"""Snakemake glue: draw speedup.png/.svg."""

import pandas as pd

from dlmark import joblog
from dlmark.results import plotting

joblog.start(snakemake.log[0])
figure = plotting.speedup(
    pd.read_csv(snakemake.input.speedup), pd.read_csv(snakemake.input.throughput), snakemake.params.batch_size
)
plotting.save(figure, snakemake.output.png, snakemake.output.svg)
