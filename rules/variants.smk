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


rule defined_outputs:
    """The network as defined on the gate batch (MXNet, CPU), kept so a GPU node without MXNet can gate there."""
    input:
        weights=variant_weights,
    output:
        DEFINED_OUTPUTS,
    log:
        job_log("defined_outputs/{model}"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
    params:
        threads=benchmark_threads,
    script:
        "../scripts/defined_outputs.py"


rule device_gates:
    """Gate every variant of one model again on the GPU it is measured on: float16 and bfloat16 round differently there."""
    input:
        gates=gated_variant_gates,
        defined=DEFINED_OUTPUTS,
    output:
        DEVICE_GATES,
    log:
        machine_log("device_gates/{device}/{model}"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
        gpu=1,
    params:
        threads=benchmark_threads,
    script:
        "../scripts/device_gates.py"
