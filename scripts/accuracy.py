"""Snakemake glue: measure one model's ImageNet accuracy and write its JSON."""

from pathlib import Path

from dlmark import joblog, specs
from dlmark.results import tables
from dlmark.scenarios import accuracy

joblog.start(snakemake.log[0])
params = snakemake.params
data = params.imagenet
spec = accuracy.AccuracySpec(
    **specs.from_job(snakemake.wildcards, params.threads, str(Path(snakemake.input.gate).parent), device="cpu"),
    machine=params.machine,
    params_file=snakemake.input.weights,
    val_dir=data["val_dir"],
    labels_file=data["labels_file"],
    num_classes=data["num_classes"],
    images_per_class=data["images_per_class"],
    batch_size=data["batch_size"],
    workers=data["workers"],
)
tables.write_json(snakemake.output[0], accuracy.run_accuracy(spec))
