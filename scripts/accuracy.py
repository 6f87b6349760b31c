"""Snakemake glue: measure one model's ImageNet accuracy and write its JSON."""

from pathlib import Path

from dlmark import accuracy, hardware, joblog, results

joblog.start(snakemake.log[0])
w = snakemake.wildcards
data = snakemake.params.imagenet
spec = accuracy.AccuracySpec(
    model=w.model,
    runtime=w.runtime,
    precision=w.precision,
    machine=snakemake.params.machine,
    params_file=snakemake.input.weights,
    val_dir=data["val_dir"],
    labels_file=data["labels_file"],
    num_classes=data["num_classes"],
    images_per_class=data["images_per_class"],
    batch_size=data["batch_size"],
    workers=data["workers"],
    threads=hardware.resolve_threads(snakemake.params.threads),
    variant_dir=str(Path(snakemake.input.gate).parent),
)
results.write_json(snakemake.output[0], accuracy.run_accuracy(spec))
