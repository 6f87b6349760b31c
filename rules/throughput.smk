# Writing a point's file from its model's rounds is a copy: never a cluster job.
localrules:
    throughput_point,


rule throughput:
    """Time every point of one model on one device together, in interleaved rounds of fresh processes."""
    input:
        # Every variant's largest batch (points above it are not run), and
        # its prepared files and correctness gate, the float32 reference's
        # too (its fused network is checked against the unfused).
        max_batch=model_max_batches,
        gates=model_gates,
        device_gates=model_device_gates,
    output:
        ROUNDS,
    log:
        machine_log("throughput/{device}/{model}"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
        gpu=lambda wildcards: int(wildcards.device != "cpu"),
    params:
        machine=MACHINE,
        points=model_points,
        budget=measure_settings,
        noise=noise_settings,
        threads=benchmark_threads,
        memory_limit_mb=memory_limit_mb,
    script:
        "../scripts/throughput.py"


rule throughput_point:
    """One point's own result file, from its model's rounds."""
    input:
        ROUNDS,
    output:
        THROUGHPUT,
    log:
        machine_log("throughput_point/{device}/{runtime}-{precision}/{model}/bs{batch}"),
    run:
        dlresults.write_point(
            input[0],
            output[0],
            wildcards.runtime,
            wildcards.precision,
            int(wildcards.batch),
        )
