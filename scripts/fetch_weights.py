"""Snakemake glue: fetch one model's verified weights."""

from pathlib import Path

from dlmark import joblog, weights

joblog.start(snakemake.log[0])
target = Path(snakemake.output[0])
spec = weights.WeightsSpec(
    model=snakemake.wildcards.model,
    sha1=snakemake.params.sha1,
    dest_dir=str(target.parent),
    local_dirs=tuple(snakemake.params.local_dirs),
    repo_url=snakemake.params.repo_url,
)
weights.fetch(spec, progress=print)
