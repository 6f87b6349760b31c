rule max_batch:
    """Largest batch size of one model that fits the device's memory limit."""
    input:
        gate=GATE,
    output:
        MAX_BATCH,
    log:
        machine_log("max_batch/{device}/{runtime}-{precision}/{model}"),
    conda:
        "../environment.yml"
    threads: dlconfig.cpu_threads(config)
    resources:
        benchmark_slot=1,
        gpu=lambda wildcards: int(wildcards.device != "cpu"),
    params:
        machine=MACHINE,
        threads=benchmark_threads,
        memory_limit_mb=memory_limit_mb,
        search=dlconfig.max_batch_settings(config),
    script:
        "../scripts/max_batch.py"
