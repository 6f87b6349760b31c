"""Snakemake glue: build one variant's files and its correctness gate."""

from pathlib import Path

from dlmark import hardware, joblog, variants
from dlmark.measure.child import limit_threads

joblog.start(snakemake.log[0])
w = snakemake.wildcards
threads = hardware.resolve_threads(snakemake.params.threads)
limit_threads(threads)
spec = variants.VariantSpec(
    model=w.model,
    runtime=w.runtime,
    precision=w.precision,
    out_dir=str(Path(snakemake.output[0]).parent),
    threads=threads,
    params_file=snakemake.input.weights or None,
    calibration=snakemake.params.calibration,
    calibration_images=snakemake.params.calibration_images,
    labels_file=snakemake.params.labels_file,
    num_classes=snakemake.params.num_classes,
)
gate = variants.prepare(spec)
print(f"gate {'passed' if gate['passed'] else 'FAILED'}: {gate}")
