rule prepare_variant:
    """Prepare one variant once (fused reference, ONNX export, INT8), then gate it against the network as defined."""
    input:
        weights=variant_weights,
    output:
        GATE,
    log:
        job_log("prepare_variant/{model}/{runtime}-{precision}"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
    params:
        threads=benchmark_threads,
        calibration=lambda wildcards: config["imagenet"]["val_dir"] or "random",
        calibration_images=config["int8_calibration_images"],
        labels_file=config["imagenet"]["labels_file"],
        num_classes=config["imagenet"]["num_classes"],
    script:
        "../scripts/prepare_variant.py"
