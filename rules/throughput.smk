rule throughput:
    """Time one model at one batch size on one device, in a fresh process."""
    input:
        max_batch=MAX_BATCH,
        # Every variant's prepared files and correctness gate, the float32
        # reference's too (its fused network is checked against the unfused).
        gate=GATE,
    output:
        THROUGHPUT,
    log:
        f"logs/{MACHINE}/throughput/{{device}}/{{runtime}}-{{precision}}/{{model}}/bs{{batch}}.log",
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
        gpu=lambda wildcards: int(wildcards.device != "cpu"),
    params:
        machine=MACHINE,
        budget=measure_settings,
        noise=noise_settings,
        threads=benchmark_threads,
        memory_limit_mb=memory_limit_mb,
    script:
        "../scripts/throughput.py"
