rule prepare_variant:
    """Export (ONNX) or quantize (INT8) one model once, then gate it against float32."""
    input:
        weights=variant_weights,
    output:
        "resources/variants/{model}/{runtime}-{precision}/gate.json",
    log:
        "logs/prepare_variant/{model}/{runtime}-{precision}.log",
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
