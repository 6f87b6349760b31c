"""Snakemake glue: draw energy_vs_throughput.png/.svg (GPU devices)."""

import pandas as pd

from dlmark import joblog
from dlmark.results import plotting

joblog.start(snakemake.log[0])
figure = plotting.energy_vs_throughput(pd.read_csv(snakemake.input[0]))
plotting.save(figure, snakemake.output.png, snakemake.output.svg)
